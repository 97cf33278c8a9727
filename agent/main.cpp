// farmhand: the build-host agent's command line. Parsing and wiring only.
#include "agent/cli/cli.h"

int main(int argc, char** argv) { return farmhand::agent::run_cli(argc, argv); }
