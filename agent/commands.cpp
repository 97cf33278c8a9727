#include "agent/commands.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <memory>

#include <nlohmann/json.hpp>

#include "agent/devices.h"
#include "agent/progress.h"
#include "agent/run_network.h"
#include "agent/runtime.h"
#include "agent/wiring.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/process.h"
#include "common/systemd.h"
#include "provisioner/config.h"
#include "provisioner/config_repo.h"
#include "provisioner/git.h"
#include "provisioner/provisioner.h"
#include "udev/leases.h"
#include "udev/rule.h"
#include "udev/watcher.h"

namespace farmhand::agent {

using provisioner::Action;
using provisioner::AgentConfig;
using provisioner::ConfigLoad;
using provisioner::Provisioner;
using provisioner::RecipeBook;

namespace {

const char* symbol(Action a) {
  switch (a) {
    case Action::kCreate: return "+";
    case Action::kUpdate: return "~";
    case Action::kReplace: return "-/+";
    case Action::kDestroy: return "-";
    case Action::kUnchanged: return "=";
  }
  return "?";
}

void print_plan(const provisioner::Plan& plan) {
  for (const auto& c : plan.changes) {
    std::string what;
    if (c.layout) {
      const auto& s = c.layout->spec;
      what = s.distro + " " + s.release + " " + s.arch + ", " + c.layout->subnet.str() + ", " +
             std::string(provisioner::to_string(c.layout->clone_method));
    }
    std::printf("%-3s %-9s %-16s %s\n", symbol(c.action),
                std::string(provisioner::to_string(c.action)).c_str(), c.name.c_str(),
                what.c_str());
    if (c.action == Action::kUnchanged) continue;
    for (const auto& r : c.reasons) std::printf("      %s\n", r.c_str());
  }
  std::printf("Plan: %zu to create, %zu to update, %zu to replace, %zu to destroy, %zu unchanged.\n",
              plan.count(Action::kCreate), plan.count(Action::kUpdate),
              plan.count(Action::kReplace), plan.count(Action::kDestroy),
              plan.count(Action::kUnchanged));
}

constexpr std::chrono::seconds kStatusHealthTimeout{3};

// Replaces this process with args[0] (an absolute path); returns only on
// failure, with the exit status to use.
int exec_or_fail(std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::execv(argv[0], argv.data());
  log::error("cannot run ", args[0], ": ", errno_text(errno));
  return kExitFailed;
}

// Splits arguments at the first "--": the command's own, and the command
// to run in the container.
void split_command(const std::vector<std::string>& args, std::vector<std::string>& own,
                   std::vector<std::string>& command) {
  bool after = false;
  for (const auto& a : args) {
    if (!after && a == "--") {
      after = true;
    } else {
      (after ? command : own).push_back(a);
    }
  }
}

void print_plan_with_host(const provisioner::Plan& plan) {
  print_plan(plan);
  for (const auto& w : plan.host_network.choice.warnings) std::printf("!   warning: %s\n", w.c_str());
  if (plan.host_change.has_work()) {
    std::printf("~   host network (%s, firewall %s)\n",
                std::string(provisioner::to_string(plan.host_network.choice.backend)).c_str(),
                std::string(provisioner::to_string(plan.host_network.choice.firewall)).c_str());
    for (const auto& r : plan.host_change.reasons) std::printf("      %s\n", r.c_str());
  }
}

}  // namespace

int cmd_check_config(const Invocation& inv) {
  if (inv.args.size() > 1 || (inv.args.empty() && inv.config_file.empty())) {
    std::fprintf(stderr, "farmhand check-config: expected one FILE\n%s", usage("check-config"));
    return kExitUsage;
  }
  const std::string path = inv.args.empty() ? inv.config_file : inv.args[0];
  auto config = load_config(path);
  if (!config) return kExitUsage;
  std::printf("%s: valid, %zu container(s)\n", path.c_str(), config->containers.size());
  return kExitOk;
}

int cmd_plan(const Invocation& inv) {
  if (!expect_args(inv, 0, {"--fetch"})) return kExitUsage;
  const bool fetch = has_flag(inv, "--fetch");
  return with_provisioner(inv, [fetch](Provisioner& p) {
    auto plan = p.plan();
    if (!plan) {
      log::error(plan.error().message());
      return kExitFailed;
    }
    print_plan_with_host(*plan);
    for (const auto& c : plan->conflicts) log::error(c);
    auto payload = p.payload_plan(fetch);
    if (!payload) {
      log::error(payload.error().message());
      return kExitFailed;
    }
    size_t work = 0;
    for (const auto& pp : *payload) {
      if (pp.new_container) {
        std::printf("+   payload   %-16s all of it (a new container)\n", pp.container.c_str());
        ++work;
        continue;
      }
      if (pp.preview.items.empty()) {
        std::printf("=   payload   %s\n", pp.container.c_str());
      } else {
        std::printf("~   payload   %s\n", pp.container.c_str());
        for (const auto& item : pp.preview.items) std::printf("      %s: %s\n", item.what.c_str(), item.why.c_str());
        work += pp.preview.items.size();
      }
      for (const auto& note : pp.preview.notes) std::printf("      (%s)\n", note.c_str());
    }
    if (!payload->empty()) {
      std::printf("Payload: %zu item(s) to apply%s\n", work,
                  fetch ? "; remotes asked for their commits (nothing fetched)."
                        : "; remote changes are not checked (farmhand plan --fetch asks each remote).");
    }
    return plan->conflicts.empty() ? kExitOk : kExitFailed;
  });
}

int cmd_rebuild(const Invocation& inv) {
  std::string name, step;
  bool clean = false;
  for (size_t i = 0; i < inv.args.size(); ++i) {
    const std::string& a = inv.args[i];
    if (a == "--step" && i + 1 < inv.args.size()) {
      step = inv.args[++i];
    } else if (a == "--clean") {
      clean = true;
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "farmhand rebuild: unknown option \"%s\"\n%s", a.c_str(), usage("rebuild"));
      return kExitUsage;
    } else if (name.empty()) {
      name = a;
    } else {
      std::fprintf(stderr, "farmhand rebuild: expected one container NAME\n%s", usage("rebuild"));
      return kExitUsage;
    }
  }
  if (name.empty()) {
    std::fprintf(stderr, "farmhand rebuild: expected one container NAME\n%s", usage("rebuild"));
    return kExitUsage;
  }
  return with_provisioner(inv, [&](Provisioner& p) {
    auto marked = p.request_rebuild(name, step, clean);
    if (!marked) {
      log::error(marked.error().message());
      return kExitFailed;
    }
    std::string steps;
    for (const auto& s : *marked) steps += (steps.empty() ? "" : ", ") + s;
    std::printf("Rebuilding %s: %s%s.\n", name.c_str(), steps.c_str(),
                clean ? " (their sources cleaned first)" : "");
    ConsoleProgress progress(stdout);
    auto outcome = p.apply(progress);
    if (!outcome) {
      log::error(outcome.error().message());
      return kExitFailed;
    }
    if (!outcome->result) {
      log::error(outcome->result.error().message());
      return kExitFailed;
    }
    std::printf("Rebuilt %s.\n", name.c_str());
    return kExitOk;
  });
}

int cmd_apply(const Invocation& inv) {
  if (!expect_args(inv, 0, {})) return kExitUsage;
  const auto t0 = std::chrono::steady_clock::now();
  auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  // A config repository is fetched first; a refused commit leaves the last
  // good configuration in force, which is still applied.
  const ConfigSync synced = sync_config(inv);
  const int sync_exit = synced.error ? kExitFailed : kExitOk;
  return with_provisioner(inv, [&](Provisioner& p) {
    ConsoleProgress progress(stdout);
    auto outcome = p.apply(progress);
    if (!outcome) {
      log::error(outcome.error().message());
      log::error("nothing was changed");
      return kExitFailed;
    }
    const provisioner::Plan& plan = outcome->plan;
    if (!plan.has_work() && outcome->result && outcome->payload_changed.empty()) {
      std::printf("No changes: %zu container(s) up to date (%.2f s).\n", plan.changes.size(), seconds());
      return report_health(p) ? sync_exit : kExitFailed;
    }
    std::string payload;
    for (const auto& name : outcome->payload_changed) payload += (payload.empty() ? "" : ", ") + name;
    std::printf(
        "%s: %zu created, %zu updated, %zu replaced, %zu destroyed, %zu unchanged; payload changed in %zu%s "
        "(%.1f s).\n",
        outcome->result ? "Apply complete" : "Apply incomplete", plan.count(Action::kCreate),
        plan.count(Action::kUpdate), plan.count(Action::kReplace), plan.count(Action::kDestroy),
        plan.count(Action::kUnchanged), outcome->payload_changed.size(),
        payload.empty() ? "" : (" (" + payload + ")").c_str(), seconds());
    if (!outcome->result) {
      log::error(outcome->result.error().message());
      return kExitFailed;
    }
    return report_health(p) ? sync_exit : kExitFailed;
  });
}

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
      for (const auto& r : *rows) {
        nlohmann::ordered_json c = {{"name", r.name},
                                    {"distro", r.distro},
                                    {"release", r.release},
                                    {"arch", r.arch},
                                    {"state", std::string(provisioner::to_string(r.state))},
                                    {"address", r.address},
                                    {"gateway", r.gateway},
                                    {"subnet", r.subnet},
                                    {"clone_method", r.clone_method},
                                    {"boot", r.boot},
                                    {"network_mode", r.network_mode}};
        if (!r.link.empty()) c["link"] = r.link;
        c["sources"] = nlohmann::ordered_json::array();
        for (const auto& src : r.sources) {
          c["sources"].push_back({{"name", src.name}, {"ref", src.ref}, {"commit", src.commit}});
        }
        if (r.payload) {
          c["payload"] = {{"state", r.payload->state},
                          {"item", r.payload->item},
                          {"time", r.payload->time_ms},
                          {"message", r.payload->message},
                          {"summary", provisioner::describe_payload(*r.payload)}};
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
        out["containers"].push_back(std::move(c));
      }
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

namespace {

int control(const Invocation& inv, provisioner::UnitAction action, const char* done) {
  if (!expect_args(inv, 1, {})) return kExitUsage;
  const std::string name = inv.args[0];
  return with_provisioner(inv, [&](Provisioner& p) {
    if (auto s = p.control(name, action); !s) {
      log::error(s.error().message());
      return kExitFailed;
    }
    std::printf("%s \"%s\".\n", done, name.c_str());
    return kExitOk;
  });
}

}  // namespace

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

int cmd_start(const Invocation& inv) { return control(inv, provisioner::UnitAction::kStart, "Started"); }
int cmd_stop(const Invocation& inv) { return control(inv, provisioner::UnitAction::kStop, "Stopped"); }
int cmd_restart(const Invocation& inv) { return control(inv, provisioner::UnitAction::kRestart, "Restarted"); }

int cmd_shell(const Invocation& inv) {
  std::vector<std::string> own;
  std::vector<std::string> command;
  split_command(inv.args, own, command);
  std::string user = "root";
  std::string name;
  for (size_t i = 0; i < own.size(); ++i) {
    if (own[i] == "--user" && i + 1 < own.size()) {
      user = own[++i];
    } else if (!own[i].empty() && own[i][0] != '-' && name.empty()) {
      name = own[i];
    } else {
      std::fprintf(stderr, "farmhand shell: unexpected argument \"%s\"\n%s", own[i].c_str(), usage("shell"));
      return kExitUsage;
    }
  }
  if (name.empty()) {
    std::fprintf(stderr, "farmhand shell: expected NAME\n%s", usage("shell"));
    return kExitUsage;
  }
  bool user_ok = !user.empty() && std::all_of(user.begin(), user.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.';
  });
  if (!user_ok) {
    std::fprintf(stderr, "farmhand shell: \"%s\" is not a user name\n", user.c_str());
    return kExitUsage;
  }
  return with_provisioner(inv, [&](Provisioner& p) {
    auto rows = p.status();
    if (!rows) {
      log::error(rows.error().message());
      return kExitFailed;
    }
    auto row = std::find_if(rows->begin(), rows->end(), [&](const auto& r) { return r.name == name; });
    if (row == rows->end() || row->state == provisioner::ContainerState::kPlanned) {
      log::error("no container named \"", name, "\" is managed by farmhand");
      return kExitFailed;
    }
    const bool systemd = inv.root == "/" && host_booted_with_systemd();
    if (row->state != provisioner::ContainerState::kRunning) {
      log::error("container \"", name, "\" is ", provisioner::to_string(row->state), ": ",
                 systemd ? "start it with `farmhand start " + name + "`"
                         : "boot it with `farmhand run " + name + "` (this host has no systemd as PID 1)");
      return kExitFailed;
    }
    if (!systemd) {
      // No machined to ask: join the container's init, started by
      // `farmhand run`, and become the user there (runuser, from
      // util-linux, is in every distro's base).
      ContainerLocator locator(HostRoot(inv.root), nullptr);
      auto leader = locator.leader(name);
      if (!leader) {
        log::error("container \"", name, "\" stopped meanwhile: boot it with `farmhand run ", name, "`");
        return kExitFailed;
      }
      std::error_code ec;
      std::vector<std::string> args = {fs::read_symlink("/proc/self/exe", ec).string(), "enter", "--target",
                                       std::to_string(*leader), "--cwd", "/", "--", "runuser"};
      if (command.empty()) {
        args.insert(args.end(), {"--login", user});
      } else {
        args.insert(args.end(), {"-u", user, "--"});
        args.insert(args.end(), command.begin(), command.end());
      }
      ::setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
      return exec_or_fail(args);
    }
    auto machinectl = find_program("machinectl");
    if (!machinectl) {
      log::error(machinectl.error().message());
      return kExitFailed;
    }
    std::vector<std::string> args = {*machinectl, "shell", "--quiet", user + "@" + name};
    args.insert(args.end(), command.begin(), command.end());
    return exec_or_fail(args);
  });
}

int cmd_destroy(const Invocation& inv) {
  if (!expect_args(inv, 1, {})) return kExitUsage;
  const std::string name = inv.args[0];
  return with_provisioner(inv, [&name](Provisioner& p) {
    ConsoleProgress progress(stdout);
    if (auto s = p.destroy(name, progress); !s) {
      log::error(s.error().message());
      return kExitFailed;
    }
    std::printf("Destroyed \"%s\".\n", name.c_str());
    return kExitOk;
  });
}

int cmd_run(const Invocation& inv) {
  std::vector<std::string> own;
  std::vector<std::string> command;
  split_command(inv.args, own, command);
  if (own.size() != 1 || own[0].empty() || own[0][0] == '-') {
    std::fprintf(stderr, "farmhand run: expected NAME\n%s", usage("run"));
    return kExitUsage;
  }
  return with_provisioner(inv, [&](Provisioner& p) {
    auto layout = p.prepare_to_run(own[0]);
    if (!layout) {
      log::error(layout.error().message());
      return kExitFailed;
    }
    auto nspawn = find_program("systemd-nspawn");
    if (!nspawn) {
      log::error(nspawn.error().message());
      return kExitFailed;
    }
    const HostRoot root(inv.root);
    std::vector<std::string> args = {*nspawn, "--register=no", "--keep-unit", "--quiet",
                                     "--settings=no", "--machine=" + layout->spec.name,
                                     "--directory=" + root.map(layout->machine_dir).string(),
                                     "--network-veth"};
    if (layout->spec.private_users) {
      args.push_back("--private-users=pick");
      args.push_back("--private-users-ownership=auto");
    }
    for (const auto& b : layout->spec.binds) {
      const std::string target = b.target.empty() ? b.source : b.target;
      args.push_back((b.read_only ? "--bind-ro=" : "--bind=") + root.map(b.source).string() + ":" +
                     target);
    }
    if (command.empty()) {
      args.push_back("--boot");
    } else {
      args.push_back("--");
      args.insert(args.end(), command.begin(), command.end());
    }
    // The device watcher of `farmhand daemon` finds the container by this
    // record: this process becomes its systemd-nspawn.
    if (auto s = record_running(root, layout->spec.name); !s) {
      log::warning("devices will not follow this container: ", s.error().message());
    }
    // Without systemd nothing else configures the host end of the link:
    // a helper does, for as long as this process (then nspawn) runs.
    if (auto net = run_network_plan(root, *layout, inv.root == "/" && host_booted_with_systemd())) {
      if (auto s = start_run_network(root, *net); !s) {
        log::warning("the container's network is not configured: ", s.error().message());
      }
    }
    // With an agent listening, nspawn tells it when the container runs.
    if (path_exists(root.map(kNotifySocket))) ::setenv("NOTIFY_SOCKET", root.map(kNotifySocket).c_str(), 1);
    // Hand the terminal to the container: this process becomes systemd-nspawn.
    return exec_or_fail(args);
  });
}

const char* usage(const std::string& command) {
  if (command == "check-config") {
    return "Usage: farmhand check-config FILE\n\n"
           "Validates a configuration file and exits non-zero if it has errors.\n"
           "Every error names the JSON pointer of the offending value.\n";
  }
  if (command == "plan") {
    return "Usage: farmhand [--config FILE] [--root DIR] plan [--fetch]\n\n"
           "Prints what `farmhand apply` would change, and changes nothing: containers,\n"
           "the host network, and each container's payload (steps whose definition\n"
           "changed or that failed, files that differ, services not installed or\n"
           "enabled). With --fetch, asks each source's remote which commit its ref\n"
           "names (fetching nothing) and lists the steps that would rerun.\n";
  }
  if (command == "rebuild") {
    return "Usage: farmhand [--config FILE] [--root DIR] rebuild NAME [--step STEP] [--clean]\n\n"
           "Reruns a container's setup steps now: all of them, or STEP and every step\n"
           "after it. With --clean, the checkouts those steps work in are cleaned first\n"
           "(git clean -ffdx and reset: build directories and caches go). Then applies.\n";
  }
  if (command == "apply") {
    return "Usage: farmhand [--config FILE] [--root DIR] apply\n\n"
           "Creates, updates and destroys build containers until the host matches\n"
           "the configuration. Safe to run again at any time, also after a crash.\n";
  }
  if (command == "status") {
    return "Usage: farmhand [--config FILE] [--root DIR] status [--json]\n\n"
           "Lists the build containers with their distro, state and address, and\n"
           "for running ones their network health, checked from inside: the gateway\n"
           "answers ping and a DNS server answers on the gateway.\n";
  }
  if (command == "destroy") {
    return "Usage: farmhand [--config FILE] [--root DIR] destroy NAME\n\n"
           "Stops and removes a container farmhand manages: its root filesystem,\n"
           "host files and subnet. Remove it from the configuration too, or the\n"
           "next apply creates it again.\n";
  }
  if (command == "start" || command == "stop" || command == "restart") {
    return "Usage: farmhand start|stop|restart NAME\n\n"
           "Starts, stops or restarts a managed container (its systemd-nspawn@NAME\n"
           "unit) and waits until systemd has done it. Needs a host booted with systemd.\n";
  }
  if (command == "shell") {
    return "Usage: farmhand shell NAME [--user USER] [-- COMMAND...]\n\n"
           "Opens a login shell in a running container (as root, or USER, e.g. the\n"
           "build user sai), or runs COMMAND there. Uses machinectl shell.\n";
  }
  if (command == "enroll") {
    return "Usage: farmhand enroll [--server URL (--token TOKEN | --token-file FILE) [--ca-file PEM]] [--force]\n\n"
           "Makes this host a farm member for good: installs missing prerequisites\n"
           "with the host's package manager, trades the server's one-time token for\n"
           "this host's credential (/etc/farmhand/credential, 0600), writes\n"
           "/etc/farmhand/agent.json (0600), creates farmhand's directories, installs\n"
           "and enables farmhand.service and runs the first apply. Safe to run again.\n"
           "Replacing a different server, or enrolling again, needs --force.\n";
  }
  if (command == "devices") {
    return "Usage: farmhand devices [--json]\n\n"
           "Lists the USB devices present (serial adapters, debug probes, raw USB\n"
           "devices), the device rule each matches, and the container that holds\n"
           "each one (attached, or pending while it is not running) and since when.\n";
  }
  if (command == "daemon") {
    return "Usage: farmhand daemon\n\n"
           "The agent service (farmhand.service runs it): reconciles the host at start\n"
           "(host network, containers that should run), then watches the containers'\n"
           "network health. SIGHUP reconciles again; SIGTERM stops it.\n";
  }
  if (command == "run") {
    return "Usage: farmhand [--config FILE] [--root DIR] run NAME [-- COMMAND...]\n\n"
           "Boots a created container in the foreground with systemd-nspawn, not\n"
           "registered with machined: for hosts without systemd as PID 1, and for\n"
           "checking a container by hand. With COMMAND, runs it instead of booting.\n";
  }
  return "Usage: farmhand [--config FILE] [--root DIR] [--verbose] COMMAND [ARGS]\n\n"
         "Commands:\n"
         "  check-config FILE  validate a configuration file\n"
         "  plan [--fetch]     show what apply would change\n"
         "  apply              make the host match the configuration\n"
         "  status [--json]    list the build containers\n"
         "  rebuild NAME [--step STEP] [--clean]  rerun a container's setup steps\n"
         "  destroy NAME       remove a managed container\n"
         "  start|stop|restart NAME  control a container's systemd-nspawn@ unit\n"
         "  shell NAME         open a shell in a running container\n"
         "  run NAME [-- CMD]  boot a container in the foreground (no systemd needed)\n"
         "  devices [--json]   USB devices, their rules and the containers holding them\n"
         "  enroll             make this host a farm member (service, config, first apply)\n"
         "  daemon             the agent service itself (run by farmhand.service)\n"
         "  version            print the version\n\n"
         "Options:\n"
         "  --config FILE  configuration (default /etc/farmhand/agent.json under --root)\n"
         "  --root DIR     operate on a host filesystem under DIR (default /)\n"
         "  --verbose      log every command farmhand runs\n"
         "  --help         help for farmhand or a command\n";
}

}  // namespace farmhand::agent
