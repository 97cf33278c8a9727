// SQLite wrapper transactions, content hashes, machine ids and log redaction.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>

#include "tests/unit/temp_dir.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/sqlite.h"

namespace farmhand {
namespace {

namespace stdfs = std::filesystem;

using test::TempDir;

int64_t count_rows(sql::Database& db) {
  auto st = db.prepare("SELECT COUNT(*) FROM t");
  EXPECT_TRUE(st.ok());
  if (!st.ok()) return -1;
  auto row = st->step();
  EXPECT_TRUE(row.ok() && *row);
  return st->integer(0);
}

class SqliteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = sql::Database::open((dir_.path() / "test.db").string());
    ASSERT_TRUE(db.ok()) << db.error().message();
    db_.emplace(std::move(*db));
    ASSERT_TRUE(db_->exec("CREATE TABLE t(k TEXT PRIMARY KEY, v INTEGER, n TEXT)").ok());
  }
  TempDir dir_;
  std::optional<sql::Database> db_;
};

TEST_F(SqliteTest, TransactionCommitsOnSuccess) {
  auto s = db_->transaction([&]() -> Status {
    return db_->exec("INSERT INTO t(k, v) VALUES('a', 1)");
  });
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(count_rows(*db_), 1);
}

TEST_F(SqliteTest, TransactionRollsBackWhenTheBodyFails) {
  auto s = db_->transaction([&]() -> Status {
    if (auto e = db_->exec("INSERT INTO t(k, v) VALUES('a', 1)"); !e) return e;
    return fail("step two failed");
  });
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(), "step two failed");
  EXPECT_EQ(count_rows(*db_), 0);
  // The connection is usable afterwards: no transaction was left open.
  EXPECT_TRUE(db_->exec("BEGIN IMMEDIATE").ok());
  EXPECT_TRUE(db_->exec("COMMIT").ok());
}

TEST_F(SqliteTest, TransactionRollsBackOnAConstraintViolation) {
  ASSERT_TRUE(db_->exec("INSERT INTO t(k, v) VALUES('a', 1)").ok());
  auto s = db_->transaction([&]() -> Status {
    if (auto e = db_->exec("INSERT INTO t(k, v) VALUES('b', 2)"); !e) return e;
    return db_->exec("INSERT INTO t(k, v) VALUES('a', 3)");
  });
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(), "sqlite: UNIQUE constraint failed: t.k");
  EXPECT_EQ(count_rows(*db_), 1);
}

TEST_F(SqliteTest, StatementsBindAndReadBack) {
  auto ins = db_->prepare("INSERT INTO t(k, v, n) VALUES(?1, ?2, ?3)");
  ASSERT_TRUE(ins.ok());
  ins->bind(1, std::string_view("x\0y", 3)).bind(2, int64_t{-7}).bind_optional(3, std::nullopt);
  ASSERT_TRUE(ins->run().ok());
  EXPECT_EQ(db_->changes(), 1);
  ins->bind(1, "z").bind(2, int64_t{1} << 40).bind_optional(3, std::string("note"));
  ASSERT_TRUE(ins->run().ok());
  EXPECT_EQ(db_->last_insert_rowid(), 2);

  auto q = db_->prepare("SELECT k, v, n FROM t ORDER BY v");
  ASSERT_TRUE(q.ok());
  auto row = q->step();
  ASSERT_TRUE(row.ok() && *row);
  EXPECT_EQ(q->text(0), std::string("x\0y", 3));
  EXPECT_EQ(q->integer(1), -7);
  EXPECT_TRUE(q->is_null(2));
  EXPECT_EQ(q->text(2), "");
  row = q->step();
  ASSERT_TRUE(row.ok() && *row);
  EXPECT_EQ(q->text(0), "z");
  EXPECT_EQ(q->integer(1), int64_t{1} << 40);
  EXPECT_EQ(q->text(2), "note");
  row = q->step();
  ASSERT_TRUE(row.ok());
  EXPECT_FALSE(*row);
}

TEST_F(SqliteTest, PrepareErrorsNameTheProblem) {
  auto q = db_->prepare("SELECT nope FROM t");
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.error().message(), "sqlite prepare: no such column: nope");
}

TEST(SqliteOpen, UnopenableFileIsAnError) {
  auto db = sql::Database::open("/nonexistent-dir/farmhand/state.db");
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.error().message(),
            "cannot open database '/nonexistent-dir/farmhand/state.db': unable to open database file");
}

TEST(Sha256Hex, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string_view("\0", 1)),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
}

TEST(RandomId128Hex, IsAVersion4IdAndFresh) {
  std::set<std::string> seen;
  for (int i = 0; i < 64; ++i) {
    const std::string id = random_id128_hex();
    ASSERT_EQ(id.size(), 32u);
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
    EXPECT_EQ(id[12], '4') << id;
    EXPECT_NE(std::string("89ab").find(id[16]), std::string::npos) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 64u);
}

TEST(LogRedact, ReplacesEveryOccurrenceOfRegisteredSecrets) {
  // Registered secrets are process-wide: a fresh one per run keeps repeats honest.
  const std::string secret = "tok" + random_id128_hex();
  const std::string text = "token=" + secret + " and " + secret;
  EXPECT_EQ(log::redact(text), text);
  log::add_secret(secret);
  log::add_secret("");  // ignored, never matches everything
  EXPECT_EQ(log::redact(text), "token=*** and ***");
  EXPECT_EQ(log::redact(secret + secret), "******");
  EXPECT_EQ(log::redact("nothing secret"), "nothing secret");
}

TEST(LogRedact, APrefixSecretRegisteredFirstLeavesNothingOfTheLongerOne) {
  const std::string longer = "pw" + random_id128_hex();
  const std::string prefix = longer.substr(0, 10);
  log::add_secret(prefix);
  log::add_secret(longer);
  EXPECT_EQ(log::redact("a=" + longer + " b=" + prefix), "a=*** b=***");
}

}  // namespace
}  // namespace farmhand
