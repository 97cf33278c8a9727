// The device manager: decides which device goes to which container (by the
// configuration's device rules), keeps the leases in state.db, and drives
// the binder. Used by `farmhand daemon` (events, reconcile) and `farmhand
// devices` (listing).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/systemd.h"
#include "provisioner/config.h"
#include "udev/binder.h"
#include "udev/device.h"
#include "udev/leases.h"

namespace farmhand::agent {

// Which rule of which container matches a device.
struct DeviceMatchResult {
  std::string container;
  std::string rule;  // "/containers/0/devices/1"
  const udev::DeviceRule* device_rule = nullptr;
};
std::optional<DeviceMatchResult> match_device(const provisioner::AgentConfig& config, const udev::Device& device);

// The node to hand over for a device under a rule.
udev::NodeSpec node_for(const udev::Device& device, const udev::DeviceRule& rule);

// DeviceAllow= of systemd-nspawn@NAME.service, at runtime, through D-Bus.
// Revoking resets the list to what it was without the device: systemd
// cannot remove a single entry.
class SystemdDeviceAccess final : public udev::DeviceAccess {
 public:
  explicit SystemdDeviceAccess(SystemdControl& systemd) : systemd_(systemd) {}
  Status allow(const udev::ContainerRuntime& c, const udev::NodeSpec& node) override;
  Status revoke(const udev::ContainerRuntime& c, const udev::NodeSpec& node) override;

 private:
  SystemdControl& systemd_;
};

// The node side of a hand-over: udev::create_node and udev::remove_node,
// unless a test puts something else there.
struct NodeOps {
  std::function<Status(const udev::ContainerRuntime&, const udev::NodeSpec&)> create = udev::create_node;
  std::function<Status(const udev::ContainerRuntime&, const udev::NodeSpec&)> remove = udev::remove_node;
  std::function<Status(const udev::ContainerRuntime&, const udev::NodeSpec&)> remove_links = udev::remove_links;
};

// Every grant is covered by a lease: a lease is written "attaching" before
// its device is allowed, and stays "revoking" until the grant and the node
// are gone. A hand-over or a take-back that fails is recorded as an error
// and retried with backoff, in memory; an agent that restarts finds the
// unfinished ones by their state and finishes them in reconcile().
class DeviceManager {
 public:
  using Clock = std::chrono::steady_clock;
  using Locate = std::function<std::optional<pid_t>(const std::string& container)>;
  DeviceManager(const provisioner::AgentConfig& config, udev::LeaseStore& leases, udev::DeviceAccess& access,
                Locate locate, NodeOps nodes = {})
      : config_(config), leases_(leases), access_(access), locate_(std::move(locate)), nodes_(std::move(nodes)) {}

  // One udev event, received at `arrived`.
  void handle(const udev::Device& device, Clock::time_point arrived);
  // Brings the leases in line with the devices present and the containers
  // running: attaches what is missing, detaches and forgets what is gone,
  // and finishes what an earlier agent left attaching or revoking.
  void reconcile(const std::vector<udev::Device>& present);
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
  std::optional<Clock::time_point> next_retry() const;
  // Tries again every attach and revoke due at `now`; one that fails again
  // waits twice as long, up to a minute.
  void retry_due(Clock::time_point now = Clock::now());

  // Called after every recorded attach, detach, pending or error, on the
  // caller's thread: the agent turns them into events for the server.
  using Observer = std::function<void(const std::string& action, const udev::Lease& lease,
                                      const std::string& detail)>;
  void on_record(Observer observer) { observer_ = std::move(observer); }

  static constexpr std::chrono::milliseconds kFirstRetry{500};
  static constexpr std::chrono::milliseconds kLastRetry{60000};

 private:
  // A lease whose attach or revoke failed, waiting to be tried again.
  struct Retry {
    std::chrono::milliseconds delay{0};
    Clock::time_point due;
    std::string error;                 // the last one recorded as an event
    std::string detail;                // of the "detach" to record once revoked
    std::optional<udev::Device> then;  // handled once revoked: the device wants another container
  };

  // Hands the device over: true once attached (and recorded).
  bool attach(udev::Lease lease, pid_t leader, Clock::time_point arrived);
  // handle(), and with `reattach` an attached lease is attached again even
  // when nothing about it changed (reconcile: its node may be gone).
  void take(const udev::Device& device, Clock::time_point arrived, bool reattach);
  // Takes the device back and forgets the lease: true once done (and
  // recorded); false if it failed and waits, revoking, for a retry.
  bool revoke(udev::Lease lease, Clock::time_point arrived, const std::string& detail = "",
              std::optional<udev::Device> then = std::nullopt);
  // A lease left revoking: revokes it with what its retry remembers (the
  // detach's detail, the device waiting for it), then hands that device over.
  void finish_revoke(const udev::Lease& lease, Clock::time_point arrived);
  // Waits, to be retried; records the error unless it is the one recorded last.
  void failed(const udev::Lease& lease, Clock::time_point arrived, const std::string& error,
              const std::string& detail = "", std::optional<udev::Device> then = std::nullopt);
  void settled(const std::string& syspath) { retries_.erase(syspath); }
  void record(const std::string& action, const udev::Lease& lease, Clock::time_point arrived,
              const std::string& detail = "");

  const provisioner::AgentConfig& config_;
  udev::LeaseStore& leases_;
  udev::DeviceAccess& access_;
  Locate locate_;
  NodeOps nodes_;
  Observer observer_;
  std::map<std::string, Retry> retries_;  // by syspath
};

}  // namespace farmhand::agent
