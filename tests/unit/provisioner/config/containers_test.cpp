// One item of "containers" (provisioner/config/containers.cpp): its keys and
// their types, the machine name, distro, release, arch and packages against
// the recipe, and bind mounts.
#include "tests/unit/provisioner/config/config_fixture.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace farmhand::provisioner::config_test {
namespace {

TEST(ConfigParse, ArchDefaultsToTheHosts) {
  // Assumes an amd64 or arm64 host, the arches of the test recipe.
  ConfigLoad load = parse_config(
      R"({"containers": [{"name": "bookworm", "distro": "debian", "release": "bookworm"}]})", recipes());
  ASSERT_TRUE(load.config) << errors_of(load);
  EXPECT_EQ(load.config->containers.at(0).arch, host_arch());
  EXPECT_TRUE(load.config->containers.at(0).packages.empty());
}

TEST(ConfigArch, HostArchMissingFromTheRecipeNeedsAnExplicitArch) {
  RecipeBook book = book_of(
      {{"debian.json", recipe_document("debian", R"({"vax":"vax"})", "optional", "^[a-z0-9][a-z0-9+.-]+$",
                                       R"({"bookworm":{"build_packages":[]}})")}});
  ASSERT_NE(host_arch(), "vax");
  ConfigLoad load =
      parse_config(R"({"containers": [{"name": "b", "distro": "debian", "release": "bookworm"}]})", book);
  EXPECT_EQ(load.errors,
            (std::vector<std::string>{"/containers/0/arch: required key is missing: debian bookworm "
                                      "has no arch \"" +
                                      host_arch() + "\" (the host's; known: vax)"}));
}

TEST(ConfigArch, HostArchUsesDebianNames) {
  std::string arch = host_arch();
  EXPECT_FALSE(arch.empty());
  EXPECT_NE(arch, "x86_64");
  EXPECT_NE(arch, "aarch64");
}

TEST(ConfigWarnings, LongNamesWarnButAreValid) {
  ConfigLoad load =
      parse_config(with_containers(debian("", "bookworm-amd64") + ", " + debian("", "trixie")), recipes());
  ASSERT_TRUE(load.config) << errors_of(load);
  EXPECT_EQ(load.warnings,
            (std::vector<std::string>{
                "/containers/0/name: \"bookworm-amd64\" is longer than 12 characters: its host "
                "interface will not be named exactly \"ve-bookworm-amd64\""}));
}

TEST(ConfigWarnings, TwelveCharactersAndDistinctElevenCharacterPrefixesAreFine) {
  ConfigLoad load = parse_config(
      with_containers(debian("", "bookworm-a64") + ", " + debian("", "bookworm-x64")), recipes());
  ASSERT_TRUE(load.config) << errors_of(load);
  EXPECT_TRUE(load.warnings.empty());
}

std::vector<BadConfig> bad_configs() {
  return {
      {"DuplicateContainerKey",
       with_containers(debian(R"("name": "other")")),
       {"/containers/0/name: duplicate key"}},
      {"ContainersNotAnArray", R"({"containers": {}})", {"/containers: expected an array, got an object"}},
      {"ContainerNotAnObject",
       R"({"containers": ["bookworm"]})",
       {"/containers/0: expected an object, got a string"}},
      {"UnknownContainerKey",
       with_containers(debian(R"("colour": "red")")),
       {"/containers/0/colour: unknown key " + kContainerKeys}},
      {"MissingName",
       with_containers(R"({"distro": "debian", "release": "bookworm", "arch": "amd64"})"),
       {"/containers/0/name: required key is missing"}},
      {"MissingEverything",
       with_containers("{}"),
       {"/containers/0/name: required key is missing", "/containers/0/distro: required key is missing",
        "/containers/0/release: required key is missing"}},
      {"BootNotABoolean",
       with_containers(debian(R"("boot": "yes")")),
       {"/containers/0/boot: expected a boolean, got a string"}},
      {"WrongTypes",
       with_containers(
           debian(R"("build_packages": 1, "private_users": null, "packages": "cmake", "arch": 64)")),
       {"/containers/0/build_packages: expected a boolean, got a number",
        "/containers/0/private_users: expected a boolean, got null",
        "/containers/0/packages: expected an array, got a string", "/containers/0/arch: duplicate key"}},
      {"NameNotAString",
       with_containers(R"({"name": 7, "distro": "debian", "release": "bookworm"})"),
       {"/containers/0/name: expected a string, got a number"}},
      {"NameWithUpperCaseAndUnderscore",
       with_containers(debian("") + ", " + debian("", "Foo_Bar")),
       {"/containers/1/name: \"Foo_Bar\" is not a valid machine name: use only lower-case letters, digits "
        "and '-'"}},
      {"NameWithLeadingOrTrailingDash",
       with_containers(debian("", "-foo") + ", " + debian("", "foo-")),
       {"/containers/0/name: \"-foo\" is not a valid machine name: it must not start or end with '-'",
        "/containers/1/name: \"foo-\" is not a valid machine name: it must not start or end with '-'"}},
      {"NameEmpty",
       with_containers(debian("", "")),
       {"/containers/0/name: \"\" is not a valid machine name: it must not be empty"}},
      {"NameTooLong",
       with_containers(debian("", std::string(65, 'a'))),
       {"/containers/0/name: \"" + std::string(65, 'a') + "\" is too long: at most 64 characters"}},
      {"UnknownDistroHidesReleaseAndArch",
       with_containers(R"({"name": "s", "distro": "slackware", "release": "15", "arch": "vax"})"),
       {"/containers/0/distro: unknown distro \"slackware\" (known: centos, debian)"}},
      {"UnknownRelease",
       with_containers(R"({"name": "p", "distro": "debian", "release": "potato"})"),
       {"/containers/0/release: unknown release \"potato\" for debian (known: bookworm, trixie)"}},
      {"UnknownArch",
       with_containers(R"({"name": "v", "arch": "vax", "distro": "debian", "release": "bookworm"})"),
       {"/containers/0/arch: debian bookworm has no arch \"vax\" (known: amd64, arm64)"}},
      {"BadAndDuplicatePackages",
       with_containers(debian(R"("packages": ["cmake", "git", "cmake; rm -rf /", "cmake", 3])")),
       {"/containers/0/packages/2: \"cmake; rm -rf /\" is not a valid debian package name",
        "/containers/0/packages/3: duplicate package \"cmake\"",
        "/containers/0/packages/4: expected a string, got a number"}},
      {"MirrorRequired",
       with_containers(R"({"name": "c9", "distro": "centos", "release": "stream9"})"),
       {"/containers/0/distro: centos needs a mirror: set /mirrors/centos"}},
      {"BindRelativeSource",
       with_containers(debian(R"("binds": [{"source": "srv/x"}])")),
       {"/containers/0/binds/0/source: \"srv/x\" is not an absolute path"}},
      {"BindTargetWithDotDot",
       with_containers(debian(R"("binds": [{"source": "/srv", "target": "/srv/../etc"}])")),
       {"/containers/0/binds/0/target: \"/srv/../etc\" must not contain \"..\""}},
      {"BindWithColonOrControlCharacter",
       with_containers(
           debian(R"("binds": [{"source": "/srv/a:b"}, {"source": "/srv/a\nb"}, {"source": "/x\u0000"}])")),
       {"/containers/0/binds/0/source: \"/srv/a:b\" must not contain ':' (the .nspawn Bind= setting uses it "
        "as "
        "a separator)",
        "/containers/0/binds/1/source: \"/srv/a\\nb\" must not contain control characters",
        "/containers/0/binds/2/source: \"/x\\u0000\" must not contain control characters"}},
      {"BindMissingSourceAndWrongTypes",
       with_containers(debian(R"("binds": [{"target": "/srv", "read_only": "no", "mode": 1}, "/srv"])")),
       {"/containers/0/binds/0/read_only: expected a boolean, got a string",
        "/containers/0/binds/0/mode: unknown key (expected one of: read_only, source, target)",
        "/containers/0/binds/0/source: required key is missing",
        "/containers/0/binds/1: expected an object, got a string"}},
      {"DuplicateBindTarget",
       with_containers(debian(
           R"("binds": [{"source": "/srv/a", "target": "/work"}, {"source": "/work/"}, {"source": "/b", "target": "/srv/a"}])")),
       {"/containers/0/binds/1/source: duplicate bind target \"/work/\" (also at "
        "/containers/0/binds/0/target)"}},
  };
}

class ConfigContainerRejects : public testing::TestWithParam<BadConfig> {};

TEST_P(ConfigContainerRejects, WithExactErrors) { expect_rejected(GetParam()); }

INSTANTIATE_TEST_SUITE_P(ConfigBad, ConfigContainerRejects, testing::ValuesIn(bad_configs()),
                         bad_config_name);

}  // namespace
}  // namespace farmhand::provisioner::config_test
