// Fakes for unit tests of orchestration: a process runner that answers by
// program name and records what ran, and a systemd that keeps unit states in
// memory. Both are deterministic and need no root.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/process.h"
#include "common/systemd.h"

namespace farmhand::test {

// Answers every command with exit 0 unless told otherwise; `on[name]` (the
// program's file name, "cp", "systemd-nspawn") may act and set the result.
class ScriptedProcessRunner final : public ProcessRunner {
 public:
  using Handler = std::function<void(const Command&, ProcessResult&)>;
  Result<ProcessResult> run(const Command& c) override {
    ran.push_back(c);
    ProcessResult r;
    r.exit_code = 0;
    const std::string name = c.path.substr(c.path.rfind('/') + 1);
    if (auto it = on.find(name); it != on.end()) it->second(c, r);
    return r;
  }
  // The file names of the programs run, in order.
  std::vector<std::string> programs() const {
    std::vector<std::string> out;
    for (const auto& c : ran) out.push_back(c.path.substr(c.path.rfind('/') + 1));
    return out;
  }
  std::map<std::string, Handler> on;
  std::vector<Command> ran;
};

// Units are "inactive" until started; every call is logged as "verb unit".
class FakeSystemd final : public SystemdControl {
 public:
  Status daemon_reload() override { return log("daemon-reload", ""); }
  Status start_unit(const std::string& unit) override {
    if (fail_start.count(unit)) {
      calls.push_back("start " + unit);
      return fail("job for " + unit + " failed");
    }
    states[unit] = "active";
    return log("start", unit);
  }
  Status stop_unit(const std::string& unit) override {
    states[unit] = "inactive";
    return log("stop", unit);
  }
  Status restart_unit(const std::string& unit) override {
    states[unit] = "active";
    return log("restart", unit);
  }
  Status reload_or_try_restart_unit(const std::string& unit) override { return log("reload-or-try-restart", unit); }
  Result<std::string> active_state(const std::string& unit) override {
    auto it = states.find(unit);
    return it == states.end() ? std::string("inactive") : it->second;
  }
  Result<std::optional<pid_t>> machine_leader(const std::string& machine) override {
    auto it = leaders.find(machine);
    if (it == leaders.end()) return std::optional<pid_t>();
    return std::optional<pid_t>(it->second);
  }
  Result<DeviceAllowList> device_allow(const std::string& unit) override { return allow[unit]; }
  Status set_device_allow(const std::string& unit, const DeviceAllowList& entries, bool reset) override {
    if (reset) allow[unit].clear();
    allow[unit].insert(allow[unit].end(), entries.begin(), entries.end());
    return log(reset ? "set-device-allow-reset" : "set-device-allow", unit);
  }
  Status watch_machines() override { return {}; }
  int bus_fd() override { return -1; }
  std::vector<MachineEvent> machine_events() override { return std::exchange(pending_events, {}); }

  std::map<std::string, std::string> states;
  std::map<std::string, pid_t> leaders;
  std::map<std::string, DeviceAllowList> allow;
  std::set<std::string> fail_start;
  std::vector<MachineEvent> pending_events;
  std::vector<std::string> calls;

 private:
  Status log(const std::string& verb, const std::string& unit) {
    calls.push_back(unit.empty() ? verb : verb + " " + unit);
    return {};
  }
};

}  // namespace farmhand::test
