#include "server/server.h"

#include <libwebsockets.h>
#include <sys/resource.h>

#include <chrono>
#include <string>

#include "common/clock.h"
#include "common/log.h"
#include "server/hub.h"

namespace farmhand::server {
namespace {

void lws_log_line(int level, const char* line) {
  std::string text(line);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (level & LLL_ERR) {
    log::error("libwebsockets: ", text);
  } else {
    log::warning("libwebsockets: ", text);
  }
}

const lws_protocols kProtocols[] = {
    {"http", http_callback, sizeof(HttpSessionData), 0, 0, nullptr, 0},
    {protocol::kAgentSubprotocol, agent_callback, sizeof(WsSessionData), 4096, 0, nullptr, 0},
    {protocol::kUiSubprotocol, ui_callback, sizeof(WsSessionData), 4096, 0, nullptr, 0},
    {nullptr, nullptr, 0, 0, 0, nullptr, 0},
};

int64_t system_now_ms() { return wall_ms(); }

}  // namespace

uint64_t raise_open_file_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return 0;
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit want = lim;
    want.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &want) == 0) lim = want;
  }
  return lim.rlim_cur;
}

Result<std::unique_ptr<Server>> Server::create(ServerConfig config, std::function<int64_t()> now_ms) {
  static bool log_hooked = false;
  if (!log_hooked) {
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_line);
    log_hooked = true;
  }
  auto store = Store::open(config.database);
  if (!store) return store.error();
  std::unique_ptr<Server> server(new Server());
  if (!now_ms) now_ms = system_now_ms;
  server->hub_ = std::make_unique<Hub>(config, std::move(*store), std::move(now_ms));
  Hub* hub = server->hub_.get();

  // lws sizes its fd tables from the open-file limit: keep them sensible.
  const uint64_t files = raise_open_file_limit();
  lws_context_creation_info info{};
  info.port = config.listen_port;
  info.iface = config.listen_address.c_str();
  info.protocols = kProtocols;
  info.user = hub;
  info.fd_limit_per_thread = static_cast<unsigned int>(std::min<uint64_t>(files ? files : 1024, 65536));
  info.alpn = "http/1.1";
  info.max_http_header_pool = 256;
  info.timeout_secs = 10;
  info.options = 0;
  if (config.listen_address.find(':') == std::string::npos) info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
  if (config.tls()) {
    info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.ssl_cert_filepath = config.tls_cert->c_str();
    info.ssl_private_key_filepath = config.tls_key->c_str();
  }
  server->context_ = lws_create_context(&info);
  if (server->context_ == nullptr) {
    return fail("cannot listen on " + config.listen_address + ":" + std::to_string(config.listen_port) +
                (config.tls() ? " with TLS (check the certificate and key files)" : "") +
                " (libwebsockets could not create its context; see the messages above)");
  }
  hub->set_context(server->context_);
  lws_vhost* vhost = lws_get_vhost_by_name(server->context_, "default");
  int port = vhost ? lws_get_vhost_listen_port(vhost) : -1;
  if (port <= 0) {
    lws_context_destroy(server->context_);
    server->context_ = nullptr;
    return fail("cannot listen on " + config.listen_address + ":" + std::to_string(config.listen_port));
  }
  server->port_ = static_cast<uint16_t>(port);
  hub->start_timers();
  return server;
}

Server::~Server() {
  if (context_ != nullptr) lws_context_destroy(context_);
}

Status Server::run() {
  while (!stop_requested_.load()) {
    if (lws_service(context_, 0) < 0) return fail("the service loop failed");
  }
  // Graceful stop: store what is staged, say goodbye, give the peers 2 s.
  hub_->begin_stop();
  const lws_usec_t deadline = lws_now_usecs() + 2 * LWS_US_PER_SEC;
  lws_sorted_usec_list_t wake{};  // makes lws_service return at the deadline
  lws_sul_schedule(context_, 0, &wake, [](lws_sorted_usec_list_t*) {}, 2 * LWS_US_PER_SEC);
  while (hub_->open_websockets() > 0 && lws_now_usecs() < deadline) {
    if (lws_service(context_, 0) < 0) break;
  }
  lws_sul_cancel(&wake);
  hub_->commit_batch();
  lws_context_destroy(context_);
  context_ = nullptr;
  return {};
}

void Server::request_stop() {
  stop_requested_.store(true);
  if (context_ != nullptr) lws_cancel_service(context_);
}

}  // namespace farmhand::server
