// Distro recipes: how to bootstrap, populate and configure a build container
// for one distro and release. The knowledge is data (nspawn-templates/recipes/
// *.json, embedded into the binary at build time); this code only loads,
// merges and expands it. Adding a distro means adding a JSON file.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"

namespace farmhand::provisioner {

enum class Where { kHost, kContainer };

// One command of a recipe, still with placeholders (see expand_argv).
struct RecipeCommand {
  Where where = Where::kContainer;
  std::vector<std::string> argv;  // argv[0] is a program name or absolute path
  std::vector<std::string> env;   // "KEY=value", added to the minimal environment
};

enum class MirrorPolicy { kOptional, kRequired, kUnused };

// A distro recipe with one release's overrides merged in.
struct ReleaseRecipe {
  std::string distro;
  std::string release;
  int recipe_version = 0;
  std::string family;                          // "debian", "redhat", "gentoo", ...
  std::map<std::string, std::string> arches;   // farmhand arch ("amd64") -> distro's name ("x86_64")
  std::string package_name_pattern;            // ECMAScript regex a package name must match fully
  MirrorPolicy mirror = MirrorPolicy::kOptional;
  std::vector<std::string> boot_packages;      // needed to boot: systemd, dbus, iproute2...
  std::vector<std::string> build_packages;     // the release's CI build package set
  std::vector<RecipeCommand> bootstrap;        // create the root filesystem
  std::vector<RecipeCommand> prepare;          // before installing packages (refresh indexes)
  RecipeCommand install;                       // install {packages}
  std::vector<RecipeCommand> cleanup;          // after installing (drop caches)
  RecipeCommand create_user;                   // create the sai build user
  std::string user_group;                      // the sai user's primary group
  std::string network_method;                  // "networkd" or "networkmanager"
  std::vector<std::string> enable_units;       // enabled in the container if their unit exists
  // sha256 over the merged recipe (version included): part of the base-tree
  // cache key, so any change to the recipe rebuilds the base.
  std::string fingerprint;
};

// Values for placeholders in recipe argv templates:
//   "{release}", "{arch}" (the distro's arch name), "{root}", "{mirror}", "{work}"
//   are substituted inside an argument; an argument naming a placeholder whose
//   value is empty is dropped entirely (so an unset mirror vanishes).
//   "{packages}" and "{boot_packages}" as a whole argument splice the list;
//   "{boot_packages,}" inside an argument joins the list with commas.
struct ExpandVars {
  std::string release;
  std::string arch;
  std::string root;
  std::string mirror;
  std::string work;
  std::vector<std::string> packages;
  std::vector<std::string> boot_packages;
};

// Unknown placeholders are an error naming them.
Result<std::vector<std::string>> expand_argv(const std::vector<std::string>& argv_template,
                                             const ExpandVars& vars);

class RecipeBook {
 public:
  // The recipes embedded from nspawn-templates/recipes/ at build time.
  static Result<RecipeBook> builtin();
  // Parses recipe documents given as (file name, JSON text); errors name the
  // file and the JSON pointer.
  static Result<RecipeBook> from_documents(
      const std::vector<std::pair<std::string, std::string>>& documents);

  std::vector<std::string> distros() const;  // sorted
  bool has_distro(const std::string& distro) const;
  std::vector<std::string> releases(const std::string& distro) const;  // sorted
  // The recipe for distro+release with the release's overrides merged.
  Result<ReleaseRecipe> resolve(const std::string& distro, const std::string& release) const;

 private:
  struct Entry;
  std::map<std::string, std::shared_ptr<const Entry>> by_distro_;
};

}  // namespace farmhand::provisioner
