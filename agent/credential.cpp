#include "agent/credential.h"

#include <nlohmann/json.hpp>

#include "common/fs.h"
#include "common/log.h"

namespace farmhand::agent {

Status write_credential(const std::string& path, const Credential& credential) {
  nlohmann::json j{{"server", credential.server}, {"host", credential.host}, {"credential", credential.credential}};
  // Absolute, so a bare file name has a parent directory to sync.
  std::error_code ec;
  fs::path absolute = fs::absolute(path, ec);
  if (ec) absolute = path;
  if (auto s = write_file_atomic(absolute, j.dump(2) + "\n", 0600); !s) {
    return s.error().context("writing the credential '" + path + "'");
  }
  return {};
}

Result<Credential> read_credential(const std::string& path) {
  auto text = read_file_if_exists(path);
  if (!text) return text.error().context("reading the credential '" + path + "'");
  if (!*text) {
    return fail("not enrolled: " + path + " does not exist; run farmhand enroll --server URL --token TOKEN");
  }
  nlohmann::json j = nlohmann::json::parse(**text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return fail(path + ": expected a JSON object");
  Credential c;
  for (auto [key, field] : {std::pair{"server", &c.server}, std::pair{"host", &c.host},
                            std::pair{"credential", &c.credential}}) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string() || it->get<std::string>().empty()) {
      return fail(path + ": /" + key + ": expected a non-empty string");
    }
    *field = it->get<std::string>();
  }
  log::add_secret(c.credential);
  return c;
}

}  // namespace farmhand::agent
