// The configuration parser: defaults, a full config, and the exact text of
// every error. Recipes are small inline documents, so these tests do not
// depend on the content of nspawn-templates/recipes/.
#include "tests/unit/temp_dir.h"
#include "provisioner/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace farmhand::provisioner {
namespace {

std::string recipe_document(const std::string& distro, const std::string& arches, const std::string& mirror,
                            const std::string& pattern, const std::string& releases) {
  return R"({"distro":")" + distro + R"(","recipe_version":1,"family":"debian","arches":)" + arches +
         R"(,"package_name_pattern":")" + pattern + R"(","mirror":")" + mirror +
         R"(","boot_packages":["systemd"],)"
         R"("bootstrap":[{"run":"host","argv":["debootstrap","{release}","{root}","{mirror}"]}],)"
         R"("install":{"argv":["apt-get","install","-y","{packages}"]},)"
         R"("user":{"group":"nogroup","argv":["useradd","-u883","-gnogroup","sai"]},)"
         R"("network":{"method":"networkd","enable":["systemd-networkd"]},"releases":)" +
         releases + "}";
}

const std::string kDebianRecipe =
    recipe_document("debian", R"({"amd64":"amd64","arm64":"arm64"})", "optional", "^[a-z0-9][a-z0-9+.-]+$",
                    R"({"bookworm":{"build_packages":["cmake"]},"trixie":{"build_packages":["cmake"]}})");
const std::string kCentosRecipe =
    recipe_document("centos", R"({"amd64":"x86_64","arm64":"aarch64"})", "required",
                    "^[A-Za-z0-9_][A-Za-z0-9_+.-]*$", R"({"stream9":{"build_packages":["cmake"]}})");

RecipeBook book_of(const std::vector<std::pair<std::string, std::string>>& documents) {
  auto book = RecipeBook::from_documents(documents);
  if (!book.ok()) {
    ADD_FAILURE() << "test recipes do not load: " << book.error().message();
    return RecipeBook{};
  }
  return std::move(book).value();
}

const RecipeBook& recipes() {
  static const RecipeBook book = book_of({{"debian.json", kDebianRecipe}, {"centos.json", kCentosRecipe}});
  return book;
}

std::string errors_of(const ConfigLoad& load) {
  std::string out;
  for (const auto& e : load.errors) out += "\n  " + e;
  return out;
}

constexpr const char* kMinimum =
    R"({"containers": [{"name": "bookworm-amd64", "distro": "debian", "release": "bookworm",
                        "arch": "amd64", "packages": ["cmake"]}]})";

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

TEST(ConfigParse, ArchDefaultsToTheHosts) {
  // Assumes an amd64 or arm64 host, the arches of the test recipe.
  ConfigLoad load = parse_config(
      R"({"containers": [{"name": "bookworm", "distro": "debian", "release": "bookworm"}]})", recipes());
  ASSERT_TRUE(load.config) << errors_of(load);
  EXPECT_EQ(load.config->containers.at(0).arch, host_arch());
  EXPECT_TRUE(load.config->containers.at(0).packages.empty());
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

constexpr const char* kPayload = R"({"containers": [{
  "name": "deb12", "distro": "debian", "release": "bookworm", "arch": "amd64",
  "sources": [
    {"name": "sai", "url": "https://example.invalid/sai.git", "ref": "main", "path": "/home/sai/src/sai",
     "credentials": {"token_file": "/etc/farmhand/tokens/git", "username": "ci"}},
    {"name": "tools", "url": "git@example.invalid:farm/tools.git", "ref": "v1.2", "path": "/home/sai/src/tools",
     "depth": 1, "submodules": true, "clean": true,
     "credentials": {"ssh_key": "/etc/farmhand/keys/deploy", "known_hosts": "/etc/farmhand/known_hosts"}},
    {"name": "local", "url": "/srv/git/local.git", "ref": "0123456789abcdef0123456789abcdef01234567",
     "path": "/opt/local"}
  ],
  "files": [
    {"path": "/etc/sai/builder/conf", "content": "name={{ container }} on {{host}} at {{source.sai.commit}}\n"},
    {"path": "/etc/sai/env", "content": ["A={{address}}", "G={{gateway}}"], "owner": "sai", "group": "883",
     "mode": "0640"}
  ],
  "setup": [
    {"name": "build-sai", "run": ["cmake", "--build", "{{source.sai.path}}/build"], "user": "root",
     "cwd": "/home/sai/src/sai", "env": ["CFLAGS=-O2", "HOME_DIR={{home}}"], "sources": ["sai"], "timeout": 600},
    {"name": "hello", "run": ["echo", "{{user}}"]}
  ],
  "services": [
    {"name": "sai-builder.service", "content": ["[Unit]", "Description=Sai builder on {{hostname}}"],
     "enable": false},
    {"name": "nightly.timer", "content": "[Timer]\nOnCalendar=daily\n"}
  ]}]})";

TEST(ConfigPayload, FullExampleWithEveryDefault) {
  ConfigLoad load = parse_config(kPayload, recipes());
  ASSERT_TRUE(load.config) << errors_of(load);
  EXPECT_TRUE(load.warnings.empty());
  const ContainerSpec& c = load.config->containers.at(0);

  SourceSpec sai{"sai", "https://example.invalid/sai.git", "main", "/home/sai/src/sai", 0, false, false,
                 GitCredentials{"", "", "/etc/farmhand/tokens/git", "ci"}};
  SourceSpec tools{"tools", "git@example.invalid:farm/tools.git", "v1.2", "/home/sai/src/tools", 1, true, true,
                   GitCredentials{"/etc/farmhand/keys/deploy", "/etc/farmhand/known_hosts", "", ""}};
  SourceSpec local{"local", "/srv/git/local.git", "0123456789abcdef0123456789abcdef01234567", "/opt/local", 0,
                   false, false, GitCredentials{}};
  EXPECT_EQ(c.sources, (std::vector<SourceSpec>{sai, tools, local}));

  ASSERT_EQ(c.files.size(), 2u);
  EXPECT_EQ(c.files[0], (FileSpec{"/etc/sai/builder/conf",
                                  "name={{ container }} on {{host}} at {{source.sai.commit}}\n", "root", "root",
                                  0644}));
  EXPECT_EQ(c.files[1], (FileSpec{"/etc/sai/env", "A={{address}}\nG={{gateway}}\n", "sai", "883", 0640}));

  ASSERT_EQ(c.setup.size(), 2u);
  EXPECT_EQ(c.setup[0], (SetupStep{"build-sai", {"cmake", "--build", "{{source.sai.path}}/build"}, RunAs::kRoot,
                                   "/home/sai/src/sai", {"CFLAGS=-O2", "HOME_DIR={{home}}"}, {"sai"}, 600}));
  // Defaults: the build user, its home (empty cwd), no env, every source, an hour.
  EXPECT_EQ(c.setup[1], (SetupStep{"hello", {"echo", "{{user}}"}, RunAs::kBuildUser, "", {},
                                   {"sai", "tools", "local"}, 3600}));

  ASSERT_EQ(c.services.size(), 2u);
  EXPECT_EQ(c.services[0],
            (ServiceSpec{"sai-builder.service", "[Unit]\nDescription=Sai builder on {{hostname}}\n", false}));
  EXPECT_EQ(c.services[1], (ServiceSpec{"nightly.timer", "[Timer]\nOnCalendar=daily\n", true}));
  EXPECT_FALSE(load.config->config_repo);
}

TEST(ConfigPayload, AStepMayDependOnNoSource) {
  ConfigLoad load = parse_config(
      R"({"containers": [{"name": "b", "distro": "debian", "release": "bookworm", "arch": "amd64",
          "setup": [{"name": "s", "run": ["true"], "sources": []}],
          "sources": [{"name": "x", "url": "file:///srv/x.git", "ref": "main", "path": "/srv/x"}]}]})",
      recipes());
  ASSERT_TRUE(load.config) << errors_of(load);
  EXPECT_TRUE(load.config->containers.at(0).setup.at(0).sources.empty());
}

TEST(ConfigPayload, RunAsNames) {
  EXPECT_EQ(to_string(RunAs::kRoot), "root");
  EXPECT_EQ(to_string(RunAs::kBuildUser), "sai");
  EXPECT_EQ(parse_run_as("sai"), RunAs::kBuildUser);
  EXPECT_EQ(parse_run_as("root"), RunAs::kRoot);
  EXPECT_EQ(parse_run_as("bob"), std::nullopt);
}

TEST(ConfigRepoSetting, LocalFileWithConfigRepoAndNoContainersIsValid) {
  ConfigLoad load = parse_config(
      R"({"config_repo": {"url": "file:///srv/farm-config.git", "path": "hosts/builder-01.json"}})", recipes());
  ASSERT_TRUE(load.config) << errors_of(load);
  ASSERT_TRUE(load.config->config_repo);
  EXPECT_EQ(*load.config->config_repo,
            (ConfigRepo{"file:///srv/farm-config.git", "main", "hosts/builder-01.json", GitCredentials{}, 300}));
  EXPECT_TRUE(load.config->containers.empty());
}

TEST(ConfigRepoSetting, EveryKey) {
  ConfigLoad load = parse_config(
      R"({"config_repo": {"url": "ssh://git@config.invalid:2222/farm.git", "ref": "prod", "path": "hosts/b1.json",
          "credentials": {"ssh_key": "/etc/farmhand/keys/config", "known_hosts": "/etc/farmhand/known_hosts"},
          "interval": 60}})",
      recipes());
  ASSERT_TRUE(load.config) << errors_of(load);
  EXPECT_EQ(*load.config->config_repo,
            (ConfigRepo{"ssh://git@config.invalid:2222/farm.git", "prod", "hosts/b1.json",
                        GitCredentials{"/etc/farmhand/keys/config", "/etc/farmhand/known_hosts", "", ""}, 60}));
}

constexpr const char* kLocalWithRepo =
    R"({"mirrors": {"debian": "file:///srv/local-debian"},
        "config_repo": {"url": "file:///srv/farm-config.git", "path": "hosts/b1.json"}})";
constexpr const char* kRepoLabel = "hosts/b1.json@1a2b3c4d5e6f";

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

struct BadConfig {
  const char* name;
  std::string json;
  std::vector<std::string> errors;
};

void PrintTo(const BadConfig& c, std::ostream* os) { *os << c.name; }

// One container of the minimum contract with `extra` members added.
std::string debian(const std::string& extra, const std::string& name = "bookworm") {
  return R"({"name": ")" + name + R"(", "distro": "debian", "release": "bookworm", "arch": "amd64")" +
         (extra.empty() ? "" : ", " + extra) + "}";
}
std::string with_containers(const std::string& containers, const std::string& top = "") {
  return "{" + (top.empty() ? "" : top + ", ") + R"("containers": [)" + containers + "]}";
}

// One source entry; `extra` members override the defaults (later duplicate keys are errors, so give url/ref
// only through `extra` when they differ).
std::string source(const std::string& name, const std::string& path, const std::string& extra = "") {
  std::string out = R"({"name": ")" + name + R"(", "path": ")" + path + "\"";
  if (extra.find("\"url\"") == std::string::npos) out += R"(, "url": "https://git.invalid/x.git")";
  if (extra.find("\"ref\"") == std::string::npos) out += R"(, "ref": "main")";
  return out + (extra.empty() ? "" : ", " + extra) + "}";
}

const std::string kContainerKeys =
    "(expected one of: arch, binds, boot, build_packages, devices, distro, files, name, network, packages, "
    "private_users, release, services, setup, sources)";

std::vector<BadConfig> bad_configs() {
  return {
      // ---- The payload ----
      {"PayloadContainersNotArrays",
       with_containers(debian(R"("sources": {}, "files": "x", "setup": 1, "services": null)")),
       {"/containers/0/sources: expected an array, got an object",
        "/containers/0/files: expected an array, got a string", "/containers/0/setup: expected an array, got a number",
        "/containers/0/services: expected an array, got null"}},
      {"SourceMissingKeysAndUnknownKey",
       with_containers(debian(R"("sources": [{"branch": "main"}, "x"])")),
       {"/containers/0/sources/0/branch: unknown key (expected one of: clean, credentials, depth, name, path, ref, "
        "submodules, url)",
        "/containers/0/sources/0/name: required key is missing", "/containers/0/sources/0/url: required key is missing",
        "/containers/0/sources/0/ref: required key is missing", "/containers/0/sources/0/path: required key is missing",
        "/containers/0/sources/1: expected an object, got a string"}},
      {"SourceName",
       with_containers(debian(R"("sources": [)" + source("Sai", "/a") + ", " + source("-x", "/b") + ", " +
                              source(std::string(65, 'a'), "/c") + "]")),
       {"/containers/0/sources/0/name: \"Sai\" is not a valid source name: use 1 to 64 lower-case letters, digits, "
        "'_', '.' or '-', starting with a letter or digit",
        "/containers/0/sources/1/name: \"-x\" is not a valid source name: use 1 to 64 lower-case letters, digits, "
        "'_', '.' or '-', starting with a letter or digit",
        "/containers/0/sources/2/name: \"" + std::string(65, 'a') +
            "\" is not a valid source name: use 1 to 64 lower-case letters, digits, '_', '.' or '-', starting with "
            "a letter or digit"}},
      {"DuplicateSourceName",
       with_containers(debian(R"("sources": [)" + source("a", "/a") + ", " + source("a", "/b") + "]")),
       {"/containers/0/sources/1/name: duplicate source name \"a\" (also at /containers/0/sources/0/name)"}},
      {"SourceUrls",
       with_containers(debian(R"("sources": [)" + source("a", "/a", R"("url": "ftp://x/y")") + ", " +
                              source("b", "/b", R"("url": "src/repo")") + ", " +
                              source("c", "/c", R"("url": "https://x/a b")") + ", " +
                              source("d", "/d", R"("url": "https:///repo")") + ", " +
                              source("e", "/e", R"("url": "-oProxyCommand=x:y")") + ", " +
                              source("f", "/f", R"("url": "file://relative")") + "]")),
       {"/containers/0/sources/0/url: \"ftp://x/y\" is not a git URL: it must start with https://, http://, ssh:// "
        "or file://, be an absolute path, or be user@host:path",
        "/containers/0/sources/1/url: \"src/repo\" is not a git URL: it must start with https://, http://, ssh:// "
        "or file://, be an absolute path, or be user@host:path",
        "/containers/0/sources/2/url: \"https://x/a b\" is not a git URL: it must not contain whitespace or control "
        "characters",
        "/containers/0/sources/3/url: \"https:///repo\" is not a git URL: it has no host",
        "/containers/0/sources/4/url: \"-oProxyCommand=x:y\" is not a git URL: it must not start with '-'",
        "/containers/0/sources/5/url: \"file://relative\" is not a git URL: it has no absolute path"}},
      {"PasswordInUrlIsRefusedAndNotShown",
       with_containers(debian(R"("sources": [)" + source("a", "/a", R"("url": "https://ci:s3cret@git.invalid/x.git")") +
                              ", " + source("b", "/b", R"("url": "ci:s3cret@git.invalid:x.git")") + "]")),
       {"/containers/0/sources/0/url: \"https://ci:***@git.invalid/x.git\" is not a git URL: it has a password in "
        "it: put the token in credentials.token_file",
        "/containers/0/sources/1/url: \"ci:***@git.invalid:x.git\" is not a git URL: it has a password in it: use "
        "credentials.ssh_key"}},
      {"SourceRefs",
       with_containers(debian(R"("sources": [)" + source("a", "/a", R"("ref": "")") + ", " +
                              source("b", "/b", R"("ref": "-f")") + ", " + source("c", "/c", R"("ref": "a b")") +
                              ", " + source("d", "/d", R"("ref": "main..dev")") + ", " +
                              source("e", "/e", R"("ref": "HEAD~1")") + "]")),
       {"/containers/0/sources/0/ref: \"\" is not a branch, tag or commit: it must not be empty",
        "/containers/0/sources/1/ref: \"-f\" is not a branch, tag or commit: it must not start with '-'",
        "/containers/0/sources/2/ref: \"a b\" is not a branch, tag or commit: it must not contain whitespace or "
        "control characters",
        "/containers/0/sources/3/ref: \"main..dev\" is not a branch, tag or commit: it must not contain \"..\"",
        "/containers/0/sources/4/ref: \"HEAD~1\" is not a branch, tag or commit: it must not contain any of ~ ^ : ? "
        "* [ \\"}},
      {"SourcePaths",
       with_containers(debian(R"("sources": [)" + source("a", "src") + ", " + source("b", "/") + ", " +
                              source("c", "/x/../y") + ", " + source("d", "/srv/a") + ", " + source("e", "/srv/a/") +
                              ", " + source("f", "/srv/a/sub") + ", " + source("g", "/srv") + "]")),
       {"/containers/0/sources/0/path: \"src\" is not an absolute path",
        "/containers/0/sources/1/path: \"/\" is the container's root: a source needs a directory of its own",
        "/containers/0/sources/2/path: \"/x/../y\" must not contain \"..\"",
        "/containers/0/sources/4/path: duplicate source path \"/srv/a/\" (also at /containers/0/sources/3/path)",
        "/containers/0/sources/5/path: \"/srv/a/sub\" is inside the source at /containers/0/sources/3/path "
        "(\"/srv/a\"): sources must not nest",
        "/containers/0/sources/6/path: \"/srv\" contains the source at /containers/0/sources/3/path (\"/srv/a\"): "
        "sources must not nest"}},
      {"SourceDepthAndSubmodules",
       with_containers(debian(R"("sources": [)" + source("a", "/a", R"("depth": -1, "submodules": "yes")") + ", " +
                              source("b", "/b", R"("depth": 1.5, "clean": 1)") + "]")),
       {"/containers/0/sources/0/depth: -1 is out of range: it must be between 0 and 1000000 (0: the whole history)",
        "/containers/0/sources/0/submodules: expected a boolean, got a string",
        "/containers/0/sources/1/depth: expected an integer, got a number",
        "/containers/0/sources/1/clean: expected a boolean, got a number"}},
      {"CredentialsMustFitTheUrl",
       with_containers(debian(
           R"("sources": [)" +
           source("a", "/a",
                  R"("credentials": {"ssh_key": "/k", "known_hosts": "/kh", "token_file": "/t", "username": "a b", "password": "x"})") +
           ", " + source("b", "/b", R"("url": "ssh://git@h/x.git", "credentials": {"token_file": "/t"})") + ", " +
           source("c", "/c", R"("credentials": {"token_file": "t"})") + "]")),
       {"/containers/0/sources/0/credentials/ssh_key: only an ssh URL (ssh:// or user@host:path) uses an ssh key; "
        "\"https://git.invalid/x.git\" is not one",
        "/containers/0/sources/0/credentials/known_hosts: only an ssh URL (ssh:// or user@host:path) uses "
        "known_hosts; \"https://git.invalid/x.git\" is not one",
        "/containers/0/sources/0/credentials/username: \"a b\" is not a user name: it must be non-empty, without "
        "whitespace, control characters, ':' or '@'",
        "/containers/0/sources/0/credentials/password: unknown key (expected one of: known_hosts, ssh_key, "
        "token_file, username)",
        "/containers/0/sources/1/credentials/token_file: only an https:// or http:// URL uses a token file; "
        "\"ssh://git@h/x.git\" is not one",
        "/containers/0/sources/2/credentials/token_file: \"t\" is not an absolute path"}},
      {"Files",
       with_containers(debian(
           R"("files": [{"path": "etc/x", "content": 5}, {"path": "/etc/d/", "content": ["a", 1]},
                        {"path": "/etc/a", "content": "", "owner": "Bad Name", "group": "4294967295", "mode": "644x"},
                        {"path": "/etc/b", "content": "", "mode": "0666"}, {"path": "/etc/./a", "content": ""},
                        {"mode": 644}])")),
       {"/containers/0/files/0/path: \"etc/x\" is not an absolute path",
        "/containers/0/files/0/content: expected a string or an array of strings, got a number",
        "/containers/0/files/1/path: \"/etc/d/\" names a directory: a file's path must not end in '/'",
        "/containers/0/files/1/content/1: expected a string, got a number",
        "/containers/0/files/2/owner: \"Bad Name\" is not a user name or numeric id",
        "/containers/0/files/2/group: \"4294967295\" is not a group name or numeric id",
        "/containers/0/files/2/mode: \"644x\" is not a file mode: write it in octal, like \"0644\"",
        "/containers/0/files/3/mode: \"0666\" lets every user write the file: remove the world-write bit",
        "/containers/0/files/4/path: duplicate file path \"/etc/./a\" (also at /containers/0/files/2/path)",
        "/containers/0/files/5/mode: expected a string, got a number",
        "/containers/0/files/5/path: required key is missing",
        "/containers/0/files/5/content: required key is missing"}},
      {"Templates",
       with_containers(debian(
           R"("sources": [)" + source("sai", "/s") + R"(],
              "files": [{"path": "/a", "content": "{{contianer}} {{ source.sai.sha }} {{source.other.path}}"},
                        {"path": "/b", "content": ["ok {{source.sai.path}}", "{{host"]}],
              "setup": [{"name": "s", "run": ["{{nope}}"], "env": ["X={{ home"]}],
              "services": [{"name": "a.service", "content": "{{{{container}}}}"}])")),
       {"/containers/0/files/0/content: unknown template variable \"contianer\" (known: address, container, gateway, "
        "home, host, hostname, server_url, subnet, user, source.NAME.path, source.NAME.commit, source.NAME.url)",
        "/containers/0/files/0/content: unknown template variable \"source.sai.sha\" (a source has: path, commit, url)",
        "/containers/0/files/0/content: unknown template variable \"source.other.path\": the container has no source "
        "\"other\"",
        "/containers/0/files/1/content/1: unterminated {{ at offset 0",
        "/containers/0/setup/0/run/0: unknown template variable \"nope\" (known: address, container, gateway, home, "
        "host, hostname, server_url, subnet, user, source.NAME.path, source.NAME.commit, source.NAME.url)",
        "/containers/0/setup/0/env/0: unterminated {{ at offset 2",
        "/containers/0/services/0/content: unknown template variable \"{{container\" (known: address, container, "
        "gateway, home, host, hostname, server_url, subnet, user, source.NAME.path, source.NAME.commit, "
        "source.NAME.url)"}},
      {"SetupSteps",
       with_containers(debian(
           R"("setup": [{"name": "Build", "run": [], "user": "bob", "cwd": "build", "timeout": 0},
                        {"name": "a", "run": ["", "x\u0000"], "env": ["1X=y", "NOVALUE", "A=1", "A=2"], "timeout": 86401},
                        {"name": "a", "run": "make", "env": "A=1", "sources": "all"},
                        {"command": ["true"]}])")),
       {"/containers/0/setup/0/name: \"Build\" is not a valid step name: use 1 to 64 lower-case letters, digits, '_', "
        "'.' or '-', starting with a letter or digit",
        "/containers/0/setup/0/run: expected at least one string: the program to run",
        "/containers/0/setup/0/user: unknown user \"bob\" (expected one of: root, sai)",
        "/containers/0/setup/0/cwd: \"build\" is not an absolute path",
        "/containers/0/setup/0/timeout: 0 is out of range: it must be between 1 and 86400 seconds",
        "/containers/0/setup/1/run/0: the program must not be empty",
        "/containers/0/setup/1/run/1: \"x\\u0000\" must not contain a NUL character",
        "/containers/0/setup/1/env/0: \"1X=y\" is not KEY=value with KEY of letters, digits and '_' (not starting "
        "with a digit)",
        "/containers/0/setup/1/env/1: \"NOVALUE\" is not KEY=value with KEY of letters, digits and '_' (not starting "
        "with a digit)",
        "/containers/0/setup/1/env/3: duplicate variable \"A\" (also at /containers/0/setup/1/env/2)",
        "/containers/0/setup/1/timeout: 86401 is out of range: it must be between 1 and 86400 seconds",
        "/containers/0/setup/2/name: duplicate step name \"a\" (also at /containers/0/setup/1/name)",
        "/containers/0/setup/2/run: expected an array, got a string",
        "/containers/0/setup/2/env: expected an array, got a string",
        "/containers/0/setup/2/sources: expected an array, got a string",
        "/containers/0/setup/3/command: unknown key (expected one of: cwd, env, name, run, sources, timeout, user)",
        "/containers/0/setup/3/name: required key is missing", "/containers/0/setup/3/run: required key is missing"}},
      {"StepSourcesMustBeTheContainers",
       with_containers(debian(R"("setup": [{"name": "s", "run": ["make"], "sources": ["sai", "tools", "sai", 1]}],
                                 "sources": [)" + source("sai", "/s") + "]") + ", " +
                       debian(R"("setup": [{"name": "s", "run": ["make"], "sources": ["sai"]}])", "b")),
       {"/containers/0/setup/0/sources/1: unknown source \"tools\" (the container's sources: sai)",
        "/containers/0/setup/0/sources/2: duplicate source \"sai\"",
        "/containers/0/setup/0/sources/3: expected a string, got a number",
        "/containers/1/setup/0/sources/0: unknown source \"sai\" (the container has no sources)"}},
      {"Services",
       with_containers(debian(
           R"("services": [{"name": "sai", "content": ""}, {"name": "a/b.service", "content": ""},
                           {"name": ".service", "content": ""}, {"name": "x.timer", "content": "", "enable": "yes"},
                           {"name": "x.timer", "content": []}, {"unit": "y.service"}])")),
       {"/containers/0/services/0/name: \"sai\" is not a unit file name: it must end in .service, .timer, .socket or "
        ".path",
        "/containers/0/services/1/name: \"a/b.service\" is not a unit file name: use only letters, digits and the "
        "characters : - _ . @ \\",
        "/containers/0/services/2/name: \".service\" is not a unit file name: it has nothing before the suffix",
        "/containers/0/services/3/enable: expected a boolean, got a string",
        "/containers/0/services/4/name: duplicate service \"x.timer\" (also at /containers/0/services/3/name)",
        "/containers/0/services/5/unit: unknown key (expected one of: content, enable, name)",
        "/containers/0/services/5/name: required key is missing",
        "/containers/0/services/5/content: required key is missing"}},
      // ---- config_repo ----
      {"ConfigRepoWithLocalContainers",
       R"({"containers": [], "config_repo": {"url": "file:///srv/farm.git", "path": "hosts/b1.json"}})",
       {"/containers: containers come from config_repo (hosts/b1.json in file:///srv/farm.git): remove this key or "
        "config_repo"}},
      {"ConfigRepoInvalidWithLocalContainers",
       R"({"config_repo": {"url": 1}, "containers": [{}]})",
       {"/config_repo/url: expected a string, got a number", "/config_repo/path: required key is missing",
        "/containers: containers come from config_repo (/config_repo): remove this key or config_repo"}},
      {"ConfigRepoKeys",
       R"({"config_repo": {"url": "https://u:pw@h/farm.git", "ref": "a..b", "path": "/hosts/b1.json",
                           "interval": 10, "branch": "main"}})",
       {"/config_repo/url: \"https://u:***@h/farm.git\" is not a git URL: it has a password in it: put the token in "
        "credentials.token_file",
        "/config_repo/ref: \"a..b\" is not a branch, tag or commit: it must not contain \"..\"",
        "/config_repo/path: \"/hosts/b1.json\" must be relative to the top of the repository (no leading '/')",
        "/config_repo/interval: 10 is out of range: it must be between 30 and 86400 seconds",
        "/config_repo/branch: unknown key (expected one of: credentials, interval, path, ref, url)"}},
      {"ConfigRepoPaths",
       R"({"config_repo": {"url": "/srv/farm.git", "path": "hosts/../b1.json", "credentials": {"ssh_key": "/k"}}})",
       {"/config_repo/path: \"hosts/../b1.json\" must not contain \"..\"",
        "/config_repo/credentials/ssh_key: only an ssh URL (ssh:// or user@host:path) uses an ssh key; "
        "\"/srv/farm.git\" is not one"}},
      {"ConfigRepoMissingUrlAndEmptyPath",
       R"({"config_repo": {"path": ""}})",
       {"/config_repo/path: \"\" does not name a file in the repository", "/config_repo/url: required key is missing"}},
      {"ConfigRepoNotAnObject", R"({"config_repo": "file:///srv/farm.git"})",
       {"/config_repo: expected an object, got a string"}},
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
      {"DuplicateName",
       with_containers(debian("", "foo") + ", " + debian("", "bar") + ", " + debian("", "foo")),
       {"/containers/2/name: duplicate name \"foo\" (also at /containers/0/name)"}},
      {"LegacyInterfaceNameCollision",
       with_containers(debian("", "buildhost-deb11") + ", " + debian("", "buildhost-deb12")),
       {"/containers/1/name: \"buildhost-deb12\" collides with \"buildhost-deb11\" (/containers/0/name): "
        "systemd older than v245 names both host interfaces \"ve-buildhost-d\""}},
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
      {"MirrorForUnknownDistro",
       R"({"mirrors": {"slackware": "https://mirrors.invalid/"}})",
       {"/mirrors/slackware: unknown distro \"slackware\" (known: centos, debian)"}},
      {"MirrorUrls",
       R"({"mirrors": {"debian": "ftp://MIRROR-HOST/debian", "centos": "https://a b/", "debian": 1}})",
       {"/mirrors/debian: \"ftp://MIRROR-HOST/debian\" is not a mirror URL: it must start with http://, "
        "https:// or file://",
        "/mirrors/centos: \"https://a b/\" is not a mirror URL: it must not contain whitespace or control "
        "characters",
        "/mirrors/debian: duplicate key"}},
      {"MirrorWithNothingAfterTheScheme",
       R"({"mirrors": {"debian": "http://", "centos": ["x"]}})",
       {"/mirrors/debian: \"http://\" is not a mirror URL: it has nothing after the scheme",
        "/mirrors/centos: expected a string, got an array"}},
      {"MirrorsNotAnObject",
       R"({"mirrors": ["file:///srv/debian"]})",
       {"/mirrors: expected an object, got an array"}},
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
      {"SubnetsOverlap",
       with_containers(debian(R"("network": {"subnet": "192.168.85.0/25"})", "a") + ", " +
                       debian(R"("network": {"subnet": "192.168.86.0/24"})", "b") + ", " +
                       debian(R"("network": {"subnet": "192.168.85.0/24"})", "c")),
       {"/containers/2/network/subnet: 192.168.85.0/24 overlaps 192.168.85.0/25 "
        "(/containers/0/network/subnet)"}},
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
      {"MacvlanAndIpvlanOnOneLink",
       with_containers(debian(R"("network": {"mode": "macvlan", "link": "eth0"})") + ", " +
                       debian(R"("network": {"mode": "macvlan", "link": "eth0"})", "b") + ", " +
                       debian(R"("network": {"mode": "ipvlan", "link": "eth0"})", "c")),
       {"/containers/2/network/link: \"eth0\" already carries macvlan links (/containers/0/network/link): the "
        "kernel does not allow ipvlan links on the same interface"}},
      {"DeviceRules",
       with_containers(debian(R"("devices": [{"match": {"usb_ids": ["0403:60"], "subsystem": "scsi", "interface": "1"}},
                                           {"match": {}}, {"group": "Dial Out", "mode": "0666"},
                                           {"match": {"by_id": "a/b", "serial": "has space"}, "mode": "0640x"},
                                           {"match": {"usb_ids": []}, "mode": "0460"}, "x"])")),
       {"/containers/0/devices/0/match/usb_ids/0: \"0403:60\" is not a USB id pair: write \"vendor:product\" in hex, "
        "like \"0403:6001\"",
        "/containers/0/devices/0/match/subsystem: unknown subsystem \"scsi\" (expected one of: hidraw, tty, usb)",
        "/containers/0/devices/0/match/interface: \"1\" is not a USB interface number: two hex digits, like \"00\"",
        "/containers/0/devices/1/match: a rule must match on at least one of: by_id, interface, path, serial, "
        "subsystem, usb_ids",
        "/containers/0/devices/2/group: \"Dial Out\" is not a valid group name",
        "/containers/0/devices/2/mode: \"0666\" gives other users access: a device node is never world-accessible "
        "(use \"0660\")",
        "/containers/0/devices/2/match: required key is missing",
        "/containers/0/devices/3/match/by_id: \"a/b\" must be a name in /dev/serial/by-id/, without '/'",
        "/containers/0/devices/3/match/serial: \"has space\" must be non-empty, without spaces, quotes, backslashes or "
        "control characters",
        "/containers/0/devices/3/mode: \"0640x\" is not a file mode: write it in octal, like \"0660\"",
        "/containers/0/devices/4/match/usb_ids: expected at least one \"vendor:product\" pair",
        "/containers/0/devices/4/mode: \"0460\" does not let the owner read and write the device",
        "/containers/0/devices/5: expected an object, got a string"}},
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
      {"HostNetworkSettings",
       R"({"network": {"backend": "wicked", "firewall": "iptables", "zone": "my zone"}})",
       {"/network/backend: unknown network backend \"wicked\" (expected one of: auto, networkmanager, networkd, plain)",
        "/network/firewall: unknown firewall \"iptables\" (expected one of: auto, firewalld, nftables, none)",
        "/network/zone: \"my zone\" is not a valid firewalld zone name: use 1 to 17 letters, digits, '-' or '_'"}},
      {"Server",
       R"({"server": {"url": "ftp://farm", "ca_file": "ca.pem", "token": "abc"}})",
       {"/server/url: \"ftp://farm\" is not a server URL: it must start with ws://, wss://, http:// or https://",
        "/server/ca_file: \"ca.pem\" is not an absolute path",
        "/server/token: unknown key (expected one of: ca_file, credential_file, url)"}},
      {"ServerWithoutUrl",
       R"({"server": {"credential_file": "/etc/farmhand/credential"}})",
       {"/server/url: required key is missing"}},
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

class ConfigRejects : public testing::TestWithParam<BadConfig> {};

TEST_P(ConfigRejects, WithExactErrors) {
  ConfigLoad load = parse_config(GetParam().json, recipes());
  EXPECT_EQ(load.errors, GetParam().errors);
  EXPECT_FALSE(load.config);
}

INSTANTIATE_TEST_SUITE_P(ConfigBad, ConfigRejects, testing::ValuesIn(bad_configs()),
                         [](const testing::TestParamInfo<BadConfig>& param_info) {
                           return param_info.param.name;
                         });

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

TEST(ConfigWarnings, MirrorForADistroThatUsesNone) {
  RecipeBook book = book_of(
      {{"debian.json", kDebianRecipe},
       {"gentoo.json", recipe_document("gentoo", R"({"amd64":"amd64"})", "unused", "^[a-z0-9][a-z0-9+.-]+$",
                                       R"({"current":{"build_packages":[]}})")}});
  ConfigLoad load = parse_config(R"({"mirrors": {"gentoo": "https://distfiles.invalid/"}})", book);
  ASSERT_TRUE(load.config) << errors_of(load);
  EXPECT_EQ(
      load.warnings,
      (std::vector<std::string>{"/mirrors/gentoo: gentoo does not use a mirror: this setting is ignored"}));
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
}  // namespace farmhand::provisioner
