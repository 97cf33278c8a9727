// The commands that put a terminal in a container: run (boots it in the
// foreground with systemd-nspawn) and shell.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "agent/cli/commands.h"
#include "agent/run_network.h"
#include "agent/runtime.h"
#include "agent/wiring.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/process.h"
#include "common/systemd.h"
#include "provisioner/provisioner.h"

namespace farmhand::agent {

using provisioner::Provisioner;

namespace {

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

}  // namespace

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

}  // namespace farmhand::agent
