#include "agent/outbox.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "tests/unit/temp_dir.h"

namespace farmhand::agent {
namespace {

protocol::Event event(const std::string& message) {
  protocol::Event e;
  e.seq = 999;  // ignored by append
  e.time = 1795406460000;
  e.kind = "test";
  e.message = message;
  return e;
}

std::vector<uint64_t> seqs(Outbox& outbox, uint64_t after = 0) {
  auto p = outbox.pending(after, 1000);
  EXPECT_TRUE(p) << p.error().message();
  std::vector<uint64_t> out;
  for (auto& e : *p) out.push_back(e.seq);
  return out;
}

// Runs every behaviour test against both outboxes; `reopen` simulates an
// agent restart (a no-op for the memory outbox, which lives as long as the
// simulated agent).
class OutboxTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { open(); }
  void open() {
    if (GetParam()) {
      sqlite_.reset();
      auto o = SqliteOutbox::open((dir_.path() / "state.db").string());
      ASSERT_TRUE(o) << o.error().message();
      sqlite_ = std::move(o).value();
    } else if (!memory_) {
      memory_ = std::make_unique<MemoryOutbox>();
    }
  }
  Outbox& outbox() { return GetParam() ? static_cast<Outbox&>(*sqlite_) : *memory_; }
  uint64_t append(const std::string& message) {
    auto seq = outbox().append(event(message));
    EXPECT_TRUE(seq) << seq.error().message();
    return seq ? *seq : 0;
  }

  test::TempDir dir_;
  std::unique_ptr<SqliteOutbox> sqlite_;
  std::unique_ptr<MemoryOutbox> memory_;
};

TEST_P(OutboxTest, AppendNumbersFromOneAndKeepsEverything) {
  EXPECT_EQ(append("a"), 1u);
  EXPECT_EQ(append("b"), 2u);
  protocol::Event full = event("c");
  full.container = "deb12";
  full.device = "usb-FTDI";
  ASSERT_EQ(*outbox().append(full), 3u);
  auto p = outbox().pending(0, 10);
  ASSERT_TRUE(p);
  ASSERT_EQ(p->size(), 3u);
  full.seq = 3;
  EXPECT_EQ((*p)[2], full);
  EXPECT_EQ((*p)[0].message, "a");
  EXPECT_EQ((*p)[0].container, std::nullopt);
  EXPECT_EQ(*outbox().size(), 3u);
  EXPECT_EQ(*outbox().last_seq(), 3u);
}

TEST_P(OutboxTest, PendingPagesInOrder) {
  for (int i = 0; i < 10; ++i) append("e" + std::to_string(i));
  auto p = outbox().pending(3, 4);
  ASSERT_TRUE(p);
  std::vector<uint64_t> got;
  for (auto& e : *p) got.push_back(e.seq);
  EXPECT_EQ(got, (std::vector<uint64_t>{4, 5, 6, 7}));
  EXPECT_TRUE(outbox().pending(10, 5)->empty());
}

TEST_P(OutboxTest, AcknowledgeDeletesUpToSeqAndSeqsAreNeverReused) {
  for (int i = 0; i < 5; ++i) append("e");
  ASSERT_TRUE(outbox().acknowledge(3));
  EXPECT_EQ(seqs(outbox()), (std::vector<uint64_t>{4, 5}));
  ASSERT_TRUE(outbox().acknowledge(5));
  EXPECT_EQ(*outbox().size(), 0u);
  // Everything deleted: the next seq still follows on.
  EXPECT_EQ(append("f"), 6u);
}

TEST_P(OutboxTest, SeqsContinueAcrossRestartsEvenWhenEmpty) {
  for (int i = 0; i < 4; ++i) append("e");
  ASSERT_TRUE(outbox().acknowledge(4));
  open();
  EXPECT_EQ(*outbox().size(), 0u);
  EXPECT_EQ(append("after restart"), 5u);
  open();
  EXPECT_EQ(seqs(outbox()), (std::vector<uint64_t>{5}));
}

TEST_P(OutboxTest, ReconcileForgetsWhatTheServerHas) {
  for (int i = 0; i < 5; ++i) append("e");
  ASSERT_TRUE(outbox().reconcile(2));
  EXPECT_EQ(seqs(outbox()), (std::vector<uint64_t>{3, 4, 5}));
  EXPECT_EQ(append("f"), 6u);
}

TEST_P(OutboxTest, ReconcileWithAServerThatLostEventsRenumbersWhatWaits) {
  // The server's database was restored from a backup taken at seq 1: the
  // events it acknowledged after that are gone, and it takes seq 2 next.
  for (int i = 0; i < 5; ++i) append("e");
  ASSERT_TRUE(outbox().reconcile(3));
  ASSERT_TRUE(outbox().reconcile(1));
  EXPECT_EQ(seqs(outbox()), (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(append("f"), 4u);
  open();
  EXPECT_EQ(append("after restart"), 5u);
  // With nothing waiting, numbering simply continues after the server's.
  ASSERT_TRUE(outbox().reconcile(5));
  ASSERT_TRUE(outbox().reconcile(2));
  EXPECT_EQ(append("g"), 3u);
}

TEST_P(OutboxTest, ReconcileOnAFreshOutboxContinuesAfterTheServersSeq) {
  // state.db was deleted: the server already has 41 events from this host.
  ASSERT_TRUE(outbox().reconcile(41));
  EXPECT_EQ(*outbox().last_seq(), 41u);
  EXPECT_EQ(append("first after loss"), 42u);
  open();
  EXPECT_EQ(append("after restart"), 43u);
}

TEST_P(OutboxTest, ReconcileRenumbersEventsWrittenBeforeTheServerWasHeardFrom) {
  // state.db was deleted and the agent logged two events before connecting.
  append("agent started");
  append("device attached");
  ASSERT_TRUE(outbox().reconcile(41));
  auto p = outbox().pending(0, 10);
  ASSERT_TRUE(p);
  ASSERT_EQ(p->size(), 2u);
  EXPECT_EQ((*p)[0].seq, 42u);
  EXPECT_EQ((*p)[0].message, "agent started");
  EXPECT_EQ((*p)[1].seq, 43u);
  EXPECT_EQ(append("next"), 44u);
  open();
  EXPECT_EQ(append("after restart"), 45u);
}

INSTANTIATE_TEST_SUITE_P(Outboxes, OutboxTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& p) { return p.param ? "Sqlite" : "Memory"; });

TEST(SqliteOutbox, RefusesAnUnopenableFile) {
  test::TempDir dir;
  auto o = SqliteOutbox::open((dir.path() / "missing-dir" / "state.db").string());
  ASSERT_FALSE(o);
  EXPECT_NE(o.error().message().find("opening the outbox"), std::string::npos) << o.error().message();
}

}  // namespace
}  // namespace farmhand::agent
