#include "common/log.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "common/result.h"

namespace farmhand {

std::string errno_text(int err) {
  char buf[256];
  // GNU strerror_r returns the message pointer, which may not be buf.
  return ::strerror_r(err, buf, sizeof buf);
}

namespace log {
namespace {

struct State {
  std::mutex mu;
  Level max = Level::kInfo;
  std::vector<std::string> secrets;
  bool journal = std::getenv("JOURNAL_STREAM") != nullptr;
};

State& state() {
  static State s;
  return s;
}

std::string redact_locked(State& s, std::string_view text) {
  std::string out(text);
  for (const auto& secret : s.secrets) {
    if (secret.empty()) continue;
    for (size_t pos = out.find(secret); pos != std::string::npos;
         pos = out.find(secret, pos + 3)) {
      out.replace(pos, secret.size(), "***");
    }
  }
  return out;
}

}  // namespace

void set_max_level(Level level) {
  std::lock_guard lock(state().mu);
  state().max = level;
}

Level max_level() {
  std::lock_guard lock(state().mu);
  return state().max;
}

void add_secret(std::string secret) {
  std::lock_guard lock(state().mu);
  auto& secrets = state().secrets;
  // A daemon registers the same credential at every reconnect: keep one.
  if (secret.empty() || std::find(secrets.begin(), secrets.end(), secret) != secrets.end()) return;
  // Kept longest first, so a secret that is a prefix of another cannot leave
  // the rest of the longer one in a log line.
  auto pos = std::find_if(secrets.begin(), secrets.end(),
                          [&](const std::string& s) { return s.size() < secret.size(); });
  secrets.insert(pos, std::move(secret));
}

std::string redact(std::string_view text) {
  std::lock_guard lock(state().mu);
  return redact_locked(state(), text);
}

void write(Level level, std::string_view message) {
  auto& s = state();
  std::lock_guard lock(s.mu);
  if (level > s.max) return;
  std::string line;
  if (s.journal) {
    line = "<" + std::to_string(static_cast<int>(level)) + ">";
  } else if (level == Level::kError) {
    line = "error: ";
  } else if (level == Level::kWarning) {
    line = "warning: ";
  }
  line += redact_locked(s, message);
  line += '\n';
  // One write() per line so concurrent writers never interleave within a line.
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

}  // namespace log
}  // namespace farmhand
