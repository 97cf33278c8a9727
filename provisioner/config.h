// The agent's configuration: agent-level settings and the declared build
// containers. Parsing fails closed: unknown keys, wrong types and invalid
// values are errors naming the JSON pointer and the reason; every default
// lives in kDefaults below.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "provisioner/recipe.h"
#include "provisioner/subnet.h"

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

struct ContainerSpec {
  std::string name;
  std::string distro;
  std::string release;
  std::string arch;
  std::vector<std::string> packages;   // extra packages, on top of the recipe's build set
  bool build_packages = true;          // install the recipe's build package set
  std::optional<Cidr> subnet;          // explicit; otherwise allocated from the pool
  bool boot = true;                    // start at every boot
  bool private_users = false;          // user namespace (PrivateUsers=pick)
  std::vector<BindMount> binds;
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

struct AgentConfig {
  AgentPaths paths;
  Cidr pool;
  int subnet_prefix = 24;
  CloneMethod clone_method = CloneMethod::kAuto;
  std::map<std::string, std::string> mirrors;  // distro -> mirror URL
  std::vector<ContainerSpec> containers;
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

// The host architecture in farmhand's (Debian's) names: "amd64", "arm64"...
std::string host_arch();

}  // namespace farmhand::provisioner
