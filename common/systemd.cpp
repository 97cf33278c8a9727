#include "common/systemd.h"

#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>

#include <cstdlib>

namespace farmhand {

namespace {

constexpr const char* kDest = "org.freedesktop.systemd1";
constexpr const char* kPath = "/org/freedesktop/systemd1";
constexpr const char* kManager = "org.freedesktop.systemd1.Manager";

class BusSystemd final : public SystemdControl {
 public:
  explicit BusSystemd(sd_bus* bus) : bus_(bus) {}
  ~BusSystemd() override { sd_bus_flush_close_unref(bus_); }
  BusSystemd(const BusSystemd&) = delete;
  BusSystemd& operator=(const BusSystemd&) = delete;

  Status daemon_reload() override { return call("Reload", nullptr); }
  Status start_unit(const std::string& unit) override { return job("StartUnit", unit); }
  Status stop_unit(const std::string& unit) override { return job("StopUnit", unit); }
  Status restart_unit(const std::string& unit) override { return job("RestartUnit", unit); }

  Result<std::string> active_state(const std::string& unit) override {
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

 private:
  Status job(const char* method, const std::string& unit) {
    return call(method, unit.c_str());
  }

  Status call(const char* method, const char* unit) {
    sd_bus_error err = SD_BUS_ERROR_NULL;
    int r = unit ? sd_bus_call_method(bus_, kDest, kPath, kManager, method, &err, nullptr, "ss",
                                      unit, "replace")
                 : sd_bus_call_method(bus_, kDest, kPath, kManager, method, &err, nullptr, "");
    if (r < 0) {
      std::string msg = err.message ? err.message : errno_text(-r);
      sd_bus_error_free(&err);
      return fail(std::string(method) + (unit ? std::string(" ") + unit : "") + ": " + msg);
    }
    return {};
  }

  sd_bus* bus_;
};

}  // namespace

bool host_booted_with_systemd() { return sd_booted() > 0; }

Result<std::unique_ptr<SystemdControl>> connect_systemd() {
  sd_bus* bus = nullptr;
  int r = sd_bus_open_system(&bus);
  if (r < 0) return fail("cannot connect to the system bus: " + errno_text(-r));
  return std::unique_ptr<SystemdControl>(new BusSystemd(bus));
}

}  // namespace farmhand
