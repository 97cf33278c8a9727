// A container's row, in its two encodings: `farmhand status --json` (every
// field the provisioner knows, in a fixed order) and the inventory the
// server gets (docs/protocol.md: the dashboard's states and what it shows).
// The keys both carry (name, distro, release, address, a source's name and
// commit, a payload's state and item) are written by one encoder; the rest
// differ on purpose and are written by each. Neither changes a key or a
// value: the protocol's tests and the status tests are the guard.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "provisioner/net_health.h"
#include "provisioner/provisioner.h"

namespace farmhand::agent {

// `farmhand status --json`'s row.
nlohmann::ordered_json status_row(const provisioner::ContainerStatus& row);

// The state the dashboard shows for a container: running, stopped, failed
// or unknown. `running` tells for "ready" ones (hosts without systemd).
std::string dashboard_state(const provisioner::ContainerStatus& row,
                            const std::function<bool(const std::string&)>& running);

// The inventory's row, in `state` (dashboard_state's), with the last known
// network health and when it was seen starting (both for a running one).
nlohmann::json inventory_row(const provisioner::ContainerStatus& row, const std::string& state,
                             const provisioner::NetworkHealth* health, std::optional<int64_t> since_ms);

}  // namespace farmhand::agent
