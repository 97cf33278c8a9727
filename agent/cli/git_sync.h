// `farmhand git-sync --request JSON`: the hidden helper that runs libgit2 for
// one container source without root.
//
// As root it loads the credential files and opens the source's directory
// inside the container tree (openat2 RESOLVE_IN_ROOT, so a symlink in the
// container cannot lead it out), then in a private mount namespace bind-mounts
// that directory on the request's mountpoint, drops to the build user and
// syncs the checkout there. It prints one JSON line (see
// provisioner/git.h: git_sync_result_json) and exits 0, or prints the error
// on stderr and exits 1 (2 for a malformed request).
#pragma once

#include <string>
#include <vector>

namespace farmhand::agent {

int cmd_git_sync(const std::vector<std::string>& args);

}  // namespace farmhand::agent
