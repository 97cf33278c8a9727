#include "provisioner/config/checks.h"

#include <algorithm>
#include <filesystem>

#include "common/json_pointer.h"
#include "provisioner/payload_rules.h"

namespace farmhand::provisioner::config_parser {

std::string child(const std::string& parent, std::string_view key) { return json_pointer_child(parent, key); }
std::string child(const std::string& parent, size_t index) { return child(parent, std::to_string(index)); }

std::string quote(std::string_view s) {
  return Json(std::string(s)).dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

bool has_control(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

bool has_dotdot(const std::string& path) {
  std::filesystem::path parts(path);
  return std::any_of(parts.begin(), parts.end(), [](const std::filesystem::path& part) { return part == ".."; });
}

std::string normal_path(const std::string& path) {
  std::string key = std::filesystem::path(path).lexically_normal().string();
  while (key.size() > 1 && key.back() == '/') key.pop_back();
  return key;
}

const Json* first_member(const Json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

std::optional<std::string> peek_string(const Json& object, const char* key) {
  const Json* v = first_member(object, key);
  if (v == nullptr || !v->is_string()) return std::nullopt;
  return v->get<std::string>();
}

std::optional<std::string> as_string(Diagnostics& diag, const Json& value, const std::string& pointer) {
  if (!expect_type(diag, value, pointer, JsonType::kString)) return std::nullopt;
  return value.get<std::string>();
}

bool check_path(Diagnostics& diag, const std::string& path, const std::string& pointer, bool bind) {
  if (path.empty() || path.front() != '/') {
    diag.error(pointer, quote(path) + " is not an absolute path");
  } else if (has_control(path)) {
    diag.error(pointer, quote(path) + " must not contain control characters");
  } else if (bind && path.find(':') != std::string::npos) {
    diag.error(pointer, quote(path) + " must not contain ':' (the .nspawn Bind= setting uses it as a separator)");
  } else if (has_dotdot(path)) {
    diag.error(pointer, quote(path) + " must not contain \"..\"");
  } else {
    return true;
  }
  return false;
}

std::optional<Cidr> check_subnet(Diagnostics& diag, const std::string& text, const std::string& pointer,
                                 const char* example) {
  auto c = Cidr::parse(text);
  if (!c) {
    diag.error(pointer, quote(text) + " is not a subnet in CIDR form, like \"" + example + "\"");
  } else if (c->prefix > kMaxSubnetPrefix) {
    diag.error(pointer, c->str() +
                            " is too small for the host (.1) and the container (.9): use a prefix of at most " +
                            std::to_string(kMaxSubnetPrefix));
    return std::nullopt;
  }
  return c;
}

std::optional<int> int_in_range(Diagnostics& diag, const Json& value, const std::string& pointer, int lo, int hi,
                                const char* note) {
  if (!expect_type(diag, value, pointer, JsonType::kInteger)) return std::nullopt;
  bool in_range = value.is_number_unsigned() ? value.get<uint64_t>() <= static_cast<uint64_t>(hi) &&
                                                   value.get<uint64_t>() >= static_cast<uint64_t>(lo)
                                             : value.get<int64_t>() >= lo && value.get<int64_t>() <= hi;
  if (!in_range) {
    diag.error(pointer, value.dump() + " is out of range: it must be between " + std::to_string(lo) + " and " +
                            std::to_string(hi) + note);
    return std::nullopt;
  }
  return value.get<int>();
}

std::optional<std::string> check_git_url(Diagnostics& diag, const std::string& url, const std::string& pointer) {
  if (auto problem = git_url_problem(url)) {
    diag.error(pointer, quote(hide_url_password(url)) + " is not a git URL: " + *problem);
    return std::nullopt;
  }
  return url;
}

std::optional<std::string> check_git_ref(Diagnostics& diag, const std::string& ref, const std::string& pointer) {
  if (auto problem = git_ref_problem(ref)) {
    diag.error(pointer, quote(ref) + " is not a branch, tag or commit: " + *problem);
    return std::nullopt;
  }
  return ref;
}

namespace {

// The "credentials" object of a git remote.
struct CredentialsSection {
  Diagnostics& diag;
  GitCredentials& out;
  std::optional<GitTransport> transport;  // of the remote's URL, when it is valid
  std::string url_text;                   // the URL quoted for messages, password hidden

  void username(const Json& value, const std::string& p) {
    const auto s = value.get<std::string>();
    if (s.empty() || std::any_of(s.begin(), s.end(), [](char c) {
          return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || c == ':' || c == '@';
        })) {
      diag.error(p, quote(s) + " is not a user name: it must be non-empty, without whitespace, control "
                               "characters, ':' or '@'");
    } else {
      out.username = s;
    }
  }

  // A file the ssh transport reads: the key or known_hosts.
  void ssh_file(const Json& value, const std::string& p, const char* what, std::string& field) {
    const auto s = value.get<std::string>();
    if (!check_path(diag, s, p, false)) return;
    if (transport && *transport != GitTransport::kSsh) {
      diag.error(p, std::string("only an ssh URL (ssh:// or user@host:path) uses ") + what + "; " + url_text +
                        " is not one");
    } else {
      field = s;
    }
  }
  void ssh_key(const Json& value, const std::string& p) { ssh_file(value, p, "an ssh key", out.ssh_key); }
  void known_hosts(const Json& value, const std::string& p) {
    ssh_file(value, p, "known_hosts", out.known_hosts);
  }

  void token_file(const Json& value, const std::string& p) {
    const auto s = value.get<std::string>();
    if (!check_path(diag, s, p, false)) return;
    if (transport && *transport != GitTransport::kHttp) {
      diag.error(p, "only an https:// or http:// URL uses a token file; " + url_text + " is not one");
    } else {
      out.token_file = s;
    }
  }
};

const Keyword<CredentialsSection> kCredentialsKeys[] = {
    {"ssh_key", JsonType::kString, Presence::kOptional, nullptr, &CredentialsSection::ssh_key},
    {"known_hosts", JsonType::kString, Presence::kOptional, nullptr, &CredentialsSection::known_hosts},
    {"token_file", JsonType::kString, Presence::kOptional, nullptr, &CredentialsSection::token_file},
    {"username", JsonType::kString, Presence::kOptional, nullptr, &CredentialsSection::username},
};

}  // namespace

void parse_credentials(Diagnostics& diag, const Json& object, const std::string& pointer,
                       const std::optional<std::string>& url, GitCredentials& out) {
  CredentialsSection section{diag, out, std::nullopt, url ? quote(hide_url_password(*url)) : std::string()};
  if (url && !git_url_problem(*url)) section.transport = git_transport(*url);
  walk_keywords(diag, object, pointer, kCredentialsKeys, section);
}

}  // namespace farmhand::provisioner::config_parser
