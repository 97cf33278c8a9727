#include "agent/devices.h"
#include "agent/report.h"

#include <algorithm>
#include <set>

#include "common/log.h"
#include "udev/rule.h"

namespace farmhand::agent {

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string char_path(const udev::NodeSpec& node) {
  return std::string(node.block ? "/dev/block/" : "/dev/char/") + std::to_string(node.major) + ":" +
         std::to_string(node.minor);
}

udev::NodeSpec node_of(const udev::Lease& l) {
  udev::NodeSpec n;
  n.devnode = l.devnode;
  n.major = l.major;
  n.minor = l.minor;
  n.group = l.group;
  n.mode = l.mode;
  n.links = l.links;
  return n;
}

}  // namespace

std::optional<DeviceMatchResult> match_device(const provisioner::AgentConfig& config, const udev::Device& device) {
  for (size_t i = 0; i < config.containers.size(); ++i) {
    const auto& c = config.containers[i];
    for (size_t j = 0; j < c.devices.size(); ++j) {
      if (udev::rule_matches(c.devices[j].match, device)) {
        return DeviceMatchResult{c.name, "/containers/" + std::to_string(i) + "/devices/" + std::to_string(j),
                                 &c.devices[j]};
      }
    }
  }
  return std::nullopt;
}

udev::NodeSpec node_for(const udev::Device& device, const udev::DeviceRule& rule) {
  udev::NodeSpec n;
  n.devnode = device.devnode;
  n.major = device.major;
  n.minor = device.minor;
  n.group = rule.group;
  n.mode = rule.mode;
  for (const auto& link : device.links) {
    if (link.rfind("/dev/serial/by-id/", 0) == 0 || link.rfind("/dev/serial/by-path/", 0) == 0) n.links.push_back(link);
  }
  std::sort(n.links.begin(), n.links.end());
  return n;
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

Status DeviceManager::attach(udev::Lease& lease, pid_t leader) {
  const udev::ContainerRuntime rt{lease.container, leader};
  const udev::NodeSpec node = node_of(lease);
  // Allow first: the node is never there without being usable.
  if (auto s = access_.allow(rt, node); !s) return s;
  if (auto s = udev::create_node(rt, node); !s) return s;
  lease.state = "attached";
  return {};
}

Status DeviceManager::detach(const udev::Lease& lease, std::optional<pid_t> leader) {
  if (!leader) return {};  // the container is gone, and its /dev with it
  const udev::ContainerRuntime rt{lease.container, *leader};
  const udev::NodeSpec node = node_of(lease);
  // Revoke first: once revoked, a node left behind is useless.
  if (auto s = access_.revoke(rt, node); !s) return s;
  return udev::remove_node(rt, node);
}

void DeviceManager::record(const std::string& action, const udev::Lease& lease,
                           std::chrono::steady_clock::time_point arrived, const std::string& detail) {
  udev::DeviceEvent e;
  e.at_ms = now_ms();
  e.action = action;
  e.container = lease.container;
  e.devnode = lease.devnode;
  e.syspath = lease.syspath;
  e.latency_us =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - arrived).count();
  e.detail = detail;
  if (auto s = leases_.add_event(e); !s) log::warning("recording a device event: ", s.error().message());
  const double ms = static_cast<double>(e.latency_us) / 1000.0;
  if (action == "error") {
    log::error("device ", lease.devnode, " (container ", lease.container, "): ", detail);
  } else {
    log::info("device ", lease.devnode, " ", action, (action == "pending" ? " (container not running) " : " "),
              "container ", lease.container, " in ", ms, " ms");
  }
  if (observer_) observer_(action, lease, detail);
}

Result<std::string> DeviceManager::detach_device(const std::string& id) {
  auto all = leases_.all();
  if (!all) return all.error();
  for (const auto& lease : *all) {
    if (device_id(lease) != id && lease.devnode != id) continue;
    const auto t0 = std::chrono::steady_clock::now();
    if (auto s = detach(lease, lease.state == "attached" ? locate_(lease.container) : std::nullopt); !s) {
      return s.error().context("detaching " + lease.devnode + " from " + lease.container);
    }
    if (auto s = leases_.remove(lease.syspath); !s) return s.error();
    record("detach", lease, t0, "by command");
    return lease.devnode + " detached from " + lease.container;
  }
  return fail("no device \"" + id + "\" is leased to a container");
}

void DeviceManager::handle(const udev::Device& d, std::chrono::steady_clock::time_point arrived) {
  if (!udev::handled_device(d) && d.action != "remove") return;
  auto existing = leases_.find(d.syspath);
  if (!existing) {
    log::error("device leases: ", existing.error().message());
    return;
  }
  if (d.action == "remove") {
    if (!*existing) return;
    const udev::Lease& lease = **existing;
    auto leader = locate_(lease.container);
    if (auto s = detach(lease, lease.state == "attached" ? leader : std::nullopt); !s) {
      record("error", lease, arrived, "detach: " + s.error().message());
    }
    if (auto s = leases_.remove(lease.syspath); !s) log::error("device leases: ", s.error().message());
    record("detach", lease, arrived);
    return;
  }
  auto match = match_device(config_, d);
  if (*existing && (!match || match->container != (*existing)->container)) {
    // No rule wants it any more, or another container does now.
    const udev::Lease& old = **existing;
    if (auto s = detach(old, old.state == "attached" ? locate_(old.container) : std::nullopt); !s) {
      record("error", old, arrived, "detach: " + s.error().message());
    }
    (void)leases_.remove(old.syspath);
    record("detach", old, arrived);
    existing->reset();
  }
  if (!match) return;
  udev::Lease lease;
  lease.syspath = d.syspath;
  lease.container = match->container;
  lease.rule = match->rule;
  lease.subsystem = d.subsystem;
  const udev::NodeSpec node = node_for(d, *match->device_rule);
  lease.devnode = node.devnode;
  lease.major = node.major;
  lease.minor = node.minor;
  lease.links = node.links;
  lease.group = node.group;
  lease.mode = node.mode;
  lease.since_ms = *existing ? (*existing)->since_ms : now_ms();
  lease.state = "pending";
  auto leader = locate_(lease.container);
  if (*existing && (*existing)->state == "attached" && leader) {
    const udev::Lease& e = **existing;
    if (e.container == lease.container && e.rule == lease.rule && e.devnode == lease.devnode &&
        e.major == lease.major && e.minor == lease.minor && e.links == lease.links && e.group == lease.group &&
        e.mode == lease.mode) {
      return;  // attached as it should be (a "change" that changes nothing farmhand uses)
    }
  }
  std::string action = "pending";
  if (leader) {
    if (auto s = attach(lease, *leader); !s) {
      record("error", lease, arrived, "attach: " + s.error().message());
    } else {
      action = "attach";
    }
  }
  if (auto s = leases_.put(lease); !s) log::error("device leases: ", s.error().message());
  record(action, lease, arrived);
}

void DeviceManager::reconcile(const std::vector<udev::Device>& present) {
  const auto t0 = std::chrono::steady_clock::now();
  std::set<std::string> seen;
  for (const auto& d : present) {
    seen.insert(d.syspath);
    udev::Device as_add = d;
    as_add.action = "add";
    auto existing = leases_.find(d.syspath);
    // A lease marked attached may have lost its node (container restarted
    // while the agent was down): attach again, idempotently.
    if (existing && *existing && (*existing)->state == "attached") {
      udev::Lease l = **existing;
      l.state = "pending";
      (void)leases_.put(l);
    }
    handle(as_add, t0);
  }
  auto all = leases_.all();
  if (!all) {
    log::error("device leases: ", all.error().message());
    return;
  }
  for (const auto& lease : *all) {
    if (seen.count(lease.syspath)) continue;
    // Unplugged while the agent was not watching.
    udev::Device gone;
    gone.action = "remove";
    gone.syspath = lease.syspath;
    handle(gone, t0);
  }
}

void DeviceManager::container_stopped(const std::string& name) {
  auto all = leases_.all();
  if (!all) {
    log::error("device leases: ", all.error().message());
    return;
  }
  for (auto lease : *all) {
    if (lease.container != name || lease.state == "pending") continue;
    // Its /dev went with it; the cgroup entry too, or it is reset at start.
    lease.state = "pending";
    if (auto s = leases_.put(lease); !s) log::error("device leases: ", s.error().message());
    record("pending", lease, std::chrono::steady_clock::now());
  }
}

void DeviceManager::container_started(const std::string& name) {
  const auto t0 = std::chrono::steady_clock::now();
  auto all = leases_.all();
  if (!all) {
    log::error("device leases: ", all.error().message());
    return;
  }
  auto leader = locate_(name);
  for (auto lease : *all) {
    if (lease.container != name) continue;
    if (!leader) {
      if (lease.state != "pending") {
        lease.state = "pending";
        (void)leases_.put(lease);
      }
      continue;
    }
    if (auto s = attach(lease, *leader); !s) {
      record("error", lease, t0, "attach: " + s.error().message());
      continue;
    }
    (void)leases_.put(lease);
    record("attach", lease, t0);
  }
}

}  // namespace farmhand::agent
