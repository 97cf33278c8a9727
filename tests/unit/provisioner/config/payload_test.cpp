// A container's payload (provisioner/config/payload.cpp): sources and their
// credentials, files, setup steps, services and the templates in them.
#include "tests/unit/provisioner/config/config_fixture.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace farmhand::provisioner::config_test {
namespace {

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

std::vector<BadConfig> bad_configs() {
  return {
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
  };
}

class ConfigPayloadRejects : public testing::TestWithParam<BadConfig> {};

TEST_P(ConfigPayloadRejects, WithExactErrors) { expect_rejected(GetParam()); }

INSTANTIATE_TEST_SUITE_P(ConfigBad, ConfigPayloadRejects, testing::ValuesIn(bad_configs()),
                         bad_config_name);

}  // namespace
}  // namespace farmhand::provisioner::config_test
