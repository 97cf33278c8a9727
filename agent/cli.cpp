#include "agent/cli.h"

namespace farmhand::agent {
int run_cli(int, char**) { return 1; }
}  // namespace farmhand::agent
