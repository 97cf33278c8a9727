#include "provisioner/payload_rules.h"

#include <algorithm>

namespace farmhand::provisioner {
namespace {

bool has_space_or_control(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f;
  });
}

// The parts of a URL that matter here. For scp-like URLs `authority` is
// "user@host" and `rest` the path after ':'.
struct UrlParts {
  GitTransport transport;
  std::string_view scheme;     // "https://", ... or "" (scp-like, absolute path)
  std::string_view authority;  // [userinfo@]host[:port]
  std::string_view rest;       // path
};

std::optional<UrlParts> split(std::string_view url) {
  struct Scheme {
    std::string_view prefix;
    GitTransport transport;
  };
  for (Scheme s : {Scheme{"https://", GitTransport::kHttp}, Scheme{"http://", GitTransport::kHttp},
                   Scheme{"ssh://", GitTransport::kSsh}, Scheme{"file://", GitTransport::kFile}}) {
    if (!url.starts_with(s.prefix)) continue;
    std::string_view after = url.substr(s.prefix.size());
    if (s.transport == GitTransport::kFile) return UrlParts{s.transport, s.prefix, {}, after};
    size_t slash = after.find('/');
    return UrlParts{s.transport, s.prefix, after.substr(0, slash),
                    slash == std::string_view::npos ? std::string_view{} : after.substr(slash)};
  }
  if (url.starts_with("/")) return UrlParts{GitTransport::kFile, {}, {}, url};
  if (url.find("://") != std::string_view::npos) return std::nullopt;
  // scp-like: [user@]host:path, the host without '/'.
  size_t at = url.find('@');
  size_t colon = url.find(':', at == std::string_view::npos ? 0 : at + 1);
  if (colon == std::string_view::npos || url.substr(0, colon).find('/') != std::string_view::npos) {
    return std::nullopt;
  }
  return UrlParts{GitTransport::kSsh, {}, url.substr(0, colon), url.substr(colon + 1)};
}

std::string_view userinfo(const UrlParts& parts) {
  size_t at = parts.authority.rfind('@');
  return at == std::string_view::npos ? std::string_view{} : parts.authority.substr(0, at);
}

}  // namespace

std::optional<GitTransport> git_transport(std::string_view url) {
  auto parts = split(url);
  if (!parts) return std::nullopt;
  return parts->transport;
}

std::optional<std::string> git_url_problem(std::string_view url) {
  if (url.empty()) return "it must not be empty";
  if (has_space_or_control(url)) return "it must not contain whitespace or control characters";
  if (url.front() == '-') return "it must not start with '-'";
  auto parts = split(url);
  if (!parts) {
    return "it must start with https://, http://, ssh:// or file://, be an absolute path, or be "
           "user@host:path";
  }
  if (userinfo(*parts).find(':') != std::string_view::npos) {
    return parts->transport == GitTransport::kHttp
               ? "it has a password in it: put the token in credentials.token_file"
               : "it has a password in it: use credentials.ssh_key";
  }
  if (parts->transport == GitTransport::kFile) {
    if (parts->rest.empty() || parts->rest.front() != '/') return "it has no absolute path";
    return std::nullopt;
  }
  std::string_view host = parts->authority.substr(parts->authority.rfind('@') + 1);
  if (host.empty() || (parts->scheme.empty() ? host : host.substr(0, host.find(':'))).empty()) {
    return "it has no host";
  }
  if (parts->rest.empty() || parts->rest == "/") return "it has no repository path";
  return std::nullopt;
}

std::string hide_url_password(std::string_view url) {
  auto parts = split(url);
  std::string_view info = parts ? userinfo(*parts) : std::string_view{};
  size_t colon = info.find(':');
  if (colon == std::string_view::npos) return std::string(url);
  size_t info_at = static_cast<size_t>(info.data() - url.data());
  return std::string(url.substr(0, info_at + colon + 1)) + "***" + std::string(url.substr(info_at + info.size()));
}

std::optional<std::string> git_ref_problem(std::string_view ref) {
  if (ref.empty()) return "it must not be empty";
  if (ref.front() == '-') return "it must not start with '-'";
  if (has_space_or_control(ref)) return "it must not contain whitespace or control characters";
  if (ref.find("..") != std::string_view::npos) return "it must not contain \"..\"";
  if (ref.find_first_of("~^:?*[\\") != std::string_view::npos) {
    return "it must not contain any of ~ ^ : ? * [ \\";
  }
  return std::nullopt;
}

bool valid_payload_name(std::string_view name) {
  auto lower_or_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (name.empty() || name.size() > 64 || !lower_or_digit(name.front())) return false;
  return std::all_of(name.begin(), name.end(),
                     [&](char c) { return lower_or_digit(c) || c == '_' || c == '.' || c == '-'; });
}

std::optional<std::string> unit_name_problem(std::string_view name) {
  std::string_view stem;
  for (std::string_view suffix : {".service", ".timer", ".socket", ".path"}) {
    if (name.ends_with(suffix)) stem = name.substr(0, name.size() - suffix.size());
  }
  if (stem.data() == nullptr) return "it must end in .service, .timer, .socket or .path";
  if (stem.empty()) return "it has nothing before the suffix";
  if (name.size() > 255) return "it is longer than 255 characters";
  bool chars_ok = std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':' || c == '-' ||
           c == '_' || c == '.' || c == '@' || c == '\\';
  });
  if (!chars_ok) return "use only letters, digits and the characters : - _ . @ \\";
  if (stem.front() == '.' || stem.front() == '-') return "it must not start with '.' or '-'";
  return std::nullopt;
}

}  // namespace farmhand::provisioner
