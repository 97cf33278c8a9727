// The provisioner's persistent state in SQLite (state.db, WAL): which
// containers farmhand manages and in which phase, their subnet allocations,
// and a journal of apply steps. A container row is written before anything is
// created on disk, so an apply killed at any step is resumed, not forgotten.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/sqlite.h"
#include "provisioner/subnet.h"

namespace farmhand::provisioner {

enum class Phase { kCreating, kReady, kDestroying };
std::string_view to_string(Phase phase);

struct ContainerRecord {
  std::string name;
  std::string spec_json;      // canonical JSON of the spec last applied (or being applied)
  std::string base_key;
  std::string clone_method;   // resolved method used for the clone
  Phase phase = Phase::kCreating;
  int64_t created_at = 0;     // unix seconds
  int64_t updated_at = 0;
};

struct JournalEntry {
  int64_t id = 0;
  int64_t apply_id = 0;
  std::string container;
  std::string step;
  std::string status;  // "begun", "done", "failed"
  int64_t started_ms = 0;
  int64_t finished_ms = 0;
  std::string detail;
};

// What the payload of a container (its sources, files, setup steps and
// services) was when last applied: an item is redone when its fingerprint
// changes. `revision` is a source's checked-out commit.
enum class PayloadKind { kSource, kFile, kStep, kService };
std::string_view to_string(PayloadKind kind);

struct PayloadRecord {
  std::string container;
  PayloadKind kind = PayloadKind::kSource;
  std::string name;
  std::string fingerprint;
  std::string revision;
  int64_t updated_at = 0;
};

// How a container's payload last went: "running" (an apply is at `item`,
// or was killed there), "ok", or "failed" (at `item`, with `message`).
struct PayloadStatus {
  std::string state;
  std::string item;     // "setup lws-build", "restart sai-builder.service"
  std::string message;  // the error of a failure
  int64_t updated_ms = 0;
};

class StateStore {
 public:
  // Opens (creating) state.db at `path` through state_db::open, which owns
  // the schema of its tables and migrates it.
  static Result<StateStore> open(const std::string& path);

  Result<std::vector<ContainerRecord>> containers();
  Result<std::optional<ContainerRecord>> container(const std::string& name);
  Status put_container(const ContainerRecord& record);
  Status set_phase(const std::string& name, Phase phase);
  Status delete_container(const std::string& name);  // also frees its subnet

  Result<std::map<std::string, Cidr>> subnets();
  // Records each name's subnet in one transaction, replacing what those names
  // had, so two containers can trade subnets without tripping uniqueness.
  Status set_subnets(const std::map<std::string, Cidr>& assignment);

  // Begins a new apply and returns its id.
  Result<int64_t> begin_apply();
  Result<int64_t> journal_begin(int64_t apply_id, const std::string& container,
                                const std::string& step);
  Status journal_end(int64_t entry_id, bool ok, const std::string& detail);
  Result<std::vector<JournalEntry>> journal(int64_t apply_id);
  Result<int64_t> last_apply_id();

  Result<std::vector<PayloadRecord>> payload(const std::string& container);
  Status put_payload(const PayloadRecord& record);
  Status delete_payload(const std::string& container, PayloadKind kind, const std::string& name);
  Result<bool> any_payload();
  Result<std::optional<PayloadStatus>> payload_status(const std::string& container);
  Status put_payload_status(const std::string& container, const PayloadStatus& status);

  // Small host-wide values (the applied config repository commit).
  Result<std::optional<std::string>> setting(const std::string& key);
  Status set_setting(const std::string& key, const std::string& value);

  sql::Database& db() { return db_; }

 private:
  explicit StateStore(sql::Database db) : db_(std::move(db)) {}
  sql::Database db_;
};

}  // namespace farmhand::provisioner
