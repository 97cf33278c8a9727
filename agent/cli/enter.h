// `farmhand enter` (internal): runs a command inside a running container,
// for the setup steps and services of its payload.
//
//   farmhand enter --target PID [--uid UID --gid GID] --cwd DIR -- ARGV...
//
// Joins the namespaces of the container's init (PID), then changes to DIR
// as the container sees it, drops to UID:GID (ids inside the container) and
// runs ARGV, found on the PATH of the environment it was given. Unlike
// `nsenter --wd`, the directory is resolved inside the container, so a
// symlink there can never lead to a host directory. Exits with the
// command's status (128+N if it was killed by signal N).
#pragma once

#include <string>
#include <vector>

namespace farmhand::agent {

int cmd_enter(const std::vector<std::string>& args);

}  // namespace farmhand::agent
