// Fakes for unit tests of orchestration: a process runner that answers by
// program name and records what ran, and a systemd that keeps unit states in
// memory. Both are deterministic, need no root, and may be called from more
// than one thread (the daemon's loop and worker): set them up before use,
// and read what they recorded through their accessors.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/process.h"
#include "common/systemd.h"

namespace farmhand::test {

// Answers every command with `exit_code` (0 unless told otherwise), or as
// `on[name]` says: the handler for the program's file name ("cp",
// "systemd-nspawn") may act and set the result.
class ScriptedProcessRunner final : public ProcessRunner {
 public:
  using Handler = std::function<void(const Command&, ProcessResult&)>;
  Result<ProcessResult> run(const Command& c) override {
    ProcessResult r;
    r.exit_code = exit_code;
    r.err = err;
    const std::string name = c.path.substr(c.path.rfind('/') + 1);
    if (auto it = on.find(name); it != on.end()) it->second(c, r);
    std::lock_guard lock(mu_);
    ran_.push_back(c);
    return r;
  }
  // What ran, in order.
  std::vector<Command> ran() const {
    std::lock_guard lock(mu_);
    return ran_;
  }
  void clear() {
    std::lock_guard lock(mu_);
    ran_.clear();
  }

  std::map<std::string, Handler> on;
  int exit_code = 0;
  std::string err;  // stderr of every command not handled by `on`

 private:
  mutable std::mutex mu_;
  std::vector<Command> ran_;
};

// Units are "inactive" until started; every call is recorded as "verb unit".
class FakeSystemd final : public SystemdControl {
 public:
  Status daemon_reload() override { return note("daemon-reload", "", std::nullopt); }
  Status start_unit(const std::string& unit) override {
    if (fail_start.count(unit)) {
      (void)note("start", unit, std::nullopt);
      return fail("job for " + unit + " failed");
    }
    return note("start", unit, "active");
  }
  Status stop_unit(const std::string& unit) override { return note("stop", unit, "inactive"); }
  Status restart_unit(const std::string& unit) override { return note("restart", unit, "active"); }
  Status reload_or_try_restart_unit(const std::string& unit) override { return note("reload", unit, std::nullopt); }
  Result<std::string> active_state(const std::string& unit) override { return state(unit); }
  Result<std::optional<pid_t>> machine_leader(const std::string& machine) override {
    auto it = leaders.find(machine);
    if (it == leaders.end()) return std::optional<pid_t>();
    return std::optional<pid_t>(it->second);
  }
  Result<DeviceAllowList> device_allow(const std::string& unit) override {
    std::lock_guard lock(mu_);
    return allow_[unit];
  }
  Status set_device_allow(const std::string& unit, const DeviceAllowList& entries, bool reset) override {
    {
      std::lock_guard lock(mu_);
      if (reset) allow_[unit].clear();
      allow_[unit].insert(allow_[unit].end(), entries.begin(), entries.end());
    }
    return note(reset ? "set-device-allow-reset" : "set-device-allow", unit, std::nullopt);
  }
  Status watch_machines() override { return {}; }
  int bus_fd() override { return -1; }
  std::vector<MachineEvent> machine_events() override { return {}; }

  std::string state(const std::string& unit) const {
    std::lock_guard lock(mu_);
    auto it = states_.find(unit);
    return it == states_.end() ? "inactive" : it->second;
  }
  std::vector<std::string> calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }
  void clear_calls() {
    std::lock_guard lock(mu_);
    calls_.clear();
  }

  std::map<std::string, pid_t> leaders;  // machine -> leader pid
  std::set<std::string> fail_start;      // units whose start fails

 private:
  Status note(const std::string& verb, const std::string& unit, std::optional<std::string> new_state) {
    std::lock_guard lock(mu_);
    calls_.push_back(unit.empty() ? verb : verb + " " + unit);
    if (new_state) states_[unit] = *new_state;
    return {};
  }
  mutable std::mutex mu_;
  std::map<std::string, std::string> states_;
  std::map<std::string, DeviceAllowList> allow_;
  std::vector<std::string> calls_;
};

}  // namespace farmhand::test
