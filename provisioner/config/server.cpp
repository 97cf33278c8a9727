// /server: the central server this agent reports to (see ServerSettings).
#include "provisioner/config/checks.h"
#include "provisioner/config/sections.h"

namespace farmhand::provisioner::config_parser {
namespace {

struct ServerSection {
  Diagnostics& diag;
  ServerSettings& out;

  void url(const Json& value, const std::string& p) {
    const auto s = value.get<std::string>();
    if (auto reason = server_url_problem(s)) {
      diag.error(p, quote(s) + " is not a server URL: " + *reason);
    } else {
      out.url = s;
    }
  }

  // A file the agent reads; only its being absolute is checked here.
  void file(const Json& value, const std::string& p, std::string& field) {
    const auto s = value.get<std::string>();
    if (s.empty() || s[0] != '/') {
      diag.error(p, quote(s) + " is not an absolute path");
    } else {
      field = s;
    }
  }
  void ca_file(const Json& value, const std::string& p) { file(value, p, out.ca_file); }
  void credential_file(const Json& value, const std::string& p) { file(value, p, out.credential_file); }
};

// The default credential_file is ServerSettings' own; an empty ca_file means the system's CAs.
const Keyword<ServerSection> kServerKeys[] = {
    {"url", JsonType::kString, Presence::kRequired, nullptr, &ServerSection::url},
    {"ca_file", JsonType::kString, Presence::kOptional, nullptr, &ServerSection::ca_file},
    {"credential_file", JsonType::kString, Presence::kOptional, nullptr, &ServerSection::credential_file},
};

}  // namespace

void parse_server(Diagnostics& diag, const Json& object, const std::string& pointer, AgentConfig& config) {
  ServerSettings settings;
  ServerSection section{diag, settings};
  walk_keywords(diag, object, pointer, kServerKeys, section);
  config.server = settings;
}

}  // namespace farmhand::provisioner::config_parser
