// One reconcile of the host, as the daemon runs it on its worker at start,
// on SIGHUP and for a new config commit: apply the configuration in force,
// start the containers that should run, check their networks.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agent/wiring.h"
#include "provisioner/config.h"
#include "provisioner/provisioner.h"

namespace farmhand::agent {

struct Reconciled {
  std::string summary;                 // one line for the service status
  std::optional<ConfigSync> sync;      // what fetching the config repository did
  std::vector<std::pair<std::string, std::string>> failures;  // container, step and error
  std::string config_commit;
  // The configuration this reconcile loaded (once) and applied; unset when
  // it is invalid. The daemon rebuilds its watches and devices from it.
  std::optional<provisioner::AgentConfig> config;
};

// Applies with `p` (wired for `out.config`), starts the containers that
// should run and checks the running ones' networks; logs what it fixed and
// fills in the summary and the failures.
void reconcile_with(provisioner::Provisioner& p, Reconciled& out);

}  // namespace farmhand::agent
