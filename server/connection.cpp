#include "server/connection.h"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "common/log.h"

namespace farmhand::server {

Frame make_frame(std::string_view payload) {
  auto f = std::make_shared<std::string>();
  f->reserve(LWS_PRE + payload.size());
  f->append(LWS_PRE, '\0');
  f->append(payload);
  return f;
}

std::string error_frame_text(std::string_view code, std::string_view message) {
  nlohmann::json j = {{"type", "error"}, {"code", code}, {"message", message}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Connection::Connection(lws* wsi, uint64_t id, const ServerLimits& limits, int64_t now_us)
    : wsi_(wsi), id_(id), limits_(limits), tokens_(limits.burst), refilled_us_(now_us) {
  char name[128] = "";
  lws_get_peer_simple(wsi, name, sizeof(name));
  peer_ = name;
}

void Connection::send(Frame frame) {
  if (closing_) return;  // nothing more once the close is decided
  out_bytes_ += frame->size() - LWS_PRE;
  out_.push_back(std::move(frame));
  lws_callback_on_writable(wsi_);
}

void Connection::refuse(std::string_view code, std::string_view message, lws_close_status status) {
  if (closing_) return;
  log::warning("closing the connection from ", peer_, ": ", code, ": ", message);
  send_text(error_frame_text(code, message));
  close(status, code);
}

void Connection::close(lws_close_status status, std::string_view reason) {
  if (closing_) return;
  closing_ = true;
  close_status_ = status;
  close_reason_ = std::string(reason.substr(0, 100));
  rx_.clear();
  lws_callback_on_writable(wsi_);
}

void Connection::drop(lws_close_status status, std::string_view reason) {
  out_.clear();
  out_bytes_ = 0;
  close(status, reason);
}

bool Connection::take_token(int64_t now_us) {
  double elapsed = static_cast<double>(std::max<int64_t>(0, now_us - refilled_us_)) / 1e6;
  refilled_us_ = now_us;
  tokens_ = std::min<double>(limits_.burst, tokens_ + elapsed * limits_.frames_per_second);
  if (tokens_ < 1.0) return false;
  tokens_ -= 1.0;
  return true;
}

std::optional<std::string_view> Connection::receive(const void* in, size_t len, int64_t now_us) {
  if (closing_) return std::nullopt;
  if (lws_frame_is_binary(wsi_)) {
    refuse("bad_frame", "binary frames are not accepted");
    return std::nullopt;
  }
  if (rx_.size() + len > limits_.max_frame_bytes) {
    refuse("too_large", "the frame is over " + std::to_string(limits_.max_frame_bytes) + " bytes",
           LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE);
    return std::nullopt;
  }
  rx_.append(static_cast<const char*>(in), len);
  if (!lws_is_final_fragment(wsi_) || lws_remaining_packet_payload(wsi_) > 0) return std::nullopt;
  if (!take_token(now_us)) {
    refuse("rate_limited", "more than " + std::to_string(limits_.frames_per_second) + " frames per second");
    return std::nullopt;
  }
  return std::string_view(rx_);
}

int Connection::on_writeable() {
  if (out_.empty()) {
    if (!closing_) return 0;
    lws_close_reason(wsi_, close_status_, reinterpret_cast<unsigned char*>(close_reason_.data()),
                     close_reason_.size());
    return -1;
  }
  // As many frames as the socket takes now: one per callback would cap a
  // dashboard's feed at the loop's iteration rate.
  do {
    Frame f = std::move(out_.front());
    out_.pop_front();
    size_t len = f->size() - LWS_PRE;
    out_bytes_ -= len;
    int n = lws_write(wsi_, reinterpret_cast<unsigned char*>(f->data()) + LWS_PRE, len, LWS_WRITE_TEXT);
    if (n < 0 || static_cast<size_t>(n) < len) return -1;
  } while (!out_.empty() && !lws_send_pipe_choked(wsi_));
  if (!out_.empty() || closing_) lws_callback_on_writable(wsi_);
  return 0;
}

}  // namespace farmhand::server
