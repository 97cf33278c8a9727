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

namespace {

// The same grant: another node under the same syspath (a raw USB device
// plugged in again gets a new number) is another device cgroup entry.
bool same_node(const udev::Lease& l, const udev::NodeSpec& n) {
  return l.devnode == n.devnode && l.major == n.major && l.minor == n.minor;
}

}  // namespace

bool DeviceManager::attach(udev::Lease lease, pid_t leader, Clock::time_point arrived) {
  // The lease first: an agent killed after the grant finds it, attaching,
  // and finishes or undoes it. Without it written, no grant.
  lease.state = "attaching";
  if (auto s = leases_.put(lease); !s) {
    failed(lease, arrived, "attach: " + s.error().message());
    return false;
  }
  const udev::ContainerRuntime rt{lease.container, leader};
  const udev::NodeSpec node = node_of(lease);
  // Allow before the node: the node is never there without being usable.
  if (auto s = access_.allow(rt, node); !s) {
    failed(lease, arrived, "attach: " + s.error().message());
    return false;
  }
  if (auto s = nodes_.create(rt, node); !s) {
    failed(lease, arrived, "attach: " + s.error().message());
    return false;
  }
  lease.state = "attached";
  if (auto s = leases_.put(lease); !s) {
    // Still "attaching" in state.db: the retry attaches again, idempotently.
    lease.state = "attaching";
    failed(lease, arrived, "attach: " + s.error().message());
    return false;
  }
  settled(lease.syspath);
  record("attach", lease, arrived);
  return true;
}

bool DeviceManager::revoke(udev::Lease lease, Clock::time_point arrived, const std::string& detail,
                           std::optional<udev::Device> then) {
  // A pending lease has no grant; nor has a container that is not running:
  // its grant went with it, and its /dev too.
  std::optional<pid_t> leader;
  if (lease.state != "pending") leader = locate_(lease.container);
  if (leader) {
    lease.state = "revoking";
    // Should this write fail, the lease as it was still covers the grant,
    // and the next reconcile takes it back: go on.
    if (auto s = leases_.put(lease); !s) log::error("device leases: ", s.error().message());
    const udev::ContainerRuntime rt{lease.container, *leader};
    const udev::NodeSpec node = node_of(lease);
    // Revoke first: once revoked, a node left behind is useless.
    Status s = access_.revoke(rt, node);
    if (s) s = nodes_.remove(rt, node);
    if (!s) {
      failed(lease, arrived, "detach: " + s.error().message(), detail, std::move(then));
      return false;
    }
  }
  // Only now that the grant is gone may the lease go.
  if (auto s = leases_.remove(lease.syspath); !s) log::error("device leases: ", s.error().message());
  settled(lease.syspath);
  record("detach", lease, arrived, detail);
  return true;
}

void DeviceManager::failed(const udev::Lease& lease, Clock::time_point arrived, const std::string& error,
                           const std::string& detail, std::optional<udev::Device> then) {
  auto [it, fresh] = retries_.try_emplace(lease.syspath);
  Retry& r = it->second;
  r.delay = fresh ? kFirstRetry : std::min(r.delay * 2, kLastRetry);
  r.due = Clock::now() + r.delay;
  r.detail = detail;
  r.then = std::move(then);
  const std::string again = " (" + lease.state + ", retried in " + std::to_string(r.delay.count()) + " ms)";
  // One event per distinct failure, not one per retry: the lease's state
  // shows meanwhile that it is still being retried.
  if (fresh || r.error != error) {
    r.error = error;
    record("error", lease, arrived, error + again);
  } else {
    log::warning("device ", lease.devnode, " (container ", lease.container, "): ", error, again);
  }
}

void DeviceManager::finish_revoke(const udev::Lease& lease, Clock::time_point arrived) {
  // Copies: a revoke that succeeds forgets the retry.
  std::string detail;
  std::optional<udev::Device> then;
  if (auto r = retries_.find(lease.syspath); r != retries_.end()) {
    detail = r->second.detail;
    then = r->second.then;
  }
  if (revoke(lease, arrived, detail, then) && then) handle(*then, arrived);
}

std::optional<DeviceManager::Clock::time_point> DeviceManager::next_retry() const {
  std::optional<Clock::time_point> next;
  for (const auto& [syspath, r] : retries_) {
    if (!next || r.due < *next) next = r.due;
  }
  return next;
}

void DeviceManager::retry_due(Clock::time_point now) {
  std::vector<std::string> due;
  for (const auto& [syspath, r] : retries_) {
    if (r.due <= now) due.push_back(syspath);
  }
  for (const auto& syspath : due) {
    auto it = retries_.find(syspath);
    if (it == retries_.end()) continue;  // settled meanwhile, by an earlier one
    auto found = leases_.find(syspath);
    if (!found) {
      log::error("device leases: ", found.error().message());
      it->second.delay = std::min(it->second.delay * 2, kLastRetry);
      it->second.due = Clock::now() + it->second.delay;
      continue;
    }
    if (!*found) {
      settled(syspath);
      continue;
    }
    udev::Lease lease = **found;
    const auto t0 = Clock::now();
    if (lease.state == "revoking") {
      finish_revoke(lease, t0);
    } else if (lease.state == "attaching") {
      if (auto leader = locate_(lease.container)) {
        attach(lease, *leader, t0);
      } else {
        // Stopped meanwhile: handed over at its next start.
        settled(syspath);
        lease.state = "pending";
        if (auto s = leases_.put(lease); !s) log::error("device leases: ", s.error().message());
        record("pending", lease, t0);
      }
    } else {
      settled(syspath);
    }
  }
}

void DeviceManager::record(const std::string& action, const udev::Lease& lease, Clock::time_point arrived,
                           const std::string& detail) {
  udev::DeviceEvent e;
  e.at_ms = now_ms();
  e.action = action;
  e.container = lease.container;
  e.devnode = lease.devnode;
  e.syspath = lease.syspath;
  e.latency_us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - arrived).count();
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
    if (!revoke(lease, Clock::now(), "by command")) {
      const auto& r = retries_.at(lease.syspath);
      return fail("detaching " + lease.devnode + " from " + lease.container + ": " + r.error +
                  "; it stays revoking and is retried");
    }
    return lease.devnode + " detached from " + lease.container;
  }
  return fail("no device \"" + id + "\" is leased to a container");
}

void DeviceManager::handle(const udev::Device& d, Clock::time_point arrived) { take(d, arrived, false); }

void DeviceManager::take(const udev::Device& d, Clock::time_point arrived, bool reattach) {
  if (!udev::handled_device(d) && d.action != "remove") return;
  auto existing = leases_.find(d.syspath);
  if (!existing) {
    log::error("device leases: ", existing.error().message());
    return;
  }
  if (d.action == "remove") {
    if (*existing) revoke(**existing, arrived);
    return;
  }
  auto match = match_device(config_, d);
  std::optional<udev::NodeSpec> node;
  if (match) node = node_for(d, *match->device_rule);
  if (*existing && (!match || match->container != (*existing)->container || !same_node(**existing, *node))) {
    // No rule wants it any more, another container does now, or it is
    // another node: the old grant goes first. Should that fail, the device
    // is handed over once the retried revoke succeeds.
    if (!revoke(**existing, arrived, "", match ? std::optional<udev::Device>(d) : std::nullopt)) return;
    existing->reset();
  }
  if (!match) return;
  udev::Lease lease;
  lease.syspath = d.syspath;
  lease.container = match->container;
  lease.rule = match->rule;
  lease.subsystem = d.subsystem;
  lease.devnode = node->devnode;
  lease.major = node->major;
  lease.minor = node->minor;
  lease.links = node->links;
  lease.group = node->group;
  lease.mode = node->mode;
  lease.since_ms = *existing ? (*existing)->since_ms : now_ms();
  auto leader = locate_(lease.container);
  if (!leader) {
    // Nothing granted (a revoking lease's grant went with its container).
    settled(lease.syspath);
    lease.state = "pending";
    if (auto s = leases_.put(lease); !s) log::error("device leases: ", s.error().message());
    record("pending", lease, arrived);
    return;
  }
  if (*existing && (*existing)->state == "attached" && !reattach) {
    const udev::Lease& e = **existing;
    if (e.rule == lease.rule && e.links == lease.links && e.group == lease.group && e.mode == lease.mode) {
      return;  // attached as it should be (a "change" that changes nothing farmhand uses)
    }
  }
  // A "change" that renamed the device's by-id or by-path links: the old
  // names go once the new ones are there, or they would lead nowhere.
  std::vector<std::string> stale;
  if (*existing && (*existing)->container == lease.container) {
    for (const auto& link : (*existing)->links) {
      if (std::find(lease.links.begin(), lease.links.end(), link) == lease.links.end()) stale.push_back(link);
    }
  }
  // A lease left attaching or revoking with the same device for the same
  // container is attached again: every step can be repeated.
  if (attach(lease, *leader, arrived) && !stale.empty()) {
    udev::NodeSpec old = node_of(lease);
    old.links = stale;
    if (auto s = nodes_.remove_links(udev::ContainerRuntime{lease.container, *leader}, old); !s) {
      log::warning("device ", lease.devnode, ": removing its old links in ", lease.container, ": ",
                   s.error().message());
    }
  }
}

void DeviceManager::reconcile(const std::vector<udev::Device>& present) {
  const auto t0 = Clock::now();
  std::set<std::string> seen;
  for (const auto& d : present) {
    seen.insert(d.syspath);
    udev::Device as_add = d;
    as_add.action = "add";
    // A lease marked attached may have lost its node (container restarted
    // while the agent was down): attach again, idempotently.
    take(as_add, t0, true);
  }
  auto all = leases_.all();
  if (!all) {
    log::error("device leases: ", all.error().message());
    return;
  }
  for (const auto& lease : *all) {
    if (seen.count(lease.syspath)) continue;
    // Unplugged while the agent was not watching, or while it was taking
    // it back or handing it over: whatever was granted is revoked.
    revoke(lease, t0);
  }
}

void DeviceManager::container_stopped(const std::string& name) {
  auto all = leases_.all();
  if (!all) {
    log::error("device leases: ", all.error().message());
    return;
  }
  const auto t0 = Clock::now();
  for (auto lease : *all) {
    if (lease.container != name || lease.state == "pending") continue;
    if (lease.state == "revoking") {
      // Finished by the stop (its grant went with the container), unless
      // the container is still found.
      finish_revoke(lease, t0);
      continue;
    }
    // Its /dev went with it; the cgroup entry too, or it is reset at start.
    settled(lease.syspath);
    lease.state = "pending";
    if (auto s = leases_.put(lease); !s) log::error("device leases: ", s.error().message());
    record("pending", lease, t0);
  }
}

void DeviceManager::container_started(const std::string& name) {
  const auto t0 = Clock::now();
  auto all = leases_.all();
  if (!all) {
    log::error("device leases: ", all.error().message());
    return;
  }
  auto leader = locate_(name);
  for (auto lease : *all) {
    if (lease.container != name) continue;
    if (lease.state == "revoking") {
      // Taken back now: a runtime DeviceAllow= entry outlives a restart.
      finish_revoke(lease, t0);
      continue;
    }
    if (!leader) {
      settled(lease.syspath);
      if (lease.state != "pending") {
        lease.state = "pending";
        if (auto s = leases_.put(lease); !s) log::error("device leases: ", s.error().message());
      }
      continue;
    }
    attach(lease, *leader, t0);
  }
}

}  // namespace farmhand::agent
