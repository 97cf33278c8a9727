// The device manager: decides which device goes to which container (by the
// device rules), keeps the leases in state.db, and drives the binder. The
// whole hotplug flow lives in udev/: a udev event (watcher) is matched
// (rule), leased (leases) and handed over (binder) from here. The agent
// gives it the rules (agent/devices.h builds them from its configuration)
// and turns what it records into events for the server.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "udev/binder.h"
#include "udev/device.h"
#include "udev/leases.h"
#include "udev/rule.h"

namespace farmhand::udev {

// The device rules the manager goes by: for each container, in the order
// the configuration lists them, its name and its rules, each with where the
// configuration writes it. The first rule that matches wins.
struct PlacedRule {
  DeviceRule rule;
  std::string path;  // "/containers/0/devices/1"
};
struct ContainerRules {
  std::string container;
  std::vector<PlacedRule> rules;
};
using DeviceRuleSet = std::vector<ContainerRules>;

// Which rule of which container matches a device.
struct DeviceMatchResult {
  std::string container;
  std::string rule;  // "/containers/0/devices/1"
  const DeviceRule* device_rule = nullptr;
};
std::optional<DeviceMatchResult> match_device(const DeviceRuleSet& rules, const Device& device);

// The node to hand over for a device under a rule.
NodeSpec node_for(const Device& device, const DeviceRule& rule);

// The name a device goes by on the dashboard and in `detach` commands: its
// /dev/serial/by-id name when it has one, else its node's name.
std::string device_id(const Lease& lease);

// The node side of a hand-over: udev::create_node and udev::remove_node,
// unless a test puts something else there.
struct NodeOps {
  std::function<Status(const ContainerRuntime&, const NodeSpec&)> create = create_node;
  std::function<Status(const ContainerRuntime&, const NodeSpec&)> remove = remove_node;
  std::function<Status(const ContainerRuntime&, const NodeSpec&)> remove_links = udev::remove_links;
};

// Every grant is covered by a lease: a lease is written "attaching" before
// its device is allowed, and stays "revoking" until the grant and the node
// are gone. A hand-over or a take-back that fails is recorded as an error
// and retried with backoff, in memory; an agent that restarts finds the
// unfinished ones by their state and finishes them in reconcile().
class DeviceManager {
 public:
  using MonoTime = Clock::MonoTime;
  using Locate = std::function<std::optional<pid_t>(const std::string& container)>;
  // `rules` is read at every event: the caller keeps it alive, and may
  // change it between calls.
  DeviceManager(const DeviceRuleSet& rules, LeaseStore& leases, DeviceAccess& access, Locate locate,
                NodeOps nodes = {}, const Clock& clock = real_clock())
      : rules_(rules),
        leases_(leases),
        access_(access),
        locate_(std::move(locate)),
        nodes_(std::move(nodes)),
        clock_(clock) {}

  // One udev event, received at `arrived`.
  void handle(const Device& device, MonoTime arrived);
  // Brings the leases in line with the devices present and the containers
  // running: attaches what is missing, detaches and forgets what is gone,
  // and finishes what an earlier agent left attaching or revoking.
  void reconcile(const std::vector<Device>& present);
  // A container (re)started: it gets every device leased to it.
  void container_started(const std::string& name);
  // A container stopped: its leases wait, pending, for its next start.
  void container_stopped(const std::string& name);
  // An admin's `detach`: the device (by its dashboard id, or its node) leaves
  // its container until it is plugged in again or the agent reconciles. If
  // the grant cannot be revoked the error says so, and the revoke is retried.
  Result<std::string> detach_device(const std::string& id);

  // When the earliest failed attach or revoke is due again; none if nothing
  // waits. The daemon arms a timer for it after every call above.
  std::optional<MonoTime> next_retry() const;
  // Tries again every attach and revoke due at `now` (the clock's, without
  // it); one that fails again waits twice as long, up to a minute.
  void retry_due(MonoTime now);
  void retry_due() { retry_due(clock_.monotonic()); }

  // Called after every recorded attach, detach, pending or error, on the
  // caller's thread: the agent turns them into events for the server.
  using Observer = std::function<void(DeviceAction action, const Lease& lease, const std::string& detail)>;
  void on_record(Observer observer) { observer_ = std::move(observer); }

  static constexpr std::chrono::milliseconds kFirstRetry{500};
  static constexpr std::chrono::milliseconds kLastRetry{60000};

 private:
  // A lease whose attach or revoke failed, waiting to be tried again.
  struct Retry {
    std::chrono::milliseconds delay{0};
    MonoTime due;
    std::string error;            // the last one recorded as an event
    std::string detail;           // of the "detach" to record once revoked
    std::optional<Device> then;   // handled once revoked: the device wants another container
  };

  // Hands the device over: true once attached (and recorded).
  bool attach(Lease lease, pid_t leader, MonoTime arrived);
  // handle(), and with `reattach` an attached lease is attached again even
  // when nothing about it changed (reconcile: its node may be gone).
  void take(const Device& device, MonoTime arrived, bool reattach);
  // Takes the device back and forgets the lease: true once done (and
  // recorded); false if it failed and waits, revoking, for a retry.
  bool revoke(Lease lease, MonoTime arrived, const std::string& detail = "", std::optional<Device> then = std::nullopt);
  // A lease left revoking: revokes it with what its retry remembers (the
  // detach's detail, the device waiting for it), then hands that device over.
  void finish_revoke(const Lease& lease, MonoTime arrived);
  // Retries the lease of `syspath` as state.db has it now.
  void retry(const std::string& syspath);
  // The lease waits, pending, for its container to run: no grant, no retry.
  void wait_pending(Lease lease, MonoTime arrived);
  // Waits, to be retried; records the error unless it is the one recorded last.
  void failed(const Lease& lease, MonoTime arrived, const std::string& error, const std::string& detail = "",
              std::optional<Device> then = std::nullopt);
  void settled(const std::string& syspath) { retries_.erase(syspath); }
  void record(DeviceAction action, const Lease& lease, MonoTime arrived, const std::string& detail = "");

  const DeviceRuleSet& rules_;
  LeaseStore& leases_;
  DeviceAccess& access_;
  Locate locate_;
  NodeOps nodes_;
  const Clock& clock_;
  Observer observer_;
  std::map<std::string, Retry> retries_;  // by syspath
};

}  // namespace farmhand::udev
