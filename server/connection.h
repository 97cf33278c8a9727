// What every websocket connection of the server has in common: its peer,
// the reassembly of fragmented messages under the size limit, the token
// bucket and the outbound queue drained one frame per writeable callback.
#pragma once

#include <libwebsockets.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "server/config.h"

namespace farmhand::server {

// An outgoing frame with LWS_PRE bytes of headroom in front of the payload,
// shared by every UI client it is broadcast to.
using Frame = std::shared_ptr<std::string>;
Frame make_frame(std::string_view payload);

// {"type":"error","code":...,"message":...}
std::string error_frame_text(std::string_view code, std::string_view message);

class Connection {
 public:
  Connection(lws* wsi, uint64_t id, const ServerLimits& limits, int64_t now_us);
  virtual ~Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  lws* wsi() const { return wsi_; }
  uint64_t id() const { return id_; }
  const std::string& peer() const { return peer_; }
  bool closing() const { return closing_; }
  size_t queued_bytes() const { return out_bytes_; }

  void send(Frame frame);
  void send_text(std::string_view text) { send(make_frame(text)); }
  // Sends one `error` frame, logs the refusal once, then closes with `status`.
  void refuse(std::string_view code, std::string_view message,
              lws_close_status status = LWS_CLOSE_STATUS_POLICY_VIOLATION);
  // Closes after the queued frames are written, without an error frame.
  void close(lws_close_status status, std::string_view reason);
  // Drops everything queued and closes at once (a UI client too slow to read).
  void drop(lws_close_status status, std::string_view reason);

  // Feeds one LWS_CALLBACK_RECEIVE; returns the complete message (valid until
  // consumed()), or nothing while it is incomplete or after a refusal.
  std::optional<std::string_view> receive(const void* in, size_t len, int64_t now_us);
  void consumed() { rx_.clear(); }

  // LWS_CALLBACK_SERVER_WRITEABLE: writes one frame; -1 closes.
  int on_writeable();

 private:
  bool take_token(int64_t now_us);

  lws* wsi_;
  uint64_t id_;
  ServerLimits limits_;
  std::string peer_;
  std::string rx_;
  double tokens_;
  int64_t refilled_us_;
  std::deque<Frame> out_;
  size_t out_bytes_ = 0;
  bool closing_ = false;
  lws_close_status close_status_ = LWS_CLOSE_STATUS_NORMAL;
  std::string close_reason_;
};

}  // namespace farmhand::server
