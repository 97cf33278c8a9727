#include "agent/daemon/daemon.h"

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>

#include "agent/daemon/nspawn_notify.h"
#include "agent/report.h"
#include "agent/wiring.h"
#include "common/log.h"

namespace farmhand::agent {

// Everything the device side of the agent needs, rebuilt on reload.
struct Daemon::DeviceSide {
  provisioner::AgentConfig config;
  udev::DeviceRuleSet rules;  // from config, read by the manager
  std::optional<udev::LeaseStore> leases;
  std::unique_ptr<udev::DeviceAccess> access;
  std::unique_ptr<udev::DeviceManager> manager;
};

Daemon::Daemon(Deps deps)
    : deps_(std::move(deps)),
      loop_(*deps_.loop),
      clock_(deps_.clock != nullptr ? *deps_.clock : real_clock()),
      locator_(HostRoot(deps_.inv.root), deps_.systemd),
      exits_(loop_, [this](const std::string& name) { container_stopped(name); }) {
  if (!deps_.load_config) {
    deps_.load_config = [inv = deps_.inv](std::string* commit) { return load_config(inv, commit); };
  }
}

Daemon::~Daemon() {
  worker_.reset();
  for (auto id : watches_) loop_.unwatch(id);
  if (device_retry_) loop_.cancel(*device_retry_);
  if (notify_fd_ >= 0) ::close(notify_fd_);
  services_.reset();
  report_.reset();
  health_.reset();
  devices_.reset();
}

std::optional<pid_t> Daemon::leader(const std::string& name) const {
  if (deps_.leader) return deps_.leader(name);
  return locator_.leader(name);
}

Status Daemon::watch(int fd, std::function<void()> fn, const char* what) {
  auto id = loop_.watch_fd(fd, std::move(fn));
  if (!id) return fail(std::string("watching ") + what + ": " + id.error().message());
  watches_.push_back(*id);
  return {};
}

Status Daemon::start(provisioner::AgentConfig initial, int signal_fd) {
  // Without systemd, containers run by `farmhand run` report their start
  // on this socket (systemd-nspawn's NOTIFY_SOCKET).
  if (deps_.systemd == nullptr) {
    notify_fd_ = open_notify_socket(HostRoot(deps_.inv.root).map(kNotifySocket).string());
  }
  config_ = initial;
  notify_service_manager("READY=1\nSTATUS=reconciling");
  log::notice("farmhand agent started: reconciling the host");
  start_report(initial);
  if (report_) report_->emit("agent_started", std::nullopt, std::nullopt, "farmhand agent started");
  start_devices(initial);
  start_watches(initial);

  // Devices first: they are what someone is waiting for.
  if (deps_.devices) {
    if (auto s = watch(deps_.devices->fd(), [this] { on_udev(); }, "udev"); !s) return s;
  }
  if (deps_.systemd) {
    if (auto s = watch(deps_.systemd->bus_fd(), [this] { on_machine(); }, "the system bus"); !s) return s;
  }
  if (notify_fd_ >= 0) {
    if (auto s = watch(notify_fd_, [this] { on_notify(); }, "the notify socket"); !s) return s;
  }
  if (signal_fd >= 0) {
    if (auto s = watch(
            signal_fd,
            [this, signal_fd] {
              signalfd_siginfo si{};
              while (::read(signal_fd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
                on_signal(static_cast<int>(si.ssi_signo));
                if (loop_.stopping()) return;
              }
            },
            "signals");
        !s) {
      return s;
    }
  }
  reconcile(Why::kStart);
  schedule_config_fetch();
  return {};
}

void Daemon::on_signal(int signo) {
  if (signo == SIGTERM || signo == SIGINT) {
    notify_service_manager("STOPPING=1");
    log::notice("farmhand agent stopping");
    loop_.stop();
    return;
  }
  if (signo == SIGHUP) {
    notify_service_manager("RELOADING=1\nSTATUS=reconciling");
    log::notice("reload requested: reconciling the host");
    reconcile(Why::kReload);
  }
}

void Daemon::on_machine() {
  for (const auto& e : deps_.systemd->machine_events()) {
    if (e.started) {
      container_started(e.name);
    } else {
      container_stopped(e.name);
    }
  }
}

void Daemon::on_notify() {
  for (pid_t sender : read_leader_notices(notify_fd_)) {
    if (!devices_) continue;
    // Only a sender a run record names: anyone may write to the socket.
    auto name = locator_.container_of(sender);
    if (!name) {
      log::debug("notify socket: ignoring a leader notice from pid ", sender, ", which runs no container");
      continue;
    }
    exits_.forget(*name);
    container_started(*name);
    if (auto l = leader(*name)) exits_.watch(*name, *l);
  }
}

void Daemon::container_started(const std::string& name) {
  if (devices_) devices_->manager->container_started(name);
  arm_device_retry();
  if (report_) report_->container_started(name);
}

void Daemon::container_stopped(const std::string& name) {
  exits_.forget(name);
  if (devices_) devices_->manager->container_stopped(name);
  arm_device_retry();
  if (report_) report_->container_stopped(name);
}

// ---- The device side: the leases, the device manager and what it records
// (Daemon::DeviceSide, above).

void Daemon::start_devices(provisioner::AgentConfig config) {
  if (device_retry_) loop_.cancel(*device_retry_);
  device_retry_.reset();
  devices_.reset();
  if (!deps_.devices) return;
  auto side = std::make_unique<DeviceSide>();
  side->config = std::move(config);
  side->rules = device_rules(side->config);
  const HostRoot root(deps_.inv.root);
  const fs::path state = root.map(side->config.paths.state);
  if (auto s = make_dirs(state, 0700); !s) {
    log::error("devices: ", s.error().message());
    return;
  }
  auto leases = udev::LeaseStore::open((state / "state.db").string());
  if (!leases) {
    log::error("devices: ", leases.error().message());
    return;
  }
  side->leases.emplace(std::move(*leases));
  if (deps_.device_access) {
    side->access = deps_.device_access();
  } else if (deps_.systemd != nullptr) {
    side->access = std::make_unique<SystemdDeviceAccess>(*deps_.systemd);
  } else {
    side->access = udev::make_device_access_for_host();
  }
  side->manager = std::make_unique<udev::DeviceManager>(side->rules, *side->leases, *side->access,
                                                        [this](const std::string& n) { return leader(n); }, udev::NodeOps{},
                                                        clock_);
  side->manager->on_record([this](udev::DeviceAction action, const udev::Lease& lease, const std::string& detail) {
    if (!report_) return;
    const std::string id = udev::device_id(lease);
    switch (action) {
      case udev::DeviceAction::kAttach:
        report_->emit("device_attached", lease.container, id, lease.devnode + " attached to " + lease.container);
        break;
      case udev::DeviceAction::kDetach:
        report_->emit("device_detached", lease.container, id,
                      lease.devnode + " detached from " + lease.container + (detail.empty() ? "" : " (" + detail + ")"));
        break;
      case udev::DeviceAction::kPending:
        report_->emit("device_pending", lease.container, id,
                      lease.devnode + " waits for " + lease.container + " to run");
        break;
      case udev::DeviceAction::kError:
        report_->emit("error", lease.container, id, lease.devnode + ": " + detail);
        break;
    }
    report_->inventory_changed();
  });
  devices_ = std::move(side);
  const auto began = clock_.monotonic();
  auto present = deps_.devices->enumerate();
  if (!present) {
    log::error("devices: ", present.error().message());
    return;
  }
  devices_->manager->reconcile(*present);
  {
    // How long the agent took, from looking at the devices present to
    // every lease handed over or taken back (the benchmarks read this).
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(clock_.monotonic() - began).count();
    auto all = devices_->leases->all();
    size_t attached = 0;
    if (all) {
      for (const auto& l : *all) attached += l.state == udev::LeaseState::kAttached ? 1 : 0;
    }
    log::notice("devices: reconciled ", all ? all->size() : 0, " lease(s), ", attached, " attached, with ",
                present->size(), " device(s) present in ", static_cast<double>(us / 100) / 10.0, " ms");
  }
  arm_device_retry();
  if (deps_.systemd == nullptr) {
    for (const auto& c : devices_->config.containers) {
      if (auto l = leader(c.name)) exits_.watch(c.name, *l);
    }
  }
}

void Daemon::on_udev() {
  const auto arrived = clock_.monotonic();
  for (const auto& d : deps_.devices->drain()) {
    if (devices_) devices_->manager->handle(d, arrived);
  }
  arm_device_retry();
}

Result<std::string> Daemon::detach_device(const std::string& id) {
  if (!devices_) return fail("devices are not watched on this host");
  auto done = devices_->manager->detach_device(id);
  arm_device_retry();
  return done;
}

// A failed attach or revoke is retried on a timer, on this thread like the
// rest of the device side; armed again after any device handling.
void Daemon::arm_device_retry() {
  if (device_retry_) loop_.cancel(*device_retry_);
  device_retry_.reset();
  if (!devices_) return;
  const auto next = devices_->manager->next_retry();
  if (!next) return;
  // Rounded up: a timer that fires before the retry is due would spin.
  const auto delay = std::max(std::chrono::ceil<std::chrono::milliseconds>(*next - clock_.monotonic()),
                              std::chrono::milliseconds(0));
  device_retry_ = loop_.after(delay, [this] {
    device_retry_.reset();
    if (devices_) devices_->manager->retry_due(clock_.monotonic());
    arm_device_retry();
  });
}

// ---- What follows the configuration in force.

void Daemon::start_report(const provisioner::AgentConfig& config) {
  report_.reset();
  ++report_generation_;
  ServerReport::Hooks hooks;
  hooks.leases = [this]() -> std::vector<udev::Lease> {
    if (!devices_) return {};
    auto all = devices_->leases->all();
    return all ? *all : std::vector<udev::Lease>{};
  };
  hooks.command = [this](const protocol::Command& c) { on_command(c); };
  hooks.containers = [this]() -> provisioner::Provisioner* {
    // A call on the loop's bus may read machined's signals off its socket
    // while it waits for its reply: look at them once the inventory is done.
    if (deps_.systemd != nullptr) loop_.post([this] { on_machine(); });
    return view_.get();
  };
  if (!view_) view_ = wire_over(deps_.inv, config, *deps_.runner, deps_.systemd);
  auto r = ServerReport::create(loop_, clock_, deps_.inv, config, deps_.systemd, std::move(hooks));
  if (!r) {
    log::warning("not reporting to the central server: ", r.error().message());
  } else {
    report_ = std::move(*r);
  }
}

void Daemon::start_watches(const provisioner::AgentConfig& config) {
  if (!deps_.watches) return;
  health_.reset();
  health_ = health_watch(deps_.inv, config, [this](std::map<std::string, provisioner::NetworkHealth> h) {
    loop_.post([this, h = std::move(h)]() mutable {
      if (report_) report_->set_health(std::move(h));
    });
  });
  // A payload service that died: an event for the server (kept in the
  // outbox until it is stored, like every event).
  services_.reset();
  services_ = service_watch(deps_.inv, config, [this](const ServiceTrouble& t) {
    loop_.post([this, t] {
      if (report_) report_->emit("service_failed", t.container, std::nullopt, t.message);
    });
  });
}

void Daemon::follow_config(const provisioner::AgentConfig& config) {
  view_ = wire_over(deps_.inv, config, *deps_.runner, deps_.systemd);
  start_watches(config);
  start_devices(config);
  if (report_) report_->set_config(config);
}

// ---- Reconciles: on the worker, their outcome back on the loop.

void Daemon::reconcile(Why why) {
  worker_->enqueue([this, why] {
    if (why == Why::kConfigTimer) {
      // Only a new accepted commit is worth a reconcile; a refused one is
      // reported (once) and changes nothing.
      ConfigSync synced = sync_config(deps_.inv);
      if (!synced.changed) {
        loop_.post([this, synced] {
          if (report_) report_->report_config_sync(synced);
        });
        return;
      }
    }
    Reconciled done = reconcile_now(why);
    loop_.post([this, why, done = std::move(done)] { reconciled(why, done); });
  });
}

// Worker thread: fetches the config repository (if any), loads the
// configuration in force once, and reconciles with it.
Reconciled Daemon::reconcile_now(Why) {
  Reconciled out;
  ConfigSync synced = sync_config(deps_.inv);
  if (synced.configured) out.sync = synced;
  out.config = deps_.load_config(&out.config_commit);
  if (!out.config) {
    out.summary = "configuration invalid: see the log";
    return out;
  }
  std::string error;
  provisioner::Provisioner* p = provision(*out.config, &error);
  if (p == nullptr) {
    log::error(error);
    out.summary = "cannot reach systemd: see the log";
    return out;
  }
  reconcile_with(*p, out);
  return out;
}

void Daemon::reconciled(Why why, const Reconciled& done) {
  const bool config_changed = done.sync && done.sync->changed;
  if ((why != Why::kStart || config_changed) && done.config) {
    if (!report_ || !done.config->server || !(done.config->server == config_->server)) start_report(*done.config);
    config_ = done.config;
    follow_config(*done.config);
  }
  if (report_) {
    if (done.sync) report_->report_config_sync(*done.sync);
    // At start the server hears which commit is in force even when an
    // earlier apply (enroll's) accepted it already.
    if (why == Why::kStart && done.sync && !done.sync->error && !done.sync->changed) {
      report_->emit("config_applied", std::nullopt, std::nullopt, done.sync->summary);
    }
    report_->set_config_commit(done.config_commit);
    for (const auto& [container, message] : done.failures) {
      report_->emit("step_failed", container, std::nullopt, message);
    }
    const char* label = why == Why::kStart    ? "reconciled at start: "
                        : why == Why::kReload ? "reconciled on reload: "
                                              : "reconciled for a new config commit: ";
    report_->emit("apply", std::nullopt, std::nullopt, label + done.summary);
    report_->inventory_changed();
  }
  notify_service_manager(std::string(why == Why::kReload ? "READY=1\n" : "") + "STATUS=" + done.summary);
}

// The config repository is fetched on a timer as well.
void Daemon::schedule_config_fetch() {
  if (!config_ || !config_->config_repo) return;
  loop_.after(std::chrono::seconds(config_->config_repo->interval_s), [this] {
    if (!worker_->busy()) reconcile(Why::kConfigTimer);
    schedule_config_fetch();
  });
}

}  // namespace farmhand::agent
