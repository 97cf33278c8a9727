// The device manager: decides which device goes to which container (by the
// configuration's device rules), keeps the leases in state.db, and drives
// the binder. Used by `farmhand daemon` (events, reconcile) and `farmhand
// devices` (listing).
#pragma once

#include <chrono>
#include <functional>
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

class DeviceManager {
 public:
  using Locate = std::function<std::optional<pid_t>(const std::string& container)>;
  DeviceManager(const provisioner::AgentConfig& config, udev::LeaseStore& leases, udev::DeviceAccess& access,
                Locate locate)
      : config_(config), leases_(leases), access_(access), locate_(std::move(locate)) {}

  // One udev event, received at `arrived`.
  void handle(const udev::Device& device, std::chrono::steady_clock::time_point arrived);
  // Brings the leases in line with the devices present and the containers
  // running: attaches what is missing, detaches and forgets what is gone.
  void reconcile(const std::vector<udev::Device>& present);
  // A container (re)started: it gets every device leased to it.
  void container_started(const std::string& name);
  // A container stopped: its leases wait, pending, for its next start.
  void container_stopped(const std::string& name);
  // An admin's `detach`: the device (by its dashboard id, or its node) leaves
  // its container until it is plugged in again or the agent reconciles.
  Result<std::string> detach_device(const std::string& id);

  // Called after every recorded attach, detach, pending or error, on the
  // caller's thread: the agent turns them into events for the server.
  using Observer = std::function<void(const std::string& action, const udev::Lease& lease,
                                      const std::string& detail)>;
  void on_record(Observer observer) { observer_ = std::move(observer); }

 private:
  Status attach(udev::Lease& lease, pid_t leader);
  Status detach(const udev::Lease& lease, std::optional<pid_t> leader);
  void record(const std::string& action, const udev::Lease& lease, std::chrono::steady_clock::time_point arrived,
              const std::string& detail = "");

  const provisioner::AgentConfig& config_;
  udev::LeaseStore& leases_;
  udev::DeviceAccess& access_;
  Locate locate_;
  Observer observer_;
};

}  // namespace farmhand::agent
