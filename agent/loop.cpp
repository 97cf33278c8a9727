#include "agent/loop.h"

#include <fcntl.h>
#include <libwebsockets.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"

namespace farmhand::agent {

// A watched descriptor. lws closes the descriptor of a raw-file wsi when the
// wsi closes, so the loop adopts a dup() and the caller keeps its own fd.
struct EventLoop::Watch : LwsHandler {
  EventLoop* loop = nullptr;
  WatchId id = 0;
  std::function<void()> on_readable;
  lws* wsi = nullptr;
  bool active = true;

  int on_lws_event(lws* w, int reason, void*, size_t) override {
    // Keep this watch alive while its callback runs: the callback may unwatch.
    auto it = loop->watches_.find(id);
    if (it == loop->watches_.end()) return reason == LWS_CALLBACK_RAW_RX_FILE ? -1 : 0;
    std::shared_ptr<Watch> self = it->second;
    if (reason == LWS_CALLBACK_RAW_RX_FILE) {
      if (active) on_readable();
      return 0;
    }
    if (reason == LWS_CALLBACK_RAW_CLOSE_FILE && w == wsi) {
      // lws closes a raw file on POLLHUP without POLLIN: let the owner see
      // the end of file once.
      wsi = nullptr;
      if (active) on_readable();
    }
    return 0;
  }
};

// The scheduled part of a timer: standard layout, so the lws sul pointer
// converts back to it.
struct TimerSul {
  lws_sorted_usec_list_t sul;
  EventLoop* loop;
  EventLoop::TimerId id;
};

struct EventLoop::Timer {
  TimerSul sul{};
  std::function<void()> fn;
};

namespace {

int loop_callback(lws* wsi, lws_callback_reasons reason, void*, void* in, size_t len) {
  if (wsi == nullptr) return 0;
  lws_context* context = lws_get_context(wsi);
  if (context == nullptr) return 0;
  auto* loop = static_cast<EventLoop*>(lws_context_user(context));
  if (loop == nullptr) return 0;
  return loop->dispatch(wsi, static_cast<int>(reason), in, len);
}

const lws_protocols kProtocols[] = {
    {EventLoop::kProtocolName, loop_callback, 0, 0, 0, nullptr, 0},
    {nullptr, nullptr, 0, 0, 0, nullptr, 0},
};

// lws's own log lines are for debugging farmhand, not for the admin: the
// link logs what matters once, in its own words.
void lws_log_line(int level, const char* line) {
  std::string text(line);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  log::debug("lws(", level, "): ", text);
}

}  // namespace

Result<std::unique_ptr<EventLoop>> EventLoop::create() {
  lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_line);
  std::unique_ptr<EventLoop> loop(new EventLoop());
  lws_context_creation_info info;
  std::memset(&info, 0, sizeof(info));
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
  info.gid = static_cast<gid_t>(-1);
  info.uid = static_cast<uid_t>(-1);
  info.user = loop.get();
  info.connect_timeout_secs = 10;
  info.timeout_secs = 15;
  loop->context_ = lws_create_context(&info);
  if (loop->context_ == nullptr) return fail("cannot create the libwebsockets context");
  // No TLS here: a client SSL_CTX is made only for a wss:// connection
  // (client_vhost). Besides loading the system's CAs for nothing, lws 4.1.6
  // leaks it: every context created with LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT
  // takes a new OpenSSL SSL_CTX ex_data index (a global of lws), and a
  // context then cannot find the bookkeeping it attached to its client
  // SSL_CTX under the old index, so never frees it, whenever another loop
  // was created while it lived (the enrollment exchange against a server
  // loop in the same process; fixed upstream by openssl_ex_indexes_acquired).
  lws_context_creation_info vinfo;
  std::memset(&vinfo, 0, sizeof(vinfo));
  loop->vhost_names_.push_back("farmhand-plain");
  vinfo.vhost_name = loop->vhost_names_.back().c_str();
  vinfo.port = CONTEXT_PORT_NO_LISTEN;
  vinfo.protocols = kProtocols;
  loop->plain_vhost_ = lws_create_vhost(loop->context_, &vinfo);
  if (loop->plain_vhost_ == nullptr) return fail("cannot create the libwebsockets vhost");
  return loop;
}

EventLoop::~EventLoop() {
  // Nothing may reach a watch or handler while lws closes everything.
  for (auto& [id, watch] : watches_) {
    watch->active = false;
    if (watch->wsi != nullptr) lws_set_opaque_user_data(watch->wsi, nullptr);
  }
  if (context_ != nullptr) lws_context_destroy(context_);
  watches_.clear();
  timers_.clear();
  idle_policies_.clear();
}

Result<lws_vhost*> EventLoop::client_vhost(const std::string& ca_file) {
  if (auto it = vhosts_.find(ca_file); it != vhosts_.end()) return it->second;
  lws_context_creation_info info;
  std::memset(&info, 0, sizeof(info));
  vhost_names_.push_back("farmhand-tls-" + std::to_string(vhosts_.size()));
  info.vhost_name = vhost_names_.back().c_str();
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = kProtocols;
  info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
  if (!ca_file.empty()) info.client_ssl_ca_filepath = ca_file.c_str();
  lws_vhost* vh = lws_create_vhost(context_, &info);
  if (vh == nullptr) {
    if (ca_file.empty()) return fail("cannot create the libwebsockets TLS client vhost");
    return fail("cannot load the CA file '" + ca_file + "'");
  }
  vhosts_.emplace(ca_file, vh);
  return vh;
}

const lws_retry_bo* EventLoop::idle_policy(uint16_t ping_s, uint16_t hangup_s) {
  uint32_t key = (uint32_t{ping_s} << 16) | hangup_s;
  auto& policy = idle_policies_[key];
  if (!policy) {
    policy = std::make_unique<lws_retry_bo>();
    std::memset(policy.get(), 0, sizeof(lws_retry_bo));
    policy->secs_since_valid_ping = ping_s;
    policy->secs_since_valid_hangup = hangup_s;
  }
  return policy.get();
}

Result<EventLoop::WatchId> EventLoop::watch_fd(int fd, std::function<void()> on_readable) {
  int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (copy < 0) return fail("cannot watch fd " + std::to_string(fd) + ": " + errno_text(errno));
  auto watch = std::make_shared<Watch>();
  watch->loop = this;
  watch->id = next_id_++;
  watch->on_readable = std::move(on_readable);
  lws_adopt_desc_t desc;
  std::memset(&desc, 0, sizeof(desc));
  desc.vh = plain_vhost_;
  desc.type = LWS_ADOPT_RAW_FILE_DESC;
  desc.fd.filefd = copy;
  desc.vh_prot_name = kProtocolName;
  desc.opaque = static_cast<LwsHandler*>(watch.get());
  watches_.emplace(watch->id, watch);
  lws* wsi = lws_adopt_descriptor_vhost_via_info(&desc);
  if (wsi == nullptr) {
    // lws closed `copy` already.
    watches_.erase(watch->id);
    return fail("cannot watch fd " + std::to_string(fd) + ": libwebsockets refused it");
  }
  watch->wsi = wsi;
  return watch->id;
}

void EventLoop::unwatch(WatchId id) {
  auto it = watches_.find(id);
  if (it == watches_.end()) return;
  std::shared_ptr<Watch> watch = it->second;
  watches_.erase(it);
  watch->active = false;
  if (watch->wsi != nullptr) {
    lws_set_opaque_user_data(watch->wsi, nullptr);
    // Closed (with the dup'ed fd) on the next turn of the loop: closing it
    // synchronously could free the wsi whose callback is running now.
    lws_set_timeout(watch->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    watch->wsi = nullptr;
  }
}

EventLoop::TimerId EventLoop::after(std::chrono::milliseconds delay, std::function<void()> fn) {
  auto timer = std::make_unique<Timer>();
  TimerId id = next_id_++;
  timer->sul.loop = this;
  timer->sul.id = id;
  timer->fn = std::move(fn);
  lws_usec_t us = static_cast<lws_usec_t>(std::max<int64_t>(delay.count(), 0)) * 1000;
  lws_sul_schedule(context_, 0, &timer->sul.sul, &EventLoop::fire_timer, us);
  timers_.emplace(id, std::move(timer));
  return id;
}

void EventLoop::cancel(TimerId id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return;
  lws_sul_cancel(&it->second->sul.sul);
  timers_.erase(it);
}

void EventLoop::fire_timer(lws_sorted_usec_list_t* sul) {
  auto* ts = reinterpret_cast<TimerSul*>(sul);
  EventLoop* loop = ts->loop;
  auto it = loop->timers_.find(ts->id);
  if (it == loop->timers_.end()) return;
  std::unique_ptr<Timer> timer = std::move(it->second);
  loop->timers_.erase(it);
  timer->fn();
}

void EventLoop::post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(posted_mutex_);
    posted_.push_back(std::move(fn));
  }
  lws_cancel_service(context_);
}

void EventLoop::run_posted() {
  std::deque<std::function<void()>> batch;
  {
    std::lock_guard<std::mutex> lock(posted_mutex_);
    batch.swap(posted_);
  }
  for (auto& fn : batch) fn();
}

void EventLoop::run() {
  while (!stop_.load()) {
    if (lws_service(context_, 0) < 0) break;
  }
  stop_.store(false);
}

void EventLoop::stop() {
  stop_.store(true);
  lws_cancel_service(context_);
}

int EventLoop::dispatch(lws* wsi, int reason, void* in, size_t len) {
  if (reason == LWS_CALLBACK_EVENT_WAIT_CANCELLED) {
    // Delivered once per vhost: draining an empty queue is harmless.
    run_posted();
    return 0;
  }
  auto* handler = static_cast<LwsHandler*>(lws_get_opaque_user_data(wsi));
  if (handler == nullptr) {
    // A raw file whose watch is gone: close it rather than spin on POLLIN.
    return reason == LWS_CALLBACK_RAW_RX_FILE ? -1 : 0;
  }
  return handler->on_lws_event(wsi, reason, in, len);
}

}  // namespace farmhand::agent
