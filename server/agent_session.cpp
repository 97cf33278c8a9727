// The /agent endpoint: enrollment, hello, and the batch that stores events
// and heartbeats in one transaction before acknowledging them.
#include <algorithm>

#include "common/log.h"
#include "server/auth.h"
#include "server/hub.h"

#ifndef FARMHAND_VERSION
#define FARMHAND_VERSION "0.0.0"
#endif

namespace farmhand::server {
namespace {

std::string encode_server(protocol::ServerFrame frame) { return protocol::encode(frame); }

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

}  // namespace

void Hub::agent_established(AgentSession* s) {
  agents_by_id_[s->id()] = s;
  s->last_rx_ms = now_ms();
  // Only the first frame is waited for: after `hello` the timer is cancelled.
  lws_set_timer_usecs(s->wsi(), static_cast<lws_usec_t>(config_.limits.hello_timeout_s) * LWS_US_PER_SEC);
}

void Hub::agent_hello_timeout(AgentSession* s) {
  if (s->authenticated || s->closing()) return;
  log::warning("closing the connection from ", s->peer(), ": no hello or enroll within ",
               config_.limits.hello_timeout_s, " s");
  s->close(LWS_CLOSE_STATUS_POLICY_VIOLATION, "hello timeout");
}

AgentSession* Hub::online_agent(const std::string& host) const {
  auto it = agents_by_host_.find(host);
  return it == agents_by_host_.end() ? nullptr : it->second;
}

void Hub::agent_message(AgentSession* s, std::string_view text) {
  s->last_rx_ms = now_ms();
  auto decoded = protocol::decode_agent_frame(text);
  if (auto* err = std::get_if<protocol::ProtocolError>(&decoded)) {
    s->refuse(err->code, err->message);
    return;
  }
  auto& frame = std::get<protocol::AgentFrame>(decoded);
  if (!s->authenticated) {
    if (auto* hello = std::get_if<protocol::Hello>(&frame)) return handle_hello(s, *hello);
    if (auto* enroll = std::get_if<protocol::Enroll>(&frame)) return handle_enroll(s, *enroll);
    s->refuse("not_allowed", "the first frame must be hello or enroll");
    return;
  }
  std::visit(Overloaded{
                 [&](protocol::Event& e) { handle_event(s, std::move(e)); },
                 [&](protocol::Heartbeat& hb) { handle_heartbeat(s, hb); },
                 [&](protocol::Inventory& inv) { handle_inventory(s, inv); },
                 [&](protocol::CommandResult& r) { handle_command_result(s, r); },
                 [&](protocol::Progress& p) { handle_progress(s, p); },
                 [&](protocol::Hello&) { s->refuse("not_allowed", "hello was already sent"); },
                 [&](protocol::Enroll&) { s->refuse("not_allowed", "enroll on an authenticated connection"); },
             },
             frame);
}

// Secrets are registered for redaction only once verified: a peer sending
// random values must not grow the redaction list (nothing here logs them).
void Hub::handle_enroll(AgentSession* s, const protocol::Enroll& enroll) {
  auto result = store_.enroll(enroll.token, now_ms());
  if (!result) {
    log::error("enrolling ", s->peer(), ": ", result.error().message());
    s->close(LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "server error");
    return;
  }
  if (!*result) {
    s->refuse("unauthorized", "the token is unknown, used, revoked or expired");
    return;
  }
  log::add_secret(enroll.token);
  log::add_secret((*result)->credential);
  log::notice("enrolled host \"", (*result)->host, "\" from ", s->peer());
  s->send_text(encode_server(protocol::Enrolled{(*result)->host, (*result)->credential}));
  s->close(LWS_CLOSE_STATUS_NORMAL, "enrolled");
  // A connected agent of that host used the old credential: the sweep ends it.
}

void Hub::handle_hello(AgentSession* s, const protocol::Hello& hello) {
  auto stored = store_.credential_hash(hello.host);
  std::string given = hash_secret(hello.credential);
  if (!stored) {
    log::error("checking the credential of \"", hello.host, "\": ", stored.error().message());
    s->close(LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "server error");
    return;
  }
  if (!*stored || !hashes_equal(given, **stored)) {
    s->refuse("unauthorized", "unknown host or wrong credential");
    return;
  }
  log::add_secret(hello.credential);
  // Staged events of an earlier connection of this host count as stored.
  if (!staged_events_.empty() || !staged_heartbeats_.empty()) commit_batch();
  auto acked = store_.acked_seq(hello.host);
  if (!acked) {
    log::error("reading the events of \"", hello.host, "\": ", acked.error().message());
    s->close(LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "server error");
    return;
  }
  if (AgentSession* old = online_agent(hello.host)) {
    old->refuse("replaced", "another connection authenticated as " + hello.host);
    agents_by_host_.erase(hello.host);
    old->authenticated = false;
  }
  lws_set_timer_usecs(s->wsi(), LWS_SET_TIMER_USEC_CANCEL);
  s->authenticated = true;
  s->host = hello.host;
  s->credential_hash = **stored;
  s->committed_seq = s->staged_seq = *acked;
  agents_by_host_[hello.host] = s;
  log::info("host \"", hello.host, "\" connected from ", s->peer(), " (acked seq ", *acked, ")");
  protocol::Welcome welcome;
  welcome.server_version = FARMHAND_VERSION;
  welcome.acked_seq = *acked;
  welcome.heartbeat_s = config_.heartbeat_s;
  s->send_text(encode_server(welcome));
  staged_hosts_[hello.host].last_seen = now_ms();
  schedule_batch();  // shows the host online once committed
}

void Hub::handle_event(AgentSession* s, protocol::Event&& event) {
  if (event.seq <= s->staged_seq) {
    // A resend after a lost ack: stored (or about to be); acknowledge again.
    mark_ack_pending(s);
    return;
  }
  if (event.seq != s->staged_seq + 1) {
    s->refuse("out_of_order", "expected seq " + std::to_string(s->staged_seq + 1) + " or lower, got " +
                                  std::to_string(event.seq));
    return;
  }
  s->staged_seq = event.seq;
  staged_events_.push_back(StagedEvent{s->id(), s->host, std::move(event)});
  mark_ack_pending(s);
}

void Hub::handle_heartbeat(AgentSession* s, const protocol::Heartbeat& hb) {
  staged_heartbeats_.push_back(StagedHeartbeat{s->host, hb, now_ms()});
  schedule_batch();
}

void Hub::handle_inventory(AgentSession* s, const protocol::Inventory& inv) {
  staged_hosts_[s->host].inventory = inv.body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  schedule_batch();
}

void Hub::handle_command_result(AgentSession* s, const protocol::CommandResult& r) {
  if (auto st = store_.finish_command(s->host, r, now_ms()); !st) {
    log::error("storing the result of command ", r.id, " on \"", s->host, "\": ", st.error().message());
  }
  nlohmann::json j = {{"type", "command_result"}, {"host", s->host}, {"id", r.id}, {"ok", r.ok},
                      {"message", r.message}};
  broadcast(make_frame(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
}

// A progress line goes to the dashboards as it is, never to disk. An agent
// that sends them faster than a person can read them has the extra ones
// dropped, so it cannot flood the dashboards.
void Hub::handle_progress(AgentSession* s, const protocol::Progress& p) {
  constexpr int64_t kProgressGapMs = 250;
  const int64_t now = now_ms();
  if (now - s->last_progress_ms < kProgressGapMs) return;
  s->last_progress_ms = now;
  nlohmann::json j = {{"type", "progress"}, {"host", s->host}, {"command", p.command},
                      {"container", p.container}, {"step", p.step}, {"text", p.text}};
  broadcast(make_frame(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
}

void Hub::agent_closed(AgentSession* s) {
  agents_by_id_.erase(s->id());
  if (!s->authenticated) return;
  auto it = agents_by_host_.find(s->host);
  if (it == agents_by_host_.end() || it->second != s) return;
  agents_by_host_.erase(it);
  log::info("host \"", s->host, "\" disconnected");
  staged_hosts_[s->host].last_seen = s->last_rx_ms;
  schedule_batch();
}

void Hub::mark_ack_pending(AgentSession* s) {
  if (!s->ack_pending) {
    s->ack_pending = true;
    ack_pending_.push_back(s->id());
  }
  schedule_batch();
}

void Hub::schedule_batch() {
  if (staged_events_.size() + staged_heartbeats_.size() >= kMaxStagedItems) {
    commit_batch();
    return;
  }
  if (batch_scheduled_) return;
  batch_scheduled_ = true;
  lws_sul_schedule(context_, 0, &batch_timer_.sul, &Hub::on_batch_timer, kBatchDelayUs);
}

void Hub::on_batch_timer(lws_sorted_usec_list_t* sul) {
  reinterpret_cast<HubTimer*>(sul)->hub->commit_batch();
}

void Hub::commit_batch() {
  if (batch_scheduled_) {
    lws_sul_cancel(&batch_timer_.sul);
    batch_scheduled_ = false;
  }
  const int64_t now = now_ms();
  std::vector<StoredEvent> stored;
  stored.reserve(staged_events_.size());
  Status st = {};
  if (!staged_events_.empty() || !staged_heartbeats_.empty() || !staged_hosts_.empty()) {
    st = store_.transaction([&]() -> Status {
      for (const auto& [host, h] : staged_hosts_) {
        if (h.inventory) {
          if (auto s = store_.set_inventory(host, *h.inventory); !s) return s;
        }
        if (h.last_seen) {
          if (auto s = store_.set_last_seen(host, *h.last_seen); !s) return s;
        }
      }
      for (auto& e : staged_events_) {
        auto id = store_.insert_event(e.host, e.event, now);
        if (!id) return id.error();
        if (*id != 0) stored.push_back(StoredEvent{*id, e.host, e.event});
      }
      for (const auto& hb : staged_heartbeats_) {
        if (auto s = store_.insert_heartbeat(hb.host, hb.heartbeat, hb.received); !s) return s;
      }
      return {};
    });
  }
  if (!st) {
    fail_batch(st.error());
    return;
  }
  // Acknowledge only what is on disk, then show it.
  for (uint64_t id : ack_pending_) {
    auto it = agents_by_id_.find(id);
    if (it == agents_by_id_.end()) continue;
    AgentSession* s = it->second;
    s->ack_pending = false;
    s->committed_seq = s->staged_seq;
    if (s->authenticated && !s->closing()) s->send_text(encode_server(protocol::Ack{s->committed_seq}));
  }
  ack_pending_.clear();
  if (!ui_clients_.empty()) {
    for (const auto& e : stored) {
      nlohmann::json j = event_json(e);
      j["type"] = "event";
      broadcast(make_frame(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
    }
    for (const auto& hb : staged_heartbeats_) {
      nlohmann::json j = {{"type", "heartbeat"}, {"host", hb.host}, {"heartbeat", protocol::to_json(hb.heartbeat)}};
      broadcast(make_frame(j.dump()));
    }
  }
  staged_events_.clear();
  staged_heartbeats_.clear();
  auto hosts = std::move(staged_hosts_);
  staged_hosts_.clear();
  for (const auto& [host, h] : hosts) broadcast_host(host);
}

void Hub::fail_batch(const Error& error) {
  // Nothing was stored: the agents whose frames were in the batch reconnect
  // and resend from their acked seq.
  log::error("storing ", staged_events_.size(), " events and ", staged_heartbeats_.size(),
             " heartbeats failed: ", error.message(), "; closing the agents concerned so they resend");
  std::vector<uint64_t> ids = ack_pending_;
  for (const auto& e : staged_events_) ids.push_back(e.connection_id);
  for (uint64_t id : ids) {
    auto it = agents_by_id_.find(id);
    if (it == agents_by_id_.end()) continue;
    it->second->ack_pending = false;
    it->second->close(LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "server error");
  }
  ack_pending_.clear();
  staged_events_.clear();
  staged_heartbeats_.clear();
  staged_hosts_.clear();  // agents send their inventory again when they reconnect
}

int agent_callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len) {
  auto* data = static_cast<WsSessionData*>(user);
  Hub* hub = hub_of(wsi);
  switch (reason) {
    case LWS_CALLBACK_ESTABLISHED: {
      auto* s = new AgentSession(wsi, hub->next_connection_id(), hub->config().limits, lws_now_usecs());
      data->connection = s;
      hub->agent_established(s);
      return 0;
    }
    case LWS_CALLBACK_RECEIVE: {
      if (data == nullptr || data->connection == nullptr) return -1;
      auto* s = static_cast<AgentSession*>(data->connection);
      if (auto msg = s->receive(in, len, lws_now_usecs())) {
        hub->agent_message(s, *msg);
        s->consumed();
      }
      return 0;
    }
    case LWS_CALLBACK_SERVER_WRITEABLE:
      if (data == nullptr || data->connection == nullptr) return -1;
      return data->connection->on_writeable();
    case LWS_CALLBACK_TIMER:
      if (data != nullptr && data->connection != nullptr) {
        hub->agent_hello_timeout(static_cast<AgentSession*>(data->connection));
      }
      return 0;
    case LWS_CALLBACK_CLOSED:
      if (data != nullptr && data->connection != nullptr) {
        auto* s = static_cast<AgentSession*>(data->connection);
        data->connection = nullptr;
        hub->agent_closed(s);
        delete s;
      }
      return 0;
    default:
      return 0;
  }
}

}  // namespace farmhand::server
