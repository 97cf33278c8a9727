#include "provisioner/desired.h"

#include "udev/rule.h"

namespace farmhand::provisioner {

namespace {

// The conflicts of one container's network that the host can tell.
void network_conflicts(const ProvisionerContext& ctx, const ContainerSpec& spec, const NetworkChoice& choice,
                       std::vector<std::string>& conflicts) {
  if (spec.network.mode != NetworkMode::kVeth && ctx.root.is_real_root() &&
      !path_exists(fs::path("/sys/class/net") / spec.network.link)) {
    conflicts.push_back("container \"" + spec.name + "\": this host has no network interface \"" +
                        spec.network.link + "\" for its " + std::string(to_string(spec.network.mode)) + " link");
  }
  if (spec.network.mode == NetworkMode::kVeth && choice.configure && !host_interface_exact(spec.name)) {
    conflicts.push_back("container \"" + spec.name +
                        "\": the name is longer than 12 characters, so systemd shortens its host "
                        "interface and farmhand cannot configure it as \"ve-" +
                        spec.name + "\"; use a shorter name");
  }
}

// The host's udev rule for the devices of every container's rules.
void add_host_udev_rules(const AgentConfig& config, HostNetworkLayout& host_network) {
  std::vector<udev::DeviceMatch> matches;
  for (const auto& spec : config.containers) {
    for (const auto& rule : spec.devices) matches.push_back(rule.match);
  }
  const std::string rules_file = udev::kHostUdevRulesFile;
  host_network.owned.emplace_back(rules_file.substr(0, rules_file.rfind('/')),
                                  rules_file.substr(rules_file.rfind('/') + 1));
  if (!matches.empty()) host_network.files[rules_file] = udev::render_host_udev_rules(matches, kManagedHeader);
}

}  // namespace

Result<Desired> desired_state(ProvisionerContext& ctx, const std::map<std::string, ContainerRecord>& records) {
  const AgentConfig& config = ctx.config;
  Desired out;
  std::map<std::string, Cidr> previous;
  if (ctx.state) {
    auto s = ctx.state->subnets();
    if (!s) return s.error();
    previous = std::move(*s);
  }
  std::vector<std::pair<std::string, std::optional<Cidr>>> wanted;
  for (const auto& spec : config.containers) {
    if (spec.network.mode == NetworkMode::kVeth) wanted.emplace_back(spec.name, spec.network.subnet);
  }
  Assignment assignment = assign_subnets(config.pool, config.subnet_prefix, wanted, previous);
  const NetworkChoice choice = ctx.network_choice();
  for (const auto& c : choice.conflicts) out.conflicts.push_back("host network: " + c);
  std::vector<VethContainer> veths;
  for (const auto& name : assignment.exhausted) {
    out.conflicts.push_back("container \"" + name + "\": the network pool " + config.pool.str() +
                            " has no free /" + std::to_string(config.subnet_prefix) + " left");
  }
  for (const auto& spec : config.containers) {
    Cidr subnet_of_container;  // none for macvlan and ipvlan
    if (spec.network.mode == NetworkMode::kVeth) {
      auto subnet = assignment.subnets.find(spec.name);
      if (subnet == assignment.subnets.end()) continue;
      subnet_of_container = subnet->second;
    }
    auto recipe = ctx.recipes.resolve(spec.distro, spec.release);
    if (!recipe) return recipe.error();
    CloneMethod method;
    auto rec = records.find(spec.name);
    if (rec != records.end() && rec->second.phase != Phase::kDestroying &&
        parse_clone_method(rec->second.clone_method)) {
      method = *parse_clone_method(rec->second.clone_method);  // a clone keeps its method
    } else {
      method = ctx.method_for_new_container();
    }
    network_conflicts(ctx, spec, choice, out.conflicts);
    if (spec.network.mode == NetworkMode::kVeth) veths.push_back({spec.name, subnet_of_container});
    out.layouts.push_back(make_layout(config, spec, *recipe, subnet_of_container, method, ctx.host_hostname, choice));
  }
  out.host_network = make_host_network(choice, config.pool, veths);
  add_host_udev_rules(config, out.host_network);
  return out;
}

std::map<std::string, std::string> template_vars(const ProvisionerContext& ctx, const ContainerLayout& l) {
  std::map<std::string, std::string> v = {{"container", l.spec.name},
                                          {"hostname", l.hostname},
                                          {"host", ctx.host_hostname},
                                          {"server_url", ctx.config.server ? ctx.config.server->url : ""},
                                          {"user", kBuildUser},
                                          {"home", std::string("/home/") + kBuildUser},
                                          {"address", ""},
                                          {"gateway", ""},
                                          {"subnet", ""}};
  if (l.spec.network.mode == NetworkMode::kVeth) {
    v["address"] = l.subnet.host(kContainerOffset);
    v["gateway"] = l.subnet.host(kGatewayOffset);
    v["subnet"] = l.subnet.str();
  }
  return v;
}

}  // namespace farmhand::provisioner
