// state_db on real SQLite files: a database of every shape state.db has
// had (each user_version the provisioner wrote, and the tables the lease
// store and the outbox created without one) is written here with raw SQL,
// holding a few rows, then opened through state_db::open.
#include "common/state_db.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "common/sqlite.h"
#include "tests/unit/temp_dir.h"

namespace farmhand::state_db {
namespace {

// The shapes, as each commit shipped them (git log -p of
// provisioner/state_store.cpp, udev/leases.cpp and agent/outbox.cpp).

// user_version 1 (1ba5f95).
constexpr const char* kProvisionerV1 = R"SQL(
CREATE TABLE containers(
  name TEXT PRIMARY KEY, spec TEXT NOT NULL, base_key TEXT NOT NULL, clone_method TEXT NOT NULL,
  phase TEXT NOT NULL CHECK (phase IN ('creating', 'ready', 'destroying')),
  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE subnets(name TEXT PRIMARY KEY, subnet TEXT NOT NULL UNIQUE);
CREATE TABLE applies(id INTEGER PRIMARY KEY AUTOINCREMENT, started_ms INTEGER NOT NULL);
CREATE TABLE journal(
  id INTEGER PRIMARY KEY AUTOINCREMENT, apply_id INTEGER NOT NULL REFERENCES applies(id),
  container TEXT NOT NULL, step TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('begun', 'done', 'failed')),
  started_ms INTEGER NOT NULL, finished_ms INTEGER, detail TEXT NOT NULL DEFAULT '');
CREATE INDEX journal_by_apply ON journal(apply_id);
INSERT INTO containers VALUES ('fw-build', '{"name":"fw-build"}', 'debian-bookworm-amd64-0123', 'copy',
                               'ready', 1795406100, 1795406200);
INSERT INTO subnets VALUES ('fw-build', '192.168.90.0/24');
INSERT INTO applies(started_ms) VALUES (1795406100000), (1795406300000);
INSERT INTO journal(apply_id, container, step, status, started_ms, finished_ms)
  VALUES (2, 'fw-build', 'create', 'done', 1795406300000, 1795406301000);
PRAGMA user_version=1;
)SQL";

// user_version 2 as first shipped (8323956): payload and settings.
constexpr const char* kProvisionerV2 = R"SQL(
CREATE TABLE payload(
  container TEXT NOT NULL, kind TEXT NOT NULL CHECK (kind IN ('source', 'file', 'step', 'service')),
  name TEXT NOT NULL, fingerprint TEXT NOT NULL, revision TEXT NOT NULL DEFAULT '',
  updated_at INTEGER NOT NULL, PRIMARY KEY (container, kind, name));
CREATE TABLE settings(key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO payload VALUES ('fw-build', 'source', 'lws', 'fp1', 'abc123', 1795406200);
INSERT INTO settings VALUES ('config_commit', 'def456');
PRAGMA user_version=2;
)SQL";

// Still user_version 2, with payload_status added (6a453e9).
constexpr const char* kPayloadStatus = R"SQL(
CREATE TABLE payload_status(
  container TEXT PRIMARY KEY, state TEXT NOT NULL CHECK (state IN ('running', 'ok', 'failed')),
  item TEXT NOT NULL DEFAULT '', message TEXT NOT NULL DEFAULT '', updated_ms INTEGER NOT NULL);
INSERT INTO payload_status VALUES ('fw-build', 'failed', 'setup lws-build', 'exit 2', 1795406400000);
)SQL";

// Without a version: the device tables, first with a CHECK of two states (150ae74) ...
constexpr const char* kDeviceEvents = R"SQL(
CREATE TABLE device_events (
  id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, action TEXT NOT NULL,
  container TEXT NOT NULL, devnode TEXT NOT NULL, syspath TEXT NOT NULL,
  latency_us INTEGER NOT NULL, detail TEXT NOT NULL);
INSERT INTO device_events (at_ms, action, container, devnode, syspath, latency_us, detail)
  VALUES (1795406100000, 'attach', 'fw-build', '/dev/ttyUSB0', '/sys/x/ttyUSB0', 1200, '');
)SQL";
constexpr const char* kLeaseColumns = R"SQL(
  syspath TEXT PRIMARY KEY, container TEXT NOT NULL, rule TEXT NOT NULL, subsystem TEXT NOT NULL,
  devnode TEXT NOT NULL, major INTEGER NOT NULL, minor INTEGER NOT NULL, links TEXT NOT NULL,
  grp TEXT NOT NULL, mode INTEGER NOT NULL,
)SQL";
constexpr const char* kLeaseRows = R"SQL(
INSERT INTO device_leases VALUES
  ('/sys/x/ttyUSB0', 'fw-build', '/containers/0/devices/0', 'tty', '/dev/ttyUSB0', 188, 0,
   '["/dev/serial/by-id/usb-FTDI-if00"]', 'dialout', 432, 'attached', 1795406100000),
  ('/sys/x/ttyUSB1', 'fw-build', '/containers/0/devices/0', 'tty', '/dev/ttyUSB1', 188, 1,
   '[]', 'dialout', 432, 'pending', 1795406100000);
)SQL";
const std::string kOldLeases = std::string("CREATE TABLE device_leases (") + kLeaseColumns +
                               "state TEXT NOT NULL CHECK (state IN ('attached', 'pending')),"
                               "since_ms INTEGER NOT NULL);" + kLeaseRows + kDeviceEvents;
// ... then with "attaching" and "revoking" (1456a43).
const std::string kLeases = std::string("CREATE TABLE device_leases (") + kLeaseColumns +
                            "state TEXT NOT NULL CHECK (state IN ('attached', 'pending', 'attaching', "
                            "'revoking')), since_ms INTEGER NOT NULL);" + kLeaseRows +
                            "INSERT INTO device_leases VALUES ('/sys/x/ttyACM0', 'fw-build', "
                            "'/containers/0/devices/1', 'tty', '/dev/ttyACM0', 166, 0, '[]', 'dialout', "
                            "432, 'revoking', 1795406100000);" + kDeviceEvents;

// Without a version: the outbox (a1c791b), after the server acknowledged up to 40.
constexpr const char* kOutbox = R"SQL(
CREATE TABLE outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, kind TEXT NOT NULL,
  container TEXT, device TEXT, message TEXT NOT NULL);
INSERT INTO outbox VALUES (41, 1795406100, 'agent_started', NULL, NULL, 'agent started');
INSERT INTO outbox VALUES (42, 1795406101, 'device_attached', 'fw-build', '/dev/ttyUSB0', 'attached');
)SQL";

// What the rows of each piece look like after the migration.
const std::map<std::string, std::string> kRowsOf = {
    {"SELECT name, phase, created_at FROM containers", "fw-build|ready|1795406100\n"},
    {"SELECT name, subnet FROM subnets", "fw-build|192.168.90.0/24\n"},
    {"SELECT a.id, j.step, j.status FROM applies a LEFT JOIN journal j ON j.apply_id = a.id ORDER BY a.id",
     "1||\n2|create|done\n"},
    {"SELECT container, kind, name, revision FROM payload", "fw-build|source|lws|abc123\n"},
    {"SELECT key, value FROM settings", "config_commit|def456\n"},
    {"SELECT container, state, item FROM payload_status", "fw-build|failed|setup lws-build\n"},
    {"SELECT action, devnode, latency_us FROM device_events", "attach|/dev/ttyUSB0|1200\n"},
    {"SELECT (SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), seq, kind, container, message "
     "FROM outbox ORDER BY seq",
     "42|41|agent_started||agent started\n42|42|device_attached|fw-build|attached\n"},
};

// Every table of the latest schema, with its columns in order.
const std::map<std::string, std::string> kLatestColumns = {
    {"applies", "id started_ms"},
    {"containers", "name spec base_key clone_method phase created_at updated_at"},
    {"device_events", "id at_ms action container devnode syspath latency_us detail"},
    {"device_leases", "syspath container rule subsystem devnode major minor links grp mode state since_ms"},
    {"journal", "id apply_id container step status started_ms finished_ms detail"},
    {"outbox", "seq time kind container device message"},
    {"payload", "container kind name fingerprint revision updated_at"},
    {"payload_status", "container state item message updated_ms"},
    {"settings", "key value"},
    {"subnets", "name subnet"},
};

// The rows of a query, one line each, columns joined by '|' (NULL as "").
std::string rows(sql::Database& db, const std::string& query) {
  auto st = db.prepare(query);
  if (!st) return "error: " + st.error().message();
  std::string out;
  for (;;) {
    auto row = st->step();
    if (!row) return "error: " + row.error().message();
    if (!*row) break;
    for (int i = 0; i < st->column_count(); ++i) out += (i > 0 ? "|" : "") + st->text(i);
    out += "\n";
  }
  return out;
}

int64_t user_version(sql::Database& db) {
  auto st = db.prepare("PRAGMA user_version");
  if (!st || !*st->step()) return -1;
  return st->integer(0);
}

// Each table with its columns, in the form of kLatestColumns.
std::map<std::string, std::string> tables(sql::Database& db) {
  std::map<std::string, std::string> out;
  auto st = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'");
  if (!st) return out;
  while (*st->step()) {
    const std::string table = st->text(0);
    std::string columns = rows(db, "SELECT name FROM pragma_table_info('" + table + "')");
    std::replace(columns.begin(), columns.end(), '\n', ' ');
    if (!columns.empty()) columns.pop_back();
    out[table] = columns;
  }
  return out;
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A database of one earlier shape: the SQL that writes it, and the queries
// of kRowsOf whose rows it holds.
struct Shape {
  const char* name;
  std::vector<std::string> sql;
  std::vector<std::string> queries;
  bool has_leases = false;
};

const std::vector<std::string> kV1Rows = {
    "SELECT name, phase, created_at FROM containers", "SELECT name, subnet FROM subnets",
    "SELECT a.id, j.step, j.status FROM applies a LEFT JOIN journal j ON j.apply_id = a.id ORDER BY a.id"};
const std::vector<std::string> kV2Rows = {"SELECT container, kind, name, revision FROM payload",
                                          "SELECT key, value FROM settings"};
const std::string kStatusRows = "SELECT container, state, item FROM payload_status";
const std::string kEventRows = "SELECT action, devnode, latency_us FROM device_events";
const std::string kOutboxRows =
    "SELECT (SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), seq, kind, container, message "
    "FROM outbox ORDER BY seq";

template <typename... Lists>
std::vector<std::string> join(const Lists&... lists) {
  std::vector<std::string> out;
  (out.insert(out.end(), lists.begin(), lists.end()), ...);
  return out;
}

const std::vector<Shape> kShapes = {
    {"version 1", {kProvisionerV1}, kV1Rows},
    {"version 2", {kProvisionerV1, kProvisionerV2}, join(kV1Rows, kV2Rows)},
    {"version 2 with payload_status", {kProvisionerV1, kProvisionerV2, kPayloadStatus},
     join(kV1Rows, kV2Rows, std::vector{kStatusRows})},
    {"agent only, two-state leases", {kOldLeases, kOutbox}, {kEventRows, kOutboxRows}, true},
    {"agent only, four-state leases", {kLeases, kOutbox}, {kEventRows, kOutboxRows}, true},
    {"version 1 and four-state leases", {kProvisionerV1, kLeases}, join(kV1Rows, std::vector{kEventRows}), true},
    {"version 2 with payload_status, two-state leases and the outbox",
     {kProvisionerV1, kProvisionerV2, kPayloadStatus, kOldLeases, kOutbox},
     join(kV1Rows, kV2Rows, std::vector{kStatusRows, kEventRows, kOutboxRows}), true},
};

class StateDbTest : public ::testing::Test {
 protected:
  std::string path() const { return (dir_.path() / "state.db").string(); }
  void write(const std::vector<std::string>& sql) {
    auto db = sql::Database::open(path());
    ASSERT_TRUE(db) << db.error().message();
    for (const auto& s : sql) ASSERT_TRUE(db->exec(s)) << s;
  }
  test::TempDir dir_;
};

TEST_F(StateDbTest, AFreshDatabaseGetsTheLatestSchema) {
  auto db = open(path());
  ASSERT_TRUE(db) << db.error().message();
  EXPECT_EQ(user_version(*db), 5);
  EXPECT_EQ(kVersion, 5);
  EXPECT_EQ(tables(*db), kLatestColumns);
  EXPECT_EQ(rows(*db, "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'"),
            "journal_by_apply\n");
}

TEST_F(StateDbTest, EveryEarlierShapeMigratesWithItsRows) {
  for (const auto& shape : kShapes) {
    SCOPED_TRACE(shape.name);
    test::TempDir dir;
    const std::string file = (dir.path() / "state.db").string();
    {
      auto raw = sql::Database::open(file);
      ASSERT_TRUE(raw) << raw.error().message();
      for (const auto& s : shape.sql) ASSERT_TRUE(raw->exec(s)) << s;
      ASSERT_LT(user_version(*raw), 5);
    }
    auto db = open(file);
    ASSERT_TRUE(db) << db.error().message();
    EXPECT_EQ(user_version(*db), 5);
    EXPECT_EQ(tables(*db), kLatestColumns);
    EXPECT_EQ(rows(*db, "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'"),
              "journal_by_apply\n");
    for (const auto& query : shape.queries) EXPECT_EQ(rows(*db, query), kRowsOf.at(query)) << query;
    for (const auto& [query, expected] : kRowsOf) {
      if (std::find(shape.queries.begin(), shape.queries.end(), query) == shape.queries.end()) {
        EXPECT_EQ(rows(*db, query), "") << query;
      }
    }
    if (shape.has_leases) {
      EXPECT_EQ(rows(*db, "SELECT syspath, state, links FROM device_leases WHERE state != 'revoking' ORDER BY syspath"),
                "/sys/x/ttyUSB0|attached|[\"/dev/serial/by-id/usb-FTDI-if00\"]\n/sys/x/ttyUSB1|pending|[]\n");
    }
    // The lease table takes all four states now, and still refuses others.
    EXPECT_TRUE(db->exec("INSERT OR REPLACE INTO device_leases VALUES ('/sys/x/ttyUSB0', 'fw-build', 'r', 'tty', "
                         "'/dev/ttyUSB0', 188, 0, '[]', 'dialout', 432, 'revoking', 1)"));
    EXPECT_TRUE(db->exec("UPDATE device_leases SET state = 'attaching'"));
    EXPECT_FALSE(db->exec("UPDATE device_leases SET state = 'detaching'"));
    // And the outbox numbers on from what it had handed out.
    ASSERT_TRUE(db->exec("INSERT INTO outbox(time, kind, message) VALUES (1, 'k', 'm')"));
    EXPECT_EQ(db->last_insert_rowid(), shape.queries.back() == kOutboxRows ? 43 : 1);
  }
}

TEST_F(StateDbTest, ALatestDatabaseIsNotWrittenByAnOpen) {
  { ASSERT_TRUE(open(path())); }
  const std::string before = file_bytes(path());
  ASSERT_FALSE(before.empty());
  { ASSERT_TRUE(open(path())); }
  EXPECT_EQ(file_bytes(path()), before);
}

TEST_F(StateDbTest, RefusesANewerVersionWithTheExactMessage) {
  write({"PRAGMA user_version=6"});
  auto db = open(path());
  ASSERT_FALSE(db);
  EXPECT_EQ(db.error().message(),
            "state database '" + path() + "' has schema version 6, newer than this farmhand understands (5)");
  auto raw = sql::Database::open(path());
  ASSERT_TRUE(raw);
  EXPECT_EQ(user_version(*raw), 6);
  EXPECT_EQ(tables(*raw), (std::map<std::string, std::string>{}));
}

TEST_F(StateDbTest, AFailedMigrationLeavesTheDatabaseAsItWas) {
  // A table in the way of the lease table's rebuild makes the migration fail
  // half-way: nothing of it stays, version and old lease table included.
  write({kProvisionerV1, kProvisionerV2, kOldLeases, "CREATE TABLE device_leases_new (x)"});
  auto db = open(path());
  ASSERT_FALSE(db);
  EXPECT_EQ(db.error().message(),
            "migrating '" + path() + "': sqlite: table device_leases_new already exists");
  auto raw = sql::Database::open(path());
  ASSERT_TRUE(raw);
  EXPECT_EQ(user_version(*raw), 2);
  EXPECT_EQ(tables(*raw).count("payload_status"), 0U);
  EXPECT_EQ(rows(*raw, "SELECT sql LIKE '%''revoking''%' FROM sqlite_master WHERE name = 'device_leases'"), "0\n");
  EXPECT_EQ(rows(*raw, "SELECT COUNT(*) FROM device_leases"), "2\n");
}

TEST(StateDbOpen, AnUnopenablePathIsAnError) {
  auto db = open("/nonexistent-dir/state.db");
  ASSERT_FALSE(db);
  EXPECT_EQ(db.error().message(), "cannot open database '/nonexistent-dir/state.db': unable to open database file");
}

}  // namespace
}  // namespace farmhand::state_db
