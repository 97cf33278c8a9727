// make_layout and the rendered files, against golden files in
// tests/golden/layout/. Regenerate with FARMHAND_UPDATE_GOLDEN=1 and review
// the diff before committing.
#include "provisioner/layout.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <set>
#include <string>

#include "common/fs.h"
#include "common/hash.h"
#include "tests/unit/golden.h"

namespace farmhand::provisioner {
namespace {

void expect_golden(const std::string& name, const std::string& actual) {
  test::expect_golden("layout", name, actual);
}

AgentConfig config() {
  AgentConfig c;
  c.paths = {kDefaults.machines, kDefaults.state, kDefaults.cache, kDefaults.nspawn,
             kDefaults.systemd};
  c.pool = *Cidr::parse(kDefaults.pool);
  return c;
}

ReleaseRecipe recipe(const std::string& network_method = "networkd") {
  ReleaseRecipe r;
  r.distro = "debian";
  r.release = "bookworm";
  r.family = "debian";
  r.build_packages = {"make", "gcc", "ccache"};
  r.network_method = network_method;
  r.fingerprint = "fp-test-1";
  return r;
}

ContainerSpec spec() {
  ContainerSpec s;
  s.name = "bookworm-a";
  s.distro = "debian";
  s.release = "bookworm";
  s.arch = "amd64";
  s.packages = {"zlib1g-dev", "ccache"};
  return s;
}

ContainerSpec spec_with_binds() {
  ContainerSpec s = spec();
  s.private_users = true;
  s.binds = {{"/srv/ccache", "", false},
             {"/srv/src", "/home/sai/src", true},
             {"/opt/toolchain", "/opt/toolchain", true},
             {"/srv/out", "/home/sai/out", false}};
  return s;
}

const Cidr kSubnet{0xC0A85500u, 24};  // 192.168.85.0/24

TEST(RenderNspawn, WithBindsAndPrivateUsers) {
  expect_golden("bound.nspawn", render_nspawn(spec_with_binds()));
}

TEST(RenderNspawn, Plain) { expect_golden("plain.nspawn", render_nspawn(spec())); }

TEST(RenderNetwork, NetworkdFile) {
  expect_golden("50-host0.network", render_host0_networkd(kSubnet));
}

TEST(RenderNetwork, NetworkManagerKeyfile) {
  expect_golden("host0.nmconnection", render_host0_keyfile(kSubnet));
}

TEST(MakeLayout, MacvlanAndIpvlanContainersUseDhcpOnTheParentsNetwork) {
  ContainerSpec s = spec();
  s.network.mode = NetworkMode::kIpvlan;
  s.network.link = "eth1";
  ContainerLayout l = make_layout(config(), s, recipe(), Cidr{}, CloneMethod::kCopy, "h");
  expect_golden("ipvlan.nspawn", l.host_files.at(l.nspawn_file));
  expect_golden("50-lan.network", l.container_files.at("etc/systemd/network/50-lan.network"));
  EXPECT_EQ(l.container_files.count("etc/systemd/network/50-host0.network"), 0u);
  EXPECT_EQ(l.container_files.count("etc/resolv.conf"), 0u);  // from DHCP, not the gateway

  s.network.mode = NetworkMode::kMacvlan;
  l = make_layout(config(), s, recipe("networkmanager"), Cidr{}, CloneMethod::kCopy, "h");
  expect_golden("macvlan.nspawn", l.host_files.at(l.nspawn_file));
  const std::string keyfile = "etc/NetworkManager/system-connections/mv-eth1.nmconnection";
  expect_golden("mv-eth1.nmconnection", l.container_files.at(keyfile));
  EXPECT_EQ(l.file_modes.at(keyfile), 0600u);
}

TEST(RenderHosts, NamesTheContainer) {
  expect_golden("hosts", render_hosts("bookworm-a-build-host"));
}

TEST(MakeLayout, CopyCloneWithNetworkd) {
  const ContainerLayout l =
      make_layout(config(), spec(), recipe(), kSubnet, CloneMethod::kCopy, "Build-Host.example.org");
  EXPECT_EQ(l.hostname, "bookworm-a-build-host");
  EXPECT_EQ(l.subnet, kSubnet);
  EXPECT_EQ(l.network_method, "networkd");
  EXPECT_EQ(l.base.distro, "debian");
  EXPECT_EQ(l.base.release, "bookworm");
  EXPECT_EQ(l.base.arch, "amd64");
  EXPECT_EQ(l.base.recipe_fingerprint, "fp-test-1");
  EXPECT_EQ(l.base.packages, (std::vector<std::string>{"ccache", "gcc", "make", "zlib1g-dev"}));
  EXPECT_EQ(l.base.key(), "debian-bookworm-amd64-349d744ac6d6");
  EXPECT_EQ(l.machine_dir, "/var/lib/machines/bookworm-a");
  EXPECT_EQ(l.base_dir, "/var/cache/farmhand/images/debian-bookworm-amd64-349d744ac6d6");
  EXPECT_EQ(l.overlay_dir, "/var/lib/farmhand/overlay/bookworm-a");
  EXPECT_EQ(l.clone_method, CloneMethod::kCopy);
  EXPECT_EQ(l.nspawn_file, "/etc/systemd/nspawn/bookworm-a.nspawn");
  EXPECT_EQ(l.dropin_dir, "/etc/systemd/system/systemd-nspawn@bookworm-a.service.d");
  EXPECT_EQ(l.boot_link,
            "/etc/systemd/system/machines.target.wants/systemd-nspawn@bookworm-a.service");
  EXPECT_EQ(l.links, (std::map<std::string, std::string>{
                         {l.boot_link, "/lib/systemd/system/systemd-nspawn@.service"}}));

  std::set<std::string> host_paths;
  for (const auto& [p, _] : l.host_files) host_paths.insert(p);
  EXPECT_EQ(host_paths, (std::set<std::string>{
                            "/etc/systemd/nspawn/bookworm-a.nspawn",
                            "/etc/systemd/system/systemd-nspawn@bookworm-a.service.d/10-farmhand.conf"}));
  expect_golden("plain.nspawn", l.host_files.at(l.nspawn_file));
  expect_golden("dropin-copy.conf", l.host_files.at(l.dropin_dir + "/10-farmhand.conf"));

  std::set<std::string> container_paths;
  for (const auto& [p, _] : l.container_files) container_paths.insert(p);
  EXPECT_EQ(container_paths,
            (std::set<std::string>{"etc/hostname", "etc/hosts", "etc/resolv.conf",
                                   "etc/systemd/network/50-host0.network"}));
  EXPECT_EQ(l.container_files.at("etc/hostname"), "bookworm-a-build-host\n");
  expect_golden("hosts", l.container_files.at("etc/hosts"));
  EXPECT_EQ(l.container_files.at("etc/resolv.conf"),
            "# Managed by farmhand: `farmhand apply` rewrites this file.\nnameserver 192.168.85.1\n");
  expect_golden("50-host0.network", l.container_files.at("etc/systemd/network/50-host0.network"));
  EXPECT_TRUE(l.file_modes.empty());
}

TEST(MakeLayout, OverlayCloneWithNetworkManagerAndNoBoot) {
  ContainerSpec s = spec_with_binds();
  s.boot = false;
  s.build_packages = false;
  const ContainerLayout l = make_layout(config(), s, recipe("networkmanager"), kSubnet,
                                        CloneMethod::kOverlay, "build-host");
  EXPECT_EQ(l.base.packages, (std::vector<std::string>{"ccache", "zlib1g-dev"}));
  EXPECT_EQ(l.base.key(), "debian-bookworm-amd64-b7aa6cdf9ea5");
  // No boot link, but the overlay root is mounted at every boot all the same.
  EXPECT_EQ(l.links, (std::map<std::string, std::string>{
                         {"/etc/systemd/system/local-fs.target.wants/var-lib-machines-bookworm\\x2da.mount",
                          "/etc/systemd/system/var-lib-machines-bookworm\\x2da.mount"}}));
  EXPECT_EQ(overlay_mount_unit(l), "/etc/systemd/system/var-lib-machines-bookworm\\x2da.mount");

  std::set<std::string> host_paths;
  for (const auto& [p, _] : l.host_files) host_paths.insert(p);
  EXPECT_EQ(host_paths, (std::set<std::string>{
                            "/etc/systemd/nspawn/bookworm-a.nspawn",
                            "/etc/systemd/system/systemd-nspawn@bookworm-a.service.d/10-farmhand.conf",
                            "/etc/systemd/system/var-lib-machines-bookworm\\x2da.mount"}));
  expect_golden("bound.nspawn", l.host_files.at(l.nspawn_file));
  expect_golden("dropin-overlay.conf", l.host_files.at(l.dropin_dir + "/10-farmhand.conf"));
  expect_golden("overlay.mount", l.host_files.at(overlay_mount_unit(l)));
  EXPECT_EQ(render_overlay_mount(l), l.host_files.at(overlay_mount_unit(l)));

  const std::string keyfile = "etc/NetworkManager/system-connections/host0.nmconnection";
  std::set<std::string> container_paths;
  for (const auto& [p, _] : l.container_files) container_paths.insert(p);
  EXPECT_EQ(container_paths,
            (std::set<std::string>{"etc/hostname", "etc/hosts", "etc/resolv.conf", keyfile}));
  expect_golden("host0.nmconnection", l.container_files.at(keyfile));
  EXPECT_EQ(l.file_modes, (std::map<std::string, unsigned>{{keyfile, 0600u}}));
}

TEST(MakeLayout, FollowsConfiguredPaths) {
  AgentConfig c = config();
  c.paths = {"/srv/machines", "/srv/state", "/srv/cache", "/srv/nspawn", "/srv/systemd"};
  const ContainerLayout l = make_layout(c, spec(), recipe(), kSubnet, CloneMethod::kOverlay, "h");
  EXPECT_EQ(l.machine_dir, "/srv/machines/bookworm-a");
  EXPECT_EQ(l.base_dir, "/srv/cache/images/" + l.base.key());
  EXPECT_EQ(l.overlay_dir, "/srv/state/overlay/bookworm-a");
  EXPECT_EQ(l.nspawn_file, "/srv/nspawn/bookworm-a.nspawn");
  EXPECT_EQ(l.dropin_dir, "/srv/systemd/systemd-nspawn@bookworm-a.service.d");
  EXPECT_EQ(overlay_mount_unit(l), "/srv/systemd/srv-machines-bookworm\\x2da.mount");
  EXPECT_EQ(l.boot_link, "/srv/systemd/machines.target.wants/systemd-nspawn@bookworm-a.service");
  // The overlay root is mounted at every boot, whether or not the container starts.
  EXPECT_EQ(l.links.at("/srv/systemd/local-fs.target.wants/srv-machines-bookworm\\x2da.mount"),
            "/srv/systemd/srv-machines-bookworm\\x2da.mount");
}

TEST(ContainerHostname, Cases) {
  EXPECT_EQ(container_hostname("a", "Build-Host"), "a-build-host");
  EXPECT_EQ(container_hostname("a", "HOST"), "a-host");
  EXPECT_EQ(container_hostname("a", "ci01.farm.example.org"), "a-ci01");
  EXPECT_EQ(container_hostname("a", ""), "a");
  EXPECT_EQ(container_hostname("a", ".example.org"), "a");
  EXPECT_EQ(container_hostname("a", "my_host!"), "a-my-host");
  EXPECT_EQ(container_hostname("a", "host--"), "a-host");
  const std::string long_host(70, 'h');
  EXPECT_EQ(container_hostname("n", long_host), "n-" + std::string(62, 'h'));
  EXPECT_EQ(container_hostname("n", long_host).size(), 64u);
  // The cut lands right after the separator, which is then trimmed.
  const std::string name63(63, 'x');
  EXPECT_EQ(container_hostname(name63, "ab"), name63);
  EXPECT_EQ(container_hostname(std::string(62, 'x'), "Ab.c"), std::string(62, 'x') + "-a");
}

BaseSpec base() {
  return {"debian", "bookworm", "amd64", {"ccache", "gcc"}, "fp"};
}

TEST(BaseSpecKey, StableAndSensitiveToEveryField) {
  const std::string k = base().key();
  EXPECT_EQ(k, base().key());
  EXPECT_EQ(k.rfind("debian-bookworm-amd64-", 0), 0u) << k;
  const std::string hash = k.substr(std::string("debian-bookworm-amd64-").size());
  EXPECT_EQ(hash.size(), 12u);
  EXPECT_EQ(hash.find_first_not_of("0123456789abcdef"), std::string::npos) << k;
  EXPECT_EQ(hash, sha256_hex("debian\nbookworm\namd64\nfp\nccache\ngcc\n").substr(0, 12));

  std::set<std::string> keys = {k};
  auto differs = [&](BaseSpec b) { return keys.insert(b.key()).second; };
  BaseSpec b = base();
  b.distro = "ubuntu";
  EXPECT_TRUE(differs(b));
  b = base();
  b.release = "trixie";
  EXPECT_TRUE(differs(b));
  b = base();
  b.arch = "arm64";
  EXPECT_TRUE(differs(b));
  b = base();
  b.recipe_fingerprint = "fp2";
  EXPECT_TRUE(differs(b));
  b = base();
  b.packages.push_back("make");
  EXPECT_TRUE(differs(b));
  b = base();
  b.packages = {"ccache"};
  EXPECT_TRUE(differs(b));
  b = base();
  b.packages = {"ccachegcc"};
  EXPECT_TRUE(differs(b));
  b = base();
  b.packages = {};
  EXPECT_TRUE(differs(b));
}

}  // namespace
}  // namespace farmhand::provisioner
