// A container's "devices" rules (provisioner/config/devices.cpp).
#include "tests/unit/provisioner/config/config_fixture.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace farmhand::provisioner::config_test {
namespace {

TEST(ConfigDevices, RulesWithEveryKeyAndWithTheDefaults) {
  ConfigLoad load = parse_config(
      with_containers(debian(R"("devices": [
          {"match": {"usb_ids": ["0403:6001", "1FC9:0135"], "serial": "A1", "interface": "0a", "subsystem": "tty"},
           "group": "plugdev", "mode": "0600"},
          {"match": {"by_id": "usb-Silicon_*", "path": "pci-0000:00:14.0-usb-0:2:1.0"}}])")),
      recipes());
  ASSERT_TRUE(load.config) << errors_of(load);
  const auto& devices = load.config->containers.at(0).devices;
  ASSERT_EQ(devices.size(), 2u);
  udev::DeviceRule first;
  first.match.usb_ids = {{"0403", "6001"}, {"1fc9", "0135"}};
  first.match.serial = "A1";
  first.match.interface = "0a";
  first.match.subsystem = "tty";
  first.group = "plugdev";
  first.mode = 0600;
  EXPECT_EQ(devices[0], first);
  udev::DeviceRule second;
  second.match.by_id = "usb-Silicon_*";
  second.match.path = "pci-0000:00:14.0-usb-0:2:1.0";
  EXPECT_EQ(devices[1], second);
  EXPECT_EQ(devices[1].group, "dialout");
  EXPECT_EQ(devices[1].mode, 0660u);
}

std::vector<BadConfig> bad_configs() {
  return {
      {"DeviceRules",
       with_containers(debian(R"("devices": [{"match": {"usb_ids": ["0403:60"], "subsystem": "scsi", "interface": "1"}},
                                           {"match": {}}, {"group": "Dial Out", "mode": "0666"},
                                           {"match": {"by_id": "a/b", "serial": "has space"}, "mode": "0640x"},
                                           {"match": {"usb_ids": []}, "mode": "0460"}, "x"])")),
       {"/containers/0/devices/0/match/usb_ids/0: \"0403:60\" is not a USB id pair: write \"vendor:product\" in hex, "
        "like \"0403:6001\"",
        "/containers/0/devices/0/match/subsystem: unknown subsystem \"scsi\" (expected one of: hidraw, tty, usb)",
        "/containers/0/devices/0/match/interface: \"1\" is not a USB interface number: two hex digits, like \"00\"",
        "/containers/0/devices/1/match: a rule must match on at least one of: by_id, interface, path, serial, "
        "subsystem, usb_ids",
        "/containers/0/devices/2/group: \"Dial Out\" is not a valid group name",
        "/containers/0/devices/2/mode: \"0666\" gives other users access: a device node is never world-accessible "
        "(use \"0660\")",
        "/containers/0/devices/2/match: required key is missing",
        "/containers/0/devices/3/match/by_id: \"a/b\" must be a name in /dev/serial/by-id/, without '/'",
        "/containers/0/devices/3/match/serial: \"has space\" must be non-empty, without spaces, quotes, backslashes or "
        "control characters",
        "/containers/0/devices/3/mode: \"0640x\" is not a file mode: write it in octal, like \"0660\"",
        "/containers/0/devices/4/match/usb_ids: expected at least one \"vendor:product\" pair",
        "/containers/0/devices/4/mode: \"0460\" does not let the owner read and write the device",
        "/containers/0/devices/5: expected an object, got a string"}},
  };
}

class ConfigDevicesRejects : public testing::TestWithParam<BadConfig> {};

TEST_P(ConfigDevicesRejects, WithExactErrors) { expect_rejected(GetParam()); }

INSTANTIATE_TEST_SUITE_P(ConfigBad, ConfigDevicesRejects, testing::ValuesIn(bad_configs()),
                         bad_config_name);

}  // namespace
}  // namespace farmhand::provisioner::config_test
