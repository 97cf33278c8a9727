#include "provisioner/payload_run.h"

#include "provisioner/desired.h"

namespace farmhand::provisioner {

namespace {

// A running container's target for reading its services (no layout needed).
PayloadTarget running_target(ProvisionerContext& ctx, const std::string& name, pid_t leader) {
  PayloadTarget target;
  target.tree = ctx.host(ctx.config.paths.machines + "/" + name);
  target.leader = leader;
  return target;
}

}  // namespace

PayloadTarget payload_target(ProvisionerContext& ctx, const ContainerLayout& l) {
  PayloadTarget target;
  target.layout = &l;
  target.tree = ctx.host(l.machine_dir);
  target.leader = ctx.leader(l.spec.name);
  target.vars = template_vars(ctx, l);
  return target;
}

PayloadApplier payload_applier(ProvisionerContext& ctx) {
  return PayloadApplier(*ctx.state, ctx.process_runner, ctx.helper_exe, ctx.root.map("/run/farmhand/git"));
}

bool payload_work(ProvisionerContext& ctx) {
  for (const auto& spec : ctx.config.containers) {
    if (has_payload(spec)) return true;
  }
  if (!ctx.state) return false;
  auto any = ctx.state->any_payload();
  return !any || *any;
}

Result<std::vector<PayloadPlanEntry>> plan_payloads(ProvisionerContext& ctx, const Plan& plan, bool fetch) {
  std::vector<PayloadPlanEntry> out;
  for (const auto& c : plan.changes) {
    if (!c.layout || !has_payload(c.layout->spec)) continue;
    PayloadPlanEntry pp;
    pp.container = c.name;
    if (c.action == Action::kCreate || c.action == Action::kReplace || !ctx.state) {
      pp.new_container = true;
      out.push_back(std::move(pp));
      continue;
    }
    PayloadTarget target = payload_target(ctx, *c.layout);
    auto last = ctx.state->payload_status(c.name);
    if (!last) return last.error();
    auto preview = payload_applier(ctx).preview(target, fetch, *last);
    if (!preview) return preview.error().context(c.name);
    pp.preview = std::move(*preview);
    out.push_back(std::move(pp));
  }
  return out;
}

Result<std::vector<PayloadServiceState>> payload_service_states(ProvisionerContext& ctx) {
  std::vector<PayloadServiceState> out;
  for (const auto& spec : ctx.config.containers) {
    bool any = false;
    for (const auto& svc : spec.services) any = any || svc.enable;
    if (!any) continue;
    auto leader = ctx.leader(spec.name);
    if (!leader) continue;
    PayloadTarget target = running_target(ctx, spec.name, *leader);
    for (const auto& svc : spec.services) {
      if (!svc.enable) continue;
      auto st = container_unit_state(ctx.process_runner, target, ctx.helper_exe, svc.name);
      if (!st) return st.error().context(spec.name + ": " + svc.name);
      out.push_back({spec.name, svc.name, *st});
    }
  }
  return out;
}

std::string payload_service_journal(ProvisionerContext& ctx, const std::string& container, const std::string& unit) {
  auto leader = ctx.leader(container);
  if (!leader) return "";
  return container_unit_journal(ctx.process_runner, running_target(ctx, container, *leader), ctx.helper_exe, unit);
}

Result<std::vector<std::string>> request_payload_rebuild(ProvisionerContext& ctx, const std::string& name,
                                                         const std::string& step, bool clean) {
  const ContainerSpec* spec = ctx.spec(name);
  if (spec == nullptr) return fail("no container \"" + name + "\" in the configuration");
  if (spec->setup.empty()) return fail(name + " has no setup steps to rebuild");
  if (auto s = ctx.open_state(); !s) return s.error();
  auto lock = FileLock::acquire(ctx.apply_lock_path());
  if (!lock) return lock.error();
  return payload_applier(ctx).request_rebuild(*spec, step, clean);
}

}  // namespace farmhand::provisioner
