#include "tests/bench/load_probe.h"

#include <libwebsockets.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>

#include "agent/ws_client.h"
#include "common/log.h"
#include "common/protocol.h"

namespace farmhand::load {

int64_t steady_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string stamp_message(int64_t us, uint64_t n) {
  return "t=" + std::to_string(us) + " load event " + std::to_string(n);
}

int64_t parse_stamp(std::string_view message) {
  if (message.substr(0, 2) != "t=") return -1;
  int64_t v = 0;
  size_t i = 2;
  for (; i < message.size() && message[i] >= '0' && message[i] <= '9'; ++i) v = v * 10 + (message[i] - '0');
  return i == 2 ? -1 : v;
}

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Closes the socket whatever happens.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

Result<std::string> login(const std::string& url, const std::string& user, const std::string& password) {
  auto server = agent::parse_server_url(url, "/api/login");
  if (!server) return server.error();
  if (server->tls) return fail("the load tool logs in over plain HTTP only, not " + url);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(server->host.c_str(), std::to_string(server->port).c_str(), &hints, &found); rc != 0) {
    return fail("resolving " + server->host + ": " + gai_strerror(rc));
  }
  Fd sock;
  sock.fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int rc = sock.fd < 0 ? -1 : ::connect(sock.fd, found->ai_addr, found->ai_addrlen);
  freeaddrinfo(found);
  if (rc != 0) return fail("connecting to " + url + " to log in: " + errno_text(errno));
  timeval tv{10, 0};
  setsockopt(sock.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

  std::string body = nlohmann::json{{"user", user}, {"password", password}}.dump();
  std::string request = "POST " + server->path + " HTTP/1.1\r\nHost: " + server->host + ":" +
                        std::to_string(server->port) +
                        "\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\n\r\n" + body;
  for (size_t off = 0; off < request.size();) {
    ssize_t n = ::send(sock.fd, request.data() + off, request.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return fail("sending the login request: " + errno_text(errno));
    off += static_cast<size_t>(n);
  }
  // Until the end of the headers is enough: the cookie is in them.
  std::string response;
  char buf[4096];
  while (response.find("\r\n\r\n") == std::string::npos) {
    ssize_t n = ::recv(sock.fd, buf, sizeof(buf), 0);
    if (n <= 0) {
      return fail("reading the login answer: " + (n == 0 ? std::string("connection closed") : errno_text(errno)));
    }
    response.append(buf, static_cast<size_t>(n));
    if (response.size() > (1u << 20)) return fail("the login answer's headers are over 1 MiB");
  }
  std::string head = response.substr(0, response.find("\r\n\r\n"));
  std::string status = head.substr(0, head.find("\r\n"));
  if (status.find(" 200") == std::string::npos) return fail("login refused: " + status);
  std::string lhead = lower(head);
  for (size_t pos = lhead.find("\r\nset-cookie:"); pos != std::string::npos;
       pos = lhead.find("\r\nset-cookie:", pos + 1)) {
    size_t value = head.find_first_not_of(' ', pos + 13);
    size_t end = head.find_first_of(";\r", value);
    std::string cookie = head.substr(value, end - value);
    if (cookie.rfind("fh_session=", 0) == 0) {
      log::add_secret(cookie.substr(11));
      return cookie;
    }
  }
  return fail("the login answer set no fh_session cookie");
}

// The /ui connection; lives on the probe's loop.
class UiProbe::Feed : public agent::LwsHandler {
 public:
  Feed(agent::EventLoop& loop, std::atomic<uint64_t>& events) : loop_(loop), events_(events) {}
  ~Feed() override { detach(); }

  Status connect(const agent::ServerUrl& url, std::string cookie) {
    cookie_ = std::move(cookie);
    host_header_ = url.host + ":" + std::to_string(url.port);
    address_ = url.host;
    path_ = url.path;
    lws_client_connect_info info;
    std::memset(&info, 0, sizeof(info));
    info.context = loop_.context();
    auto vhost = loop_.client_vhost("");
    if (!vhost) return vhost.error();
    info.vhost = *vhost;
    info.address = address_.c_str();
    info.port = url.port;
    info.path = path_.c_str();
    info.host = host_header_.c_str();
    info.protocol = protocol::kUiSubprotocol;
    info.local_protocol_name = agent::EventLoop::kProtocolName;
    info.pwsi = &wsi_;
    info.opaque_user_data = static_cast<agent::LwsHandler*>(this);
    info.retry_and_idle_policy = loop_.idle_policy(10, 60);
    if (lws_client_connect_via_info(&info) == nullptr) {
      wsi_ = nullptr;
      return fail(error_.empty() ? "cannot start connecting to " + url.text : error_);
    }
    return {};
  }

  // Stops listening; late lws callbacks for the wsi are dropped.
  void detach() {
    if (wsi_ == nullptr) return;
    lws_set_opaque_user_data(wsi_, nullptr);
    lws_set_timeout(wsi_, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    wsi_ = nullptr;
  }

  // Waits (on another thread) for the snapshot or the end.
  Status wait_ready(int timeout_ms) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return ready_ || ended_; })) {
      return fail("no snapshot on /ui within " + std::to_string(timeout_ms) + " ms");
    }
    if (!ready_) return fail("the /ui feed ended: " + error_);
    return {};
  }

  void end(std::string why) {
    std::lock_guard lock(mu_);
    if (!ended_) error_ = stats_.error = std::move(why);
    ended_ = true;
    cv_.notify_all();
  }

  Stats& stats() { return stats_; }

  int on_lws_event(lws* wsi, int reason, void* in, size_t len) override {
    switch (reason) {
      case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
        // The session cookie rides on the upgrade request (docs/protocol.md).
        auto** p = static_cast<unsigned char**>(in);
        unsigned char* end = *p + len;
        return lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_COOKIE,
                                            reinterpret_cast<const unsigned char*>(cookie_.data()),
                                            static_cast<int>(cookie_.size()), p, end)
                   ? -1
                   : 0;
      }
      case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        wsi_ = nullptr;
        if (in != nullptr) {
          const auto* text = static_cast<const char*>(in);
          end(std::string(text, strnlen(text, len ? len : 256)));
        } else {
          end("connection failed");
        }
        return 0;
      case LWS_CALLBACK_CLIENT_RECEIVE: {
        rx_.append(static_cast<const char*>(in), len);
        if (lws_remaining_packet_payload(wsi) != 0 || !lws_is_final_fragment(wsi)) return 0;
        int64_t now = steady_us();
        on_message(rx_, now);
        rx_.clear();
        return 0;
      }
      case LWS_CALLBACK_CLIENT_CLOSED:
      case LWS_CALLBACK_WSI_DESTROY:
        if (wsi == wsi_) wsi_ = nullptr;
        end("connection closed");
        return 0;
      default:
        return 0;
    }
  }

 private:
  void on_message(const std::string& text, int64_t now) {
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) return;
    const std::string& type = j["type"].get_ref<const std::string&>();
    if (type == "snapshot") {
      std::lock_guard lock(mu_);
      ready_ = true;
      cv_.notify_all();
    } else if (type == "event") {
      ++stats_.events;
      events_.fetch_add(1);
      int64_t t = -1;
      if (auto it = j.find("message"); it != j.end() && it->is_string()) t = parse_stamp(it->get<std::string>());
      if (t < 0) {
        ++stats_.unstamped;
      } else {
        stats_.latency_us.push_back(now - t);
      }
    }
  }

  agent::EventLoop& loop_;
  std::atomic<uint64_t>& events_;
  lws* wsi_ = nullptr;
  std::string cookie_, host_header_, address_, path_, rx_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool ready_ = false;
  bool ended_ = false;
  std::string error_;
  Stats stats_;
};

Result<std::unique_ptr<UiProbe>> UiProbe::start(const std::string& url, const std::string& user,
                                                const std::string& password, int timeout_ms) {
  auto ui_url = agent::parse_server_url(url, "/ui");
  if (!ui_url) return ui_url.error();
  auto cookie = login(url, user, password);
  if (!cookie) return cookie.error();
  auto loop = agent::EventLoop::create();
  if (!loop) return loop.error();
  std::unique_ptr<UiProbe> probe(new UiProbe());
  probe->loop_ = std::move(*loop);
  probe->feed_ = std::make_unique<Feed>(*probe->loop_, probe->events_);
  Feed* feed = probe->feed_.get();
  agent::EventLoop* l = probe->loop_.get();
  probe->thread_ = std::thread([feed, l, u = *ui_url, c = *cookie] {
    if (auto s = feed->connect(u, c); !s) {
      feed->end(s.error().message());
      return;
    }
    l->run();
  });
  if (auto s = feed->wait_ready(timeout_ms); !s) {
    probe->stop();
    return s.error();
  }
  return probe;
}

UiProbe::Stats UiProbe::stop() {
  if (!stopped_) {
    stopped_ = true;
    Feed* feed = feed_.get();
    agent::EventLoop* l = loop_.get();
    loop_->post([feed, l] {
      feed->detach();
      l->stop();
    });
    if (thread_.joinable()) thread_.join();
    std::sort(feed_->stats().latency_us.begin(), feed_->stats().latency_us.end());
  }
  return feed_->stats();
}

UiProbe::~UiProbe() {
  stop();
  feed_.reset();
  loop_.reset();
}

}  // namespace farmhand::load
