// systemd-networkd: a .network file per container's host interface, with
// systemd-resolved answering DNS on the gateways.
#include <string>

#include "provisioner/host_network/backend.h"
#include "provisioner/layout.h"
#include "provisioner/unit_file.h"

namespace farmhand::provisioner {

namespace {

class NetworkdBackend final : public HostNetworkBackend {
 public:
  void render(const NetworkChoice& choice, const Cidr& /*pool*/, const std::vector<VethContainer>& containers,
              HostNetworkLayout& l) const override {
    for (const auto& c : containers) {
      l.files[networkd_file(c.name)] = render_host_networkd(c.name, c.subnet, choice.firewall == FirewallBackend::kNone);
    }
    l.files[kResolvedConfFile] = render_resolved_conf(containers);
  }

  void dropin(const NetworkChoice&, const std::string&, const Cidr&, DropinNetworkLines& d) const override {
    d.after.push_back("systemd-networkd.service");
    d.after.push_back("systemd-resolved.service");
  }

  Status reload(HostTools& tools, const ReloadRequest& r) const override {
    if (r.want.choice.backend != NetworkBackend::kNetworkd || !r.touches(kNetworkdDir)) return {};
    return tools.run({"networkctl", "reload"});
  }
};

}  // namespace

std::string networkd_file(const std::string& container) {
  return std::string(kNetworkdDir) + "/" + kOwnNetworkdPrefix + "ve-" + container + ".network";
}

std::string render_host_networkd(const std::string& container, const Cidr& subnet, bool masquerade) {
  UnitFile f(kManagedHeader);
  f.add("Match", "Name", host_interface(container));
  f.add("Network", "Address", gateway_cidr(subnet));
  f.add("Network", "LinkLocalAddressing", "no");
  f.add("Network", "ConfigureWithoutCarrier", "yes");
  f.add("Network", "IPForward", "ipv4");
  // With no firewall backend to do it, networkd masquerades the subnet itself.
  if (masquerade) f.add("Network", "IPMasquerade", "ipv4");
  return f.str();
}

const HostNetworkBackend& networkd_backend() {
  static const NetworkdBackend backend;
  return backend;
}

}  // namespace farmhand::provisioner
