// The pure parts of `farmhand enroll`: what agent.json becomes, the unit it
// installs and the prerequisites it installs.
#include "agent/cli/enroll.h"

#include <gtest/gtest.h>

#include "agent/service_unit.h"

namespace farmhand::agent {
namespace {

EnrollRequest request(const std::string& url, const std::string& token, bool force = false) {
  EnrollRequest r;
  r.url = url;
  r.token = token;
  r.force = force;
  return r;
}

TEST(MergeEnrollment, FreshHostGetsServerAndNoContainers) {
  auto out = merge_enrollment(std::nullopt, request("wss://farm:8443", "tok"));
  ASSERT_TRUE(out.ok()) << out.error().message();
  // The one-time token is exchanged, never written.
  EXPECT_EQ(*out, "{\n  \"containers\": [],\n  \"server\": {\n    \"url\": \"wss://farm:8443\"\n  }\n}\n");
}

TEST(MergeEnrollment, KeepsEverythingElseInTheFile) {
  const std::string existing =
      R"({"network": {"zone": "build"}, "containers": [{"name": "a", "distro": "debian", "release": "bookworm"}]})";
  auto out = merge_enrollment(existing, request("wss://farm", "tok"));
  ASSERT_TRUE(out.ok()) << out.error().message();
  EXPECT_NE(out->find("\"zone\": \"build\""), std::string::npos) << *out;
  EXPECT_NE(out->find("\"name\": \"a\""), std::string::npos) << *out;
  EXPECT_NE(out->find("\"url\": \"wss://farm\""), std::string::npos) << *out;
}

TEST(MergeEnrollment, SameServerAgainChangesNothing) {
  const std::string existing = "{\"containers\": [], \"server\": {\"url\": \"wss://farm\"}}";
  auto out = merge_enrollment(existing, request("wss://farm", "tok"));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, existing);  // byte for byte: the file is not rewritten
}

TEST(MergeEnrollment, RefusesAnotherServerWithoutForce) {
  const std::string existing = R"({"containers": [], "server": {"url": "wss://farm"}})";
  auto other = merge_enrollment(existing, request("wss://other", "tok2"));
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().message(),
            "this host is already enrolled with the server wss://farm; enrolling it with wss://other would "
            "replace that: pass --force to do so");
  EXPECT_EQ(other.error().message().find("tok2"), std::string::npos);  // never the secret

  auto forced = merge_enrollment(existing, request("wss://other", "tok2", true));
  ASSERT_TRUE(forced.ok());
  EXPECT_NE(forced->find("wss://other"), std::string::npos);
  EXPECT_EQ(forced->find("tok2"), std::string::npos);
}

TEST(MergeEnrollment, WithoutServerKeepsTheFile) {
  const std::string existing = R"({"containers": [], "server": {"url": "wss://farm"}})";
  auto out = merge_enrollment(existing, EnrollRequest{});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, existing);
}

TEST(MergeEnrollment, RefusesABrokenFile) {
  auto out = merge_enrollment(std::string("{\"containers\": [,]}"), request("wss://farm", "tok"));
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.error().message().find("the existing configuration is not valid JSON"), std::string::npos);
  EXPECT_NE(out.error().message().find("fix it or move it away"), std::string::npos);
  EXPECT_FALSE(merge_enrollment(std::string("[]"), request("wss://farm", "tok")).ok());
}

TEST(ServiceUnit, ShippedUnitIsANotifyServiceRestartedOnFailure) {
  const std::string unit = kServiceUnitTemplate;
  EXPECT_NE(unit.find("Type=notify\n"), std::string::npos);
  EXPECT_NE(unit.find("Restart=on-failure\n"), std::string::npos);
  EXPECT_NE(unit.find("WantedBy=multi-user.target\n"), std::string::npos);
  auto out = render_service_unit(unit, "/opt/farmhand/farmhand");
  ASSERT_TRUE(out.ok());
  EXPECT_NE(out->find("\nExecStart=/opt/farmhand/farmhand daemon\n"), std::string::npos) << *out;
  EXPECT_EQ(out->find("/usr/local/bin/farmhand daemon"), std::string::npos);
}

TEST(ServiceUnit, RefusesAPathSystemdWouldNeedQuoted) {
  for (const char* bad : {"/opt/my farmhand/farmhand", "relative/farmhand", "/opt/$HOME/farmhand", ""}) {
    EXPECT_FALSE(render_service_unit(kServiceUnitTemplate, bad).ok()) << bad;
  }
}

TEST(Prerequisites, FollowTheNetworkBackendAndFirewall) {
  provisioner::NetworkChoice nm;
  nm.backend = provisioner::NetworkBackend::kNetworkManager;
  nm.firewall = provisioner::FirewallBackend::kFirewalld;
  std::vector<std::string> programs;
  for (const auto& p : prerequisites(nm)) programs.push_back(p.program);
  EXPECT_EQ(programs, (std::vector<std::string>{"systemd-nspawn", "machinectl", "debootstrap"}));

  provisioner::NetworkChoice plain;
  plain.backend = provisioner::NetworkBackend::kPlain;
  plain.firewall = provisioner::FirewallBackend::kNftables;
  programs.clear();
  for (const auto& p : prerequisites(plain)) programs.push_back(p.program);
  EXPECT_EQ(programs,
            (std::vector<std::string>{"systemd-nspawn", "machinectl", "debootstrap", "ip", "resolvectl", "nft"}));

  // Without systemd as PID 1, resolved could not run: it is not installed.
  programs.clear();
  for (const auto& p : prerequisites(plain, false)) programs.push_back(p.program);
  EXPECT_EQ(programs, (std::vector<std::string>{"systemd-nspawn", "machinectl", "debootstrap", "ip", "nft"}));
}

TEST(Prerequisites, InstallsOnlyWhatIsMissingOncePerPackage) {
  provisioner::NetworkChoice plain;
  plain.backend = provisioner::NetworkBackend::kPlain;
  plain.firewall = provisioner::FirewallBackend::kNftables;
  auto missing = missing_prerequisites(prerequisites(plain), [](const std::string& program) {
    return program == "debootstrap" || program == "resolvectl";
  });
  EXPECT_EQ(install_command(PackageManager::kApt, missing),
            (std::vector<std::string>{"apt-get", "install", "-y", "-q", "--no-install-recommends",
                                      "systemd-container", "iproute2", "nftables"}));
  EXPECT_EQ(install_command(PackageManager::kDnf, missing),
            (std::vector<std::string>{"dnf", "install", "-y", "-q", "systemd-container", "iproute", "nftables"}));
  EXPECT_TRUE(install_command(PackageManager::kNone, missing).empty());
}

}  // namespace
}  // namespace farmhand::agent
