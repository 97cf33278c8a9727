// Control of the host's systemd (PID 1) over D-Bus. Only used when the host
// is booted with systemd and farmhand works on the real root.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
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
};

// Tells the service manager about the service's state ("READY=1",
// "STATUS=..."); does nothing when not run by systemd as a notify service.
void notify_service_manager(const std::string& state);

// Whether the running system was booted with systemd (sd_booted()).
bool host_booted_with_systemd();

// Connects to the system bus; fails with a clear message if there is none.
Result<std::unique_ptr<SystemdControl>> connect_systemd();

}  // namespace farmhand
