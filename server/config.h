// farmhand-server's configuration (server.json): where it listens, its TLS
// files, its database and the limits it puts on every connection.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace farmhand::server {

struct ServerLimits {
  uint32_t max_frame_bytes = 0;
  uint32_t frames_per_second = 0;
  uint32_t burst = 0;
  uint32_t hello_timeout_s = 0;
};

struct ServerConfig {
  std::string listen_address;
  uint16_t listen_port = 0;  // 0: any free port
  std::optional<std::string> tls_cert;  // both set or neither
  std::optional<std::string> tls_key;
  std::string database;
  ServerLimits limits;
  uint32_t heartbeat_s = 0;
  uint32_t heartbeat_history_days = 0;

  bool tls() const { return tls_cert.has_value(); }
};

// Every default, in one place.
struct ServerDefaults {
  const char* listen_address = "127.0.0.1";
  uint16_t listen_port = 8383;
  const char* database = "/var/lib/farmhand-server/server.db";
  uint32_t max_frame_bytes = 65536;
  uint32_t frames_per_second = 2000;
  uint32_t burst = 10000;
  uint32_t hello_timeout_s = 10;
  uint32_t heartbeat_s = 10;
  uint32_t heartbeat_history_days = 7;
};
inline constexpr ServerDefaults kServerDefaults{};
inline constexpr const char* kDefaultConfigPath = "/etc/farmhand/server.json";

// The configuration with every default.
ServerConfig default_server_config();

// Parses server.json. On failure the error holds every problem, one per
// line, each "JSON-pointer: reason" ("/limits/burst: expected an unsigned
// integer, got a string").
Result<ServerConfig> parse_server_config(std::string_view text);

// Reads and parses `path`; a missing file at the default path means the
// defaults, a missing file anywhere else is an error.
Result<ServerConfig> load_server_config(const std::string& path, bool path_given);

// "ADDR:PORT" (or "[v6]:PORT") for --listen.
Status apply_listen_override(ServerConfig& config, std::string_view value);

}  // namespace farmhand::server
