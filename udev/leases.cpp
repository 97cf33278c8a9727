#include "udev/leases.h"

#include <nlohmann/json.hpp>

#include "common/state_db.h"

namespace farmhand::udev {

namespace {

// Events beyond this many are dropped, oldest first.
constexpr int64_t kKeepEvents = 10000;

Lease read_lease(const sql::Statement& st) {
  Lease l;
  l.syspath = st.text(0);
  l.container = st.text(1);
  l.rule = st.text(2);
  l.subsystem = st.text(3);
  l.devnode = st.text(4);
  l.major = static_cast<unsigned>(st.integer(5));
  l.minor = static_cast<unsigned>(st.integer(6));
  auto links = nlohmann::json::parse(st.text(7), nullptr, false);
  if (links.is_array()) {
    for (const auto& x : links) {
      if (x.is_string()) l.links.push_back(x.get<std::string>());
    }
  }
  l.group = st.text(8);
  l.mode = static_cast<unsigned>(st.integer(9));
  // The table's CHECK lets in only the states there are.
  l.state = lease_state_from_string(st.text(10)).value_or(LeaseState::kPending);
  l.since_ms = st.integer(11);
  return l;
}

constexpr const char* kColumns =
    "syspath, container, rule, subsystem, devnode, major, minor, links, grp, mode, state, since_ms";

}  // namespace

Result<LeaseStore> LeaseStore::open(const std::string& db_path) {
  // The tables, device_leases and device_events, are state_db's.
  auto db = state_db::open(db_path);
  if (!db) return db.error();
  // Each lease is written before its grant and removed after its revoke,
  // so an agent killed at any point finds what it had granted. That holds
  // through a process's death without an fsync per write (WAL commits are
  // in the kernel's page cache); a power loss can lose the latest writes,
  // but it loses the grants as well: device cgroups and the containers'
  // /dev do not outlive a boot. So no fsync per lease, which made a
  // reconcile of many leases wait on the disk.
  if (auto s = db->exec("PRAGMA synchronous=NORMAL"); !s) return s.error();
  return LeaseStore(std::move(*db));
}

Result<std::vector<Lease>> LeaseStore::all() {
  auto st = db_.prepare(std::string("SELECT ") + kColumns + " FROM device_leases ORDER BY container, devnode");
  if (!st) return st.error();
  std::vector<Lease> out;
  for (;;) {
    auto row = st->step();
    if (!row) return row.error();
    if (!*row) break;
    out.push_back(read_lease(*st));
  }
  return out;
}

Result<std::optional<Lease>> LeaseStore::find(const std::string& syspath) {
  auto st = db_.prepare(std::string("SELECT ") + kColumns + " FROM device_leases WHERE syspath = ?1");
  if (!st) return st.error();
  st->bind(1, syspath);
  auto row = st->step();
  if (!row) return row.error();
  if (!*row) return std::optional<Lease>();
  return std::optional<Lease>(read_lease(*st));
}

Status LeaseStore::put(const Lease& l) {
  auto st = db_.prepare(std::string("INSERT OR REPLACE INTO device_leases (") + kColumns +
                        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)");
  if (!st) return st.error();
  st->bind(1, l.syspath)
      .bind(2, l.container)
      .bind(3, l.rule)
      .bind(4, l.subsystem)
      .bind(5, l.devnode)
      .bind(6, int64_t{l.major})
      .bind(7, int64_t{l.minor})
      .bind(8, nlohmann::json(l.links).dump())
      .bind(9, l.group)
      .bind(10, int64_t{l.mode})
      .bind(11, to_string(l.state))
      .bind(12, l.since_ms);
  return st->run();
}

Status LeaseStore::remove(const std::string& syspath) {
  auto st = db_.prepare("DELETE FROM device_leases WHERE syspath = ?1");
  if (!st) return st.error();
  st->bind(1, syspath);
  return st->run();
}

Status LeaseStore::add_event(const DeviceEvent& e) {
  auto st = db_.prepare(
      "INSERT INTO device_events (at_ms, action, container, devnode, syspath, latency_us, detail) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  if (!st) return st.error();
  st->bind(1, e.at_ms).bind(2, to_string(e.action)).bind(3, e.container).bind(4, e.devnode).bind(5, e.syspath);
  st->bind(6, e.latency_us).bind(7, e.detail);
  if (auto s = st->run(); !s) return s;
  const int64_t id = db_.last_insert_rowid();
  if (id % 1000 == 0) {
    auto trim = db_.prepare("DELETE FROM device_events WHERE id <= ?1");
    if (!trim) return trim.error();
    trim->bind(1, id - kKeepEvents);
    return trim->run();
  }
  return {};
}

Result<std::vector<DeviceEvent>> LeaseStore::events(int limit) {
  auto st = db_.prepare(
      "SELECT at_ms, action, container, devnode, syspath, latency_us, detail FROM device_events "
      "ORDER BY id DESC LIMIT ?1");
  if (!st) return st.error();
  st->bind(1, int64_t{limit});
  std::vector<DeviceEvent> out;
  for (;;) {
    auto row = st->step();
    if (!row) return row.error();
    if (!*row) break;
    DeviceEvent e;
    e.at_ms = st->integer(0);
    e.action = device_action_from_string(st->text(1)).value_or(DeviceAction::kError);
    e.container = st->text(2);
    e.devnode = st->text(3);
    e.syspath = st->text(4);
    e.latency_us = st->integer(5);
    e.detail = st->text(6);
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace farmhand::udev
