// Control of the host's systemd (PID 1) over D-Bus. Only used when the host
// is booted with systemd and farmhand works on the real root.
#pragma once

#include <memory>
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
  // "active", "inactive", "failed", ...; "inactive" for unknown units.
  virtual Result<std::string> active_state(const std::string& unit) = 0;
};

// Whether the running system was booted with systemd (sd_booted()).
bool host_booted_with_systemd();

// Connects to the system bus; fails with a clear message if there is none.
Result<std::unique_ptr<SystemdControl>> connect_systemd();

}  // namespace farmhand
