// /server, the central server the agent reports to (provisioner/config/server.cpp).
#include "tests/unit/provisioner/config/config_fixture.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace farmhand::provisioner::config_test {
namespace {

TEST(ConfigServer, UrlAloneGetsTheDefaultCredentialFileAndTheSystemCas) {
  ConfigLoad load = parse_config(R"({"server": {"url": "wss://farm.invalid"}})", recipes());
  ASSERT_TRUE(load.config) << errors_of(load);
  ASSERT_TRUE(load.config->server);
  EXPECT_EQ(*load.config->server, (ServerSettings{"wss://farm.invalid", "", "/etc/farmhand/credential"}));
}

TEST(ConfigServer, EveryKey) {
  ConfigLoad load = parse_config(
      R"({"server": {"credential_file": "/srv/cred", "url": "https://farm.invalid:8443", "ca_file": "/srv/ca.pem"}})",
      recipes());
  ASSERT_TRUE(load.config) << errors_of(load);
  EXPECT_EQ(*load.config->server, (ServerSettings{"https://farm.invalid:8443", "/srv/ca.pem", "/srv/cred"}));
}

TEST(ConfigServer, AbsentMeansNoServer) {
  ConfigLoad load = parse_config("{}", recipes());
  ASSERT_TRUE(load.config) << errors_of(load);
  EXPECT_FALSE(load.config->server);
}

std::vector<BadConfig> bad_configs() {
  return {
      {"Server",
       R"({"server": {"url": "ftp://farm", "ca_file": "ca.pem", "token": "abc"}})",
       {"/server/url: \"ftp://farm\" is not a server URL: it must start with ws://, wss://, http:// or https://",
        "/server/ca_file: \"ca.pem\" is not an absolute path",
        "/server/token: unknown key (expected one of: ca_file, credential_file, url)"}},
      {"ServerWithoutUrl",
       R"({"server": {"credential_file": "/etc/farmhand/credential"}})",
       {"/server/url: required key is missing"}},
  };
}

class ConfigServerRejects : public testing::TestWithParam<BadConfig> {};

TEST_P(ConfigServerRejects, WithExactErrors) { expect_rejected(GetParam()); }

INSTANTIATE_TEST_SUITE_P(ConfigBad, ConfigServerRejects, testing::ValuesIn(bad_configs()),
                         bad_config_name);

}  // namespace
}  // namespace farmhand::provisioner::config_test
