// Watches the payload services of running containers (sai-builder, say)
// through each container's systemd, so that one that dies after apply left
// it running is reported, also when its Restart= policy brings it back.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "provisioner/provisioner.h"

namespace farmhand::agent {

struct ServiceTrouble {
  std::string container;
  std::string unit;
  std::string message;  // "sai-builder.service died: failed, result signal"
};

// What went wrong since the last look, given what each unit was then
// (`last`, updated to `now`): a unit that was up and is down (failed or
// stopped), or that systemd restarted (its restart count grew). A unit
// seen for the first time is reported only if it is failed.
std::vector<ServiceTrouble> service_troubles(std::map<std::pair<std::string, std::string>, provisioner::UnitState>& last,
                                             const std::vector<provisioner::Provisioner::ServiceState>& now);

}  // namespace farmhand::agent
