// Runs recipe commands on the host or inside a container's root filesystem.
//
// Inside means `systemd-nspawn --register=no --keep-unit` on the tree, not
// booted: that works with or without systemd as PID 1 and never touches the
// host's own package database. Program names are resolved to absolute paths
// on the host; inside, nspawn resolves them in the container's PATH.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/process.h"
#include "provisioner/recipe.h"

namespace farmhand::provisioner {

class CommandRunner {
 public:
  using LineSink = std::function<void(std::string_view)>;

  explicit CommandRunner(ProcessRunner& runner) : runner_(runner) {}

  // How the container resolves names while a command runs in it: with a
  // copy of the host's resolv.conf left behind (kHost), the host's bound
  // over its own for the command only (kBindHost), or not at all.
  enum class Dns { kHost, kBindHost, kNone };

  // Runs argv on the host; a non-zero exit is an error carrying its output.
  Status host(const std::vector<std::string>& argv, const std::vector<std::string>& env,
              const LineSink& on_line = {}, std::chrono::seconds timeout = std::chrono::hours(2));
  // Runs argv inside the tree at `root`.
  Status in_tree(const std::string& root, const std::vector<std::string>& argv,
                 const std::vector<std::string>& env, Dns dns, const LineSink& on_line = {},
                 std::chrono::seconds timeout = std::chrono::hours(2));

  // The nspawn argv prefix used for in_tree (for tests and logs).
  static std::vector<std::string> nspawn_args(const std::string& root,
                                              const std::vector<std::string>& env, Dns dns);

 private:
  Status run_checked(Command cmd, const LineSink& on_line, std::chrono::seconds timeout);
  ProcessRunner& runner_;
};

}  // namespace farmhand::provisioner
