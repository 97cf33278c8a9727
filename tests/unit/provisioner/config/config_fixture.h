// What the configuration parser's tests share: small inline recipes (so the
// tests do not depend on the content of nspawn-templates/recipes/), document
// builders, and the table form of a rejected document with its exact errors.
#pragma once

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "provisioner/config.h"

namespace farmhand::provisioner::config_test {

inline std::string recipe_document(const std::string& distro, const std::string& arches, const std::string& mirror,
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

inline const std::string kDebianRecipe =
    recipe_document("debian", R"({"amd64":"amd64","arm64":"arm64"})", "optional", "^[a-z0-9][a-z0-9+.-]+$",
                    R"({"bookworm":{"build_packages":["cmake"]},"trixie":{"build_packages":["cmake"]}})");
inline const std::string kCentosRecipe =
    recipe_document("centos", R"({"amd64":"x86_64","arm64":"aarch64"})", "required",
                    "^[A-Za-z0-9_][A-Za-z0-9_+.-]*$", R"({"stream9":{"build_packages":["cmake"]}})");

inline RecipeBook book_of(const std::vector<std::pair<std::string, std::string>>& documents) {
  auto book = RecipeBook::from_documents(documents);
  if (!book.ok()) {
    ADD_FAILURE() << "test recipes do not load: " << book.error().message();
    return RecipeBook{};
  }
  return std::move(book).value();
}

// debian (mirror optional) and centos (mirror required).
inline const RecipeBook& recipes() {
  static const RecipeBook book = book_of({{"debian.json", kDebianRecipe}, {"centos.json", kCentosRecipe}});
  return book;
}

inline std::string errors_of(const ConfigLoad& load) {
  std::string out;
  for (const auto& e : load.errors) out += "\n  " + e;
  return out;
}

inline constexpr const char* kMinimum =
    R"({"containers": [{"name": "bookworm-amd64", "distro": "debian", "release": "bookworm",
                        "arch": "amd64", "packages": ["cmake"]}]})";

// One container of the minimum contract with `extra` members added.
inline std::string debian(const std::string& extra, const std::string& name = "bookworm") {
  return R"({"name": ")" + name + R"(", "distro": "debian", "release": "bookworm", "arch": "amd64")" +
         (extra.empty() ? "" : ", " + extra) + "}";
}
inline std::string with_containers(const std::string& containers, const std::string& top = "") {
  return "{" + (top.empty() ? "" : top + ", ") + R"("containers": [)" + containers + "]}";
}

// One source entry; `extra` members override the defaults (later duplicate keys are errors, so give url/ref
// only through `extra` when they differ).
inline std::string source(const std::string& name, const std::string& path, const std::string& extra = "") {
  std::string out = R"({"name": ")" + name + R"(", "path": ")" + path + "\"";
  if (extra.find("\"url\"") == std::string::npos) out += R"(, "url": "https://git.invalid/x.git")";
  if (extra.find("\"ref\"") == std::string::npos) out += R"(, "ref": "main")";
  return out + (extra.empty() ? "" : ", " + extra) + "}";
}

inline const std::string kContainerKeys =
    "(expected one of: arch, binds, boot, build_packages, devices, distro, files, name, network, packages, "
    "private_users, release, services, setup, sources)";

// A document the parser must refuse, with every error it must give, in order.
struct BadConfig {
  const char* name;
  std::string json;
  std::vector<std::string> errors;
};

inline void PrintTo(const BadConfig& c, std::ostream* os) { *os << c.name; }

inline std::string bad_config_name(const testing::TestParamInfo<BadConfig>& param_info) {
  return param_info.param.name;
}

inline void expect_rejected(const BadConfig& bad) {
  ConfigLoad load = parse_config(bad.json, recipes());
  EXPECT_EQ(load.errors, bad.errors);
  EXPECT_FALSE(load.config);
}

}  // namespace farmhand::provisioner::config_test
