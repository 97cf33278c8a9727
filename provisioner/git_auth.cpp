// Credentials for git remotes: loading them from files, checking ssh host
// keys against known_hosts, and keeping passwords out of URLs in messages.
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <vector>

#include "common/log.h"
#include "provisioner/git.h"

namespace farmhand::provisioner {

namespace {

// The content of a credential file. Errors name the file and the reason,
// never any of its content.
Result<std::string> read_credential_file(const std::string& label, const std::string& path) {
  const std::string where = label + " " + path + ": ";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    if (errno == ENOENT) return fail(where + "does not exist");
    return fail(where + "cannot read: " + errno_text(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return fail(where + "is not a regular file");
  }
  std::string content;
  std::array<char, 8192> buf{};
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return fail(where + "cannot read: " + errno_text(err));
    }
    if (n == 0) break;
    content.append(buf.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  if (std::all_of(content.begin(), content.end(), [](unsigned char c) { return std::isspace(c); })) {
    return fail(where + "is empty");
  }
  return content;
}

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

// Standard base64 (padding optional); nullopt on any other character.
std::optional<std::string> base64_decode(std::string_view in) {
  std::string out;
  unsigned buffer = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+') v = 62;
    else if (c == '/') v = 63;
    else if (c == '=') break;
    else return std::nullopt;
    buffer = (buffer << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xff));
    }
  }
  return out;
}

// The key type named at the start of an ssh public key blob.
std::string blob_key_type(std::string_view blob) {
  if (blob.size() < 4) return "";
  const auto* p = reinterpret_cast<const unsigned char*>(blob.data());
  size_t len = (size_t{p[0]} << 24) | (size_t{p[1]} << 16) | (size_t{p[2]} << 8) | p[3];
  if (len > blob.size() - 4) return "";
  return std::string(blob.substr(4, len));
}

// OpenSSH's match_pattern: '*' and '?' wildcards, case-insensitive.
bool glob_match(std::string_view pattern, std::string_view text) {
  size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' ||
                               std::tolower(static_cast<unsigned char>(pattern[p])) ==
                                   std::tolower(static_cast<unsigned char>(text[t])))) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

// "|1|base64(salt)|base64(HMAC-SHA1(salt, name))"
bool hashed_host_matches(std::string_view entry, std::string_view name) {
  entry.remove_prefix(3);
  size_t bar = entry.find('|');
  if (bar == std::string_view::npos) return false;
  auto salt = base64_decode(entry.substr(0, bar));
  auto hash = base64_decode(entry.substr(bar + 1));
  if (!salt || !hash) return false;
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  if (HMAC(EVP_sha1(), salt->data(), static_cast<int>(salt->size()),
           reinterpret_cast<const unsigned char*>(name.data()), name.size(), md.data(), &len) == nullptr) {
    return false;
  }
  return hash->size() == len && std::equal(md.begin(), md.begin() + len, hash->begin(),
                                           [](unsigned char a, char b) { return a == static_cast<unsigned char>(b); });
}

bool host_field_matches(std::string_view field, std::string_view name) {
  if (field.substr(0, 3) == "|1|") return hashed_host_matches(field, name);
  bool matched = false;
  size_t start = 0;
  while (start <= field.size()) {
    size_t comma = field.find(',', start);
    std::string_view pattern = field.substr(start, comma == std::string_view::npos ? field.npos : comma - start);
    const bool negated = !pattern.empty() && pattern[0] == '!';
    if (negated) pattern.remove_prefix(1);
    if (!pattern.empty() && glob_match(pattern, name)) {
      if (negated) return false;
      matched = true;
    }
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return matched;
}

}  // namespace

Result<GitAuth> load_git_auth(const GitCredentials& c) {
  GitAuth auth;
  auth.username = c.username;
  if (!c.ssh_key.empty()) {
    auto key = read_credential_file("ssh key file", c.ssh_key);
    if (!key) return key.error();
    auth.ssh_key = std::move(*key);
    auth.ssh_key_file = c.ssh_key;
    log::add_secret(auth.ssh_key);
    // A line of the key body must not show up in a log either.
    size_t start = 0;
    while (start < auth.ssh_key.size()) {
      size_t nl = auth.ssh_key.find('\n', start);
      std::string line = trim(std::string_view(auth.ssh_key).substr(start, nl == std::string::npos ? std::string::npos : nl - start));
      if (line.size() >= 16 && line.find("-----") == std::string::npos) log::add_secret(line);
      if (nl == std::string::npos) break;
      start = nl + 1;
    }
  }
  if (!c.known_hosts.empty()) {
    auto hosts = read_credential_file("known_hosts file", c.known_hosts);
    if (!hosts) return hosts.error();
    auth.known_hosts = std::move(*hosts);
    auth.known_hosts_file = c.known_hosts;
  }
  if (!c.token_file.empty()) {
    auto token = read_credential_file("token file", c.token_file);
    if (!token) return token.error();
    std::string_view text = *token;
    size_t start = text.find_first_not_of(" \t\r\n");
    size_t nl = text.find('\n', start);
    auth.token = trim(text.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start));
    auth.token_file = c.token_file;
    log::add_secret(auth.token);
  }
  return auth;
}

std::string redact_url(std::string_view url) {
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return std::string(url);  // scp-like or a path
  const size_t authority = scheme_end + 3;
  const size_t slash = url.find('/', authority);
  std::string_view host_part = url.substr(authority, slash == std::string_view::npos ? url.npos : slash - authority);
  const size_t at = host_part.rfind('@');
  if (at == std::string_view::npos) return std::string(url);
  const size_t colon = host_part.substr(0, at).find(':');
  if (colon == std::string_view::npos) return std::string(url);
  return std::string(url.substr(0, authority + colon + 1)) + "***" + std::string(url.substr(authority + at));
}

bool known_host_matches(std::string_view known_hosts_text, std::string_view host, int port,
                        std::string_view key_type, std::string_view raw_key) {
  std::string name;
  for (char c : host) name.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (port > 0 && port != 22) name = "[" + name + "]:" + std::to_string(port);
  const std::string type = key_type.empty() ? blob_key_type(raw_key) : std::string(key_type);
  bool known = false;
  size_t start = 0;
  while (start < known_hosts_text.size()) {
    size_t nl = known_hosts_text.find('\n', start);
    std::string_view line = known_hosts_text.substr(start, nl == std::string_view::npos ? known_hosts_text.npos : nl - start);
    start = nl == std::string_view::npos ? known_hosts_text.size() : nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    auto fields = split_fields(line);
    if (fields.empty() || fields[0][0] == '#') continue;
    std::string_view marker;
    if (fields[0][0] == '@') {
      marker = fields[0];
      fields.erase(fields.begin());
    }
    if (fields.size() < 3 || marker == "@cert-authority") continue;
    if (!host_field_matches(fields[0], name)) continue;
    auto blob = base64_decode(fields[2]);
    if (!blob || *blob != raw_key) continue;
    if (marker == "@revoked") return false;
    if (!marker.empty()) continue;
    // The type field must agree with the key itself.
    if (fields[1] == type || (fields[1] == "ssh-rsa" && type.rfind("rsa-sha2-", 0) == 0)) known = true;
  }
  return known;
}

}  // namespace farmhand::provisioner
