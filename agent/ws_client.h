// One websocket client connection on an EventLoop: connects, reassembles
// incoming fragments into whole text messages, writes one frame per
// writeable callback, and reports the end of the connection once, with a
// reason fit for a log line. Both the server link and the enrollment
// exchange are built on it; it knows nothing of the protocol's frames.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "agent/loop.h"
#include "common/result.h"

namespace farmhand::agent {

// Where the server is: parsed from ws://, wss://, http:// (= ws) or
// https:// (= wss) URLs, with the endpoint ("/agent") appended to the path.
struct ServerUrl {
  bool tls = false;
  std::string host;  // without IPv6 brackets
  int port = 0;
  std::string path;  // "/agent" or "/prefix/agent"
  std::string text;  // the URL as given, for messages
};
Result<ServerUrl> parse_server_url(std::string_view url, std::string_view endpoint = "/agent");

struct WsOptions {
  std::string subprotocol;
  std::string ca_file;  // for wss:// only; empty: the system's CAs
  // Liveness: a websocket ping after this long without proof the peer is
  // alive, and the connection is dropped after the second limit.
  uint16_t ping_after_s = 10;
  uint16_t hangup_after_s = 25;
  size_t max_message_bytes = size_t{1} << 20;
};

class WsClient : public LwsHandler {
 public:
  struct Handlers {
    std::function<void()> on_open;
    std::function<void(std::string_view message)> on_message;
    // Once per connect() that got a connection attempt under way.
    std::function<void(const std::string& reason)> on_closed;
    // Asked for the next frame to write once the send() queue is empty.
    std::function<std::optional<std::string>()> next_frame;
  };

  WsClient(EventLoop& loop, Handlers handlers) : loop_(loop), handlers_(std::move(handlers)) {}
  ~WsClient() override;
  WsClient(const WsClient&) = delete;
  WsClient& operator=(const WsClient&) = delete;

  // Starts connecting. An error means no attempt is under way (and
  // on_closed will not be called for it).
  Status connect(const ServerUrl& url, const WsOptions& options);
  // Queues a text frame; dropped unless open.
  void send(std::string text);
  // Asks for a writeable callback (to pull next_frame).
  void want_write();
  // Closes the connection soon; on_closed(reason) follows.
  void close(std::string reason);

  bool open() const { return open_; }
  bool active() const { return wsi_ != nullptr; }

  int on_lws_event(lws* wsi, int reason, void* in, size_t len) override;

 private:
  void finish(lws* wsi, std::string reason);

  EventLoop& loop_;
  Handlers handlers_;
  lws* wsi_ = nullptr;
  bool open_ = false;
  bool in_connect_call_ = false;
  std::optional<std::string> close_reason_;
  std::string peer_close_;
  std::deque<std::string> queue_;
  std::string rx_;
  size_t max_message_bytes_ = 0;
  std::string url_text_;
  std::optional<std::string> sync_failure_;
  std::string address_, host_header_, path_, subprotocol_;
};

}  // namespace farmhand::agent
