// The daemon's notify socket, on hosts without systemd: `farmhand run`
// points systemd-nspawn's NOTIFY_SOCKET at it, and nspawn sends
// "X_NSPAWN_LEADER_PID=..." once the container's init runs. The sender is
// nspawn, whose pid the container's run record holds; the kernel vouches
// for that pid (SCM_CREDENTIALS), so only the text's presence is read.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace farmhand::agent {

// A non-blocking datagram socket bound at `path` (replacing a stale one),
// with SO_PASSCRED so every message carries its sender's credentials.
// -1, after a warning, if it cannot be opened.
int open_notify_socket(const std::string& path);

// Reads every message queued on `fd` (never blocks) and returns the sender
// pid of each that announces a container's leader. Messages without
// credentials, or saying anything else, are dropped.
std::vector<pid_t> read_leader_notices(int fd);

}  // namespace farmhand::agent
