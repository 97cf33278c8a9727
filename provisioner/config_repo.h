// Desired state from git: the containers of this host come from a file in a
// configuration repository that agent.json names (`config_repo`).
//
// sync_config_repo fetches the repository (a bare clone in the state
// directory) and validates the host's file at the fetched commit. A valid
// file becomes the last good configuration, kept in
// STATE/config-repo.json; an invalid one is refused and the last good one
// stays in force. load_config_with_repo builds the configuration from
// agent.json and that last good file without touching the network.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/fs.h"
#include "provisioner/config.h"
#include "provisioner/recipe.h"

namespace farmhand::provisioner {

struct RepoSync {
  std::string commit;                  // the commit whose file is in force ("" if none yet)
  std::string previous;                // the commit in force before
  bool changed = false;                // a new commit was accepted
  std::optional<std::string> rejected; // why the fetched commit was refused ("PATH@COMMIT12: errors")
  std::string label;                   // "PATH@COMMIT12" of the commit in force
};

// Fetches and validates; an error means the repository could not be
// fetched or read (the last good configuration stays in force).
Result<RepoSync> sync_config_repo(const std::string& local_text, const AgentConfig& local, const HostRoot& root,
                                  const RecipeBook& recipes);

// The configuration in force: agent.json with the last good file of its
// config repository. `commit` is set to that file's commit ("" if none has
// been fetched yet: then there are no containers, and a warning says so).
ConfigLoad load_config_with_repo(const std::string& local_text, const AgentConfig& local, const HostRoot& root,
                                 const RecipeBook& recipes, std::string* commit);

// "hosts/b1.json@1a2b3c4d5e6f"
std::string repo_label(const ConfigRepo& repo, const std::string& commit);

}  // namespace farmhand::provisioner
