// /network (the host side: backend, firewall, zone, pool, subnet_prefix) and
// a container's "network" (provisioner/config/network.cpp).
#include "tests/unit/provisioner/config/config_fixture.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace farmhand::provisioner::config_test {
namespace {

std::vector<BadConfig> bad_configs() {
  return {
      {"SubnetWithHostBits",
       with_containers(debian(R"("network": {"subnet": "192.168.80.1/24"})")),
       {"/containers/0/network/subnet: \"192.168.80.1/24\" is not a subnet in CIDR form, like "
        "\"192.168.85.0/24\""}},
      {"SubnetSyntax",
       with_containers(debian(R"("network": {"subnet": "192.168.80.0"})")),
       {"/containers/0/network/subnet: \"192.168.80.0\" is not a subnet in CIDR form, like "
        "\"192.168.85.0/24\""}},
      {"SubnetTooSmall",
       with_containers(debian(R"("network": {"subnet": "192.168.85.0/29"})")),
       {"/containers/0/network/subnet: 192.168.85.0/29 is too small for the host (.1) and the container "
        "(.9): "
        "use a prefix of at most 28"}},
      {"NetworkOfContainer",
       with_containers(debian(R"("network": "192.168.85.0/24")") + ", " +
                       debian(R"("network": {"address": "192.168.85.9"})", "b")),
       {"/containers/0/network: expected an object, got a string",
        "/containers/1/network/address: unknown key (expected one of: link, mode, subnet)"}},
      {"ContainerNetworkModes",
       with_containers(debian(R"("network": {"mode": "bridge"})") + ", " +
                       debian(R"("network": {"mode": "macvlan"})", "b") + ", " +
                       debian(R"("network": {"mode": "ipvlan", "link": "eth0", "subnet": "10.1.0.0/24"})", "c") +
                       ", " + debian(R"("network": {"link": "eth0"})", "d") + ", " +
                       debian(R"("network": {"mode": "macvlan", "link": "a/b"})", "e") + ", " +
                       debian(R"("network": {"mode": "macvlan", "link": "averyveryverylongname"})", "f")),
       {"/containers/0/network/mode: unknown network mode \"bridge\" (expected one of: ipvlan, macvlan, veth)",
        "/containers/1/network/link: required key is missing: a macvlan network needs the host interface it "
        "attaches to, like \"eth0\"",
        "/containers/2/network/subnet: only a veth network has a subnet: an ipvlan container gets its address "
        "from the parent link's network (DHCP)",
        "/containers/3/network/link: only a macvlan or ipvlan network has a parent link",
        "/containers/4/network/link: \"a/b\" is not a valid interface name: 1 to 15 characters, no '/', ':', "
        "whitespace or control characters",
        "/containers/5/network/link: \"averyveryverylongname\" is not a valid interface name: 1 to 15 "
        "characters, no '/', ':', whitespace or control characters"}},
      {"HostNetworkSettings",
       R"({"network": {"backend": "wicked", "firewall": "iptables", "zone": "my zone"}})",
       {"/network/backend: unknown network backend \"wicked\" (expected one of: auto, networkmanager, networkd, plain)",
        "/network/firewall: unknown firewall \"iptables\" (expected one of: auto, firewalld, nftables, none)",
        "/network/zone: \"my zone\" is not a valid firewalld zone name: use 1 to 17 letters, digits, '-' or '_'"}},
      {"PoolInvalid",
       R"({"network": {"pool": "10.0.0.0/33"}})",
       {"/network/pool: \"10.0.0.0/33\" is not a subnet in CIDR form, like \"192.168.80.0/20\""}},
      {"PoolTooSmall",
       R"({"network": {"pool": "10.0.0.0/29"}})",
       {"/network/pool: 10.0.0.0/29 is too small for the host (.1) and the container (.9): use a prefix of "
        "at most 28"}},
      {"SubnetPrefixBelowThePool",
       R"({"network": {"subnet_prefix": 16}})",
       {"/network/subnet_prefix: 16 is out of range: it must be between 20 (the prefix of the pool, "
        "192.168.80.0/20) and 28"}},
      {"SubnetPrefixTooLong",
       R"({"network": {"subnet_prefix": 30, "pool": "10.0.0.0/8"}})",
       {"/network/subnet_prefix: 30 is out of range: it must be between 8 (the prefix of the pool, "
        "10.0.0.0/8) "
        "and 28"}},
      {"SubnetPrefixWithInvalidPool",
       R"({"network": {"subnet_prefix": -1, "pool": 5}})",
       {"/network/subnet_prefix: -1 is out of range: it must be between 1 and 28",
        "/network/pool: expected a string, got a number"}},
      {"SubnetPrefixNotAnInteger",
       R"({"network": {"subnet_prefix": 24.5, "mtu": 1500}})",
       {"/network/subnet_prefix: expected an integer, got a number",
        "/network/mtu: unknown key (expected one of: backend, firewall, pool, subnet_prefix, zone)"}},
  };
}

class ConfigNetworkRejects : public testing::TestWithParam<BadConfig> {};

TEST_P(ConfigNetworkRejects, WithExactErrors) { expect_rejected(GetParam()); }

INSTANTIATE_TEST_SUITE_P(ConfigBad, ConfigNetworkRejects, testing::ValuesIn(bad_configs()),
                         bad_config_name);

}  // namespace
}  // namespace farmhand::provisioner::config_test
