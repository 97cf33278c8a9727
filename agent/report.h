// What the agent tells the central server about its host: the heartbeat's
// load, memory, disk and uptime, and the inventory of containers and
// devices. Parsing is pure so it is tested on fixed /proc texts.
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/fs.h"
#include "common/protocol.h"
#include "common/result.h"
#include "provisioner/net_health.h"
#include "provisioner/provisioner.h"
#include "udev/device_manager.h"
#include "udev/leases.h"

namespace farmhand::agent {

std::optional<std::array<double, 3>> parse_loadavg(std::string_view text);
// MemTotal and MemAvailable, in kB.
std::optional<std::pair<uint64_t, uint64_t>> parse_meminfo(std::string_view text);
std::optional<uint64_t> parse_uptime_seconds(std::string_view text);

// Reads /proc under `root` and the file system holding `disk_path`.
Result<protocol::Heartbeat> read_heartbeat(const HostRoot& root, const std::string& disk_path, int64_t now_ms);

// hostname, os, kernel, arch, farmhand_version, network_backend, firewall.
nlohmann::json host_facts(const HostRoot& root, const provisioner::NetworkChoice& network);

// The name a device goes by on the dashboard and in `detach` commands
// (udev/device_manager.h, where the manager finds a device by it).
using udev::device_id;

struct InventoryInput {
  nlohmann::json host;
  std::vector<provisioner::ContainerStatus> containers;
  // Whether a container runs, for hosts without systemd, where status
  // cannot tell ("ready").
  std::function<bool(const std::string&)> running;
  std::map<std::string, provisioner::NetworkHealth> health;  // last known
  std::map<std::string, int64_t> started_ms;                 // when each was seen starting
  std::vector<udev::Lease> leases;
};

// The body of an `inventory` frame (docs/protocol.md).
nlohmann::json inventory_body(const InventoryInput& in, int64_t now_ms);

}  // namespace farmhand::agent
