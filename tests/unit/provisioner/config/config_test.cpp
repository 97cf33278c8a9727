// Loading agent.json as a whole (provisioner/config/config.cpp): every
// default, a full document, files on disk, the shipped recipes and example,
// the config repository's host file merged in, and the errors of the document
// and its top-level keys (paths, clone_method).
#include "tests/unit/provisioner/config/config_fixture.h"
#include "tests/unit/temp_dir.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace farmhand::provisioner::config_test {
namespace {

constexpr const char* kLocalWithRepo =
    R"({"mirrors": {"debian": "file:///srv/local-debian"},
        "config_repo": {"url": "file:///srv/farm-config.git", "path": "hosts/b1.json"}})";
constexpr const char* kRepoLabel = "hosts/b1.json@1a2b3c4d5e6f";

TEST(ConfigParse, MinimumContractGetsEveryDefault) {
  ConfigLoad load = parse_config(kMinimum, recipes());
  ASSERT_TRUE(load.config) << errors_of(load);
  EXPECT_TRUE(load.errors.empty());
  // Valid, but 14 characters are more than the exact ve-NAME allows.
  EXPECT_EQ(load.warnings,
            (std::vector<std::string>{
                "/containers/0/name: \"bookworm-amd64\" is longer than 12 characters: its host "
                "interface will not be named exactly \"ve-bookworm-amd64\""}));
  const AgentConfig& c = *load.config;
  EXPECT_EQ(c.paths, (AgentPaths{"/var/lib/machines", "/var/lib/farmhand", "/var/cache/farmhand",
                                 "/etc/systemd/nspawn", "/etc/systemd/system"}));
  EXPECT_EQ(c.pool.str(), "192.168.80.0/20");
  EXPECT_EQ(c.subnet_prefix, 24);
  EXPECT_EQ(c.clone_method, CloneMethod::kAuto);
  EXPECT_TRUE(c.mirrors.empty());
  ContainerSpec expected;
  expected.name = "bookworm-amd64";
  expected.distro = "debian";
  expected.release = "bookworm";
  expected.arch = "amd64";
  expected.packages = {"cmake"};
  ASSERT_EQ(c.containers.size(), 1u);
  EXPECT_EQ(c.containers[0], expected);
  EXPECT_TRUE(c.containers[0].build_packages);
  EXPECT_TRUE(c.containers[0].boot);
  EXPECT_FALSE(c.containers[0].private_users);
  EXPECT_FALSE(c.containers[0].network.subnet);
}

TEST(ConfigParse, EmptyObjectIsAnAgentWithNoContainers) {
  ConfigLoad load = parse_config("{}", recipes());
  ASSERT_TRUE(load.config) << errors_of(load);
  EXPECT_TRUE(load.config->containers.empty());
  EXPECT_EQ(load.config->subnet_prefix, kDefaults.subnet_prefix);
}

TEST(ConfigParse, FullConfig) {
  ConfigLoad load = parse_config(R"({
    "paths": {"machines": "/srv/machines", "state": "/srv/state", "cache": "/srv/cache",
              "nspawn": "/run/systemd/nspawn", "systemd": "/run/systemd/system"},
    "network": {"pool": "10.20.0.0/16", "subnet_prefix": 26},
    "clone_method": "overlay",
    "mirrors": {"centos": "https://mirrors.invalid/centos-stream/", "debian": "file:///srv/debian"},
    "containers": [
      {"name": "c9", "distro": "centos", "release": "stream9", "arch": "arm64",
       "packages": ["gcc-c++", "libstdc++-devel"], "build_packages": false,
       "network": {"subnet": "10.30.1.0/24"}, "boot": false, "private_users": true,
       "binds": [{"source": "/srv/ccache", "target": "/var/cache/ccache"},
                 {"source": "/srv/keys/", "read_only": true}]},
      {"name": "trixie", "distro": "debian", "release": "trixie", "network": {}}
    ]
  })",
                                 recipes());
  ASSERT_TRUE(load.config) << errors_of(load);
  EXPECT_TRUE(load.warnings.empty());
  const AgentConfig& c = *load.config;
  EXPECT_EQ(c.paths, (AgentPaths{"/srv/machines", "/srv/state", "/srv/cache", "/run/systemd/nspawn",
                                 "/run/systemd/system"}));
  EXPECT_EQ(c.pool, (Cidr{0x0a140000u, 16}));
  EXPECT_EQ(c.subnet_prefix, 26);
  EXPECT_EQ(c.clone_method, CloneMethod::kOverlay);
  EXPECT_EQ(c.mirrors,
            (std::map<std::string, std::string>{{"centos", "https://mirrors.invalid/centos-stream/"},
                                                {"debian", "file:///srv/debian"}}));
  ASSERT_EQ(c.containers.size(), 2u);
  ContainerSpec c9;
  c9.name = "c9";
  c9.distro = "centos";
  c9.release = "stream9";
  c9.arch = "arm64";
  c9.packages = {"gcc-c++", "libstdc++-devel"};
  c9.build_packages = false;
  c9.network.subnet = Cidr{0x0a1e0100u, 24};
  c9.boot = false;
  c9.private_users = true;
  c9.binds = {{"/srv/ccache", "/var/cache/ccache", false}, {"/srv/keys/", "/srv/keys/", true}};
  EXPECT_EQ(c.containers[0], c9);
  ContainerSpec trixie;
  trixie.name = "trixie";
  trixie.distro = "debian";
  trixie.release = "trixie";
  trixie.arch = host_arch();
  EXPECT_EQ(c.containers[1], trixie);
}

TEST(ConfigWithRepo, RepoSuppliesTheContainersAndKeepsLocalSettings) {
  ConfigLoad load = parse_config_with_repo(
      kLocalWithRepo, R"({"containers": [{"name": "b", "distro": "debian", "release": "bookworm", "arch": "amd64"}]})",
      kRepoLabel, recipes());
  ASSERT_TRUE(load.config) << errors_of(load);
  ASSERT_EQ(load.config->containers.size(), 1u);
  EXPECT_EQ(load.config->containers[0].name, "b");
  EXPECT_EQ(load.config->mirrors, (std::map<std::string, std::string>{{"debian", "file:///srv/local-debian"}}));
  EXPECT_EQ(load.config->config_repo->path, "hosts/b1.json");
}

TEST(ConfigWithRepo, RepoMirrorsReplaceTheLocalOnes) {
  ConfigLoad load = parse_config_with_repo(
      R"({"mirrors": {"debian": "ftp://not-checked"}, "config_repo": {"url": "/srv/c.git", "path": "h.json"}})",
      R"({"mirrors": {"centos": "https://mirror.invalid/centos/"},
          "containers": [{"name": "c9", "distro": "centos", "release": "stream9", "arch": "amd64"}]})",
      kRepoLabel, recipes());
  ASSERT_TRUE(load.config) << errors_of(load);
  EXPECT_EQ(load.config->mirrors,
            (std::map<std::string, std::string>{{"centos", "https://mirror.invalid/centos/"}}));
}

TEST(ConfigWithRepo, EmptyRepoFileMeansNoContainers) {
  ConfigLoad load = parse_config_with_repo(kLocalWithRepo, "{}", kRepoLabel, recipes());
  ASSERT_TRUE(load.config) << errors_of(load);
  EXPECT_TRUE(load.config->containers.empty());
}

TEST(ConfigWithRepo, RepoErrorsPointIntoTheRepoFile) {
  ConfigLoad load = parse_config_with_repo(
      R"({"network": {"zone": "my zone"}, "config_repo": {"url": "/srv/c.git", "path": "hosts/b1.json"}})",
      R"({"containers": [{"name": "Bad", "distro": "debian", "release": "bookworm", "arch": "amd64"},
                         {"name": "b", "distro": "debian", "release": "bookworm", "arch": "amd64"},
                         {"name": "b", "distro": "centos", "release": "stream9", "arch": "amd64"}],
          "paths": {"state": "/tmp"}, "server": {"url": "https://farm.invalid"}})",
      kRepoLabel, recipes());
  EXPECT_FALSE(load.config);
  EXPECT_EQ(load.errors,
            (std::vector<std::string>{
                "/network/zone: \"my zone\" is not a valid firewalld zone name: use 1 to 17 letters, digits, '-' or "
                "'_'",
                "hosts/b1.json@1a2b3c4d5e6f: /containers/0/name: \"Bad\" is not a valid machine name: use only "
                "lower-case letters, digits and '-'",
                "hosts/b1.json@1a2b3c4d5e6f: /containers/2/distro: centos needs a mirror: set /mirrors/centos",
                "hosts/b1.json@1a2b3c4d5e6f: /paths: unknown key (expected one of: containers, mirrors)",
                "hosts/b1.json@1a2b3c4d5e6f: /server: unknown key (expected one of: containers, mirrors)",
                "hosts/b1.json@1a2b3c4d5e6f: /containers/2/name: duplicate name \"b\" (also at /containers/1/name)"}));
}

TEST(ConfigWithRepo, LocalContainersAreAmbiguous) {
  ConfigLoad load = parse_config_with_repo(
      R"({"containers": [], "config_repo": {"url": "/srv/c.git", "path": "hosts/b1.json"}})", R"({"containers": []})",
      kRepoLabel, recipes());
  EXPECT_EQ(load.errors,
            (std::vector<std::string>{"/containers: containers come from config_repo (hosts/b1.json@1a2b3c4d5e6f): "
                                      "remove this key or config_repo"}));
}

TEST(ConfigWithRepo, InvalidJsonInEitherFile) {
  ConfigLoad load = parse_config_with_repo(kLocalWithRepo, "[", kRepoLabel, recipes());
  EXPECT_FALSE(load.config);
  EXPECT_EQ(load.errors,
            (std::vector<std::string>{"hosts/b1.json@1a2b3c4d5e6f: /: invalid JSON: parse error at line 1, column 2: "
                                      "syntax error while parsing value - unexpected end of input; expected '[', "
                                      "'{', or a literal"}));
  load = parse_config_with_repo(kLocalWithRepo, "[]", kRepoLabel, recipes());
  EXPECT_EQ(load.errors,
            (std::vector<std::string>{"hosts/b1.json@1a2b3c4d5e6f: /: expected an object, got an array"}));
  load = parse_config_with_repo("{", "{}", kRepoLabel, recipes());
  ASSERT_EQ(load.errors.size(), 1u);
  EXPECT_TRUE(load.errors[0].starts_with("/: invalid JSON: ")) << load.errors[0];
}

TEST(ConfigWithRepo, RepoWarningsArePrefixed) {
  ConfigLoad load = parse_config_with_repo(
      kLocalWithRepo,
      R"({"containers": [{"name": "bookworm-amd64", "distro": "debian", "release": "bookworm", "arch": "amd64"}]})",
      kRepoLabel, recipes());
  ASSERT_TRUE(load.config) << errors_of(load);
  EXPECT_EQ(load.warnings,
            (std::vector<std::string>{"hosts/b1.json@1a2b3c4d5e6f: /containers/0/name: \"bookworm-amd64\" is longer "
                                      "than 12 characters: its host interface will not be named exactly "
                                      "\"ve-bookworm-amd64\""}));
}

TEST(ConfigCloneMethod, Names) {
  EXPECT_EQ(to_string(CloneMethod::kAuto), "auto");
  EXPECT_EQ(to_string(CloneMethod::kBtrfs), "btrfs");
  EXPECT_EQ(to_string(CloneMethod::kReflink), "reflink");
  EXPECT_EQ(to_string(CloneMethod::kOverlay), "overlay");
  EXPECT_EQ(to_string(CloneMethod::kCopy), "copy");
  for (const char* method : {"auto", "btrfs", "reflink", "overlay", "copy"}) {
    ConfigLoad load = parse_config(std::string(R"({"clone_method": ")") + method + "\"}", recipes());
    ASSERT_TRUE(load.config) << errors_of(load);
    EXPECT_EQ(to_string(load.config->clone_method), method);
  }
}

std::vector<BadConfig> bad_configs() {
  return {
      {"SyntaxError",
       "{\"containers\": [\n  {\"name\": \"a\",\n    }\n]}",
       {"/: invalid JSON: parse error at line 3, column 5: syntax error while parsing object key - "
        "unexpected "
        "'}'; expected string literal"}},
      {"EmptyDocument",
       "",
       {"/: invalid JSON: parse error at line 1, column 1: syntax error while parsing value - unexpected end "
        "of "
        "input; expected '[', '{', or a literal"}},
      {"RootIsAnArray", "[]", {"/: expected an object, got an array"}},
      {"RootIsNull", "null", {"/: expected an object, got null"}},
      {"UnknownTopLevelKey",
       R"({"colour": "blue"})",
       {"/colour: unknown key (expected one of: clone_method, config_repo, containers, mirrors, network, paths, server)"}},
      {"PointerEscapesSlashAndTilde",
       R"({"a/b~c": 1})",
       {"/a~1b~0c: unknown key (expected one of: clone_method, config_repo, containers, mirrors, network, paths, server)"}},
      {"DuplicateTopLevelKey",
       R"({"clone_method": "copy", "clone_method": "btrfs"})",
       {"/clone_method: duplicate key"}},
      {"Paths",
       R"({"paths": {"machines": "var/lib/machines", "state": "/var/lib/../farmhand", "cache": 1, "home": "/"}})",
       {"/paths/machines: \"var/lib/machines\" is not an absolute path",
        "/paths/state: \"/var/lib/../farmhand\" must not contain \"..\"",
        "/paths/cache: expected a string, got a number",
        "/paths/home: unknown key (expected one of: cache, machines, nspawn, state, systemd)"}},
      {"PathsNotAnObject", R"({"paths": "/var/lib"})", {"/paths: expected an object, got a string"}},
      {"UnknownCloneMethod",
       R"({"clone_method": "zfs"})",
       {"/clone_method: unknown clone method \"zfs\" (expected one of: auto, btrfs, copy, overlay, "
        "reflink)"}},
      {"CloneMethodNotAString",
       R"({"clone_method": true})",
       {"/clone_method: expected a string, got a boolean"}},
  };
}

class ConfigDocumentRejects : public testing::TestWithParam<BadConfig> {};

TEST_P(ConfigDocumentRejects, WithExactErrors) { expect_rejected(GetParam()); }

INSTANTIATE_TEST_SUITE_P(ConfigBad, ConfigDocumentRejects, testing::ValuesIn(bad_configs()),
                         bad_config_name);

class ConfigFiles : public testing::Test {
 protected:
  test::TempDir tmp_;
  const std::filesystem::path& dir_ = tmp_.path();
};

TEST_F(ConfigFiles, LoadsAFile) {
  std::ofstream(dir_ / "agent.json") << kMinimum;
  ConfigLoad load = load_config_file(dir_ / "agent.json", recipes());
  ASSERT_TRUE(load.config) << errors_of(load);
  EXPECT_EQ(load.config->containers.at(0).name, "bookworm-amd64");
}

TEST_F(ConfigFiles, MissingFileIsOneError) {
  std::string path = dir_ / "missing.json";
  ConfigLoad load = load_config_file(path, recipes());
  EXPECT_FALSE(load.config);
  EXPECT_EQ(load.errors, (std::vector<std::string>{path + ": cannot open: No such file or directory"}));
}

TEST_F(ConfigFiles, DirectoryIsOneError) {
  ConfigLoad load = load_config_file(dir_.string(), recipes());
  EXPECT_FALSE(load.config);
  EXPECT_EQ(load.errors, (std::vector<std::string>{dir_.string() + ": cannot read: Is a directory"}));
}

TEST_F(ConfigFiles, ParsingTouchesNoFile) {
  std::string d = dir_.string();
  ConfigLoad load =
      parse_config(R"({"paths": {"machines": ")" + d + R"(/m", "state": ")" + d + R"(/s", "cache": ")" + d +
                       R"(/c", "nspawn": ")" + d + R"(/n", "systemd": ")" + d + R"(/u"},
      "mirrors": {"debian": "file://)" +
                       d + R"(/mirror"},
      "containers": [{"name": "b", "distro": "debian", "release": "bookworm", "arch": "amd64",
                      "binds": [{"source": ")" +
                       d + R"(/ccache"}]}]})",
                   recipes());
  ASSERT_TRUE(load.config) << errors_of(load);
  EXPECT_EQ(load.config->paths.machines, d + "/m");
  EXPECT_TRUE(std::filesystem::is_empty(dir_));
}

TEST(ConfigBuiltin, MinimumContractAgainstTheShippedRecipes) {
  auto book = RecipeBook::builtin();
  ASSERT_TRUE(book.ok()) << book.error().message();
  ConfigLoad load = parse_config(kMinimum, *book);
  ASSERT_TRUE(load.config) << errors_of(load);
  EXPECT_EQ(load.config->containers.at(0).packages, std::vector<std::string>{"cmake"});
}

TEST(ConfigBuiltin, ShippedExampleIsValidAndQuiet) {
  auto book = RecipeBook::builtin();
  ASSERT_TRUE(book.ok()) << book.error().message();
  ConfigLoad load = load_config_file(std::string(FARMHAND_TEST_DATA_DIR) + "/../conf/agent.json", *book);
  ASSERT_TRUE(load.config) << errors_of(load);
  EXPECT_TRUE(load.warnings.empty());
  EXPECT_EQ(load.config->containers.size(), 4u);
}

}  // namespace
}  // namespace farmhand::provisioner::config_test
