#include "agent/container_row.h"

namespace farmhand::agent {

namespace {

// The keys both rows carry, in the order status shows them: name, distro,
// release, then (after status's own arch and state) address.
template <typename Json>
Json identity(const provisioner::ContainerStatus& r) {
  return Json{{"name", r.name}, {"distro", r.distro}, {"release", r.release}};
}

template <typename Json>
Json source(const provisioner::ContainerStatus::Source& src, bool with_ref) {
  Json out = {{"name", src.name}};
  if (with_ref) out["ref"] = src.ref;
  out["commit"] = src.commit;
  return out;
}

template <typename Json>
Json payload(const provisioner::ContainerStatus::Payload& p) {
  return Json{{"state", p.state}, {"item", p.item}};
}

// At most 512 bytes of the last line, not cut inside a UTF-8 character.
std::string short_message(const std::string& text) {
  std::string message = provisioner::last_line(text);
  if (message.size() > 512) message.resize(512);
  while (!message.empty() && (static_cast<unsigned char>(message.back()) & 0xC0) == 0x80) message.pop_back();
  if (!message.empty() && static_cast<unsigned char>(message.back()) >= 0xC0) message.pop_back();
  return message;
}

}  // namespace

nlohmann::ordered_json status_row(const provisioner::ContainerStatus& r) {
  nlohmann::ordered_json c = identity<nlohmann::ordered_json>(r);
  c["arch"] = r.arch;
  c["state"] = std::string(provisioner::to_string(r.state));
  c["address"] = r.address;
  c["gateway"] = r.gateway;
  c["subnet"] = r.subnet;
  c["clone_method"] = r.clone_method;
  c["boot"] = r.boot;
  c["network_mode"] = r.network_mode;
  if (!r.link.empty()) c["link"] = r.link;
  c["sources"] = nlohmann::ordered_json::array();
  for (const auto& src : r.sources) c["sources"].push_back(source<nlohmann::ordered_json>(src, true));
  if (r.payload) {
    c["payload"] = payload<nlohmann::ordered_json>(*r.payload);
    c["payload"]["time"] = r.payload->time_ms;
    c["payload"]["message"] = r.payload->message;
    c["payload"]["summary"] = provisioner::describe_payload(*r.payload);
  } else {
    c["payload"] = nullptr;
  }
  if (r.health) {
    c["network"] = {{"healthy", r.health->healthy}, {"reason", r.health->reason}};
    if (r.health->gateway_ms >= 0) c["network"]["gateway_ms"] = r.health->gateway_ms;
    if (r.health->dns_ms >= 0) c["network"]["dns_ms"] = r.health->dns_ms;
  } else {
    c["network"] = nullptr;
  }
  return c;
}

std::string dashboard_state(const provisioner::ContainerStatus& c,
                            const std::function<bool(const std::string&)>& running) {
  // docs/protocol.md: running, stopped, failed, or unknown while it is
  // planned, created or destroyed.
  using provisioner::ContainerState;
  switch (c.state) {
    case ContainerState::kRunning: return "running";
    case ContainerState::kStopped: return "stopped";
    case ContainerState::kReady: return running && running(c.name) ? "running" : "stopped";
    case ContainerState::kMissing: return "failed";
    case ContainerState::kPlanned:
    case ContainerState::kCreating:
    case ContainerState::kDestroying: break;
  }
  return "unknown";
}

nlohmann::json inventory_row(const provisioner::ContainerStatus& c, const std::string& state,
                             const provisioner::NetworkHealth* health, std::optional<int64_t> since_ms) {
  std::string network = "unknown";
  std::string reason;
  if (health != nullptr && state == "running") {
    network = health->healthy ? "healthy" : "unhealthy";
    reason = health->reason;
  }
  nlohmann::json row = identity<nlohmann::json>(c);
  row["state"] = state;
  row["address"] = c.address;
  row["network"] = network;
  row["network_reason"] = reason;
  if (since_ms && state == "running") row["since"] = *since_ms;
  if (!c.sources.empty()) {
    row["sources"] = nlohmann::json::array();
    for (const auto& src : c.sources) row["sources"].push_back(source<nlohmann::json>(src, false));
  }
  if (c.payload) {
    row["payload"] = payload<nlohmann::json>(*c.payload);
    row["payload"]["message"] = short_message(c.payload->message);
    if (c.payload->time_ms > 0) row["payload"]["time"] = c.payload->time_ms;
  }
  return row;
}

}  // namespace farmhand::agent
