// Where a running container is: its leader (init) pid.
//
// On a host booted with systemd, systemd-machined knows. Elsewhere the
// containers are started by `farmhand run`, which records its own pid (it
// becomes systemd-nspawn) in /run/farmhand/running/NAME, with the process's
// start time so a reused pid is never mistaken for it; the container's init
// is that process's child.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "common/fs.h"
#include "common/result.h"
#include "common/systemd.h"

namespace farmhand::agent {

inline constexpr const char* kRunningDir = "/run/farmhand/running";
// `farmhand daemon` listens here; `farmhand run` points systemd-nspawn's
// NOTIFY_SOCKET at it, so the agent hears when a container's init runs
// (nspawn sends X_NSPAWN_LEADER_PID=) without polling.
inline constexpr const char* kNotifySocket = "/run/farmhand/notify";

// Records the calling process as the one running container `name`.
Status record_running(const HostRoot& root, const std::string& name);

class ContainerLocator {
 public:
  // `systemd` may be null (no systemd as PID 1): the run records are used.
  ContainerLocator(HostRoot root, SystemdControl* systemd) : root_(std::move(root)), systemd_(systemd) {}
  // The leader pid of a running container, std::nullopt if it is not running.
  std::optional<pid_t> leader(const std::string& name) const;
  // The container whose run record names process `pid` (its nspawn).
  std::optional<std::string> container_of(pid_t pid) const;

 private:
  HostRoot root_;
  SystemdControl* systemd_;
};

// A process's start time (field 22 of /proc/PID/stat); std::nullopt if gone.
std::optional<unsigned long long> process_start_time(pid_t pid);

}  // namespace farmhand::agent
