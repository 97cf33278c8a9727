// The host side of the containers' networks: which tool configures the
// host end of each private veth link, which firewall lets the containers'
// traffic out, and the files farmhand writes for them.
//
// Choosing is pure (observe_host_facts reads only files, so it works under
// --root); rendering is pure. Each backend (host_network/) renders its own
// files and reloads its own daemon; host_network/apply.h puts them in place.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/fs.h"
#include "provisioner/config.h"
#include "provisioner/subnet.h"

namespace farmhand::provisioner {

// What the host has, from its files: enabled units and installed tools.
struct HostFacts {
  bool networkmanager = false;  // NetworkManager.service is enabled
  bool networkd = false;        // systemd-networkd.service is enabled
  bool resolved = false;        // systemd-resolved.service is enabled
  bool firewalld = false;       // firewalld.service is enabled
  bool nft = false;             // the nft tool is installed
  // A .network file (not farmhand's) through which networkd would manage
  // ve-* interfaces, such as systemd's own 80-container-ve.network; empty if none.
  std::string networkd_ve_claim;
  bool systemd_booted = false;  // the host runs systemd as PID 1 (/run/systemd/system)
};

HostFacts observe_host_facts(const HostRoot& root);

struct NetworkChoice {
  // False: the host side is left alone (no veth container, or not decided).
  bool configure = false;
  NetworkBackend backend = NetworkBackend::kPlain;
  FirewallBackend firewall = FirewallBackend::kNone;
  std::string zone = "vm";
  std::vector<std::string> conflicts;  // refusals, for the plan
  // What works but leaves the containers short (no way out, no DNS): the
  // plan says so, and apply goes on.
  std::vector<std::string> warnings;
};

// Resolves "auto" against the host and refuses impossible combinations.
NetworkChoice choose_network(const AgentConfig& config, const HostFacts& facts, bool any_veth);

// The host interface systemd-nspawn creates for a container: "ve-NAME".
std::string host_interface(const std::string& name);
// Whether the name fits "ve-NAME" exactly (longer names are shortened by systemd).
bool host_interface_exact(const std::string& name);

struct VethContainer {
  std::string name;
  Cidr subnet;
};

// Every host-wide network file farmhand keeps, for the given containers.
struct HostNetworkLayout {
  NetworkChoice choice;
  std::map<std::string, std::string> files;  // logical path -> content
  std::map<std::string, unsigned> modes;     // for files that are not 0644
  // Where farmhand's own files of this kind live: directory and file-name
  // prefix. A managed file there that `files` does not list is removed.
  std::vector<std::pair<std::string, std::string>> owned;
};

HostNetworkLayout make_host_network(const NetworkChoice& choice, const Cidr& pool,
                                    const std::vector<VethContainer>& containers);

// What is on the host now: the layout's files, and every file farmhand
// manages in the owned places (found by its header).
struct ObservedHostNetwork {
  std::map<std::string, std::optional<std::string>> files;  // logical path -> content
  std::vector<std::string> managed;                          // logical paths
};

struct HostNetworkChange {
  std::vector<std::string> reasons;  // for the admin; empty when up to date
  std::vector<std::string> write;    // logical paths to (re)write
  std::vector<std::string> remove;   // managed files no longer wanted
  bool has_work() const { return !write.empty() || !remove.empty(); }
};

HostNetworkChange plan_host_network(const HostNetworkLayout& want, const ObservedHostNetwork& have);

// Logical paths of the host network files.
inline constexpr const char* kOwnNetworkdPrefix = "10-farmhand-";  // of .network files
inline constexpr const char* kNmConfFile = "/etc/NetworkManager/conf.d/90-farmhand.conf";
inline constexpr const char* kNmConnectionDir = "/etc/NetworkManager/system-connections";
inline constexpr const char* kNetworkdDir = "/etc/systemd/network";
inline constexpr const char* kResolvedConfFile = "/etc/systemd/resolved.conf.d/90-farmhand.conf";
inline constexpr const char* kSysctlFile = "/etc/sysctl.d/90-farmhand.conf";
inline constexpr const char* kNftFile = "/etc/farmhand/firewall.nft";
inline constexpr const char* kFirewalldZoneDir = "/etc/firewalld/zones";
inline constexpr const char* kFirewalldPolicyDir = "/etc/firewalld/policies";
// The tools the unit drop-ins run, by absolute path (Debian and Fedora alike).
inline constexpr const char* kIpTool = "/sbin/ip";
inline constexpr const char* kNftTool = "/usr/sbin/nft";

std::string nm_connection_name(const std::string& container);
std::string nm_connection_file(const std::string& container);
std::string networkd_file(const std::string& container);
std::string firewalld_policy_name(const std::string& zone);

std::string render_nm_conf();
std::string render_nm_connection(const std::string& container, const Cidr& subnet, const std::string& zone);
std::string render_host_networkd(const std::string& container, const Cidr& subnet, bool masquerade);
std::string render_resolved_conf(const std::vector<VethContainer>& containers);
std::string render_sysctl();
std::string render_nft(const Cidr& pool);
std::string render_firewalld_zone(const NetworkChoice& choice, const std::vector<VethContainer>& containers);
std::string render_firewalld_policy(const std::string& zone);

// The [Unit]/[Service] lines one container's drop-in gets for the host
// network: ordering after the services it needs, and for the plain backend
// the commands that configure its host interface when it starts.
struct DropinNetworkLines {
  std::vector<std::string> after;                        // units to start after
  std::vector<std::vector<std::string>> exec_start_pre;   // argv, absolute program path
  std::vector<std::vector<std::string>> exec_start_post;
};
DropinNetworkLines dropin_network_lines(const NetworkChoice& choice, const std::string& container,
                                        const Cidr& subnet);

}  // namespace farmhand::provisioner
