#include "provisioner/context.h"

#include <algorithm>

namespace farmhand::provisioner {

namespace {

fs::path nearest_existing(fs::path p) {
  while (!p.empty() && !path_exists(p) && p != p.parent_path()) p = p.parent_path();
  return p;
}

}  // namespace

std::string unit_of(const std::string& name) { return "systemd-nspawn@" + name + ".service"; }

ProvisionerContext::ProvisionerContext(AgentConfig c, const RecipeBook& r, HostRoot h, ProcessRunner& runner,
                                       SystemdControl* sd, std::string hostname, const Clock& clk)
    : config(std::move(c)),
      recipes(r),
      root(std::move(h)),
      process_runner(runner),
      commands(runner),
      cloner(commands),
      images(root.map(config.paths.cache + "/images"), commands),
      systemd(sd),
      host_hostname(std::move(hostname)),
      clock(clk) {
  std::error_code ec;
  helper_exe = fs::read_symlink("/proc/self/exe", ec).string();
}

Status ProvisionerContext::open_state() {
  if (state) return {};
  if (auto s = make_dirs(host(config.paths.state), 0700); !s) return s;
  auto st = StateStore::open(state_db_path());
  if (!st) return st.error();
  state.emplace(std::move(*st));
  return {};
}

Status ProvisionerContext::open_state_if_present() {
  if (state || !path_exists(state_db_path())) return {};
  return open_state();
}

std::optional<pid_t> ProvisionerContext::leader(const std::string& name) {
  if (leader_of) return leader_of(name);
  if (systemd == nullptr) return std::nullopt;
  auto l = systemd->machine_leader(name);
  if (l && *l) return **l;
  return std::nullopt;
}

Result<ContainerRecord> ProvisionerContext::managed_record(const std::string& name) {
  if (auto s = open_state_if_present(); !s) return s.error();
  std::optional<ContainerRecord> rec;
  if (state) {
    auto r = state->container(name);
    if (!r) return r.error();
    rec = *r;
  }
  if (!rec) return fail("no container named \"" + name + "\" is managed by farmhand");
  return *rec;
}

Result<std::map<std::string, Cidr>> ProvisionerContext::subnets() {
  if (!state) return std::map<std::string, Cidr>{};
  return state->subnets();
}

Result<std::map<std::string, ContainerRecord>> ProvisionerContext::records() {
  std::map<std::string, ContainerRecord> out;
  if (!state) return out;
  auto all = state->containers();
  if (!all) return all.error();
  for (auto& r : *all) out[r.name] = std::move(r);
  return out;
}

CloneMethod ProvisionerContext::method_for_new_container() {
  if (config.clone_method != CloneMethod::kAuto) return config.clone_method;
  if (!detected) {
    detected = detect_clone_method(nearest_existing(host(config.paths.cache + "/images")),
                                   nearest_existing(host(config.paths.machines)));
  }
  return *detected;
}

std::string ProvisionerContext::mirror_for(const std::string& distro) const {
  auto it = config.mirrors.find(distro);
  return it == config.mirrors.end() ? "" : it->second;
}

NetworkChoice ProvisionerContext::network_choice() {
  bool any_veth = std::any_of(config.containers.begin(), config.containers.end(),
                              [](const ContainerSpec& s) { return s.network.mode == NetworkMode::kVeth; });
  return choose_network(config, observe_host_facts(root), any_veth);
}

const ContainerSpec* ProvisionerContext::spec(const std::string& name) const {
  for (const auto& s : config.containers) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

}  // namespace farmhand::provisioner
