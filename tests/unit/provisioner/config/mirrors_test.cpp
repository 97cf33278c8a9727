// /mirrors, a mirror URL per distro (provisioner/config/mirrors.cpp).
#include "tests/unit/provisioner/config/config_fixture.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace farmhand::provisioner::config_test {
namespace {

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

std::vector<BadConfig> bad_configs() {
  return {
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
  };
}

class ConfigMirrorsRejects : public testing::TestWithParam<BadConfig> {};

TEST_P(ConfigMirrorsRejects, WithExactErrors) { expect_rejected(GetParam()); }

INSTANTIATE_TEST_SUITE_P(ConfigBad, ConfigMirrorsRejects, testing::ValuesIn(bad_configs()),
                         bad_config_name);

}  // namespace
}  // namespace farmhand::provisioner::config_test
