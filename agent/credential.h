// The host's credential from enrollment (/etc/farmhand/credential): which
// server, which host name, and the secret the agent says hello with.
#pragma once

#include <string>

#include "common/result.h"

namespace farmhand::agent {

struct Credential {
  std::string server;      // the URL enrolled with
  std::string host;        // the name the server knows this host by
  std::string credential;  // secret
};

// Writes `credential` as JSON, mode 0600, atomically.
Status write_credential(const std::string& path, const Credential& credential);
// Reads it back; registers the secret with the log's redaction.
Result<Credential> read_credential(const std::string& path);

}  // namespace farmhand::agent
