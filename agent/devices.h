// The agent's side of the device manager (udev/device_manager.h): the
// device rules it goes by, built from the agent's configuration, and the
// device access through systemd for containers that systemd runs.
#pragma once

#include "common/systemd.h"
#include "provisioner/config.h"
#include "udev/binder.h"
#include "udev/device_manager.h"

namespace farmhand::agent {

// Every container's device rules, in the configuration's order, each with
// its place in the configuration ("/containers/0/devices/1").
udev::DeviceRuleSet device_rules(const provisioner::AgentConfig& config);

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

}  // namespace farmhand::agent
