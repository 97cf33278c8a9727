#include "server/store.h"

#include "server/auth.h"

namespace farmhand::server {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS tokens(
  id INTEGER PRIMARY KEY, host TEXT NOT NULL, hash TEXT NOT NULL UNIQUE,
  created INTEGER NOT NULL, expires INTEGER NOT NULL, used INTEGER, revoked INTEGER);
CREATE TABLE IF NOT EXISTS hosts(
  name TEXT PRIMARY KEY, credential_hash TEXT NOT NULL, enrolled INTEGER NOT NULL,
  last_seen INTEGER, inventory TEXT, heartbeat TEXT);
CREATE TABLE IF NOT EXISTS users(
  name TEXT PRIMARY KEY, role TEXT NOT NULL, salt TEXT NOT NULL, iterations INTEGER NOT NULL,
  hash TEXT NOT NULL, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sessions(
  hash TEXT PRIMARY KEY, user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
  expires INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events(
  id INTEGER PRIMARY KEY, host TEXT NOT NULL, seq INTEGER NOT NULL, time INTEGER NOT NULL,
  kind TEXT NOT NULL, container TEXT, device TEXT, message TEXT NOT NULL, received INTEGER NOT NULL,
  UNIQUE(host, seq));
CREATE INDEX IF NOT EXISTS events_host_id ON events(host, id);
CREATE INDEX IF NOT EXISTS events_kind_id ON events(kind, id);
CREATE INDEX IF NOT EXISTS events_container_id ON events(container, id);
CREATE TABLE IF NOT EXISTS heartbeats(
  host TEXT NOT NULL, time INTEGER NOT NULL, received INTEGER NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS heartbeats_host_time ON heartbeats(host, time);
CREATE INDEX IF NOT EXISTS heartbeats_received ON heartbeats(received);
CREATE TABLE IF NOT EXISTS commands(
  n INTEGER PRIMARY KEY, host TEXT NOT NULL, action TEXT NOT NULL, container TEXT, device TEXT,
  user TEXT NOT NULL, created INTEGER NOT NULL, finished INTEGER, ok INTEGER, message TEXT);
)sql";

}  // namespace

const char* role_name(Role role) { return role == Role::kAdmin ? "admin" : "viewer"; }

std::optional<Role> parse_role(std::string_view text) {
  if (text == "admin") return Role::kAdmin;
  if (text == "viewer") return Role::kViewer;
  return std::nullopt;
}

Result<Store> Store::open(const std::string& path) {
  auto db = sql::Database::open(path);
  if (!db) return db.error();
  if (auto s = db->exec(kSchema); !s) return s.error().context("creating the schema in '" + path + "'");
  Store store(std::move(*db));
  if (auto s = store.prepare_hot_statements(); !s) return s.error();
  return store;
}

Result<TokenCreated> Store::create_token(const std::string& host, int64_t now, int64_t lifetime_ms) {
  TokenCreated out;
  out.token = random_secret(kTokenPrefix);
  auto st = db_.prepare("INSERT INTO tokens(host, hash, created, expires) VALUES(?, ?, ?, ?)");
  if (!st) return st.error();
  st->bind(1, host).bind(2, hash_secret(out.token)).bind(3, now).bind(4, now + lifetime_ms);
  if (auto s = st->run(); !s) return s.error();
  out.id = db_.last_insert_rowid();
  return out;
}

Result<std::vector<TokenInfo>> Store::list_tokens(int64_t now) {
  auto st = db_.prepare("SELECT id, host, created, expires, used, revoked FROM tokens ORDER BY id");
  if (!st) return st.error();
  std::vector<TokenInfo> out;
  for (;;) {
    auto row = st->step();
    if (!row) return row.error();
    if (!*row) break;
    TokenInfo t{st->integer(0), st->text(1), st->integer(2), st->integer(3), "valid"};
    if (!st->is_null(4)) {
      t.state = "used";
    } else if (!st->is_null(5)) {
      t.state = "revoked";
    } else if (t.expires <= now) {
      t.state = "expired";
    }
    out.push_back(std::move(t));
  }
  return out;
}

Result<bool> Store::revoke_token(int64_t id, int64_t now) {
  auto st = db_.prepare("UPDATE tokens SET revoked = ? WHERE id = ? AND revoked IS NULL AND used IS NULL");
  if (!st) return st.error();
  st->bind(1, now).bind(2, id);
  if (auto s = st->run(); !s) return s.error();
  return db_.changes() > 0;
}

Result<int64_t> Store::revoke_tokens_for(const std::string& host, int64_t now) {
  auto st = db_.prepare("UPDATE tokens SET revoked = ? WHERE host = ? AND revoked IS NULL AND used IS NULL");
  if (!st) return st.error();
  st->bind(1, now).bind(2, host);
  if (auto s = st->run(); !s) return s.error();
  return db_.changes();
}

Result<std::optional<Enrollment>> Store::enroll(std::string_view token, int64_t now) {
  if (!looks_like_secret(token, kTokenPrefix)) return std::optional<Enrollment>();
  std::optional<Enrollment> out;
  // The hash is looked up by equality in the index: the hash of a guess
  // says nothing about the stored hashes, so no timing leaks the token.
  Status s = db_.transaction([&]() -> Status {
    auto st = db_.prepare(
        "UPDATE tokens SET used = ? WHERE hash = ? AND used IS NULL AND revoked IS NULL AND expires > ? "
        "RETURNING host");
    if (!st) return st.error();
    st->bind(1, now).bind(2, hash_secret(token)).bind(3, now);
    auto row = st->step();
    if (!row) return row.error();
    if (!*row) return {};
    Enrollment e{st->text(0), random_secret(kCredentialPrefix)};
    if (auto r = st->reset(); !r) return r;
    auto up = db_.prepare(
        "INSERT INTO hosts(name, credential_hash, enrolled) VALUES(?, ?, ?) "
        "ON CONFLICT(name) DO UPDATE SET credential_hash = excluded.credential_hash, enrolled = excluded.enrolled");
    if (!up) return up.error();
    up->bind(1, e.host).bind(2, hash_secret(e.credential)).bind(3, now);
    if (auto r = up->run(); !r) return r;
    out = std::move(e);
    return {};
  });
  if (!s) return s.error();
  return out;
}

Result<std::optional<std::string>> Store::credential_hash(const std::string& host) {
  auto st = db_.prepare("SELECT credential_hash FROM hosts WHERE name = ?");
  if (!st) return st.error();
  st->bind(1, host);
  auto row = st->step();
  if (!row) return row.error();
  if (!*row) return std::optional<std::string>();
  return std::optional<std::string>(st->text(0));
}

Result<std::unordered_map<std::string, std::string>> Store::credential_hashes() {
  auto st = db_.prepare("SELECT name, credential_hash FROM hosts");
  if (!st) return st.error();
  std::unordered_map<std::string, std::string> out;
  for (;;) {
    auto row = st->step();
    if (!row) return row.error();
    if (!*row) break;
    out.emplace(st->text(0), st->text(1));
  }
  return out;
}

Result<bool> Store::verify_credential(const std::string& host, std::string_view credential) {
  auto stored = credential_hash(host);
  if (!stored) return stored.error();
  // Hash even when the host is unknown, so both paths take the same time.
  std::string given = hash_secret(credential);
  if (!*stored) return false;
  return hashes_equal(given, **stored);
}

namespace {
HostRecord host_from_row(const sql::Statement& st) {
  HostRecord h;
  h.name = st.text(0);
  h.enrolled = st.integer(1);
  if (!st.is_null(2)) h.last_seen = st.integer(2);
  if (!st.is_null(3)) h.inventory = st.text(3);
  if (!st.is_null(4)) h.heartbeat = st.text(4);
  h.acked_seq = static_cast<uint64_t>(st.integer(5));
  return h;
}
constexpr const char* kHostColumns =
    "SELECT name, enrolled, last_seen, inventory, heartbeat, "
    "COALESCE((SELECT MAX(seq) FROM events WHERE events.host = hosts.name), 0) FROM hosts";
}  // namespace

Result<std::vector<HostRecord>> Store::list_hosts() {
  auto st = db_.prepare(std::string(kHostColumns) + " ORDER BY name");
  if (!st) return st.error();
  std::vector<HostRecord> out;
  for (;;) {
    auto row = st->step();
    if (!row) return row.error();
    if (!*row) break;
    out.push_back(host_from_row(*st));
  }
  return out;
}

Result<std::optional<HostRecord>> Store::find_host(const std::string& name) {
  auto st = db_.prepare(std::string(kHostColumns) + " WHERE name = ?");
  if (!st) return st.error();
  st->bind(1, name);
  auto row = st->step();
  if (!row) return row.error();
  if (!*row) return std::optional<HostRecord>();
  return std::optional<HostRecord>(host_from_row(*st));
}

Result<bool> Store::remove_host(const std::string& name) {
  auto st = db_.prepare("DELETE FROM hosts WHERE name = ?");
  if (!st) return st.error();
  st->bind(1, name);
  if (auto s = st->run(); !s) return s.error();
  return db_.changes() > 0;
}

Status Store::set_inventory(const std::string& host, const std::string& json) {
  auto st = db_.prepare("UPDATE hosts SET inventory = ? WHERE name = ?");
  if (!st) return st.error();
  st->bind(1, json).bind(2, host);
  return st->run();
}

Status Store::set_last_seen(const std::string& host, int64_t ms) {
  auto st = db_.prepare("UPDATE hosts SET last_seen = ? WHERE name = ?");
  if (!st) return st.error();
  st->bind(1, ms).bind(2, host);
  return st->run();
}

Result<bool> Store::put_user(const std::string& name, Role role, std::string_view password) {
  PasswordHash h = hash_password(password);
  auto existed = db_.prepare("SELECT 1 FROM users WHERE name = ?");
  if (!existed) return existed.error();
  existed->bind(1, name);
  auto row = existed->step();
  if (!row) return row.error();
  bool was = *row;
  (void)existed->reset();
  auto st = db_.prepare(
      "INSERT INTO users(name, role, salt, iterations, hash, created) VALUES(?, ?, ?, ?, ?, strftime('%s','now')) "
      "ON CONFLICT(name) DO UPDATE SET role = excluded.role, salt = excluded.salt, "
      "iterations = excluded.iterations, hash = excluded.hash");
  if (!st) return st.error();
  st->bind(1, name).bind(2, role_name(role)).bind(3, h.salt_hex).bind(4, int64_t{h.iterations}).bind(5, h.hash_hex);
  if (auto s = st->run(); !s) return s.error();
  if (was) {
    // A changed password or role ends the user's sessions.
    auto del = db_.prepare("DELETE FROM sessions WHERE user = ?");
    if (!del) return del.error();
    del->bind(1, name);
    if (auto s = del->run(); !s) return s.error();
  }
  return was;
}

Result<bool> Store::remove_user(const std::string& name) {
  auto st = db_.prepare("DELETE FROM users WHERE name = ?");
  if (!st) return st.error();
  st->bind(1, name);
  if (auto s = st->run(); !s) return s.error();
  return db_.changes() > 0;
}

Result<std::vector<UserInfo>> Store::list_users() {
  auto st = db_.prepare("SELECT name, role FROM users ORDER BY name");
  if (!st) return st.error();
  std::vector<UserInfo> out;
  for (;;) {
    auto row = st->step();
    if (!row) return row.error();
    if (!*row) break;
    out.push_back(UserInfo{st->text(0), parse_role(st->text(1)).value_or(Role::kViewer)});
  }
  return out;
}

Result<std::optional<UserInfo>> Store::check_password(const std::string& name, std::string_view password) {
  auto st = db_.prepare("SELECT role, salt, iterations, hash FROM users WHERE name = ?");
  if (!st) return st.error();
  st->bind(1, name);
  auto row = st->step();
  if (!row) return row.error();
  if (!*row) {
    // Spend the same time on an unknown user as on a wrong password.
    (void)verify_password(password, PasswordHash{"00", kPasswordIterations, ""});
    return std::optional<UserInfo>();
  }
  PasswordHash stored{st->text(1), static_cast<int>(st->integer(2)), st->text(3)};
  auto role = parse_role(st->text(0));
  if (!verify_password(password, stored) || !role) return std::optional<UserInfo>();
  return std::optional<UserInfo>(UserInfo{name, *role});
}

Result<std::string> Store::create_session(const std::string& user, int64_t now) {
  std::string id = random_secret(kSessionPrefix);
  auto prune = db_.prepare("DELETE FROM sessions WHERE expires <= ?");
  if (!prune) return prune.error();
  prune->bind(1, now);
  if (auto s = prune->run(); !s) return s.error();
  auto st = db_.prepare("INSERT INTO sessions(hash, user, expires) VALUES(?, ?, ?)");
  if (!st) return st.error();
  st->bind(1, hash_secret(id)).bind(2, user).bind(3, now + kSessionLifetimeMs);
  if (auto s = st->run(); !s) return s.error();
  return id;
}

Result<std::optional<UserInfo>> Store::session_user(std::string_view session_id, int64_t now) {
  if (!looks_like_secret(session_id, kSessionPrefix)) return std::optional<UserInfo>();
  auto st = db_.prepare(
      "SELECT users.name, users.role FROM sessions JOIN users ON users.name = sessions.user "
      "WHERE sessions.hash = ? AND sessions.expires > ?");
  if (!st) return st.error();
  st->bind(1, hash_secret(session_id)).bind(2, now);
  auto row = st->step();
  if (!row) return row.error();
  if (!*row) return std::optional<UserInfo>();
  auto role = parse_role(st->text(1));
  if (!role) return std::optional<UserInfo>();
  return std::optional<UserInfo>(UserInfo{st->text(0), *role});
}

Status Store::delete_session(std::string_view session_id) {
  auto st = db_.prepare("DELETE FROM sessions WHERE hash = ?");
  if (!st) return st.error();
  st->bind(1, hash_secret(session_id));
  return st->run();
}

}  // namespace farmhand::server
