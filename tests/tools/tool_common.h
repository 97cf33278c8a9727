// What the agent stand-ins here (farmhand-test-agent, farmhand-scripted-agent)
// share: their command line and enrollment with a one-time token.
#pragma once

#include <chrono>
#include <initializer_list>
#include <iostream>
#include <map>
#include <optional>
#include <string>

#include "agent/credential.h"
#include "agent/enroll_exchange.h"
#include "common/log.h"

namespace farmhand::test_tools {

// Reads "--flag" (one of FLAGS, set to "1") and "--option VALUE" arguments
// into ARGS. Returns the first argument that is neither, if any.
inline std::optional<std::string> parse_args(int argc, char** argv, std::initializer_list<const char*> flags,
                                             std::map<std::string, std::string>& args) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    bool is_flag = false;
    for (const char* f : flags) is_flag = is_flag || a == f;
    if (is_flag) {
      args[a] = "1";
    } else if (a.rfind("--", 0) == 0 && i + 1 < argc) {
      args[a] = argv[++i];
    } else {
      return a;
    }
  }
  return std::nullopt;
}

// Trades TOKEN at URL for the host's credential, writes it to
// CREDENTIAL_FILE and prints "enrolled as HOST". Returns the exit code.
inline int enroll(const std::string& url, const std::string& token, const std::string& ca_file,
                  const std::string& credential_file) {
  auto enrolled = agent::exchange_enrollment_token(url, token, ca_file, std::chrono::seconds(30));
  if (!enrolled) {
    log::error(enrolled.error().message());
    return 1;
  }
  if (auto s = agent::write_credential(credential_file, {url, enrolled->host, enrolled->credential}); !s) {
    log::error(s.error().message());
    return 1;
  }
  std::cout << "enrolled as " << enrolled->host << std::endl;
  return 0;
}

}  // namespace farmhand::test_tools
