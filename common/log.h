// Process-wide logging to stderr.
//
// Under systemd (JOURNAL_STREAM set) every line carries a "<N>" syslog level
// prefix so the journal keeps the levels. Registered secrets are replaced by
// "***" in every line, whoever logs it.
#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace farmhand::log {

enum class Level { kError = 3, kWarning = 4, kNotice = 5, kInfo = 6, kDebug = 7 };

void set_max_level(Level level);
Level max_level();

// Any later log line has every occurrence of `secret` replaced by "***".
void add_secret(std::string secret);
std::string redact(std::string_view text);

void write(Level level, std::string_view message);

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}
}  // namespace detail

template <typename... Args>
void error(const Args&... args) { write(Level::kError, detail::concat(args...)); }
template <typename... Args>
void warning(const Args&... args) { write(Level::kWarning, detail::concat(args...)); }
template <typename... Args>
void notice(const Args&... args) { write(Level::kNotice, detail::concat(args...)); }
template <typename... Args>
void info(const Args&... args) { write(Level::kInfo, detail::concat(args...)); }
template <typename... Args>
void debug(const Args&... args) {
  if (max_level() >= Level::kDebug) write(Level::kDebug, detail::concat(args...));
}

}  // namespace farmhand::log
