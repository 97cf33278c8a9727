#include "server/hub.h"

#include <algorithm>
#include <cstring>

#include "common/log.h"

namespace farmhand::server {

Hub* hub_of(lws* wsi) { return static_cast<Hub*>(lws_context_user(lws_get_context(wsi))); }

Hub::Hub(ServerConfig config, Store store, std::function<int64_t()> now_ms)
    : config_(std::move(config)), store_(std::move(store)), now_ms_(std::move(now_ms)) {
  batch_timer_.hub = this;
  sweep_timer_.hub = this;
  write_buffer_.resize(LWS_PRE + (32u << 10));
}

Hub::~Hub() = default;

void Hub::start_timers() {
  lws_sul_schedule(context_, 0, &sweep_timer_.sul, &Hub::on_sweep_timer, kSweepIntervalUs);
  prune_history();
}

void Hub::on_sweep_timer(lws_sorted_usec_list_t* sul) {
  Hub* hub = reinterpret_cast<HubTimer*>(sul)->hub;
  hub->sweep();
  if (!hub->stopping_) lws_sul_schedule(hub->context_, 0, sul, &Hub::on_sweep_timer, kSweepIntervalUs);
}

std::optional<UserInfo> Hub::session_from_cookie(lws* wsi, std::string* session_id) {
  int total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_COOKIE);
  if (total <= 0 || total > 8192) return std::nullopt;
  std::string header(static_cast<size_t>(total) + 1, '\0');
  if (lws_hdr_copy(wsi, header.data(), total + 1, WSI_TOKEN_HTTP_COOKIE) < 0) return std::nullopt;
  header.resize(std::strlen(header.c_str()));
  std::string_view rest(header);
  while (!rest.empty()) {
    size_t end = rest.find(';');
    std::string_view item = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    if (item.substr(0, 11) != "fh_session=") continue;
    std::string id(item.substr(11));
    auto user = store_.session_user(id, now_ms());
    if (!user) {
      log::error("checking a session: ", user.error().message());
      return std::nullopt;
    }
    if (*user) {
      log::add_secret(id);  // only a valid session: random cookies must not grow the list
      if (session_id) *session_id = id;
      return **user;
    }
  }
  return std::nullopt;
}

bool Hub::allow_password_check() {
  constexpr double kLoginsPerSecond = 4;
  constexpr double kLoginBurst = 8;
  const int64_t now = now_ms();
  if (login_refill_ms_ == 0) login_tokens_ = kLoginBurst;
  login_tokens_ = std::min(kLoginBurst, login_tokens_ + static_cast<double>(now - login_refill_ms_) / 1000.0 *
                                                            kLoginsPerSecond);
  login_refill_ms_ = now;
  if (login_tokens_ < 1) return false;
  login_tokens_ -= 1;
  return true;
}

void Hub::sweep() {
  if (!agents_by_host_.empty()) {
    auto hashes = store_.credential_hashes();
    if (!hashes) {
      log::error("re-checking host credentials: ", hashes.error().message(), "; retrying in 2 s");
    } else {
      for (auto& [host, s] : agents_by_host_) {
        if (s->closing()) continue;
        auto it = hashes->find(host);
        if (it == hashes->end()) {
          s->refuse("unauthorized", "the host " + host + " was removed");
        } else if (it->second != s->credential_hash) {
          s->refuse("unauthorized", "the credential of " + host + " was replaced");
        }
      }
    }
  }
  // An agent sends a heartbeat every heartbeat_s: one silent for three of
  // them (and at least 30 s) is gone without a close.
  const int64_t now = now_ms();
  const int64_t idle_ms = std::max<int64_t>(30000, 3000LL * config_.heartbeat_s);
  for (auto& [id, s] : agents_by_id_) {
    if (s->authenticated && !s->closing() && now - s->last_rx_ms > idle_ms) {
      log::warning("closing the connection of \"", s->host, "\" from ", s->peer(), ": nothing received for ",
                   (now - s->last_rx_ms) / 1000, " s");
      s->close(LWS_CLOSE_STATUS_GOINGAWAY, "idle");
    }
  }
  for (auto& [id, c] : ui_clients_) {
    if (c->closing()) continue;
    auto user = store_.session_user(c->session_id, now);
    if (user && !*user) c->refuse("unauthorized", "the session ended");
  }
  if (now - last_prune_ms_ > 3600 * 1000) prune_history();
}

void Hub::prune_history() {
  last_prune_ms_ = now_ms();
  int64_t cutoff = last_prune_ms_ - static_cast<int64_t>(config_.heartbeat_history_days) * 86400 * 1000;
  auto removed = store_.prune_heartbeats(cutoff);
  if (!removed) {
    log::warning("pruning the heartbeat history: ", removed.error().message(), "; retrying in an hour");
  } else if (*removed > 0) {
    log::info("pruned ", *removed, " heartbeats older than ", config_.heartbeat_history_days, " days");
  }
}

void Hub::begin_stop() {
  if (stopping_) return;
  stopping_ = true;
  commit_batch();
  lws_sul_cancel(&sweep_timer_.sul);
  for (auto& [id, s] : agents_by_id_) s->close(LWS_CLOSE_STATUS_GOINGAWAY, "server stopping");
  for (auto& [id, c] : ui_clients_) c->close(LWS_CLOSE_STATUS_GOINGAWAY, "server stopping");
}

}  // namespace farmhand::server
