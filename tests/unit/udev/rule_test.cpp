// Device rules: matching a udev device, and telling whether two rules can
// ever match the same device.
#include "udev/rule.h"

#include <gtest/gtest.h>

namespace farmhand::udev {
namespace {

Device ftdi() {
  Device d;
  d.action = "add";
  d.syspath = "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/ttyUSB0/tty/ttyUSB0";
  d.subsystem = "tty";
  d.devnode = "/dev/ttyUSB0";
  d.major = 188;
  d.properties = {{"ID_VENDOR_ID", "0403"},
                  {"ID_MODEL_ID", "6001"},
                  {"ID_SERIAL_SHORT", "A50285BI"},
                  {"ID_PATH", "pci-0000:00:14.0-usb-0:2:1.0"},
                  {"ID_USB_INTERFACE_NUM", "00"}};
  d.links = {"/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0",
             "/dev/serial/by-path/pci-0000:00:14.0-usb-0:2:1.0-port0"};
  return d;
}

DeviceMatch ids(std::vector<UsbId> list) {
  DeviceMatch m;
  m.usb_ids = std::move(list);
  return m;
}

TEST(RuleMatches, EveryCriterionMustHold) {
  const Device d = ftdi();
  EXPECT_TRUE(rule_matches(ids({{"1fc9", "0135"}, {"0403", "6001"}}), d));  // bootloader and runtime ids
  EXPECT_FALSE(rule_matches(ids({{"1fc9", "0135"}}), d));
  DeviceMatch m = ids({{"0403", "6001"}});
  m.serial = "A50285BI";
  m.interface = "00";
  m.subsystem = "tty";
  m.path = "pci-0000:00:14.0-usb-0:2:1.0";
  m.by_id = "usb-FTDI_*";
  EXPECT_TRUE(rule_matches(m, d));
  m.serial = "OTHER";
  EXPECT_FALSE(rule_matches(m, d));
  DeviceMatch by_path;
  by_path.path = "pci-0000:00:14.0-usb-0:2:1.0";
  EXPECT_TRUE(rule_matches(by_path, d));  // no serial needed
  by_path.subsystem = "usb";
  EXPECT_FALSE(rule_matches(by_path, d));
  EXPECT_FALSE(rule_matches(DeviceMatch{}, d));  // an empty rule matches nothing
}

TEST(RuleMatches, HexIdsCompareCaseInsensitively) {
  Device d = ftdi();
  d.properties["ID_VENDOR_ID"] = "10C4";
  d.properties["ID_MODEL_ID"] = "EA60";
  EXPECT_TRUE(rule_matches(ids({{"10c4", "ea60"}}), d));
}

TEST(RuleMatches, RawUsbDevicesOnlyWhole) {
  Device d = ftdi();
  d.subsystem = "usb";
  d.devtype = "usb_interface";
  d.devnode = "";
  EXPECT_FALSE(handled_device(d));
  d.devtype = "usb_device";
  d.devnode = "/dev/bus/usb/001/004";
  EXPECT_TRUE(handled_device(d));
  EXPECT_TRUE(rule_matches(ids({{"0403", "6001"}}), d));
}

TEST(RulesMayOverlap, OnlyWhenNoSharedCriterionDisagrees) {
  DeviceMatch a = ids({{"0403", "6001"}, {"1fc9", "0135"}});
  DeviceMatch b = ids({{"1fc9", "0135"}});
  EXPECT_TRUE(rules_may_overlap(a, b));
  b.serial = "X";
  EXPECT_TRUE(rules_may_overlap(a, b));  // a takes any serial
  a.serial = "Y";
  EXPECT_FALSE(rules_may_overlap(a, b));
  EXPECT_FALSE(rules_may_overlap(ids({{"0403", "6001"}}), ids({{"0403", "6010"}})));

  DeviceMatch g1, g2;
  g1.by_id = "usb-FTDI_*";
  g2.by_id = "usb-Silicon_Labs_*";
  EXPECT_FALSE(rules_may_overlap(g1, g2));
  g2.by_id = "usb-FTDI_FT232R_*";
  EXPECT_TRUE(rules_may_overlap(g1, g2));
  g2.by_id = "*-if01-port0";
  g1.by_id = "*-if00-port0";
  EXPECT_FALSE(rules_may_overlap(g1, g2));
  g1.by_id = "usb-FTDI_X-if00-port0";  // literal against a glob
  EXPECT_FALSE(rules_may_overlap(g1, g2));
  g2.by_id = "usb-FTDI_*";
  EXPECT_TRUE(rules_may_overlap(g1, g2));

  DeviceMatch p1, p2;
  p1.path = "pci-0000:00:14.0-usb-0:1:1.0";
  p2.path = "pci-0000:00:14.0-usb-0:2:1.0";
  EXPECT_FALSE(rules_may_overlap(p1, p2));
  p2.path.reset();
  p2.subsystem = "tty";
  EXPECT_TRUE(rules_may_overlap(p1, p2));
}

TEST(HostUdevRules, TagDevicesAndKeepModemManagerAwayWithoutPermissions) {
  DeviceMatch a = ids({{"0403", "6001"}, {"1fc9", "0135"}});
  a.serial = "A50285BI";
  DeviceMatch b;
  b.path = "pci-0000:00:14.0-usb-0:3:1.0";
  b.subsystem = "tty";
  b.by_id = "usb-Silicon_*";
  const std::string rules = render_host_udev_rules({a, b}, "Managed by farmhand");
  EXPECT_EQ(rules,
            "# Managed by farmhand\n"
            "# Lab devices that farmhand hands to build containers: tagged, and kept\n"
            "# away from ModemManager. Owner and mode stay as udev sets them.\n"
            "SUBSYSTEM==\"tty|usb|hidraw\", ENV{ID_SERIAL_SHORT}==\"A50285BI\", ENV{ID_VENDOR_ID}==\"0403\", "
            "ENV{ID_MODEL_ID}==\"6001\", TAG+=\"farmhand\", ENV{ID_MM_DEVICE_IGNORE}=\"1\"\n"
            "SUBSYSTEM==\"tty|usb|hidraw\", ENV{ID_SERIAL_SHORT}==\"A50285BI\", ENV{ID_VENDOR_ID}==\"1fc9\", "
            "ENV{ID_MODEL_ID}==\"0135\", TAG+=\"farmhand\", ENV{ID_MM_DEVICE_IGNORE}=\"1\"\n"
            "SUBSYSTEM==\"tty\", ENV{ID_PATH}==\"pci-0000:00:14.0-usb-0:3:1.0\", "
            "SYMLINK==\"serial/by-id/usb-Silicon_*\", TAG+=\"farmhand\", ENV{ID_MM_DEVICE_IGNORE}=\"1\"\n");
  EXPECT_EQ(rules.find("MODE="), std::string::npos);
  EXPECT_EQ(rules.find("GROUP="), std::string::npos);
}

TEST(ByIdNames, FromTheDevicesLinks) {
  EXPECT_EQ(by_id_names(ftdi()), (std::vector<std::string>{"usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0"}));
}

}  // namespace
}  // namespace farmhand::udev
