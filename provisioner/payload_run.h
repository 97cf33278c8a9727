// The provisioner's side of the payload: where a container's payload runs
// (PayloadTarget), the applier over state.db, and the reads around it
// (plan, service states, journals, rebuild requests). The applying itself is
// PayloadApplier (payload.h); ContainerSteps::payload runs it in an apply.
#pragma once

#include <string>
#include <vector>

#include "provisioner/context.h"
#include "provisioner/payload.h"
#include "provisioner/plan.h"

namespace farmhand::provisioner {

// Where the payload of a created container runs: its tree, its leader if
// running, and the template values.
PayloadTarget payload_target(ProvisionerContext& ctx, const ContainerLayout& layout);
// The applier over ctx's (open) state.db.
PayloadApplier payload_applier(ProvisionerContext& ctx);

// Whether apply has payload to look at: declared, or left by an earlier apply.
bool payload_work(ProvisionerContext& ctx);

struct PayloadPlanEntry {
  std::string container;
  bool new_container = false;  // created or replaced by this apply: all of it runs
  PayloadPreview preview;
};
Result<std::vector<PayloadPlanEntry>> plan_payloads(ProvisionerContext& ctx, const Plan& plan, bool fetch);

struct PayloadServiceState {
  std::string container;
  std::string unit;
  UnitState state;
};
Result<std::vector<PayloadServiceState>> payload_service_states(ProvisionerContext& ctx);
std::string payload_service_journal(ProvisionerContext& ctx, const std::string& container, const std::string& unit);

Result<std::vector<std::string>> request_payload_rebuild(ProvisionerContext& ctx, const std::string& name,
                                                         const std::string& step, bool clean);

}  // namespace farmhand::provisioner
