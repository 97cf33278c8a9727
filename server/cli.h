// farmhand-server's command line: `serve` and the admin subcommands (tokens,
// hosts, users) that work on the same database, also while the server runs.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace farmhand::server {

// Runs one command line (without argv[0]); the process's exit code.
// Only a new token goes to `out` for `token create`; messages go to `err`.
int run_cli(const std::vector<std::string>& args, std::istream& in, std::ostream& out, std::ostream& err);

// "30m", "24h", "7d", "90s" in milliseconds; from 1 s to 365 days.
Result<int64_t> parse_duration_ms(std::string_view text);

}  // namespace farmhand::server
