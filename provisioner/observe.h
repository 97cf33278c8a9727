// What is on the host now, for the planner: a container's files, links,
// mounts and build user (ObservedContainer), the host network files
// farmhand owns (ObservedHostNetwork), and the plan that follows from the
// desired state and them. Reads only.
#pragma once

#include <optional>

#include "provisioner/context.h"
#include "provisioner/plan.h"

namespace farmhand::provisioner {

// `want` null: a container state.db holds that the config no longer has.
ObservedContainer observe_container(const ProvisionerContext& ctx, const ContainerLayout* want,
                                    const std::optional<ContainerRecord>& record);

ObservedHostNetwork observe_host_network(const ProvisionerContext& ctx, const HostNetworkLayout& want);

// Desired state, observed state, compute_plan: what apply would do.
Result<Plan> make_plan(ProvisionerContext& ctx);

}  // namespace farmhand::provisioner
