// Device leases in a real state.db (SQLite in a temporary directory): the
// four states, and a state.db written before "attaching" and "revoking"
// existed, migrated with its rows.
#include "udev/leases.h"

#include <gtest/gtest.h>

#include <string>

#include "common/sqlite.h"
#include "tests/unit/temp_dir.h"

namespace farmhand::udev {
namespace {

using test::TempDir;

Lease lease(const std::string& tty, const std::string& state) {
  Lease l;
  l.syspath = "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-3/1-3:1.0/" + tty + "/tty/" + tty;
  l.container = "fw-build";
  l.rule = "/containers/0/devices/0";
  l.subsystem = "tty";
  l.devnode = "/dev/" + tty;
  l.major = 188;
  l.minor = 0;
  l.links = {"/dev/serial/by-id/usb-FTDI_FT232R_" + tty + "-if00-port0"};
  l.group = "dialout";
  l.mode = 0660;
  l.state = lease_state_from_string(state).value_or(LeaseState::kPending);
  l.since_ms = 1795406100000;
  return l;
}

TEST(LeaseStore, KeepsEveryStateAndRefusesOthers) {
  TempDir dir;
  auto store = LeaseStore::open((dir.path() / "state.db").string());
  ASSERT_TRUE(store) << store.error().message();
  for (const char* state : {"attached", "pending", "attaching", "revoking"}) {
    const Lease l = lease("ttyUSB0", state);
    ASSERT_TRUE(store->put(l)) << state;
    auto found = store->find(l.syspath);
    ASSERT_TRUE(found);
    ASSERT_TRUE(*found);
    EXPECT_EQ(**found, l);
  }
  // A state there is no enum for is refused by the table itself.
  {
    auto db = sql::Database::open((dir.path() / "state.db").string());
    ASSERT_TRUE(db);
    EXPECT_FALSE(db->exec("UPDATE device_leases SET state = 'detaching'"));
  }
  auto found = store->find(lease("ttyUSB0", "").syspath);
  ASSERT_TRUE(found && *found);
  EXPECT_EQ(to_string((*found)->state), "revoking");
}

// The schema of state.db before "attaching" and "revoking", as it was
// shipped: its CHECK allows only the two older states.
constexpr const char* kOldSchema = R"sql(
CREATE TABLE device_leases (
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
  state     TEXT NOT NULL CHECK (state IN ('attached', 'pending')),
  since_ms  INTEGER NOT NULL
);
CREATE TABLE device_events (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  at_ms      INTEGER NOT NULL,
  action     TEXT NOT NULL,
  container  TEXT NOT NULL,
  devnode    TEXT NOT NULL,
  syspath    TEXT NOT NULL,
  latency_us INTEGER NOT NULL,
  detail     TEXT NOT NULL
);
INSERT INTO device_leases VALUES
  ('/sys/devices/pci0000:00/0000:00:14.0/usb1/1-3/1-3:1.0/ttyUSB0/tty/ttyUSB0', 'fw-build',
   '/containers/0/devices/0', 'tty', '/dev/ttyUSB0', 188, 0,
   '["/dev/serial/by-id/usb-FTDI_FT232R_ttyUSB0-if00-port0"]', 'dialout', 432, 'attached', 1795406100000),
  ('/sys/devices/pci0000:00/0000:00:14.0/usb1/1-3/1-3:1.0/ttyUSB1/tty/ttyUSB1', 'fw-build',
   '/containers/0/devices/0', 'tty', '/dev/ttyUSB1', 188, 0,
   '["/dev/serial/by-id/usb-FTDI_FT232R_ttyUSB1-if00-port0"]', 'dialout', 432, 'pending', 1795406100000);
INSERT INTO device_events (at_ms, action, container, devnode, syspath, latency_us, detail)
  VALUES (1795406100000, 'attach', 'fw-build', '/dev/ttyUSB0', 'x', 1200, '');
)sql";

std::string lease_table_sql(const std::string& path) {
  auto db = sql::Database::open(path);
  EXPECT_TRUE(db);
  if (!db) return "";
  auto st = db->prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'device_leases'");
  EXPECT_TRUE(st);
  if (!st) return "";
  auto row = st->step();
  EXPECT_TRUE(row && *row);
  return row && *row ? st->text(0) : "";
}

TEST(LeaseStore, MigratesAStateDbWithTheOldSchemaAndKeepsItsRows) {
  TempDir dir;
  const std::string path = (dir.path() / "state.db").string();
  {
    auto db = sql::Database::open(path);
    ASSERT_TRUE(db) << db.error().message();
    ASSERT_TRUE(db->exec(kOldSchema));
  }
  ASSERT_EQ(lease_table_sql(path).find("'revoking'"), std::string::npos);

  auto store = LeaseStore::open(path);
  ASSERT_TRUE(store) << store.error().message();
  auto all = store->all();
  ASSERT_TRUE(all) << all.error().message();
  ASSERT_EQ(all->size(), 2U);
  EXPECT_EQ((*all)[0], lease("ttyUSB0", "attached"));
  EXPECT_EQ((*all)[1], lease("ttyUSB1", "pending"));
  auto events = store->events(10);
  ASSERT_TRUE(events);
  ASSERT_EQ(events->size(), 1U);
  EXPECT_EQ(to_string((*events)[0].action), "attach");
  EXPECT_NE(lease_table_sql(path).find("'revoking'"), std::string::npos);

  // The new states are accepted now, and the rows stay through another open.
  ASSERT_TRUE(store->put(lease("ttyUSB0", "revoking")));
  ASSERT_TRUE(store->put(lease("ttyUSB1", "attaching")));
  auto again = LeaseStore::open(path);
  ASSERT_TRUE(again) << again.error().message();
  all = again->all();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2U);
  EXPECT_EQ(to_string((*all)[0].state), "revoking");
  EXPECT_EQ(to_string((*all)[1].state), "attaching");
}

TEST(LeaseStore, MigratesAnEmptyOldTable) {
  TempDir dir;
  const std::string path = (dir.path() / "state.db").string();
  {
    auto db = sql::Database::open(path);
    ASSERT_TRUE(db);
    ASSERT_TRUE(db->exec(std::string(kOldSchema).substr(0, std::string(kOldSchema).find("INSERT"))));
  }
  auto store = LeaseStore::open(path);
  ASSERT_TRUE(store) << store.error().message();
  auto all = store->all();
  ASSERT_TRUE(all);
  EXPECT_TRUE(all->empty());
  EXPECT_TRUE(store->put(lease("ttyUSB0", "attaching")));
}

}  // namespace
}  // namespace farmhand::udev
