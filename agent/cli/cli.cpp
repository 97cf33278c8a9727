#include "agent/cli/cli.h"

#include <cstdio>
#include <map>

#include "agent/cli/commands.h"
#include "agent/cli/enter.h"
#include "agent/cli/git_sync.h"
#include "common/log.h"

namespace farmhand::agent {

namespace {

using Handler = int (*)(const Invocation&);

const std::map<std::string, Handler>& commands() {
  static const std::map<std::string, Handler> kCommands = {
      {"check-config", cmd_check_config}, {"plan", cmd_plan},       {"apply", cmd_apply},
      {"status", cmd_status},             {"destroy", cmd_destroy}, {"run", cmd_run},
      {"start", cmd_start},               {"stop", cmd_stop},       {"restart", cmd_restart},
      {"shell", cmd_shell},               {"enroll", cmd_enroll},   {"daemon", cmd_daemon},
      {"devices", cmd_devices},           {"rebuild", cmd_rebuild},
  };
  return kCommands;
}

}  // namespace

bool parse_invocation(const std::vector<std::string>& argv, Invocation& out, std::string& error) {
  bool options_done = false;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (options_done || a.empty() || a[0] != '-' || a == "-") {
      if (out.command.empty() && !options_done) {
        out.command = a;
      } else {
        out.args.push_back(a);
      }
      continue;
    }
    if (a == "--") {
      // Everything after "--" belongs to the command (farmhand run NAME -- CMD).
      if (out.command.empty()) {
        error = "expected a command before \"--\"";
        return false;
      }
      out.args.push_back(a);
      options_done = true;
      continue;
    }
    auto value = [&](const std::string& name, std::string& into) {
      const std::string prefix = name + "=";
      if (a.rfind(prefix, 0) == 0) {
        into = a.substr(prefix.size());
        return true;
      }
      if (a == name) {
        if (i + 1 >= argv.size()) {
          error = name + " needs a value";
          return true;
        }
        into = argv[++i];
        return true;
      }
      return false;
    };
    if (value("--config", out.config_file) || value("--root", out.root)) {
      if (!error.empty()) return false;
      continue;
    }
    if (a == "-h" || a == "--help") {
      out.help = true;
    } else if (a == "-v" || a == "--verbose") {
      out.verbose = true;
    } else if (!out.command.empty()) {
      out.args.push_back(a);  // a command's own option, such as status --json
    } else {
      error = "unknown option \"" + a + "\"";
      return false;
    }
  }
  if (out.root.empty() || out.root[0] != '/') {
    error = "--root must be an absolute path";
    return false;
  }
  return true;
}

int run_cli(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  // Internal: the privilege-dropping git helper apply runs for each source.
  if (!args.empty() && args[0] == "git-sync") return cmd_git_sync({args.begin() + 1, args.end()});
  // Internal: how apply runs a setup step or systemctl in a running container.
  if (!args.empty() && args[0] == "enter") return cmd_enter({args.begin() + 1, args.end()});
  Invocation inv;
  std::string error;
  if (!parse_invocation(args, inv, error)) {
    std::fprintf(stderr, "farmhand: %s\n%s", error.c_str(), usage(""));
    return kExitUsage;
  }
  if (inv.verbose) log::set_max_level(log::Level::kDebug);
  if (inv.command.empty() || inv.command == "help") {
    const std::string topic = inv.args.empty() ? "" : inv.args[0];
    std::fputs(usage(topic), inv.command.empty() && !inv.help ? stderr : stdout);
    return inv.command.empty() && !inv.help ? kExitUsage : kExitOk;
  }
  if (inv.command == "version" || inv.command == "--version") {
    std::printf("farmhand %s\n", FARMHAND_VERSION);
    return kExitOk;
  }
  auto it = commands().find(inv.command);
  if (it == commands().end()) {
    std::fprintf(stderr, "farmhand: unknown command \"%s\"\n%s", inv.command.c_str(), usage(""));
    return kExitUsage;
  }
  if (inv.help) {
    std::fputs(usage(inv.command), stdout);
    return kExitOk;
  }
  return it->second(inv);
}

}  // namespace farmhand::agent
