// The /ui endpoint: a snapshot on connect, then every change; commands from
// admins are forwarded to the agents.
#include "common/log.h"
#include "server/hub.h"

namespace farmhand::server {
namespace {
std::string dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

nlohmann::json parse_or_null(const std::optional<std::string>& text) {
  if (!text) return nullptr;
  auto j = nlohmann::json::parse(*text, nullptr, false);
  return j.is_discarded() ? nlohmann::json(nullptr) : j;
}
}  // namespace

nlohmann::json Hub::host_view(const HostRecord& h) {
  AgentSession* live = online_agent(h.name);
  nlohmann::json j = {{"name", h.name}, {"online", live != nullptr}};
  std::optional<int64_t> last_seen = live ? std::optional<int64_t>(live->last_rx_ms) : h.last_seen;
  j["last_seen"] = last_seen ? nlohmann::json(*last_seen) : nlohmann::json(nullptr);
  j["acked_seq"] = live ? std::max(live->committed_seq, h.acked_seq) : h.acked_seq;
  j["heartbeat"] = parse_or_null(h.heartbeat);
  j["inventory"] = parse_or_null(h.inventory);
  return j;
}

std::optional<nlohmann::json> Hub::host_json(const std::string& host) {
  auto h = store_.find_host(host);
  if (!h) {
    log::error("reading host \"", host, "\": ", h.error().message());
    return std::nullopt;
  }
  if (!*h) return std::nullopt;
  return host_view(**h);
}

Result<nlohmann::json> Hub::hosts_json() {
  auto hosts = store_.list_hosts();
  if (!hosts) return hosts.error();
  nlohmann::json out = nlohmann::json::array();
  for (const auto& h : *hosts) out.push_back(host_view(h));
  return out;
}

void Hub::broadcast(const Frame& frame) {
  for (auto& [id, c] : ui_clients_) {
    if (c->closing()) continue;
    if (c->queued_bytes() + frame->size() > kMaxUiQueueBytes) {
      log::warning("dropping the dashboard connection from ", c->peer(), ": it reads too slowly");
      c->drop(LWS_CLOSE_STATUS_POLICY_VIOLATION, "too slow");
      continue;
    }
    c->send(frame);
  }
}

void Hub::broadcast_host(const std::string& host) {
  if (ui_clients_.empty()) return;
  auto j = host_json(host);
  if (!j) {
    // Removed from the database (host remove): it can only be offline now.
    j = nlohmann::json{{"name", host}, {"online", false}, {"last_seen", nullptr}, {"acked_seq", 0},
                       {"heartbeat", nullptr}, {"inventory", nullptr}};
  }
  broadcast(make_frame(dump({{"type", "host"}, {"host", *j}})));
}

void Hub::ui_established(UiClient* c) {
  ui_clients_[c->id()] = c;
  auto hosts = hosts_json();
  if (!hosts) {
    log::error("building the snapshot for ", c->peer(), ": ", hosts.error().message());
    c->close(LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "server error");
    return;
  }
  c->send_text(dump({{"type", "snapshot"}, {"role", role_name(c->user.role)}, {"hosts", std::move(*hosts)}}));
}

void Hub::ui_closed(UiClient* c) { ui_clients_.erase(c->id()); }

void Hub::ui_message(UiClient* c, std::string_view text) {
  auto decoded = protocol::decode_ui_command(text);
  if (auto* err = std::get_if<protocol::ProtocolError>(&decoded)) {
    c->refuse(err->code, err->message);
    return;
  }
  handle_ui_command(c, std::get<protocol::Command>(decoded));
}

void Hub::handle_ui_command(UiClient* c, const protocol::Command& command) {
  // Refusals that leave the connection open: the dashboard shows them.
  auto not_allowed = [&](const std::string& message) {
    c->send_text(error_frame_text("not_allowed", message));
  };
  if (c->user.role != Role::kAdmin) return not_allowed("only an admin may send commands");
  auto known = store_.find_host(command.host);
  if (!known) {
    log::error("reading host \"", command.host, "\": ", known.error().message());
    return not_allowed("the server could not read its database");
  }
  if (!*known) {
    c->refuse("bad_frame", "/host: unknown host \"" + command.host.substr(0, 64) + "\"");
    return;
  }
  AgentSession* agent = online_agent(command.host);
  if (agent == nullptr || agent->closing()) return not_allowed(command.host + " is offline");
  auto id = store_.create_command(command.host, command, c->user.name, now_ms());
  if (!id) {
    log::error("storing a command for \"", command.host, "\": ", id.error().message());
    return not_allowed("the server could not store the command");
  }
  protocol::Command forwarded = command;
  forwarded.id = *id;
  forwarded.host.clear();
  agent->send_text(protocol::encode(protocol::ServerFrame{forwarded}));
  log::notice("user \"", c->user.name, "\" sent ", command.action, " (", *id, ") to \"", command.host, "\"");
  c->send_text(dump({{"type", "command_sent"}, {"host", command.host}, {"id", *id}}));
}

int ui_callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len) {
  auto* data = static_cast<WsSessionData*>(user);
  Hub* hub = hub_of(wsi);
  switch (reason) {
    case LWS_CALLBACK_ESTABLISHED: {
      std::string session_id;
      auto who = hub->session_from_cookie(wsi, &session_id);
      if (!who) return -1;  // checked at the upgrade already; it just ended
      auto* c = new UiClient(wsi, hub->next_connection_id(), hub->config().limits, lws_now_usecs());
      c->user = *who;
      c->session_id = std::move(session_id);
      data->connection = c;
      hub->ui_established(c);
      return 0;
    }
    case LWS_CALLBACK_RECEIVE: {
      if (data == nullptr || data->connection == nullptr) return -1;
      auto* c = static_cast<UiClient*>(data->connection);
      if (auto msg = c->receive(in, len, lws_now_usecs())) {
        hub->ui_message(c, *msg);
        c->consumed();
      }
      return 0;
    }
    case LWS_CALLBACK_SERVER_WRITEABLE:
      if (data == nullptr || data->connection == nullptr) return -1;
      return data->connection->on_writeable();
    case LWS_CALLBACK_CLOSED:
      if (data != nullptr && data->connection != nullptr) {
        auto* c = static_cast<UiClient*>(data->connection);
        data->connection = nullptr;
        hub->ui_closed(c);
        delete c;
      }
      return 0;
    default:
      return 0;
  }
}

}  // namespace farmhand::server
