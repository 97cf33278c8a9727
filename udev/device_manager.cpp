#include "udev/device_manager.h"

#include <algorithm>
#include <set>

#include "common/log.h"

namespace farmhand::udev {

std::optional<DeviceMatchResult> match_device(const DeviceRuleSet& rules, const Device& device) {
  for (const auto& c : rules) {
    for (const auto& placed : c.rules) {
      if (rule_matches(placed.rule.match, device)) return DeviceMatchResult{c.container, placed.path, &placed.rule};
    }
  }
  return std::nullopt;
}

NodeSpec node_for(const Device& device, const DeviceRule& rule) {
  NodeSpec n;
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

std::string device_id(const Lease& lease) {
  for (const auto& link : lease.links) {
    if (link.rfind("/dev/serial/by-id/", 0) == 0) return link.substr(18);
  }
  const size_t slash = lease.devnode.rfind('/');
  return slash == std::string::npos ? lease.devnode : lease.devnode.substr(slash + 1);
}

namespace {

// The same grant: another node under the same syspath (a raw USB device
// plugged in again gets a new number) is another device cgroup entry.
bool same_node(const NodeSpec& a, const NodeSpec& b) {
  return a.devnode == b.devnode && a.major == b.major && a.minor == b.minor;
}

}  // namespace

bool DeviceManager::attach(Lease lease, pid_t leader, MonoTime arrived) {
  // The lease first: an agent killed after the grant finds it, attaching,
  // and finishes or undoes it. Without it written, no grant.
  lease.state = LeaseState::kAttaching;
  if (auto s = leases_.put(lease); !s) {
    failed(lease, arrived, "attach: " + s.error().message());
    return false;
  }
  const ContainerRuntime rt{lease.container, leader};
  // Allow before the node: the node is never there without being usable.
  if (auto s = access_.allow(rt, lease); !s) {
    failed(lease, arrived, "attach: " + s.error().message());
    return false;
  }
  if (auto s = nodes_.create(rt, lease); !s) {
    failed(lease, arrived, "attach: " + s.error().message());
    return false;
  }
  lease.state = LeaseState::kAttached;
  if (auto s = leases_.put(lease); !s) {
    // Still "attaching" in state.db: the retry attaches again, idempotently.
    lease.state = LeaseState::kAttaching;
    failed(lease, arrived, "attach: " + s.error().message());
    return false;
  }
  settled(lease.syspath);
  record(DeviceAction::kAttach, lease, arrived);
  return true;
}

bool DeviceManager::revoke(Lease lease, MonoTime arrived, const std::string& detail, std::optional<Device> then) {
  // A pending lease has no grant; nor has a container that is not running:
  // its grant went with it, and its /dev too.
  std::optional<pid_t> leader;
  if (lease.state != LeaseState::kPending) leader = locate_(lease.container);
  if (leader) {
    lease.state = LeaseState::kRevoking;
    // Should this write fail, the lease as it was still covers the grant,
    // and the next reconcile takes it back: go on.
    if (auto s = leases_.put(lease); !s) log::error("device leases: ", s.error().message());
    const ContainerRuntime rt{lease.container, *leader};
    // Revoke first: once revoked, a node left behind is useless.
    Status s = access_.revoke(rt, lease);
    if (s) s = nodes_.remove(rt, lease);
    if (!s) {
      failed(lease, arrived, "detach: " + s.error().message(), detail, std::move(then));
      return false;
    }
  }
  // Only now that the grant is gone may the lease go.
  if (auto s = leases_.remove(lease.syspath); !s) log::error("device leases: ", s.error().message());
  settled(lease.syspath);
  record(DeviceAction::kDetach, lease, arrived, detail);
  return true;
}

void DeviceManager::wait_pending(Lease lease, MonoTime arrived) {
  settled(lease.syspath);
  lease.state = LeaseState::kPending;
  if (auto s = leases_.put(lease); !s) log::error("device leases: ", s.error().message());
  record(DeviceAction::kPending, lease, arrived);
}

void DeviceManager::failed(const Lease& lease, MonoTime arrived, const std::string& error, const std::string& detail,
                           std::optional<Device> then) {
  auto [it, fresh] = retries_.try_emplace(lease.syspath);
  Retry& r = it->second;
  r.delay = fresh ? kFirstRetry : std::min(r.delay * 2, kLastRetry);
  r.due = clock_.monotonic() + r.delay;
  r.detail = detail;
  r.then = std::move(then);
  const std::string again =
      " (" + std::string(to_string(lease.state)) + ", retried in " + std::to_string(r.delay.count()) + " ms)";
  // One event per distinct failure, not one per retry: the lease's state
  // shows meanwhile that it is still being retried.
  if (fresh || r.error != error) {
    r.error = error;
    record(DeviceAction::kError, lease, arrived, error + again);
  } else {
    log::warning("device ", lease.devnode, " (container ", lease.container, "): ", error, again);
  }
}

void DeviceManager::finish_revoke(const Lease& lease, MonoTime arrived) {
  // Copies: a revoke that succeeds forgets the retry.
  std::string detail;
  std::optional<Device> then;
  if (auto r = retries_.find(lease.syspath); r != retries_.end()) {
    detail = r->second.detail;
    then = r->second.then;
  }
  if (revoke(lease, arrived, detail, then) && then) handle(*then, arrived);
}

std::optional<DeviceManager::MonoTime> DeviceManager::next_retry() const {
  std::optional<MonoTime> next;
  for (const auto& [syspath, r] : retries_) {
    if (!next || r.due < *next) next = r.due;
  }
  return next;
}

void DeviceManager::retry_due(MonoTime now) {
  std::vector<std::string> due;
  for (const auto& [syspath, r] : retries_) {
    if (r.due <= now) due.push_back(syspath);
  }
  for (const auto& syspath : due) {
    // Settled meanwhile, by an earlier one: nothing to do.
    if (retries_.count(syspath)) retry(syspath);
  }
}

void DeviceManager::retry(const std::string& syspath) {
  auto found = leases_.find(syspath);
  if (!found) {
    log::error("device leases: ", found.error().message());
    Retry& r = retries_.at(syspath);
    r.delay = std::min(r.delay * 2, kLastRetry);
    r.due = clock_.monotonic() + r.delay;
    return;
  }
  if (!*found) {
    settled(syspath);
    return;
  }
  const Lease& lease = **found;
  const auto t0 = clock_.monotonic();
  switch (lease.state) {
    case LeaseState::kRevoking:
      finish_revoke(lease, t0);
      return;
    case LeaseState::kAttaching:
      if (auto leader = locate_(lease.container)) {
        attach(lease, *leader, t0);
      } else {
        wait_pending(lease, t0);  // stopped meanwhile: handed over at its next start
      }
      return;
    case LeaseState::kAttached:
    case LeaseState::kPending:
      settled(syspath);
      return;
  }
}

void DeviceManager::record(DeviceAction action, const Lease& lease, MonoTime arrived, const std::string& detail) {
  DeviceEvent e;
  e.at_ms = clock_.wall_ms();
  e.action = action;
  e.container = lease.container;
  e.devnode = lease.devnode;
  e.syspath = lease.syspath;
  e.latency_us = std::chrono::duration_cast<std::chrono::microseconds>(clock_.monotonic() - arrived).count();
  e.detail = detail;
  if (auto s = leases_.add_event(e); !s) log::warning("recording a device event: ", s.error().message());
  const double ms = static_cast<double>(e.latency_us) / 1000.0;
  if (action == DeviceAction::kError) {
    log::error("device ", lease.devnode, " (container ", lease.container, "): ", detail);
  } else {
    log::info("device ", lease.devnode, " ", to_string(action),
              (action == DeviceAction::kPending ? " (container not running) " : " "), "container ", lease.container,
              " in ", ms, " ms");
  }
  if (observer_) observer_(action, lease, detail);
}

Result<std::string> DeviceManager::detach_device(const std::string& id) {
  auto all = leases_.all();
  if (!all) return all.error();
  for (const auto& lease : *all) {
    if (device_id(lease) != id && lease.devnode != id) continue;
    if (!revoke(lease, clock_.monotonic(), "by command")) {
      const auto& r = retries_.at(lease.syspath);
      return fail("detaching " + lease.devnode + " from " + lease.container + ": " + r.error +
                  "; it stays revoking and is retried");
    }
    return lease.devnode + " detached from " + lease.container;
  }
  return fail("no device \"" + id + "\" is leased to a container");
}

void DeviceManager::handle(const Device& d, MonoTime arrived) { take(d, arrived, false); }

void DeviceManager::take(const Device& d, MonoTime arrived, bool reattach) {
  if (!handled_device(d) && d.action != "remove") return;
  auto existing = leases_.find(d.syspath);
  if (!existing) {
    log::error("device leases: ", existing.error().message());
    return;
  }
  if (d.action == "remove") {
    if (*existing) revoke(**existing, arrived);
    return;
  }
  auto match = match_device(rules_, d);
  Lease lease;
  if (match) static_cast<NodeSpec&>(lease) = node_for(d, *match->device_rule);
  if (*existing && (!match || match->container != (*existing)->container || !same_node(**existing, lease))) {
    // No rule wants it any more, another container does now, or it is
    // another node: the old grant goes first. Should that fail, the device
    // is handed over once the retried revoke succeeds.
    if (!revoke(**existing, arrived, "", match ? std::optional<Device>(d) : std::nullopt)) return;
    existing->reset();
  }
  if (!match) return;
  lease.syspath = d.syspath;
  lease.container = match->container;
  lease.rule = match->rule;
  lease.subsystem = d.subsystem;
  lease.since_ms = *existing ? (*existing)->since_ms : clock_.wall_ms();
  auto leader = locate_(lease.container);
  if (!leader) {
    // Nothing granted (a revoking lease's grant went with its container).
    wait_pending(lease, arrived);
    return;
  }
  if (*existing && (*existing)->state == LeaseState::kAttached && !reattach) {
    const Lease& e = **existing;
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
    NodeSpec old = lease;
    old.links = stale;
    if (auto s = nodes_.remove_links(ContainerRuntime{lease.container, *leader}, old); !s) {
      log::warning("device ", lease.devnode, ": removing its old links in ", lease.container, ": ",
                   s.error().message());
    }
  }
}

void DeviceManager::reconcile(const std::vector<Device>& present) {
  const auto t0 = clock_.monotonic();
  std::set<std::string> seen;
  for (const auto& d : present) {
    seen.insert(d.syspath);
    Device as_add = d;
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
  const auto t0 = clock_.monotonic();
  for (const auto& lease : *all) {
    if (lease.container != name || lease.state == LeaseState::kPending) continue;
    if (lease.state == LeaseState::kRevoking) {
      // Finished by the stop (its grant went with the container), unless
      // the container is still found.
      finish_revoke(lease, t0);
      continue;
    }
    // Its /dev went with it; the cgroup entry too, or it is reset at start.
    wait_pending(lease, t0);
  }
}

void DeviceManager::container_started(const std::string& name) {
  const auto t0 = clock_.monotonic();
  auto all = leases_.all();
  if (!all) {
    log::error("device leases: ", all.error().message());
    return;
  }
  auto leader = locate_(name);
  for (auto lease : *all) {
    if (lease.container != name) continue;
    if (lease.state == LeaseState::kRevoking) {
      // Taken back now: a runtime DeviceAllow= entry outlives a restart.
      finish_revoke(lease, t0);
      continue;
    }
    if (!leader) {
      // Not running after all: it waits, as it did, without a new event.
      settled(lease.syspath);
      if (lease.state != LeaseState::kPending) {
        lease.state = LeaseState::kPending;
        if (auto s = leases_.put(lease); !s) log::error("device leases: ", s.error().message());
      }
      continue;
    }
    attach(lease, *leader, t0);
  }
}

}  // namespace farmhand::udev
