// The distro recipes are data; these tests pin down the exact commands each
// release yields, and the loader's validation messages.
#include "provisioner/recipe.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "nspawn-templates/embedded.h"

namespace farmhand::provisioner {
namespace {

using Argv = std::vector<std::string>;
using nlohmann::json;

const std::string kRoot = "/var/lib/machines/.base";
const std::string kWork = "/var/tmp/farmhand-work";

RecipeBook builtin_book() {
  auto book = RecipeBook::builtin();
  EXPECT_TRUE(book.ok()) << book.error().message();
  return std::move(book).value();
}

ReleaseRecipe must_resolve(const RecipeBook& book, const std::string& distro,
                           const std::string& release) {
  auto recipe = book.resolve(distro, release);
  EXPECT_TRUE(recipe.ok()) << recipe.error().message();
  return std::move(recipe).value();
}

Argv must_expand(const Argv& argv, const ExpandVars& vars) {
  auto out = expand_argv(argv, vars);
  EXPECT_TRUE(out.ok()) << out.error().message();
  return out.ok() ? out.value() : Argv{};
}

TEST(RecipeBook, BuiltinLoadsEveryDistroAndRelease) {
  RecipeBook book = builtin_book();
  EXPECT_EQ(book.distros(), (Argv{"centos", "debian", "fedora", "gentoo", "ubuntu"}));
  EXPECT_EQ(book.releases("debian"), (Argv{"bookworm", "bullseye", "sid", "trixie"}));
  EXPECT_EQ(book.releases("ubuntu"), (Argv{"focal", "jammy", "noble"}));
  EXPECT_EQ(book.releases("fedora"), (Argv{"39", "40", "41", "42"}));
  EXPECT_EQ(book.releases("centos"), (Argv{"7", "8", "stream9"}));
  EXPECT_EQ(book.releases("gentoo"), (Argv{"systemd"}));
  EXPECT_TRUE(book.has_distro("debian"));
  EXPECT_FALSE(book.has_distro("arch"));
  EXPECT_TRUE(book.releases("arch").empty());

  for (const auto& distro : book.distros()) {
    for (const auto& release : book.releases(distro)) {
      SCOPED_TRACE(distro + " " + release);
      ReleaseRecipe r = must_resolve(book, distro, release);
      EXPECT_EQ(r.distro, distro);
      EXPECT_EQ(r.release, release);
      EXPECT_EQ(r.recipe_version, 1);
      EXPECT_TRUE(r.arches.count("amd64"));
      EXPECT_FALSE(r.boot_packages.empty());
      EXPECT_FALSE(r.build_packages.empty());
      EXPECT_FALSE(r.bootstrap.empty());
      EXPECT_EQ(r.create_user.where, Where::kContainer);
      EXPECT_EQ(r.install.where, Where::kContainer);
      EXPECT_EQ(r.fingerprint.size(), 64u);
      const std::regex pattern(r.package_name_pattern);
      for (const auto& name : r.build_packages)
        EXPECT_TRUE(std::regex_match(name, pattern)) << name;
    }
  }
}

TEST(RecipeBook, ResolveUnknownNamesTheKnownOnes) {
  RecipeBook book = builtin_book();
  auto distro = book.resolve("arch", "latest");
  ASSERT_FALSE(distro.ok());
  EXPECT_EQ(distro.error().message(),
            "unknown distro \"arch\" (known: \"centos\", \"debian\", \"fedora\", \"gentoo\", "
            "\"ubuntu\")");
  auto release = book.resolve("debian", "buster");
  ASSERT_FALSE(release.ok());
  EXPECT_EQ(release.error().message(),
            "unknown release \"buster\" of debian (known: \"bookworm\", \"bullseye\", \"sid\", "
            "\"trixie\")");
}

struct Expected {
  Where where;
  Argv argv;
  std::vector<std::string> env = {};
};

struct CommandCase {
  std::string distro;
  std::string release;
  std::string arch;    // farmhand's name
  std::string mirror;  // "" = not configured
  Argv packages;
  std::vector<Expected> bootstrap;
  std::vector<Expected> prepare;
  Expected install;
  std::vector<Expected> cleanup;
  Argv user;
  std::string group;
  std::string network;
  Argv enable;
};

const Argv kDebianUser = {"useradd", "-u883", "-gnogroup", "-d/home/sai", "-m", "-r", "sai"};
const Argv kRedHatUser = {"useradd", "-u883", "-gnobody", "-d/home/sai", "-m", "-r", "sai"};
const Argv kNetworkd = {"systemd-networkd", "systemd-resolved"};
const Expected kAptUpdate = {
    Where::kContainer, {"apt-get", "update"}, {"DEBIAN_FRONTEND=noninteractive"}};
const Expected kAptInstall = {
    Where::kContainer,
    {"apt-get", "install", "-y", "--no-install-recommends", "cmake", "git"},
    {"DEBIAN_FRONTEND=noninteractive"}};
const Expected kAptClean = {Where::kContainer, {"apt-get", "clean"}};
const Expected kDnfInstall = {
    Where::kContainer,
    {"dnf", "-y", "--setopt=install_weak_deps=False", "install", "cmake", "git"}};
const Expected kDnfClean = {Where::kContainer, {"dnf", "clean", "all"}};

CommandCase debian_case(const std::string& release, const std::string& mirror,
                        std::vector<Expected> bootstrap) {
  return {
      "debian",     release,     "amd64",     mirror,      {"cmake", "git"}, std::move(bootstrap),
      {kAptUpdate}, kAptInstall, {kAptClean}, kDebianUser, "nogroup",        "networkd",
      kNetworkd};
}

CommandCase ubuntu_case(const std::string& release, std::vector<Expected> bootstrap) {
  return {
      "ubuntu",     release,     "amd64",     "",          {"cmake", "git"}, std::move(bootstrap),
      {kAptUpdate}, kAptInstall, {kAptClean}, kDebianUser, "nogroup",        "networkd",
      kNetworkd};
}

CommandCase fedora_case(const std::string& release, const std::string& arch,
                        std::vector<Expected> bootstrap) {
  return {"fedora",
          release,
          arch,
          "file:///srv/mirror/fedora",
          {"cmake", "git"},
          std::move(bootstrap),
          {},
          kDnfInstall,
          {kDnfClean},
          kRedHatUser,
          "nobody",
          "networkd",
          kNetworkd};
}

Argv fedora_bootstrap(const std::string& release, const std::string& arch) {
  return {"dnf",
          "--installroot=/var/lib/machines/.base",
          "--releasever=" + release,
          "--forcearch=" + arch,
          "--repofrompath=farmhand,file:///srv/mirror/fedora/releases/" + release + "/Everything/" +
              arch + "/os/",
          "--repo=farmhand",
          "--setopt=farmhand.gpgcheck=1",
          "--setopt=farmhand.gpgkey=file:///usr/share/distribution-gpg-keys/fedora/"
          "RPM-GPG-KEY-fedora-" +
              release + "-primary",
          "--setopt=install_weak_deps=False",
          "-y",
          "install",
          "systemd",
          "systemd-networkd",
          "systemd-resolved",
          "dbus",
          "iproute",
          "passwd",
          "shadow-utils",
          "dnf",
          "fedora-release"};
}

std::vector<CommandCase> command_cases() {
  const std::string gpg = "file:///usr/share/distribution-gpg-keys/centos/";
  const std::string el8_key = "file:///etc/pki/rpm-gpg/RPM-GPG-KEY-centosofficial";
  return {
      debian_case("bullseye", "",
                  {{Where::kHost,
                    {"debootstrap", "--variant=buildd", "--arch=amd64",
                     "--include=systemd,systemd-sysv,dbus,iproute2", "bullseye",
                     "/var/lib/machines/.base"}}}),
      debian_case("bookworm", "file:///srv/mirror/debian",
                  {{Where::kHost,
                    {"debootstrap", "--variant=buildd", "--arch=amd64",
                     "--include=systemd,systemd-sysv,systemd-resolved,dbus,iproute2", "bookworm",
                     "/var/lib/machines/.base", "file:///srv/mirror/debian"}}}),
      debian_case("trixie", "",
                  {{Where::kHost,
                    {"debootstrap", "--variant=buildd", "--arch=amd64",
                     "--include=systemd,systemd-sysv,systemd-resolved,dbus,iproute2", "trixie",
                     "/var/lib/machines/.base"}}}),
      debian_case("sid", "http://127.0.0.1:3142/debian",
                  {{Where::kHost,
                    {"debootstrap", "--variant=buildd", "--arch=amd64",
                     "--include=systemd,systemd-sysv,systemd-resolved,dbus,iproute2", "sid",
                     "/var/lib/machines/.base", "http://127.0.0.1:3142/debian"}}}),
      ubuntu_case(
          "focal",
          {{Where::kHost,
            {"debootstrap", "--variant=buildd", "--arch=amd64", "--components=main,universe",
             "--include=systemd,systemd-sysv,dbus,iproute2", "focal", "/var/lib/machines/.base"}}}),
      ubuntu_case(
          "jammy",
          {{Where::kHost,
            {"debootstrap", "--variant=buildd", "--arch=amd64", "--components=main,universe",
             "--include=systemd,systemd-sysv,dbus,iproute2", "jammy", "/var/lib/machines/.base"}}}),
      ubuntu_case("noble", {{Where::kHost,
                             {"debootstrap", "--variant=buildd", "--arch=amd64",
                              "--components=main,universe",
                              "--include=systemd,systemd-sysv,systemd-resolved,dbus,iproute2",
                              "noble", "/var/lib/machines/.base"}}}),
      fedora_case("39", "amd64", {{Where::kHost, fedora_bootstrap("39", "x86_64")}}),
      fedora_case("40", "amd64", {{Where::kHost, fedora_bootstrap("40", "x86_64")}}),
      fedora_case("41", "arm64", {{Where::kHost, fedora_bootstrap("41", "aarch64")}}),
      fedora_case("42", "ppc64el", {{Where::kHost, fedora_bootstrap("42", "ppc64le")}}),
      {"centos",
       "7",
       "amd64",
       "https://vault.example/7.9.2009",
       {"cmake", "git"},
       {{Where::kHost,
         {"dnf",
          "--installroot=/var/lib/machines/.base",
          "--releasever=7",
          "--forcearch=x86_64",
          "--repofrompath=farmhand-os,https://vault.example/7.9.2009/os/x86_64/",
          "--repofrompath=farmhand-updates,https://vault.example/7.9.2009/updates/x86_64/",
          "--repo=farmhand-os",
          "--repo=farmhand-updates",
          "--setopt=farmhand-os.gpgcheck=1",
          "--setopt=farmhand-os.gpgkey=" + gpg + "RPM-GPG-KEY-CentOS-7",
          "--setopt=farmhand-updates.gpgcheck=1",
          "--setopt=farmhand-updates.gpgkey=" + gpg + "RPM-GPG-KEY-CentOS-7",
          "-y",
          "install",
          "systemd",
          "dbus",
          "iproute",
          "passwd",
          "shadow-utils",
          "yum",
          "centos-release",
          "NetworkManager"}}},
       {},
       {Where::kContainer, {"yum", "-y", "install", "cmake", "git"}},
       {{Where::kContainer, {"yum", "clean", "all"}}},
       kRedHatUser,
       "nobody",
       "networkmanager",
       {"NetworkManager"}},
      {"centos",
       "8",
       "arm64",
       "https://vault.example/8.5.2111",
       {"cmake", "git"},
       {{Where::kHost,
         {"dnf",
          "--installroot=/var/lib/machines/.base",
          "--releasever=8",
          "--forcearch=aarch64",
          "--repofrompath=farmhand-baseos,https://vault.example/8.5.2111/BaseOS/aarch64/os/",
          "--repofrompath=farmhand-appstream,https://vault.example/8.5.2111/AppStream/aarch64/os/",
          "--repo=farmhand-baseos",
          "--repo=farmhand-appstream",
          "--setopt=farmhand-baseos.gpgcheck=1",
          "--setopt=farmhand-baseos.gpgkey=" + gpg + "RPM-GPG-KEY-CentOS-Official",
          "--setopt=farmhand-appstream.gpgcheck=1",
          "--setopt=farmhand-appstream.gpgkey=" + gpg + "RPM-GPG-KEY-CentOS-Official",
          "--setopt=install_weak_deps=False",
          "-y",
          "install",
          "systemd",
          "dbus",
          "iproute",
          "passwd",
          "shadow-utils",
          "dnf",
          "centos-linux-release",
          "NetworkManager"}}},
       {},
       {Where::kContainer,
        {"dnf", "-y",
         "--repofrompath=farmhand-baseos,https://vault.example/8.5.2111/BaseOS/aarch64/os/",
         "--repofrompath=farmhand-appstream,https://vault.example/8.5.2111/AppStream/aarch64/os/",
         "--repofrompath=farmhand-powertools,https://vault.example/8.5.2111/PowerTools/aarch64/os/",
         "--repo=farmhand-baseos", "--repo=farmhand-appstream", "--repo=farmhand-powertools",
         "--setopt=farmhand-baseos.gpgcheck=1", "--setopt=farmhand-baseos.gpgkey=" + el8_key,
         "--setopt=farmhand-appstream.gpgcheck=1", "--setopt=farmhand-appstream.gpgkey=" + el8_key,
         "--setopt=farmhand-powertools.gpgcheck=1",
         "--setopt=farmhand-powertools.gpgkey=" + el8_key, "--setopt=install_weak_deps=False",
         "install", "cmake", "git"}},
       {kDnfClean},
       kRedHatUser,
       "nobody",
       "networkmanager",
       {"NetworkManager"}},
      {"centos",
       "stream9",
       "s390x",
       "https://stream.example/9-stream",
       {"cmake", "git"},
       {{Where::kHost,
         {"dnf",
          "--installroot=/var/lib/machines/.base",
          "--releasever=9",
          "--forcearch=s390x",
          "--repofrompath=farmhand-baseos,https://stream.example/9-stream/BaseOS/s390x/os/",
          "--repofrompath=farmhand-appstream,https://stream.example/9-stream/AppStream/s390x/os/",
          "--repo=farmhand-baseos",
          "--repo=farmhand-appstream",
          "--setopt=farmhand-baseos.gpgcheck=1",
          "--setopt=farmhand-baseos.gpgkey=" + gpg + "RPM-GPG-KEY-CentOS-Official-SHA256",
          "--setopt=farmhand-appstream.gpgcheck=1",
          "--setopt=farmhand-appstream.gpgkey=" + gpg + "RPM-GPG-KEY-CentOS-Official-SHA256",
          "--setopt=install_weak_deps=False",
          "-y",
          "install",
          "systemd",
          "dbus",
          "iproute",
          "passwd",
          "shadow-utils",
          "dnf",
          "centos-stream-release",
          "NetworkManager"}}},
       {},
       {Where::kContainer,
        {"dnf", "-y", "--enablerepo=crb", "--setopt=install_weak_deps=False", "install", "cmake",
         "git"}},
       {kDnfClean},
       kRedHatUser,
       "nobody",
       "networkmanager",
       {"NetworkManager"}},
      {"gentoo",
       "systemd",
       "amd64",
       "https://distfiles.example/stage3-amd64-systemd.tar.xz",
       {"dev-vcs/git"},
       {{Where::kHost,
         {"curl", "-fL", "-o", "/var/tmp/farmhand-work/stage3.tar.xz",
          "https://distfiles.example/stage3-amd64-systemd.tar.xz"}},
        {Where::kHost,
         {"tar", "-xpf", "/var/tmp/farmhand-work/stage3.tar.xz", "--xattrs-include=*.*",
          "--numeric-owner", "-C", "/var/lib/machines/.base"}}},
       {{Where::kContainer, {"emerge-webrsync"}},
        {Where::kContainer,
         {"emerge", "--quiet-build=y", "--noreplace", "sys-apps/systemd", "sys-apps/dbus",
          "sys-apps/iproute2"}}},
       {Where::kContainer, {"emerge", "--quiet-build=y", "--noreplace", "dev-vcs/git"}},
       {},
       kRedHatUser,
       "nobody",
       "networkd",
       kNetworkd},
  };
}

void expect_commands(const std::vector<RecipeCommand>& actual,
                     const std::vector<Expected>& expected, const ExpandVars& vars,
                     const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (size_t i = 0; i < actual.size(); ++i) {
    SCOPED_TRACE(what + " " + std::to_string(i));
    EXPECT_EQ(actual[i].where, expected[i].where);
    EXPECT_EQ(must_expand(actual[i].argv, vars), expected[i].argv);
    EXPECT_EQ(actual[i].env, expected[i].env);
  }
}

TEST(RecipeCommands, ExactArgvForEveryRelease) {
  RecipeBook book = builtin_book();
  size_t covered = 0;
  for (const CommandCase& c : command_cases()) {
    SCOPED_TRACE(c.distro + " " + c.release);
    ReleaseRecipe r = must_resolve(book, c.distro, c.release);
    ASSERT_TRUE(r.arches.count(c.arch));
    ExpandVars vars{c.release, r.arches.at(c.arch), kRoot,          c.mirror,
                    kWork,     c.packages,          r.boot_packages};
    expect_commands(r.bootstrap, c.bootstrap, vars, "bootstrap");
    expect_commands(r.prepare, c.prepare, vars, "prepare");
    expect_commands({r.install}, {c.install}, vars, "install");
    expect_commands(r.cleanup, c.cleanup, vars, "cleanup");
    expect_commands({r.create_user}, {{Where::kContainer, c.user}}, vars, "user");
    EXPECT_EQ(r.user_group, c.group);
    EXPECT_EQ(r.network_method, c.network);
    EXPECT_EQ(r.enable_units, c.enable);
    ++covered;
  }
  size_t releases = 0;
  for (const auto& distro : book.distros()) releases += book.releases(distro).size();
  EXPECT_EQ(covered, releases) << "every built-in release needs a command case";
}

TEST(RecipeCommands, MirrorPolicies) {
  RecipeBook book = builtin_book();
  EXPECT_EQ(must_resolve(book, "debian", "bookworm").mirror, MirrorPolicy::kOptional);
  EXPECT_EQ(must_resolve(book, "ubuntu", "noble").mirror, MirrorPolicy::kOptional);
  EXPECT_EQ(must_resolve(book, "fedora", "41").mirror, MirrorPolicy::kRequired);
  EXPECT_EQ(must_resolve(book, "centos", "8").mirror, MirrorPolicy::kRequired);
  EXPECT_EQ(must_resolve(book, "gentoo", "systemd").mirror, MirrorPolicy::kRequired);
}

TEST(RecipeCommands, FedoraArchMapping) {
  ReleaseRecipe r = must_resolve(builtin_book(), "fedora", "40");
  EXPECT_EQ(
      r.arches,
      (std::map<std::string, std::string>{
          {"amd64", "x86_64"}, {"arm64", "aarch64"}, {"ppc64el", "ppc64le"}, {"s390x", "s390x"}}));
  EXPECT_EQ(r.family, "redhat");
}

TEST(RecipeCommands, NoMirrorHostInBuiltinRecipes) {
  for (const auto& [file, text] : templates::embedded_recipes()) {
    // Only local key files are named; every network location comes from {mirror}.
    for (size_t at = text.find("://"); at != std::string::npos; at = text.find("://", at + 3)) {
      EXPECT_TRUE(at >= 4 && text.compare(at - 4, 7, "file://") == 0) << file << " at " << at;
    }
    EXPECT_EQ(text.find("http"), std::string::npos) << file;
  }
}

TEST(RecipePackageNames, DebianPatternAcceptsPolicyNamesOnly) {
  const std::regex pattern(must_resolve(builtin_book(), "debian", "bookworm").package_name_pattern);
  for (const std::string ok : {"g++", "libssl-dev", "python3.11"}) {
    EXPECT_TRUE(std::regex_match(ok, pattern)) << ok;
  }
  for (const std::string bad : {"cmake; rm -rf /", "$(id)", "-x", "a b", ""}) {
    EXPECT_FALSE(std::regex_match(bad, pattern)) << bad;
  }
}

TEST(RecipePackageNames, RpmAndGentooPatterns) {
  RecipeBook book = builtin_book();
  const std::regex rpm(must_resolve(book, "fedora", "41").package_name_pattern);
  EXPECT_TRUE(std::regex_match("gcc-c++", rpm));
  EXPECT_TRUE(std::regex_match("NetworkManager", rpm));
  EXPECT_FALSE(std::regex_match("-y", rpm));
  EXPECT_FALSE(std::regex_match("pkgconfig(openssl)", rpm));
  const std::regex gentoo(must_resolve(book, "gentoo", "systemd").package_name_pattern);
  EXPECT_TRUE(std::regex_match("dev-libs/libgit2", gentoo));
  EXPECT_FALSE(std::regex_match("libgit2", gentoo));
  EXPECT_FALSE(std::regex_match("-a/b", gentoo));
  EXPECT_FALSE(std::regex_match("dev-libs/$(id)", gentoo));
}

// ---- expand_argv ----------------------------------------------------------

ExpandVars sample_vars() {
  return {"bookworm", "arm64", "/r", "", "/w", {"cmake", "git"}, {"systemd", "dbus"}};
}

TEST(RecipeExpand, SubstitutesInsideArguments) {
  EXPECT_EQ(must_expand({"x", "--arch={arch}", "{release}:{root}:{work}"}, sample_vars()),
            (Argv{"x", "--arch=arm64", "bookworm:/r:/w"}));
}

TEST(RecipeExpand, DropsArgumentsWithAnEmptyValue) {
  ExpandVars vars = sample_vars();
  EXPECT_EQ(must_expand({"a", "{mirror}", "--m={mirror}/x", "b"}, vars), (Argv{"a", "b"}));
  vars.mirror = "file:///m";
  EXPECT_EQ(must_expand({"a", "{mirror}", "--m={mirror}/x", "b"}, vars),
            (Argv{"a", "file:///m", "--m=file:///m/x", "b"}));
}

TEST(RecipeExpand, SplicesPackageLists) {
  ExpandVars vars = sample_vars();
  EXPECT_EQ(must_expand({"i", "{packages}", "--", "{boot_packages}"}, vars),
            (Argv{"i", "cmake", "git", "--", "systemd", "dbus"}));
  EXPECT_EQ(must_expand({"--include={boot_packages,}"}, vars), (Argv{"--include=systemd,dbus"}));
  vars.packages.clear();
  vars.boot_packages.clear();
  EXPECT_EQ(
      must_expand({"i", "{packages}", "--include={boot_packages,}", "{boot_packages}", "z"}, vars),
      (Argv{"i", "z"}));
}

TEST(RecipeExpand, RejectsUnknownAndMisplacedPlaceholders) {
  auto expect_error = [](const Argv& argv, const std::string& message) {
    auto out = expand_argv(argv, sample_vars());
    ASSERT_FALSE(out.ok()) << argv.back();
    EXPECT_EQ(out.error().message(), message);
  };
  expect_error({"ok", "--x={foo}"}, "unknown placeholder \"{foo}\" in \"--x={foo}\"");
  expect_error({"--pkgs={packages}"},
               "placeholder \"{packages}\" must be a whole argument in \"--pkgs={packages}\"");
  expect_error({"--x={arch"}, "unterminated placeholder in \"--x={arch\"");
  expect_error({"--x=}"}, "unmatched \"}\" in \"--x=}\"");
}

// ---- loading and validation -----------------------------------------------

json demo_document() {
  return json::parse(R"({
    "distro": "demo",
    "recipe_version": 1,
    "family": "debian",
    "arches": {"amd64": "amd64"},
    "package_name_pattern": "^[a-z0-9][a-z0-9+.-]+$",
    "mirror": "optional",
    "boot_packages": ["systemd"],
    "bootstrap": [{"run": "host", "argv": ["debootstrap", "{release}", "{root}", "{mirror}"]}],
    "install": {"argv": ["apt-get", "install", "{packages}"]},
    "user": {"group": "nogroup", "argv": ["useradd", "sai"]},
    "network": {"method": "networkd", "enable": ["systemd-networkd"]},
    "releases": {"one": {"build_packages": ["cmake"]}, "two": {"build_packages": ["git"]}}
  })");
}

std::string load_error(const json& doc) {
  auto book = RecipeBook::from_documents({{"demo.json", doc.dump()}});
  if (book.ok()) return "(loaded)";
  return book.error().message();
}

TEST(RecipeLoad, DemoDocumentLoadsAndMerges) {
  json doc = demo_document();
  doc["releases"]["two"]["mirror"] = "unused";
  doc["releases"]["two"]["prepare"] = json::parse(R"([{"argv": ["apt-get", "update"]}])");
  auto book = RecipeBook::from_documents({{"demo.json", doc.dump()}});
  ASSERT_TRUE(book.ok()) << book.error().message();
  ReleaseRecipe one = must_resolve(*book, "demo", "one");
  ReleaseRecipe two = must_resolve(*book, "demo", "two");
  EXPECT_EQ(one.mirror, MirrorPolicy::kOptional);
  EXPECT_TRUE(one.prepare.empty());
  EXPECT_TRUE(one.cleanup.empty());
  EXPECT_EQ(one.build_packages, Argv{"cmake"});
  EXPECT_EQ(two.mirror, MirrorPolicy::kUnused);
  ASSERT_EQ(two.prepare.size(), 1u);
  EXPECT_EQ(two.prepare[0].where, Where::kContainer);
  EXPECT_EQ(two.prepare[0].argv, (Argv{"apt-get", "update"}));
  EXPECT_EQ(two.bootstrap[0].where, Where::kHost);
  EXPECT_EQ(two.build_packages, Argv{"git"});
}

TEST(RecipeFingerprint, StableAndSensitive) {
  RecipeBook book = builtin_book();
  const std::string bookworm = must_resolve(book, "debian", "bookworm").fingerprint;
  EXPECT_EQ(must_resolve(book, "debian", "bookworm").fingerprint, bookworm);
  EXPECT_EQ(must_resolve(builtin_book(), "debian", "bookworm").fingerprint, bookworm);
  EXPECT_NE(must_resolve(book, "debian", "trixie").fingerprint, bookworm);
  EXPECT_NE(must_resolve(book, "debian", "sid").fingerprint,
            must_resolve(book, "debian", "trixie").fingerprint);

  // The embedded debian.json with only recipe_version bumped.
  std::vector<std::pair<std::string, std::string>> docs = templates::embedded_recipes();
  bool bumped = false;
  for (auto& [file, text] : docs) {
    if (file != "debian.json") continue;
    const std::string from = "\"recipe_version\": 1,";
    const size_t at = text.find(from);
    ASSERT_NE(at, std::string::npos);
    text.replace(at, from.size(), "\"recipe_version\": 2,");
    bumped = true;
  }
  ASSERT_TRUE(bumped);
  auto modified = RecipeBook::from_documents(docs);
  ASSERT_TRUE(modified.ok()) << modified.error().message();
  ReleaseRecipe r = must_resolve(*modified, "debian", "bookworm");
  EXPECT_EQ(r.recipe_version, 2);
  EXPECT_NE(r.fingerprint, bookworm);
  EXPECT_EQ(must_resolve(*modified, "fedora", "41").fingerprint,
            must_resolve(book, "fedora", "41").fingerprint);

  json doc = demo_document();
  auto a = RecipeBook::from_documents({{"demo.json", doc.dump()}});
  doc["releases"]["one"]["build_packages"] = json::array({"cmake", "git"});
  auto b = RecipeBook::from_documents({{"demo.json", doc.dump()}});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(must_resolve(*a, "demo", "one").fingerprint,
            must_resolve(*b, "demo", "one").fingerprint);
  EXPECT_EQ(must_resolve(*a, "demo", "two").fingerprint,
            must_resolve(*b, "demo", "two").fingerprint);
}

TEST(RecipeLoad, ErrorsNameTheFileAndPointer) {
  struct Case {
    std::string name;
    void (*mutate)(json&);
    std::string message;
  };
  const std::vector<Case> cases = {
      {"unknown top-level key", [](json& d) { d["colour"] = "blue"; },
       "demo.json: /colour: unknown key"},
      {"unknown release key", [](json& d) { d["releases"]["two"]["instal"] = json::object(); },
       "demo.json: /releases/two/instal: unknown key"},
      {"argv not an array",
       [](json& d) {
         d["releases"]["two"]["install"] = {{"argv", "apt-get"}};
       },
       "demo.json: /releases/two/install/argv: expected an array of strings"},
      {"missing everywhere", [](json& d) { d.erase("install"); },
       "demo.json: /releases/one: missing required key \"install\" (set it at the top level or in "
       "the release)"},
      {"missing distro", [](json& d) { d.erase("distro"); },
       "demo.json: missing required key \"distro\""},
      {"empty releases", [](json& d) { d["releases"] = json::object(); },
       "demo.json: /releases: expected at least one release"},
      {"invalid regex", [](json& d) { d["package_name_pattern"] = "[a-"; },
       "demo.json: /package_name_pattern: not a valid ECMAScript regular expression"},
      {"unsafe regex", [](json& d) { d["package_name_pattern"] = ".*"; },
       "demo.json: /package_name_pattern: admits the unsafe package name \"\""},
      {"leading dash", [](json& d) { d["package_name_pattern"] = "[a-z-]+"; },
       "demo.json: /package_name_pattern: admits the unsafe package name \"-\""},
      {"bad run", [](json& d) { d["bootstrap"][0]["run"] = "guest"; },
       "demo.json: /bootstrap/0/run: expected \"host\" or \"container\""},
      {"wrong version type", [](json& d) { d["recipe_version"] = "1"; },
       "demo.json: /recipe_version: expected a positive integer"},
      {"bad mirror", [](json& d) { d["mirror"] = "maybe"; },
       "demo.json: /mirror: expected \"optional\", \"required\" or \"unused\""},
      {"no {packages}",
       [](json& d) {
         d["install"]["argv"] = {"apt-get", "install"};
       },
       "demo.json: /install/argv: must contain the argument \"{packages}\""},
      {"unknown placeholder",
       [](json& d) {
         d["bootstrap"][0]["argv"] = {"debootstrap", "--x={foo}"};
       },
       "demo.json: /bootstrap/0/argv/1: unknown placeholder \"{foo}\" in \"--x={foo}\""},
      {"empty bootstrap in release",
       [](json& d) { d["releases"]["one"]["bootstrap"] = json::array(); },
       "demo.json: /releases/one/bootstrap: expected at least one command"},
      {"bad package name", [](json& d) { d["releases"]["one"]["build_packages"] = {"a b"}; },
       "demo.json: /releases/one/build_packages/0: \"a b\" does not match package_name_pattern"},
      {"bad env", [](json& d) { d["install"]["env"] = {"NOEQUALS"}; },
       "demo.json: /install/env/0: expected \"KEY=value\""},
      {"bad network method", [](json& d) { d["network"]["method"] = "ifupdown"; },
       "demo.json: /network/method: expected \"networkd\" or \"networkmanager\""},
      {"empty arches", [](json& d) { d["arches"] = json::object(); },
       "demo.json: /arches: expected at least one architecture"},
      {"bad release name", [](json& d) { d["releases"]["a/b"] = json::object(); },
       "demo.json: /releases/a~1b: expected a release name of letters, digits, \".\", \"_\" and "
       "\"-\""},
      {"top level not an object", [](json& d) { d = json::array(); },
       "demo.json: expected an object at the top level"},
  };
  for (const Case& c : cases) {
    json doc = demo_document();
    c.mutate(doc);
    EXPECT_EQ(load_error(doc), c.message) << c.name;
  }
}

TEST(RecipeLoad, InvalidJsonAndDuplicateDistro) {
  auto broken = RecipeBook::from_documents({{"broken.json", "{\"distro\": "}});
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.error().message().rfind("broken.json: invalid JSON: parse error at line 1", 0),
            0u)
      << broken.error().message();

  const std::string text = demo_document().dump();
  auto twice = RecipeBook::from_documents({{"demo.json", text}, {"other.json", text}});
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.error().message(), "other.json: distro \"demo\" is already defined by demo.json");
}

}  // namespace
}  // namespace farmhand::provisioner
