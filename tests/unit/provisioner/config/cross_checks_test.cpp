// The checks across containers (provisioner/config/cross_checks.cpp): names,
// device rules, parent links and subnets, reported after every error of the
// containers themselves.
#include "tests/unit/provisioner/config/config_fixture.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace farmhand::provisioner::config_test {
namespace {

TEST(ConfigWarnings, WarningsAreKeptAlongsideErrors) {
  ConfigLoad load = parse_config(
      with_containers(debian("", "buildhost-deb11") + ", " + debian("", "buildhost-deb12")), recipes());
  EXPECT_FALSE(load.config);
  EXPECT_EQ(load.errors.size(), 1u);
  EXPECT_EQ(
      load.warnings,
      (std::vector<std::string>{
          "/containers/0/name: \"buildhost-deb11\" is longer than 12 characters: its host interface will "
          "not be named exactly \"ve-buildhost-deb11\"",
          "/containers/1/name: \"buildhost-deb12\" is longer than 12 characters: its host interface will "
          "not be named exactly \"ve-buildhost-deb12\""}));
}

std::vector<BadConfig> bad_configs() {
  return {
      {"DuplicateName",
       with_containers(debian("", "foo") + ", " + debian("", "bar") + ", " + debian("", "foo")),
       {"/containers/2/name: duplicate name \"foo\" (also at /containers/0/name)"}},
      {"LegacyInterfaceNameCollision",
       with_containers(debian("", "buildhost-deb11") + ", " + debian("", "buildhost-deb12")),
       {"/containers/1/name: \"buildhost-deb12\" collides with \"buildhost-deb11\" (/containers/0/name): "
        "systemd older than v245 names both host interfaces \"ve-buildhost-d\""}},
      {"SubnetsOverlap",
       with_containers(debian(R"("network": {"subnet": "192.168.85.0/25"})", "a") + ", " +
                       debian(R"("network": {"subnet": "192.168.86.0/24"})", "b") + ", " +
                       debian(R"("network": {"subnet": "192.168.85.0/24"})", "c")),
       {"/containers/2/network/subnet: 192.168.85.0/24 overlaps 192.168.85.0/25 "
        "(/containers/0/network/subnet)"}},
      {"MacvlanAndIpvlanOnOneLink",
       with_containers(debian(R"("network": {"mode": "macvlan", "link": "eth0"})") + ", " +
                       debian(R"("network": {"mode": "macvlan", "link": "eth0"})", "b") + ", " +
                       debian(R"("network": {"mode": "ipvlan", "link": "eth0"})", "c")),
       {"/containers/2/network/link: \"eth0\" already carries macvlan links (/containers/0/network/link): the "
        "kernel does not allow ipvlan links on the same interface"}},
      {"DeviceClaimedByTwoContainers",
       with_containers(debian(R"("devices": [{"match": {"usb_ids": ["0403:6001", "1fc9:0135"]}}])") + ", " +
                       debian(R"("devices": [{"match": {"usb_ids": ["1FC9:0135"], "serial": "X1"}},
                                             {"match": {"usb_ids": ["0403:6010"]}}])", "b") + ", " +
                       debian(R"("devices": [{"match": {"by_id": "usb-FTDI_*"}},
                                             {"match": {"usb_ids": ["0403:6001"], "serial": "X2", "subsystem": "usb"}}])", "c") + ", " +
                       debian(R"("devices": [{"match": {"by_id": "usb-Silicon_*", "usb_ids": ["10c4:ea60"]}}])", "d")),
       {"/containers/1/devices/0: can match the same device as /containers/0/devices/0 (container \"bookworm\"): a device "
        "belongs to one container at most; make the rules differ in usb_ids, serial, path, interface, subsystem or by_id",
        "/containers/2/devices/0: can match the same device as /containers/0/devices/0 (container \"bookworm\"): a device "
        "belongs to one container at most; make the rules differ in usb_ids, serial, path, interface, subsystem or by_id",
        "/containers/2/devices/1: can match the same device as /containers/0/devices/0 (container \"bookworm\"): a device "
        "belongs to one container at most; make the rules differ in usb_ids, serial, path, interface, subsystem or by_id"}},
      {"EveryErrorInDocumentOrderThenCrossContainerChecks",
       with_containers(
           debian(R"("boot": 1, "network": {"subnet": "10.1.0.0/24"})", "dup") + ", " +
               R"({"name": "dup", "distro": "debian", "release": "sid", "network": {"subnet": "10.1.0.0/16"}})",
           R"("clone_method": "zfs")"),
       {"/clone_method: unknown clone method \"zfs\" (expected one of: auto, btrfs, copy, overlay, reflink)",
        "/containers/0/boot: expected a boolean, got a number",
        "/containers/1/release: unknown release \"sid\" for debian (known: bookworm, trixie)",
        "/containers/1/name: duplicate name \"dup\" (also at /containers/0/name)",
        "/containers/1/network/subnet: 10.1.0.0/16 overlaps 10.1.0.0/24 (/containers/0/network/subnet)"}},
  };
}

class ConfigCrossChecksRejects : public testing::TestWithParam<BadConfig> {};

TEST_P(ConfigCrossChecksRejects, WithExactErrors) { expect_rejected(GetParam()); }

INSTANTIATE_TEST_SUITE_P(ConfigBad, ConfigCrossChecksRejects, testing::ValuesIn(bad_configs()),
                         bad_config_name);

}  // namespace
}  // namespace farmhand::provisioner::config_test
