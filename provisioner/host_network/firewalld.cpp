// firewalld: a zone for the containers' host interfaces (DNS and DHCP from
// the host) and a policy that lets their traffic out, masqueraded.
#include <string>

#include "provisioner/host_network/backend.h"
#include "provisioner/layout.h"

namespace farmhand::provisioner {

namespace {

class FirewalldBackend final : public HostNetworkBackend {
 public:
  void render(const NetworkChoice& choice, const Cidr& /*pool*/, const std::vector<VethContainer>& containers,
              HostNetworkLayout& l) const override {
    l.files[std::string(kFirewalldZoneDir) + "/" + choice.zone + ".xml"] = render_firewalld_zone(choice, containers);
    l.files[std::string(kFirewalldPolicyDir) + "/" + firewalld_policy_name(choice.zone) + ".xml"] =
        render_firewalld_policy(choice.zone);
  }

  void dropin(const NetworkChoice&, const std::string&, const Cidr&, DropinNetworkLines& d) const override {
    d.after.push_back("firewalld.service");
  }

  Status reload(HostTools& tools, const ReloadRequest& r) const override {
    if (!r.touches(kFirewalldZoneDir) && !r.touches(kFirewalldPolicyDir)) return {};
    return tools.run({"firewall-cmd", "--reload"});
  }
};

}  // namespace

std::string firewalld_policy_name(const std::string& zone) { return zone + "-egress"; }

std::string render_firewalld_zone(const NetworkChoice& choice, const std::vector<VethContainer>& containers) {
  std::string out = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<!-- " + std::string(kManagedHeader) + " -->\n";
  out += "<zone>\n";
  out += "  <short>" + choice.zone + "</short>\n";
  out += "  <description>farmhand build containers: DNS and DHCP from the host, traffic out masqueraded.</description>\n";
  if (choice.backend != NetworkBackend::kNetworkManager) {
    // NetworkManager binds its connections' interfaces itself (connection.zone).
    for (const auto& c : containers) out += "  <interface name=\"" + host_interface(c.name) + "\"/>\n";
  }
  out += "  <service name=\"dhcp\"/>\n  <service name=\"dns\"/>\n";
  out += "  <port port=\"53\" protocol=\"udp\"/>\n  <port port=\"53\" protocol=\"tcp\"/>\n";
  // Masquerading in a zone applies to traffic leaving through the zone's
  // interfaces; the containers' traffic out is masqueraded by the policy.
  out += "  <masquerade/>\n";
  out += "</zone>\n";
  return out;
}

std::string render_firewalld_policy(const std::string& zone) {
  std::string out = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<!-- " + std::string(kManagedHeader) + " -->\n";
  // Without a policy, firewalld rejects traffic forwarded from the zone
  // (its default target), whatever the zone's masquerade says.
  out += "<policy target=\"ACCEPT\">\n";
  out += "  <short>" + firewalld_policy_name(zone) + "</short>\n";
  out += "  <description>farmhand: traffic from the build containers may leave the host, masqueraded.</description>\n";
  out += "  <ingress-zone name=\"" + zone + "\"/>\n";
  out += "  <egress-zone name=\"ANY\"/>\n";
  out += "  <masquerade/>\n";
  out += "</policy>\n";
  return out;
}

const HostNetworkBackend& firewalld_backend() {
  static const FirewalldBackend backend;
  return backend;
}

}  // namespace farmhand::provisioner
