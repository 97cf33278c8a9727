#include "agent/outbox.h"

#include <algorithm>

namespace farmhand::agent {

namespace {

constexpr const char* kSchema = R"(
CREATE TABLE IF NOT EXISTS outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  time INTEGER NOT NULL,
  kind TEXT NOT NULL,
  container TEXT,
  device TEXT,
  message TEXT NOT NULL
))";

Result<uint64_t> single_integer(sql::Database& db, std::string_view query) {
  auto stmt = db.prepare(query);
  if (!stmt) return stmt.error();
  auto row = stmt->step();
  if (!row) return row.error();
  if (!*row || stmt->is_null(0)) return uint64_t{0};
  return static_cast<uint64_t>(stmt->integer(0));
}

}  // namespace

Result<std::unique_ptr<SqliteOutbox>> SqliteOutbox::open(const std::string& path) {
  auto db = sql::Database::open(path);
  if (!db) return db.error().context("opening the outbox");
  if (auto s = db->exec(kSchema); !s) return s.error().context("creating the outbox in '" + path + "'");
  return std::unique_ptr<SqliteOutbox>(new SqliteOutbox(std::move(db).value()));
}

Result<uint64_t> SqliteOutbox::append(protocol::Event event) {
  auto stmt = db_.prepare(
      "INSERT INTO outbox(time, kind, container, device, message) VALUES(?, ?, ?, ?, ?)");
  if (!stmt) return stmt.error().context("adding an event to the outbox");
  stmt->bind(1, event.time)
      .bind(2, std::string_view(event.kind))
      .bind_optional(3, event.container)
      .bind_optional(4, event.device)
      .bind(5, std::string_view(event.message));
  if (auto s = stmt->run(); !s) return s.error().context("adding an event to the outbox");
  return static_cast<uint64_t>(db_.last_insert_rowid());
}

Result<uint64_t> SqliteOutbox::append_all(std::vector<protocol::Event> events) {
  uint64_t last = 0;
  Status s = db_.transaction([&]() -> Status {
    for (auto& e : events) {
      auto seq = append(std::move(e));
      if (!seq) return seq.error();
      last = *seq;
    }
    return {};
  });
  if (!s) return s.error();
  return last;
}

Result<std::vector<protocol::Event>> SqliteOutbox::pending(uint64_t after_seq, size_t limit) {
  auto stmt = db_.prepare(
      "SELECT seq, time, kind, container, device, message FROM outbox WHERE seq > ? "
      "ORDER BY seq LIMIT ?");
  if (!stmt) return stmt.error().context("reading the outbox");
  stmt->bind(1, static_cast<int64_t>(after_seq)).bind(2, static_cast<int64_t>(limit));
  std::vector<protocol::Event> events;
  for (;;) {
    auto row = stmt->step();
    if (!row) return row.error().context("reading the outbox");
    if (!*row) break;
    protocol::Event e;
    e.seq = static_cast<uint64_t>(stmt->integer(0));
    e.time = stmt->integer(1);
    e.kind = stmt->text(2);
    if (!stmt->is_null(3)) e.container = stmt->text(3);
    if (!stmt->is_null(4)) e.device = stmt->text(4);
    e.message = stmt->text(5);
    events.push_back(std::move(e));
  }
  return events;
}

Status SqliteOutbox::acknowledge(uint64_t seq) {
  auto stmt = db_.prepare("DELETE FROM outbox WHERE seq <= ?");
  if (!stmt) return stmt.error().context("acknowledging outbox events");
  stmt->bind(1, static_cast<int64_t>(seq));
  if (auto s = stmt->run(); !s) return s.error().context("acknowledging outbox events");
  return {};
}

Status SqliteOutbox::raise_sequence(uint64_t at_least) {
  // AUTOINCREMENT hands out max(sqlite_sequence, max rowid) + 1.
  auto current = last_seq();
  if (!current) return current.error();
  if (*current >= at_least) return {};
  for (const char* query : {"UPDATE sqlite_sequence SET seq = ? WHERE name = 'outbox'",
                            "INSERT INTO sqlite_sequence(seq, name) VALUES(?, 'outbox')"}) {
    auto stmt = db_.prepare(query);
    if (!stmt) return stmt.error();
    stmt->bind(1, static_cast<int64_t>(at_least));
    if (auto s = stmt->run(); !s) return s;
    if (db_.changes() > 0) break;
  }
  return {};
}

Status SqliteOutbox::reconcile(uint64_t acked_seq) {
  Status s = db_.transaction([&]() -> Status {
    auto last = last_seq();
    if (!last) return last.error();
    if (*last >= acked_seq) return acknowledge(acked_seq);
    // The server has more than this outbox ever numbered: its state.db was
    // lost. Renumber what waits so it follows on from the server's events.
    auto first = single_integer(db_, "SELECT MIN(seq) FROM outbox");
    if (!first) return first.error();
    uint64_t top = acked_seq;
    if (*first != 0) {
      uint64_t shift = acked_seq + 1 - *first;
      auto stmt = db_.prepare("UPDATE outbox SET seq = seq + ?");
      if (!stmt) return stmt.error();
      stmt->bind(1, static_cast<int64_t>(shift));
      if (auto r = stmt->run(); !r) return r;
      auto max = single_integer(db_, "SELECT MAX(seq) FROM outbox");
      if (!max) return max.error();
      top = std::max(top, *max);
    }
    return raise_sequence(top);
  });
  if (!s) return s.error().context("reconciling the outbox with the server's acked_seq " +
                                   std::to_string(acked_seq));
  return {};
}

Result<uint64_t> SqliteOutbox::size() {
  auto n = single_integer(db_, "SELECT COUNT(*) FROM outbox");
  if (!n) return n.error().context("counting the outbox");
  return n;
}

Result<uint64_t> SqliteOutbox::last_seq() {
  auto n = single_integer(db_, "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'");
  if (!n) return n.error().context("reading the outbox sequence");
  return n;
}

Result<uint64_t> Outbox::append_all(std::vector<protocol::Event> events) {
  uint64_t last = 0;
  for (auto& e : events) {
    auto seq = append(std::move(e));
    if (!seq) return seq.error();
    last = *seq;
  }
  return last;
}

Result<uint64_t> MemoryOutbox::append(protocol::Event event) {
  event.seq = ++last_seq_;
  events_.push_back(std::move(event));
  return last_seq_;
}

Result<std::vector<protocol::Event>> MemoryOutbox::pending(uint64_t after_seq, size_t limit) {
  std::vector<protocol::Event> out;
  auto it = std::upper_bound(events_.begin(), events_.end(), after_seq,
                             [](uint64_t seq, const protocol::Event& e) { return seq < e.seq; });
  for (; it != events_.end() && out.size() < limit; ++it) out.push_back(*it);
  return out;
}

Status MemoryOutbox::acknowledge(uint64_t seq) {
  while (!events_.empty() && events_.front().seq <= seq) events_.pop_front();
  return {};
}

Status MemoryOutbox::reconcile(uint64_t acked_seq) {
  if (last_seq_ >= acked_seq) return acknowledge(acked_seq);
  if (!events_.empty()) {
    uint64_t shift = acked_seq + 1 - events_.front().seq;
    for (auto& e : events_) e.seq += shift;
    last_seq_ = events_.back().seq;
  } else {
    last_seq_ = acked_seq;
  }
  return {};
}

}  // namespace farmhand::agent
