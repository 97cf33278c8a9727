// /network, how the host connects the containers, and a container's own
// "network" (veth, macvlan or ipvlan).
#include <cstdint>

#include "provisioner/config/checks.h"
#include "provisioner/config/sections.h"

namespace farmhand::provisioner::config_parser {
namespace {

struct HostNetworkSection {
  Diagnostics& diag;
  AgentConfig& config;
  // The lower bound of subnet_prefix: the pool's prefix, wherever "pool"
  // appears in the object; unset when the pool is unusable.
  std::optional<Cidr> bounding_pool;

  void backend(const Json& value, const std::string& p) {
    const auto s = value.get<std::string>();
    if (auto b = parse_network_backend(s)) {
      config.network_backend = *b;
    } else {
      diag.error(p, "unknown network backend " + quote(s) +
                        " (expected one of: auto, networkmanager, networkd, plain)");
    }
  }

  void firewall(const Json& value, const std::string& p) {
    const auto s = value.get<std::string>();
    if (auto f = parse_firewall_backend(s)) {
      config.firewall = *f;
    } else {
      diag.error(p, "unknown firewall " + quote(s) + " (expected one of: auto, firewalld, nftables, none)");
    }
  }

  void zone(const Json& value, const std::string& p) {
    const auto s = value.get<std::string>();
    if (valid_zone_name(s)) {
      config.zone = s;
    } else {
      diag.error(p, quote(s) + " is not a valid firewalld zone name: use 1 to 17 letters, digits, '-' or '_'");
    }
  }

  void pool(const Json& value, const std::string& p) {
    if (auto c = check_subnet(diag, value.get<std::string>(), p, "192.168.80.0/20")) config.pool = *c;
  }

  void subnet_prefix(const Json& value, const std::string& p) {
    int lo = bounding_pool ? bounding_pool->prefix : 1;
    bool in_range = value.is_number_unsigned() ? value.get<uint64_t>() <= uint64_t{kMaxSubnetPrefix}
                                               : value.get<int64_t>() <= kMaxSubnetPrefix;
    in_range = in_range && value.get<int64_t>() >= lo;
    if (in_range) {
      config.subnet_prefix = value.get<int>();
    } else {
      diag.error(p, value.dump() + " is out of range: it must be between " + std::to_string(lo) +
                        (bounding_pool ? " (the prefix of the pool, " + bounding_pool->str() + ")" : std::string()) +
                        " and " + std::to_string(kMaxSubnetPrefix));
    }
  }
};

const Keyword<HostNetworkSection> kHostNetworkKeys[] = {
    {"backend", JsonType::kString, Presence::kOptional,
     [](HostNetworkSection& s) { s.config.network_backend = *parse_network_backend(kDefaults.network_backend); },
     &HostNetworkSection::backend},
    {"firewall", JsonType::kString, Presence::kOptional,
     [](HostNetworkSection& s) { s.config.firewall = *parse_firewall_backend(kDefaults.firewall); },
     &HostNetworkSection::firewall},
    {"pool", JsonType::kString, Presence::kOptional,
     [](HostNetworkSection& s) { s.config.pool = *Cidr::parse(kDefaults.pool); }, &HostNetworkSection::pool},
    {"subnet_prefix", JsonType::kInteger, Presence::kOptional,
     [](HostNetworkSection& s) { s.config.subnet_prefix = kDefaults.subnet_prefix; },
     &HostNetworkSection::subnet_prefix},
    {"zone", JsonType::kString, Presence::kOptional, [](HostNetworkSection& s) { s.config.zone = kDefaults.zone; },
     &HostNetworkSection::zone},
};

struct ContainerNetworkSection {
  Diagnostics& diag;
  ContainerNetwork& net;
  ContainerFacts& facts;

  void subnet(const Json& value, const std::string& p) {
    facts.subnet = net.subnet = check_subnet(diag, value.get<std::string>(), p, "192.168.85.0/24");
  }

  void mode(const Json& value, const std::string& p) {
    const auto s = value.get<std::string>();
    if (s == "veth") {
      net.mode = NetworkMode::kVeth;
    } else if (s == "macvlan") {
      net.mode = NetworkMode::kMacvlan;
    } else if (s == "ipvlan") {
      net.mode = NetworkMode::kIpvlan;
    } else {
      diag.error(p, "unknown network mode " + quote(s) + " (expected one of: ipvlan, macvlan, veth)");
    }
  }

  void link(const Json& value, const std::string& p) {
    const auto s = value.get<std::string>();
    if (valid_interface_name(s)) {
      net.link = s;
    } else {
      diag.error(p, quote(s) + " is not a valid interface name: 1 to 15 characters, no '/', ':', whitespace or "
                               "control characters");
    }
  }
};

// The default mode, veth, is ContainerNetwork's own.
const Keyword<ContainerNetworkSection> kContainerNetworkKeys[] = {
    {"link", JsonType::kString, Presence::kOptional, nullptr, &ContainerNetworkSection::link},
    {"mode", JsonType::kString, Presence::kOptional, nullptr, &ContainerNetworkSection::mode},
    {"subnet", JsonType::kString, Presence::kOptional, nullptr, &ContainerNetworkSection::subnet},
};

}  // namespace

void set_network_defaults(Diagnostics& diag, AgentConfig& config) {
  HostNetworkSection section{diag, config, std::nullopt};
  apply_defaults<HostNetworkSection>(section, kHostNetworkKeys);
}

void parse_network(Diagnostics& diag, const Json& object, const std::string& pointer, AgentConfig& config) {
  std::optional<Cidr> pool = Cidr::parse(kDefaults.pool);
  if (const Json* given = first_member(object, "pool")) {
    pool = given->is_string() ? Cidr::parse(given->get<std::string>()) : std::nullopt;
  }
  if (pool && pool->prefix > kMaxSubnetPrefix) pool.reset();
  HostNetworkSection section{diag, config, pool};
  walk_keywords(diag, object, pointer, kHostNetworkKeys, section);
}

void parse_container_network(Diagnostics& diag, const Json& object, const std::string& pointer,
                             ContainerNetwork& net, ContainerFacts& facts) {
  ContainerNetworkSection section{diag, net, facts};
  walk_keywords(diag, object, pointer, kContainerNetworkKeys, section);
  const bool veth = net.mode == NetworkMode::kVeth;
  facts.mode = net.mode;
  facts.link = veth ? "" : net.link;
  const Json* link = first_member(object, "link");
  if (veth && link != nullptr) {
    diag.error(child(pointer, "link"), "only a macvlan or ipvlan network has a parent link");
  } else if (!veth && link == nullptr) {
    diag.error(child(pointer, "link"), "required key is missing: a " + std::string(to_string(net.mode)) +
                                           " network needs the host interface it attaches to, like \"eth0\"");
  }
  if (!veth && first_member(object, "subnet") != nullptr) {
    diag.error(child(pointer, "subnet"),
               "only a veth network has a subnet: " +
                   std::string(net.mode == NetworkMode::kIpvlan ? "an " : "a ") +
                   std::string(to_string(net.mode)) +
                   " container gets its address from the parent link's network (DHCP)");
    facts.subnet.reset();
    net.subnet.reset();
  }
}

}  // namespace farmhand::provisioner::config_parser
