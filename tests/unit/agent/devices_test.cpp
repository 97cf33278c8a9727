// The agent's adapter to the device manager: the rule set it builds from
// its configuration names every container in order, with each rule's place
// in the configuration (the device manager's own tests are in
// tests/unit/udev/device_manager_test.cpp).
#include "agent/devices.h"

#include <gtest/gtest.h>

namespace farmhand::agent {
namespace {

TEST(DeviceRules, EveryContainerInOrderWithEachRulesPlace) {
  provisioner::AgentConfig config;
  provisioner::ContainerSpec none;
  none.name = "none";
  provisioner::ContainerSpec fw;
  fw.name = "fw";
  udev::DeviceRule a;
  a.match.serial = "A1";
  udev::DeviceRule b;
  b.match.usb_ids = {{"0403", "6001"}};
  b.group = "plugdev";
  fw.devices = {a, b};
  config.containers = {none, fw};

  const udev::DeviceRuleSet rules = device_rules(config);
  ASSERT_EQ(rules.size(), 2U);
  EXPECT_EQ(rules[0].container, "none");
  EXPECT_TRUE(rules[0].rules.empty());
  EXPECT_EQ(rules[1].container, "fw");
  ASSERT_EQ(rules[1].rules.size(), 2U);
  EXPECT_EQ(rules[1].rules[0].rule, a);
  EXPECT_EQ(rules[1].rules[0].path, "/containers/1/devices/0");
  EXPECT_EQ(rules[1].rules[1].rule, b);
  EXPECT_EQ(rules[1].rules[1].path, "/containers/1/devices/1");

  udev::Device d;
  d.subsystem = "tty";
  d.devnode = "/dev/ttyUSB0";
  d.properties = {{"ID_VENDOR_ID", "0403"}, {"ID_MODEL_ID", "6001"}, {"ID_SERIAL_SHORT", "Z9"}};
  auto m = udev::match_device(rules, d);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->container, "fw");
  EXPECT_EQ(m->rule, "/containers/1/devices/1");
}

}  // namespace
}  // namespace farmhand::agent
