// farmhand-server: the central server agents report to. Everything is in
// the farmhand_server library; this only hands it the command line.
#include <iostream>
#include <string>
#include <vector>

#include "server/cli.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return farmhand::server::run_cli(args, std::cin, std::cout, std::cerr);
}
