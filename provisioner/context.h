// What the parts of the provisioner share (internal to provisioner/): the
// configuration, the host, the tools that act on it, and state.db.
//
// Provisioner (provisioner.cpp) owns one; desired.cpp, observe.cpp,
// container_steps.cpp, host_network/ and status.cpp each take it by
// reference. Nothing here decides anything: it only opens and finds.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/fs.h"
#include "common/process.h"
#include "common/systemd.h"
#include "provisioner/base_image.h"
#include "provisioner/clone.h"
#include "provisioner/command_runner.h"
#include "provisioner/config.h"
#include "provisioner/host_network.h"
#include "provisioner/recipe.h"
#include "provisioner/state_store.h"

namespace farmhand::provisioner {

// "systemd-nspawn@NAME.service"
std::string unit_of(const std::string& name);

struct ProvisionerContext {
  ProvisionerContext(AgentConfig c, const RecipeBook& r, HostRoot h, ProcessRunner& runner, SystemdControl* sd,
                     std::string hostname, const Clock& clk);

  AgentConfig config;
  const RecipeBook& recipes;
  HostRoot root;
  ProcessRunner& process_runner;
  CommandRunner commands;
  Cloner cloner;
  BaseImages images;
  SystemdControl* systemd;  // null: no systemd (no host booted with it, or --root)
  std::string host_hostname;
  const Clock& clock;
  std::optional<StateStore> state;        // open once anything needs it
  std::optional<CloneMethod> detected;    // "auto" resolved for this host
  std::string helper_exe;                 // runs `farmhand git-sync` for the payload
  std::function<std::optional<pid_t>(const std::string&)> leader_of;  // overrides machined

  fs::path host(const std::string& logical) const { return root.map(logical); }
  fs::path state_db_path() const { return host(config.paths.state + "/state.db"); }
  fs::path apply_lock_path() const { return host(config.paths.state + "/apply.lock"); }

  // Opens state.db, creating it, for commands that change things.
  Status open_state();
  // Opens state.db only if it exists: planning must not create anything.
  Status open_state_if_present();

  // A running container's leader pid (leader_of, else machined).
  std::optional<pid_t> leader(const std::string& name);
  // The record of a container farmhand manages; an error for any other name.
  Result<ContainerRecord> managed_record(const std::string& name);
  // The subnets state.db holds, by container; none before the first apply.
  Result<std::map<std::string, Cidr>> subnets();
  // Every container record, by name; none before the first apply.
  Result<std::map<std::string, ContainerRecord>> records();

  // The clone method a new container gets ("auto" detected once).
  CloneMethod method_for_new_container();
  // The configured mirror of a distro; "" for the recipe's default.
  std::string mirror_for(const std::string& distro) const;
  // How the host side of the veth networks is (or would be) configured.
  NetworkChoice network_choice();
  // The configured spec of a container, or null.
  const ContainerSpec* spec(const std::string& name) const;
};

}  // namespace farmhand::provisioner
