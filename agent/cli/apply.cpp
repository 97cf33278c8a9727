// The commands that plan and change the host's containers: check-config,
// plan, apply, rebuild, destroy, start, stop and restart.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "agent/cli/commands.h"
#include "agent/progress.h"
#include "agent/wiring.h"
#include "common/clock.h"
#include "common/log.h"
#include "provisioner/provisioner.h"

namespace farmhand::agent {

using provisioner::Action;
using provisioner::Provisioner;

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
  const auto t0 = monotonic_now();
  auto seconds = [&] {
    return std::chrono::duration<double>(monotonic_now() - t0).count();
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

int cmd_start(const Invocation& inv) { return control(inv, provisioner::UnitAction::kStart, "Started"); }
int cmd_stop(const Invocation& inv) { return control(inv, provisioner::UnitAction::kStop, "Stopped"); }
int cmd_restart(const Invocation& inv) { return control(inv, provisioner::UnitAction::kRestart, "Restarted"); }

}  // namespace farmhand::agent
