#include "agent/link.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/unit/agent/fake_server.h"
#include "tests/unit/temp_dir.h"

namespace farmhand::agent {
namespace {

using std::chrono::milliseconds;
using test::FakeServer;
using test::run_until;

protocol::Event event(int k) {
  protocol::Event e;
  e.time = 1795406460000 + k;
  e.kind = "test";
  e.message = "event " + std::to_string(k);
  return e;
}

nlohmann::json inventory_body() {
  return {{"time", 1795406400000},
          {"host", {{"hostname", "builder-01"}}},
          {"containers", nlohmann::json::array()},
          {"devices", nlohmann::json::array()}};
}

class LinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto l = EventLoop::create();
    ASSERT_TRUE(l) << l.error().message();
    loop_ = std::move(l).value();
    auto o = SqliteOutbox::open((dir_.path() / "state.db").string());
    ASSERT_TRUE(o) << o.error().message();
    outbox_ = std::move(o).value();
  }
  void TearDown() override {
    link_.reset();
    outbox_.reset();
    loop_.reset();
    server_.reset();
  }

  void start_server(FakeServer::Options options = {}) {
    server_ = std::make_unique<FakeServer>(*loop_, options);
    ASSERT_TRUE(server_->ok());
  }

  LinkOptions link_options(const std::string& url) {
    LinkOptions o;
    o.url = url;
    o.host = "builder-01";
    o.credential = "fhc_test_credential_0123456789";
    o.version = "0.1.0";
    // Fast, deterministic retries: always the ceiling, starting at 20 ms.
    o.backoff_initial = milliseconds(20);
    o.backoff_cap = milliseconds(100);
    o.random = [](uint64_t max) { return max; };
    o.quiet = true;
    return o;
  }

  void start_link(LinkOptions options, LinkCallbacks callbacks = {}) {
    if (!callbacks.inventory) callbacks.inventory = inventory_body;
    auto l = AgentLink::create(*loop_, *outbox_, std::move(options), std::move(callbacks));
    ASSERT_TRUE(l) << l.error().message();
    link_ = std::move(l).value();
    link_->start();
  }

  void append(int from, int to) {
    for (int k = from; k <= to; ++k) ASSERT_TRUE(outbox_->append(event(k)));
  }
  uint64_t outbox_size() { return *outbox_->size(); }

  farmhand::test::TempDir dir_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<SqliteOutbox> outbox_;
  std::unique_ptr<FakeServer> server_;
  std::unique_ptr<AgentLink> link_;
};

TEST_F(LinkTest, HelloThenInventoryThenEventsInOrderAndAcksEmptyTheOutbox) {
  start_server();
  append(1, 50);
  start_link(link_options(server_->url()));
  ASSERT_TRUE(run_until(*loop_, [&] { return outbox_size() == 0 && link_->acked_seq() == 50; }));

  auto types = server_->types();
  ASSERT_GE(types.size(), 52u);
  EXPECT_EQ(types[0], "hello");
  EXPECT_EQ(types[1], "inventory");
  const auto& hello = server_->frames()[0];
  EXPECT_EQ(hello["host"], "builder-01");
  EXPECT_EQ(hello["credential"], "fhc_test_credential_0123456789");
  EXPECT_EQ(hello["version"], "0.1.0");
  EXPECT_EQ(server_->frames()[1]["host"]["hostname"], "builder-01");
  std::vector<uint64_t> expected;
  for (uint64_t s = 1; s <= 50; ++s) expected.push_back(s);
  EXPECT_EQ(server_->event_seqs(), expected);
  EXPECT_EQ(server_->frames()[2]["message"], "event 1");
  EXPECT_TRUE(link_->connected());
  EXPECT_EQ(link_->counters().connects, 1u);
  EXPECT_EQ(link_->counters().events_sent, 50u);

  // Appended while connected: sent once notified.
  append(51, 53);
  link_->notify_appended();
  ASSERT_TRUE(run_until(*loop_, [&] { return link_->acked_seq() == 53; }));
  EXPECT_EQ(outbox_size(), 0u);
  EXPECT_EQ(server_->event_seqs().back(), 53u);
}

TEST_F(LinkTest, NoMoreThanTheWindowIsInFlight) {
  FakeServer::Options so;
  so.hold_acks = true;
  start_server(so);
  append(1, 12);
  auto o = link_options(server_->url());
  o.window = 5;
  start_link(o);
  ASSERT_TRUE(run_until(*loop_, [&] { return server_->event_seqs().size() == 5; }));
  // Give the link every chance to overrun the window: it must not.
  run_until(*loop_, [] { return false; }, std::chrono::seconds(1));
  EXPECT_EQ(server_->event_seqs().size(), 5u);
  EXPECT_EQ(outbox_size(), 12u);
  server_->release_acks();  // acks 5, then each further event
  ASSERT_TRUE(run_until(*loop_, [&] { return outbox_size() == 0; }));
  EXPECT_EQ(server_->event_seqs().size(), 12u);
  EXPECT_EQ(link_->acked_seq(), 12u);
}

TEST_F(LinkTest, ReconnectsAfterTheServerClosesAndResendsWhatWasNotAcked) {
  FakeServer::Options so;
  so.kick_after_events = 10;
  start_server(so);
  append(1, 30);
  start_link(link_options(server_->url()));
  ASSERT_TRUE(run_until(*loop_, [&] { return outbox_size() == 0; }));
  EXPECT_EQ(server_->connections(), 2);
  EXPECT_EQ(link_->counters().connects, 2u);
  EXPECT_GE(link_->counters().disconnects, 1u);
  EXPECT_EQ(server_->stored(), 30u);
  // The second hello follows the kick; the second welcome's acked_seq made
  // the link continue without gaps (resends of stored events are allowed).
  auto seqs = server_->event_seqs();
  uint64_t highest = 0;
  for (uint64_t s : seqs) {
    EXPECT_LE(s, highest + 1);
    highest = std::max(highest, s);
  }
  EXPECT_EQ(highest, 30u);
  int hellos = 0;
  for (auto& t : server_->types()) hellos += t == "hello";
  EXPECT_EQ(hellos, 2);
}

TEST_F(LinkTest, ServerAheadOfAFreshOutboxRenumbersWaitingEvents) {
  FakeServer::Options so;
  so.stored = 41;  // state.db was lost; the server has 41 events from us
  start_server(so);
  append(1, 3);
  start_link(link_options(server_->url()));
  ASSERT_TRUE(run_until(*loop_, [&] { return outbox_size() == 0; }));
  EXPECT_EQ(server_->event_seqs(), (std::vector<uint64_t>{42, 43, 44}));
  EXPECT_EQ(server_->frames().back()["message"], "event 3");
  EXPECT_EQ(*outbox_->append(event(4)), 45u);
}

TEST_F(LinkTest, RefusedCredentialRetriesAtTheLongestDelay) {
  FakeServer::Options so;
  so.refuse = std::make_pair("unauthorized", "unknown host or wrong credential");
  start_server(so);
  start_link(link_options(server_->url()));
  ASSERT_TRUE(run_until(*loop_, [&] { return server_->connections() >= 3; }));
  EXPECT_FALSE(link_->connected());
  EXPECT_EQ(link_->counters().connects, 0u);
  EXPECT_GE(link_->counters().server_errors, 2u);
  EXPECT_EQ(link_->last_error(), "the server refused: unauthorized: unknown host or wrong credential");
}

TEST_F(LinkTest, CommandsAreHandedOverAndResultsSent) {
  start_server();
  std::vector<protocol::Command> got;
  LinkCallbacks cb;
  cb.on_command = [&](const protocol::Command& c) { got.push_back(c); };
  start_link(link_options(server_->url()), cb);
  ASSERT_TRUE(run_until(*loop_, [&] { return link_->connected(); }));
  server_->send({{"type", "command"}, {"id", "c-17"}, {"action", "restart"}, {"container", "deb12"}});
  ASSERT_TRUE(run_until(*loop_, [&] { return !got.empty(); }));
  EXPECT_EQ(got[0].id, "c-17");
  EXPECT_EQ(got[0].action, "restart");
  EXPECT_EQ(got[0].container, "deb12");
  link_->send_command_result({"c-17", true, "deb12 restarted"});
  ASSERT_TRUE(run_until(*loop_, [&] { return !server_->frames().empty() && server_->types().back() == "command_result"; }));
  EXPECT_EQ(server_->frames().back()["id"], "c-17");
  EXPECT_EQ(server_->frames().back()["ok"], true);
  auto hello = server_->frames()[0];
  EXPECT_EQ(hello["capabilities"], nlohmann::json({"events", "commands"}));
}

TEST_F(LinkTest, ResultsProducedWhileDisconnectedAreSentAfterTheNextWelcome) {
  start_server();
  LinkCallbacks cb;
  cb.on_command = [](const protocol::Command&) {};
  start_link(link_options(server_->url()), cb);
  ASSERT_TRUE(run_until(*loop_, [&] { return link_->connected(); }));
  server_->options().welcome = false;
  server_->kick();
  ASSERT_TRUE(run_until(*loop_, [&] { return !link_->connected(); }));
  link_->send_command_result({"c-1", false, "deb12 is not defined"});
  server_->options().welcome = true;
  ASSERT_TRUE(run_until(*loop_, [&] {
    return !server_->frames().empty() && server_->types().back() == "command_result";
  }));
  EXPECT_EQ(server_->frames().back()["id"], "c-1");
  EXPECT_EQ(server_->frames().back()["message"], "deb12 is not defined");
}

TEST_F(LinkTest, HeartbeatsFollowTheServersInterval) {
  FakeServer::Options so;
  so.heartbeat_s = 1;
  start_server(so);
  LinkCallbacks cb;
  cb.heartbeat = [] {
    protocol::Heartbeat h;
    h.time = 1795406470000;
    h.load = {0.5, 0.25, 0.125};
    h.uptime_s = 42;
    return h;
  };
  start_link(link_options(server_->url()), cb);
  ASSERT_TRUE(run_until(*loop_, [&] { return !server_->frames().empty() && server_->types().back() == "heartbeat"; }));
  EXPECT_EQ(server_->frames().back()["uptime_s"], 42);
  EXPECT_EQ(server_->frames().back()["load"][1], 0.25);
  EXPECT_EQ(link_->counters().heartbeats_sent, 1u);
}

TEST_F(LinkTest, ASilentServerIsLeftAfterTheConnectTimeout) {
  FakeServer::Options so;
  so.welcome = false;
  start_server(so);
  auto o = link_options(server_->url());
  o.connect_timeout = milliseconds(200);
  start_link(o);
  ASSERT_TRUE(run_until(*loop_, [&] { return server_->connections() >= 2; }));
  EXPECT_EQ(link_->last_error(), "no welcome within 200 ms");
  EXPECT_FALSE(link_->connected());
}

TEST_F(LinkTest, KeepsRetryingARefusedConnection) {
  // A port nobody listens on: bind, note the port, close.
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(s, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t alen = sizeof(addr);
  ASSERT_EQ(::getsockname(s, reinterpret_cast<sockaddr*>(&addr), &alen), 0);
  ::close(s);
  start_link(link_options("ws://127.0.0.1:" + std::to_string(ntohs(addr.sin_port))));
  ASSERT_TRUE(run_until(*loop_, [&] { return link_->counters().disconnects >= 3; }));
  EXPECT_FALSE(link_->connected());
  EXPECT_FALSE(link_->last_error().empty());
}

TEST(ServerUrl, Parses) {
  auto u = parse_server_url("https://farm.example:8443/base/");
  ASSERT_TRUE(u) << u.error().message();
  EXPECT_TRUE(u->tls);
  EXPECT_EQ(u->host, "farm.example");
  EXPECT_EQ(u->port, 8443);
  EXPECT_EQ(u->path, "/base/agent");
  u = parse_server_url("ws://[::1]:9000");
  ASSERT_TRUE(u);
  EXPECT_FALSE(u->tls);
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->path, "/agent");
  u = parse_server_url("http://farm");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->port, 80);
  u = parse_server_url("WSS://farm");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(parse_server_url("ftp://farm").error().message(),
            "server URL 'ftp://farm': expected ws://, wss://, http:// or https://");
  EXPECT_EQ(parse_server_url("ws://farm:70000").error().message(), "server URL 'ws://farm:70000': bad port '70000'");
  EXPECT_EQ(parse_server_url("ws://:80").error().message(), "server URL 'ws://:80': no host name");
  EXPECT_FALSE(parse_server_url("ws://u@farm"));
  EXPECT_FALSE(parse_server_url("ws://farm/?x=1"));
}

}  // namespace
}  // namespace farmhand::agent
