// Small helpers the load tool's modes share: options, files, the process's
// own memory and open-file limit.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/result.h"

namespace farmhand::load {

inline constexpr const char* kUsage =
    "usage: farmhand-load enroll --url URL --tokens FILE --out FILE [--parallel N]\n"
    "       farmhand-load agents --url URL --credentials FILE --count N [--hold S] [--ready-file F]\n"
    "                            [--ramp-per-s R] [--connect-timeout S]\n"
    "       farmhand-load events --url URL --credentials FILE --count K --events-per-agent E [--rate R]\n"
    "                            [--sqlite DIR] [--window W] [--probe-user U --probe-password-file F]\n";

// Prints "farmhand-load: <message>" and the usage; returns exit status 2.
int usage_error(const Error& error);

template <class T>
Status status_of(const Result<T>& r) {
  if (r) return {};
  return r.error();
}

// The --name value pairs after the mode.
struct Args {
  std::map<std::string, std::string> values;

  static Result<Args> parse(int argc, char** argv, int first);
  std::string get(const std::string& name, const std::string& fallback = "") const;
  Result<std::string> need(const std::string& name) const;
  Result<uint64_t> number(const std::string& name, uint64_t fallback) const;
};

// The non-empty lines of a file.
Result<std::vector<std::string>> read_lines(const std::string& path);

// One enrolled simulated host: a line "host credential" of enroll's output.
struct HostCredential {
  std::string host;
  std::string credential;
};
// The first `count` credentials of `path` (all of them if count is 0); the
// secrets are registered with the log's redaction.
Result<std::vector<HostCredential>> read_credentials(const std::string& path, uint64_t count);

// Raises RLIMIT_NOFILE to at least `want` if the hard limit (or root) allows;
// returns the soft limit now in force. lws sizes its tables from it when a
// context is created, so this comes first.
uint64_t raise_open_files(uint64_t want);

// VmRSS of this process in KiB (0 if unreadable).
uint64_t rss_kib();

// The value at quantile q (0..1) of sorted values, as in b5 (nearest rank
// below); 0 when empty.
int64_t quantile(const std::vector<int64_t>& sorted, double q);

}  // namespace farmhand::load
