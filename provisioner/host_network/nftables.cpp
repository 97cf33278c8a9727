// nftables: farmhand's own tables, loaded with `nft -f` (the host needs no
// firewall daemon): the containers may reach the host for DNS, DHCP and
// ping, and go out masqueraded, but not reach each other.
#include <string>

#include "provisioner/host_network/backend.h"
#include "provisioner/layout.h"

namespace farmhand::provisioner {

namespace {

class NftablesBackend final : public HostNetworkBackend {
 public:
  void render(const NetworkChoice&, const Cidr& pool, const std::vector<VethContainer>&,
              HostNetworkLayout& l) const override {
    l.files[kNftFile] = render_nft(pool);
  }

  void dropin(const NetworkChoice&, const std::string&, const Cidr&, DropinNetworkLines& d) const override {
    // "-": a container still starts if the rules cannot be loaded; its
    // network health then says why it cannot get out.
    d.exec_start_pre.push_back({"-" + std::string(kNftTool), "-f", kNftFile});
  }

  Status reload(HostTools& tools, const ReloadRequest& r) const override {
    if (!r.touches(kNftFile)) return {};
    if (r.want.files.count(kNftFile)) return tools.run({"nft", "-f", kNftFile});
    // Switched away from (or no veth container left): the tables go.
    (void)tools.run({"nft", "delete", "table", "inet", "farmhand"});
    (void)tools.run({"nft", "delete", "table", "ip", "farmhand_nat"});
    return {};
  }
};

}  // namespace

std::string render_nft(const Cidr& pool) {
  const std::string p = pool.str();
  std::string out = "# " + std::string(kManagedHeader) + "\n";
  out +=
      "# Loaded with `nft -f`: the first lines make loading it again replace the tables.\n"
      "# A drop policy in another table still applies: nftables has no way to\n"
      "# override it, so a host firewall must allow the containers itself.\n"
      "table inet farmhand\n"
      "delete table inet farmhand\n"
      "table ip farmhand_nat\n"
      "delete table ip farmhand_nat\n"
      "\n"
      "table inet farmhand {\n"
      "\t# From the containers, the host answers DNS, DHCP and ping, nothing else.\n"
      "\tchain input {\n"
      "\t\ttype filter hook input priority filter; policy accept;\n"
      "\t\tiifname != \"ve-*\" accept\n"
      "\t\tct state established,related accept\n"
      "\t\tudp dport { 53, 67 } accept\n"
      "\t\ttcp dport 53 accept\n"
      "\t\ticmp type echo-request accept\n"
      "\t\tdrop\n"
      "\t}\n"
      "\t# Out of the containers, and answers back; not from one container to another.\n"
      "\tchain forward {\n"
      "\t\ttype filter hook forward priority filter; policy accept;\n"
      "\t\tiifname \"ve-*\" oifname \"ve-*\" drop\n"
      "\t\tiifname \"ve-*\" ip saddr " + p + " accept\n"
      "\t\toifname \"ve-*\" ct state established,related accept\n"
      "\t\toifname \"ve-*\" drop\n"
      "\t}\n"
      "}\n"
      "\n"
      "table ip farmhand_nat {\n"
      "\tchain postrouting {\n"
      "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
      "\t\tip saddr " + p + " oifname != \"ve-*\" masquerade\n"
      "\t}\n"
      "}\n";
  return out;
}

const HostNetworkBackend& nftables_backend() {
  static const NftablesBackend backend;
  return backend;
}

}  // namespace farmhand::provisioner
