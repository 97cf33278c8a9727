// `farmhand daemon`: the agent service. One event loop (libwebsockets' own)
// carries the server link, udev, machined's signals, container exits and
// signals. At start, on SIGHUP and for a new config commit it reconciles
// the host on a worker thread, as it must after every boot: host network
// files restored, containers that should run started. The server's slow
// commands run on the same worker.
//
// Threads, and what each owns:
// - the loop's thread (the one in EventLoop::run()): every public method
//   and every callback below; the ServerReport, the device side, the
//   container exits, and `systemd` of Deps, the loop's D-Bus connection
//   (machined's signals, DeviceAllow=, leaders), with `view_`, the
//   Provisioner the inventory reads over it.
// - the worker's thread: `provisioner_`, the daemon's one wired
//   Provisioner, and its D-Bus connection `worker_systemd_`, kept from job
//   to job; reconciles and server commands run there one at a time. A
//   job's result comes back to the loop with EventLoop::post(). The worker
//   does not share the loop's connection: a unit job waits on its bus for
//   up to two minutes, and would both hold devices up and swallow
//   machined's signals that the loop waits for.
// - the health and service watches: a thread each, with their own
//   Provisioner (agent/daemon/watches.h); they post what they see.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agent/cli/cli.h"
#include "agent/daemon/container_exits.h"
#include "agent/daemon/reconcile.h"
#include "agent/daemon/watches.h"
#include "agent/daemon/worker.h"
#include "agent/devices.h"
#include "agent/loop.h"
#include "agent/runtime.h"
#include "agent/server_report.h"
#include "common/clock.h"
#include "common/process.h"
#include "common/protocol.h"
#include "common/systemd.h"
#include "provisioner/config.h"
#include "provisioner/provisioner.h"
#include "udev/binder.h"
#include "udev/device.h"
#include "udev/leases.h"

namespace farmhand::agent {

// Where device events come from: udev's monitor, or a test's fake.
class DeviceEvents {
 public:
  virtual ~DeviceEvents() = default;
  // Readable when events are queued.
  virtual int fd() const = 0;
  // Every queued event; never blocks.
  virtual std::vector<udev::Device> drain() = 0;
  // The devices present now.
  virtual Result<std::vector<udev::Device>> enumerate() = 0;
};

class Daemon {
 public:
  // Why a reconcile runs.
  enum class Why { kStart, kReload, kConfigTimer };

  // Side effects, injected (cmd_daemon wires the real host).
  struct Deps {
    Invocation inv;
    EventLoop* loop = nullptr;
    const Clock* clock = nullptr;       // null: real_clock()
    ProcessRunner* runner = nullptr;    // the daemon's Provisioners'; used from the loop and the worker
    SystemdControl* systemd = nullptr;  // the loop's connection; null: no systemd as PID 1, or --root
    // The worker's own connection, made on its first use (null: none).
    std::function<Result<std::unique_ptr<SystemdControl>>()> connect_worker;
    std::unique_ptr<DeviceEvents> devices;  // null: devices are not watched
    // How devices are handed to a container (null: systemd's DeviceAllow=,
    // or the host's cgroup without systemd).
    std::function<std::unique_ptr<udev::DeviceAccess>()> device_access;
    // A running container's leader (null: ContainerLocator).
    std::function<std::optional<pid_t>(const std::string&)> leader;
    // The configuration in force and its config commit (null: load_config).
    std::function<std::optional<provisioner::AgentConfig>(std::string* commit)> load_config;
    // Whether to run the health and service watches (tests do not).
    bool watches = true;
  };

  explicit Daemon(Deps deps);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Starts reporting, devices and watches for `initial`, watches the event
  // sources (and `signal_fd`, if >= 0) on the loop, and queues the first
  // reconcile. Fails if a source cannot be watched.
  Status start(provisioner::AgentConfig initial, int signal_fd = -1);
  // Whether a reconcile or a command runs or waits on the worker.
  bool busy() { return worker_->busy(); }

  // SIGTERM and SIGINT stop the loop; SIGHUP reconciles.
  void on_signal(int signo);
  // udev's monitor is readable.
  void on_udev();
  // The loop's bus is readable: machined's signals.
  void on_machine();
  // The notify socket is readable (hosts without systemd).
  void on_notify();
  // Queues a reconcile on the worker; what it did comes back to the loop.
  void reconcile(Why why);
  // A command from the server: detach here, the rest on the worker.
  void on_command(const protocol::Command& command);

  void container_started(const std::string& name);
  void container_stopped(const std::string& name);

 private:
  struct DeviceSide;
  // Worker thread: the one Provisioner, wired for `config` over the worker's
  // kept connection; null (after logging) if systemd cannot be reached.
  provisioner::Provisioner* provision(provisioner::AgentConfig config, std::string* error);
  Reconciled reconcile_now(Why why);
  void reconciled(Why why, const Reconciled& done);
  void run_command(const protocol::Command& command, provisioner::AgentConfig config, uint64_t generation);
  // The configuration in force changed: watches, devices and the
  // inventory's Provisioner follow it.
  void follow_config(const provisioner::AgentConfig& config);
  void start_report(const provisioner::AgentConfig& config);
  void start_devices(provisioner::AgentConfig config);
  void start_watches(const provisioner::AgentConfig& config);
  void arm_device_retry();
  // An admin's detach of a device (by its dashboard id or its node).
  Result<std::string> detach_device(const std::string& id);
  void schedule_config_fetch();
  Status watch(int fd, std::function<void()> fn, const char* what);
  std::optional<pid_t> leader(const std::string& name) const;

  Deps deps_;
  EventLoop& loop_;
  const Clock& clock_;
  ContainerLocator locator_;

  // Loop thread.
  std::optional<provisioner::AgentConfig> config_;  // in force
  std::unique_ptr<provisioner::Provisioner> view_;  // the inventory's, over deps_.systemd
  std::unique_ptr<ServerReport> report_;
  uint64_t report_generation_ = 0;  // a command's answer goes to the report it came from
  std::unique_ptr<DeviceSide> devices_;
  std::optional<EventLoop::TimerId> device_retry_;
  ContainerExits exits_;
  int notify_fd_ = -1;
  std::vector<EventLoop::WatchId> watches_;
  std::unique_ptr<PeriodicWatch> health_;
  std::unique_ptr<PeriodicWatch> services_;

  // Worker thread.
  bool worker_connected_ = false;
  std::unique_ptr<SystemdControl> worker_systemd_;
  std::unique_ptr<provisioner::Provisioner> provisioner_;

  // Stopped first when the daemon goes (a running job finishes while the
  // rest lives; queued ones are dropped).
  std::unique_ptr<Worker> worker_ = std::make_unique<Worker>();
};

}  // namespace farmhand::agent
