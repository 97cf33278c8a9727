// The desired state of the host: one layout per configured container
// (config + recipe + its record + the host's facts) and the host network
// they need, plus the conflicts that stop an apply. Reads only.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "provisioner/context.h"
#include "provisioner/layout.h"

namespace farmhand::provisioner {

struct Desired {
  std::vector<ContainerLayout> layouts;
  HostNetworkLayout host_network;
  std::vector<std::string> conflicts;
};

// `records` are the containers state.db holds: a clone keeps its method,
// and a container keeps its subnet.
Result<Desired> desired_state(ProvisionerContext& ctx, const std::map<std::string, ContainerRecord>& records);

// The values a payload's templates see ({{container}}, {{gateway}}, ...).
std::map<std::string, std::string> template_vars(const ProvisionerContext& ctx, const ContainerLayout& layout);

}  // namespace farmhand::provisioner
