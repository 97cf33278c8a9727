// The agent's single event loop: libwebsockets' own poll loop (Debian's lws
// 4.1 has no external-poll support), extended so the daemon can wait on its
// other file descriptors (signalfd, udev monitor, sd-bus, pidfds), run timers
// and accept work from other threads in the same loop.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/result.h"

struct lws;
struct lws_context;
struct lws_vhost;
struct lws_sorted_usec_list;
struct lws_retry_bo;

namespace farmhand::agent {

// Something bound to one lws connection (a wsi): the loop's protocol callback
// hands every callback of a wsi whose opaque user data points at a
// LwsHandler to it. A handler that goes away first sets the wsi's opaque
// pointer to null, so late callbacks are dropped.
class LwsHandler {
 public:
  virtual ~LwsHandler() = default;
  // The lws callback; returning non-zero closes the connection.
  virtual int on_lws_event(lws* wsi, int reason, void* in, size_t len) = 0;
};

// Everything except post() and stop() must be called on the loop's thread
// (the one in run()), and so do all callbacks run there.
class EventLoop {
 public:
  using WatchId = uint64_t;
  using TimerId = uint64_t;

  // The name of the lws protocol every connection of this loop is bound to.
  static constexpr const char* kProtocolName = "farmhand-loop";

  static Result<std::unique_ptr<EventLoop>> create();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Calls `on_readable` whenever `fd` is readable (POLLIN), or once when it
  // hangs up. The callback reads `fd` itself; lws never reads it. The loop
  // watches a dup() of `fd`: the caller keeps owning and closes `fd`, after
  // unwatch().
  Result<WatchId> watch_fd(int fd, std::function<void()> on_readable);
  // Safe from inside the watch's own callback. Unknown ids are ignored.
  void unwatch(WatchId id);

  // Runs `fn` once after `delay`. Safe to cancel from inside any callback.
  TimerId after(std::chrono::milliseconds delay, std::function<void()> fn);
  void cancel(TimerId id);

  // Thread-safe: runs `fn` on the loop's thread soon.
  void post(std::function<void()> fn);

  // Services the loop until stop(). stop() is thread-safe.
  void run();
  void stop();
  bool stopping() const { return stop_.load(); }

  lws_context* context() { return context_; }
  // The vhost without TLS: watched descriptors and ws:// connections.
  lws_vhost* plain_vhost() { return plain_vhost_; }
  // The client vhost whose TLS trusts `ca_file` (empty: the system's CAs),
  // created on first use (a wss:// connection) and shared by every
  // connection that uses it.
  Result<lws_vhost*> client_vhost(const std::string& ca_file);
  // A liveness policy for client connections (websocket ping after
  // `ping_s` idle seconds, hang up after `hangup_s`), owned by the loop so it
  // outlives every connection that points at it.
  const lws_retry_bo* idle_policy(uint16_t ping_s, uint16_t hangup_s);

  // Internal, for the lws callback.
  int dispatch(lws* wsi, int reason, void* in, size_t len);

 private:
  struct Watch;
  struct Timer;
  EventLoop() = default;
  void run_posted();
  static void fire_timer(::lws_sorted_usec_list* sul);

  lws_context* context_ = nullptr;
  // lws keeps pointers to a vhost's name: the strings live as long as the loop.
  std::deque<std::string> vhost_names_;
  lws_vhost* plain_vhost_ = nullptr;
  // The TLS client vhosts, by CA file.
  std::map<std::string, lws_vhost*> vhosts_;
  std::map<uint32_t, std::unique_ptr<lws_retry_bo>> idle_policies_;
  std::map<WatchId, std::shared_ptr<Watch>> watches_;
  std::map<TimerId, std::unique_ptr<Timer>> timers_;
  uint64_t next_id_ = 1;
  std::atomic<bool> stop_{false};
  std::mutex posted_mutex_;
  std::deque<std::function<void()>> posted_;
};

}  // namespace farmhand::agent
