// Value checks and message helpers that more than one section of agent.json
// uses: pointers, quoting, paths, subnets, ranges and git remotes. Each check
// reports its own error and says whether the value is usable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "provisioner/config.h"
#include "provisioner/config/keywords.h"
#include "provisioner/subnet.h"

namespace farmhand::provisioner::config_parser {

// The container is .9 of its subnet and must not be the broadcast address, so
// a subnet needs more than kContainerOffset + 1 addresses: a /28 at most.
constexpr int max_subnet_prefix() {
  int prefix = 32;
  while (prefix > 1 && (uint64_t{1} << (32 - prefix)) <= uint64_t{kContainerOffset} + 1) --prefix;
  return prefix;
}
inline constexpr int kMaxSubnetPrefix = max_subnet_prefix();

// The pointer of a member or an array item under `parent`.
std::string child(const std::string& parent, std::string_view key);
std::string child(const std::string& parent, size_t index);
// `s` as a JSON string, for messages.
std::string quote(std::string_view s);
// "a, b, c".
std::string join(const std::vector<std::string>& items);

bool has_control(std::string_view s);
bool has_dotdot(const std::string& path);
// `path` lexically normal and without a trailing '/', to compare paths.
std::string normal_path(const std::string& path);

// The first member named `key` of `object`, if it is an object and has one.
const Json* first_member(const Json& object, const char* key);
// That member's text, when it is a string: for keys that decide how other
// keys of the same object are read, wherever they appear in it.
std::optional<std::string> peek_string(const Json& object, const char* key);
// An array item that must be a string.
std::optional<std::string> as_string(Diagnostics& diag, const Json& value, const std::string& pointer);

// An absolute path without control characters or "..". A bind mount's path
// must also be free of ':', the separator of the .nspawn Bind= setting.
bool check_path(Diagnostics& diag, const std::string& path, const std::string& pointer, bool bind);
// A CIDR subnet usable for containers: .1 for the host, .9 for the container.
// `example` shows the form in the message.
std::optional<Cidr> check_subnet(Diagnostics& diag, const std::string& text, const std::string& pointer,
                                 const char* example);
// An integer `value` in [lo, hi]; `note` explains a special value or the unit.
std::optional<int> int_in_range(Diagnostics& diag, const Json& value, const std::string& pointer, int lo, int hi,
                                const char* note = "");

// A git remote, shared by a container's sources and config_repo. The URL's
// message never shows a password that is in it.
std::optional<std::string> check_git_url(Diagnostics& diag, const std::string& url, const std::string& pointer);
std::optional<std::string> check_git_ref(Diagnostics& diag, const std::string& ref, const std::string& pointer);
// The "credentials" object of a remote whose URL is `url` (peeked: it may come
// later in the object); a credential the URL's transport does not use is an error.
void parse_credentials(Diagnostics& diag, const Json& object, const std::string& pointer,
                       const std::optional<std::string>& url, GitCredentials& out);

}  // namespace farmhand::provisioner::config_parser
