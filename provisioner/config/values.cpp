// The value checks and names that provisioner/config.h makes public: server
// URLs and tokens, interface and zone names, the enums' names, and the host's
// architecture.
#include <sys/utsname.h>

#include <algorithm>
#include <functional>
#include <map>

#include "provisioner/config.h"
#include "provisioner/config/checks.h"

namespace farmhand::provisioner {

using config_parser::has_control;

std::optional<std::string> server_url_problem(std::string_view url) {
  std::optional<std::string_view> rest;
  for (std::string_view scheme : {"ws://", "wss://", "http://", "https://"}) {
    if (url.starts_with(scheme)) rest = url.substr(scheme.size());
  }
  if (!rest) return "it must start with ws://, wss://, http:// or https://";
  if (has_control(url) || url.find(' ') != std::string_view::npos) {
    return "it must not contain whitespace or control characters";
  }
  if (rest->empty() || rest->front() == '/') return "it has no host";
  return std::nullopt;
}

std::optional<std::string> token_problem(std::string_view token) {
  if (token.empty()) return "is empty";
  if (token.size() > 4096) return "is longer than 4096 characters";
  bool printable = std::all_of(token.begin(), token.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7f;
  });
  if (!printable) return "must be printable ASCII without spaces";
  return std::nullopt;
}

bool valid_interface_name(std::string_view name) {
  if (name.empty() || name.size() > 15 || name == "." || name == "..") return false;
  return std::none_of(name.begin(), name.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f || c == '/' || c == ':';
  });
}

bool valid_zone_name(std::string_view name) {
  // firewalld limits zone names to 17 characters.
  if (name.empty() || name.size() > 17) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
  });
}

std::string_view to_string(NetworkMode mode) {
  switch (mode) {
    case NetworkMode::kVeth: return "veth";
    case NetworkMode::kMacvlan: return "macvlan";
    case NetworkMode::kIpvlan: return "ipvlan";
  }
  return "veth";
}

std::string_view to_string(NetworkBackend backend) {
  switch (backend) {
    case NetworkBackend::kAuto: return "auto";
    case NetworkBackend::kNetworkManager: return "networkmanager";
    case NetworkBackend::kNetworkd: return "networkd";
    case NetworkBackend::kPlain: return "plain";
  }
  return "auto";
}

std::optional<NetworkBackend> parse_network_backend(std::string_view text) {
  for (auto b : {NetworkBackend::kAuto, NetworkBackend::kNetworkManager, NetworkBackend::kNetworkd,
                 NetworkBackend::kPlain}) {
    if (to_string(b) == text) return b;
  }
  return std::nullopt;
}

std::string_view to_string(FirewallBackend firewall) {
  switch (firewall) {
    case FirewallBackend::kAuto: return "auto";
    case FirewallBackend::kFirewalld: return "firewalld";
    case FirewallBackend::kNftables: return "nftables";
    case FirewallBackend::kNone: return "none";
  }
  return "auto";
}

std::optional<FirewallBackend> parse_firewall_backend(std::string_view text) {
  for (auto f : {FirewallBackend::kAuto, FirewallBackend::kFirewalld, FirewallBackend::kNftables,
                 FirewallBackend::kNone}) {
    if (to_string(f) == text) return f;
  }
  return std::nullopt;
}

std::optional<CloneMethod> parse_clone_method(std::string_view text) {
  for (auto m : {CloneMethod::kAuto, CloneMethod::kBtrfs, CloneMethod::kReflink, CloneMethod::kOverlay,
                 CloneMethod::kCopy}) {
    if (to_string(m) == text) return m;
  }
  return std::nullopt;
}

std::string_view to_string(CloneMethod method) {
  switch (method) {
    case CloneMethod::kAuto: return "auto";
    case CloneMethod::kBtrfs: return "btrfs";
    case CloneMethod::kReflink: return "reflink";
    case CloneMethod::kOverlay: return "overlay";
    case CloneMethod::kCopy: return "copy";
  }
  return "unknown";
}

std::string_view to_string(RunAs user) {
  switch (user) {
    case RunAs::kRoot: return "root";
    case RunAs::kBuildUser: return "sai";
  }
  return "sai";
}

std::optional<RunAs> parse_run_as(std::string_view text) {
  for (auto user : {RunAs::kRoot, RunAs::kBuildUser}) {
    if (to_string(user) == text) return user;
  }
  return std::nullopt;
}

std::string host_arch() {
  struct utsname u {};
  if (::uname(&u) != 0) return "unknown";
  static const std::map<std::string, std::string, std::less<>> kDebianNames{
      {"x86_64", "amd64"}, {"aarch64", "arm64"},   {"armv7l", "armhf"}, {"i686", "i386"},
      {"i386", "i386"},    {"ppc64le", "ppc64el"}, {"s390x", "s390x"},  {"riscv64", "riscv64"}};
  auto it = kDebianNames.find(std::string_view(u.machine));
  return it == kDebianNames.end() ? std::string(u.machine) : it->second;
}

}  // namespace farmhand::provisioner
