// Device leases, kept in the agent's state.db: which device is handed to
// which container, since when, and in which state: attached (the container
// runs and has the node), pending (the container is not running),
// attaching (written before the grant, until the node exists) or revoking
// (written before the grant is revoked, until grant and node are gone).
// A lease is written before any grant and removed only after it is gone,
// so an agent killed at any point finds every grant it made in its leases.
// Attach and detach events, with their latency, are kept too.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/sqlite.h"
#include "udev/device.h"

namespace farmhand::udev {

// A lease's state, and an event's action: enums, each named by one string
// table. The names are what state.db keeps, what goes on the wire
// (docs/protocol.md) and what the dashboard shows; they never change.
enum class LeaseState { kAttached, kPending, kAttaching, kRevoking };
inline constexpr std::array<std::string_view, 4> kLeaseStateNames = {"attached", "pending", "attaching", "revoking"};

enum class DeviceAction { kAttach, kDetach, kPending, kError };
inline constexpr std::array<std::string_view, 4> kDeviceActionNames = {"attach", "detach", "pending", "error"};

namespace detail {
// The index of `name` in `table` as an enum, none if it is not there.
template <typename E, size_t N>
constexpr std::optional<E> lookup(const std::array<std::string_view, N>& table, std::string_view name) {
  for (size_t i = 0; i < N; ++i) {
    if (table[i] == name) return static_cast<E>(i);
  }
  return std::nullopt;
}
}  // namespace detail

constexpr std::string_view to_string(LeaseState s) { return kLeaseStateNames.at(static_cast<size_t>(s)); }
constexpr std::optional<LeaseState> lease_state_from_string(std::string_view name) {
  return detail::lookup<LeaseState>(kLeaseStateNames, name);
}
constexpr std::string_view to_string(DeviceAction a) { return kDeviceActionNames.at(static_cast<size_t>(a)); }
constexpr std::optional<DeviceAction> device_action_from_string(std::string_view name) {
  return detail::lookup<DeviceAction>(kDeviceActionNames, name);
}

// The node handed over (devnode, numbers, group, mode, links), and to whom.
struct Lease : NodeSpec {
  std::string syspath;    // identifies the device
  std::string container;
  std::string rule;       // "/containers/0/devices/1": the rule that matched
  std::string subsystem;
  LeaseState state = LeaseState::kPending;
  int64_t since_ms = 0;   // wall clock, when the device was first leased
  bool operator==(const Lease&) const = default;
};

struct DeviceEvent {
  int64_t at_ms = 0;
  DeviceAction action = DeviceAction::kAttach;
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
