#include "provisioner/base_image.h"

#include <nlohmann/json.hpp>

#include "common/etc_files.h"
#include "common/log.h"
#include "provisioner/clone.h"

namespace farmhand::provisioner {

namespace {

fs::path manifest_path(const fs::path& images_dir, const std::string& key) {
  return images_dir / (key + ".json");
}

std::string manifest_json(const BaseSpec& base) {
  nlohmann::ordered_json j;
  j["key"] = base.key();
  j["distro"] = base.distro;
  j["release"] = base.release;
  j["arch"] = base.arch;
  j["packages"] = base.packages;
  j["recipe_fingerprint"] = base.recipe_fingerprint;
  return j.dump(2) + "\n";
}

Status run_recipe_command(CommandRunner& commands, const RecipeCommand& rc, const ExpandVars& vars,
                          const fs::path& root, const std::function<void(std::string_view)>& progress) {
  auto argv = expand_argv(rc.argv, vars);
  if (!argv) return argv.error();
  if (argv->empty()) return {};
  if (rc.where == Where::kHost) return commands.host(*argv, rc.env, progress);
  return commands.in_tree(root.string(), *argv, rc.env, CommandRunner::Dns::kHost, progress);
}

}  // namespace

std::vector<std::string> build_user_missing_groups(const fs::path& root, const std::vector<std::string>& groups) {
  std::vector<std::string> missing;
  if (groups.empty()) return missing;
  // An unreadable or missing /etc/group has no members: every group is missing.
  auto group = etc::read_group(root);
  const std::string text = group && group->has_value() ? **group : "";
  for (const auto& g : groups) {
    if (!etc::is_member(text, g, kBuildUser)) missing.push_back(g);
  }
  return missing;
}

bool tree_has_build_user(const fs::path& root) {
  auto passwd = etc::read_passwd(root);
  if (!passwd || !passwd->has_value()) return false;
  auto user = etc::find_user(**passwd, std::string_view(kBuildUser));
  return user && user->uid == static_cast<uid_t>(kBuildUid);
}

Status enable_units_in_tree(CommandRunner& commands, const fs::path& root,
                            const std::vector<std::string>& units) {
  std::vector<std::string> present;
  for (const auto& unit : units) {
    const std::string file = unit.find('.') == std::string::npos ? unit + ".service" : unit;
    for (const char* dir : {"usr/lib/systemd/system/", "lib/systemd/system/", "etc/systemd/system/"}) {
      if (path_exists(root / (dir + file))) {
        present.push_back(file);
        break;
      }
    }
  }
  if (present.empty()) return {};
  std::vector<std::string> argv = {"systemctl", "enable"};
  argv.insert(argv.end(), present.begin(), present.end());
  return commands.in_tree(root.string(), argv, {}, CommandRunner::Dns::kNone);
}

bool BaseImages::ready(const BaseSpec& base) const {
  const std::string key = base.key();
  if (!path_exists(images_dir_ / key)) return false;
  auto manifest = read_file_if_exists(manifest_path(images_dir_, key));
  if (!manifest || !manifest->has_value()) return false;
  auto j = nlohmann::json::parse(**manifest, nullptr, false);
  return !j.is_discarded() && j.is_object() && j.value("key", "") == key;
}

Result<fs::path> BaseImages::ensure(const BaseSpec& base, const ReleaseRecipe& recipe,
                                    const std::string& mirror,
                                    const std::function<void(std::string_view)>& progress) {
  const std::string key = base.key();
  const fs::path final_dir = images_dir_ / key;
  if (ready(base)) return final_dir;
  if (auto s = make_dirs(images_dir_); !s) return s.error();
  // One builder per base; a second apply waits here and then finds it ready.
  auto lock = FileLock::acquire(images_dir_ / ("." + key + ".lock"));
  if (!lock) return lock.error();
  if (ready(base)) return final_dir;

  // Whatever is there is not trusted: an unfinished build, or a base whose
  // manifest does not match.
  const fs::path partial = images_dir_ / ("." + key + ".partial");
  for (const auto& stale : {partial, final_dir}) {
    if (!path_exists(stale)) continue;
    log::notice("removing untrusted base tree '", stale.string(), "'");
    Status removed = is_btrfs(stale) ? commands_.host({"btrfs", "subvolume", "delete", stale.string()}, {})
                                     : remove_tree(stale);
    if (!removed) return removed.error();
  }
  if (is_btrfs(images_dir_)) {
    // A subvolume, so every container can be a snapshot of it.
    if (auto s = commands_.host({"btrfs", "subvolume", "create", partial.string()}, {}); !s) {
      return s.error();
    }
  }
  if (auto s = build(base, recipe, mirror, partial, progress); !s) {
    return s.error().context("building base tree " + key);
  }
  if (auto s = write_file_atomic(manifest_path(images_dir_, key), manifest_json(base)); !s) {
    return s.error();
  }
  if (auto s = rename_durable(partial, final_dir); !s) return s.error();
  return final_dir;
}

Status BaseImages::build(const BaseSpec& base, const ReleaseRecipe& recipe,
                         const std::string& mirror, const fs::path& partial,
                         const std::function<void(std::string_view)>& progress) {
  auto arch = recipe.arches.find(base.arch);
  if (arch == recipe.arches.end()) {
    return fail(base.distro + " " + base.release + " has no arch \"" + base.arch + "\"");
  }
  ExpandVars vars;
  vars.release = base.release;
  vars.arch = arch->second;
  vars.root = partial.string();
  vars.mirror = mirror;
  vars.work = images_dir_.string();
  vars.boot_packages = recipe.boot_packages;
  vars.packages = base.packages;

  for (const auto& step : recipe.bootstrap) {
    if (auto s = run_recipe_command(commands_, step, vars, partial, progress); !s) return s;
  }
  if (!base.packages.empty()) {
    for (const auto& step : recipe.prepare) {
      if (auto s = run_recipe_command(commands_, step, vars, partial, progress); !s) return s;
    }
    if (auto s = run_recipe_command(commands_, recipe.install, vars, partial, progress); !s) {
      return s;
    }
  }
  if (!tree_has_build_user(partial)) {
    if (auto s = run_recipe_command(commands_, recipe.create_user, vars, partial, progress); !s) {
      return s;
    }
  }
  if (auto s = enable_units_in_tree(commands_, partial, recipe.enable_units); !s) return s;
  for (const auto& step : recipe.cleanup) {
    if (auto s = run_recipe_command(commands_, step, vars, partial, progress); !s) return s;
  }
  // Per-container identity must never come from the base: every clone gets
  // its own machine-id, hostname and SSH host keys.
  if (auto s = write_file_in_root(partial, "etc/machine-id", "", 0444); !s) return s;
  for (const char* f : {"etc/hostname", "etc/resolv.conf"}) {
    if (auto s = remove_tree(partial / f); !s) return s;
  }
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(partial / "etc/ssh", ec)) {
    if (e.path().filename().string().rfind("ssh_host_", 0) == 0) {
      if (auto s = remove_tree(e.path()); !s) return s;
    }
  }
  return {};
}

}  // namespace farmhand::provisioner
