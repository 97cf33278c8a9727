// Desired state -> plan -> apply, for the build containers of one host.
//
// Provisioner observes the host (through HostRoot), computes a Plan with the
// pure planner, and executes it step by step. Every step is idempotent and
// journaled in state.db, so an apply killed at any point converges when run
// again. Side effects come in through the constructor.
//
// This file is the public API and the order of an apply; the parts live in
// desired.h (what should be), observe.h (what is, and the plan),
// container_steps.h (create / finish / destroy / payload), host_network/
// (files and daemons of the host network), status.h and payload_run.h.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/fs.h"
#include "common/process.h"
#include "common/systemd.h"
#include "provisioner/net_health.h"
#include "provisioner/payload.h"
#include "provisioner/payload_run.h"
#include "provisioner/config.h"
#include "provisioner/plan.h"
#include "provisioner/recipe.h"
#include "provisioner/state_store.h"
#include "provisioner/status.h"
#include "provisioner/step_journal.h"

namespace farmhand::provisioner {

enum class UnitAction { kStart, kStop, kRestart };

struct ApplyOutcome {
  Plan plan;      // what apply planned (under its lock) and executed
  Status result;  // an error if any container failed; the others were applied
  // Containers whose payload changed (sources checked out, files written,
  // steps run, services installed or restarted), in config order.
  std::vector<std::string> payload_changed;
};

class Provisioner {
 public:
  // `systemd` may be null: then nothing is started or stopped through systemd
  // (a host without systemd as PID 1, or a --root prefix).
  // `clock` times the steps and stamps the payload status.
  Provisioner(AgentConfig config, const RecipeBook& recipes, HostRoot root, ProcessRunner& runner,
              SystemdControl* systemd, std::string host_hostname, const Clock& clock = real_clock());
  ~Provisioner();

  // What apply would do; reads only, never writes.
  Result<Plan> plan();
  // What apply would do to the payload of each container that has one
  // (PayloadApplier::preview); reads only. `fetch` asks the remotes.
  using PayloadPlan = PayloadPlanEntry;
  Result<std::vector<PayloadPlan>> payload_plan(bool fetch);
  // The enabled payload services of each running container, as its
  // systemd reports them (one `systemctl show` per service).
  using ServiceState = PayloadServiceState;
  Result<std::vector<ServiceState>> payload_services();
  // A service's last journal lines in a running container ("" if unreadable).
  std::string service_journal(const std::string& container, const std::string& unit);
  // Whether an apply is running now (it holds the apply lock).
  bool applying();
  // Marks a container's steps to rerun at the next apply, after any apply
  // that is running (PayloadApplier::request_rebuild).
  Result<std::vector<std::string>> request_rebuild(const std::string& name, const std::string& step, bool clean);
  // Plans and executes under the apply lock. An error means nothing was
  // changed (the plan failed, or has conflicts); a container that fails is
  // reported in the outcome while the others are still applied.
  Result<ApplyOutcome> apply(ApplyReporter& reporter);
  // Destroys one managed container; unknown names are refused.
  Status destroy(const std::string& name, ApplyReporter& reporter);
  // With `health_timeout` > 0, running veth containers are checked from
  // inside (in parallel), each for up to that long.
  Result<std::vector<ContainerStatus>> status(std::chrono::milliseconds health_timeout = {});

  // How the host side of the veth networks is (or would be) configured.
  NetworkChoice network_choice();

  // Checks the network of every running veth container from inside it.
  Result<std::map<std::string, NetworkHealth>> network_health(std::chrono::milliseconds timeout);

  // Starts every created container with boot on that is not running; the
  // names started. Needs systemd.
  Result<std::vector<std::string>> start_boot_containers(ApplyReporter& reporter);

  // Starts, stops or restarts a managed container's systemd-nspawn@ unit.
  Status control(const std::string& name, UnitAction action);

  // Where the payload's outside help comes from: the farmhand binary that
  // runs `git-sync` (default: this process's executable) and how to find a
  // running container's leader (default: systemd-machined, if systemd).
  void set_payload_runtime(std::string helper, std::function<std::optional<pid_t>(const std::string&)> leader_of);

  // The layout of a created container, with its root filesystem mounted if it
  // is an overlay (for `farmhand run` on hosts without systemd).
  Result<ContainerLayout> prepare_to_run(const std::string& name);

 private:
  std::unique_ptr<ProvisionerContext> ctx_;
};

}  // namespace farmhand::provisioner
