// A tiny farmhand server for the link tests: a listening vhost (port 0) on
// the test's own EventLoop (which must be destroyed before it), speaking just enough of docs/protocol.md
// (welcome, ack, error, command) and recording every frame it receives.
#pragma once

#include <libwebsockets.h>

#include <chrono>
#include <cstring>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/loop.h"

namespace farmhand::agent::test {

class FakeServer {
 public:
  struct Options {
    uint64_t stored = 0;           // acked_seq of the first welcome
    uint32_t heartbeat_s = 10;
    bool welcome = true;           // false: never answer hello
    bool hold_acks = false;        // true: ack only on release_acks()
    size_t kick_after_events = 0;  // close the connection after this many events (once)
    std::optional<std::pair<std::string, std::string>> refuse;  // error code, message on hello
    std::string enroll_token = "fht_good";  // the token `enroll` accepts
    bool silent = false;                    // answer nothing at all
  };

  FakeServer(EventLoop& loop, Options options) : options_(std::move(options)), stored_(options_.stored) {
    protocols_[0] = {"farmhand.v1", &FakeServer::callback, 0, 0, 0, this, 0};
    protocols_[1] = {nullptr, nullptr, 0, 0, 0, nullptr, 0};
    lws_context_creation_info info;
    std::memset(&info, 0, sizeof(info));
    info.vhost_name = "fake-server";
    info.port = 0;
    info.iface = "127.0.0.1";
    info.protocols = protocols_;
    vhost_ = lws_create_vhost(loop.context(), &info);
  }
  // The vhost (which points at protocols_) goes with the loop's context:
  // destroy the loop first.

  bool ok() const { return vhost_ != nullptr; }
  std::string url() const { return "ws://127.0.0.1:" + std::to_string(lws_get_vhost_listen_port(vhost_)); }

  void send(const nlohmann::json& frame) {
    out_.push_back(frame.dump());
    if (wsi_ != nullptr) lws_callback_on_writable(wsi_);
  }
  void kick() {
    kick_ = true;
    if (wsi_ != nullptr) lws_callback_on_writable(wsi_);
  }
  void release_acks() {
    options_.hold_acks = false;
    send({{"type", "ack"}, {"seq", stored_}});
  }

  Options& options() { return options_; }
  const std::vector<nlohmann::json>& frames() const { return frames_; }
  std::vector<std::string> types() const {
    std::vector<std::string> t;
    for (auto& f : frames_) t.push_back(f.value("type", ""));
    return t;
  }
  std::vector<uint64_t> event_seqs() const {
    std::vector<uint64_t> s;
    for (auto& f : frames_) {
      if (f.value("type", "") == "event") s.push_back(f["seq"].get<uint64_t>());
    }
    return s;
  }
  uint64_t stored() const { return stored_; }
  int connections() const { return connections_; }
  bool connected() const { return wsi_ != nullptr; }

 private:
  static int callback(lws* wsi, lws_callback_reasons reason, void*, void* in, size_t len) {
    const lws_protocols* p = lws_get_protocol(wsi);
    if (p == nullptr || p->user == nullptr) return 0;
    return static_cast<FakeServer*>(p->user)->on_event(wsi, reason, in, len);
  }

  int on_event(lws* wsi, lws_callback_reasons reason, void* in, size_t len) {
    switch (reason) {
      case LWS_CALLBACK_ESTABLISHED:
        wsi_ = wsi;
        ++connections_;
        kick_ = false;
        events_this_connection_ = 0;
        out_.clear();
        rx_.clear();
        return 0;
      case LWS_CALLBACK_RECEIVE:
        rx_.append(static_cast<const char*>(in), len);
        if (lws_remaining_packet_payload(wsi) == 0 && lws_is_final_fragment(wsi)) {
          handle(nlohmann::json::parse(rx_));
          rx_.clear();
        }
        return 0;
      case LWS_CALLBACK_SERVER_WRITEABLE:
        if (!out_.empty()) {
          std::string buf(LWS_PRE, '\0');
          buf += out_.front();
          out_.pop_front();
          auto* payload = reinterpret_cast<unsigned char*>(buf.data() + LWS_PRE);
          if (lws_write(wsi, payload, buf.size() - LWS_PRE, LWS_WRITE_TEXT) < 0) return -1;
          lws_callback_on_writable(wsi);
          return 0;
        }
        return kick_ ? -1 : 0;
      case LWS_CALLBACK_CLOSED:
        if (wsi == wsi_) wsi_ = nullptr;
        return 0;
      default:
        return 0;
    }
  }

  void handle(const nlohmann::json& frame) {
    if (kick_) return;  // closing: like frames lost with the connection
    frames_.push_back(frame);
    if (options_.silent) return;
    std::string type = frame.value("type", "");
    if (type == "enroll") {
      if (frame.value("token", "") == options_.enroll_token) {
        send({{"type", "enrolled"}, {"host", "builder-01"}, {"credential", "fhc_issued"}});
      } else {
        send({{"type", "error"}, {"code", "unauthorized"}, {"message", "unknown or expired token"}});
      }
      kick();
    } else if (type == "hello") {
      if (options_.refuse) {
        send({{"type", "error"}, {"code", options_.refuse->first}, {"message", options_.refuse->second}});
        kick();
      } else if (options_.welcome) {
        send({{"type", "welcome"}, {"server_version", "test"}, {"acked_seq", stored_},
              {"heartbeat_s", options_.heartbeat_s}});
      }
    } else if (type == "event") {
      uint64_t seq = frame["seq"].get<uint64_t>();
      if (seq == stored_ + 1) {
        ++stored_;
      } else if (seq > stored_) {
        send({{"type", "error"}, {"code", "out_of_order"}, {"message", "seq " + std::to_string(seq)}});
        kick();
        return;
      }
      ++events_this_connection_;
      if (!options_.hold_acks) send({{"type", "ack"}, {"seq", stored_}});
      if (options_.kick_after_events != 0 && events_this_connection_ == options_.kick_after_events) {
        options_.kick_after_events = 0;
        kick();
      }
    }
  }

  Options options_;
  lws_protocols protocols_[2];
  lws_vhost* vhost_ = nullptr;
  lws* wsi_ = nullptr;
  bool kick_ = false;
  std::deque<std::string> out_;
  std::string rx_;
  std::vector<nlohmann::json> frames_;
  uint64_t stored_ = 0;
  size_t events_this_connection_ = 0;
  int connections_ = 0;
};

// Runs `loop` until `done()` holds (checked every few milliseconds) or
// `limit` passes; returns whether done() held.
inline bool run_until(EventLoop& loop, const std::function<bool()>& done,
                      std::chrono::seconds limit = std::chrono::seconds(20)) {
  bool reached = false;
  EventLoop::TimerId poll_id = 0;
  std::function<void()> poll = [&] {
    poll_id = 0;
    if (done()) {
      reached = true;
      loop.stop();
      return;
    }
    poll_id = loop.after(std::chrono::milliseconds(5), poll);
  };
  EventLoop::TimerId limit_id = loop.after(limit, [&] {
    limit_id = 0;
    loop.stop();
  });
  poll_id = loop.after(std::chrono::milliseconds(0), poll);
  loop.run();
  if (poll_id != 0) loop.cancel(poll_id);
  if (limit_id != 0) loop.cancel(limit_id);
  return reached;
}

}  // namespace farmhand::agent::test
