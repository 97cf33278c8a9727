#include "common/systemd.h"

#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <map>

#include "common/clock.h"
#include "common/log.h"

namespace farmhand {

namespace {

constexpr const char* kDest = "org.freedesktop.systemd1";
constexpr const char* kPath = "/org/freedesktop/systemd1";
constexpr const char* kManager = "org.freedesktop.systemd1.Manager";
// systemd-nspawn@ gives a container 90 s to shut down before killing it.
constexpr std::chrono::seconds kJobTimeout{120};

class BusSystemd final : public SystemdControl {
 public:
  explicit BusSystemd(sd_bus* bus) : bus_(bus) {}
  ~BusSystemd() override {
    sd_bus_slot_unref(machine_slot_);
    sd_bus_slot_unref(machine_removed_slot_);
    sd_bus_flush_close_unref(bus_);
  }
  BusSystemd(const BusSystemd&) = delete;
  BusSystemd& operator=(const BusSystemd&) = delete;

  Status daemon_reload() override {
    return on_live_bus([&] { return call("Reload"); });
  }
  Status start_unit(const std::string& unit) override {
    return on_live_bus([&] { return job("StartUnit", unit); });
  }
  Status stop_unit(const std::string& unit) override {
    return on_live_bus([&] { return job("StopUnit", unit); });
  }
  Status restart_unit(const std::string& unit) override {
    return on_live_bus([&] { return job("RestartUnit", unit); });
  }
  Status reload_or_try_restart_unit(const std::string& unit) override {
    return on_live_bus([&] { return job("ReloadOrTryRestartUnit", unit); });
  }
  Result<DeviceAllowList> device_allow(const std::string& unit) override {
    return on_live_bus([&] { return get_device_allow(unit); });
  }
  Status set_device_allow(const std::string& unit, const DeviceAllowList& entries, bool reset) override {
    return on_live_bus([&] { return put_device_allow(unit, entries, reset); });
  }
  Result<std::optional<pid_t>> machine_leader(const std::string& machine) override {
    return on_live_bus([&] { return get_machine_leader(machine); });
  }
  Result<std::string> active_state(const std::string& unit) override {
    return on_live_bus([&] { return get_active_state(unit); });
  }

 private:
  Result<DeviceAllowList> get_device_allow(const std::string& unit) {
    sd_bus_error err = SD_BUS_ERROR_NULL;
    sd_bus_message* reply = nullptr;
    int r = sd_bus_call_method(bus_, kDest, kPath, kManager, "LoadUnit", &err, &reply, "s", unit.c_str());
    if (r < 0) {
      std::string msg = err.message ? err.message : errno_text(-r);
      sd_bus_error_free(&err);
      return fail("LoadUnit " + unit + ": " + msg);
    }
    const char* path = nullptr;
    r = sd_bus_message_read(reply, "o", &path);
    std::string unit_path = r >= 0 && path ? path : "";
    sd_bus_message_unref(reply);
    reply = nullptr;
    r = sd_bus_get_property(bus_, kDest, unit_path.c_str(), "org.freedesktop.systemd1.Service", "DeviceAllow",
                            &err, &reply, "a(ss)");
    if (r < 0) {
      std::string msg = err.message ? err.message : errno_text(-r);
      sd_bus_error_free(&err);
      return fail("DeviceAllow of " + unit + ": " + msg);
    }
    DeviceAllowList out;
    r = sd_bus_message_enter_container(reply, 'a', "(ss)");
    const char* dev = nullptr;
    const char* access = nullptr;
    while (r >= 0 && (r = sd_bus_message_read(reply, "(ss)", &dev, &access)) > 0) out.emplace_back(dev, access);
    sd_bus_message_unref(reply);
    if (r < 0) return fail("DeviceAllow of " + unit + ": " + errno_text(-r));
    return out;
  }

  Status put_device_allow(const std::string& unit, const DeviceAllowList& entries, bool reset) {
    sd_bus_message* m = nullptr;
    int r = sd_bus_message_new_method_call(bus_, &m, kDest, kPath, kManager, "SetUnitProperties");
    auto append_list = [&](const DeviceAllowList& list) {
      int q = sd_bus_message_open_container(m, 'r', "sv");
      q = q < 0 ? q : sd_bus_message_append(m, "s", "DeviceAllow");
      q = q < 0 ? q : sd_bus_message_open_container(m, 'v', "a(ss)");
      q = q < 0 ? q : sd_bus_message_open_container(m, 'a', "(ss)");
      for (const auto& [dev, access] : list) q = q < 0 ? q : sd_bus_message_append(m, "(ss)", dev.c_str(), access.c_str());
      q = q < 0 ? q : sd_bus_message_close_container(m);
      q = q < 0 ? q : sd_bus_message_close_container(m);
      q = q < 0 ? q : sd_bus_message_close_container(m);
      return q;
    };
    r = r < 0 ? r : sd_bus_message_append(m, "sb", unit.c_str(), 1);
    r = r < 0 ? r : sd_bus_message_open_container(m, 'a', "(sv)");
    // An empty list resets DeviceAllow=, as an empty assignment does in a unit file.
    if (reset) r = r < 0 ? r : append_list({});
    if (!entries.empty()) r = r < 0 ? r : append_list(entries);
    r = r < 0 ? r : sd_bus_message_close_container(m);
    if (r < 0) {
      sd_bus_message_unref(m);
      return fail("SetUnitProperties " + unit + ": cannot build the message: " + errno_text(-r));
    }
    sd_bus_error err = SD_BUS_ERROR_NULL;
    r = sd_bus_call(bus_, m, 0, &err, nullptr);
    sd_bus_message_unref(m);
    if (r < 0) {
      std::string msg = err.message ? err.message : errno_text(-r);
      sd_bus_error_free(&err);
      return fail("SetUnitProperties " + unit + " DeviceAllow: " + msg);
    }
    return {};
  }


 public:
  Status watch_machines() override {
    watching_ = true;
    if (sd_bus_is_open(bus_) <= 0) {
      if (auto s = reconnect(); !s) return s;
    }
    if (machine_slot_ != nullptr) return {};
    int r = sd_bus_match_signal(bus_, &machine_slot_, "org.freedesktop.machine1", "/org/freedesktop/machine1",
                                "org.freedesktop.machine1.Manager", "MachineNew", &BusSystemd::on_machine_new, this);
    if (r >= 0) {
      r = sd_bus_match_signal(bus_, &machine_removed_slot_, "org.freedesktop.machine1", "/org/freedesktop/machine1",
                              "org.freedesktop.machine1.Manager", "MachineRemoved", &BusSystemd::on_machine_removed,
                              this);
    }
    if (r < 0) return fail("watching machines: " + errno_text(-r));
    return {};
  }

  int bus_fd() override { return sd_bus_get_fd(bus_); }

  std::vector<MachineEvent> machine_events() override {
    while (sd_bus_process(bus_, nullptr) > 0) {
    }
    std::vector<MachineEvent> out;
    out.swap(machine_events_);
    return out;
  }


 private:
  Result<std::optional<pid_t>> get_machine_leader(const std::string& machine) {
    sd_bus_error err = SD_BUS_ERROR_NULL;
    sd_bus_message* reply = nullptr;
    int r = sd_bus_call_method(bus_, "org.freedesktop.machine1", "/org/freedesktop/machine1",
                               "org.freedesktop.machine1.Manager", "GetMachine", &err, &reply, "s",
                               machine.c_str());
    if (r < 0) {
      bool missing = sd_bus_error_has_name(&err, "org.freedesktop.machine1.NoSuchMachine");
      std::string msg = err.message ? err.message : errno_text(-r);
      sd_bus_error_free(&err);
      if (missing) return std::optional<pid_t>();
      return fail("GetMachine " + machine + ": " + msg);
    }
    const char* path = nullptr;
    r = sd_bus_message_read(reply, "o", &path);
    std::string machine_path = r >= 0 && path ? path : "";
    sd_bus_message_unref(reply);
    if (machine_path.empty()) return fail("GetMachine " + machine + ": bad reply");
    uint32_t leader = 0;
    reply = nullptr;
    r = sd_bus_get_property(bus_, "org.freedesktop.machine1", machine_path.c_str(),
                            "org.freedesktop.machine1.Machine", "Leader", &err, &reply, "u");
    if (r >= 0) r = sd_bus_message_read(reply, "u", &leader);
    sd_bus_message_unref(reply);
    if (r < 0) {
      std::string msg = err.message ? err.message : errno_text(-r);
      sd_bus_error_free(&err);
      return fail("Leader of machine " + machine + ": " + msg);
    }
    if (leader == 0) return std::optional<pid_t>();
    return std::optional<pid_t>(static_cast<pid_t>(leader));
  }

  Result<std::string> get_active_state(const std::string& unit) {
    sd_bus_error err = SD_BUS_ERROR_NULL;
    sd_bus_message* reply = nullptr;
    int r = sd_bus_call_method(bus_, kDest, kPath, kManager, "GetUnit", &err, &reply, "s",
                               unit.c_str());
    if (r < 0) {
      bool missing = sd_bus_error_has_name(&err, "org.freedesktop.systemd1.NoSuchUnit");
      std::string msg = err.message ? err.message : errno_text(-r);
      sd_bus_error_free(&err);
      if (missing) return std::string("inactive");
      return fail("GetUnit " + unit + ": " + msg);
    }
    const char* path = nullptr;
    r = sd_bus_message_read(reply, "o", &path);
    std::string unit_path = r >= 0 && path ? path : "";
    sd_bus_message_unref(reply);
    if (unit_path.empty()) return fail("GetUnit " + unit + ": bad reply");
    char* state = nullptr;
    r = sd_bus_get_property_string(bus_, kDest, unit_path.c_str(), "org.freedesktop.systemd1.Unit",
                                   "ActiveState", &err, &state);
    if (r < 0) {
      std::string msg = err.message ? err.message : errno_text(-r);
      sd_bus_error_free(&err);
      return fail("ActiveState of " + unit + ": " + msg);
    }
    std::string out = state;
    free(state);  // NOLINT: allocated by sd-bus
    return out;
  }

  // The bus closes under a caller that held it unused for long: the system
  // bus drops a connection whose handshake was not completed within its
  // auth_timeout (a cold apply builds a base for minutes between connecting
  // and its first call), and dbus-daemon may restart. A call that failed on
  // a closed bus is made again once, on a new connection; a call refused by
  // systemd is not.
  template <typename F>
  auto on_live_bus(F&& f) -> decltype(f()) {
    if (sd_bus_is_open(bus_) <= 0) {
      if (auto s = reconnect(); !s) return s.error();
    }
    auto out = f();
    if (!out && sd_bus_is_open(bus_) <= 0) {
      if (auto s = reconnect(); !s) return s.error();
      out = f();
    }
    return out;
  }

  Status reconnect() {
    sd_bus* fresh = nullptr;
    int r = sd_bus_open_system(&fresh);
    if (r < 0) return fail("cannot connect to the system bus again: " + errno_text(-r));
    machine_slot_ = sd_bus_slot_unref(machine_slot_);
    machine_removed_slot_ = sd_bus_slot_unref(machine_removed_slot_);
    sd_bus_flush_close_unref(bus_);
    bus_ = fresh;
    log::notice("the system bus connection had closed; connected again");
    if (watching_) return watch_machines();
    return {};
  }

  bool watching_ = false;
  // Jobs removed since we subscribed, by object path -> result ("done", ...).
  std::map<std::string, std::string> removed_;
  sd_bus_slot* machine_slot_ = nullptr;
  sd_bus_slot* machine_removed_slot_ = nullptr;
  std::vector<MachineEvent> machine_events_;

  static void on_machine(sd_bus_message* m, void* userdata, bool started) {
    const char* name = nullptr;
    const char* path = nullptr;
    if (sd_bus_message_read(m, "so", &name, &path) >= 0 && name) {
      static_cast<BusSystemd*>(userdata)->machine_events_.push_back({name, started});
    }
  }
  static int on_machine_new(sd_bus_message* m, void* userdata, sd_bus_error*) {
    on_machine(m, userdata, true);
    return 0;
  }
  static int on_machine_removed(sd_bus_message* m, void* userdata, sd_bus_error*) {
    on_machine(m, userdata, false);
    return 0;
  }

  static int on_job_removed(sd_bus_message* m, void* userdata, sd_bus_error*) {
    uint32_t id = 0;
    const char* path = nullptr;
    const char* unit = nullptr;
    const char* result = nullptr;
    if (sd_bus_message_read(m, "uoss", &id, &path, &unit, &result) >= 0 && path && result) {
      static_cast<BusSystemd*>(userdata)->removed_[path] = result;
    }
    return 0;
  }

  // Runs a unit job and waits until systemd has finished it: StartUnit and
  // StopUnit return as soon as the job is queued, and a caller that removes a
  // container's files must not do so while it is still stopping.
  Status job(const char* method, const std::string& unit) {
    sd_bus_slot* slot = nullptr;
    int r = sd_bus_match_signal(bus_, &slot, kDest, kPath, kManager, "JobRemoved",
                                &BusSystemd::on_job_removed, this);
    if (r < 0) return fail(std::string("watching jobs: ") + errno_text(-r));
    // systemd emits job signals only while someone is subscribed.
    sd_bus_error err = SD_BUS_ERROR_NULL;
    (void)sd_bus_call_method(bus_, kDest, kPath, kManager, "Subscribe", &err, nullptr, "");
    sd_bus_error_free(&err);

    sd_bus_message* reply = nullptr;
    r = sd_bus_call_method(bus_, kDest, kPath, kManager, method, &err, &reply, "ss", unit.c_str(),
                           "replace");
    if (r < 0) {
      std::string msg = err.message ? err.message : errno_text(-r);
      sd_bus_error_free(&err);
      sd_bus_slot_unref(slot);
      return fail(std::string(method) + " " + unit + ": " + msg);
    }
    const char* job_path = nullptr;
    std::string path;
    if (sd_bus_message_read(reply, "o", &job_path) >= 0 && job_path) path = job_path;
    sd_bus_message_unref(reply);

    const auto deadline = monotonic_now() + kJobTimeout;
    Status outcome = fail(std::string(method) + " " + unit + ": no job in the reply");
    while (!path.empty()) {
      if (auto it = removed_.find(path); it != removed_.end()) {
        outcome = it->second == "done" ? Status{}
                                       : fail(std::string(method) + " " + unit + ": the job " +
                                              "ended with result \"" + it->second + "\"");
        break;
      }
      r = sd_bus_process(bus_, nullptr);
      if (r < 0) {
        outcome = fail(std::string(method) + " " + unit + ": " + errno_text(-r));
        break;
      }
      if (r > 0) continue;
      auto left = std::chrono::duration_cast<std::chrono::microseconds>(
          deadline - monotonic_now());
      if (left.count() <= 0) {
        outcome = fail(std::string(method) + " " + unit + ": still not finished after " +
                       std::to_string(kJobTimeout.count()) + " s");
        break;
      }
      r = sd_bus_wait(bus_, static_cast<uint64_t>(left.count()));
      if (r < 0 && r != -EINTR) {
        outcome = fail(std::string(method) + " " + unit + ": " + errno_text(-r));
        break;
      }
    }
    removed_.clear();
    sd_bus_slot_unref(slot);
    return outcome;
  }

  // A Manager method without arguments (Reload), which returns when done.
  Status call(const char* method) {
    sd_bus_error err = SD_BUS_ERROR_NULL;
    int r = sd_bus_call_method(bus_, kDest, kPath, kManager, method, &err, nullptr, "");
    if (r < 0) {
      std::string msg = err.message ? err.message : errno_text(-r);
      sd_bus_error_free(&err);
      return fail(std::string(method) + ": " + msg);
    }
    return {};
  }

  sd_bus* bus_;
};

}  // namespace

bool host_booted_with_systemd() { return sd_booted() > 0; }

void notify_service_manager(const std::string& state) { (void)sd_notify(0, state.c_str()); }

Result<std::unique_ptr<SystemdControl>> connect_systemd() {
  sd_bus* bus = nullptr;
  int r = sd_bus_open_system(&bus);
  if (r < 0) return fail("cannot connect to the system bus: " + errno_text(-r));
  return std::unique_ptr<SystemdControl>(new BusSystemd(bus));
}

}  // namespace farmhand
