#include "provisioner/state_store.h"

#include <chrono>

#include "common/clock.h"
#include "common/state_db.h"

namespace farmhand::provisioner {

namespace {

int64_t now_s() { return wall_ms() / 1000; }

int64_t now_ms() { return wall_ms(); }

Phase parse_phase(const std::string& s) {
  if (s == "ready") return Phase::kReady;
  if (s == "destroying") return Phase::kDestroying;
  return Phase::kCreating;
}

}  // namespace

std::string_view to_string(Phase phase) {
  switch (phase) {
    case Phase::kCreating: return "creating";
    case Phase::kReady: return "ready";
    case Phase::kDestroying: return "destroying";
  }
  return "creating";
}

Result<StateStore> StateStore::open(const std::string& path) {
  auto db = state_db::open(path);
  if (!db) return db.error();
  return StateStore(std::move(*db));
}

Result<std::vector<ContainerRecord>> StateStore::containers() {
  auto st = db_.prepare(
      "SELECT name, spec, base_key, clone_method, phase, created_at, updated_at "
      "FROM containers ORDER BY name");
  if (!st) return st.error();
  std::vector<ContainerRecord> out;
  for (;;) {
    auto row = st->step();
    if (!row) return row.error();
    if (!*row) break;
    out.push_back({st->text(0), st->text(1), st->text(2), st->text(3), parse_phase(st->text(4)),
                   st->integer(5), st->integer(6)});
  }
  return out;
}

Result<std::optional<ContainerRecord>> StateStore::container(const std::string& name) {
  auto all = containers();
  if (!all) return all.error();
  for (auto& r : *all) {
    if (r.name == name) return std::optional<ContainerRecord>(std::move(r));
  }
  return std::optional<ContainerRecord>{};
}

Status StateStore::put_container(const ContainerRecord& r) {
  auto st = db_.prepare(
      "INSERT INTO containers(name, spec, base_key, clone_method, phase, created_at, updated_at) "
      "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?6) ON CONFLICT(name) DO UPDATE SET spec=?2, base_key=?3, "
      "clone_method=?4, phase=?5, updated_at=?6");
  if (!st) return st.error();
  st->bind(1, r.name).bind(2, r.spec_json).bind(3, r.base_key).bind(4, r.clone_method);
  st->bind(5, to_string(r.phase)).bind(6, now_s());
  return st->run();
}

Status StateStore::set_phase(const std::string& name, Phase phase) {
  auto st = db_.prepare("UPDATE containers SET phase=?2, updated_at=?3 WHERE name=?1");
  if (!st) return st.error();
  st->bind(1, name).bind(2, to_string(phase)).bind(3, now_s());
  return st->run();
}

Status StateStore::delete_container(const std::string& name) {
  return db_.transaction([&]() -> Status {
    for (const char* sql : {"DELETE FROM containers WHERE name=?1", "DELETE FROM subnets WHERE name=?1",
                            "DELETE FROM payload WHERE container=?1",
                            "DELETE FROM payload_status WHERE container=?1"}) {
      auto st = db_.prepare(sql);
      if (!st) return st.error();
      st->bind(1, name);
      if (auto s = st->run(); !s) return s;
    }
    return {};
  });
}

Result<std::map<std::string, Cidr>> StateStore::subnets() {
  auto st = db_.prepare("SELECT name, subnet FROM subnets");
  if (!st) return st.error();
  std::map<std::string, Cidr> out;
  for (;;) {
    auto row = st->step();
    if (!row) return row.error();
    if (!*row) break;
    if (auto c = Cidr::parse(st->text(1))) out[st->text(0)] = *c;
  }
  return out;
}

Status StateStore::set_subnets(const std::map<std::string, Cidr>& assignment) {
  return db_.transaction([&]() -> Status {
    auto del = db_.prepare("DELETE FROM subnets WHERE name=?1");
    if (!del) return del.error();
    for (const auto& [name, subnet] : assignment) {
      del->bind(1, name);
      if (auto s = del->run(); !s) return s;
    }
    auto ins = db_.prepare("INSERT INTO subnets(name, subnet) VALUES(?1, ?2)");
    if (!ins) return ins.error();
    for (const auto& [name, subnet] : assignment) {
      ins->bind(1, name).bind(2, subnet.str());
      if (auto s = ins->run(); !s) return s;
    }
    return {};
  });
}

Result<int64_t> StateStore::begin_apply() {
  auto st = db_.prepare("INSERT INTO applies(started_ms) VALUES(?1)");
  if (!st) return st.error();
  st->bind(1, now_ms());
  if (auto s = st->run(); !s) return s.error();
  return db_.last_insert_rowid();
}

Result<int64_t> StateStore::journal_begin(int64_t apply_id, const std::string& container,
                                          const std::string& step) {
  auto st = db_.prepare(
      "INSERT INTO journal(apply_id, container, step, status, started_ms) "
      "VALUES(?1, ?2, ?3, 'begun', ?4)");
  if (!st) return st.error();
  st->bind(1, apply_id).bind(2, container).bind(3, step).bind(4, now_ms());
  if (auto s = st->run(); !s) return s.error();
  return db_.last_insert_rowid();
}

Status StateStore::journal_end(int64_t entry_id, bool ok, const std::string& detail) {
  auto st = db_.prepare("UPDATE journal SET status=?2, finished_ms=?3, detail=?4 WHERE id=?1");
  if (!st) return st.error();
  st->bind(1, entry_id).bind(2, ok ? "done" : "failed").bind(3, now_ms()).bind(4, detail);
  return st->run();
}

Result<std::vector<JournalEntry>> StateStore::journal(int64_t apply_id) {
  auto st = db_.prepare(
      "SELECT id, apply_id, container, step, status, started_ms, COALESCE(finished_ms, 0), "
      "detail FROM journal WHERE apply_id=?1 ORDER BY id");
  if (!st) return st.error();
  st->bind(1, apply_id);
  std::vector<JournalEntry> out;
  for (;;) {
    auto row = st->step();
    if (!row) return row.error();
    if (!*row) break;
    out.push_back({st->integer(0), st->integer(1), st->text(2), st->text(3), st->text(4),
                   st->integer(5), st->integer(6), st->text(7)});
  }
  return out;
}

Result<int64_t> StateStore::last_apply_id() {
  auto st = db_.prepare("SELECT COALESCE(MAX(id), 0) FROM applies");
  if (!st) return st.error();
  auto row = st->step();
  if (!row) return row.error();
  return st->integer(0);
}

namespace {

std::optional<PayloadKind> parse_payload_kind(const std::string& s) {
  for (PayloadKind k : {PayloadKind::kSource, PayloadKind::kFile, PayloadKind::kStep, PayloadKind::kService}) {
    if (to_string(k) == s) return k;
  }
  return std::nullopt;
}

}  // namespace

std::string_view to_string(PayloadKind kind) {
  switch (kind) {
    case PayloadKind::kSource: return "source";
    case PayloadKind::kFile: return "file";
    case PayloadKind::kStep: return "step";
    case PayloadKind::kService: return "service";
  }
  return "source";
}

Result<std::vector<PayloadRecord>> StateStore::payload(const std::string& container) {
  auto st = db_.prepare(
      "SELECT kind, name, fingerprint, revision, updated_at FROM payload WHERE container=?1 ORDER BY kind, name");
  if (!st) return st.error();
  st->bind(1, container);
  std::vector<PayloadRecord> out;
  for (;;) {
    auto row = st->step();
    if (!row) return row.error();
    if (!*row) break;
    auto kind = parse_payload_kind(st->text(0));
    if (!kind) continue;
    out.push_back({container, *kind, st->text(1), st->text(2), st->text(3), st->integer(4)});
  }
  return out;
}

Status StateStore::put_payload(const PayloadRecord& r) {
  auto st = db_.prepare(
      "INSERT INTO payload(container, kind, name, fingerprint, revision, updated_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6) "
      "ON CONFLICT(container, kind, name) DO UPDATE SET fingerprint=?4, revision=?5, updated_at=?6");
  if (!st) return st.error();
  st->bind(1, r.container).bind(2, to_string(r.kind)).bind(3, r.name).bind(4, r.fingerprint);
  st->bind(5, r.revision).bind(6, now_s());
  return st->run();
}

Status StateStore::delete_payload(const std::string& container, PayloadKind kind, const std::string& name) {
  auto st = db_.prepare("DELETE FROM payload WHERE container=?1 AND kind=?2 AND name=?3");
  if (!st) return st.error();
  st->bind(1, container).bind(2, to_string(kind)).bind(3, name);
  return st->run();
}

Result<std::optional<PayloadStatus>> StateStore::payload_status(const std::string& container) {
  auto st = db_.prepare("SELECT state, item, message, updated_ms FROM payload_status WHERE container=?1");
  if (!st) return st.error();
  st->bind(1, container);
  auto row = st->step();
  if (!row) return row.error();
  if (!*row) return std::optional<PayloadStatus>();
  return std::optional<PayloadStatus>(PayloadStatus{st->text(0), st->text(1), st->text(2), st->integer(3)});
}

Status StateStore::put_payload_status(const std::string& container, const PayloadStatus& s) {
  auto st = db_.prepare(
      "INSERT INTO payload_status(container, state, item, message, updated_ms) VALUES(?1, ?2, ?3, ?4, ?5) "
      "ON CONFLICT(container) DO UPDATE SET state=?2, item=?3, message=?4, updated_ms=?5");
  if (!st) return st.error();
  st->bind(1, container).bind(2, s.state).bind(3, s.item).bind(4, s.message).bind(5, s.updated_ms);
  return st->run();
}

Result<bool> StateStore::any_payload() {
  auto st = db_.prepare("SELECT 1 FROM payload LIMIT 1");
  if (!st) return st.error();
  return st->step();
}

Result<std::optional<std::string>> StateStore::setting(const std::string& key) {
  auto st = db_.prepare("SELECT value FROM settings WHERE key=?1");
  if (!st) return st.error();
  st->bind(1, key);
  auto row = st->step();
  if (!row) return row.error();
  if (!*row) return std::optional<std::string>{};
  return std::optional<std::string>(st->text(0));
}

Status StateStore::set_setting(const std::string& key, const std::string& value) {
  auto st = db_.prepare("INSERT INTO settings(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET value=?2");
  if (!st) return st.error();
  st->bind(1, key).bind(2, value);
  return st->run();
}

}  // namespace farmhand::provisioner
