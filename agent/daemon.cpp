// `farmhand daemon`: the agent service. One event loop (libwebsockets'own)
// carries the server link, udev, machined's signals, container exits and
// signals. At start, and on SIGHUP, it reconciles the host on a worker
// thread, as it must after every boot: host network files restored,
// containers that should run started. A second thread watches the
// containers' network health and reports every change.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string_view>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "agent/commands.h"
#include "agent/devices.h"
#include "agent/loop.h"
#include "agent/report.h"
#include "agent/runtime.h"
#include "agent/server_report.h"
#include "agent/service_watch.h"
#include "agent/progress.h"
#include "agent/wiring.h"
#include "common/log.h"
#include "udev/watcher.h"

namespace farmhand::agent {

namespace {

constexpr std::chrono::seconds kHealthInterval{60};
constexpr std::chrono::seconds kServiceInterval{10};
constexpr std::chrono::seconds kBootHealthTimeout{90};
constexpr std::chrono::seconds kWatchHealthTimeout{5};

// Prints like ConsoleProgress and keeps each container's failures, for the
// server's events.
class RecordingProgress final : public provisioner::ApplyReporter {
 public:
  RecordingProgress() : console_(stdout) {}
  void step_started(const std::string& container, const std::string& step) override {
    console_.step_started(container, step);
  }
  void step_output(const std::string& container, std::string_view line) override {
    console_.step_output(container, line);
  }
  void step_finished(const std::string& container, const std::string& step, std::chrono::milliseconds elapsed,
                     const Status& result) override {
    console_.step_finished(container, step, elapsed, result);
    if (!result) failures.emplace_back(container, step + ": " + result.error().message());
  }
  std::vector<std::pair<std::string, std::string>> failures;  // container, message

 private:
  ConsoleProgress console_;
};

struct Reconciled {
  std::string summary;                 // one line for the service status
  std::optional<ConfigSync> sync;      // what fetching the config repository did
  std::vector<std::pair<std::string, std::string>> failures;  // container, step and error
  std::string config_commit;
};

// Fetches the config repository (if any), then reconciles once with the
// configuration in force; keeps the wired provisioner for the health watch.
Reconciled reconcile(const Invocation& inv, std::unique_ptr<Wired>& kept) {
  Reconciled out;
  kept.reset();
  ConfigSync synced = sync_config(inv);
  if (synced.configured) out.sync = synced;
  auto config = load_config(inv, &out.config_commit);
  if (!config) {
    out.summary = "configuration invalid: see the log";
    return out;
  }
  auto wired = wire(inv, std::move(*config));
  if (!wired) {
    log::error(wired.error().message());
    out.summary = "cannot reach systemd: see the log";
    return out;
  }
  kept = std::move(*wired);
  provisioner::Provisioner& p = *kept->provisioner;
  RecordingProgress progress;
  auto outcome = p.apply(progress);
  out.failures = progress.failures;
  size_t fixed = 0;
  if (!outcome) {
    log::error("reconcile: ", outcome.error().message());
  } else {
    for (const auto& c : outcome->plan.changes) {
      if (c.action == provisioner::Action::kUnchanged) continue;
      ++fixed;
      for (const auto& r : c.reasons) log::notice("reconcile: fixed container ", c.name, ": ", r);
    }
    if (outcome->plan.host_change.has_work()) ++fixed;
    for (const auto& r : outcome->plan.host_change.reasons) log::notice("reconcile: fixed host network: ", r);
    if (!outcome->result) log::error("reconcile: ", outcome->result.error().message());
  }
  auto started = p.start_boot_containers(progress);
  if (!started) {
    log::error("reconcile: ", started.error().message());
  } else {
    for (const auto& name : *started) log::notice("reconcile: started container ", name, ", which should run");
    fixed += started->size();
  }
  auto health = p.network_health(kBootHealthTimeout);
  size_t healthy = 0;
  size_t total = 0;
  if (health) {
    for (const auto& [name, h] : *health) {
      ++total;
      healthy += h.healthy ? 1 : 0;
      if (h.healthy) {
        log::info("container ", name, ": network ", describe_health(h));
      } else {
        log::warning("container ", name, ": network ", describe_health(h));
      }
    }
  } else {
    log::error("checking the containers' networks: ", health.error().message());
  }
  log::notice("reconcile: ", fixed == 0 ? std::string("nothing to fix") : std::to_string(fixed) + " thing(s) fixed",
              "; ", healthy, " of ", total, " running container network(s) healthy");
  out.summary = std::to_string(healthy) + " of " + std::to_string(total) + " container networks healthy";
  if (!out.failures.empty()) out.summary += "; " + std::to_string(out.failures.size()) + " step(s) failed";
  return out;
}

// Logs health changes since the last look; returns what it saw.
std::optional<std::map<std::string, provisioner::NetworkHealth>> watch(provisioner::Provisioner& p,
                                                                      std::map<std::string, bool>& last) {
  auto health = p.network_health(kWatchHealthTimeout);
  if (!health) {
    log::error("checking the containers' networks: ", health.error().message());
    return std::nullopt;
  }
  size_t healthy = 0;
  for (const auto& [name, h] : *health) {
    healthy += h.healthy ? 1 : 0;
    auto it = last.find(name);
    if (it == last.end() || it->second != h.healthy) {
      if (h.healthy) {
        log::notice("container ", name, ": network ", describe_health(h));
      } else {
        log::warning("container ", name, ": network ", describe_health(h));
      }
    }
    last[name] = h.healthy;
  }
  notify_service_manager("STATUS=" + std::to_string(healthy) + " of " + std::to_string(health->size()) +
                         " container networks healthy");
  return *health;
}

}  // namespace

namespace {

// A thread of its own that wires a provisioner (its own connections, so a
// slow look never delays a device event), then calls `look` with it every
// `interval` (and at once, with `at_start`) until destroyed.
class PeriodicWatch {
 public:
  using Look = std::function<void(provisioner::Provisioner&)>;
  PeriodicWatch(const char* what, std::chrono::seconds interval, bool at_start, const Invocation& inv,
                provisioner::AgentConfig config, Look look) {
    thread_ = std::thread([this, what, interval, at_start, inv, config = std::move(config),
                           look = std::move(look)]() mutable {
      auto wired = wire(inv, std::move(config));
      if (!wired) {
        log::error(what, ": ", wired.error().message());
        return;
      }
      std::unique_lock<std::mutex> lock(mutex_);
      bool first = at_start;
      while (!stop_) {
        if (!first && cv_.wait_for(lock, interval, [this] { return stop_; })) break;
        first = false;
        lock.unlock();
        look(*(*wired)->provisioner);
        lock.lock();
      }
    });
  }
  ~PeriodicWatch() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  PeriodicWatch(const PeriodicWatch&) = delete;
  PeriodicWatch& operator=(const PeriodicWatch&) = delete;

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// Watches the containers' network health; `seen` gets each look's result.
using HealthSeen = std::function<void(std::map<std::string, provisioner::NetworkHealth>)>;
std::unique_ptr<PeriodicWatch> health_watch(const Invocation& inv, provisioner::AgentConfig config, HealthSeen seen) {
  auto last = std::make_shared<std::map<std::string, bool>>();
  return std::make_unique<PeriodicWatch>("network health watch", kHealthInterval, false, inv, std::move(config),
                                         [last, seen = std::move(seen)](provisioner::Provisioner& p) {
                                           auto health = watch(p, *last);
                                           if (health && seen) seen(std::move(*health));
                                         });
}

// Watches the running containers' payload services through each
// container's systemd; a service that died (or that systemd had to
// restart) goes to `trouble` with the end of its journal. It does not look
// while an apply runs: apply restarts services itself, and checks them.
// Null when no container has a service.
using ServiceTroubleSeen = std::function<void(const ServiceTrouble&)>;
std::unique_ptr<PeriodicWatch> service_watch(const Invocation& inv, provisioner::AgentConfig config,
                                             ServiceTroubleSeen trouble) {
  bool any = false;
  for (const auto& c : config.containers) any = any || !c.services.empty();
  if (!any) return nullptr;
  auto last = std::make_shared<std::map<std::pair<std::string, std::string>, provisioner::UnitState>>();
  auto said = std::make_shared<size_t>(SIZE_MAX);
  return std::make_unique<PeriodicWatch>(
      "service watch", kServiceInterval, true, inv, std::move(config),
      [last, said, trouble = std::move(trouble)](provisioner::Provisioner& p) {
        if (p.applying()) return;
        auto states = p.payload_services();
        if (!states) {
          log::warning("service watch: ", states.error().message());
          return;
        }
        if (states->size() != *said) {
          log::info("service watch: ", states->size(), " payload service(s) running");
          *said = states->size();
        }
        for (auto t : service_troubles(*last, *states)) {
          const std::string journal = p.service_journal(t.container, t.unit);
          if (!journal.empty()) t.message += ". Its journal:\n" + journal;
          log::warning("container ", t.container, ": ", t.message);
          trouble(t);
        }
      });
}

// Everything the device side of the agent needs, rebuilt on reload.
struct DeviceSide {
  provisioner::AgentConfig config;
  udev::DeviceRuleSet rules;  // from config, read by the manager
  std::optional<udev::LeaseStore> leases;
  std::unique_ptr<udev::DeviceAccess> access;
  std::unique_ptr<ContainerLocator> locator;
  std::unique_ptr<udev::DeviceManager> manager;
};

std::unique_ptr<DeviceSide> make_device_side(const Invocation& inv, provisioner::AgentConfig config,
                                             SystemdControl* systemd) {
  auto side = std::make_unique<DeviceSide>();
  side->config = std::move(config);
  side->rules = device_rules(side->config);
  const HostRoot root(inv.root);
  const fs::path state = root.map(side->config.paths.state);
  if (auto s = make_dirs(state, 0700); !s) {
    log::error("devices: ", s.error().message());
    return nullptr;
  }
  auto leases = udev::LeaseStore::open((state / "state.db").string());
  if (!leases) {
    log::error("devices: ", leases.error().message());
    return nullptr;
  }
  side->leases.emplace(std::move(*leases));
  if (systemd != nullptr) {
    side->access = std::make_unique<SystemdDeviceAccess>(*systemd);
  } else {
    side->access = udev::make_device_access_for_host();
  }
  side->locator = std::make_unique<ContainerLocator>(root, systemd);
  ContainerLocator* locator = side->locator.get();
  side->manager = std::make_unique<udev::DeviceManager>(side->rules, *side->leases, *side->access,
                                                        [locator](const std::string& n) { return locator->leader(n); });
  return side;
}

}  // namespace

int cmd_daemon(const Invocation& inv) {
  if (!expect_args(inv, 0, {})) return kExitUsage;
  // Refuse to run at all on a bad configuration: systemd shows the failure.
  auto initial = load_config(inv);
  if (!initial) return kExitUsage;
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  // Every thread started from here on inherits the mask: the signals reach
  // the event loop's signalfd only.
  sigprocmask(SIG_BLOCK, &signals, nullptr);
  const int sigfd = ::signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sigfd < 0) {
    log::error("signalfd: ", errno_text(errno));
    return kExitFailed;
  }

  // Subscribe to udev before anything else, so no device is missed between
  // the enumeration below and the first event.
  std::unique_ptr<udev::Watcher> watcher;
  if (auto w = udev::Watcher::open(); w) {
    watcher = std::move(*w);
  } else {
    log::warning("devices are not watched: ", w.error().message());
  }
  // A systemd connection of the device side's own, for DeviceAllow= and
  // machined's signals.
  std::unique_ptr<SystemdControl> systemd;
  if (inv.root == "/" && host_booted_with_systemd()) {
    if (auto sd = connect_systemd(); sd) {
      systemd = std::move(*sd);
      if (auto s = systemd->watch_machines(); !s) log::warning(s.error().message());
    } else {
      log::error(sd.error().message());
      return kExitFailed;
    }
  }

  auto created = EventLoop::create();
  if (!created) {
    log::error("event loop: ", created.error().message());
    return kExitFailed;
  }
  EventLoop& loop = **created;

  // Reconciles and the server's slow commands run here, one at a time, so
  // devices, the server link and signals are never kept waiting.
  Worker worker;
  std::unique_ptr<Wired> wired;  // the worker's own, kept between reconciles
  std::unique_ptr<DeviceSide> devices;
  std::unique_ptr<ServerReport> report;
  std::unique_ptr<PeriodicWatch> health;
  std::unique_ptr<PeriodicWatch> services;
  // container -> pidfd of its init and its watch (hosts without systemd)
  std::map<std::string, std::pair<int, EventLoop::WatchId>> exits;
  // A failed attach or revoke is retried on a timer, on this thread like
  // the rest of the device side; armed again after any device handling.
  std::optional<EventLoop::TimerId> device_retry;
  std::function<void()> arm_device_retry = [&] {
    if (device_retry) loop.cancel(*device_retry);
    device_retry.reset();
    if (!devices) return;
    const auto next = devices->manager->next_retry();
    if (!next) return;
    // Rounded up: a timer that fires before the retry is due would spin.
    const auto delay = std::max(std::chrono::ceil<std::chrono::milliseconds>(*next - std::chrono::steady_clock::now()),
                                std::chrono::milliseconds(0));
    device_retry = loop.after(delay, [&] {
      device_retry.reset();
      if (devices) devices->manager->retry_due();
      arm_device_retry();
    });
  };
  std::function<void(const std::string&)> container_stopped;
  auto watch_exit = [&](const std::string& name, pid_t leader) {
    if (exits.count(name)) return;
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, leader, 0));
    if (pidfd < 0) return;
    // The init exiting (pidfd readable) means the container stopped.
    auto id = loop.watch_fd(pidfd, [&, name] { container_stopped(name); });
    if (!id) {
      ::close(pidfd);
      return;
    }
    exits[name] = {pidfd, *id};
  };
  container_stopped = [&](const std::string& name) {
    if (auto it = exits.find(name); it != exits.end()) {
      loop.unwatch(it->second.second);
      ::close(it->second.first);
      exits.erase(it);
    }
    if (devices) devices->manager->container_stopped(name);
    arm_device_retry();
    if (report) report->container_stopped(name);
  };
  auto container_started = [&](const std::string& name) {
    if (devices) devices->manager->container_started(name);
    arm_device_retry();
    if (report) report->container_started(name);
  };

  // Without systemd, containers run by `farmhand run` report their start
  // on this socket (systemd-nspawn's NOTIFY_SOCKET).
  int notify = -1;
  if (systemd == nullptr) {
    const std::string path = HostRoot(inv.root).map(kNotifySocket).string();
    (void)make_dirs(fs::path(path).parent_path(), 0755);
    ::unlink(path.c_str());
    notify = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    int one = 1;
    if (notify < 0 || path.size() >= sizeof addr.sun_path) {
      log::warning("containers started later are not noticed: cannot open ", path);
    } else {
      std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
      if (::bind(notify, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
          ::setsockopt(notify, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) != 0) {
        log::warning("containers started later are not noticed: ", path, ": ", errno_text(errno));
        ::close(notify);
        notify = -1;
      }
    }
  }
  auto device_event = [&](udev::DeviceAction action, const udev::Lease& lease, const std::string& detail) {
    if (!report) return;
    const std::string id = device_id(lease);
    switch (action) {
      case udev::DeviceAction::kAttach:
        report->emit("device_attached", lease.container, id, lease.devnode + " attached to " + lease.container);
        break;
      case udev::DeviceAction::kDetach:
        report->emit("device_detached", lease.container, id,
                     lease.devnode + " detached from " + lease.container + (detail.empty() ? "" : " (" + detail + ")"));
        break;
      case udev::DeviceAction::kPending:
        report->emit("device_pending", lease.container, id,
                     lease.devnode + " waits for " + lease.container + " to run");
        break;
      case udev::DeviceAction::kError:
        report->emit("error", lease.container, id, lease.devnode + ": " + detail);
        break;
    }
    report->inventory_changed();
  };
  auto start_devices = [&](provisioner::AgentConfig config) {
    if (device_retry) loop.cancel(*device_retry);
    device_retry.reset();
    devices.reset();
    if (!watcher) return;
    devices = make_device_side(inv, std::move(config), systemd.get());
    if (!devices) return;
    devices->manager->on_record(device_event);
    const auto began = std::chrono::steady_clock::now();
    auto present = watcher->enumerate();
    if (!present) {
      log::error("devices: ", present.error().message());
      return;
    }
    devices->manager->reconcile(*present);
    {
      // How long the agent took, from looking at the devices present to
      // every lease handed over or taken back (the benchmarks read this).
      const auto us =
          std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - began).count();
      auto leases = devices->leases->all();
      size_t attached = 0;
      if (leases) {
        for (const auto& l : *leases) attached += l.state == udev::LeaseState::kAttached ? 1 : 0;
      }
      log::notice("devices: reconciled ", leases ? leases->size() : 0, " lease(s), ", attached, " attached, with ",
                  present->size(), " device(s) present in ", static_cast<double>(us / 100) / 10.0, " ms");
    }
    arm_device_retry();
    if (systemd == nullptr) {
      for (const auto& c : devices->config.containers) {
        if (auto leader = devices->locator->leader(c.name)) watch_exit(c.name, *leader);
      }
    }
  };
  ServerReport::Hooks hooks;
  hooks.leases = [&]() -> std::vector<udev::Lease> {
    if (!devices) return {};
    auto all = devices->leases->all();
    return all ? *all : std::vector<udev::Lease>{};
  };
  hooks.detach = [&](const std::string& id) -> Result<std::string> {
    if (!devices) return fail("devices are not watched on this host");
    auto done = devices->manager->detach_device(id);
    arm_device_retry();
    return done;
  };
  std::function<void()> restart_watches;
  hooks.reconciled = [&] { restart_watches(); };
  auto start_report = [&](const provisioner::AgentConfig& config) {
    report.reset();
    auto r = ServerReport::create(loop, worker, inv, config, systemd.get(), hooks);
    if (!r) {
      log::warning("not reporting to the central server: ", r.error().message());
    } else {
      report = std::move(*r);
    }
  };
  // A payload service that died: an event for the server (kept in the
  // outbox until it is stored, like every event).
  ServiceTroubleSeen service_trouble = [&](const ServiceTrouble& t) {
    loop.post([&, t] {
      if (report) report->emit("service_failed", t.container, std::nullopt, t.message);
    });
  };
  restart_watches = [&] {
    auto config = load_config(inv);
    if (!config) return;
    health.reset();
    health = health_watch(inv, *config, [&](std::map<std::string, provisioner::NetworkHealth> h) {
      loop.post([&, h = std::move(h)]() mutable {
        if (report) report->set_health(std::move(h));
      });
    });
    services.reset();
    services = service_watch(inv, *config, service_trouble);
    start_devices(*config);
    if (report) report->set_config(*config);
  };

  // A reconcile on the worker; its summary comes back to the loop.
  enum class Why { kStart, kReload, kConfigTimer };
  // What a reconcile found, back on the loop.
  auto reconciled = [&](Why why, const Reconciled& done) {
    const bool config_changed = done.sync && done.sync->changed;
    if (why != Why::kStart || config_changed) {
      if (auto config = load_config(inv); config) {
        if (!report || !config->server || !(config->server == initial->server)) start_report(*config);
        initial = config;
        restart_watches();
      }
    }
    if (report) {
      if (done.sync) report->report_config_sync(*done.sync);
      // At start the server hears which commit is in force even when an
      // earlier apply (enroll's) accepted it already.
      if (why == Why::kStart && done.sync && !done.sync->error && !done.sync->changed) {
        report->emit("config_applied", std::nullopt, std::nullopt, done.sync->summary);
      }
      report->set_config_commit(done.config_commit);
      for (const auto& [container, message] : done.failures) report->emit("step_failed", container, std::nullopt, message);
      const char* label = why == Why::kStart    ? "reconciled at start: "
                          : why == Why::kReload ? "reconciled on reload: "
                                                : "reconciled for a new config commit: ";
      report->emit("apply", std::nullopt, std::nullopt, label + done.summary);
      report->inventory_changed();
    }
    notify_service_manager(std::string(why == Why::kReload ? "READY=1\n" : "") + "STATUS=" + done.summary);
  };
  // A reconcile on the worker; its summary comes back to the loop.
  auto reconcile_in_background = [&](Why why) {
    worker.enqueue([&, why] {
      if (why == Why::kConfigTimer) {
        // Only a new accepted commit is worth a reconcile; a refused one is
        // reported (once) and changes nothing.
        ConfigSync synced = sync_config(inv);
        if (!synced.changed) {
          loop.post([&, synced] {
            if (report) report->report_config_sync(synced);
          });
          return;
        }
      }
      Reconciled done = reconcile(inv, wired);
      loop.post([&, why, done] { reconciled(why, done); });
    });
  };
  // The config repository is fetched on a timer as well.
  std::function<void()> schedule_config_fetch = [&] {
    if (!initial || !initial->config_repo) return;
    loop.after(std::chrono::seconds(initial->config_repo->interval_s), [&] {
      if (!worker.busy()) reconcile_in_background(Why::kConfigTimer);
      schedule_config_fetch();
    });
  };

  notify_service_manager("READY=1\nSTATUS=reconciling");
  log::notice("farmhand agent started: reconciling the host");
  start_report(*initial);
  if (report) report->emit("agent_started", std::nullopt, std::nullopt, "farmhand agent started");
  start_devices(*initial);
  health = health_watch(inv, *initial, [&](std::map<std::string, provisioner::NetworkHealth> h) {
    loop.post([&, h = std::move(h)]() mutable {
      if (report) report->set_health(std::move(h));
    });
  });
  services = service_watch(inv, *initial, service_trouble);

  int rc = kExitOk;
  std::vector<EventLoop::WatchId> watches;
  auto watch_or_fail = [&](int fd, std::function<void()> fn, const char* what) {
    auto id = loop.watch_fd(fd, std::move(fn));
    if (!id) {
      log::error("watching ", what, ": ", id.error().message());
      rc = kExitFailed;
      return false;
    }
    watches.push_back(*id);
    return true;
  };
  // Devices: they are what someone is waiting for.
  if (watcher && !watch_or_fail(watcher->fd(), [&] {
        const auto arrived = std::chrono::steady_clock::now();
        for (const auto& d : watcher->drain()) {
          if (devices) devices->manager->handle(d, arrived);
        }
        arm_device_retry();
      }, "udev")) {
    return rc;
  }
  if (systemd && !watch_or_fail(systemd->bus_fd(), [&] {
        for (const auto& e : systemd->machine_events()) {
          if (e.started) {
            container_started(e.name);
          } else {
            container_stopped(e.name);
          }
        }
      }, "the system bus")) {
    return rc;
  }
  if (notify >= 0 && !watch_or_fail(notify, [&] {
        // nspawn sends "X_NSPAWN_LEADER_PID=..." once the container's init
        // runs; the sender is nspawn, whose pid the run record holds.
        char buf[4096];
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
        for (;;) {
          iovec iov{buf, sizeof buf - 1};
          msghdr msg{};
          msg.msg_iov = &iov;
          msg.msg_iovlen = 1;
          msg.msg_control = control;
          msg.msg_controllen = sizeof control;
          ssize_t n = ::recvmsg(notify, &msg, MSG_DONTWAIT);
          if (n < 0) break;
          buf[n] = '\0';
          const ucred* cred = nullptr;
          for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
              cred = reinterpret_cast<const ucred*>(CMSG_DATA(c));
            }
          }
          if (cred == nullptr || std::string_view(buf).find("X_NSPAWN_LEADER_PID=") == std::string_view::npos) {
            continue;
          }
          if (!devices) continue;
          if (auto name = devices->locator->container_of(cred->pid)) {
            if (auto old = exits.find(*name); old != exits.end()) {
              loop.unwatch(old->second.second);
              ::close(old->second.first);
              exits.erase(old);
            }
            container_started(*name);
            if (auto leader = devices->locator->leader(*name)) watch_exit(*name, *leader);
          }
        }
      }, "the notify socket")) {
    return rc;
  }
  if (!watch_or_fail(sigfd, [&] {
        signalfd_siginfo si{};
        while (::read(sigfd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
          if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
            notify_service_manager("STOPPING=1");
            log::notice("farmhand agent stopping");
            loop.stop();
            return;
          }
          if (si.ssi_signo == SIGHUP) {
            notify_service_manager("RELOADING=1\nSTATUS=reconciling");
            log::notice("reload requested: reconciling the host");
            reconcile_in_background(Why::kReload);
          }
        }
      }, "signals")) {
    return rc;
  }
  reconcile_in_background(Why::kStart);
  schedule_config_fetch();
  loop.run();
  if (worker.busy()) {
    // Stopping is immediate even mid-reconcile or mid-command: every apply
    // step is journaled and resumes at the next start.
    log::notice("stopping in the middle of a reconcile or command; it resumes at the next start");
    std::fflush(nullptr);
    std::_Exit(kExitOk);
  }
  for (auto id : watches) loop.unwatch(id);
  for (auto& [name, e] : exits) {
    loop.unwatch(e.second);
    ::close(e.first);
  }
  if (device_retry) loop.cancel(*device_retry);
  services.reset();
  report.reset();
  health.reset();
  devices.reset();
  return rc;
}

}  // namespace farmhand::agent
