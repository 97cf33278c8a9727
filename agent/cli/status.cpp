// The commands that list: status (the containers) and devices (the USB
// devices, their rules and leases).
#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "agent/cli/commands.h"
#include "agent/container_row.h"
#include "agent/devices.h"
#include "agent/wiring.h"
#include "common/fs.h"
#include "common/log.h"
#include "provisioner/config_repo.h"
#include "provisioner/git.h"
#include "provisioner/provisioner.h"
#include "udev/leases.h"
#include "udev/rule.h"
#include "udev/watcher.h"

namespace farmhand::agent {

using provisioner::Provisioner;

namespace {

constexpr std::chrono::seconds kStatusHealthTimeout{3};

}  // namespace

int cmd_status(const Invocation& inv) {
  if (!expect_args(inv, 0, {"--json"})) return kExitUsage;
  const bool json = has_flag(inv, "--json");
  std::string config_commit;
  auto config = load_config(inv, &config_commit);
  if (!config) return kExitUsage;
  const std::optional<provisioner::ConfigRepo> repo = config->config_repo;
  auto wired = wire(inv, std::move(*config));
  if (!wired) {
    log::error(wired.error().message());
    return kExitFailed;
  }
  Provisioner& p = *(*wired)->provisioner;
  {
    auto rows = p.status(kStatusHealthTimeout);
    if (!rows) {
      log::error(rows.error().message());
      return kExitFailed;
    }
    const provisioner::NetworkChoice net = p.network_choice();
    auto network_text = [](const provisioner::ContainerStatus& r) -> std::string {
      if (r.network_mode != "veth") return r.network_mode + " on " + r.link;
      if (!r.health) return "-";
      return r.health->healthy ? "healthy" : "unhealthy";
    };
    if (json) {
      nlohmann::ordered_json out;
      out["host_network"] = {{"configured", net.configure},
                             {"backend", std::string(provisioner::to_string(net.backend))},
                             {"firewall", std::string(provisioner::to_string(net.firewall))},
                             {"zone", net.zone},
                             {"conflicts", net.conflicts}};
      if (repo) {
        out["config_repo"] = {{"url", provisioner::redact_url(repo->url)},
                              {"ref", repo->ref},
                              {"path", repo->path},
                              {"commit", config_commit}};
      }
      out["config_commit"] = config_commit.empty() ? nlohmann::ordered_json(nullptr)
                                                   : nlohmann::ordered_json(config_commit);
      out["containers"] = nlohmann::ordered_json::array();
      for (const auto& r : *rows) out["containers"].push_back(status_row(r));
      std::printf("%s\n", out.dump(2).c_str());
      return kExitOk;
    }
    if (net.configure) {
      std::printf("Host network: %s, firewall %s%s\n", std::string(provisioner::to_string(net.backend)).c_str(),
                  std::string(provisioner::to_string(net.firewall)).c_str(),
                  net.firewall == provisioner::FirewallBackend::kFirewalld ? (", zone " + net.zone).c_str() : "");
    }
    for (const auto& c : net.conflicts) std::printf("Host network problem: %s\n", c.c_str());
    std::printf("%-16s %-8s %-10s %-7s %-10s %-15s %-5s %s\n", "NAME", "DISTRO", "RELEASE", "ARCH", "STATE",
                "ADDRESS", "BOOT", "NETWORK");
    for (const auto& r : *rows) {
      const std::string state(provisioner::to_string(r.state));
      std::printf("%-16s %-8s %-10s %-7s %-10s %-15s %-5s %s\n", r.name.c_str(), r.distro.c_str(),
                  r.release.c_str(), r.arch.c_str(), state.c_str(), r.address.empty() ? "-" : r.address.c_str(),
                  r.boot ? "yes" : "no", network_text(r).c_str());
    }
    for (const auto& r : *rows) {
      if (r.health && !r.health->healthy) std::printf("%s: network unhealthy: %s\n", r.name.c_str(), r.health->reason.c_str());
    }
    for (const auto& r : *rows) {
      if (r.payload) std::printf("%s: payload %s\n", r.name.c_str(), provisioner::describe_payload(*r.payload).c_str());
      for (const auto& src : r.sources) {
        std::printf("%s: source %s at %s%s\n", r.name.c_str(), src.name.c_str(), src.commit.substr(0, 12).c_str(),
                    src.ref.empty() ? " (no longer configured)" : (" (" + src.ref + ")").c_str());
      }
    }
    if (repo) {
      std::printf("Config: %s %s, %s\n", provisioner::redact_url(repo->url).c_str(), repo->ref.c_str(),
                  config_commit.empty() ? "not fetched yet"
                                        : provisioner::repo_label(*repo, config_commit).c_str());
    }
    return kExitOk;
  }
}

int cmd_devices(const Invocation& inv) {
  if (!expect_args(inv, 0, {"--json"})) return kExitUsage;
  const bool json = has_flag(inv, "--json");
  auto config = load_config(inv);
  if (!config) return kExitUsage;
  auto watcher = udev::Watcher::open();
  if (!watcher) {
    log::error(watcher.error().message());
    return kExitFailed;
  }
  auto present = (*watcher)->enumerate();
  if (!present) {
    log::error(present.error().message());
    return kExitFailed;
  }
  std::map<std::string, udev::Lease> leases;
  const fs::path db = HostRoot(inv.root).map(config->paths.state + "/state.db");
  if (path_exists(db)) {
    auto store = udev::LeaseStore::open(db.string());
    if (!store) {
      log::error(store.error().message());
      return kExitFailed;
    }
    auto all = store->all();
    if (!all) {
      log::error(all.error().message());
      return kExitFailed;
    }
    for (auto& l : *all) leases[l.syspath] = std::move(l);
  }
  auto since = [](int64_t ms) {
    std::time_t t = static_cast<std::time_t>(ms / 1000);
    char buf[32];
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return std::string(buf);
  };
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  const udev::DeviceRuleSet rules = device_rules(*config);
  for (const auto& d : *present) {
    auto match = udev::match_device(rules, d);
    auto lease = leases.find(d.syspath);
    // Only devices that matter here: USB ones, or any a rule or lease names.
    if (!match && lease == leases.end() && d.property("ID_VENDOR_ID").empty()) continue;
    nlohmann::ordered_json row = {{"device", d.devnode},
                                  {"subsystem", d.subsystem},
                                  {"usb_id", d.property("ID_VENDOR_ID").empty()
                                                 ? ""
                                                 : d.property("ID_VENDOR_ID") + ":" + d.property("ID_MODEL_ID")},
                                  {"serial", d.property("ID_SERIAL_SHORT")},
                                  {"path", d.property("ID_PATH")},
                                  {"by_id", udev::by_id_names(d)},
                                  {"rule", match ? match->rule : ""},
                                  {"container", match ? match->container : ""}};
    if (lease != leases.end()) {
      row["container"] = lease->second.container;
      row["state"] = std::string(udev::to_string(lease->second.state));
      row["since"] = since(lease->second.since_ms);
      leases.erase(lease);
    } else {
      row["state"] = match ? "not leased (is the agent running?)" : "";
      row["since"] = "";
    }
    row["present"] = true;
    out.push_back(std::move(row));
  }
  // Leases of devices no longer present: a take-back the agent is still
  // retrying ("revoking"), or one it has not seen yet.
  for (const auto& [syspath, l] : leases) {
    udev::Device gone;
    gone.links = l.links;
    out.push_back(nlohmann::ordered_json{{"device", l.devnode},
                                         {"subsystem", l.subsystem},
                                         {"usb_id", ""},
                                         {"serial", ""},
                                         {"path", ""},
                                         {"by_id", udev::by_id_names(gone)},
                                         {"rule", l.rule},
                                         {"container", l.container},
                                         {"state", std::string(udev::to_string(l.state))},
                                         {"since", since(l.since_ms)},
                                         {"present", false}});
  }
  if (json) {
    std::printf("%s\n", out.dump(2).c_str());
    return kExitOk;
  }
  std::printf("%-16s %-10s %-24s %-12s %-10s %s\n", "DEVICE", "USB ID", "SERIAL", "CONTAINER", "STATE", "SINCE");
  for (const auto& r : out) {
    std::printf("%-16s %-10s %-24s %-12s %-10s %s\n", r["device"].get<std::string>().c_str(),
                r["present"].get<bool>() ? r["usb_id"].get<std::string>().c_str() : "unplugged",
                r["serial"].get<std::string>().c_str(),
                r["container"].get<std::string>().empty() ? "-" : r["container"].get<std::string>().c_str(),
                r["state"].get<std::string>().empty() ? "-" : r["state"].get<std::string>().c_str(),
                r["since"].get<std::string>().c_str());
  }
  return kExitOk;
}

}  // namespace farmhand::agent
