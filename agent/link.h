// The agent's connection to farmhand-server (docs/protocol.md, "Agent ⇄
// server"): says hello, keeps the server's inventory current, streams the
// outbox in order with a window of unacknowledged events, sends heartbeats,
// hands commands to the daemon, and reconnects with backoff whatever
// happens. Everything runs on the EventLoop's thread; many links can share
// one loop (the load tool runs thousands).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "agent/backoff.h"
#include "agent/loop.h"
#include "agent/outbox.h"
#include "agent/ws_client.h"
#include "common/protocol.h"
#include "common/result.h"

namespace farmhand::agent {

struct LinkOptions {
  std::string url;         // ws://, wss://, http:// or https://; "/agent" is appended
  std::string ca_file;     // empty: the system's CAs
  std::string host;        // the enrolled host name
  std::string credential;  // secret: never logged
  std::string version;     // this agent's version, sent in hello
  size_t window = 1000;    // events sent but not yet acknowledged
  std::chrono::milliseconds backoff_initial{1000};
  std::chrono::milliseconds backoff_cap{60000};
  // A connection that lasted this long (or got a welcome) resets the backoff.
  std::chrono::milliseconds stable_after{30000};
  // From starting to connect until the welcome.
  std::chrono::milliseconds connect_timeout{15000};
  uint16_t ping_after_s = 10;
  uint16_t hangup_after_s = 25;
  Backoff::Random random;  // empty: Backoff::system_random()
  bool quiet = false;      // log state changes at debug level (the load tool)
};

struct LinkCallbacks {
  // The inventory body (the frame without "type"); empty: none is sent.
  std::function<nlohmann::json()> inventory;
  // The current heartbeat; empty: no heartbeats.
  std::function<protocol::Heartbeat()> heartbeat;
  // A command from the server; answer later with send_command_result().
  // Empty: commands are refused.
  std::function<void(const protocol::Command&)> on_command;
};

struct LinkCounters {
  uint64_t connects = 0;       // welcomes received
  uint64_t disconnects = 0;    // connection attempts that ended
  uint64_t events_sent = 0;
  uint64_t acks = 0;
  uint64_t heartbeats_sent = 0;
  uint64_t inventories_sent = 0;
  uint64_t commands = 0;
  uint64_t server_errors = 0;  // `error` frames
};

class AgentLink {
 public:
  // Checks the URL and registers the credential as a secret; start() connects.
  static Result<std::unique_ptr<AgentLink>> create(EventLoop& loop, Outbox& outbox, LinkOptions options,
                                                   LinkCallbacks callbacks);
  ~AgentLink();
  AgentLink(const AgentLink&) = delete;
  AgentLink& operator=(const AgentLink&) = delete;

  void start();
  // The caller appended to the outbox: send it when the window allows.
  void notify_appended();
  // The inventory changed: send it again (when connected).
  void send_inventory();
  // A command's answer. Kept until a connection has taken it.
  void send_command_result(protocol::CommandResult result);
  // Where a command's apply is; only while connected (a progress frame is
  // never queued: the next one says more), at most one waiting.
  void send_progress(protocol::Progress progress);

  // Welcomed by the server and not disconnected since.
  bool connected() const { return state_ == State::kWelcomed; }
  // The highest seq the server has confirmed storing.
  uint64_t acked_seq() const { return acked_seq_; }
  const LinkCounters& counters() const { return counters_; }
  // Why the last connection ended (empty before the first end).
  const std::string& last_error() const { return last_reason_; }

 private:
  enum class State { kIdle, kConnecting, kAwaitingWelcome, kWelcomed, kWaitingRetry };

  AgentLink(EventLoop& loop, Outbox& outbox, LinkOptions options, LinkCallbacks callbacks, ServerUrl url);
  void connect_now();
  void on_open();
  void on_message(std::string_view text);
  void on_closed(const std::string& reason);
  void on_welcome(const protocol::Welcome& welcome);
  void on_ack(uint64_t seq);
  void schedule_heartbeat();
  std::optional<std::string> next_frame();
  std::optional<std::string> next_event_frame();
  void cancel_timers();
  void log_state(const std::string& line, bool important);

  EventLoop& loop_;
  Outbox& outbox_;
  LinkOptions options_;
  LinkCallbacks callbacks_;
  ServerUrl url_;
  WsClient ws_;
  Backoff backoff_;

  State state_ = State::kIdle;
  std::chrono::steady_clock::time_point opened_at_{};
  EventLoop::TimerId connect_timer_ = 0;
  EventLoop::TimerId retry_timer_ = 0;
  EventLoop::TimerId heartbeat_timer_ = 0;
  uint32_t heartbeat_s_ = 0;

  bool hello_due_ = false;
  bool inventory_due_ = false;
  bool heartbeat_due_ = false;
  std::deque<protocol::CommandResult> results_;
  std::optional<protocol::Progress> progress_;
  std::deque<protocol::Event> batch_;  // read from the outbox, not yet sent
  uint64_t sent_seq_ = 0;
  uint64_t acked_seq_ = 0;

  std::optional<protocol::ProtocolError> server_error_;  // from this connection
  std::string last_reason_;
  std::string last_unauthorized_;
  LinkCounters counters_;
};

}  // namespace farmhand::agent
