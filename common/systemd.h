// Control of the host's systemd (PID 1) over D-Bus. Only used when the host
// is booted with systemd and farmhand works on the real root.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <utility>
#include <vector>
#include <string>

#include "common/result.h"

namespace farmhand {

class SystemdControl {
 public:
  virtual ~SystemdControl() = default;
  virtual Status daemon_reload() = 0;
  // Start, stop and restart return when systemd has finished the job.
  virtual Status start_unit(const std::string& unit) = 0;
  virtual Status stop_unit(const std::string& unit) = 0;
  virtual Status restart_unit(const std::string& unit) = 0;
  // Reloads the unit if it is running and supports reloading, restarts it
  // if it is running and does not; leaves a stopped unit stopped.
  virtual Status reload_or_try_restart_unit(const std::string& unit) = 0;
  // "active", "inactive", "failed", ...; "inactive" for unknown units.
  virtual Result<std::string> active_state(const std::string& unit) = 0;
  // The host pid of a running machine's leader (its init), from
  // systemd-machined; std::nullopt if no machine of that name is registered.
  virtual Result<std::optional<pid_t>> machine_leader(const std::string& machine) = 0;

  // A unit's DeviceAllow= list: (path, access) pairs.
  using DeviceAllowList = std::vector<std::pair<std::string, std::string>>;
  virtual Result<DeviceAllowList> device_allow(const std::string& unit) = 0;
  // Sets DeviceAllow= at runtime (SetUnitProperties, runtime=true):
  // appends `entries`, or with `reset` replaces the whole list by them.
  virtual Status set_device_allow(const std::string& unit, const DeviceAllowList& entries, bool reset) = 0;

  // Watching machined: after watch_machines(), the bus fd becomes readable
  // when a machine registers or goes away; machine_events() then returns
  // what happened since the last call, in order.
  struct MachineEvent {
    std::string name;
    bool started = true;  // false: the machine went away
  };
  virtual Status watch_machines() = 0;
  virtual int bus_fd() = 0;
  virtual std::vector<MachineEvent> machine_events() = 0;
};

// Tells the service manager about the service's state ("READY=1",
// "STATUS=..."); does nothing when not run by systemd as a notify service.
void notify_service_manager(const std::string& state);

// Whether the running system was booted with systemd (sd_booted()).
bool host_booted_with_systemd();

// Connects to the system bus; fails with a clear message if there is none.
Result<std::unique_ptr<SystemdControl>> connect_systemd();

}  // namespace farmhand
