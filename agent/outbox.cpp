#include "agent/outbox.h"

#include <algorithm>

#include "common/state_db.h"

namespace farmhand::agent {

namespace {

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
  // The table, outbox, is state_db's.
  auto db = state_db::open(path);
  if (!db) return db.error().context("opening the outbox");
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

Status SqliteOutbox::set_sequence(uint64_t value) {
  // AUTOINCREMENT hands out max(sqlite_sequence, max rowid) + 1.
  for (const char* query : {"UPDATE sqlite_sequence SET seq = ? WHERE name = 'outbox'",
                            "INSERT INTO sqlite_sequence(seq, name) VALUES(?, 'outbox')"}) {
    auto stmt = db_.prepare(query);
    if (!stmt) return stmt.error();
    stmt->bind(1, static_cast<int64_t>(value));
    if (auto s = stmt->run(); !s) return s;
    if (db_.changes() > 0) break;
  }
  return {};
}

Status SqliteOutbox::reconcile(uint64_t acked_seq) {
  Status s = db_.transaction([&]() -> Status {
    auto last = last_seq();
    if (!last) return last.error();
    // Seqs this outbox never handed out cannot be acknowledgements of its
    // events: the server has more than this state.db ever numbered.
    if (*last >= acked_seq) {
      if (auto a = acknowledge(acked_seq); !a) return a;
    }
    auto first = single_integer(db_, "SELECT MIN(seq) FROM outbox");
    if (!first) return first.error();
    auto count = single_integer(db_, "SELECT COUNT(*) FROM outbox");
    if (!count) return count.error();
    // The next event the server takes is acked_seq + 1. Anything else means
    // one side lost state: this state.db (the server has more) or the
    // server's database (restored from an older backup). Either way, what
    // waits here is renumbered to follow on from the server's events.
    if (*count == 0) return *last == acked_seq ? Status{} : set_sequence(acked_seq);
    if (*first == acked_seq + 1) return {};
    const int64_t shift = static_cast<int64_t>(acked_seq + 1) - static_cast<int64_t>(*first);
    // Through negative numbers, so no two rows ever share a seq mid-way.
    if (auto r = db_.exec("UPDATE outbox SET seq = -seq"); !r) return r;
    auto stmt = db_.prepare("UPDATE outbox SET seq = -seq + ?");
    if (!stmt) return stmt.error();
    stmt->bind(1, shift);
    if (auto r = stmt->run(); !r) return r;
    return set_sequence(acked_seq + *count);
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
  if (last_seq_ >= acked_seq) {
    if (auto a = acknowledge(acked_seq); !a) return a;
  }
  uint64_t next = acked_seq + 1;
  for (auto& e : events_) e.seq = next++;
  last_seq_ = next - 1;
  return {};
}

}  // namespace farmhand::agent
