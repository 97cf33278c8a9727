#include "provisioner/command_runner.h"

namespace farmhand::provisioner {

std::vector<std::string> CommandRunner::nspawn_args(const std::string& root,
                                                    const std::vector<std::string>& env, Dns dns) {
  std::vector<std::string> args = {"--register=no", "--keep-unit", "--quiet", "--console=pipe",
                                   "--directory=" + root,
                                   dns == Dns::kHost       ? "--resolv-conf=replace-host"
                                   : dns == Dns::kBindHost ? "--resolv-conf=bind-host"
                                                           : "--resolv-conf=off",
                                   "--timezone=off"};
  for (const auto& e : env) args.push_back("--setenv=" + e);
  args.push_back("--");
  return args;
}

Status CommandRunner::run_checked(Command cmd, const LineSink& on_line,
                                  std::chrono::seconds timeout) {
  cmd.timeout = timeout;
  cmd.on_line = on_line;
  auto r = runner_.run(cmd);
  if (!r) return r.error();
  if (!r->success()) return command_error(cmd, *r);
  return {};
}

Status CommandRunner::host(const std::vector<std::string>& argv,
                           const std::vector<std::string>& env, const LineSink& on_line,
                           std::chrono::seconds timeout) {
  if (argv.empty()) return fail("empty command");
  auto path = find_program(argv[0]);
  if (!path) return path.error();
  Command cmd;
  cmd.path = *path;
  cmd.args.assign(argv.begin() + 1, argv.end());
  cmd.env = minimal_env(env);
  return run_checked(std::move(cmd), on_line, timeout);
}

Status CommandRunner::in_tree(const std::string& root, const std::vector<std::string>& argv,
                              const std::vector<std::string>& env, Dns dns,
                              const LineSink& on_line, std::chrono::seconds timeout) {
  if (argv.empty()) return fail("empty command");
  auto nspawn = find_program("systemd-nspawn");
  if (!nspawn) return nspawn.error().context("running a command in " + root);
  Command cmd;
  cmd.path = *nspawn;
  cmd.args = nspawn_args(root, env, dns);
  cmd.args.insert(cmd.args.end(), argv.begin(), argv.end());
  cmd.env = minimal_env();
  return run_checked(std::move(cmd), on_line, timeout);
}

}  // namespace farmhand::provisioner
