// Desired state -> plan -> apply, for the build containers of one host.
//
// Provisioner observes the host (through HostRoot), computes a Plan with the
// pure planner, and executes it step by step. Every step is idempotent and
// journaled in state.db, so an apply killed at any point converges when run
// again. Side effects come in through the constructor.
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

#include "common/fs.h"
#include "common/process.h"
#include "common/systemd.h"
#include "provisioner/net_health.h"
#include "provisioner/payload.h"
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
  // A running step's heartbeat ("lws-build: 2 m 10 s, 4,312 lines, last:
  // ..."), at least every 10 s while it shows nothing else.
  virtual void step_heartbeat(const std::string& container, std::string_view text) { step_output(container, text); }
  // Something the admin should fix that did not fail the apply.
  virtual void warning(const std::string& /*container*/, std::string_view /*text*/) {}
};

struct ContainerStatus {
  std::string name;
  std::string distro;
  std::string release;
  std::string arch;
  std::string state;      // "ready", "creating", "destroying", "missing", "planned"
  std::string address;    // container address, "192.168.80.9"
  std::string gateway;    // the host end of its veth link, "192.168.80.1"
  std::string subnet;
  std::string clone_method;
  bool boot = false;
  std::string network_mode;  // "veth", "macvlan", "ipvlan"
  std::string link;          // macvlan/ipvlan parent
  // Network health of a running veth container, checked from inside it;
  // unset when not checked (stopped, no systemd, or not a veth network).
  std::optional<NetworkHealth> health;
  struct Source {
    std::string name;
    std::string ref;     // as configured; empty if no longer configured
    std::string commit;  // checked out by the last apply
  };
  std::vector<Source> sources;
  // How its payload last went; unset for a container without one, or not
  // applied since farmhand kept this.
  struct Payload {
    std::string state;    // "ok", "running", "failed", "interrupted"
    std::string item;     // running or failed: "setup lws-build"
    std::string message;  // failed: the error
    int64_t time_ms = 0;  // when it finished, failed, or reached `item`
  };
  std::optional<Payload> payload;
};

// One line for a container's payload state: "ok", "step lws-build failed
// at 2026-12-02 12:01:03: make: *** [all] Error 2", "running setup
// lws-build (since 12:00:41)", "interrupted at setup lws-build (...)".
std::string describe_payload(const ContainerStatus::Payload& payload);
// The last non-empty line of an error, for one-line summaries.
std::string last_line(std::string_view text);

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
  Provisioner(AgentConfig config, const RecipeBook& recipes, HostRoot root, ProcessRunner& runner,
              SystemdControl* systemd, std::string host_hostname);
  ~Provisioner();

  // What apply would do; reads only, never writes.
  Result<Plan> plan();
  // What apply would do to the payload of each container that has one
  // (PayloadApplier::preview); reads only. `fetch` asks the remotes.
  struct PayloadPlan {
    std::string container;
    bool new_container = false;  // created or replaced by this apply: all of it runs
    PayloadPreview preview;
  };
  Result<std::vector<PayloadPlan>> payload_plan(bool fetch);
  // The enabled payload services of each running container, as its
  // systemd reports them (one `systemctl show` per service).
  struct ServiceState {
    std::string container;
    std::string unit;
    UnitState state;
  };
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
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace farmhand::provisioner
