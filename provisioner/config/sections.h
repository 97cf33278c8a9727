// The section parsers of agent.json, one file each under provisioner/config/,
// and what they share. config.cpp reads the top level and hands each section
// to its parser; cross_checks.cpp runs last, over every container.
#pragma once

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "provisioner/config.h"
#include "provisioner/config/keywords.h"
#include "provisioner/recipe.h"
#include "udev/rule.h"

namespace farmhand::provisioner::config_parser {

// What the cross-container checks need to know about one container.
struct ContainerFacts {
  std::string name_pointer;
  std::optional<std::string> name;  // set when valid
  std::string subnet_pointer;
  std::optional<Cidr> subnet;  // set when given and valid
  NetworkMode mode = NetworkMode::kVeth;
  std::string link;  // macvlan/ipvlan parent, when valid
  // Valid device rules with their pointers.
  std::vector<std::pair<std::string, udev::DeviceMatch>> device_rules;
};

// What the parsers of one document share.
struct Context {
  Diagnostics diag;
  const RecipeBook& recipes;
  std::string host_arch;
  std::set<std::string> mirror_keys;  // the distros /mirrors names, wherever it appears
  std::vector<ContainerFacts> facts;  // one per container read, for cross_checks
};

// network.cpp: /network (the host side) and a container's "network".
void set_network_defaults(Diagnostics& diag, AgentConfig& config);
void parse_network(Diagnostics& diag, const Json& object, const std::string& pointer, AgentConfig& config);
void parse_container_network(Diagnostics& diag, const Json& object, const std::string& pointer,
                             ContainerNetwork& net, ContainerFacts& facts);

// server.cpp: /server.
void parse_server(Diagnostics& diag, const Json& object, const std::string& pointer, AgentConfig& config);

// config_repo.cpp: /config_repo.
void parse_config_repo(Diagnostics& diag, const Json& object, const std::string& pointer, AgentConfig& config);

// mirrors.cpp: /mirrors.
void parse_mirrors(Context& ctx, const Json& object, const std::string& pointer, AgentConfig& config);

// containers.cpp: one item of "containers", appended to config.containers
// and its facts to ctx.facts.
void parse_container(Context& ctx, const Json& object, const std::string& pointer, AgentConfig& config);

// devices.cpp: a container's "devices" array.
void parse_devices(Diagnostics& diag, const Json& value, const std::string& pointer, ContainerSpec& spec,
                   ContainerFacts& facts);

// payload.cpp: a container's "sources", "files", "setup" and "services"
// arrays. Templates may use `variables`; steps may name `source_names`.
std::vector<std::string> peek_source_names(const Json& container);
void parse_sources(Diagnostics& diag, const Json& array, const std::string& pointer, ContainerSpec& spec);
void parse_files(Diagnostics& diag, const Json& array, const std::string& pointer, ContainerSpec& spec,
                 const std::set<std::string>& variables);
// A step without "sources" depends on every source of the container: its
// index goes to `steps_on_all_sources`, filled in once the sources are read.
void parse_setup(Diagnostics& diag, const Json& array, const std::string& pointer, ContainerSpec& spec,
                 const std::set<std::string>& variables, const std::vector<std::string>& source_names,
                 std::vector<size_t>& steps_on_all_sources);
void parse_services(Diagnostics& diag, const Json& array, const std::string& pointer, ContainerSpec& spec,
                    const std::set<std::string>& variables);

// cross_checks.cpp: what no single container can check, in container order:
// names, device rules, parent links and subnets.
void cross_container_checks(Diagnostics& diag, const std::vector<ContainerFacts>& facts);

}  // namespace farmhand::provisioner::config_parser
