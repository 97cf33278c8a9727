// Device leases, kept in the agent's state.db: which device is handed to
// which container, since when, and in which state: attached (the container
// runs and has the node), pending (the container is not running),
// attaching (written before the grant, until the node exists) or revoking
// (written before the grant is revoked, until grant and node are gone).
// A lease is written before any grant and removed only after it is gone,
// so an agent killed at any point finds every grant it made in its leases.
// Attach and detach events, with their latency, are kept too.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/sqlite.h"

namespace farmhand::udev {

struct Lease {
  std::string syspath;    // identifies the device
  std::string container;
  std::string rule;       // "/containers/0/devices/1": the rule that matched
  std::string subsystem;
  std::string devnode;
  unsigned major = 0;
  unsigned minor = 0;
  std::vector<std::string> links;
  std::string group;
  unsigned mode = 0660;
  std::string state;      // "attached", "pending", "attaching" or "revoking"
  int64_t since_ms = 0;   // wall clock, when the device was first leased
  bool operator==(const Lease&) const = default;
};

struct DeviceEvent {
  int64_t at_ms = 0;
  std::string action;     // "attach", "detach", "pending", "error"
  std::string container;
  std::string devnode;
  std::string syspath;
  int64_t latency_us = -1;  // from the udev event's arrival to done
  std::string detail;       // the error, if any
};

class LeaseStore {
 public:
  static Result<LeaseStore> open(const std::string& db_path);

  Result<std::vector<Lease>> all();
  Result<std::optional<Lease>> find(const std::string& syspath);
  Status put(const Lease& lease);
  Status remove(const std::string& syspath);
  Status add_event(const DeviceEvent& event);
  // The most recent events first.
  Result<std::vector<DeviceEvent>> events(int limit);

 private:
  explicit LeaseStore(sql::Database db) : db_(std::move(db)) {}
  sql::Database db_;
};

}  // namespace farmhand::udev
