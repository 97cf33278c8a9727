#include "agent/ws_client.h"

#include <libwebsockets.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace farmhand::agent {

namespace {

Error url_error(std::string_view url, const std::string& why) {
  return fail("server URL '" + std::string(url) + "': " + why);
}

}  // namespace

Result<ServerUrl> parse_server_url(std::string_view url, std::string_view endpoint) {
  ServerUrl out;
  out.text = std::string(url);
  size_t sep = url.find("://");
  if (sep == std::string_view::npos) return url_error(url, "expected ws://, wss://, http:// or https://");
  std::string scheme(url.substr(0, sep));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (scheme == "ws" || scheme == "http") {
    out.tls = false;
    out.port = 80;
  } else if (scheme == "wss" || scheme == "https") {
    out.tls = true;
    out.port = 443;
  } else {
    return url_error(url, "expected ws://, wss://, http:// or https://");
  }
  std::string_view rest = url.substr(sep + 3);
  if (rest.find_first_of("?#") != std::string_view::npos) return url_error(url, "a query or fragment is not allowed");
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  if (authority.find('@') != std::string_view::npos) return url_error(url, "a user name is not allowed");
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return url_error(url, "unterminated IPv6 address");
    out.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return url_error(url, "expected ':' after the IPv6 address");
      port_text = after.substr(1);
      if (port_text.empty()) return url_error(url, "empty port");
    }
  } else {
    size_t colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) return url_error(url, "empty port");
    }
  }
  if (out.host.empty()) return url_error(url, "no host name");
  if (!port_text.empty()) {
    int port = 0;
    for (char c : port_text) {
      if (c < '0' || c > '9' || port > 65535) return url_error(url, "bad port '" + std::string(port_text) + "'");
      port = port * 10 + (c - '0');
    }
    if (port < 1 || port > 65535) return url_error(url, "bad port '" + std::string(port_text) + "'");
    out.port = port;
  }
  std::string p(path);
  while (!p.empty() && p.back() == '/') p.pop_back();
  out.path = p + std::string(endpoint);
  return out;
}

WsClient::~WsClient() {
  if (wsi_ != nullptr) {
    lws_set_opaque_user_data(wsi_, nullptr);
    lws_set_timeout(wsi_, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
  }
}

Status WsClient::connect(const ServerUrl& url, const WsOptions& options) {
  if (wsi_ != nullptr) return fail("already connected or connecting");
  // Only wss:// needs (and pays for) a TLS client context; `ca_file` pins
  // the server's certificate, so it means nothing for ws://.
  auto vhost = url.tls ? loop_.client_vhost(options.ca_file) : Result<lws_vhost*>(loop_.plain_vhost());
  if (!vhost) return vhost.error();
  url_text_ = url.text;
  address_ = url.host;
  path_ = url.path;
  subprotocol_ = options.subprotocol;
  max_message_bytes_ = options.max_message_bytes;
  bool ipv6 = url.host.find(':') != std::string::npos;
  host_header_ = ipv6 ? "[" + url.host + "]" : url.host;
  if (url.port != (url.tls ? 443 : 80)) host_header_ += ":" + std::to_string(url.port);
  open_ = false;
  close_reason_.reset();
  peer_close_.clear();
  queue_.clear();
  rx_.clear();

  lws_client_connect_info info;
  std::memset(&info, 0, sizeof(info));
  info.context = loop_.context();
  info.vhost = *vhost;
  info.address = address_.c_str();
  info.port = url.port;
  info.ssl_connection = url.tls ? LCCSCF_USE_SSL : 0;
  info.path = path_.c_str();
  info.host = host_header_.c_str();
  info.protocol = subprotocol_.c_str();
  info.local_protocol_name = EventLoop::kProtocolName;
  info.pwsi = &wsi_;
  info.opaque_user_data = static_cast<LwsHandler*>(this);
  info.retry_and_idle_policy = loop_.idle_policy(options.ping_after_s, options.hangup_after_s);

  in_connect_call_ = true;
  sync_failure_.reset();
  lws* wsi = lws_client_connect_via_info(&info);
  in_connect_call_ = false;
  if (wsi == nullptr || sync_failure_) {
    wsi_ = nullptr;
    return fail(sync_failure_.value_or("cannot start connecting to " + url.text));
  }
  wsi_ = wsi;
  return {};
}

void WsClient::send(std::string text) {
  if (!open_) return;
  queue_.push_back(std::move(text));
  want_write();
}

void WsClient::want_write() {
  if (open_ && wsi_ != nullptr && !close_reason_) lws_callback_on_writable(wsi_);
}

void WsClient::close(std::string reason) {
  if (wsi_ == nullptr || close_reason_) return;
  close_reason_ = std::move(reason);
  lws_set_timeout(wsi_, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

void WsClient::finish(lws* wsi, std::string reason) {
  if (wsi != wsi_ && !(wsi_ == nullptr && in_connect_call_)) return;
  lws_set_opaque_user_data(wsi, nullptr);
  wsi_ = nullptr;
  open_ = false;
  queue_.clear();
  rx_.clear();
  std::string why = close_reason_ ? *close_reason_ : std::move(reason);
  close_reason_.reset();
  if (in_connect_call_) {
    sync_failure_ = why;
    return;
  }
  if (handlers_.on_closed) handlers_.on_closed(why);
}

int WsClient::on_lws_event(lws* wsi, int reason, void* in, size_t len) {
  switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
      std::string why = "connection failed";
      if (in != nullptr) {
        const char* text = static_cast<const char*>(in);
        std::string detail(text, len > 0 ? strnlen(text, len) : std::strlen(text));
        if (!detail.empty()) why = detail;
      }
      finish(wsi, why);
      return 0;
    }
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
      open_ = true;
      if (handlers_.on_open) handlers_.on_open();
      want_write();
      return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE: {
      const auto* p = static_cast<const unsigned char*>(in);
      peer_close_ = "the server closed the connection";
      if (p != nullptr && len >= 2) {
        peer_close_ += " (" + std::to_string((p[0] << 8) | p[1]);
        if (len > 2) peer_close_ += " " + std::string(reinterpret_cast<const char*>(p + 2), len - 2);
        peer_close_ += ")";
      }
      return 0;
    }
    case LWS_CALLBACK_CLIENT_RECEIVE: {
      if (lws_frame_is_binary(wsi)) {
        close_reason_ = "the server sent a binary frame";
        return -1;
      }
      if (rx_.size() + len > max_message_bytes_) {
        close_reason_ = "a message from the server is over " + std::to_string(max_message_bytes_) + " bytes";
        return -1;
      }
      rx_.append(static_cast<const char*>(in), len);
      if (lws_remaining_packet_payload(wsi) == 0 && lws_is_final_fragment(wsi)) {
        std::string message = std::move(rx_);
        rx_.clear();
        if (handlers_.on_message) handlers_.on_message(message);
      }
      return close_reason_ ? -1 : 0;
    }
    case LWS_CALLBACK_CLIENT_WRITEABLE: {
      if (close_reason_) return -1;
      std::string frame;
      if (!queue_.empty()) {
        frame = std::move(queue_.front());
        queue_.pop_front();
      } else if (handlers_.next_frame) {
        auto next = handlers_.next_frame();
        if (close_reason_) return -1;
        if (!next) return 0;
        frame = std::move(*next);
      } else {
        return 0;
      }
      std::string buffer(LWS_PRE + frame.size(), '\0');
      std::memcpy(buffer.data() + LWS_PRE, frame.data(), frame.size());
      auto* payload = reinterpret_cast<unsigned char*>(buffer.data() + LWS_PRE);
      int n = lws_write(wsi, payload, frame.size(), LWS_WRITE_TEXT);
      if (n < 0 || static_cast<size_t>(n) < frame.size()) {
        close_reason_ = "writing to the server failed";
        return -1;
      }
      if (!queue_.empty() || handlers_.next_frame) lws_callback_on_writable(wsi);
      return 0;
    }
    case LWS_CALLBACK_CLIENT_CLOSED:
      finish(wsi, peer_close_.empty() ? "connection lost" : peer_close_);
      return 0;
    case LWS_CALLBACK_WSI_DESTROY:
      finish(wsi, "connection closed");
      return 0;
    default:
      return 0;
  }
}

}  // namespace farmhand::agent
