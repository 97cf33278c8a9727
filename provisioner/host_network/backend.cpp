#include "provisioner/host_network/backend.h"

#include <algorithm>

#include "provisioner/layout.h"
#include "provisioner/unit_file.h"

namespace farmhand::provisioner {

// One instance of each, defined in its own file.
const HostNetworkBackend& networkmanager_backend();
const HostNetworkBackend& networkd_backend();
const HostNetworkBackend& plain_backend();
const HostNetworkBackend& firewalld_backend();
const HostNetworkBackend& nftables_backend();

const HostNetworkBackend* network_backend(NetworkBackend backend) {
  switch (backend) {
    case NetworkBackend::kNetworkManager: return &networkmanager_backend();
    case NetworkBackend::kNetworkd: return &networkd_backend();
    case NetworkBackend::kPlain: return &plain_backend();
    case NetworkBackend::kAuto: break;
  }
  return nullptr;
}

const HostNetworkBackend* firewall_backend(FirewallBackend firewall) {
  switch (firewall) {
    case FirewallBackend::kFirewalld: return &firewalld_backend();
    case FirewallBackend::kNftables: return &nftables_backend();
    case FirewallBackend::kNone:
    case FirewallBackend::kAuto: break;
  }
  return nullptr;
}

std::vector<const HostNetworkBackend*> firewall_backends() { return {&nftables_backend(), &firewalld_backend()}; }

std::vector<const HostNetworkBackend*> network_backends() {
  return {&networkmanager_backend(), &networkd_backend(), &plain_backend()};
}

ReloadRequest::ReloadRequest(const HostNetworkLayout& w, const HostNetworkChange& c) : want(w), change(c) {
  touched.insert(c.write.begin(), c.write.end());
  touched.insert(c.remove.begin(), c.remove.end());
}

bool ReloadRequest::touches(std::string_view dir_or_file) const {
  return std::any_of(touched.begin(), touched.end(),
                     [&](const std::string& p) { return std::string_view(p).starts_with(dir_or_file); });
}

std::string gateway_cidr(const Cidr& subnet) { return subnet.host(kGatewayOffset) + "/" + std::to_string(subnet.prefix); }

std::string render_resolved_conf(const std::vector<VethContainer>& containers) {
  UnitFile f(kManagedHeader);
  // systemd-resolved answers the containers' DNS queries on each gateway.
  for (const auto& c : containers) f.add("Resolve", "DNSStubListenerExtra", c.subnet.host(kGatewayOffset));
  return f.str();
}

HostNetworkLayout make_host_network(const NetworkChoice& choice, const Cidr& pool,
                                    const std::vector<VethContainer>& unsorted) {
  // By name: the files must not depend on the order containers are listed in.
  std::vector<VethContainer> containers = unsorted;
  std::sort(containers.begin(), containers.end(),
            [](const VethContainer& a, const VethContainer& b) { return a.name < b.name; });
  HostNetworkLayout l;
  l.choice = choice;
  auto dir_and_name = [](const std::string& path) {
    auto slash = path.rfind('/');
    return std::make_pair(path.substr(0, slash), path.substr(slash + 1));
  };
  l.owned = {{kNmConnectionDir, "nm-ve-"},
             {kNetworkdDir, kOwnNetworkdPrefix},
             dir_and_name(kNmConfFile),
             dir_and_name(kResolvedConfFile),
             dir_and_name(kSysctlFile),
             dir_and_name(kNftFile),
             {kFirewalldZoneDir, ""},
             {kFirewalldPolicyDir, ""}};
  if (!choice.configure) return l;
  if (const auto* b = network_backend(choice.backend)) b->render(choice, pool, containers, l);
  if (const auto* f = firewall_backend(choice.firewall)) f->render(choice, pool, containers, l);
  return l;
}

DropinNetworkLines dropin_network_lines(const NetworkChoice& choice, const std::string& container,
                                        const Cidr& subnet) {
  DropinNetworkLines d;
  if (!choice.configure) return d;
  if (const auto* b = network_backend(choice.backend)) b->dropin(choice, container, subnet, d);
  if (const auto* f = firewall_backend(choice.firewall)) f->dropin(choice, container, subnet, d);
  return d;
}

}  // namespace farmhand::provisioner
