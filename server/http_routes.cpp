#include "server/http_routes.h"

#include <charconv>

#include "common/log.h"
#include "server/auth.h"
#include "server/dashboard_files.h"
#include "server/hub.h"

namespace farmhand::server {
namespace {

using nlohmann::json;

HttpResponse error_response(unsigned int status, std::string_view message) {
  return json_response(status, {{"error", message}});
}

HttpResponse server_error(const Error& e) {
  log::error("answering an HTTP request: ", e.message());
  return error_response(HTTP_STATUS_INTERNAL_SERVER_ERROR, "the server could not read its database");
}

std::optional<std::string> arg(const HttpExchange& x, std::string_view name) {
  for (const auto& [k, v] : x.args) {
    if (k == name) return v;
  }
  return std::nullopt;
}

std::optional<int64_t> parse_int(const std::string& s) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

bool valid_kind(std::string_view kind) {
  if (kind.empty() || kind.size() > protocol::kMaxKindBytes) return false;
  for (char c : kind) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

HttpResponse login(Hub& hub, const HttpExchange& x) {
  json body = json::parse(x.body, nullptr, false);
  if (body.is_discarded() || !body.is_object() || !body.contains("user") || !body["user"].is_string() ||
      !body.contains("password") || !body["password"].is_string()) {
    return error_response(HTTP_STATUS_BAD_REQUEST, "expected {\"user\": \"...\", \"password\": \"...\"}");
  }
  std::string name = body["user"].get<std::string>();
  std::string password = body["password"].get<std::string>();
  if (!valid_name(name)) return error_response(HTTP_STATUS_UNAUTHORIZED, "wrong user or password");
  if (!hub.allow_password_check()) {
    log::warning("login as \"", name, "\" refused: too many login attempts");
    return error_response(429, "too many login attempts; try again in a few seconds");
  }
  auto user = hub.store().check_password(name, password);
  if (!user) return server_error(user.error());
  if (!*user) {
    log::notice("failed login as \"", name, "\"");
    return error_response(HTTP_STATUS_UNAUTHORIZED, "wrong user or password");
  }
  auto session = hub.store().create_session(name, hub.now_ms());
  if (!session) return server_error(session.error());
  log::add_secret(*session);
  log::info("user \"", name, "\" logged in");
  HttpResponse r = json_response(HTTP_STATUS_OK, {{"user", name}, {"role", role_name((*user)->role)}});
  r.set_cookie = "fh_session=" + *session + "; Max-Age=" + std::to_string(kSessionLifetimeMs / 1000);
  return r;
}

// Containers or devices of the latest inventories, each with its host.
HttpResponse inventory_items(Hub& hub, const HttpExchange& x, const char* member) {
  auto host = arg(x, "host");
  if (host && !valid_name(*host)) return error_response(HTTP_STATUS_BAD_REQUEST, "host: not a valid host name");
  auto hosts = hub.store().list_hosts();
  if (!hosts) return server_error(hosts.error());
  json items = json::array();
  for (const auto& h : *hosts) {
    if ((host && h.name != *host) || !h.inventory) continue;
    json inv = json::parse(*h.inventory, nullptr, false);
    if (!inv.is_object() || !inv.contains(member) || !inv[member].is_array()) continue;
    for (auto& item : inv[member]) {
      if (!item.is_object()) continue;
      json out = {{"host", h.name}};
      out.update(item);
      items.push_back(std::move(out));
    }
  }
  return json_response(HTTP_STATUS_OK, {{member, std::move(items)}});
}

HttpResponse events(Hub& hub, const HttpExchange& x) {
  EventQuery q;
  if (auto v = arg(x, "host"); v && !v->empty()) {
    if (!valid_name(*v)) return error_response(HTTP_STATUS_BAD_REQUEST, "host: not a valid host name");
    q.host = *v;
  }
  if (auto v = arg(x, "kind"); v && !v->empty()) {
    if (!valid_kind(*v)) return error_response(HTTP_STATUS_BAD_REQUEST, "kind: expected at most 64 characters from [a-z0-9_]");
    q.kind = *v;
  }
  if (auto v = arg(x, "container"); v && !v->empty()) {
    if (v->size() > 256) return error_response(HTTP_STATUS_BAD_REQUEST, "container: too long");
    q.container = *v;
  }
  if (auto v = arg(x, "before"); v && !v->empty()) {
    auto n = parse_int(*v);
    if (!n || *n < 1) return error_response(HTTP_STATUS_BAD_REQUEST, "before: expected an event id");
    q.before = *n;
  }
  if (auto v = arg(x, "limit"); v && !v->empty()) {
    auto n = parse_int(*v);
    if (!n || *n < 1 || *n > 1000) return error_response(HTTP_STATUS_BAD_REQUEST, "limit: expected an integer from 1 to 1000");
    q.limit = static_cast<int>(*n);
  }
  auto page = hub.store().query_events(q);
  if (!page) return server_error(page.error());
  json list = json::array();
  for (const auto& e : page->events) list.push_back(event_json(e));
  return json_response(HTTP_STATUS_OK, {{"events", std::move(list)},
                                        {"next", page->next ? json(*page->next) : json(nullptr)}});
}

HttpResponse host_routes(Hub& hub, const HttpExchange& x, std::string_view rest) {
  size_t slash = rest.find('/');
  std::string name(rest.substr(0, slash));
  std::string_view tail = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  if (!valid_name(name)) return error_response(HTTP_STATUS_NOT_FOUND, "no such host");
  if (tail.empty()) {
    auto h = hub.host_json(name);
    if (!h) return error_response(HTTP_STATUS_NOT_FOUND, "no such host");
    return json_response(HTTP_STATUS_OK, *h);
  }
  if (tail == "/heartbeats") {
    int64_t since = 0;
    if (auto v = arg(x, "since"); v && !v->empty()) {
      auto n = parse_int(*v);
      if (!n || *n < 0) return error_response(HTTP_STATUS_BAD_REQUEST, "since: expected milliseconds since the epoch");
      since = *n;
    }
    auto rows = hub.store().heartbeats_since(name, since);
    if (!rows) return server_error(rows.error());
    return json_response(HTTP_STATUS_OK, {{"heartbeats", std::move(*rows)}});
  }
  return error_response(HTTP_STATUS_NOT_FOUND, "not found");
}

HttpResponse api(Hub& hub, lws* wsi, const HttpExchange& x) {
  const std::string_view path = x.path;
  const bool get = x.method == "GET";
  const bool post = x.method == "POST";
  auto method_not_allowed = [] { return error_response(HTTP_STATUS_METHOD_NOT_ALLOWED, "method not allowed"); };
  if (path == "/api/health") {
    if (!get) return method_not_allowed();
    return json_response(HTTP_STATUS_OK, {{"ok", true}, {"agents", hub.agent_count()}, {"ui_clients", hub.ui_count()}});
  }
  if (path == "/api/login") return post ? login(hub, x) : method_not_allowed();
  std::string session_id;
  auto user = hub.session_from_cookie(wsi, &session_id);
  if (!user) return error_response(HTTP_STATUS_UNAUTHORIZED, "not logged in");
  if (path == "/api/logout") {
    if (!post) return method_not_allowed();
    if (auto s = hub.store().delete_session(session_id); !s) return server_error(s.error());
    HttpResponse r = json_response(HTTP_STATUS_OK, json::object());
    r.set_cookie = "fh_session=; Max-Age=0";
    return r;
  }
  if (!get) return method_not_allowed();
  if (path == "/api/me") return json_response(HTTP_STATUS_OK, {{"user", user->name}, {"role", role_name(user->role)}});
  if (path == "/api/hosts") {
    auto hosts = hub.hosts_json();
    if (!hosts) return server_error(hosts.error());
    return json_response(HTTP_STATUS_OK, {{"hosts", std::move(*hosts)}});
  }
  if (path.substr(0, 11) == "/api/hosts/") return host_routes(hub, x, path.substr(11));
  if (path == "/api/containers") return inventory_items(hub, x, "containers");
  if (path == "/api/devices") return inventory_items(hub, x, "devices");
  if (path == "/api/events") return events(hub, x);
  return error_response(HTTP_STATUS_NOT_FOUND, "not found");
}

}  // namespace

HttpResponse json_response(unsigned int status, const nlohmann::json& body) {
  HttpResponse r;
  r.status = status;
  r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

HttpResponse route(Hub& hub, lws* wsi, const HttpExchange& x) {
  if (x.path == "/api" || x.path.substr(0, 5) == "/api/") return api(hub, wsi, x);
  if (x.method != "GET") return error_response(HTTP_STATUS_METHOD_NOT_ALLOWED, "method not allowed");
  std::string_view name = x.path == "/" ? std::string_view("index.html") : std::string_view(x.path).substr(1);
  const EmbeddedFile* file = x.path.empty() || x.path[0] != '/' ? nullptr : find_dashboard_file(name);
  if (file == nullptr) return error_response(HTTP_STATUS_NOT_FOUND, "not found");
  HttpResponse r;
  r.content_type = content_type_for(file->path);
  r.static_body = file->content;
  return r;
}

}  // namespace farmhand::server
