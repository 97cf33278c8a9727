// The usage texts of farmhand and of each command.
#include <string>

#include "agent/cli/commands.h"

namespace farmhand::agent {

const char* usage(const std::string& command) {
  if (command == "check-config") {
    return "Usage: farmhand check-config FILE\n\n"
           "Validates a configuration file and exits non-zero if it has errors.\n"
           "Every error names the JSON pointer of the offending value.\n";
  }
  if (command == "plan") {
    return "Usage: farmhand [--config FILE] [--root DIR] plan [--fetch]\n\n"
           "Prints what `farmhand apply` would change, and changes nothing: containers,\n"
           "the host network, and each container's payload (steps whose definition\n"
           "changed or that failed, files that differ, services not installed or\n"
           "enabled). With --fetch, asks each source's remote which commit its ref\n"
           "names (fetching nothing) and lists the steps that would rerun.\n";
  }
  if (command == "rebuild") {
    return "Usage: farmhand [--config FILE] [--root DIR] rebuild NAME [--step STEP] [--clean]\n\n"
           "Reruns a container's setup steps now: all of them, or STEP and every step\n"
           "after it. With --clean, the checkouts those steps work in are cleaned first\n"
           "(git clean -ffdx and reset: build directories and caches go). Then applies.\n";
  }
  if (command == "apply") {
    return "Usage: farmhand [--config FILE] [--root DIR] apply\n\n"
           "Creates, updates and destroys build containers until the host matches\n"
           "the configuration. Safe to run again at any time, also after a crash.\n";
  }
  if (command == "status") {
    return "Usage: farmhand [--config FILE] [--root DIR] status [--json]\n\n"
           "Lists the build containers with their distro, state and address, and\n"
           "for running ones their network health, checked from inside: the gateway\n"
           "answers ping and a DNS server answers on the gateway.\n";
  }
  if (command == "destroy") {
    return "Usage: farmhand [--config FILE] [--root DIR] destroy NAME\n\n"
           "Stops and removes a container farmhand manages: its root filesystem,\n"
           "host files and subnet. Remove it from the configuration too, or the\n"
           "next apply creates it again.\n";
  }
  if (command == "start" || command == "stop" || command == "restart") {
    return "Usage: farmhand start|stop|restart NAME\n\n"
           "Starts, stops or restarts a managed container (its systemd-nspawn@NAME\n"
           "unit) and waits until systemd has done it. Needs a host booted with systemd.\n";
  }
  if (command == "shell") {
    return "Usage: farmhand shell NAME [--user USER] [-- COMMAND...]\n\n"
           "Opens a login shell in a running container (as root, or USER, e.g. the\n"
           "build user sai), or runs COMMAND there. Uses machinectl shell.\n";
  }
  if (command == "enroll") {
    return "Usage: farmhand enroll [--server URL (--token TOKEN | --token-file FILE) [--ca-file PEM]] [--force]\n\n"
           "Makes this host a farm member for good: installs missing prerequisites\n"
           "with the host's package manager, trades the server's one-time token for\n"
           "this host's credential (/etc/farmhand/credential, 0600), writes\n"
           "/etc/farmhand/agent.json (0600), creates farmhand's directories, installs\n"
           "and enables farmhand.service and runs the first apply. Safe to run again.\n"
           "Replacing a different server, or enrolling again, needs --force.\n";
  }
  if (command == "devices") {
    return "Usage: farmhand devices [--json]\n\n"
           "Lists the USB devices present (serial adapters, debug probes, raw USB\n"
           "devices), the device rule each matches, and the container that holds\n"
           "each one (attached, or pending while it is not running) and since when.\n";
  }
  if (command == "daemon") {
    return "Usage: farmhand daemon\n\n"
           "The agent service (farmhand.service runs it): reconciles the host at start\n"
           "(host network, containers that should run), then watches the containers'\n"
           "network health. SIGHUP reconciles again; SIGTERM stops it.\n";
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
         "  plan [--fetch]     show what apply would change\n"
         "  apply              make the host match the configuration\n"
         "  status [--json]    list the build containers\n"
         "  rebuild NAME [--step STEP] [--clean]  rerun a container's setup steps\n"
         "  destroy NAME       remove a managed container\n"
         "  start|stop|restart NAME  control a container's systemd-nspawn@ unit\n"
         "  shell NAME         open a shell in a running container\n"
         "  run NAME [-- CMD]  boot a container in the foreground (no systemd needed)\n"
         "  devices [--json]   USB devices, their rules and the containers holding them\n"
         "  enroll             make this host a farm member (service, config, first apply)\n"
         "  daemon             the agent service itself (run by farmhand.service)\n"
         "  version            print the version\n\n"
         "Options:\n"
         "  --config FILE  configuration (default /etc/farmhand/agent.json under --root)\n"
         "  --root DIR     operate on a host filesystem under DIR (default /)\n"
         "  --verbose      log every command farmhand runs\n"
         "  --help         help for farmhand or a command\n";
}

}  // namespace farmhand::agent
