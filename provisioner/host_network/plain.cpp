// Plain iproute2: the container's unit drop-in addresses its host interface
// when it starts; the kernel forwards (sysctl) and systemd-resolved answers
// DNS on the gateways.
#include <string>

#include "provisioner/host_network/backend.h"
#include "provisioner/layout.h"

namespace farmhand::provisioner {

namespace {

class PlainBackend final : public HostNetworkBackend {
 public:
  void render(const NetworkChoice&, const Cidr& /*pool*/, const std::vector<VethContainer>& containers,
              HostNetworkLayout& l) const override {
    l.files[kResolvedConfFile] = render_resolved_conf(containers);
    l.files[kSysctlFile] = render_sysctl();
  }

  void dropin(const NetworkChoice&, const std::string& container, const Cidr& subnet,
              DropinNetworkLines& d) const override {
    d.after.push_back("systemd-resolved.service");
    const std::string ifname = host_interface(container);
    // nspawn notifies readiness once the container runs, so the link exists.
    d.exec_start_post.push_back({kIpTool, "address", "replace", gateway_cidr(subnet), "dev", ifname});
    d.exec_start_post.push_back({kIpTool, "link", "set", ifname, "up"});
  }

  // Nothing to reload: the drop-in's commands run when a container starts,
  // and ip_forward is switched on by apply itself.
  Status reload(HostTools&, const ReloadRequest&) const override { return {}; }
};

}  // namespace

std::string render_sysctl() {
  return "# " + std::string(kManagedHeader) +
         "\n# The containers' traffic is routed through the host.\nnet.ipv4.ip_forward = 1\n";
}

const HostNetworkBackend& plain_backend() {
  static const PlainBackend backend;
  return backend;
}

}  // namespace farmhand::provisioner
