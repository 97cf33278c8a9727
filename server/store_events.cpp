// Events, heartbeats and commands: the hot paths reuse prepared statements
// and run inside the caller's batch transaction.
#include <sqlite3.h>

#include "server/store.h"

namespace farmhand::server {

Status Store::prepare_hot_statements() {
  auto ev = db_.prepare(
      "INSERT INTO events(host, seq, time, kind, container, device, message, received) "
      "VALUES(?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(host, seq) DO NOTHING");
  if (!ev) return ev.error();
  insert_event_.emplace(std::move(*ev));
  auto hb = db_.prepare("INSERT INTO heartbeats(host, time, received, body) VALUES(?, ?, ?, ?)");
  if (!hb) return hb.error();
  insert_heartbeat_.emplace(std::move(*hb));
  auto up = db_.prepare("UPDATE hosts SET heartbeat = ?, last_seen = ? WHERE name = ?");
  if (!up) return up.error();
  update_heartbeat_.emplace(std::move(*up));
  return {};
}

Result<uint64_t> Store::acked_seq(const std::string& host) {
  auto st = db_.prepare("SELECT COALESCE(MAX(seq), 0) FROM events WHERE host = ?");
  if (!st) return st.error();
  st->bind(1, host);
  auto row = st->step();
  if (!row) return row.error();
  return static_cast<uint64_t>(*row ? st->integer(0) : 0);
}

Result<int64_t> Store::insert_event(const std::string& host, const protocol::Event& e, int64_t received) {
  sql::Statement& st = *insert_event_;
  st.bind(1, host)
      .bind(2, static_cast<int64_t>(e.seq))
      .bind(3, e.time)
      .bind(4, e.kind)
      .bind_optional(5, e.container)
      .bind_optional(6, e.device)
      .bind(7, e.message)
      .bind(8, received);
  if (auto s = st.run(); !s) return s.error();
  return db_.changes() > 0 ? db_.last_insert_rowid() : int64_t{0};
}

Status Store::insert_heartbeat(const std::string& host, const protocol::Heartbeat& hb, int64_t received) {
  std::string body = protocol::to_json(hb).dump();
  insert_heartbeat_->bind(1, host).bind(2, hb.time).bind(3, received).bind(4, body);
  if (auto s = insert_heartbeat_->run(); !s) return s;
  update_heartbeat_->bind(1, body).bind(2, received).bind(3, host);
  return update_heartbeat_->run();
}

namespace {
StoredEvent event_from_row(const sql::Statement& st) {
  StoredEvent e;
  e.id = st.integer(0);
  e.host = st.text(1);
  e.event.seq = static_cast<uint64_t>(st.integer(2));
  e.event.time = st.integer(3);
  e.event.kind = st.text(4);
  if (!st.is_null(5)) e.event.container = st.text(5);
  if (!st.is_null(6)) e.event.device = st.text(6);
  e.event.message = st.text(7);
  return e;
}
}  // namespace

Result<EventPage> Store::query_events(const EventQuery& q) {
  std::string sql = "SELECT id, host, seq, time, kind, container, device, message FROM events WHERE 1";
  if (q.host) sql += " AND host = :host";
  if (q.kind) sql += " AND kind = :kind";
  if (q.container) sql += " AND container = :container";
  if (q.before) sql += " AND id < :before";
  sql += " ORDER BY id DESC LIMIT :limit";
  auto st = db_.prepare(sql);
  if (!st) return st.error();
  int i = 1;
  if (q.host) st->bind(i++, *q.host);
  if (q.kind) st->bind(i++, *q.kind);
  if (q.container) st->bind(i++, *q.container);
  if (q.before) st->bind(i++, *q.before);
  // One row more than asked tells whether there is a next page.
  st->bind(i, int64_t{q.limit} + 1);
  EventPage page;
  for (;;) {
    auto row = st->step();
    if (!row) return row.error();
    if (!*row) break;
    page.events.push_back(event_from_row(*st));
  }
  if (page.events.size() > static_cast<size_t>(q.limit)) {
    page.events.pop_back();
    page.next = page.events.back().id;
  }
  return page;
}

Result<std::vector<nlohmann::json>> Store::heartbeats_since(const std::string& host, int64_t since) {
  auto st = db_.prepare("SELECT body FROM heartbeats WHERE host = ? AND time >= ? ORDER BY time LIMIT ?");
  if (!st) return st.error();
  st->bind(1, host).bind(2, since).bind(3, int64_t{kMaxHeartbeatRows});
  std::vector<nlohmann::json> out;
  for (;;) {
    auto row = st->step();
    if (!row) return row.error();
    if (!*row) break;
    out.push_back(nlohmann::json::parse(st->text(0), nullptr, false));
  }
  return out;
}

Result<int64_t> Store::prune_heartbeats(int64_t older_than) {
  auto st = db_.prepare("DELETE FROM heartbeats WHERE received < ?");
  if (!st) return st.error();
  st->bind(1, older_than);
  if (auto s = st->run(); !s) return s.error();
  return db_.changes();
}

Result<std::string> Store::create_command(const std::string& host, const protocol::Command& c,
                                          const std::string& user, int64_t now) {
  auto st = db_.prepare("INSERT INTO commands(host, action, container, device, user, created) VALUES(?, ?, ?, ?, ?, ?)");
  if (!st) return st.error();
  st->bind(1, host).bind(2, c.action).bind_optional(3, c.container).bind_optional(4, c.device).bind(5, user).bind(6, now);
  if (auto s = st->run(); !s) return s.error();
  return "c-" + std::to_string(db_.last_insert_rowid());
}

Status Store::finish_command(const std::string& host, const protocol::CommandResult& r, int64_t now) {
  if (r.id.size() < 3 || r.id.compare(0, 2, "c-") != 0 ||
      r.id.find_first_not_of("0123456789", 2) != std::string::npos || r.id.size() > 20) {
    return {};  // not one of ours: nothing to update
  }
  auto st = db_.prepare("UPDATE commands SET finished = ?, ok = ?, message = ? WHERE n = ? AND host = ?");
  if (!st) return st.error();
  st->bind(1, now).bind(2, int64_t{r.ok ? 1 : 0}).bind(3, r.message).bind(4, std::stoll(r.id.substr(2))).bind(5, host);
  return st->run();
}

nlohmann::json event_json(const StoredEvent& e) {
  nlohmann::json j = {{"host", e.host}, {"id", e.id}, {"seq", e.event.seq}, {"time", e.event.time},
                      {"kind", e.event.kind}};
  if (e.event.container) j["container"] = *e.event.container;
  if (e.event.device) j["device"] = *e.event.device;
  j["message"] = e.event.message;
  return j;
}

}  // namespace farmhand::server
