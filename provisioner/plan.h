// Planning: the pure comparison of desired containers with what is observed
// on the host. No I/O happens here; `farmhand plan` prints the result and
// `farmhand apply` executes it.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "provisioner/layout.h"
#include "provisioner/state_store.h"

namespace farmhand::provisioner {

// What is on the host for one container name.
struct ObservedContainer {
  std::optional<ContainerRecord> record;
  // The container's own data exists: its root directory, or for an overlay
  // clone its upper directory (the mount point itself proves nothing).
  bool machine_dir_exists = false;
  bool overlay_mounted = false;
  // Logical host path -> content (nullopt: missing). Only paths the layout names.
  std::map<std::string, std::optional<std::string>> host_files;
  // Container-relative path -> content (nullopt: missing).
  std::map<std::string, std::optional<std::string>> container_files;
  // Logical path -> readlink (nullopt: missing). Only links the layout names.
  std::map<std::string, std::optional<std::string>> links;
  bool stray_boot_link = false;  // a boot symlink exists although boot is off
  std::vector<std::string> missing_user_groups;  // of the layout's build_user_groups
};

enum class Action { kCreate, kUpdate, kReplace, kDestroy, kUnchanged };
std::string_view to_string(Action action);

struct Change {
  Action action = Action::kUnchanged;
  std::string name;
  std::vector<std::string> reasons;  // why, for the admin: "release: bookworm -> trixie"
  std::optional<ContainerLayout> layout;  // absent for kDestroy
  std::optional<ContainerRecord> record;  // what state.db had, if anything
};

struct Plan {
  std::vector<Change> changes;       // desired containers in config order, then destroys
  HostNetworkLayout host_network;    // the host side of the containers' networks
  HostNetworkChange host_change;     // what apply changes there
  std::vector<std::string> conflicts;  // refusals: apply must not start when non-empty
  size_t count(Action action) const;
  bool has_work() const;
};

// The canonical JSON of a spec, as stored in state.db.
std::string spec_json(const ContainerSpec& spec);

Plan compute_plan(const std::vector<ContainerLayout>& desired,
                  const std::map<std::string, ObservedContainer>& observed);

}  // namespace farmhand::provisioner
