// The network half of `farmhand enroll`: trade a one-time enrollment token
// for the host's credential (docs/protocol.md, `enroll` → `enrolled`).
#pragma once

#include <chrono>
#include <string>

#include "common/protocol.h"
#include "common/result.h"

namespace farmhand::agent {

// Blocking: connects to `url` + "/agent" on a short-lived event loop of its
// own, sends `enroll` and returns the server's `enrolled` answer, or an error
// that says why (the server's refusal, connection refused, TLS, timeout).
// The token never appears in a message or log line.
Result<protocol::Enrolled> exchange_enrollment_token(const std::string& url, const std::string& token,
                                                     const std::string& ca_file,
                                                     std::chrono::milliseconds timeout);

}  // namespace farmhand::agent
