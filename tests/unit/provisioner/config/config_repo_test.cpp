// /config_repo, the git repository that holds this host's containers
// (provisioner/config/config_repo.cpp).
#include "tests/unit/provisioner/config/config_fixture.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace farmhand::provisioner::config_test {
namespace {

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

std::vector<BadConfig> bad_configs() {
  return {
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
  };
}

class ConfigRepoRejects : public testing::TestWithParam<BadConfig> {};

TEST_P(ConfigRepoRejects, WithExactErrors) { expect_rejected(GetParam()); }

INSTANTIATE_TEST_SUITE_P(ConfigBad, ConfigRepoRejects, testing::ValuesIn(bad_configs()),
                         bad_config_name);

}  // namespace
}  // namespace farmhand::provisioner::config_test
