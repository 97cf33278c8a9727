// HTTP: the JSON API, the embedded dashboard and the checks on websocket
// upgrades. Every request gets its whole answer built at once, then written
// in chunks from the writeable callback.
#include <cstring>
#include <nlohmann/json.hpp>

#include "common/log.h"
#include "server/auth.h"
#include "server/dashboard_files.h"
#include "server/http_routes.h"
#include "server/hub.h"

namespace farmhand::server {
namespace {

constexpr size_t kChunkBytes = 32u << 10;

std::string header_value(lws* wsi, lws_token_indexes token) {
  int total = lws_hdr_total_length(wsi, token);
  if (total <= 0) return {};
  std::string out(static_cast<size_t>(total) + 1, '\0');
  if (lws_hdr_copy(wsi, out.data(), total + 1, token) < 0) return {};
  out.resize(std::strlen(out.c_str()));
  return out;
}

std::vector<std::pair<std::string, std::string>> query_args(lws* wsi) {
  std::vector<std::pair<std::string, std::string>> out;
  char buf[1024];
  for (int i = 0; i < 32; ++i) {
    int n = lws_hdr_copy_fragment(wsi, buf, sizeof(buf), WSI_TOKEN_HTTP_URI_ARGS, i);
    if (n < 0) break;
    std::string_view item(buf, static_cast<size_t>(n));
    size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      out.emplace_back(std::string(item), "");
    } else {
      out.emplace_back(std::string(item.substr(0, eq)), std::string(item.substr(eq + 1)));
    }
  }
  return out;
}

// Writes the status line and headers; the body follows from the writeable callback.
int start_response(lws* wsi, HttpExchange* x, HttpResponse&& response, bool tls) {
  x->response = std::move(response);
  const HttpResponse& r = x->response;
  x->sent = 0;
  std::vector<unsigned char>& buf = hub_of(wsi)->write_buffer();
  unsigned char* start = buf.data() + LWS_PRE;
  unsigned char* p = start;
  unsigned char* end = buf.data() + buf.size() - 1;
  const std::string_view body = x->response.body_view();
  auto add = [&](const char* name, std::string_view value) {
    return lws_add_http_header_by_name(wsi, reinterpret_cast<const unsigned char*>(name),
                                       reinterpret_cast<const unsigned char*>(value.data()),
                                       static_cast<int>(value.size()), &p, end) == 0;
  };
  std::string type(r.content_type);
  if (lws_add_http_common_headers(wsi, r.status, type.c_str(), body.size(), &p, end) != 0) return -1;
  bool ok = add("cache-control:", "no-store") && add("x-content-type-options:", "nosniff") &&
            add("referrer-policy:", "no-referrer") && add("x-frame-options:", "DENY");
  if (r.content_type.substr(0, 9) == "text/html") {
    ok = ok && add("content-security-policy:", "default-src 'self'; connect-src 'self' ws: wss:");
  }
  if (r.set_cookie) {
    std::string cookie = *r.set_cookie + "; HttpOnly; SameSite=Strict; Path=/" + (tls ? "; Secure" : "");
    ok = ok && add("set-cookie:", cookie);
  }
  if (!ok || lws_finalize_write_http_header(wsi, start, &p, end) != 0) return -1;
  lws_callback_on_writable(wsi);
  return 0;
}

// Writes the next chunk; `done` once the whole body is out.
int write_body(lws* wsi, HttpExchange* x, bool& done) {
  const std::string_view body = x->response.body_view();
  if (x->sent < body.size()) {
    size_t n = std::min(kChunkBytes, body.size() - x->sent);
    std::vector<unsigned char>& buf = hub_of(wsi)->write_buffer();
    std::memcpy(buf.data() + LWS_PRE, body.data() + x->sent, n);
    x->sent += n;
    const bool last = x->sent == body.size();
    if (lws_write(wsi, buf.data() + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != static_cast<int>(n)) {
      return -1;
    }
    if (!last) {
      lws_callback_on_writable(wsi);
      return 0;
    }
  }
  done = true;
  return 0;
}

// Websocket upgrades: the path names the endpoint and its subprotocol;
// dashboards need a session.
int confirm_upgrade(lws* wsi, Hub* hub) {
  std::string path = header_value(wsi, WSI_TOKEN_GET_URI);
  std::string protocol = header_value(wsi, WSI_TOKEN_PROTOCOL);
  auto reject = [&](unsigned int status, const char* why) {
    log::info("refused a websocket upgrade on \"", path.substr(0, 100), "\" from ", [&] {
      char name[128] = "";
      lws_get_peer_simple(wsi, name, sizeof(name));
      return std::string(name);
    }(), ": ", why);
    return lws_return_http_status(wsi, status, why) ? -1 : 1;
  };
  if (hub->stopping()) return reject(HTTP_STATUS_SERVICE_UNAVAILABLE, "the server is stopping");
  if (path == "/agent") {
    if (protocol != protocol::kAgentSubprotocol) return reject(HTTP_STATUS_BAD_REQUEST, "expected the subprotocol farmhand.v1");
    return 0;
  }
  if (path == "/ui") {
    if (protocol != protocol::kUiSubprotocol) return reject(HTTP_STATUS_BAD_REQUEST, "expected the subprotocol farmhand.ui.v1");
    if (!hub->session_from_cookie(wsi)) return reject(HTTP_STATUS_UNAUTHORIZED, "not logged in");
    return 0;
  }
  return reject(HTTP_STATUS_NOT_FOUND, "no websocket endpoint here");
}

std::string request_method(lws* wsi) {
  if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0) return "GET";
  if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0) return "POST";
  if (lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0) return "HEAD";
  return "OTHER";
}

}  // namespace

int http_callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len) {
  auto* data = static_cast<HttpSessionData*>(user);
  Hub* hub = hub_of(wsi);
  const bool tls = hub->config().tls();
  switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
      return confirm_upgrade(wsi, hub);
    case LWS_CALLBACK_HTTP: {
      if (data == nullptr) return -1;
      delete data->exchange;
      auto* x = new HttpExchange;
      data->exchange = x;
      x->method = request_method(wsi);
      x->path = header_value(wsi, x->method == "POST" ? WSI_TOKEN_POST_URI
                                  : x->method == "HEAD" ? WSI_TOKEN_HEAD_URI
                                                        : WSI_TOKEN_GET_URI);
      x->args = query_args(wsi);
      if (x->method == "POST") {
        std::string length = header_value(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
        unsigned long long n = length.empty() ? 0 : std::strtoull(length.c_str(), nullptr, 10);
        if (n > kMaxHttpBodyBytes) {
          x->close_after = true;  // the unread body makes the connection unusable
          return start_response(wsi, x, json_response(HTTP_STATUS_REQ_ENTITY_TOO_LARGE,
                                                      {{"error", "the body is over 64 KiB"}}), tls);
        }
        if (n > 0) return 0;  // LWS_CALLBACK_HTTP_BODY follows
      }
      return start_response(wsi, x, route(*hub, wsi, *x), tls);
    }
    case LWS_CALLBACK_HTTP_BODY: {
      if (data == nullptr || data->exchange == nullptr) return -1;
      HttpExchange* x = data->exchange;
      if (x->body.size() + len > kMaxHttpBodyBytes) return -1;
      x->body.append(static_cast<const char*>(in), len);
      return 0;
    }
    case LWS_CALLBACK_HTTP_BODY_COMPLETION: {
      if (data == nullptr || data->exchange == nullptr) return -1;
      HttpExchange* x = data->exchange;
      return start_response(wsi, x, route(*hub, wsi, *x), tls);
    }
    case LWS_CALLBACK_HTTP_WRITEABLE: {
      if (data == nullptr || data->exchange == nullptr) return 0;
      HttpExchange* x = data->exchange;
      bool done = false;
      if (write_body(wsi, x, done) != 0) return -1;
      if (!done) return 0;
      const bool close = x->close_after;
      delete x;
      data->exchange = nullptr;
      if (close) return -1;
      return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
      if (data != nullptr) {
        delete data->exchange;
        data->exchange = nullptr;
      }
      return 0;
    default:
      return lws_callback_http_dummy(wsi, reason, user, in, len);
  }
}

}  // namespace farmhand::server
