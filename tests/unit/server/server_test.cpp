// The real server, in-process on port 0, spoken to over raw sockets.
#include "server/server.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "../temp_dir.h"
#include "raw_client.h"
#include "server/store.h"

namespace farmhand::server {
namespace {

using nlohmann::json;

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = (dir_.path() / "server.db").string();
    auto store = Store::open(db_);
    ASSERT_TRUE(store.ok());
    auto t = store->create_token("builder-01", now(), 3600 * 1000);
    ASSERT_TRUE(t.ok());
    token_ = t->token;
    ASSERT_TRUE(store->put_user("ada", Role::kAdmin, "pw").ok());
    ASSERT_TRUE(store->put_user("bob", Role::kViewer, "pw").ok());

    ServerConfig config = default_server_config();
    config.listen_port = 0;
    config.database = db_;
    config.limits.max_frame_bytes = 4096;
    auto s = Server::create(config);
    ASSERT_TRUE(s.ok()) << s.error().message();
    server_ = std::move(*s);
    ASSERT_NE(server_->port(), 0);
    thread_ = std::thread([this] { ASSERT_TRUE(server_->run().ok()); });
  }
  void TearDown() override {
    if (server_) server_->request_stop();
    if (thread_.joinable()) thread_.join();
  }
  static int64_t now() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  json receive_json(test::RawClient& c) {
    auto m = c.receive();
    if (!m || m->opcode != 1) return json();
    return json::parse(m->payload);
  }

  std::string enroll() {
    test::RawClient c(server_->port());
    EXPECT_EQ(c.upgrade("/agent", "farmhand.v1"), 101);
    c.send_frame(json{{"type", "enroll"}, {"token", token_}, {"version", "0.1.0"}}.dump());
    json enrolled = receive_json(c);
    EXPECT_EQ(enrolled["type"], "enrolled");
    EXPECT_EQ(enrolled["host"], "builder-01");
    return enrolled.value("credential", "");
  }

  std::string login(const std::string& user) {
    test::RawClient c(server_->port());
    std::string body = json{{"user", user}, {"password", "pw"}}.dump();
    std::string head = c.request("POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                 "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
    EXPECT_NE(head.find(" 200 "), std::string::npos) << head;
    auto at = head.find("fh_session=");
    if (at == std::string::npos) return "";
    return head.substr(at, head.find(';', at) - at);
  }

  farmhand::test::TempDir dir_;
  std::string db_;
  std::string token_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
};

TEST_F(ServerTest, EnrollHelloEventsAckAndTheFeed) {
  std::string credential = enroll();
  ASSERT_FALSE(credential.empty());

  std::string cookie = login("bob");
  test::RawClient ui(server_->port());
  ASSERT_EQ(ui.upgrade("/ui", "farmhand.ui.v1", cookie), 101);
  json snapshot = receive_json(ui);
  EXPECT_EQ(snapshot["type"], "snapshot");
  EXPECT_EQ(snapshot["role"], "viewer");
  ASSERT_EQ(snapshot["hosts"].size(), 1u);
  EXPECT_EQ(snapshot["hosts"][0]["online"], false);

  test::RawClient agent(server_->port());
  ASSERT_EQ(agent.upgrade("/agent", "farmhand.v1"), 101);
  agent.send_frame(json{{"type", "hello"}, {"host", "builder-01"}, {"credential", credential}, {"version", "0.1.0"},
                        {"capabilities", json::array()}}
                       .dump());
  json welcome = receive_json(agent);
  EXPECT_EQ(welcome["type"], "welcome");
  EXPECT_EQ(welcome["acked_seq"], 0);
  json online = receive_json(ui);
  EXPECT_EQ(online["type"], "host");
  EXPECT_EQ(online["host"]["online"], true);

  for (int seq = 1; seq <= 3; ++seq) {
    agent.send_frame(json{{"type", "event"}, {"seq", seq}, {"time", 1000 + seq}, {"kind", "agent_started"},
                          {"message", "started"}}
                         .dump());
  }
  uint64_t acked = 0;
  while (acked < 3) {
    json ack = receive_json(agent);
    ASSERT_EQ(ack["type"], "ack") << ack.dump();
    acked = ack["seq"].get<uint64_t>();
  }
  for (int seq = 1; seq <= 3; ++seq) {
    json ev = receive_json(ui);
    EXPECT_EQ(ev["type"], "event");
    EXPECT_EQ(ev["seq"], seq);
    EXPECT_EQ(ev["host"], "builder-01");
  }
  // A viewer may not send commands; the connection stays open.
  ui.send_frame(R"({"type": "command", "host": "builder-01", "action": "apply"})");
  json refused = receive_json(ui);
  EXPECT_EQ(refused["type"], "error");
  EXPECT_EQ(refused["code"], "not_allowed");

  // A gap in seq is refused and closes the connection.
  agent.send_frame(R"({"type": "event", "seq": 9, "time": 1, "kind": "x", "message": ""})");
  json error = receive_json(agent);
  EXPECT_EQ(error["code"], "out_of_order");
  auto close = agent.receive();
  ASSERT_TRUE(close.has_value());
  EXPECT_EQ(close->opcode, 8);
  EXPECT_EQ(close->close_code, 1008);

  auto store = Store::open(db_);
  EXPECT_EQ(*store->acked_seq("builder-01"), 3u);
}

TEST_F(ServerTest, AdminCommandsReachTheAgent) {
  std::string credential = enroll();
  test::RawClient agent(server_->port());
  ASSERT_EQ(agent.upgrade("/agent", "farmhand.v1"), 101);
  agent.send_frame(json{{"type", "hello"}, {"host", "builder-01"}, {"credential", credential}, {"version", "0.1.0"}}.dump());
  EXPECT_EQ(receive_json(agent)["type"], "welcome");

  test::RawClient ui(server_->port());
  ASSERT_EQ(ui.upgrade("/ui", "farmhand.ui.v1", login("ada")), 101);
  EXPECT_EQ(receive_json(ui)["role"], "admin");
  ui.send_frame(R"({"type": "command", "host": "builder-01", "action": "restart", "container": "deb12"})");
  json sent = receive_json(ui);
  EXPECT_EQ(sent["type"], "command_sent");
  EXPECT_EQ(sent["id"], "c-1");
  json command = receive_json(agent);
  EXPECT_EQ(command, json::parse(R"({"type": "command", "id": "c-1", "action": "restart", "container": "deb12"})"));
  // Where it is: passed on to the dashboards, and a flood of them is thinned.
  agent.send_frame(R"({"type": "progress", "command": "c-1", "container": "deb12", "step": "setup build",
                       "text": "build: 20 s, 12 lines, last: ok"})");
  for (int i = 0; i < 50; ++i) {
    agent.send_frame(R"({"type": "progress", "command": "c-1", "container": "deb12", "step": "setup build",
                         "text": "flood"})");
  }
  EXPECT_EQ(receive_json(ui), json::parse(R"({"type": "progress", "host": "builder-01", "command": "c-1",
                                              "container": "deb12", "step": "setup build",
                                              "text": "build: 20 s, 12 lines, last: ok"})"));
  agent.send_frame(R"({"type": "command_result", "id": "c-1", "ok": true, "message": "deb12 restarted"})");
  json result = receive_json(ui);
  int passed = 0;  // of the flood: only what came 250 ms apart (a slow machine lets a few through)
  while (result["type"] == "progress" && passed < 60) {
    ++passed;
    result = receive_json(ui);
  }
  EXPECT_LT(passed, 10);
  EXPECT_EQ(result, json::parse(R"({"type": "command_result", "host": "builder-01", "id": "c-1", "ok": true,
                                    "message": "deb12 restarted"})"));
}

TEST_F(ServerTest, RefusesBadInputAndUnauthenticatedRequests) {
  {
    test::RawClient c(server_->port());
    ASSERT_EQ(c.upgrade("/agent", "farmhand.v1"), 101);
    c.send_frame(std::string(5000, 'x'));
    json e = receive_json(c);
    EXPECT_EQ(e["code"], "too_large");
    EXPECT_EQ(c.receive()->close_code, 1009);
  }
  {
    test::RawClient c(server_->port());
    ASSERT_EQ(c.upgrade("/agent", "farmhand.v1"), 101);
    c.send_frame(json{{"type", "hello"}, {"host", "builder-01"}, {"credential", "fhc_" + std::string(48, '0')},
                      {"version", "1"}}
                     .dump());
    EXPECT_EQ(receive_json(c)["code"], "unauthorized");
  }
  {
    test::RawClient c(server_->port());
    EXPECT_EQ(c.upgrade("/ui", "farmhand.ui.v1"), 401);
  }
  {
    test::RawClient c(server_->port());
    EXPECT_NE(c.request("GET /api/hosts HTTP/1.1\r\nHost: x\r\n\r\n").find(" 401 "), std::string::npos);
  }
  {
    test::RawClient c(server_->port());
    std::string head = c.request("GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_NE(head.find(" 200 "), std::string::npos);
    EXPECT_NE(head.find("cache-control: no-store"), std::string::npos);
  }
}

}  // namespace
}  // namespace farmhand::server
