// farmhand-server's network side: one libwebsockets context serving the
// agents (/agent), the dashboards (/ui), the JSON API and the embedded
// dashboard, all on the calling thread. Tests and benchmarks create it
// in-process on port 0.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>

#include "common/result.h"
#include "server/config.h"

struct lws_context;

namespace farmhand::server {

class Hub;

class Server {
 public:
  // Opens the database, binds the listening socket (port 0: any free port)
  // and is ready to run(). `now_ms` is the clock (default: the system's).
  static Result<std::unique_ptr<Server>> create(ServerConfig config,
                                                std::function<int64_t()> now_ms = nullptr);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  uint16_t port() const { return port_; }

  // Serves until request_stop(); then commits what is staged, closes every
  // connection and returns.
  Status run();
  // Thread-safe and async-signal-safe.
  void request_stop();

 private:
  Server() = default;

  std::unique_ptr<Hub> hub_;
  lws_context* context_ = nullptr;
  uint16_t port_ = 0;
  std::atomic<bool> stop_requested_{false};
};

// Raises RLIMIT_NOFILE's soft limit to the hard limit; the new limit.
uint64_t raise_open_file_limit();

}  // namespace farmhand::server
