// The agent's outbox: events wait here, numbered, until the server has
// stored them (docs/protocol.md, `event` and `ack`), so none is lost when the
// agent, the server or the network fails.
//
// Not thread-safe: the daemon appends, the link reads and acknowledges, all
// on the event loop's thread.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "common/protocol.h"
#include "common/result.h"
#include "common/sqlite.h"

namespace farmhand::agent {

class Outbox {
 public:
  virtual ~Outbox() = default;

  // Stores `event` under the next seq (its own `seq` is ignored) and returns
  // that seq. Seqs start at 1, increase by one and are never reused, even
  // after acknowledge() and across restarts.
  virtual Result<uint64_t> append(protocol::Event event) = 0;
  // Appends all of `events` at once (one transaction); returns the last seq.
  virtual Result<uint64_t> append_all(std::vector<protocol::Event> events);
  // Up to `limit` stored events with seq > after_seq, in seq order.
  virtual Result<std::vector<protocol::Event>> pending(uint64_t after_seq, size_t limit) = 0;
  // The server stored every event up to `seq`: forget them.
  virtual Status acknowledge(uint64_t seq) = 0;
  // The server's `welcome`: it has stored every event up to `acked_seq`.
  // Forgets those and makes sure the next seqs follow on from the server's:
  // if either side lost state (this outbox never numbered that high, or the
  // server's database is older than what it acknowledged), the events still
  // waiting are renumbered to acked_seq + 1, ... and later appends continue
  // from there.
  virtual Status reconcile(uint64_t acked_seq) = 0;
  virtual Result<uint64_t> size() = 0;
  // The highest seq ever handed out (0 before the first).
  virtual Result<uint64_t> last_seq() = 0;
};

// The outbox in the agent's state.db (table `outbox`).
class SqliteOutbox : public Outbox {
 public:
  static Result<std::unique_ptr<SqliteOutbox>> open(const std::string& path);

  Result<uint64_t> append(protocol::Event event) override;
  Result<uint64_t> append_all(std::vector<protocol::Event> events) override;
  Result<std::vector<protocol::Event>> pending(uint64_t after_seq, size_t limit) override;
  Status acknowledge(uint64_t seq) override;
  Status reconcile(uint64_t acked_seq) override;
  Result<uint64_t> size() override;
  Result<uint64_t> last_seq() override;

 private:
  explicit SqliteOutbox(sql::Database db) : db_(std::move(db)) {}
  Status set_sequence(uint64_t value);
  sql::Database db_;
};

// An outbox in memory, for tests and the load tool's simulated agents.
class MemoryOutbox : public Outbox {
 public:
  Result<uint64_t> append(protocol::Event event) override;
  Result<std::vector<protocol::Event>> pending(uint64_t after_seq, size_t limit) override;
  Status acknowledge(uint64_t seq) override;
  Status reconcile(uint64_t acked_seq) override;
  Result<uint64_t> size() override { return static_cast<uint64_t>(events_.size()); }
  Result<uint64_t> last_seq() override { return last_seq_; }

 private:
  std::deque<protocol::Event> events_;  // in seq order
  uint64_t last_seq_ = 0;
};

}  // namespace farmhand::agent
