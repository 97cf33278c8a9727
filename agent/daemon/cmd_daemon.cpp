// `farmhand daemon` itself: wires the real host (signals, udev, systemd,
// processes) into a Daemon and runs its event loop.
#include <signal.h>
#include <sys/signalfd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "agent/cli/commands.h"
#include "agent/daemon/daemon.h"
#include "agent/wiring.h"
#include "common/log.h"
#include "udev/watcher.h"

namespace farmhand::agent {

namespace {

class UdevEvents final : public DeviceEvents {
 public:
  explicit UdevEvents(std::unique_ptr<udev::Watcher> watcher) : watcher_(std::move(watcher)) {}
  int fd() const override { return watcher_->fd(); }
  std::vector<udev::Device> drain() override { return watcher_->drain(); }
  Result<std::vector<udev::Device>> enumerate() override { return watcher_->enumerate(); }

 private:
  std::unique_ptr<udev::Watcher> watcher_;
};

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

  Daemon::Deps deps;
  deps.inv = inv;
  // Subscribe to udev before anything else, so no device is missed between
  // the enumeration and the first event.
  if (auto w = udev::Watcher::open(); w) {
    deps.devices = std::make_unique<UdevEvents>(std::move(*w));
  } else {
    log::warning("devices are not watched: ", w.error().message());
  }
  // The loop's systemd connection, for DeviceAllow=, leaders, machined's
  // signals and the inventory.
  const bool with_systemd = inv.root == "/" && host_booted_with_systemd();
  std::unique_ptr<SystemdControl> systemd;
  if (with_systemd) {
    if (auto sd = connect_systemd(); sd) {
      systemd = std::move(*sd);
      if (auto s = systemd->watch_machines(); !s) log::warning(s.error().message());
    } else {
      log::error(sd.error().message());
      return kExitFailed;
    }
  }
  deps.systemd = systemd.get();
  deps.connect_worker = [with_systemd]() -> Result<std::unique_ptr<SystemdControl>> {
    if (!with_systemd) return std::unique_ptr<SystemdControl>();
    return connect_systemd();
  };
  PosixProcessRunner runner;
  deps.runner = &runner;

  auto created = EventLoop::create();
  if (!created) {
    log::error("event loop: ", created.error().message());
    return kExitFailed;
  }
  EventLoop& loop = **created;
  deps.loop = &loop;

  {
    Daemon daemon(std::move(deps));
    if (auto s = daemon.start(std::move(*initial), sigfd); !s) {
      log::error(s.error().message());
      return kExitFailed;
    }
    loop.run();
    if (daemon.busy()) {
      // Stopping is immediate even mid-reconcile or mid-command: every apply
      // step is journaled and resumes at the next start.
      log::notice("stopping in the middle of a reconcile or command; it resumes at the next start");
      std::fflush(nullptr);
      std::_Exit(kExitOk);
    }
  }
  return kExitOk;
}

}  // namespace farmhand::agent
