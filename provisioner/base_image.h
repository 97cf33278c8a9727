// The base-tree cache: one fully provisioned root filesystem per
// (distro, release, arch, package set, recipe), built once and cloned for
// every container that wants it.
//
// A base is built under a lock into a hidden partial directory; its manifest
// is written next to it and the directory renamed into place last, so a base
// either exists complete or not at all. A base whose manifest is missing or
// names another key is not trusted and is rebuilt.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "common/fs.h"
#include "provisioner/command_runner.h"
#include "provisioner/layout.h"
#include "provisioner/recipe.h"

namespace farmhand::provisioner {

inline constexpr const char* kBuildUser = "sai";
inline constexpr int kBuildUid = 883;

class BaseImages {
 public:
  // images_dir: host path of the cache's images/ directory.
  BaseImages(fs::path images_dir, CommandRunner& commands)
      : images_dir_(std::move(images_dir)), commands_(commands) {}

  fs::path path_of(const BaseSpec& base) const { return images_dir_ / base.key(); }
  bool ready(const BaseSpec& base) const;

  // Returns the base's host path, building it first if needed. `progress`
  // receives the tools' output lines while it builds.
  Result<fs::path> ensure(const BaseSpec& base, const ReleaseRecipe& recipe,
                          const std::string& mirror,
                          const std::function<void(std::string_view)>& progress);

 private:
  Status build(const BaseSpec& base, const ReleaseRecipe& recipe, const std::string& mirror,
               const fs::path& partial, const std::function<void(std::string_view)>& progress);
  fs::path images_dir_;
  CommandRunner& commands_;
};

// Steps shared by base builds and per-container setup.

// Whether the tree's /etc/passwd has the build user with uid 883.
bool tree_has_build_user(const fs::path& root);
// Of `groups`, those the build user is not a member of in the tree's
// /etc/group (including groups that do not exist there).
std::vector<std::string> build_user_missing_groups(const fs::path& root, const std::vector<std::string>& groups);
// Enables each unit of `units` that the tree ships (systemctl enable, offline).
Status enable_units_in_tree(CommandRunner& commands, const fs::path& root,
                            const std::vector<std::string>& units);

}  // namespace farmhand::provisioner
