#include "provisioner/status.h"

#include <ctime>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "provisioner/context.h"
#include "provisioner/layout.h"
#include "provisioner/plan.h"

namespace farmhand::provisioner {

namespace {

constexpr std::pair<ContainerState, std::string_view> kStateNames[] = {
    {ContainerState::kPlanned, "planned"},   {ContainerState::kCreating, "creating"},
    {ContainerState::kReady, "ready"},       {ContainerState::kRunning, "running"},
    {ContainerState::kStopped, "stopped"},   {ContainerState::kDestroying, "destroying"},
    {ContainerState::kMissing, "missing"},
};

ContainerState from_phase(Phase phase) {
  switch (phase) {
    case Phase::kCreating: return ContainerState::kCreating;
    case Phase::kReady: return ContainerState::kReady;
    case Phase::kDestroying: return ContainerState::kDestroying;
  }
  return ContainerState::kReady;
}

// What a spec's canonical JSON says about distro, boot and network.
void fill_from_spec(ContainerStatus& cs, const std::string& json) {
  auto j = nlohmann::json::parse(json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return;
  cs.distro = j.value("distro", "");
  cs.release = j.value("release", "");
  cs.arch = j.value("arch", "");
  cs.boot = j.value("boot", false);
  cs.network_mode = j.value("network_mode", "veth");
  cs.link = j.value("link", "");
}

// A created container: running or stopped (systemd, or `farmhand run`'s
// leader), or missing if its root filesystem is gone.
ContainerState observed_state(ProvisionerContext& ctx, const std::string& name, const ContainerRecord& rec) {
  ContainerState state = from_phase(rec.phase);
  if (rec.phase != Phase::kReady) return state;
  const bool overlay = rec.clone_method == "overlay";
  const fs::path data = overlay ? ctx.host(ctx.config.paths.state + "/overlay/" + name + "/upper")
                                : ctx.host(ctx.config.paths.machines + "/" + name);
  if (!path_exists(data)) return ContainerState::kMissing;
  if (ctx.systemd != nullptr) {
    auto active = ctx.systemd->active_state(unit_of(name));
    if (active) return *active == "active" ? ContainerState::kRunning : ContainerState::kStopped;
  } else if (ctx.leader_of && ctx.leader_of(name)) {
    return ContainerState::kRunning;  // started by `farmhand run`, on a host without systemd
  }
  return state;
}

void fill_payload(ProvisionerContext& ctx, ContainerStatus& cs) {
  if (auto ps = ctx.state->payload_status(cs.name); ps && *ps) {
    ContainerStatus::Payload pl;
    pl.state = (*ps)->state;
    pl.item = (*ps)->item;
    pl.message = (*ps)->message;
    pl.time_ms = (*ps)->updated_ms;
    // A payload left "running" by an apply that no longer holds the lock
    // was cut short (farmhand killed, the host rebooted).
    if (pl.state == "running" && !FileLock::held(ctx.apply_lock_path())) pl.state = "interrupted";
    cs.payload = std::move(pl);
  }
  auto payload = ctx.state->payload(cs.name);
  if (!payload) return;
  const ContainerSpec* spec = ctx.spec(cs.name);
  for (const auto& p : *payload) {
    if (p.kind != PayloadKind::kSource) continue;
    ContainerStatus::Source src{p.name, "", p.revision};
    if (spec) {
      for (const auto& s : spec->sources) {
        if (s.name == p.name) src.ref = s.ref;
      }
    }
    cs.sources.push_back(std::move(src));
  }
}

}  // namespace

std::string_view to_string(ContainerState state) {
  for (const auto& [s, name] : kStateNames) {
    if (s == state) return name;
  }
  return "unknown";
}

std::optional<ContainerState> parse_container_state(std::string_view text) {
  for (const auto& [s, name] : kStateNames) {
    if (name == text) return s;
  }
  return std::nullopt;
}

std::string last_line(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ' || text.back() == '\r')) text.remove_suffix(1);
  const size_t nl = text.rfind('\n');
  if (nl != std::string_view::npos) text.remove_prefix(nl + 1);
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  return std::string(text);
}

std::string describe_payload(const ContainerStatus::Payload& p) {
  char when[32] = "";
  const time_t secs = static_cast<time_t>(p.time_ms / 1000);
  struct tm tm {};
  if (p.time_ms > 0 && ::localtime_r(&secs, &tm) != nullptr) std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
  // "setup lws-build" reads as "step lws-build".
  std::string item = p.item.starts_with("setup ") ? "step " + p.item.substr(6) : p.item;
  const std::string at = *when ? std::string(" at ") + when : "";
  if (p.state == "ok") return *when ? std::string("ok (") + when + ")" : "ok";
  if (p.state == "failed") return (item.empty() ? std::string("payload") : item) + " failed" + at + ": " + last_line(p.message);
  if (p.state == "running") {
    return "running" + (item.empty() ? std::string() : " " + item) + (*when ? std::string(" (since ") + when + ")" : "");
  }
  return "interrupted" + (item.empty() ? std::string() : " at " + item) + (*when ? std::string(" (") + when + ")" : "") +
         ": the next apply carries on";
}

Result<std::vector<ContainerStatus>> container_statuses(ProvisionerContext& ctx) {
  if (auto s = ctx.open_state_if_present(); !s) return s.error();
  auto recs = ctx.records();
  if (!recs) return recs.error();
  auto subnets = ctx.subnets();
  if (!subnets) return subnets.error();
  std::vector<ContainerStatus> out;
  std::set<std::string> seen;
  for (const auto& [name, rec] : *recs) {
    ContainerStatus cs;
    cs.name = name;
    fill_from_spec(cs, rec.spec_json);
    cs.clone_method = rec.clone_method;
    cs.state = observed_state(ctx, name, rec);
    if (auto it = subnets->find(name); it != subnets->end()) {
      cs.subnet = it->second.str();
      cs.address = it->second.host(kContainerOffset);
      cs.gateway = it->second.host(kGatewayOffset);
    }
    fill_payload(ctx, cs);
    seen.insert(name);
    out.push_back(std::move(cs));
  }
  for (const auto& spec : ctx.config.containers) {
    if (seen.count(spec.name)) continue;
    ContainerStatus cs;
    cs.name = spec.name;
    fill_from_spec(cs, spec_json(spec));
    cs.state = ContainerState::kPlanned;
    out.push_back(std::move(cs));
  }
  return out;
}

Result<std::map<std::string, NetworkHealth>> check_networks(ProvisionerContext& ctx, std::chrono::milliseconds timeout) {
  std::map<std::string, NetworkHealth> out;
  // Without systemd, the containers `farmhand run` started (found through
  // leader_of) are checked the same way.
  if (ctx.systemd == nullptr && !ctx.leader_of) return out;
  if (auto s = ctx.open_state_if_present(); !s) return s.error();
  auto recs = ctx.records();
  if (!recs) return recs.error();
  auto subnets_held = ctx.subnets();
  if (!subnets_held) return subnets_held.error();
  const std::map<std::string, Cidr>& subnets = *subnets_held;
  std::vector<std::pair<std::string, pid_t>> running;
  for (const auto& [name, rec] : *recs) {
    if (rec.phase != Phase::kReady || subnets.count(name) == 0) continue;
    if (ctx.systemd == nullptr) {
      if (auto leader = ctx.leader_of(name)) running.emplace_back(name, *leader);
      continue;
    }
    auto leader = ctx.systemd->machine_leader(name);
    if (!leader) return leader.error();
    if (*leader) running.emplace_back(name, **leader);
  }
  // In parallel: a container still booting must not delay the others.
  std::vector<NetworkHealth> results(running.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < running.size(); ++i) {
    const std::string gateway = subnets.at(running[i].first).host(kGatewayOffset);
    threads.emplace_back([&results, i, pid = running[i].second, gateway, timeout] {
      results[i] = check_network_health(pid, gateway, timeout);
    });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < running.size(); ++i) out[running[i].first] = results[i];
  return out;
}

}  // namespace farmhand::provisioner
