// The server's state inside the lws service loop: connected agents and
// dashboards, the batch of events and heartbeats waiting for their
// transaction, and the store. Everything here runs on the loop's thread; the
// lws callbacks (agent_session.cpp, ui_feed.cpp, http_api.cpp) find the Hub
// through the context's user pointer.
#pragma once

#include <libwebsockets.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/protocol.h"
#include "server/config.h"
#include "server/connection.h"
#include "server/store.h"

namespace farmhand::server {

inline constexpr size_t kMaxStagedItems = 1000;
inline constexpr lws_usec_t kBatchDelayUs = 5000;
inline constexpr lws_usec_t kSweepIntervalUs = 2000000;
inline constexpr size_t kMaxUiQueueBytes = 8u << 20;
inline constexpr size_t kMaxHttpBodyBytes = 64u << 10;

// One connection on /agent.
class AgentSession : public Connection {
 public:
  using Connection::Connection;
  bool authenticated = false;
  std::string host;
  std::string credential_hash;  // what it authenticated with; re-checked by the sweep
  uint64_t committed_seq = 0;   // stored and acknowledgeable
  uint64_t staged_seq = 0;      // accepted into the batch
  bool ack_pending = false;
  int64_t last_rx_ms = 0;
  int64_t last_progress_ms = 0;  // progress frames are passed on at most every kProgressGapMs
};

// One dashboard connection on /ui.
class UiClient : public Connection {
 public:
  using Connection::Connection;
  UserInfo user;
  std::string session_id;
};

// Per-session data lws allocates for websocket protocols: our object.
struct WsSessionData {
  Connection* connection;
};

struct HttpExchange;
struct HttpSessionData {
  HttpExchange* exchange;
};

class Hub;
// An lws timer that knows its Hub (the sul is the first member, so the
// callback's pointer converts back).
struct HubTimer {
  lws_sorted_usec_list_t sul;
  Hub* hub;
};

class Hub {
 public:
  Hub(ServerConfig config, Store store, std::function<int64_t()> now_ms);
  ~Hub();

  const ServerConfig& config() const { return config_; }
  Store& store() { return store_; }
  int64_t now_ms() const { return now_ms_(); }
  // Each password check costs ~50-100 ms of this thread (PBKDF2): at most
  // kLoginsPerSecond of them, so a login flood cannot stall the agents.
  bool allow_password_check();
  lws_context* context() const { return context_; }
  void set_context(lws_context* context) { context_ = context; }
  bool stopping() const { return stopping_; }

  uint64_t next_connection_id() { return ++last_connection_id_; }
  size_t agent_count() const { return agents_by_host_.size(); }
  size_t ui_count() const { return ui_clients_.size(); }

  // Agents (agent_session.cpp).
  void agent_established(AgentSession* s);
  void agent_message(AgentSession* s, std::string_view text);
  void agent_closed(AgentSession* s);
  void agent_hello_timeout(AgentSession* s);
  AgentSession* online_agent(const std::string& host) const;

  // The batch: events and heartbeats wait for one transaction.
  void commit_batch();

  // Dashboards (ui_feed.cpp).
  void ui_established(UiClient* c);
  void ui_message(UiClient* c, std::string_view text);
  void ui_closed(UiClient* c);
  void broadcast(const Frame& frame);
  void broadcast_host(const std::string& host);
  // The host object of the feed and the API; std::nullopt if unknown.
  std::optional<nlohmann::json> host_json(const std::string& host);
  Result<nlohmann::json> hosts_json();
  nlohmann::json host_view(const HostRecord& record);

  // Every 2 s: removed hosts and replaced credentials disconnect, ended
  // sessions disconnect their dashboards, silent agents are closed.
  void sweep();
  void prune_history();
  // Graceful stop: commit, then close every websocket.
  void begin_stop();
  size_t open_websockets() const { return agents_by_id_.size() + ui_clients_.size(); }

  // The session's user from a request's Cookie header, if valid.
  std::optional<UserInfo> session_from_cookie(lws* wsi, std::string* session_id = nullptr);

  // Scratch space for writes (LWS_PRE + 32 KiB).
  std::vector<unsigned char>& write_buffer() { return write_buffer_; }

 private:
  struct StagedEvent {
    uint64_t connection_id;
    std::string host;
    protocol::Event event;
  };
  struct StagedHeartbeat {
    std::string host;
    protocol::Heartbeat heartbeat;
    int64_t received;
  };

  void handle_hello(AgentSession* s, const protocol::Hello& hello);
  void handle_enroll(AgentSession* s, const protocol::Enroll& enroll);
  void handle_event(AgentSession* s, protocol::Event&& event);
  void handle_heartbeat(AgentSession* s, const protocol::Heartbeat& hb);
  void handle_inventory(AgentSession* s, const protocol::Inventory& inv);
  void handle_command_result(AgentSession* s, const protocol::CommandResult& r);
  void handle_progress(AgentSession* s, const protocol::Progress& p);
  void mark_ack_pending(AgentSession* s);
  void schedule_batch();
  void fail_batch(const Error& error);
  void handle_ui_command(UiClient* c, const protocol::Command& command);

  static void on_batch_timer(lws_sorted_usec_list_t* sul);
  static void on_sweep_timer(lws_sorted_usec_list_t* sul);

  ServerConfig config_;
  Store store_;
  std::function<int64_t()> now_ms_;
  lws_context* context_ = nullptr;
  bool stopping_ = false;
  uint64_t last_connection_id_ = 0;

  std::unordered_map<uint64_t, AgentSession*> agents_by_id_;
  std::unordered_map<std::string, AgentSession*> agents_by_host_;
  std::unordered_map<uint64_t, UiClient*> ui_clients_;

  std::vector<StagedEvent> staged_events_;
  std::vector<StagedHeartbeat> staged_heartbeats_;
  // Host rows written with the next batch (one fsync for all), so thousands
  // of agents connecting at once do not each wait for a commit.
  struct StagedHost {
    std::optional<std::string> inventory;
    std::optional<int64_t> last_seen;
  };
  std::map<std::string, StagedHost> staged_hosts_;
  std::vector<uint64_t> ack_pending_;  // connection ids
  bool batch_scheduled_ = false;
  double login_tokens_ = 0;
  int64_t login_refill_ms_ = 0;
  HubTimer batch_timer_{};
  HubTimer sweep_timer_{};
  int64_t last_prune_ms_ = 0;

  std::vector<unsigned char> write_buffer_;

 public:
  // The sweep timer starts once the context exists.
  void start_timers();
};

Hub* hub_of(lws* wsi);

int http_callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len);
int agent_callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len);
int ui_callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len);

}  // namespace farmhand::server
