// The farmhand command line: parses arguments, wires the real side effects
// together and dispatches to the commands. No provisioning logic lives here.
#pragma once

#include <string>
#include <vector>

namespace farmhand::agent {

// Global options and the command with its own arguments.
struct Invocation {
  std::string config_file;  // --config; empty: the default under --root
  std::string root = "/";   // --root
  bool verbose = false;
  bool help = false;
  std::string command;
  std::vector<std::string> args;
};

// Parses argv; on a usage error returns false and sets `error`.
bool parse_invocation(const std::vector<std::string>& argv, Invocation& out, std::string& error);

int run_cli(int argc, char** argv);

}  // namespace farmhand::agent
