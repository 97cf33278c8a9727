#include "provisioner/provisioner.h"

#include <algorithm>
#include <map>

#include <nlohmann/json.hpp>

#include "common/log.h"
#include "provisioner/container_steps.h"
#include "provisioner/context.h"
#include "provisioner/desired.h"
#include "provisioner/host_network/apply.h"
#include "provisioner/observe.h"

namespace farmhand::provisioner {

namespace {

// The containers of an apply that failed, in order; a failed one is
// skipped by the later phases.
class Failures {
 public:
  void note(const std::string& name, const Status& s) {
    if (s) return;
    log::error("container \"", name, "\": ", s.error().message());
    names_.push_back(name);
  }
  bool has(const std::string& name) const { return std::find(names_.begin(), names_.end(), name) != names_.end(); }
  Status result() const {
    if (names_.empty()) return {};
    std::string all;
    for (const auto& n : names_) all += (all.empty() ? "\"" : ", \"") + n + "\"";
    return fail(std::to_string(names_.size()) + " container(s) failed: " + all);
  }

 private:
  std::vector<std::string> names_;
};

std::string host_network_step(const NetworkChoice& net) {
  return net.configure ? "host network (" + std::string(to_string(net.backend)) + ", firewall " +
                             std::string(to_string(net.firewall)) + ")"
                       : "host network (no veth containers left)";
}

}  // namespace

Provisioner::Provisioner(AgentConfig config, const RecipeBook& recipes, HostRoot root, ProcessRunner& runner,
                         SystemdControl* systemd, std::string host_hostname, const Clock& clock)
    : ctx_(std::make_unique<ProvisionerContext>(std::move(config), recipes, std::move(root), runner, systemd,
                                                std::move(host_hostname), clock)) {}

Provisioner::~Provisioner() = default;

Result<Plan> Provisioner::plan() { return make_plan(*ctx_); }

Result<std::vector<Provisioner::PayloadPlan>> Provisioner::payload_plan(bool fetch) {
  auto plan = make_plan(*ctx_);
  if (!plan) return plan.error();
  return plan_payloads(*ctx_, *plan, fetch);
}

Result<std::vector<Provisioner::ServiceState>> Provisioner::payload_services() { return payload_service_states(*ctx_); }

std::string Provisioner::service_journal(const std::string& container, const std::string& unit) {
  return payload_service_journal(*ctx_, container, unit);
}

bool Provisioner::applying() { return FileLock::held(ctx_->apply_lock_path()); }

Result<std::vector<std::string>> Provisioner::request_rebuild(const std::string& name, const std::string& step,
                                                              bool clean) {
  return request_payload_rebuild(*ctx_, name, step, clean);
}

// The order of an apply: plan under the lock; destroy (freeing subnets and
// names); record the subnets; the host network (a failure stops here, as
// containers would come up unreachable); create and update each container;
// then the payload of every ready one. A container that fails is skipped by
// the later phases while the others go on.
Result<ApplyOutcome> Provisioner::apply(ApplyReporter& reporter) {
  ProvisionerContext& ctx = *ctx_;
  // Plan under the lock: a concurrent apply must never act on a stale plan.
  std::optional<FileLock> lock;
  const fs::path state_dir = ctx.host(ctx.config.paths.state);
  if (path_exists(state_dir)) {
    auto l = FileLock::acquire(ctx.apply_lock_path());
    if (!l) return l.error();
    lock.emplace(std::move(*l));
  }
  auto planned = make_plan(ctx);
  if (!planned) return planned.error();
  ApplyOutcome outcome{std::move(*planned), {}, {}};
  const Plan& plan = outcome.plan;
  if (!plan.conflicts.empty()) {
    std::string all;
    for (const auto& c : plan.conflicts) all += (all.empty() ? "" : "\n") + c;
    return fail(all);
  }
  if (!plan.has_work() && !ip_forward_off(ctx, plan.host_network.choice) && !payload_work(ctx)) return outcome;
  if (auto s = ctx.open_state(); !s) return s.error();
  if (!lock) {
    auto l = FileLock::acquire(ctx.apply_lock_path());
    if (!l) return l.error();
    lock.emplace(std::move(*l));
  }
  auto apply_id = ctx.state->begin_apply();
  if (!apply_id) return apply_id.error();
  StepJournal journal(&*ctx.state, reporter, *apply_id, ctx.clock);
  ContainerSteps steps(ctx, journal);

  Failures failed;
  for (const auto& c : plan.changes) {
    if ((c.action == Action::kDestroy || c.action == Action::kReplace) && c.record) {
      failed.note(c.name, steps.destroy(*c.record));
    }
  }
  std::map<std::string, Cidr> subnets;
  for (const auto& c : plan.changes) {
    if (c.layout && c.layout->spec.network.mode == NetworkMode::kVeth) subnets[c.name] = c.layout->subnet;
  }
  if (auto s = ctx.state->set_subnets(subnets); !s) return s.error();
  if (auto s = ensure_ip_forward(ctx, journal, plan.host_network.choice); !s) {
    outcome.result = s;
    return outcome;
  }
  if (plan.host_change.has_work()) {
    Status s = journal.run("host", host_network_step(plan.host_network.choice),
                           [&] { return apply_host_network(ctx, plan.host_network, plan.host_change); });
    if (!s) {
      log::error("host network: ", s.error().message());
      outcome.result = fail("the host network could not be configured: " + s.error().message());
      return outcome;
    }
  }
  for (const auto& c : plan.changes) {
    if (!c.layout || failed.has(c.name)) continue;
    if (c.action == Action::kCreate || c.action == Action::kReplace) failed.note(c.name, steps.create(*c.layout));
    if (c.action == Action::kUpdate) failed.note(c.name, steps.finish(*c.layout));
  }
  // The payload of every container that exists, changed or not: sources
  // are fetched each time, and only what changed is redone.
  for (const auto& c : plan.changes) {
    if (!c.layout || c.action == Action::kDestroy || failed.has(c.name)) continue;
    auto rec = ctx.state->container(c.name);
    if (!rec) return rec.error();
    if (!*rec || (*rec)->phase != Phase::kReady) continue;
    auto changed = steps.payload(*c.layout);
    if (!changed) {
      failed.note(c.name, changed.error());
    } else if (*changed) {
      outcome.payload_changed.push_back(c.name);
    }
  }
  outcome.result = failed.result();
  return outcome;
}

Status Provisioner::destroy(const std::string& name, ApplyReporter& reporter) {
  ProvisionerContext& ctx = *ctx_;
  auto rec = ctx.managed_record(name);
  if (!rec) return rec.error();
  auto lock = FileLock::acquire(ctx.apply_lock_path());
  if (!lock) return lock.error();
  auto apply_id = ctx.state->begin_apply();
  if (!apply_id) return apply_id.error();
  StepJournal journal(&*ctx.state, reporter, *apply_id, ctx.clock);
  if (auto s = ContainerSteps(ctx, journal).destroy(*rec); !s) return s;
  // Its host network entries go with it: what remains is the host network
  // of the containers that still hold a subnet.
  auto subnets = ctx.state->subnets();
  if (!subnets) return subnets.error();
  std::vector<VethContainer> veths;
  for (const auto& [n, cidr] : *subnets) veths.push_back({n, cidr});
  HostNetworkLayout want = make_host_network(ctx.network_choice(), ctx.config.pool, veths);
  HostNetworkChange change = plan_host_network(want, observe_host_network(ctx, want));
  if (!change.has_work()) return {};
  return journal.run("host", "host network", [&] { return apply_host_network(ctx, want, change); });
}

Result<std::vector<ContainerStatus>> Provisioner::status(std::chrono::milliseconds health_timeout) {
  auto out = container_statuses(*ctx_);
  if (!out) return out.error();
  if (health_timeout.count() > 0) {
    auto health = check_networks(*ctx_, health_timeout);
    if (!health) return health.error();
    for (auto& cs : *out) {
      if (auto it = health->find(cs.name); it != health->end()) cs.health = it->second;
    }
  }
  return out;
}

NetworkChoice Provisioner::network_choice() { return ctx_->network_choice(); }

void Provisioner::set_payload_runtime(std::string helper,
                                      std::function<std::optional<pid_t>(const std::string&)> leader_of) {
  if (!helper.empty()) ctx_->helper_exe = std::move(helper);
  ctx_->leader_of = std::move(leader_of);
}

Result<std::map<std::string, NetworkHealth>> Provisioner::network_health(std::chrono::milliseconds timeout) {
  return check_networks(*ctx_, timeout);
}

Result<std::vector<std::string>> Provisioner::start_boot_containers(ApplyReporter& reporter) {
  ProvisionerContext& ctx = *ctx_;
  std::vector<std::string> started;
  if (ctx.systemd == nullptr) return started;
  if (auto s = ctx.open_state_if_present(); !s) return s.error();
  auto recs = ctx.records();
  if (!recs) return recs.error();
  // Reported, not journaled: starting at boot is not an apply.
  StepJournal journal(nullptr, reporter, 0, ctx.clock);
  for (const auto& [name, rec] : *recs) {
    if (rec.phase != Phase::kReady) continue;
    auto j = nlohmann::json::parse(rec.spec_json, nullptr, false);
    if (j.is_discarded() || !j.value("boot", false)) continue;
    auto st = ctx.systemd->active_state(unit_of(name));
    if (!st) return st.error();
    if (*st == "active" || *st == "activating") continue;
    const std::string unit = unit_of(name);
    if (auto s = journal.run(name, "start " + unit + " (was " + *st + ")",
                             [&] { return ctx.systemd->start_unit(unit); });
        !s) {
      return s.error();
    }
    started.push_back(name);
  }
  return started;
}

Status Provisioner::control(const std::string& name, UnitAction action) {
  if (ctx_->systemd == nullptr) {
    return fail("starting and stopping containers needs a host booted with systemd; use `farmhand run " + name +
                "` here");
  }
  auto rec = ctx_->managed_record(name);
  if (!rec) return rec.error();
  if (rec->phase != Phase::kReady) {
    return fail("container \"" + name + "\" is not ready (" + std::string(to_string(rec->phase)) +
                "): run `farmhand apply` first");
  }
  switch (action) {
    case UnitAction::kStart: return ctx_->systemd->start_unit(unit_of(name));
    case UnitAction::kStop: return ctx_->systemd->stop_unit(unit_of(name));
    case UnitAction::kRestart: return ctx_->systemd->restart_unit(unit_of(name));
  }
  return {};
}

Result<ContainerLayout> Provisioner::prepare_to_run(const std::string& name) {
  ProvisionerContext& ctx = *ctx_;
  if (auto s = ctx.open_state_if_present(); !s) return s.error();
  auto recs = ctx.records();
  if (!recs) return recs.error();
  auto rec = recs->find(name);
  if (rec == recs->end() || rec->second.phase != Phase::kReady) {
    return fail("container \"" + name + "\" has not been created yet: run `farmhand apply` first");
  }
  auto want = desired_state(ctx, *recs);
  if (!want) return want.error();
  for (auto& l : want->layouts) {
    if (l.spec.name != name) continue;
    if (l.clone_method == CloneMethod::kOverlay) {
      if (auto s = ctx.cloner.mount_overlay(ctx.host(l.base_dir), ctx.host(l.machine_dir), ctx.host(l.overlay_dir));
          !s) {
        return s.error();
      }
    }
    return std::move(l);
  }
  return fail("no container named \"" + name + "\" in the configuration");
}

}  // namespace farmhand::provisioner
