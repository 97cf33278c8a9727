#include "common/state_db.h"

#include <iterator>
#include <optional>

namespace farmhand::state_db {

namespace {

// Version 1: the provisioner's containers, subnets and apply journal.
constexpr const char* kVersion1 = R"SQL(
CREATE TABLE IF NOT EXISTS containers(
  name TEXT PRIMARY KEY,
  spec TEXT NOT NULL,
  base_key TEXT NOT NULL,
  clone_method TEXT NOT NULL,
  phase TEXT NOT NULL CHECK (phase IN ('creating', 'ready', 'destroying')),
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS subnets(
  name TEXT PRIMARY KEY,
  subnet TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS applies(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  started_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS journal(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  apply_id INTEGER NOT NULL REFERENCES applies(id),
  container TEXT NOT NULL,
  step TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('begun', 'done', 'failed')),
  started_ms INTEGER NOT NULL,
  finished_ms INTEGER,
  detail TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS journal_by_apply ON journal(apply_id);
)SQL";

// Version 2: what each container's payload was when last applied, and
// host-wide settings (the applied config repository commit).
constexpr const char* kVersion2 = R"SQL(
CREATE TABLE IF NOT EXISTS payload(
  container TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('source', 'file', 'step', 'service')),
  name TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  revision TEXT NOT NULL DEFAULT '',
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (container, kind, name));
CREATE TABLE IF NOT EXISTS settings(
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL);
)SQL";

// Version 3: how each container's payload last went. This table was first
// added to version 2 without a new version, so a version 2 database may or
// may not have it.
constexpr const char* kVersion3 = R"SQL(
CREATE TABLE IF NOT EXISTS payload_status(
  container TEXT PRIMARY KEY,
  state TEXT NOT NULL CHECK (state IN ('running', 'ok', 'failed')),
  item TEXT NOT NULL DEFAULT '',
  message TEXT NOT NULL DEFAULT '',
  updated_ms INTEGER NOT NULL);
)SQL";

// Version 4: the device leases and events, which the lease store created
// without a version before, so a database of any earlier version may have
// them already. A lease is "attaching" from just before its grant until its
// node exists, and "revoking" from just before its grant is revoked until
// grant and node are gone: a lease always covers a grant, whenever the
// agent stops.
constexpr const char* kLeaseColumns = R"SQL(
  syspath   TEXT PRIMARY KEY,
  container TEXT NOT NULL,
  rule      TEXT NOT NULL,
  subsystem TEXT NOT NULL,
  devnode   TEXT NOT NULL,
  major     INTEGER NOT NULL,
  minor     INTEGER NOT NULL,
  links     TEXT NOT NULL,
  grp       TEXT NOT NULL,
  mode      INTEGER NOT NULL,
  state     TEXT NOT NULL CHECK (state IN ('attached', 'pending', 'attaching', 'revoking')),
  since_ms  INTEGER NOT NULL
)SQL";

constexpr const char* kDeviceEvents = R"SQL(
CREATE TABLE IF NOT EXISTS device_events (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  at_ms      INTEGER NOT NULL,
  action     TEXT NOT NULL,
  container  TEXT NOT NULL,
  devnode    TEXT NOT NULL,
  syspath    TEXT NOT NULL,
  latency_us INTEGER NOT NULL,
  detail     TEXT NOT NULL
);
)SQL";

constexpr const char* kLeaseColumnNames =
    "syspath, container, rule, subsystem, devnode, major, minor, links, grp, mode, state, since_ms";

// Version 5: the agent's outbox, which it created without a version before.
constexpr const char* kVersion5 = R"SQL(
CREATE TABLE IF NOT EXISTS outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  time INTEGER NOT NULL,
  kind TEXT NOT NULL,
  container TEXT,
  device TEXT,
  message TEXT NOT NULL
);
)SQL";

// The CREATE statement of a table as SQLite keeps it, empty if there is none.
Result<std::string> table_sql(sql::Database& db, const std::string& table) {
  auto st = db.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1");
  if (!st) return st.error();
  st->bind(1, table);
  auto row = st->step();
  if (!row) return row.error();
  return *row ? st->text(0) : std::string();
}

// A lease table from before "attaching" and "revoking" has a CHECK that
// refuses them. SQLite cannot alter a CHECK, so the table is rebuilt with its
// rows (inside the migration's transaction).
Status device_tables(sql::Database& db) {
  auto current = table_sql(db, "device_leases");
  if (!current) return current.error();
  if (!current->empty() && current->find("'revoking'") == std::string::npos) {
    const std::string columns = kLeaseColumnNames;
    if (auto s = db.exec(std::string("CREATE TABLE device_leases_new (") + kLeaseColumns + ")"); !s) return s;
    if (auto s = db.exec("INSERT INTO device_leases_new (" + columns + ") SELECT " + columns + " FROM device_leases");
        !s) {
      return s;
    }
    if (auto s = db.exec("DROP TABLE device_leases"); !s) return s;
    if (auto s = db.exec("ALTER TABLE device_leases_new RENAME TO device_leases"); !s) return s;
  }
  if (auto s = db.exec(std::string("CREATE TABLE IF NOT EXISTS device_leases (") + kLeaseColumns + ");"); !s) {
    return s;
  }
  return db.exec(kDeviceEvents);
}

// Each version's step, from version `from` to `from + 1`, in order. Every
// step tolerates tables that are already there: the tables once created
// without a version may exist in a database of any earlier version.
struct Migration {
  const char* sql = nullptr;              // run as is, or
  Status (*step)(sql::Database&) = nullptr;  // for what SQL alone cannot say
};
const Migration kMigrations[] = {
    {kVersion1, nullptr},       // 0 -> 1
    {kVersion2, nullptr},       // 1 -> 2
    {kVersion3, nullptr},       // 2 -> 3
    {nullptr, device_tables},   // 3 -> 4
    {kVersion5, nullptr},       // 4 -> 5
};
static_assert(std::size(kMigrations) == kVersion, "one migration per version");

Result<int64_t> user_version(sql::Database& db) {
  auto st = db.prepare("PRAGMA user_version");
  if (!st) return st.error();
  auto row = st->step();
  if (!row) return row.error();
  return st->integer(0);
}

Error too_new(const std::string& path, int64_t version) {
  return fail("state database '" + path + "' has schema version " + std::to_string(version) +
              ", newer than this farmhand understands (" + std::to_string(kVersion) + ")");
}

}  // namespace

Result<sql::Database> open(const std::string& path) {
  auto db = sql::Database::open(path);
  if (!db) return db.error();
  auto version = user_version(*db);
  if (!version) return version.error();
  if (*version > kVersion) return too_new(path, *version);
  if (*version == kVersion) return std::move(*db);  // read-only commands write nothing
  std::optional<Error> newer;
  Status migrated = db->transaction([&]() -> Status {
    // Another process may have migrated it since it was read above.
    auto from = user_version(*db);
    if (!from) return from.error();
    if (*from > kVersion) {
      newer = too_new(path, *from);
      return *newer;
    }
    for (int64_t v = *from; v < kVersion; ++v) {
      const Migration& m = kMigrations[v];
      if (auto s = m.sql ? db->exec(m.sql) : m.step(*db); !s) return s;
    }
    return db->exec("PRAGMA user_version=" + std::to_string(kVersion));
  });
  if (!migrated) return newer ? *newer : migrated.error().context("migrating '" + path + "'");
  return std::move(*db);
}

}  // namespace farmhand::state_db
