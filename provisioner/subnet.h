// IPv4 subnets and the per-container subnet allocator.
//
// Each container gets one subnet (a /24 by default) out of the agent's pool:
// the host side of its veth is .1 and the container is .9, as in the manual
// procedure. Allocation is deterministic and stable: a container keeps its
// subnet across applies, and explicit subnets are never handed out again.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace farmhand::provisioner {

struct Cidr {
  uint32_t network = 0;  // host byte order, host bits zero
  int prefix = 0;

  // "192.168.80.0/20". Rejects host bits set ("192.168.80.1/20") and bad syntax.
  static std::optional<Cidr> parse(std::string_view text);
  std::string str() const;
  uint32_t size() const { return prefix == 0 ? 0 : (1u << (32 - prefix)); }
  uint32_t last() const { return network + (size() - 1); }
  bool overlaps(const Cidr& other) const;
  bool contains(const Cidr& other) const;
  // The dotted address `offset` into the subnet: host(1) is the gateway.
  std::string host(uint32_t offset) const;
  bool operator==(const Cidr&) const = default;
  auto operator<=>(const Cidr&) const = default;
};

std::string format_ipv4(uint32_t address);
std::optional<uint32_t> parse_ipv4(std::string_view text);

// The host side of a container's veth (.1) and the container (.9).
inline constexpr uint32_t kGatewayOffset = 1;
inline constexpr uint32_t kContainerOffset = 9;

// Picks the first free subnet of `prefix` length in `pool` that overlaps none
// of `taken`. std::nullopt when the pool is exhausted.
std::optional<Cidr> allocate_subnet(const Cidr& pool, int prefix, const std::vector<Cidr>& taken);

// Assigns every name a subnet: explicit ones first, then each name keeps the
// subnet it had in `previous` if still free and inside the pool, then new names
// (in order) get the first free one. Names with no subnet left are listed in
// `exhausted`.
struct Assignment {
  std::map<std::string, Cidr> subnets;
  std::vector<std::string> exhausted;
};
Assignment assign_subnets(const Cidr& pool, int prefix,
                          const std::vector<std::pair<std::string, std::optional<Cidr>>>& wanted,
                          const std::map<std::string, Cidr>& previous);

}  // namespace farmhand::provisioner
