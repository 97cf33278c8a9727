#include "server/config.h"

#include <gtest/gtest.h>

#include "server/cli.h"

namespace farmhand::server {
namespace {

std::string error_of(std::string_view text) {
  auto c = parse_server_config(text);
  EXPECT_FALSE(c.ok()) << text;
  return c ? "" : c.error().message();
}

TEST(ServerConfig, EmptyObjectGivesEveryDefault) {
  auto c = parse_server_config("{}");
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->listen_address, "127.0.0.1");
  EXPECT_EQ(c->listen_port, 8383);
  EXPECT_FALSE(c->tls());
  EXPECT_EQ(c->database, "/var/lib/farmhand-server/server.db");
  EXPECT_EQ(c->limits.max_frame_bytes, 65536u);
  EXPECT_EQ(c->limits.frames_per_second, 2000u);
  EXPECT_EQ(c->limits.burst, 10000u);
  EXPECT_EQ(c->limits.hello_timeout_s, 10u);
  EXPECT_EQ(c->heartbeat_s, 10u);
  EXPECT_EQ(c->heartbeat_history_days, 7u);
}

TEST(ServerConfig, ShippedFileParsesToTheDefaults) {
  auto text = std::string(FARMHAND_TEST_DATA_DIR) + "/../conf/server.json";
  auto c = load_server_config(text, true);
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->listen_port, 8383);
  EXPECT_EQ(c->limits.burst, 10000u);
}

TEST(ServerConfig, EveryKeyIsRead) {
  auto c = parse_server_config(R"({"listen": {"address": "::1", "port": 0},
    "tls": {"cert": "/etc/c.pem", "key": "/etc/k.pem"}, "database": "/tmp/x.db",
    "limits": {"max_frame_bytes": 4096, "frames_per_second": 5, "burst": 6, "hello_timeout_s": 2},
    "heartbeat_s": 3, "heartbeat_history_days": 4})");
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->listen_address, "::1");
  EXPECT_EQ(c->listen_port, 0);
  EXPECT_EQ(*c->tls_cert, "/etc/c.pem");
  EXPECT_EQ(*c->tls_key, "/etc/k.pem");
  EXPECT_EQ(c->database, "/tmp/x.db");
  EXPECT_EQ(c->limits.max_frame_bytes, 4096u);
  EXPECT_EQ(c->limits.frames_per_second, 5u);
  EXPECT_EQ(c->limits.burst, 6u);
  EXPECT_EQ(c->limits.hello_timeout_s, 2u);
  EXPECT_EQ(c->heartbeat_s, 3u);
  EXPECT_EQ(c->heartbeat_history_days, 4u);
}

TEST(ServerConfig, ExactMessages) {
  EXPECT_EQ(error_of(R"({"limits": {"burst": "x"}})"), "/limits/burst: expected an unsigned integer");
  EXPECT_EQ(error_of(R"({"limits": {"burst": -1}})"), "/limits/burst: expected an unsigned integer");
  EXPECT_EQ(error_of(R"({"limits": {"burst": 1.5}})"), "/limits/burst: expected an unsigned integer");
  EXPECT_EQ(error_of(R"({"limits": {"max_frame_bytes": 10}})"),
            "/limits/max_frame_bytes: expected an integer from 1024 to 16777216, got 10");
  EXPECT_EQ(error_of(R"({"listen": {"port": 70000}})"), "/listen/port: expected an integer from 0 to 65535, got 70000");
  EXPECT_EQ(error_of(R"({"listen": {"address": "localhost"}})"),
            "/listen/address: \"localhost\" is not an IPv4 or IPv6 address");
  EXPECT_EQ(error_of(R"({"listen": {"host": "x"}})"), "/listen/host: unknown key (expected one of: address, port)");
  EXPECT_EQ(error_of(R"({"limit": {}})"),
            "/limit: unknown key (expected one of: database, heartbeat_history_days, heartbeat_s, limits, listen, tls)");
  EXPECT_EQ(error_of(R"({"tls": {"cert": "/c"}})"), "/tls: give both \"cert\" and \"key\", or neither");
  EXPECT_EQ(error_of(R"({"tls": {"cert": "", "key": "/k"}})"), "/tls/cert: must not be empty");
  EXPECT_EQ(error_of(R"({"database": 1})"), "/database: expected a string");
  EXPECT_EQ(error_of(R"({"heartbeat_s": 0})"), "/heartbeat_s: expected an integer from 1 to 3600, got 0");
  EXPECT_EQ(error_of(R"({"heartbeat_s": 5, "heartbeat_s": 6})"), "/heartbeat_s: duplicate key");
  EXPECT_EQ(error_of(R"([])"), "/: expected an object");
  EXPECT_EQ(error_of(R"({"listen": []})"), "/listen: expected an object");
}

TEST(ServerConfig, EveryProblemIsReportedOnItsOwnLine) {
  EXPECT_EQ(error_of(R"({"heartbeat_s": "a", "limits": {"burst": 0}})"),
            "/heartbeat_s: expected an unsigned integer\n/limits/burst: expected an integer from 1 to 10000000, got 0");
}

TEST(ServerConfig, MissingDefaultFileMeansDefaultsButAGivenFileMustExist) {
  EXPECT_TRUE(load_server_config("/nonexistent/server.json", false).ok());
  auto c = load_server_config("/nonexistent/server.json", true);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message(), "cannot read '/nonexistent/server.json': no such file");
}

TEST(ServerConfig, ListenOverride) {
  ServerConfig c = default_server_config();
  ASSERT_TRUE(apply_listen_override(c, "0.0.0.0:0").ok());
  EXPECT_EQ(c.listen_address, "0.0.0.0");
  EXPECT_EQ(c.listen_port, 0);
  ASSERT_TRUE(apply_listen_override(c, "[::1]:9000").ok());
  EXPECT_EQ(c.listen_address, "::1");
  EXPECT_EQ(c.listen_port, 9000);
  EXPECT_EQ(apply_listen_override(c, "1.2.3.4:99999").error().message(), "--listen: \"99999\" is not a port number");
  EXPECT_EQ(apply_listen_override(c, "nohost").error().message(), "--listen: expected ADDR:PORT, got \"nohost\"");
}

TEST(ServerCli, Durations) {
  EXPECT_EQ(*parse_duration_ms("30m"), 30 * 60 * 1000);
  EXPECT_EQ(*parse_duration_ms("24h"), 24 * 3600 * 1000);
  EXPECT_EQ(*parse_duration_ms("7d"), 7LL * 86400 * 1000);
  EXPECT_EQ(*parse_duration_ms("90s"), 90 * 1000);
  EXPECT_FALSE(parse_duration_ms("0h").ok());
  EXPECT_FALSE(parse_duration_ms("366d").ok());
  EXPECT_FALSE(parse_duration_ms("h").ok());
  EXPECT_FALSE(parse_duration_ms("5w").ok());
  EXPECT_FALSE(parse_duration_ms("-5m").ok());
}

}  // namespace
}  // namespace farmhand::server
