// The agent's configuration: agent-level settings and the declared build
// containers. Parsing (provisioner/config/, one file per section) fails closed:
// unknown keys, wrong types and invalid values are errors naming the JSON
// pointer and the reason; every default lives in kDefaults below.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "provisioner/recipe.h"
#include "provisioner/subnet.h"
#include "udev/rule.h"

namespace farmhand::provisioner {

enum class CloneMethod { kAuto, kBtrfs, kReflink, kOverlay, kCopy };
std::string_view to_string(CloneMethod method);
std::optional<CloneMethod> parse_clone_method(std::string_view text);

struct BindMount {
  std::string source;  // absolute host path
  std::string target;  // absolute container path; defaults to source
  bool read_only = false;
  bool operator==(const BindMount&) const = default;
};

// How a container reaches the network.
enum class NetworkMode {
  kVeth,     // a private veth pair; the host side is the gateway of its own subnet
  kMacvlan,  // a macvlan link on a host interface: the container is on the host's LAN
  kIpvlan,   // an ipvlan link on a host interface (shares the parent's MAC address)
};
std::string_view to_string(NetworkMode mode);

struct ContainerNetwork {
  NetworkMode mode = NetworkMode::kVeth;
  std::optional<Cidr> subnet;  // veth only: explicit; otherwise allocated from the pool
  std::string link;            // macvlan/ipvlan only: the parent interface on the host
  bool operator==(const ContainerNetwork&) const = default;
};

// Credentials for a git remote, as files on the host. farmhand reads them
// when it fetches and never logs their contents.
struct GitCredentials {
  std::string ssh_key;      // OpenSSH private key file, for ssh remotes
  std::string known_hosts;  // known_hosts file the server's host key must be in (ssh remotes)
  std::string token_file;   // file holding an https token or password (first line)
  std::string username;     // https user for the token; ssh user when the URL names none
  bool operator==(const GitCredentials&) const = default;
};

// A git repository checked out inside the container, owned by the build user.
struct SourceSpec {
  std::string name;      // unique within the container; steps name their sources by it
  std::string url;       // https://, http://, ssh://, user@host:path, file:// or an absolute path
  std::string ref;       // branch, tag or full commit id
  std::string path;      // absolute path inside the container
  int depth = 0;         // 0: the whole history
  bool submodules = false;
  // When the checkout moves to a new commit, remove untracked and ignored
  // files (git clean -ffdx) and reset tracked ones before dependent steps run.
  bool clean = false;
  GitCredentials credentials;
  bool operator==(const SourceSpec&) const = default;
};

// Who a setup step runs as inside the container.
enum class RunAs { kRoot, kBuildUser };
std::string_view to_string(RunAs user);  // "root", "sai"
std::optional<RunAs> parse_run_as(std::string_view text);

// A command run inside the container, in order, when its definition or the
// commit of a source it depends on changed since it last succeeded.
struct SetupStep {
  std::string name;                  // unique within the container
  std::vector<std::string> run;      // argv; never a shell unless argv names one; templated
  RunAs user = RunAs::kBuildUser;
  std::string cwd;                   // absolute path inside the container; empty: the user's home
  std::vector<std::string> env;      // "KEY=value", templated
  std::vector<std::string> sources;  // names of the sources it depends on (all of them by default)
  int timeout_s = 3600;
  bool operator==(const SetupStep&) const = default;
};

// A file farmhand writes inside the container from a template.
struct FileSpec {
  std::string path;      // absolute path inside the container
  std::string content;   // template text ({{variable}})
  std::string owner = "root";  // user name (from the container's /etc/passwd) or numeric id
  std::string group = "root";  // group name or numeric id
  unsigned mode = 0644;
  bool operator==(const FileSpec&) const = default;
};

// A systemd unit installed (and enabled) inside the container.
struct ServiceSpec {
  std::string name;      // unit file name, e.g. "sai-builder.service"
  std::string content;   // unit file template
  bool enable = true;    // linked into the [Install] WantedBy= targets (multi-user.target if none)
  bool operator==(const ServiceSpec&) const = default;
};

struct ContainerSpec {
  std::string name;
  std::string distro;
  std::string release;
  std::string arch;
  std::vector<std::string> packages;   // extra packages, on top of the recipe's build set
  bool build_packages = true;          // install the recipe's build package set
  ContainerNetwork network;
  bool boot = true;                    // start at every boot
  bool private_users = false;          // user namespace (PrivateUsers=pick)
  std::vector<BindMount> binds;
  // Devices handed to the container while it runs (USB serial hotplug).
  std::vector<udev::DeviceRule> devices;
  // The payload: applied after the container exists, on every apply, and
  // only what changed is redone (see docs/payload.md).
  std::vector<SourceSpec> sources;
  std::vector<FileSpec> files;
  std::vector<SetupStep> setup;
  std::vector<ServiceSpec> services;
  bool operator==(const ContainerSpec&) const = default;
};

struct AgentPaths {
  std::string machines;  // container root filesystems
  std::string state;     // state.db
  std::string cache;     // base-tree cache (images/)
  std::string nspawn;    // .nspawn files
  std::string systemd;   // unit drop-ins and wants symlinks
  bool operator==(const AgentPaths&) const = default;
};

// Who configures the host side of the containers' veth links.
enum class NetworkBackend { kAuto, kNetworkManager, kNetworkd, kPlain };
std::string_view to_string(NetworkBackend backend);
std::optional<NetworkBackend> parse_network_backend(std::string_view text);

enum class FirewallBackend { kAuto, kFirewalld, kNftables, kNone };
std::string_view to_string(FirewallBackend firewall);
std::optional<FirewallBackend> parse_firewall_backend(std::string_view text);

// The central server this agent reports to, as `farmhand enroll` recorded it.
// The host's own credential is not here but in `credential_file`, which
// enroll writes (mode 0600) after exchanging the one-time token.
struct ServerSettings {
  std::string url;      // ws://, wss://, http:// or https://
  std::string ca_file;  // PEM CA bundle that pins the server's certificate; empty: the system's
  std::string credential_file = "/etc/farmhand/credential";
  bool operator==(const ServerSettings&) const = default;
};

// A git repository holding this host's containers (desired state in git).
struct ConfigRepo {
  std::string url;
  std::string ref = "main";
  std::string path;          // the host's file in the repository, e.g. "hosts/builder-01.json"
  GitCredentials credentials;
  int interval_s = 300;      // how often the running agent fetches it
  bool operator==(const ConfigRepo&) const = default;
};

struct AgentConfig {
  AgentPaths paths;
  Cidr pool;
  int subnet_prefix = 24;
  NetworkBackend network_backend = NetworkBackend::kAuto;
  FirewallBackend firewall = FirewallBackend::kAuto;
  std::string zone = "vm";  // the firewalld zone of the containers' host interfaces
  std::optional<ServerSettings> server;
  CloneMethod clone_method = CloneMethod::kAuto;
  std::map<std::string, std::string> mirrors;  // distro -> mirror URL
  std::vector<ContainerSpec> containers;
  std::optional<ConfigRepo> config_repo;
};

// Every default, in one place.
struct Defaults {
  const char* machines = "/var/lib/machines";
  const char* state = "/var/lib/farmhand";
  const char* cache = "/var/cache/farmhand";
  const char* nspawn = "/etc/systemd/nspawn";
  const char* systemd = "/etc/systemd/system";
  const char* pool = "192.168.80.0/20";
  int subnet_prefix = 24;
  const char* clone_method = "auto";
  const char* network_backend = "auto";
  const char* firewall = "auto";
  const char* zone = "vm";
  const char* config_file = "/etc/farmhand/agent.json";
  bool build_packages = true;
  bool boot = true;
  bool private_users = false;
  bool bind_read_only = false;
  // Longer names work on current systemd, but ve-NAME is only exact up to 12.
  size_t recommended_name_length = 12;
  // systemd < v245 truncated the host interface to "ve-" plus 11 characters.
  size_t legacy_ifname_chars = 11;
  size_t max_name_length = 64;
  // The payload (see ContainerSpec) and config_repo.
  int source_depth = 0;  // the whole history
  bool source_submodules = false;
  const char* setup_user = "sai";
  int setup_timeout_s = 3600;
  const char* file_owner = "root";
  const char* file_group = "root";
  unsigned file_mode = 0644;
  bool service_enable = true;
  const char* config_repo_ref = "main";
  int config_repo_interval_s = 300;
};
inline constexpr Defaults kDefaults{};

struct ConfigLoad {
  std::optional<AgentConfig> config;   // set only when errors is empty
  std::vector<std::string> errors;     // "<json pointer>: <reason>", in document order
  std::vector<std::string> warnings;   // valid but inadvisable ("<pointer>: <advice>")
};

// Parses and validates a configuration document against the recipes.
ConfigLoad parse_config(std::string_view json_text, const RecipeBook& recipes);
// Reads `path` and parses it; a missing or unreadable file is one error.
ConfigLoad load_config_file(const std::string& path, const RecipeBook& recipes);
// Merges the config repository's host file (which may hold only "containers"
// and "mirrors") into the local agent.json text and parses the result: the
// repo's "containers" replace the local ones (which must be absent), and its
// "mirrors", when present, replace the local mirrors. Errors and warnings from
// the repo file are prefixed "<repo_label>: ", e.g.
// "hosts/b1.json@1a2b3c4d5e6f: /containers/0/name: ...".
ConfigLoad parse_config_with_repo(std::string_view local_json, std::string_view repo_json,
                                  const std::string& repo_label, const RecipeBook& recipes);

// Why a central-server URL or token is unusable; std::nullopt if it is fine.
std::optional<std::string> server_url_problem(std::string_view url);
std::optional<std::string> token_problem(std::string_view token);
// A Linux interface name (IFNAMSIZ) and a firewalld zone name.
bool valid_interface_name(std::string_view name);
bool valid_zone_name(std::string_view name);

// The host architecture in farmhand's (Debian's) names: "amd64", "arm64"...
std::string host_arch();

}  // namespace farmhand::provisioner
