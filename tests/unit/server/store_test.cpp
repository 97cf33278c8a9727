#include "server/store.h"

#include <gtest/gtest.h>

#include "../temp_dir.h"
#include "server/auth.h"

namespace farmhand::server {
namespace {

constexpr int64_t kNow = 1795406400000;
constexpr int64_t kHour = 3600 * 1000;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = Store::open((dir_.path() / "server.db").string());
    ASSERT_TRUE(s.ok()) << s.error().message();
    store_.emplace(std::move(*s));
  }
  Store& store() { return *store_; }

  std::string enroll(const std::string& host) {
    auto t = store().create_token(host, kNow, kHour);
    EXPECT_TRUE(t.ok());
    auto e = store().enroll(t->token, kNow);
    EXPECT_TRUE(e.ok() && e->has_value());
    return (*e)->credential;
  }

  protocol::Event event(uint64_t seq, std::string kind = "agent_started") {
    protocol::Event e;
    e.seq = seq;
    e.time = kNow + static_cast<int64_t>(seq);
    e.kind = std::move(kind);
    e.message = "m" + std::to_string(seq);
    return e;
  }

  void store_events(const std::string& host, uint64_t from, uint64_t to, const std::string& kind = "agent_started") {
    ASSERT_TRUE(store()
                    .transaction([&]() -> Status {
                      for (uint64_t s = from; s <= to; ++s) {
                        auto id = store().insert_event(host, event(s, kind), kNow);
                        if (!id) return id.error();
                      }
                      return {};
                    })
                    .ok());
  }

  test::TempDir dir_;
  std::optional<Store> store_;
};

TEST_F(StoreTest, TokenIsSingleUseAndGivesACredential) {
  auto t = store().create_token("builder-01", kNow, kHour);
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(looks_like_secret(t->token, kTokenPrefix));
  auto e = store().enroll(t->token, kNow + 1);
  ASSERT_TRUE(e.ok());
  ASSERT_TRUE(e->has_value());
  EXPECT_EQ((*e)->host, "builder-01");
  EXPECT_TRUE(looks_like_secret((*e)->credential, kCredentialPrefix));
  EXPECT_TRUE(*store().verify_credential("builder-01", (*e)->credential));
  EXPECT_FALSE(*store().verify_credential("builder-01", (*e)->credential + "0"));
  EXPECT_FALSE(*store().verify_credential("builder-02", (*e)->credential));
  auto again = store().enroll(t->token, kNow + 2);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->has_value());
  auto list = store().list_tokens(kNow + 3);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].state, "used");
}

TEST_F(StoreTest, ExpiredAndRevokedTokensAreRefused) {
  auto expiring = store().create_token("a", kNow, kHour);
  auto revoked = store().create_token("b", kNow, kHour);
  auto valid = store().create_token("c", kNow, kHour);
  ASSERT_TRUE(*store().revoke_token(revoked->id, kNow));
  EXPECT_FALSE(*store().revoke_token(revoked->id, kNow));  // already
  EXPECT_FALSE(store().enroll(expiring->token, kNow + kHour)->has_value());
  EXPECT_FALSE(store().enroll(revoked->token, kNow)->has_value());
  EXPECT_FALSE(store().enroll("fht_" + std::string(48, '0'), kNow)->has_value());
  EXPECT_FALSE(store().enroll("garbage", kNow)->has_value());
  auto list = store().list_tokens(kNow + kHour);
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[0].state, "expired");
  EXPECT_EQ((*list)[1].state, "revoked");
  EXPECT_EQ((*list)[2].state, "expired");
  EXPECT_EQ((*store().list_tokens(kNow))[2].state, "valid");
  EXPECT_EQ(*store().revoke_tokens_for("c", kNow), 1);
  EXPECT_FALSE(store().enroll(valid->token, kNow)->has_value());
}

TEST_F(StoreTest, EnrollingAgainReplacesTheCredential) {
  std::string first = enroll("builder-01");
  std::string second = enroll("builder-01");
  EXPECT_NE(first, second);
  EXPECT_FALSE(*store().verify_credential("builder-01", first));
  EXPECT_TRUE(*store().verify_credential("builder-01", second));
  EXPECT_EQ(**store().credential_hash("builder-01"), hash_secret(second));
}

TEST_F(StoreTest, RemovingAHostDeletesItsCredentialButKeepsItsEvents) {
  std::string cred = enroll("builder-01");
  store_events("builder-01", 1, 3);
  EXPECT_TRUE(*store().remove_host("builder-01"));
  EXPECT_FALSE(*store().remove_host("builder-01"));
  EXPECT_FALSE(*store().verify_credential("builder-01", cred));
  EXPECT_FALSE(store().credential_hash("builder-01")->has_value());
  EXPECT_TRUE(store().credential_hashes()->empty());
  EXPECT_EQ(*store().acked_seq("builder-01"), 3u);
  EXPECT_TRUE(store().list_hosts()->empty());
}

TEST_F(StoreTest, EventsAreUniquePerHostAndSeq) {
  enroll("a");
  EXPECT_EQ(*store().acked_seq("a"), 0u);
  store_events("a", 1, 5);
  store_events("b", 1, 2);
  EXPECT_EQ(*store().acked_seq("a"), 5u);
  EXPECT_EQ(*store().acked_seq("b"), 2u);
  int64_t dup = -1;
  ASSERT_TRUE(store()
                  .transaction([&]() -> Status {
                    auto id = store().insert_event("a", event(3), kNow);
                    if (!id) return id.error();
                    dup = *id;
                    return {};
                  })
                  .ok());
  EXPECT_EQ(dup, 0);
  EventQuery q;
  q.host = "a";
  q.limit = 1000;
  EXPECT_EQ(store().query_events(q)->events.size(), 5u);
  auto host = store().find_host("a");
  ASSERT_TRUE(host->has_value());
  EXPECT_EQ((*host)->acked_seq, 5u);
}

TEST_F(StoreTest, EventPagesAreNewestFirstWithFilters) {
  store_events("a", 1, 3, "container_started");
  store_events("b", 1, 2, "device_attached");
  store_events("a", 4, 5, "device_attached");
  EventQuery q;
  q.limit = 3;
  auto page = store().query_events(q);
  ASSERT_EQ(page->events.size(), 3u);
  EXPECT_EQ(page->events[0].host, "a");
  EXPECT_EQ(page->events[0].event.seq, 5u);
  EXPECT_EQ(page->events[2].host, "b");
  EXPECT_EQ(page->events[2].event.seq, 2u);
  ASSERT_TRUE(page->next.has_value());
  q.before = page->next;
  auto second = store().query_events(q);
  ASSERT_EQ(second->events.size(), 3u);
  EXPECT_EQ(second->events[0].host, "b");
  EXPECT_EQ(second->events[0].event.seq, 1u);
  q.before = second->next;
  auto last = store().query_events(q);
  ASSERT_EQ(last->events.size(), 1u);
  EXPECT_FALSE(last->next.has_value());

  EventQuery kinds;
  kinds.kind = "device_attached";
  kinds.host = "a";
  auto filtered = store().query_events(kinds);
  ASSERT_EQ(filtered->events.size(), 2u);
  EXPECT_EQ(filtered->events[0].event.seq, 5u);
  EXPECT_EQ(filtered->events[1].event.seq, 4u);
  EXPECT_FALSE(filtered->next.has_value());

  nlohmann::json j = event_json(filtered->events[0]);
  EXPECT_EQ(j["host"], "a");
  EXPECT_EQ(j["seq"], 5);
  EXPECT_EQ(j["kind"], "device_attached");
  EXPECT_EQ(j["message"], "m5");
  EXPECT_FALSE(j.contains("container"));
}

TEST_F(StoreTest, HeartbeatsKeepAHistoryAndTheLatest) {
  enroll("a");
  for (int i = 0; i < 3; ++i) {
    protocol::Heartbeat hb;
    hb.time = kNow + i * 10000;
    hb.load = {0.5, 0.25, static_cast<double>(i)};
    hb.uptime_s = static_cast<uint64_t>(100 + i);
    ASSERT_TRUE(store().transaction([&] { return store().insert_heartbeat("a", hb, kNow + i * 10000); }).ok());
  }
  auto all = store().heartbeats_since("a", 0);
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0]["uptime_s"], 100);
  EXPECT_EQ((*all)[2]["uptime_s"], 102);
  EXPECT_EQ(store().heartbeats_since("a", kNow + 10000)->size(), 2u);
  EXPECT_TRUE(store().heartbeats_since("b", 0)->empty());
  auto host = store().find_host("a");
  ASSERT_TRUE((*host)->heartbeat.has_value());
  EXPECT_EQ(nlohmann::json::parse(*(*host)->heartbeat)["uptime_s"], 102);
  EXPECT_EQ(*(*host)->last_seen, kNow + 20000);
  EXPECT_EQ(*store().prune_heartbeats(kNow + 10000), 1);
  EXPECT_EQ(store().heartbeats_since("a", 0)->size(), 2u);
}

TEST_F(StoreTest, UsersAndSessions) {
  ASSERT_FALSE(*store().put_user("ada", Role::kAdmin, "pw1"));
  ASSERT_FALSE(*store().put_user("bob", Role::kViewer, "pw2"));
  auto ada = store().check_password("ada", "pw1");
  ASSERT_TRUE(ada->has_value());
  EXPECT_EQ((*ada)->role, Role::kAdmin);
  EXPECT_FALSE(store().check_password("ada", "pw2")->has_value());
  EXPECT_FALSE(store().check_password("nobody", "pw1")->has_value());
  EXPECT_EQ(store().list_users()->size(), 2u);

  auto session = store().create_session("bob", kNow);
  ASSERT_TRUE(session.ok());
  EXPECT_TRUE(looks_like_secret(*session, kSessionPrefix));
  auto who = store().session_user(*session, kNow + kHour);
  ASSERT_TRUE(who->has_value());
  EXPECT_EQ((*who)->name, "bob");
  EXPECT_EQ((*who)->role, Role::kViewer);
  EXPECT_FALSE(store().session_user(*session, kNow + kSessionLifetimeMs)->has_value());  // expired
  EXPECT_FALSE(store().session_user("fhs_" + std::string(48, 'a'), kNow)->has_value());

  auto other = store().create_session("bob", kNow);
  ASSERT_TRUE(store().delete_session(*other).ok());
  EXPECT_FALSE(store().session_user(*other, kNow)->has_value());

  // A new password ends the sessions; so does removing the user.
  auto s1 = store().create_session("ada", kNow);
  EXPECT_TRUE(*store().put_user("ada", Role::kViewer, "pw3"));
  EXPECT_FALSE(store().session_user(*s1, kNow)->has_value());
  auto s2 = store().create_session("ada", kNow);
  EXPECT_TRUE(*store().remove_user("ada"));
  EXPECT_FALSE(store().session_user(*s2, kNow)->has_value());
  EXPECT_FALSE(*store().remove_user("ada"));
}

TEST_F(StoreTest, CommandsGetIdsAndResults) {
  protocol::Command c;
  c.action = "restart";
  c.container = "deb12";
  auto id1 = store().create_command("a", c, "ada", kNow);
  auto id2 = store().create_command("a", c, "ada", kNow);
  EXPECT_EQ(*id1, "c-1");
  EXPECT_EQ(*id2, "c-2");
  EXPECT_TRUE(store().finish_command("a", protocol::CommandResult{"c-1", true, "ok"}, kNow).ok());
  EXPECT_TRUE(store().finish_command("a", protocol::CommandResult{"bogus", true, "ok"}, kNow).ok());
}

TEST_F(StoreTest, InventoryAndLastSeen) {
  enroll("a");
  ASSERT_TRUE(store().set_inventory("a", R"({"time":1,"containers":[]})").ok());
  ASSERT_TRUE(store().set_last_seen("a", kNow).ok());
  auto h = store().find_host("a");
  EXPECT_EQ(*(*h)->inventory, R"({"time":1,"containers":[]})");
  EXPECT_EQ(*(*h)->last_seen, kNow);
  EXPECT_FALSE(store().find_host("zzz")->has_value());
}

}  // namespace
}  // namespace farmhand::server
