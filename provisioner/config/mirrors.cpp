// /mirrors: a mirror URL per distro. Its keys are the recipes' distros, so it
// is walked here rather than through a keyword table.
#include <algorithm>
#include <set>

#include "provisioner/config/checks.h"
#include "provisioner/config/sections.h"

namespace farmhand::provisioner::config_parser {
namespace {

// Every release of `distro` ignores the mirror.
bool mirror_unused(const RecipeBook& recipes, const std::string& distro) {
  auto releases = recipes.releases(distro);
  return !releases.empty() && std::all_of(releases.begin(), releases.end(), [&](const std::string& r) {
    auto recipe = recipes.resolve(distro, r);
    return recipe.ok() && recipe->mirror == MirrorPolicy::kUnused;
  });
}

}  // namespace

void parse_mirrors(Context& ctx, const Json& object, const std::string& pointer, AgentConfig& config) {
  Diagnostics& diag = ctx.diag;
  std::set<std::string> seen;
  for (const auto& [distro, value] : object.get_ref<const Json::object_t&>()) {
    std::string kp = child(pointer, distro);
    if (!seen.insert(distro).second) {
      diag.error(kp, "duplicate key");
      continue;
    }
    if (!ctx.recipes.has_distro(distro)) {
      diag.error(kp, "unknown distro " + quote(distro) + " (known: " + join(ctx.recipes.distros()) + ")");
      continue;
    }
    auto url = as_string(diag, value, kp);
    if (!url) continue;
    std::optional<std::string_view> rest;  // after the scheme
    for (std::string_view scheme : {"http://", "https://", "file://"}) {
      if (url->starts_with(scheme)) rest = std::string_view(*url).substr(scheme.size());
    }
    std::string bad = quote(*url) + " is not a mirror URL: ";
    if (!rest) {
      diag.error(kp, bad + "it must start with http://, https:// or file://");
    } else if (has_control(*url) || url->find(' ') != std::string::npos) {
      diag.error(kp, bad + "it must not contain whitespace or control characters");
    } else if (rest->empty()) {
      diag.error(kp, bad + "it has nothing after the scheme");
    } else {
      config.mirrors[distro] = *url;
      if (mirror_unused(ctx.recipes, distro)) {
        diag.warn(kp, distro + " does not use a mirror: this setting is ignored");
      }
    }
  }
}

}  // namespace farmhand::provisioner::config_parser
