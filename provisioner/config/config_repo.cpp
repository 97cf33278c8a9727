// /config_repo: the git repository that holds this host's containers. Its
// host file is read by parse_config_with_repo (config.cpp).
#include "provisioner/config/checks.h"
#include "provisioner/config/sections.h"

namespace farmhand::provisioner::config_parser {
namespace {

struct ConfigRepoSection {
  Diagnostics& diag;
  ConfigRepo& out;
  std::optional<std::string> peeked_url;  // for the credentials, wherever "url" is

  void url(const Json& value, const std::string& p) {
    if (auto s = check_git_url(diag, value.get<std::string>(), p)) out.url = *s;
  }

  void ref(const Json& value, const std::string& p) {
    if (auto s = check_git_ref(diag, value.get<std::string>(), p)) out.ref = *s;
  }

  void path(const Json& value, const std::string& p) {
    const auto s = value.get<std::string>();
    if (s.empty() || s.back() == '/') {
      diag.error(p, quote(s) + " does not name a file in the repository");
    } else if (s.front() == '/') {
      diag.error(p, quote(s) + " must be relative to the top of the repository (no leading '/')");
    } else if (has_control(s)) {
      diag.error(p, quote(s) + " must not contain control characters");
    } else if (has_dotdot(s)) {
      diag.error(p, quote(s) + " must not contain \"..\"");
    } else {
      out.path = s;
    }
  }

  void interval(const Json& value, const std::string& p) {
    if (auto t = int_in_range(diag, value, p, 30, 86400, " seconds")) out.interval_s = *t;
  }

  void credentials(const Json& value, const std::string& p) {
    parse_credentials(diag, value, p, peeked_url, out.credentials);
  }
};

const Keyword<ConfigRepoSection> kConfigRepoKeys[] = {
    {"url", JsonType::kString, Presence::kRequired, nullptr, &ConfigRepoSection::url},
    {"path", JsonType::kString, Presence::kRequired, nullptr, &ConfigRepoSection::path},
    {"ref", JsonType::kString, Presence::kOptional,
     [](ConfigRepoSection& s) { s.out.ref = kDefaults.config_repo_ref; }, &ConfigRepoSection::ref},
    {"interval", JsonType::kInteger, Presence::kOptional,
     [](ConfigRepoSection& s) { s.out.interval_s = kDefaults.config_repo_interval_s; },
     &ConfigRepoSection::interval},
    {"credentials", JsonType::kObject, Presence::kOptional, nullptr, &ConfigRepoSection::credentials},
};

}  // namespace

void parse_config_repo(Diagnostics& diag, const Json& object, const std::string& pointer, AgentConfig& config) {
  ConfigRepo repo;
  ConfigRepoSection section{diag, repo, peek_string(object, "url")};
  walk_keywords(diag, object, pointer, kConfigRepoKeys, section);
  config.config_repo = std::move(repo);
}

}  // namespace farmhand::provisioner::config_parser
