// Desired state -> plan -> apply, for the build containers of one host.
//
// Provisioner observes the host (through HostRoot), computes a Plan with the
// pure planner, and executes it step by step. Every step is idempotent and
// journaled in state.db, so an apply killed at any point converges when run
// again. Side effects come in through the constructor.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/fs.h"
#include "common/process.h"
#include "common/systemd.h"
#include "provisioner/config.h"
#include "provisioner/plan.h"
#include "provisioner/recipe.h"
#include "provisioner/state_store.h"

namespace farmhand::provisioner {

// Where apply reports its progress; the CLI prints it.
class ApplyReporter {
 public:
  virtual ~ApplyReporter() = default;
  virtual void step_started(const std::string& container, const std::string& step) = 0;
  // A line of a long-running tool's output (debootstrap, apt-get).
  virtual void step_output(const std::string& container, std::string_view line) = 0;
  virtual void step_finished(const std::string& container, const std::string& step,
                             std::chrono::milliseconds elapsed, const Status& result) = 0;
};

struct ContainerStatus {
  std::string name;
  std::string distro;
  std::string release;
  std::string arch;
  std::string state;      // "ready", "creating", "destroying", "missing", "planned"
  std::string address;    // container address, "192.168.80.9"
  std::string subnet;
  std::string clone_method;
  bool boot = false;
};

struct ApplyOutcome {
  Plan plan;      // what apply planned (under its lock) and executed
  Status result;  // an error if any container failed; the others were applied
};

class Provisioner {
 public:
  // `systemd` may be null: then nothing is started or stopped through systemd
  // (a host without systemd as PID 1, or a --root prefix).
  Provisioner(AgentConfig config, const RecipeBook& recipes, HostRoot root, ProcessRunner& runner,
              SystemdControl* systemd, std::string host_hostname);
  ~Provisioner();

  // What apply would do; reads only, never writes.
  Result<Plan> plan();
  // Plans and executes under the apply lock. An error means nothing was
  // changed (the plan failed, or has conflicts); a container that fails is
  // reported in the outcome while the others are still applied.
  Result<ApplyOutcome> apply(ApplyReporter& reporter);
  // Destroys one managed container; unknown names are refused.
  Status destroy(const std::string& name, ApplyReporter& reporter);
  Result<std::vector<ContainerStatus>> status();

  // The layout of a created container, with its root filesystem mounted if it
  // is an overlay (for `farmhand run` on hosts without systemd).
  Result<ContainerLayout> prepare_to_run(const std::string& name);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace farmhand::provisioner
