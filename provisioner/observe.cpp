#include "provisioner/observe.h"

#include <algorithm>

#include "provisioner/base_image.h"
#include "provisioner/desired.h"

namespace farmhand::provisioner {

ObservedContainer observe_container(const ProvisionerContext& ctx, const ContainerLayout* want,
                                    const std::optional<ContainerRecord>& rec) {
  ObservedContainer o;
  o.record = rec;
  if (want == nullptr) return o;
  const fs::path machine = ctx.host(want->machine_dir);
  if (want->clone_method == CloneMethod::kOverlay) {
    o.overlay_mounted = is_mount_point(machine);
    o.machine_dir_exists = path_exists(ctx.host(want->overlay_dir) / "upper");
  } else {
    o.machine_dir_exists = path_exists(machine);
  }
  for (const auto& [path, content] : want->host_files) {
    auto r = read_file_if_exists(ctx.host(path));
    o.host_files[path] = r ? *r : std::nullopt;
  }
  bool readable = o.machine_dir_exists && (want->clone_method != CloneMethod::kOverlay || o.overlay_mounted);
  for (const auto& [rel, content] : want->container_files) {
    std::optional<std::string> have;
    if (readable) {
      auto r = read_file_in_root(machine, rel);
      if (r) have = *r;
    }
    o.container_files[rel] = have;
  }
  std::error_code ec;
  for (const auto& [link, target] : want->links) {
    const fs::path p = ctx.host(link);
    o.links[link] = fs::is_symlink(p, ec) ? std::optional(fs::read_symlink(p, ec).string()) : std::nullopt;
  }
  o.stray_boot_link = !want->spec.boot && fs::is_symlink(ctx.host(want->boot_link), ec);
  if (readable) o.missing_user_groups = build_user_missing_groups(machine, want->build_user_groups);
  return o;
}

ObservedHostNetwork observe_host_network(const ProvisionerContext& ctx, const HostNetworkLayout& want) {
  ObservedHostNetwork o;
  for (const auto& [path, content] : want.files) {
    auto r = read_file_if_exists(ctx.host(path));
    o.files[path] = r ? *r : std::nullopt;
  }
  for (const auto& [dir, prefix] : want.owned) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(ctx.host(dir), ec)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind(prefix, 0) != 0 || !entry.is_regular_file(ec)) continue;
      auto text = read_file_if_exists(entry.path());
      if (text && *text && (*text)->find(kManagedHeader) != std::string::npos) o.managed.push_back(dir + "/" + name);
    }
  }
  std::sort(o.managed.begin(), o.managed.end());
  return o;
}

Result<Plan> make_plan(ProvisionerContext& ctx) {
  if (auto s = ctx.open_state_if_present(); !s) return s.error();
  auto recs = ctx.records();
  if (!recs) return recs.error();
  auto want = desired_state(ctx, *recs);
  if (!want) return want.error();
  std::map<std::string, ObservedContainer> observed;
  for (const auto& l : want->layouts) {
    auto rec = recs->find(l.spec.name);
    observed[l.spec.name] = observe_container(ctx, &l, rec == recs->end() ? std::nullopt : std::optional(rec->second));
  }
  for (const auto& [name, rec] : *recs) {
    if (observed.count(name) == 0) observed[name] = observe_container(ctx, nullptr, rec);
  }
  Plan plan = compute_plan(want->layouts, observed);
  for (auto& c : want->conflicts) plan.conflicts.push_back(std::move(c));
  plan.host_network = want->host_network;
  plan.host_change = plan_host_network(want->host_network, observe_host_network(ctx, want->host_network));
  return plan;
}

}  // namespace farmhand::provisioner
