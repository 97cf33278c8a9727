#include "agent/devices.h"

namespace farmhand::agent {

namespace {

std::string char_path(const udev::NodeSpec& node) {
  return std::string(node.block ? "/dev/block/" : "/dev/char/") + std::to_string(node.major) + ":" +
         std::to_string(node.minor);
}

}  // namespace

udev::DeviceRuleSet device_rules(const provisioner::AgentConfig& config) {
  udev::DeviceRuleSet rules;
  for (size_t i = 0; i < config.containers.size(); ++i) {
    const auto& c = config.containers[i];
    udev::ContainerRules& out = rules.emplace_back();
    out.container = c.name;
    for (size_t j = 0; j < c.devices.size(); ++j) {
      out.rules.push_back({c.devices[j], "/containers/" + std::to_string(i) + "/devices/" + std::to_string(j)});
    }
  }
  return rules;
}

Status SystemdDeviceAccess::allow(const udev::ContainerRuntime& c, const udev::NodeSpec& node) {
  const std::string unit = "systemd-nspawn@" + c.name + ".service";
  auto current = systemd_.device_allow(unit);
  if (!current) return current.error();
  const std::string path = char_path(node);
  for (const auto& [dev, access] : *current) {
    if (dev == path && access == "rw") return {};
  }
  return systemd_.set_device_allow(unit, {{path, "rw"}}, false);
}

Status SystemdDeviceAccess::revoke(const udev::ContainerRuntime& c, const udev::NodeSpec& node) {
  const std::string unit = "systemd-nspawn@" + c.name + ".service";
  auto current = systemd_.device_allow(unit);
  if (!current) return current.error();
  const std::string path = char_path(node);
  SystemdControl::DeviceAllowList keep;
  for (const auto& entry : *current) {
    if (entry.first != path) keep.push_back(entry);
  }
  if (keep.size() == current->size()) return {};
  return systemd_.set_device_allow(unit, keep, true);
}

}  // namespace farmhand::agent
