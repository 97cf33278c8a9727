// StateStore on a real SQLite file in a temp dir.
#include "tests/unit/temp_dir.h"
#include "provisioner/state_store.h"
#include "provisioner/provisioner.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace farmhand::provisioner {
namespace {

namespace stdfs = std::filesystem;

using test::TempDir;

Cidr cidr(const char* text) { return Cidr::parse(text).value(); }

ContainerRecord rec(const std::string& name, Phase phase = Phase::kReady) {
  return {name, "{\"name\":\"" + name + "\"}", "debian-bookworm-amd64-0123456789ab", "copy", phase,
          0, 0};
}

class StateStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { reopen(); }
  void reopen() {
    store_.reset();
    auto s = StateStore::open(path());
    ASSERT_TRUE(s.ok()) << s.error().message();
    store_.emplace(std::move(*s));
  }
  std::string path() const { return (dir_.path() / "state.db").string(); }
  StateStore& store() { return *store_; }

  TempDir dir_;
  std::optional<StateStore> store_;
};

TEST_F(StateStoreTest, PutAndGetContainers) {
  EXPECT_TRUE(store().containers()->empty());
  EXPECT_FALSE(store().container("a")->has_value());
  ASSERT_TRUE(store().put_container(rec("b", Phase::kCreating)).ok());
  ASSERT_TRUE(store().put_container(rec("a")).ok());
  auto all = store().containers();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].name, "a");  // ordered by name
  EXPECT_EQ((*all)[1].name, "b");
  EXPECT_EQ((*all)[1].phase, Phase::kCreating);

  auto a = store().container("a");
  ASSERT_TRUE(a.ok() && a->has_value());
  const ContainerRecord& r = **a;
  EXPECT_EQ(r.spec_json, "{\"name\":\"a\"}");
  EXPECT_EQ(r.base_key, "debian-bookworm-amd64-0123456789ab");
  EXPECT_EQ(r.clone_method, "copy");
  EXPECT_EQ(r.phase, Phase::kReady);
  EXPECT_GT(r.created_at, 1600000000);
  EXPECT_EQ(r.updated_at, r.created_at);
}

TEST_F(StateStoreTest, PutUpdatesButKeepsCreationTime) {
  ASSERT_TRUE(store().put_container(rec("a", Phase::kCreating)).ok());
  const int64_t created = (*store().container("a"))->created_at;
  ContainerRecord changed = rec("a", Phase::kReady);
  changed.base_key = "debian-trixie-amd64-ffffffffffff";
  changed.clone_method = "overlay";
  changed.spec_json = "{}";
  changed.created_at = 5;  // ignored: the store keeps its own times
  ASSERT_TRUE(store().put_container(changed).ok());
  auto all = store().containers();
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].base_key, "debian-trixie-amd64-ffffffffffff");
  EXPECT_EQ((*all)[0].clone_method, "overlay");
  EXPECT_EQ((*all)[0].spec_json, "{}");
  EXPECT_EQ((*all)[0].phase, Phase::kReady);
  EXPECT_EQ((*all)[0].created_at, created);
  EXPECT_GE((*all)[0].updated_at, created);
}

TEST_F(StateStoreTest, SetPhase) {
  ASSERT_TRUE(store().put_container(rec("a", Phase::kCreating)).ok());
  for (Phase p : {Phase::kReady, Phase::kDestroying, Phase::kCreating}) {
    ASSERT_TRUE(store().set_phase("a", p).ok());
    EXPECT_EQ((*store().container("a"))->phase, p);
  }
  EXPECT_TRUE(store().set_phase("missing", Phase::kReady).ok());
  EXPECT_FALSE(store().container("missing")->has_value());
  EXPECT_EQ(to_string(Phase::kCreating), "creating");
  EXPECT_EQ(to_string(Phase::kReady), "ready");
  EXPECT_EQ(to_string(Phase::kDestroying), "destroying");
}

TEST_F(StateStoreTest, SubnetsCanBeSwappedInOneCall) {
  ASSERT_TRUE(store().set_subnets({{"a", cidr("192.168.80.0/24")}, {"b", cidr("192.168.81.0/24")}}).ok());
  auto s = store().set_subnets({{"a", cidr("192.168.81.0/24")}, {"b", cidr("192.168.80.0/24")}});
  ASSERT_TRUE(s.ok()) << s.error().message();
  auto got = store().subnets();
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, (std::map<std::string, Cidr>{{"a", cidr("192.168.81.0/24")},
                                                {"b", cidr("192.168.80.0/24")}}));
}

TEST_F(StateStoreTest, SetSubnetsLeavesOtherNamesAlone) {
  ASSERT_TRUE(store().set_subnets({{"a", cidr("192.168.80.0/24")}, {"b", cidr("192.168.81.0/24")}}).ok());
  ASSERT_TRUE(store().set_subnets({{"b", cidr("192.168.82.0/24")}}).ok());
  EXPECT_EQ(*store().subnets(), (std::map<std::string, Cidr>{{"a", cidr("192.168.80.0/24")},
                                                              {"b", cidr("192.168.82.0/24")}}));
}

TEST_F(StateStoreTest, ConflictingSubnetRollsBackTheWholeCall) {
  ASSERT_TRUE(store().set_subnets({{"a", cidr("192.168.80.0/24")}}).ok());
  auto s = store().set_subnets({{"b", cidr("192.168.81.0/24")}, {"c", cidr("192.168.80.0/24")}});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(), "sqlite step: UNIQUE constraint failed: subnets.subnet");
  EXPECT_EQ(*store().subnets(), (std::map<std::string, Cidr>{{"a", cidr("192.168.80.0/24")}}));
  // The store is still usable afterwards.
  EXPECT_TRUE(store().set_subnets({{"b", cidr("192.168.81.0/24")}}).ok());
}

TEST_F(StateStoreTest, DeleteFreesTheSubnet) {
  ASSERT_TRUE(store().put_container(rec("a")).ok());
  ASSERT_TRUE(store().put_container(rec("keep")).ok());
  ASSERT_TRUE(store().set_subnets({{"a", cidr("192.168.80.0/24")}, {"keep", cidr("192.168.81.0/24")}}).ok());
  ASSERT_TRUE(store().delete_container("a").ok());
  EXPECT_FALSE(store().container("a")->has_value());
  EXPECT_TRUE(store().container("keep")->has_value());
  EXPECT_EQ(*store().subnets(), (std::map<std::string, Cidr>{{"keep", cidr("192.168.81.0/24")}}));
  EXPECT_TRUE(store().set_subnets({{"new", cidr("192.168.80.0/24")}}).ok());
  EXPECT_TRUE(store().delete_container("never-existed").ok());
}

TEST_F(StateStoreTest, JournalRecordsStepsPerApply) {
  EXPECT_EQ(*store().last_apply_id(), 0);
  auto apply = store().begin_apply();
  ASSERT_TRUE(apply.ok());
  EXPECT_EQ(*apply, 1);
  EXPECT_EQ(*store().last_apply_id(), 1);
  auto e1 = store().journal_begin(*apply, "a", "clone");
  auto e2 = store().journal_begin(*apply, "a", "boot");
  ASSERT_TRUE(e1.ok() && e2.ok());
  ASSERT_TRUE(store().journal_end(*e1, true, "").ok());
  ASSERT_TRUE(store().journal_end(*e2, false, "machinectl start failed").ok());
  auto open_entry = store().journal_begin(*apply, "b", "bootstrap");
  ASSERT_TRUE(open_entry.ok());

  auto j = store().journal(*apply);
  ASSERT_TRUE(j.ok());
  ASSERT_EQ(j->size(), 3u);
  EXPECT_EQ((*j)[0].id, *e1);
  EXPECT_EQ((*j)[0].apply_id, *apply);
  EXPECT_EQ((*j)[0].container, "a");
  EXPECT_EQ((*j)[0].step, "clone");
  EXPECT_EQ((*j)[0].status, "done");
  EXPECT_EQ((*j)[0].detail, "");
  EXPECT_GT((*j)[0].started_ms, 0);
  EXPECT_GE((*j)[0].finished_ms, (*j)[0].started_ms);
  EXPECT_EQ((*j)[1].status, "failed");
  EXPECT_EQ((*j)[1].detail, "machinectl start failed");
  EXPECT_EQ((*j)[2].status, "begun");
  EXPECT_EQ((*j)[2].finished_ms, 0);

  auto second = store().begin_apply();
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*second, 2);
  EXPECT_TRUE(store().journal(*second)->empty());
}

TEST_F(StateStoreTest, JournalRefusesAnUnknownApply) {
  auto e = store().journal_begin(42, "a", "clone");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().message(), "sqlite step: FOREIGN KEY constraint failed");
}

TEST_F(StateStoreTest, ReopenKeepsEverything) {
  ASSERT_TRUE(store().put_container(rec("a", Phase::kDestroying)).ok());
  ASSERT_TRUE(store().set_subnets({{"a", cidr("192.168.90.0/24")}}).ok());
  auto apply = store().begin_apply();
  ASSERT_TRUE(apply.ok());
  ASSERT_TRUE(store().journal_begin(*apply, "a", "destroy").ok());
  reopen();
  auto a = store().container("a");
  ASSERT_TRUE(a.ok() && a->has_value());
  EXPECT_EQ((*a)->phase, Phase::kDestroying);
  EXPECT_EQ(*store().subnets(), (std::map<std::string, Cidr>{{"a", cidr("192.168.90.0/24")}}));
  EXPECT_EQ(*store().last_apply_id(), *apply);
  EXPECT_EQ(store().journal(*apply)->size(), 1u);
}

TEST_F(StateStoreTest, SchemaVersionIsRecorded) {
  auto st = store().db().prepare("PRAGMA user_version");
  ASSERT_TRUE(st.ok());
  ASSERT_TRUE(*st->step());
  EXPECT_EQ(st->integer(0), 5);
}

TEST_F(StateStoreTest, PayloadRecordsAreKeptPerContainerAndGoWithIt) {
  ContainerRecord r;
  r.name = "a";
  r.spec_json = "{}";
  ASSERT_TRUE(store().put_container(r).ok());
  ASSERT_TRUE(store().put_payload({"a", PayloadKind::kSource, "builder", "f1", "c0ffee", 0}).ok());
  ASSERT_TRUE(store().put_payload({"a", PayloadKind::kStep, "build", "f2", "", 0}).ok());
  ASSERT_TRUE(store().put_payload({"b", PayloadKind::kStep, "build", "f3", "", 0}).ok());
  ASSERT_TRUE(store().put_payload({"a", PayloadKind::kSource, "builder", "f4", "beef", 0}).ok());
  auto a = store().payload("a");
  ASSERT_TRUE(a.ok());
  ASSERT_EQ(a->size(), 2u);
  EXPECT_EQ((*a)[0].kind, PayloadKind::kSource);
  EXPECT_EQ((*a)[0].fingerprint, "f4");
  EXPECT_EQ((*a)[0].revision, "beef");
  EXPECT_EQ((*a)[1].name, "build");
  ASSERT_TRUE(store().delete_payload("a", PayloadKind::kStep, "build").ok());
  EXPECT_EQ(store().payload("a")->size(), 1u);
  ASSERT_TRUE(store().delete_container("a").ok());
  EXPECT_TRUE(store().payload("a")->empty());
  EXPECT_EQ(store().payload("b")->size(), 1u);
}

TEST_F(StateStoreTest, PayloadStatusIsUpsertedAndGoesWithItsContainer) {
  EXPECT_FALSE(store().payload_status("a")->has_value());
  ASSERT_TRUE(store().put_payload_status("a", {"running", "setup build", "", 5}).ok());
  ASSERT_TRUE(store().put_payload_status("a", {"failed", "setup build", "exited with status 2", 6}).ok());
  auto st = store().payload_status("a");
  ASSERT_TRUE(st.ok() && st->has_value());
  EXPECT_EQ((*st)->state, "failed");
  EXPECT_EQ((*st)->message, "exited with status 2");
  EXPECT_EQ((*st)->updated_ms, 6);
  EXPECT_FALSE(store().put_payload_status("a", {"bogus", "", "", 7}).ok());  // the CHECK holds
  ASSERT_TRUE(store().delete_container("a").ok());
  EXPECT_FALSE(store().payload_status("a")->has_value());
}

TEST(DescribePayload, OneLineForEachState) {
  ContainerStatus::Payload p{"failed", "setup lws-configure", "setup step \"lws-configure\" exited with status 1:\n"
                             "CMake Error at CMakeLists.txt:12 (message):\n  GnuTLS not found\n\n", 0};
  EXPECT_EQ(describe_payload(p), "step lws-configure failed: GnuTLS not found");
  p.time_ms = 1795406460000;
  EXPECT_NE(describe_payload(p).find("step lws-configure failed at 20"), std::string::npos) << describe_payload(p);
  p = {"running", "restart sai-builder.service", "", 0};
  EXPECT_EQ(describe_payload(p), "running restart sai-builder.service");
  p = {"interrupted", "setup lws-build", "", 0};
  EXPECT_EQ(describe_payload(p), "interrupted at step lws-build: the next apply carries on");
  EXPECT_EQ(last_line("one\ntwo\n\n"), "two");
}

TEST_F(StateStoreTest, SettingsAreUpserted) {
  EXPECT_FALSE(store().setting("config_commit")->has_value());
  ASSERT_TRUE(store().set_setting("config_commit", "abc").ok());
  ASSERT_TRUE(store().set_setting("config_commit", "def").ok());
  EXPECT_EQ(store().setting("config_commit")->value_or(""), "def");
}

TEST_F(StateStoreTest, RefusesANewerSchema) {
  ASSERT_TRUE(store().db().exec("PRAGMA user_version=6").ok());
  store_.reset();
  auto s = StateStore::open(path());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(), "state database '" + path() +
                                     "' has schema version 6, newer than this farmhand "
                                     "understands (5)");
}

TEST(StateStoreOpen, UnopenablePathIsAnError) {
  auto s = StateStore::open("/nonexistent-dir/state.db");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(),
            "cannot open database '/nonexistent-dir/state.db': unable to open database file");
}

}  // namespace
}  // namespace farmhand::provisioner
