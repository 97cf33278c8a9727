// The value rules of a container's payload and of config_repo: git URLs and
// refs, payload names, unit file names. Each returns why a value is unusable,
// or std::nullopt; the configuration parser adds the JSON pointer.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace farmhand::provisioner {

// How farmhand reaches a git remote.
enum class GitTransport { kHttp, kSsh, kFile };

// https://, http://, ssh://, scp-like [user@]host:path, file:// or an absolute path.
std::optional<GitTransport> git_transport(std::string_view url);
// Why `url` is not a git URL farmhand accepts (including a password in it).
std::optional<std::string> git_url_problem(std::string_view url);
// `url` with the password of its userinfo, if any, replaced by "***".
std::string hide_url_password(std::string_view url);

// A branch, tag or commit: no whitespace, control characters, "..", leading '-'
// or characters git refuses in ref names.
std::optional<std::string> git_ref_problem(std::string_view ref);

// Source and setup step names: [a-z0-9][a-z0-9_.-]{0,63}.
bool valid_payload_name(std::string_view name);

// A unit file name ending in .service, .timer, .socket or .path.
std::optional<std::string> unit_name_problem(std::string_view name);

}  // namespace farmhand::provisioner
