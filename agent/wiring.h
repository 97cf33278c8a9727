// What the commands share: loading the configuration and wiring a
// Provisioner to the real host (processes, systemd over D-Bus).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/cli/cli.h"
#include "common/log.h"
#include "common/process.h"
#include "common/systemd.h"
#include "provisioner/config.h"
#include "provisioner/provisioner.h"
#include "provisioner/recipe.h"

namespace farmhand::agent {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;

std::string host_hostname();
// The configuration file: --config, or the default under --root.
std::string config_path(const Invocation& inv);
// The built-in recipes; null (after logging why) if they are broken.
const provisioner::RecipeBook* recipes();
// Loads and validates the configuration file; prints every error and warning.
std::optional<provisioner::AgentConfig> load_config(const std::string& path);
// The configuration in force: the file, and when it names a config
// repository, that repository's last good file for this host (no fetch).
// `commit` gets that file's commit ("" without a config repository).
std::optional<provisioner::AgentConfig> load_config(const Invocation& inv, std::string* commit = nullptr);

// What fetching the config repository did, for the log and the server.
struct ConfigSync {
  bool configured = false;           // agent.json names a config repository
  std::string commit;                // the commit in force afterwards
  bool changed = false;              // a new commit was accepted
  std::optional<std::string> error;  // a refused commit, or a failed fetch (the last good stays in force)
  bool refused = false;              // the error is a refused commit, not a failed fetch
  std::string summary;               // one line for the log and the server
};
// Fetches and validates the config repository, if agent.json names one.
ConfigSync sync_config(const Invocation& inv);

// A Provisioner on the real host, with what it needs kept alive.
struct Wired {
  PosixProcessRunner runner;
  std::unique_ptr<SystemdControl> systemd;  // null without systemd or under --root
  std::unique_ptr<provisioner::Provisioner> provisioner;
};

// Wires a Provisioner for `config`; fails only if systemd is there but
// cannot be reached.
Result<std::unique_ptr<Wired>> wire(const Invocation& inv, provisioner::AgentConfig config);
// A Provisioner for `config` over a runner and a systemd connection (null:
// none) that the caller keeps alive, and uses on one thread at a time.
std::unique_ptr<provisioner::Provisioner> wire_over(const Invocation& inv, provisioner::AgentConfig config,
                                                    ProcessRunner& runner, SystemdControl* systemd);

// Loads the configuration, wires a Provisioner and runs `body` with it; a
// bad configuration exits with kExitUsage, a failure to wire with kExitFailed.
template <typename Body>
int with_provisioner(const Invocation& inv, Body&& body) {
  auto config = load_config(inv);
  if (!config) return kExitUsage;
  auto wired = wire(inv, std::move(*config));
  if (!wired) {
    log::error(wired.error().message());
    return kExitFailed;
  }
  return body(*(*wired)->provisioner);
}

// Refuses arguments a command does not take: exactly `positional` plain
// arguments, and flags only from `flags`. Prints the usage on error.
bool expect_args(const Invocation& inv, size_t positional, const std::vector<std::string>& flags);
bool has_flag(const Invocation& inv, const std::string& flag);

// One line per container network: "healthy (gateway 0.2 ms, DNS 0.4 ms)"
// or "unhealthy: <reason>".
std::string describe_health(const provisioner::NetworkHealth& health);

// Containers just started need a few seconds to bring their network up.
inline constexpr std::chrono::seconds kApplyHealthTimeout{45};

// Checks every running veth container's network from inside and prints one
// line each. False if any is unhealthy.
bool report_health(provisioner::Provisioner& p, std::chrono::milliseconds timeout = kApplyHealthTimeout);

}  // namespace farmhand::agent
