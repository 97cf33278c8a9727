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

}  // namespace farmhand::provisioner
