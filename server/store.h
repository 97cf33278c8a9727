// The server's SQLite database: enrollment tokens, host credentials, users
// and sessions (store.cpp), events, heartbeats, inventories and commands
// (store_events.cpp). Every time comes in as a parameter, so tests run on a
// simulated clock. One Store per thread; the admin CLI opens its own while
// the server runs (WAL).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/protocol.h"
#include "common/result.h"
#include "common/sqlite.h"

namespace farmhand::server {

struct TokenCreated {
  int64_t id = 0;
  std::string token;  // shown once, never stored
};

struct TokenInfo {
  int64_t id = 0;
  std::string host;
  int64_t created = 0;
  int64_t expires = 0;
  std::string state;  // used, revoked, expired, valid
};

struct Enrollment {
  std::string host;
  std::string credential;
};

// A host as the database knows it (the live state is the server's).
struct HostRecord {
  std::string name;
  int64_t enrolled = 0;
  std::optional<int64_t> last_seen;
  uint64_t acked_seq = 0;
  std::optional<std::string> inventory;  // JSON text
  std::optional<std::string> heartbeat;  // JSON text
};

enum class Role { kViewer, kAdmin };
const char* role_name(Role role);
std::optional<Role> parse_role(std::string_view text);

struct UserInfo {
  std::string name;
  Role role = Role::kViewer;
};

struct StoredEvent {
  int64_t id = 0;
  std::string host;
  protocol::Event event;
};

struct EventQuery {
  std::optional<std::string> host;
  std::optional<std::string> kind;
  std::optional<std::string> container;
  std::optional<int64_t> before;  // event id
  int limit = 100;
};

struct EventPage {
  std::vector<StoredEvent> events;  // newest first
  std::optional<int64_t> next;      // pass as `before` for the next page
};

inline constexpr int kMaxHeartbeatRows = 1000;
inline constexpr int64_t kSessionLifetimeMs = 12LL * 3600 * 1000;

class Store {
 public:
  static Result<Store> open(const std::string& path);

  // Runs `body` in one transaction.
  template <typename Fn>
  Status transaction(Fn&& body) { return db_.transaction(std::forward<Fn>(body)); }

  // Tokens and enrollment.
  Result<TokenCreated> create_token(const std::string& host, int64_t now, int64_t lifetime_ms);
  Result<std::vector<TokenInfo>> list_tokens(int64_t now);
  Result<bool> revoke_token(int64_t id, int64_t now);
  Result<int64_t> revoke_tokens_for(const std::string& host, int64_t now);
  // Consumes a valid token and gives its host a fresh credential (replacing
  // any older one); std::nullopt if the token is unknown, used, revoked or
  // expired.
  Result<std::optional<Enrollment>> enroll(std::string_view token, int64_t now);
  // The stored credential hash of `host`, std::nullopt if it has none.
  Result<std::optional<std::string>> credential_hash(const std::string& host);
  // host -> stored credential hash, for every host.
  Result<std::unordered_map<std::string, std::string>> credential_hashes();
  // Whether `credential` is the host's current one (constant-time compare).
  Result<bool> verify_credential(const std::string& host, std::string_view credential);

  // Hosts.
  Result<std::vector<HostRecord>> list_hosts();
  Result<std::optional<HostRecord>> find_host(const std::string& name);
  Result<bool> remove_host(const std::string& name);
  Status set_inventory(const std::string& host, const std::string& json);
  Status set_last_seen(const std::string& host, int64_t ms);

  // Users and sessions.
  // Creates the user or replaces its role and password; true if it existed.
  Result<bool> put_user(const std::string& name, Role role, std::string_view password);
  Result<bool> remove_user(const std::string& name);
  Result<std::vector<UserInfo>> list_users();
  Result<std::optional<UserInfo>> check_password(const std::string& name, std::string_view password);
  Result<std::string> create_session(const std::string& user, int64_t now);  // the session id
  Result<std::optional<UserInfo>> session_user(std::string_view session_id, int64_t now);
  Status delete_session(std::string_view session_id);

  // Events (store_events.cpp). Highest stored seq of `host`, 0 if none.
  Result<uint64_t> acked_seq(const std::string& host);
  // Inside a transaction: stores one event; its row id, or 0 if (host, seq)
  // was already stored.
  Result<int64_t> insert_event(const std::string& host, const protocol::Event& event, int64_t received);
  // Inside a transaction: stores a heartbeat in the history and as the host's latest.
  Status insert_heartbeat(const std::string& host, const protocol::Heartbeat& hb, int64_t received);
  Result<EventPage> query_events(const EventQuery& query);
  // Oldest first, at most kMaxHeartbeatRows, each the heartbeat's JSON.
  Result<std::vector<nlohmann::json>> heartbeats_since(const std::string& host, int64_t since);
  Result<int64_t> prune_heartbeats(int64_t older_than);

  // Commands: a new id "c-N".
  Result<std::string> create_command(const std::string& host, const protocol::Command& command,
                                     const std::string& user, int64_t now);
  Status finish_command(const std::string& host, const protocol::CommandResult& result, int64_t now);

 private:
  explicit Store(sql::Database db) : db_(std::move(db)) {}
  Status prepare_hot_statements();

  sql::Database db_;
  // Reused for every event and heartbeat (declared after db_: finalized first).
  std::optional<sql::Statement> insert_event_;
  std::optional<sql::Statement> insert_heartbeat_;
  std::optional<sql::Statement> update_heartbeat_;
};

// JSON views shared by the feed and the HTTP API.
nlohmann::json event_json(const StoredEvent& e);  // without "type"

}  // namespace farmhand::server
