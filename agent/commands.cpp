#include "agent/commands.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "agent/progress.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/process.h"
#include "common/systemd.h"
#include "provisioner/config.h"
#include "provisioner/provisioner.h"

namespace farmhand::agent {

using provisioner::Action;
using provisioner::AgentConfig;
using provisioner::ConfigLoad;
using provisioner::Provisioner;
using provisioner::RecipeBook;

namespace {

std::string host_hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

std::string config_path(const Invocation& inv) {
  if (!inv.config_file.empty()) return inv.config_file;
  return HostRoot(inv.root).map(provisioner::kDefaults.config_file).string();
}

const RecipeBook* recipes() {
  static auto book = RecipeBook::builtin();
  if (!book) {
    log::error("the built-in distro recipes are broken: ", book.error().message());
    return nullptr;
  }
  return &*book;
}

// Loads and validates the configuration; prints every error and warning.
std::optional<AgentConfig> load(const std::string& path) {
  const RecipeBook* book = recipes();
  if (book == nullptr) return std::nullopt;
  ConfigLoad loaded = provisioner::load_config_file(path, *book);
  for (const auto& w : loaded.warnings) log::warning(path, ": ", w);
  for (const auto& e : loaded.errors) log::error(path, ": ", e);
  return loaded.config;
}

// Wires a Provisioner to the real host and runs `body` with it; a bad
// configuration exits with kExitUsage, a failure to wire with kExitFailed.
template <typename Body>
int with_provisioner(const Invocation& inv, Body&& body) {
  auto config = load(config_path(inv));
  if (!config) return kExitUsage;
  PosixProcessRunner runner;
  std::unique_ptr<SystemdControl> systemd;
  if (inv.root == "/" && host_booted_with_systemd()) {
    auto sd = connect_systemd();
    if (!sd) {
      log::error(sd.error().message());
      return kExitFailed;
    }
    systemd = std::move(*sd);
  }
  Provisioner provisioner(std::move(*config), *recipes(), HostRoot(inv.root), runner,
                          systemd.get(), host_hostname());
  return body(provisioner);
}

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

bool has_flag(const Invocation& inv, const std::string& flag) {
  for (const auto& a : inv.args) {
    if (a == flag) return true;
  }
  return false;
}

// Refuses arguments a command does not take.
bool expect_args(const Invocation& inv, size_t positional, const std::vector<std::string>& flags) {
  size_t count = 0;
  for (const auto& a : inv.args) {
    if (!a.empty() && a[0] == '-') {
      bool known = false;
      for (const auto& f : flags) known = known || f == a;
      if (!known) {
        std::fprintf(stderr, "farmhand %s: unknown option \"%s\"\n%s", inv.command.c_str(),
                     a.c_str(), usage(inv.command));
        return false;
      }
    } else {
      ++count;
    }
  }
  if (count != positional) {
    std::fprintf(stderr, "farmhand %s: expected %zu argument(s), got %zu\n%s", inv.command.c_str(),
                 positional, count, usage(inv.command));
    return false;
  }
  return true;
}

}  // namespace

int cmd_check_config(const Invocation& inv) {
  if (inv.args.size() > 1 || (inv.args.empty() && inv.config_file.empty())) {
    std::fprintf(stderr, "farmhand check-config: expected one FILE\n%s", usage("check-config"));
    return kExitUsage;
  }
  const std::string path = inv.args.empty() ? inv.config_file : inv.args[0];
  auto config = load(path);
  if (!config) return kExitUsage;
  std::printf("%s: valid, %zu container(s)\n", path.c_str(), config->containers.size());
  return kExitOk;
}

int cmd_plan(const Invocation& inv) {
  if (!expect_args(inv, 0, {})) return kExitUsage;
  return with_provisioner(inv, [](Provisioner& p) {
    auto plan = p.plan();
    if (!plan) {
      log::error(plan.error().message());
      return kExitFailed;
    }
    print_plan(*plan);
    for (const auto& c : plan->conflicts) log::error(c);
    return plan->conflicts.empty() ? kExitOk : kExitFailed;
  });
}

int cmd_apply(const Invocation& inv) {
  if (!expect_args(inv, 0, {})) return kExitUsage;
  const auto t0 = std::chrono::steady_clock::now();
  auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  return with_provisioner(inv, [&](Provisioner& p) {
    ConsoleProgress progress(stdout);
    auto outcome = p.apply(progress);
    if (!outcome) {
      log::error(outcome.error().message());
      log::error("nothing was changed");
      return kExitFailed;
    }
    const provisioner::Plan& plan = outcome->plan;
    if (!plan.has_work()) {
      std::printf("No changes: %zu container(s) up to date (%.2f s).\n", plan.changes.size(),
                  seconds());
      return kExitOk;
    }
    std::printf(
        "%s: %zu created, %zu updated, %zu replaced, %zu destroyed, %zu unchanged (%.1f s).\n",
        outcome->result ? "Apply complete" : "Apply incomplete", plan.count(Action::kCreate),
        plan.count(Action::kUpdate), plan.count(Action::kReplace), plan.count(Action::kDestroy),
        plan.count(Action::kUnchanged), seconds());
    if (!outcome->result) {
      log::error(outcome->result.error().message());
      return kExitFailed;
    }
    return kExitOk;
  });
}

int cmd_status(const Invocation& inv) {
  if (!expect_args(inv, 0, {"--json"})) return kExitUsage;
  const bool json = has_flag(inv, "--json");
  return with_provisioner(inv, [json](Provisioner& p) {
    auto rows = p.status();
    if (!rows) {
      log::error(rows.error().message());
      return kExitFailed;
    }
    if (json) {
      nlohmann::ordered_json out = nlohmann::ordered_json::array();
      for (const auto& r : *rows) {
        out.push_back({{"name", r.name},
                       {"distro", r.distro},
                       {"release", r.release},
                       {"arch", r.arch},
                       {"state", r.state},
                       {"address", r.address},
                       {"subnet", r.subnet},
                       {"clone_method", r.clone_method},
                       {"boot", r.boot}});
      }
      std::printf("%s\n", out.dump(2).c_str());
      return kExitOk;
    }
    std::printf("%-16s %-8s %-10s %-7s %-10s %-15s %s\n", "NAME", "DISTRO", "RELEASE", "ARCH",
                "STATE", "ADDRESS", "BOOT");
    for (const auto& r : *rows) {
      std::printf("%-16s %-8s %-10s %-7s %-10s %-15s %s\n", r.name.c_str(), r.distro.c_str(),
                  r.release.c_str(), r.arch.c_str(), r.state.c_str(),
                  r.address.empty() ? "-" : r.address.c_str(), r.boot ? "yes" : "no");
    }
    return kExitOk;
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
  std::vector<std::string> command;
  std::vector<std::string> own;
  bool after = false;
  for (const auto& a : inv.args) {
    if (!after && a == "--") {
      after = true;
    } else {
      (after ? command : own).push_back(a);
    }
  }
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
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    // Hand the terminal to the container: this process becomes systemd-nspawn.
    ::execv(argv[0], argv.data());
    log::error("cannot run ", args[0], ": ", errno_text(errno));
    return kExitFailed;
  });
}

const char* usage(const std::string& command) {
  if (command == "check-config") {
    return "Usage: farmhand check-config FILE\n\n"
           "Validates a configuration file and exits non-zero if it has errors.\n"
           "Every error names the JSON pointer of the offending value.\n";
  }
  if (command == "plan") {
    return "Usage: farmhand [--config FILE] [--root DIR] plan\n\n"
           "Prints what `farmhand apply` would change, and changes nothing.\n";
  }
  if (command == "apply") {
    return "Usage: farmhand [--config FILE] [--root DIR] apply\n\n"
           "Creates, updates and destroys build containers until the host matches\n"
           "the configuration. Safe to run again at any time, also after a crash.\n";
  }
  if (command == "status") {
    return "Usage: farmhand [--config FILE] [--root DIR] status [--json]\n\n"
           "Lists the build containers with their distro, state and address.\n";
  }
  if (command == "destroy") {
    return "Usage: farmhand [--config FILE] [--root DIR] destroy NAME\n\n"
           "Stops and removes a container farmhand manages: its root filesystem,\n"
           "host files and subnet. Remove it from the configuration too, or the\n"
           "next apply creates it again.\n";
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
         "  plan               show what apply would change\n"
         "  apply              make the host match the configuration\n"
         "  status [--json]    list the build containers\n"
         "  destroy NAME       remove a managed container\n"
         "  run NAME [-- CMD]  boot a container in the foreground (no systemd needed)\n"
         "  version            print the version\n\n"
         "Options:\n"
         "  --config FILE  configuration (default /etc/farmhand/agent.json under --root)\n"
         "  --root DIR     operate on a host filesystem under DIR (default /)\n"
         "  --verbose      log every command farmhand runs\n"
         "  --help         help for farmhand or a command\n";
}

}  // namespace farmhand::agent
