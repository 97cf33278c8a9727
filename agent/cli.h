// The farmhand command line: parses arguments and dispatches to commands.
#pragma once

namespace farmhand::agent {
int run_cli(int argc, char** argv);
}  // namespace farmhand::agent
