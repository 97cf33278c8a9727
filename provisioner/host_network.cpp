#include "provisioner/host_network.h"

#include <fnmatch.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "common/hash.h"
#include "provisioner/layout.h"
#include "provisioner/unit_file.h"

namespace farmhand::provisioner {

namespace {

constexpr const char* kOwnNetworkdPrefix = "10-farmhand-";

// Whether a unit is enabled: a link to it in some *.wants directory of
// /etc/systemd/system, and it is not masked.
bool unit_enabled(const HostRoot& root, const std::string& unit) {
  std::error_code ec;
  const fs::path etc = root.map("/etc/systemd/system");
  if (fs::is_symlink(etc / unit, ec) && fs::read_symlink(etc / unit, ec) == "/dev/null") return false;
  for (const auto& entry : fs::directory_iterator(etc, ec)) {
    const std::string dir = entry.path().filename().string();
    if (dir.size() < 6 || dir.compare(dir.size() - 6, 6, ".wants") != 0) continue;
    if (fs::is_symlink(entry.path() / unit, ec) || fs::exists(entry.path() / unit, ec)) return true;
  }
  return false;
}

// The Name= patterns of a .network file's [Match] section.
std::vector<std::string> match_names(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  bool in_match = false;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) line.pop_back();
    size_t start = line.find_first_not_of(" \t");
    if (start == std::string::npos) continue;
    line = line.substr(start);
    if (line[0] == '#' || line[0] == ';') continue;
    if (line[0] == '[') {
      in_match = line == "[Match]";
      continue;
    }
    if (!in_match || line.rfind("Name", 0) != 0) continue;
    size_t eq = line.find('=');
    if (eq == std::string::npos || line.substr(0, eq).find_first_not_of(" \t", 4) != std::string::npos) continue;
    std::istringstream words(line.substr(eq + 1));
    std::string w;
    while (words >> w) out.push_back(w);
  }
  return out;
}

// The first .network file, in networkd's order, that would match a ve-
// interface; files farmhand wrote are not counted.
std::string find_networkd_ve_claim(const HostRoot& root) {
  std::map<std::string, fs::path> effective;  // file name -> the path that wins
  for (const char* dir : {"/etc/systemd/network", "/run/systemd/network", "/usr/local/lib/systemd/network",
                          "/usr/lib/systemd/network", "/lib/systemd/network"}) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(root.map(dir), ec)) {
      const std::string name = entry.path().filename().string();
      if (name.size() < 8 || name.compare(name.size() - 8, 8, ".network") != 0) continue;
      if (effective.count(name) == 0) effective[name] = fs::path(dir) / name;
    }
  }
  for (const auto& [name, logical] : effective) {
    if (name.rfind(kOwnNetworkdPrefix, 0) == 0) continue;
    std::error_code ec;
    const fs::path real = root.map(logical);
    if (fs::is_symlink(real, ec) && fs::read_symlink(real, ec) == "/dev/null") continue;  // masked
    auto text = read_file_if_exists(real);
    if (!text || !*text || (*text)->empty()) continue;
    for (const auto& pattern : match_names(**text)) {
      if (!pattern.empty() && pattern[0] == '!') continue;
      if (::fnmatch(pattern.c_str(), "ve-farmhand", 0) == 0) return logical.string();
    }
  }
  return "";
}

// A stable UUID for a connection, so rewriting the keyfile keeps its identity.
std::string stable_uuid(const std::string& seed) {
  std::string h = sha256_hex("farmhand:" + seed).substr(0, 32);
  h[12] = '4';                                             // version 4 layout
  h[16] = "89ab"[std::stoi(h.substr(16, 1), nullptr, 16) & 3];  // RFC 4122 variant
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) + "-" +
         h.substr(20, 12);
}

std::string gateway_cidr(const Cidr& subnet) {
  return subnet.host(kGatewayOffset) + "/" + std::to_string(subnet.prefix);
}

}  // namespace

HostFacts observe_host_facts(const HostRoot& root) {
  HostFacts f;
  f.networkmanager = unit_enabled(root, "NetworkManager.service");
  f.networkd = unit_enabled(root, "systemd-networkd.service");
  f.resolved = unit_enabled(root, "systemd-resolved.service");
  f.firewalld = unit_enabled(root, "firewalld.service");
  f.nft = path_exists(root.map("/usr/sbin/nft")) || path_exists(root.map("/sbin/nft"));
  f.networkd_ve_claim = find_networkd_ve_claim(root);
  f.systemd_booted = path_exists(root.map("/run/systemd/system"));
  return f;
}

NetworkChoice choose_network(const AgentConfig& config, const HostFacts& facts, bool any_veth) {
  NetworkChoice c;
  c.zone = config.zone;
  if (!any_veth) return c;
  c.configure = true;
  const bool networkd_claims = facts.networkd && !facts.networkd_ve_claim.empty();
  const std::string both =
      "NetworkManager and systemd-networkd would both manage the containers' ve-* interfaces: "
      "NetworkManager.service and systemd-networkd.service are both enabled, and networkd matches ve-* "
      "through " +
      facts.networkd_ve_claim +
      ". Disable one of them (systemctl disable --now systemd-networkd), or mask that file "
      "(ln -s /dev/null /etc/systemd/network/" +
      fs::path(facts.networkd_ve_claim).filename().string() + ")";
  switch (config.network_backend) {
    case NetworkBackend::kAuto:
      if (facts.networkmanager && networkd_claims) {
        c.conflicts.push_back(both);
      } else if (facts.networkmanager) {
        c.backend = NetworkBackend::kNetworkManager;
      } else if (facts.networkd) {
        c.backend = NetworkBackend::kNetworkd;
      } else {
        c.backend = NetworkBackend::kPlain;
      }
      break;
    case NetworkBackend::kNetworkManager:
      c.backend = NetworkBackend::kNetworkManager;
      if (!facts.networkmanager) {
        c.conflicts.push_back(
            "network.backend is \"networkmanager\", but NetworkManager.service is not enabled on this host");
      } else if (networkd_claims) {
        c.conflicts.push_back(both);
      }
      break;
    case NetworkBackend::kNetworkd:
      c.backend = NetworkBackend::kNetworkd;
      if (!facts.networkd) {
        c.conflicts.push_back(
            "network.backend is \"networkd\", but systemd-networkd.service is not enabled on this host");
      } else if (!facts.networkd_ve_claim.empty() &&
                 fs::path(facts.networkd_ve_claim).filename().string() < kOwnNetworkdPrefix) {
        c.conflicts.push_back("systemd-networkd would configure the ve-* interfaces through " +
                              facts.networkd_ve_claim + ", which sorts before farmhand's files (" +
                              kOwnNetworkdPrefix + "*.network); rename or mask it");
      }
      break;
    case NetworkBackend::kPlain:
      c.backend = NetworkBackend::kPlain;
      if (networkd_claims) {
        c.conflicts.push_back("network.backend is \"plain\", but systemd-networkd is enabled and manages ve-* "
                              "interfaces through " +
                              facts.networkd_ve_claim + "; disable it or mask that file");
      }
      break;
  }
  switch (config.firewall) {
    case FirewallBackend::kAuto:
      c.firewall = facts.firewalld ? FirewallBackend::kFirewalld
                   : facts.nft     ? FirewallBackend::kNftables
                                   : FirewallBackend::kNone;
      break;
    case FirewallBackend::kFirewalld:
      c.firewall = FirewallBackend::kFirewalld;
      if (!facts.firewalld) {
        c.conflicts.push_back("network.firewall is \"firewalld\", but firewalld.service is not enabled on this host");
      }
      break;
    case FirewallBackend::kNftables:
      c.firewall = FirewallBackend::kNftables;
      if (!facts.nft) c.conflicts.push_back("network.firewall is \"nftables\", but the nft tool is not installed");
      break;
    case FirewallBackend::kNone:
      c.firewall = FirewallBackend::kNone;
      break;
  }
  if (c.backend == NetworkBackend::kPlain) {
    // NetworkManager's shared mode and networkd (IPMasquerade=) masquerade
    // by themselves; the plain backend relies on the firewall.
    if (c.firewall == FirewallBackend::kNone) {
      c.warnings.push_back(
          "nothing masquerades the containers' traffic (no firewalld, no nft tool): they cannot reach past this "
          "host. Install nftables (farmhand then loads its own tables), or masquerade " +
          config.pool.str() + " in your own firewall");
    }
    // Without systemd, `farmhand run` answers DNS on each gateway itself.
    if (facts.systemd_booted && !facts.resolved) {
      c.warnings.push_back(
          "systemd-resolved is not enabled: nothing answers DNS on the containers' gateways, so name lookups "
          "fail inside them. Enable it (systemctl enable --now systemd-resolved)");
    }
  }
  return c;
}

std::string host_interface(const std::string& name) { return "ve-" + name; }
bool host_interface_exact(const std::string& name) { return name.size() <= 12; }

std::string nm_connection_name(const std::string& container) { return "nm-ve-" + container; }
std::string nm_connection_file(const std::string& container) {
  return std::string(kNmConnectionDir) + "/" + nm_connection_name(container) + ".nmconnection";
}
std::string networkd_file(const std::string& container) {
  return std::string(kNetworkdDir) + "/" + kOwnNetworkdPrefix + "ve-" + container + ".network";
}
std::string firewalld_policy_name(const std::string& zone) { return zone + "-egress"; }

std::string render_nm_conf() {
  UnitFile f(kManagedHeader);
  // No automatic DHCP "Wired connection" on a new ve- link: it would hold
  // the link until it times out, ahead of the container's own connection.
  f.add("main", "no-auto-default+", "interface-name:ve-*");
  // NetworkManager leaves veth devices alone by default (a udev rule marks
  // them unmanaged); the host ends of the containers' links must be managed
  // for their shared connections.
  f.add("device-farmhand-ve", "match-device", "interface-name:ve-*");
  f.add("device-farmhand-ve", "managed", "1");
  return f.str();
}

std::string render_nm_connection(const std::string& container, const Cidr& subnet, const std::string& zone) {
  UnitFile f(kManagedHeader);
  f.add("connection", "id", nm_connection_name(container));
  f.add("connection", "uuid", stable_uuid(nm_connection_name(container)));
  f.add("connection", "type", "ethernet");
  f.add("connection", "interface-name", host_interface(container));
  f.add("connection", "autoconnect", "true");
  f.add("connection", "zone", zone);
  f.add("ipv4", "method", "shared");
  f.add("ipv4", "address1", gateway_cidr(subnet));
  f.add("ipv6", "method", "disabled");
  return f.str();
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

std::string render_resolved_conf(const std::vector<VethContainer>& containers) {
  UnitFile f(kManagedHeader);
  // systemd-resolved answers the containers' DNS queries on each gateway.
  for (const auto& c : containers) f.add("Resolve", "DNSStubListenerExtra", c.subnet.host(kGatewayOffset));
  return f.str();
}

std::string render_sysctl() {
  return "# " + std::string(kManagedHeader) +
         "\n# The containers' traffic is routed through the host.\nnet.ipv4.ip_forward = 1\n";
}

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
  switch (choice.backend) {
    case NetworkBackend::kNetworkManager:
      l.files[kNmConfFile] = render_nm_conf();
      for (const auto& c : containers) {
        l.files[nm_connection_file(c.name)] = render_nm_connection(c.name, c.subnet, choice.zone);
        l.modes[nm_connection_file(c.name)] = 0600;  // NetworkManager ignores keyfiles others can read
      }
      break;
    case NetworkBackend::kNetworkd:
      for (const auto& c : containers) {
        l.files[networkd_file(c.name)] =
            render_host_networkd(c.name, c.subnet, choice.firewall == FirewallBackend::kNone);
      }
      l.files[kResolvedConfFile] = render_resolved_conf(containers);
      break;
    case NetworkBackend::kPlain:
      l.files[kResolvedConfFile] = render_resolved_conf(containers);
      l.files[kSysctlFile] = render_sysctl();
      break;
    case NetworkBackend::kAuto:
      break;
  }
  switch (choice.firewall) {
    case FirewallBackend::kFirewalld:
      l.files[std::string(kFirewalldZoneDir) + "/" + choice.zone + ".xml"] = render_firewalld_zone(choice, containers);
      l.files[std::string(kFirewalldPolicyDir) + "/" + firewalld_policy_name(choice.zone) + ".xml"] =
          render_firewalld_policy(choice.zone);
      break;
    case FirewallBackend::kNftables:
      l.files[kNftFile] = render_nft(pool);
      break;
    case FirewallBackend::kNone:
    case FirewallBackend::kAuto:
      break;
  }
  return l;
}

HostNetworkChange plan_host_network(const HostNetworkLayout& want, const ObservedHostNetwork& have) {
  HostNetworkChange c;
  for (const auto& [path, content] : want.files) {
    auto it = have.files.find(path);
    if (it == have.files.end() || !it->second) {
      c.write.push_back(path);
      c.reasons.push_back(path + " is missing");
    } else if (*it->second != content) {
      c.write.push_back(path);
      c.reasons.push_back(path + " differs");
    }
  }
  for (const auto& path : have.managed) {
    if (want.files.count(path) != 0) continue;
    c.remove.push_back(path);
    c.reasons.push_back(path + " is no longer needed");
  }
  return c;
}

DropinNetworkLines dropin_network_lines(const NetworkChoice& choice, const std::string& container,
                                        const Cidr& subnet) {
  DropinNetworkLines d;
  if (!choice.configure) return d;
  switch (choice.backend) {
    case NetworkBackend::kNetworkManager:
      d.after.push_back("NetworkManager.service");
      break;
    case NetworkBackend::kNetworkd:
      d.after.push_back("systemd-networkd.service");
      d.after.push_back("systemd-resolved.service");
      break;
    case NetworkBackend::kPlain: {
      d.after.push_back("systemd-resolved.service");
      const std::string ifname = host_interface(container);
      // nspawn notifies readiness once the container runs, so the link exists.
      d.exec_start_post.push_back({kIpTool, "address", "replace", gateway_cidr(subnet), "dev", ifname});
      d.exec_start_post.push_back({kIpTool, "link", "set", ifname, "up"});
      break;
    }
    case NetworkBackend::kAuto:
      break;
  }
  if (choice.firewall == FirewallBackend::kFirewalld) d.after.push_back("firewalld.service");
  if (choice.firewall == FirewallBackend::kNftables) {
    // "-": a container still starts if the rules cannot be loaded; its
    // network health then says why it cannot get out.
    d.exec_start_pre.push_back({"-" + std::string(kNftTool), "-f", kNftFile});
  }
  return d;
}

}  // namespace farmhand::provisioner
