// `farmhand daemon`: the agent service. At start it reconciles the host, as
// it must after every boot: host network files restored, containers that
// should run started. Then it watches the containers' network health and
// logs every change. The central-server connection joins this loop.
#include <signal.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <memory>

#include "agent/commands.h"
#include "agent/progress.h"
#include "agent/wiring.h"
#include "common/log.h"

namespace farmhand::agent {

namespace {

constexpr std::chrono::seconds kHealthInterval{60};
constexpr std::chrono::seconds kBootHealthTimeout{90};
constexpr std::chrono::seconds kWatchHealthTimeout{5};

// Reconciles once with the configuration as it is now; keeps the wired
// provisioner for the health watch. Returns a one-line summary for the
// service status.
std::string reconcile(const Invocation& inv, std::unique_ptr<Wired>& kept) {
  kept.reset();
  auto config = load_config(config_path(inv));
  if (!config) return "configuration invalid: see the log";
  auto wired = wire(inv, std::move(*config));
  if (!wired) {
    log::error(wired.error().message());
    return "cannot reach systemd: see the log";
  }
  kept = std::move(*wired);
  provisioner::Provisioner& p = *kept->provisioner;
  ConsoleProgress progress(stdout);
  auto outcome = p.apply(progress);
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
  return std::to_string(healthy) + " of " + std::to_string(total) + " container networks healthy";
}

// Logs health changes since the last look.
void watch(provisioner::Provisioner& p, std::map<std::string, bool>& last) {
  auto health = p.network_health(kWatchHealthTimeout);
  if (!health) {
    log::error("checking the containers' networks: ", health.error().message());
    return;
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
}

}  // namespace

int cmd_daemon(const Invocation& inv) {
  if (!expect_args(inv, 0, {})) return kExitUsage;
  // Refuse to run at all on a bad configuration: systemd shows the failure.
  if (!load_config(config_path(inv))) return kExitUsage;
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  sigprocmask(SIG_BLOCK, &signals, nullptr);
  // While reconciling (which can wait long for a container's network), a
  // stop request ends the process at once: every apply step is journaled
  // and resumes at the next start. SIGHUP stays blocked until the loop.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  std::unique_ptr<Wired> wired;
  auto reconcile_stoppable = [&] {
    sigprocmask(SIG_UNBLOCK, &stop, nullptr);
    std::string summary = reconcile(inv, wired);
    sigprocmask(SIG_BLOCK, &stop, nullptr);
    return summary;
  };

  notify_service_manager("READY=1\nSTATUS=reconciling");
  log::notice("farmhand agent started: reconciling the host");
  notify_service_manager("STATUS=" + reconcile_stoppable());
  std::map<std::string, bool> last;
  for (;;) {
    timespec wait{static_cast<time_t>(kHealthInterval.count()), 0};
    int sig = sigtimedwait(&signals, nullptr, &wait);
    if (sig == SIGTERM || sig == SIGINT) {
      notify_service_manager("STOPPING=1");
      log::notice("farmhand agent stopping");
      return kExitOk;
    }
    if (sig == SIGHUP) {
      notify_service_manager("RELOADING=1\nSTATUS=reconciling");
      log::notice("reload requested: reconciling the host");
      std::string summary = reconcile_stoppable();
      notify_service_manager("READY=1\nSTATUS=" + summary);
      continue;
    }
    if (sig < 0 && errno != EAGAIN && errno != EINTR) {
      log::error("waiting for signals: ", errno_text(errno));
      return kExitFailed;
    }
    if (wired) watch(*wired->provisioner, last);
  }
}

}  // namespace farmhand::agent
