#include "provisioner/plan.h"

#include "provisioner/base_image.h"

#include <nlohmann/json.hpp>

#include <set>

namespace farmhand::provisioner {

std::string_view to_string(Action action) {
  switch (action) {
    case Action::kCreate: return "create";
    case Action::kUpdate: return "update";
    case Action::kReplace: return "replace";
    case Action::kDestroy: return "destroy";
    case Action::kUnchanged: return "unchanged";
  }
  return "unchanged";
}

size_t Plan::count(Action action) const {
  size_t n = 0;
  for (const auto& c : changes) n += c.action == action ? 1 : 0;
  return n;
}

bool Plan::has_work() const {
  if (host_change.has_work()) return true;
  for (const auto& c : changes) {
    if (c.action != Action::kUnchanged) return true;
  }
  return false;
}

std::string spec_json(const ContainerSpec& s) {
  nlohmann::ordered_json j;
  j["name"] = s.name;
  j["distro"] = s.distro;
  j["release"] = s.release;
  j["arch"] = s.arch;
  j["packages"] = s.packages;
  j["build_packages"] = s.build_packages;
  j["subnet"] = s.network.subnet ? s.network.subnet->str() : "";
  if (s.network.mode != NetworkMode::kVeth) {
    // Only written when set, so the records of veth containers stay as they were.
    j["network_mode"] = std::string(to_string(s.network.mode));
    j["link"] = s.network.link;
  }
  j["boot"] = s.boot;
  j["private_users"] = s.private_users;
  j["binds"] = nlohmann::ordered_json::array();
  for (const auto& b : s.binds) {
    j["binds"].push_back({{"source", b.source}, {"target", b.target}, {"read_only", b.read_only}});
  }
  return j.dump();
}

namespace {

// "release: bookworm -> trixie" for every top-level field that differs.
std::vector<std::string> spec_differences(const std::string& old_json, const std::string& new_json) {
  std::vector<std::string> out;
  auto a = nlohmann::json::parse(old_json, nullptr, false);
  auto b = nlohmann::json::parse(new_json, nullptr, false);
  if (a.is_discarded() || !a.is_object()) return {"previous specification unreadable"};
  for (auto it = b.begin(); it != b.end(); ++it) {
    auto old_it = a.find(it.key());
    if (old_it == a.end()) {
      out.push_back(it.key() + ": set to " + it.value().dump());
    } else if (*old_it != it.value()) {
      out.push_back(it.key() + ": " + old_it->dump() + " -> " + it.value().dump());
    }
  }
  return out;
}

void diff_files(const std::map<std::string, std::string>& want,
                const std::map<std::string, std::optional<std::string>>& have,
                const std::string& prefix, std::vector<std::string>& reasons) {
  for (const auto& [path, content] : want) {
    auto it = have.find(path);
    if (it == have.end() || !it->second) {
      reasons.push_back(prefix + path + " is missing");
    } else if (*it->second != content) {
      reasons.push_back(prefix + path + " differs");
    }
  }
}

Change plan_one(const ContainerLayout& want, const ObservedContainer* have) {
  Change c;
  c.name = want.spec.name;
  c.layout = want;
  if (have != nullptr) c.record = have->record;
  if (have == nullptr || !have->record) {
    c.action = Action::kCreate;
    c.reasons.push_back("new container");
    return c;
  }
  const ContainerRecord& rec = *have->record;
  if (rec.phase == Phase::kDestroying) {
    c.action = Action::kReplace;
    c.reasons.push_back("an interrupted destroy is finished first");
    return c;
  }
  if (rec.phase == Phase::kCreating) {
    c.action = Action::kCreate;
    c.reasons.push_back("resuming an interrupted create");
    return c;
  }
  if (rec.base_key != want.base.key()) {
    c.action = Action::kReplace;
    c.reasons.push_back("base tree changed: " + rec.base_key + " -> " + want.base.key());
    for (auto& r : spec_differences(rec.spec_json, spec_json(want.spec))) c.reasons.push_back(r);
    return c;
  }
  if (!have->machine_dir_exists) {
    c.action = Action::kCreate;
    c.reasons.push_back("root filesystem " + want.machine_dir + " is missing");
    return c;
  }
  for (auto& r : spec_differences(rec.spec_json, spec_json(want.spec))) c.reasons.push_back(r);
  if (want.clone_method == CloneMethod::kOverlay && !have->overlay_mounted) {
    c.reasons.push_back("overlay root is not mounted");
  }
  diff_files(want.host_files, have->host_files, "", c.reasons);
  diff_files(want.container_files, have->container_files, "container /", c.reasons);
  for (const auto& [link, target] : want.links) {
    auto it = have->links.find(link);
    if (it != have->links.end() && it->second == target) continue;
    c.reasons.push_back(link == want.boot_link ? "not enabled at boot"
                                               : link + " does not point to " + target);
  }
  for (const auto& g : have->missing_user_groups) {
    c.reasons.push_back("build user " + std::string(kBuildUser) + " is not in group " + g);
  }
  if (!want.spec.boot && have->stray_boot_link) {
    c.reasons.push_back("enabled at boot, but boot is off");
  }
  c.action = c.reasons.empty() ? Action::kUnchanged : Action::kUpdate;
  return c;
}

}  // namespace

Plan compute_plan(const std::vector<ContainerLayout>& desired,
                  const std::map<std::string, ObservedContainer>& observed) {
  Plan plan;
  std::set<std::string> wanted;
  for (const auto& want : desired) {
    wanted.insert(want.spec.name);
    auto it = observed.find(want.spec.name);
    const ObservedContainer* have = it == observed.end() ? nullptr : &it->second;
    if ((have == nullptr || !have->record) && have != nullptr && have->machine_dir_exists) {
      plan.conflicts.push_back("container \"" + want.spec.name + "\": " + want.machine_dir +
                               " already exists and is not managed by farmhand; remove it or "
                               "choose another name");
      continue;
    }
    plan.changes.push_back(plan_one(want, have));
  }
  for (const auto& [name, have] : observed) {
    if (wanted.count(name) != 0 || !have.record) continue;
    Change c;
    c.action = Action::kDestroy;
    c.name = name;
    c.record = have.record;
    c.reasons.push_back(have.record->phase == Phase::kDestroying
                            ? "finishing an interrupted destroy"
                            : "no longer in the configuration");
    plan.changes.push_back(std::move(c));
  }
  return plan;
}

}  // namespace farmhand::provisioner
