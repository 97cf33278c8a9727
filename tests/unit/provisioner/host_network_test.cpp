// Choosing the host network backend and firewall from the host's files,
// the files rendered for each, and planning their changes. Rendered files
// are compared with golden files in tests/golden/host-network/.
#include "provisioner/host_network.h"

#include <gtest/gtest.h>

#include "common/fs.h"
#include "provisioner/layout.h"
#include "tests/unit/golden.h"
#include "tests/unit/temp_dir.h"

namespace farmhand::provisioner {
namespace {

void expect_golden(const std::string& name, const std::string& actual) {
  test::expect_golden("host-network", name, actual);
}

AgentConfig config(NetworkBackend backend = NetworkBackend::kAuto,
                   FirewallBackend firewall = FirewallBackend::kAuto) {
  AgentConfig c;
  c.network_backend = backend;
  c.firewall = firewall;
  c.pool = *Cidr::parse(kDefaults.pool);
  return c;
}

HostFacts nm_host() {
  HostFacts f;
  f.networkmanager = true;
  f.firewalld = true;
  f.nft = true;
  return f;
}

const std::vector<VethContainer> kContainers = {{"bookworm-a", *Cidr::parse("192.168.80.0/24")},
                                                {"trixie-b", *Cidr::parse("192.168.81.0/24")}};

TEST(ChooseNetwork, NothingToConfigureWithoutVethContainers) {
  NetworkChoice c = choose_network(config(), nm_host(), false);
  EXPECT_FALSE(c.configure);
  EXPECT_TRUE(c.conflicts.empty());
}

TEST(ChooseNetwork, AutoPrefersNetworkManagerThenNetworkdThenPlain) {
  EXPECT_EQ(choose_network(config(), nm_host(), true).backend, NetworkBackend::kNetworkManager);
  EXPECT_EQ(choose_network(config(), nm_host(), true).firewall, FirewallBackend::kFirewalld);
  HostFacts nd;
  nd.networkd = true;
  nd.nft = true;
  nd.networkd_ve_claim = "/lib/systemd/network/80-container-ve.network";  // sorts after farmhand's
  NetworkChoice c = choose_network(config(), nd, true);
  EXPECT_EQ(c.backend, NetworkBackend::kNetworkd);
  EXPECT_EQ(c.firewall, FirewallBackend::kNftables);
  EXPECT_TRUE(c.conflicts.empty());
  c = choose_network(config(), HostFacts{}, true);
  EXPECT_EQ(c.backend, NetworkBackend::kPlain);
  EXPECT_EQ(c.firewall, FirewallBackend::kNone);
}

TEST(ChooseNetwork, RefusesNetworkManagerAndNetworkdBothClaimingVeth) {
  HostFacts f = nm_host();
  f.networkd = true;
  f.networkd_ve_claim = "/lib/systemd/network/80-container-ve.network";
  for (auto backend : {NetworkBackend::kAuto, NetworkBackend::kNetworkManager}) {
    NetworkChoice c = choose_network(config(backend), f, true);
    ASSERT_EQ(c.conflicts.size(), 1u);
    EXPECT_EQ(c.conflicts[0],
              "NetworkManager and systemd-networkd would both manage the containers' ve-* interfaces: "
              "NetworkManager.service and systemd-networkd.service are both enabled, and networkd matches ve-* "
              "through /lib/systemd/network/80-container-ve.network. Disable one of them (systemctl disable "
              "--now systemd-networkd), or mask that file (ln -s /dev/null "
              "/etc/systemd/network/80-container-ve.network)");
  }
  // Masked (no claim): NetworkManager is chosen.
  f.networkd_ve_claim.clear();
  NetworkChoice c = choose_network(config(), f, true);
  EXPECT_TRUE(c.conflicts.empty());
  EXPECT_EQ(c.backend, NetworkBackend::kNetworkManager);
}

TEST(ChooseNetwork, RefusesAnExplicitBackendTheHostLacks) {
  NetworkChoice c = choose_network(config(NetworkBackend::kNetworkd, FirewallBackend::kNftables), HostFacts{}, true);
  ASSERT_EQ(c.conflicts.size(), 2u);
  EXPECT_EQ(c.conflicts[0], "network.backend is \"networkd\", but systemd-networkd.service is not enabled on this host");
  EXPECT_EQ(c.conflicts[1], "network.firewall is \"nftables\", but the nft tool is not installed");
  c = choose_network(config(NetworkBackend::kNetworkManager, FirewallBackend::kFirewalld), HostFacts{}, true);
  ASSERT_EQ(c.conflicts.size(), 2u);
  EXPECT_EQ(c.conflicts[1], "network.firewall is \"firewalld\", but firewalld.service is not enabled on this host");
}

TEST(ObserveHostFacts, ReadsEnabledUnitsAndNetworkdClaimsFromFiles) {
  test::TempDir dir;
  const HostRoot root(dir.path());
  ASSERT_TRUE(make_dirs(root.map("/etc/systemd/system/multi-user.target.wants")).ok());
  fs::create_symlink("/lib/systemd/system/NetworkManager.service",
                     root.map("/etc/systemd/system/multi-user.target.wants/NetworkManager.service"));
  fs::create_symlink("/lib/systemd/system/systemd-networkd.service",
                     root.map("/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"));
  ASSERT_TRUE(write_file_atomic(root.map("/lib/systemd/network/80-container-ve.network"),
                                "[Match]\nName=ve-*\nDriver=veth\n\n[Network]\nDHCPServer=yes\n")
                  .ok());
  ASSERT_TRUE(write_file_atomic(root.map("/lib/systemd/network/80-container-host0.network"),
                                "[Match]\nVirtualization=container\nName=host0\n")
                  .ok());
  HostFacts f = observe_host_facts(root);
  EXPECT_TRUE(f.networkmanager);
  EXPECT_TRUE(f.networkd);
  EXPECT_FALSE(f.firewalld);
  EXPECT_FALSE(f.nft);
  EXPECT_EQ(f.networkd_ve_claim, "/lib/systemd/network/80-container-ve.network");

  // Masking the file in /etc removes the claim; masking the unit disables it.
  fs::create_directories(root.map("/etc/systemd/network"));
  fs::create_symlink("/dev/null", root.map("/etc/systemd/network/80-container-ve.network"));
  fs::create_symlink("/dev/null", root.map("/etc/systemd/system/systemd-networkd.service"));
  f = observe_host_facts(root);
  EXPECT_EQ(f.networkd_ve_claim, "");
  EXPECT_FALSE(f.networkd);
}

TEST(HostNetwork, NetworkManagerWithFirewalld) {
  NetworkChoice c = choose_network(config(), nm_host(), true);
  HostNetworkLayout l = make_host_network(c, *Cidr::parse(kDefaults.pool), kContainers);
  std::vector<std::string> paths;
  for (const auto& [p, content] : l.files) paths.push_back(p);
  EXPECT_EQ(paths, (std::vector<std::string>{
                       "/etc/NetworkManager/conf.d/90-farmhand.conf",
                       "/etc/NetworkManager/system-connections/nm-ve-bookworm-a.nmconnection",
                       "/etc/NetworkManager/system-connections/nm-ve-trixie-b.nmconnection",
                       "/etc/firewalld/policies/vm-egress.xml",
                       "/etc/firewalld/zones/vm.xml",
                   }));
  EXPECT_EQ(l.modes.at("/etc/NetworkManager/system-connections/nm-ve-bookworm-a.nmconnection"), 0600u);
  expect_golden("nm-conf.conf", l.files.at("/etc/NetworkManager/conf.d/90-farmhand.conf"));
  expect_golden("nm-ve-bookworm-a.nmconnection",
                l.files.at("/etc/NetworkManager/system-connections/nm-ve-bookworm-a.nmconnection"));
  expect_golden("zone-vm-nm.xml", l.files.at("/etc/firewalld/zones/vm.xml"));
  expect_golden("policy-vm-egress.xml", l.files.at("/etc/firewalld/policies/vm-egress.xml"));
}

TEST(HostNetwork, ConnectionUuidIsStablePerName) {
  auto uuid = [](const std::string& text) { return text.substr(text.find("uuid=") + 5, 36); };
  std::string a = render_nm_connection("a", *Cidr::parse("10.0.0.0/24"), "vm");
  std::string a2 = render_nm_connection("a", *Cidr::parse("10.0.1.0/24"), "vm");
  std::string b = render_nm_connection("b", *Cidr::parse("10.0.0.0/24"), "vm");
  EXPECT_EQ(uuid(a), uuid(a2));
  EXPECT_NE(uuid(a), uuid(b));
  EXPECT_EQ(uuid(a)[14], '4');
}

TEST(HostNetwork, NetworkdWithNftables) {
  HostFacts f;
  f.networkd = true;
  f.nft = true;
  NetworkChoice c = choose_network(config(), f, true);
  HostNetworkLayout l = make_host_network(c, *Cidr::parse(kDefaults.pool), kContainers);
  std::vector<std::string> paths;
  for (const auto& [p, content] : l.files) paths.push_back(p);
  EXPECT_EQ(paths, (std::vector<std::string>{
                       "/etc/farmhand/firewall.nft",
                       "/etc/systemd/network/10-farmhand-ve-bookworm-a.network",
                       "/etc/systemd/network/10-farmhand-ve-trixie-b.network",
                       "/etc/systemd/resolved.conf.d/90-farmhand.conf",
                   }));
  expect_golden("10-farmhand-ve-bookworm-a.network",
                l.files.at("/etc/systemd/network/10-farmhand-ve-bookworm-a.network"));
  expect_golden("resolved.conf", l.files.at("/etc/systemd/resolved.conf.d/90-farmhand.conf"));
  expect_golden("firewall.nft", l.files.at("/etc/farmhand/firewall.nft"));
}

TEST(HostNetwork, NetworkdMasqueradesItselfWithoutAFirewall) {
  EXPECT_NE(render_host_networkd("a", *Cidr::parse("10.0.0.0/24"), true).find("\nIPMasquerade=ipv4\n"),
            std::string::npos);
  EXPECT_EQ(render_host_networkd("a", *Cidr::parse("10.0.0.0/24"), false).find("IPMasquerade"), std::string::npos);
}

TEST(HostNetwork, PlainWithFirewalldBindsInterfacesInTheZone) {
  HostFacts f;
  f.firewalld = true;
  NetworkChoice c = choose_network(config(), f, true);
  EXPECT_EQ(c.backend, NetworkBackend::kPlain);
  HostNetworkLayout l = make_host_network(c, *Cidr::parse(kDefaults.pool), kContainers);
  expect_golden("zone-vm-plain.xml", l.files.at("/etc/firewalld/zones/vm.xml"));
  DropinNetworkLines d = dropin_network_lines(c, "bookworm-a", *Cidr::parse("192.168.80.0/24"));
  EXPECT_EQ(d.after, (std::vector<std::string>{"systemd-resolved.service", "firewalld.service"}));
  EXPECT_EQ(d.exec_start_post,
            (std::vector<std::vector<std::string>>{
                {"/sbin/ip", "address", "replace", "192.168.80.1/24", "dev", "ve-bookworm-a"},
                {"/sbin/ip", "link", "set", "ve-bookworm-a", "up"}}));
}

TEST(HostNetwork, DropinOrdersNetworkManagerContainersAfterIt) {
  NetworkChoice c = choose_network(config(), nm_host(), true);
  AgentConfig cfg = config();
  cfg.paths = {kDefaults.machines, kDefaults.state, kDefaults.cache, kDefaults.nspawn, kDefaults.systemd};
  ContainerSpec s;
  s.name = "bookworm-a";
  s.distro = "debian";
  s.release = "bookworm";
  s.arch = "amd64";
  ReleaseRecipe r;
  r.network_method = "networkd";
  ContainerLayout l = make_layout(cfg, s, r, *Cidr::parse("192.168.80.0/24"), CloneMethod::kCopy, "h", c);
  expect_golden("dropin-nm-firewalld.conf",
                l.host_files.at("/etc/systemd/system/systemd-nspawn@bookworm-a.service.d/10-farmhand.conf"));
}

TEST(PlanHostNetwork, WritesWhatDiffersAndRemovesManagedFilesNoLongerWanted) {
  HostNetworkLayout want;
  want.files = {{"/etc/a", "A"}, {"/etc/b", "B"}, {"/etc/c", "C"}};
  ObservedHostNetwork have;
  have.files = {{"/etc/a", "A"}, {"/etc/b", "old"}, {"/etc/c", std::nullopt}};
  have.managed = {"/etc/a", "/etc/NetworkManager/system-connections/nm-ve-gone.nmconnection"};
  HostNetworkChange c = plan_host_network(want, have);
  EXPECT_EQ(c.write, (std::vector<std::string>{"/etc/b", "/etc/c"}));
  EXPECT_EQ(c.remove, (std::vector<std::string>{"/etc/NetworkManager/system-connections/nm-ve-gone.nmconnection"}));
  EXPECT_EQ(c.reasons, (std::vector<std::string>{
                           "/etc/b differs", "/etc/c is missing",
                           "/etc/NetworkManager/system-connections/nm-ve-gone.nmconnection is no longer needed"}));
  have.files["/etc/b"] = "B";
  have.files["/etc/c"] = "C";
  have.managed = {"/etc/a"};
  EXPECT_FALSE(plan_host_network(want, have).has_work());
}

}  // namespace
}  // namespace farmhand::provisioner
