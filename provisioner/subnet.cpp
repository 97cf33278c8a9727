#include "provisioner/subnet.h"

#include <charconv>

namespace farmhand::provisioner {

std::optional<uint32_t> parse_ipv4(std::string_view text) {
  uint32_t out = 0;
  for (int i = 0; i < 4; ++i) {
    if (i > 0) {
      if (text.empty() || text.front() != '.') return std::nullopt;
      text.remove_prefix(1);
    }
    if (text.empty()) return std::nullopt;
    // Leading zeros are refused: "010" means octal to some tools.
    if (text.size() > 1 && text[0] == '0' && text[1] >= '0' && text[1] <= '9') return std::nullopt;
    unsigned value = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || value > 255 || ptr == text.data()) return std::nullopt;
    text.remove_prefix(static_cast<size_t>(ptr - text.data()));
    out = (out << 8) | value;
  }
  if (!text.empty()) return std::nullopt;
  return out;
}

std::string format_ipv4(uint32_t a) {
  return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 0xff) + "." +
         std::to_string((a >> 8) & 0xff) + "." + std::to_string(a & 0xff);
}

std::optional<Cidr> Cidr::parse(std::string_view text) {
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto addr = parse_ipv4(text.substr(0, slash));
  std::string_view p = text.substr(slash + 1);
  int prefix = -1;
  auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
  if (!addr || ec != std::errc() || ptr != p.data() + p.size() || p.empty() || prefix < 1 ||
      prefix > 32 || (p.size() > 1 && p.front() == '0')) {
    return std::nullopt;
  }
  Cidr c{*addr, prefix};
  uint32_t mask = prefix == 32 ? 0xffffffffu : ~((1u << (32 - prefix)) - 1);
  if ((c.network & ~mask) != 0) return std::nullopt;
  return c;
}

std::string Cidr::str() const { return format_ipv4(network) + "/" + std::to_string(prefix); }

bool Cidr::overlaps(const Cidr& o) const { return network <= o.last() && o.network <= last(); }

bool Cidr::contains(const Cidr& o) const { return network <= o.network && o.last() <= last(); }

std::string Cidr::host(uint32_t offset) const { return format_ipv4(network + offset); }

std::optional<Cidr> allocate_subnet(const Cidr& pool, int prefix, const std::vector<Cidr>& taken) {
  if (prefix < pool.prefix || prefix > 30) return std::nullopt;
  const uint64_t step = 1ull << (32 - prefix);
  for (uint64_t n = pool.network; n + step - 1 <= pool.last(); n += step) {
    Cidr candidate{static_cast<uint32_t>(n), prefix};
    bool free = true;
    for (const auto& t : taken) {
      if (candidate.overlaps(t)) {
        free = false;
        break;
      }
    }
    if (free) return candidate;
  }
  return std::nullopt;
}

Assignment assign_subnets(const Cidr& pool, int prefix,
                          const std::vector<std::pair<std::string, std::optional<Cidr>>>& wanted,
                          const std::map<std::string, Cidr>& previous) {
  Assignment out;
  std::vector<Cidr> taken;
  for (const auto& [name, explicit_subnet] : wanted) {
    if (explicit_subnet) {
      out.subnets[name] = *explicit_subnet;
      taken.push_back(*explicit_subnet);
    }
  }
  auto is_free = [&](const Cidr& c) {
    for (const auto& t : taken) {
      if (c.overlaps(t)) return false;
    }
    return true;
  };
  for (const auto& [name, explicit_subnet] : wanted) {
    if (explicit_subnet) continue;
    auto it = previous.find(name);
    if (it != previous.end() && it->second.prefix == prefix && pool.contains(it->second) &&
        is_free(it->second)) {
      out.subnets[name] = it->second;
      taken.push_back(it->second);
    }
  }
  for (const auto& [name, explicit_subnet] : wanted) {
    if (out.subnets.count(name) != 0) continue;
    if (auto c = allocate_subnet(pool, prefix, taken)) {
      out.subnets[name] = *c;
      taken.push_back(*c);
    } else {
      out.exhausted.push_back(name);
    }
  }
  return out;
}

}  // namespace farmhand::provisioner
