// What `farmhand status`, the inventory and the dashboard show of each
// container: its state (one enum, one string table), network, sources and
// payload; and the network health checked from inside running containers.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "provisioner/net_health.h"

namespace farmhand::provisioner {

// A container's state as the agent sees it. `ready` is created but with
// nothing to say whether it runs (no systemd and not started by
// `farmhand run`); `missing` is recorded but its root filesystem is gone.
enum class ContainerState { kPlanned, kCreating, kReady, kRunning, kStopped, kDestroying, kMissing };
// "planned", "creating", "ready", "running", "stopped", "destroying", "missing"
std::string_view to_string(ContainerState state);
std::optional<ContainerState> parse_container_state(std::string_view text);

struct ContainerStatus {
  std::string name;
  std::string distro;
  std::string release;
  std::string arch;
  ContainerState state = ContainerState::kPlanned;
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

struct ProvisionerContext;

// Every recorded container, then every configured one not yet created.
Result<std::vector<ContainerStatus>> container_statuses(ProvisionerContext& ctx);
// The network of every running veth container, checked from inside it (in
// parallel), each for up to `timeout`.
Result<std::map<std::string, NetworkHealth>> check_networks(ProvisionerContext& ctx, std::chrono::milliseconds timeout);

}  // namespace farmhand::provisioner
