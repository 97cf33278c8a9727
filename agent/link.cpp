#include "agent/link.h"

#include <algorithm>
#include <variant>

#include "common/clock.h"
#include "common/log.h"

namespace farmhand::agent {

namespace {

// Events read from the outbox at a time: small, so thousands of links in one
// process stay small too.
constexpr size_t kBatch = 32;

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

std::string seconds_text(std::chrono::milliseconds delay) {
  if (delay.count() == 0) return "retrying now";
  return "retrying in " + std::to_string((delay.count() + 999) / 1000) + " s";
}

}  // namespace

Result<std::unique_ptr<AgentLink>> AgentLink::create(EventLoop& loop, Outbox& outbox, LinkOptions options,
                                                     LinkCallbacks callbacks) {
  auto url = parse_server_url(options.url);
  if (!url) return url.error();
  if (options.host.empty()) return fail("no host name to connect as");
  if (options.credential.empty()) return fail("no credential to connect with");
  if (options.window == 0) options.window = 1;
  log::add_secret(options.credential);
  return std::unique_ptr<AgentLink>(
      new AgentLink(loop, outbox, std::move(options), std::move(callbacks), std::move(url).value()));
}

AgentLink::AgentLink(EventLoop& loop, Outbox& outbox, LinkOptions options, LinkCallbacks callbacks, ServerUrl url)
    : loop_(loop),
      outbox_(outbox),
      options_(std::move(options)),
      callbacks_(std::move(callbacks)),
      url_(std::move(url)),
      ws_(loop, WsClient::Handlers{
                    [this] { on_open(); },
                    [this](std::string_view text) { on_message(text); },
                    [this](const std::string& reason) { on_closed(reason); },
                    [this] { return next_frame(); },
                }),
      backoff_(options_.backoff_initial, options_.backoff_cap,
               options_.random ? options_.random : Backoff::system_random()) {}

AgentLink::~AgentLink() {
  cancel_timers();
  if (retry_timer_ != 0) loop_.cancel(retry_timer_);
}

void AgentLink::start() {
  if (state_ == State::kIdle) connect_now();
}

void AgentLink::notify_appended() {
  if (state_ == State::kWelcomed) ws_.want_write();
}

void AgentLink::send_inventory() {
  if (state_ != State::kWelcomed || !callbacks_.inventory) return;
  inventory_due_ = true;
  ws_.want_write();
}

void AgentLink::send_command_result(protocol::CommandResult result) {
  results_.push_back(std::move(result));
  if (state_ == State::kWelcomed) ws_.want_write();
}

void AgentLink::send_progress(protocol::Progress progress) {
  if (state_ != State::kWelcomed) return;
  progress_ = std::move(progress);
  ws_.want_write();
}

void AgentLink::cancel_timers() {
  if (connect_timer_ != 0) loop_.cancel(connect_timer_);
  if (heartbeat_timer_ != 0) loop_.cancel(heartbeat_timer_);
  connect_timer_ = heartbeat_timer_ = 0;
}

void AgentLink::log_state(const std::string& line, bool important) {
  if (important && !options_.quiet) {
    log::notice(line);
  } else {
    log::debug(line);
  }
}

void AgentLink::connect_now() {
  retry_timer_ = 0;
  state_ = State::kConnecting;
  server_error_.reset();
  hello_due_ = true;
  inventory_due_ = heartbeat_due_ = false;
  batch_.clear();
  WsOptions ws_options;
  ws_options.subprotocol = protocol::kAgentSubprotocol;
  ws_options.ca_file = options_.ca_file;
  ws_options.ping_after_s = options_.ping_after_s;
  ws_options.hangup_after_s = options_.hangup_after_s;
  if (auto s = ws_.connect(url_, ws_options); !s) {
    on_closed(s.error().message());
    return;
  }
  connect_timer_ = loop_.after(options_.connect_timeout, [this] {
    connect_timer_ = 0;
    auto ms = options_.connect_timeout.count();
    ws_.close("no welcome within " + (ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : std::to_string(ms) + " ms"));
  });
}

void AgentLink::on_open() {
  state_ = State::kAwaitingWelcome;
  opened_at_ = monotonic_now();
}

void AgentLink::on_closed(const std::string& reason) {
  bool was_welcomed = state_ == State::kWelcomed;
  bool was_open = was_welcomed || state_ == State::kAwaitingWelcome;
  cancel_timers();
  state_ = State::kWaitingRetry;
  ++counters_.disconnects;
  batch_.clear();
  hello_due_ = inventory_due_ = heartbeat_due_ = false;
  if (was_open && monotonic_now() - opened_at_ >= options_.stable_after) backoff_.reset();

  bool unauthorized = server_error_ && server_error_->code == "unauthorized";
  std::chrono::milliseconds delay = unauthorized ? backoff_.cap() : backoff_.next();
  std::string why = reason;
  if (server_error_) why = "the server refused: " + server_error_->code + ": " + server_error_->message;

  if (unauthorized) {
    // Only the admin can fix this: say it once per change, not every minute.
    bool changed = server_error_->message != last_unauthorized_;
    last_unauthorized_ = server_error_->message;
    std::string line = "server refused the credential (" + server_error_->message + "), " + seconds_text(delay);
    if (changed && !options_.quiet) {
      log::warning(line);
    } else {
      log::debug(line);
    }
  } else if (was_welcomed) {
    log_state("disconnected from " + url_.text + ": " + why + ", " + seconds_text(delay), true);
  } else {
    // A server that stays down is reported once, not at every retry.
    std::string line = "cannot connect to " + url_.text + ": " + why + ", " + seconds_text(delay);
    if (why != last_reason_ && !options_.quiet) {
      log::warning(line);
    } else {
      log::debug(line);
    }
  }
  last_reason_ = why;
  retry_timer_ = loop_.after(delay, [this] { connect_now(); });
}

void AgentLink::on_message(std::string_view text) {
  auto decoded = protocol::decode_server_frame(text);
  if (auto* err = std::get_if<protocol::ProtocolError>(&decoded)) {
    ws_.close("bad frame from the server: " + err->code + ": " + err->message);
    return;
  }
  bool welcomed = state_ == State::kWelcomed;
  std::visit(Overloaded{
                 [&](const protocol::Welcome& w) {
                   if (state_ != State::kAwaitingWelcome) return ws_.close("unexpected welcome");
                   on_welcome(w);
                 },
                 [&](const protocol::Ack& a) {
                   if (!welcomed) return ws_.close("ack before welcome");
                   on_ack(a.seq);
                 },
                 [&](const protocol::Command& c) {
                   if (!welcomed) return ws_.close("command before welcome");
                   ++counters_.commands;
                   if (callbacks_.on_command) {
                     callbacks_.on_command(c);
                   } else {
                     send_command_result({c.id, false, "this agent does not run commands"});
                   }
                 },
                 [&](const protocol::ErrorFrame& e) {
                   ++counters_.server_errors;
                   server_error_ = e.error;
                   ws_.close("the server refused: " + e.error.code + ": " + e.error.message);
                 },
                 [&](const protocol::Enrolled&) { ws_.close("unexpected enrolled frame"); },
             },
             std::get<protocol::ServerFrame>(decoded));
}

void AgentLink::on_welcome(const protocol::Welcome& welcome) {
  if (connect_timer_ != 0) loop_.cancel(connect_timer_);
  connect_timer_ = 0;
  if (auto s = outbox_.reconcile(welcome.acked_seq); !s) {
    ws_.close(s.error().message());
    return;
  }
  state_ = State::kWelcomed;
  ++counters_.connects;
  backoff_.reset();
  last_unauthorized_.clear();
  last_reason_.clear();
  acked_seq_ = welcome.acked_seq;
  sent_seq_ = welcome.acked_seq;
  batch_.clear();
  inventory_due_ = static_cast<bool>(callbacks_.inventory);
  // One heartbeat at once, so the server shows the host's load from the start.
  heartbeat_due_ = static_cast<bool>(callbacks_.heartbeat);
  heartbeat_s_ = welcome.heartbeat_s;
  schedule_heartbeat();
  auto waiting = outbox_.size();
  log_state("connected to " + url_.text + " as " + options_.host + " (server " + welcome.server_version +
                ", acked_seq " + std::to_string(welcome.acked_seq) + ", " +
                (waiting ? std::to_string(*waiting) : std::string("?")) + " events to send)",
            true);
  ws_.want_write();
}

void AgentLink::on_ack(uint64_t seq) {
  ++counters_.acks;
  if (seq <= acked_seq_) return;
  acked_seq_ = seq;
  if (seq > sent_seq_) sent_seq_ = seq;
  while (!batch_.empty() && batch_.front().seq <= seq) batch_.pop_front();
  if (auto s = outbox_.acknowledge(seq); !s) {
    // They stay in the outbox; the next welcome forgets them again.
    log::warning("cannot remove acknowledged events from the outbox: ", s.error().message());
  }
  ws_.want_write();
}

void AgentLink::schedule_heartbeat() {
  if (!callbacks_.heartbeat || heartbeat_s_ == 0 || state_ != State::kWelcomed) return;
  heartbeat_timer_ = loop_.after(std::chrono::seconds(heartbeat_s_), [this] {
    heartbeat_timer_ = 0;
    heartbeat_due_ = true;
    ws_.want_write();
    schedule_heartbeat();
  });
}

std::optional<std::string> AgentLink::next_frame() {
  if (state_ == State::kAwaitingWelcome || state_ == State::kConnecting) {
    if (!hello_due_) return std::nullopt;
    hello_due_ = false;
    protocol::Hello hello{options_.host, options_.credential, options_.version, {"events"}};
    if (callbacks_.heartbeat) hello.capabilities.push_back("heartbeat");
    if (callbacks_.on_command) hello.capabilities.push_back("commands");
    return protocol::encode(protocol::AgentFrame(std::move(hello)));
  }
  if (state_ != State::kWelcomed) return std::nullopt;
  if (inventory_due_) {
    inventory_due_ = false;
    ++counters_.inventories_sent;
    return protocol::encode(protocol::AgentFrame(protocol::Inventory{callbacks_.inventory()}));
  }
  if (heartbeat_due_) {
    heartbeat_due_ = false;
    ++counters_.heartbeats_sent;
    return protocol::encode(protocol::AgentFrame(callbacks_.heartbeat()));
  }
  if (progress_) {
    protocol::Progress p = std::move(*progress_);
    progress_.reset();
    return protocol::encode(protocol::AgentFrame(std::move(p)));
  }
  if (!results_.empty()) {
    protocol::CommandResult r = std::move(results_.front());
    results_.pop_front();
    return protocol::encode(protocol::AgentFrame(std::move(r)));
  }
  return next_event_frame();
}

std::optional<std::string> AgentLink::next_event_frame() {
  uint64_t in_flight = sent_seq_ - acked_seq_;
  if (in_flight >= options_.window) return std::nullopt;
  if (batch_.empty()) {
    size_t limit = std::min<uint64_t>(kBatch, options_.window - in_flight);
    auto pending = outbox_.pending(sent_seq_, limit);
    if (!pending) {
      ws_.close(pending.error().message());
      return std::nullopt;
    }
    batch_.assign(std::make_move_iterator(pending->begin()), std::make_move_iterator(pending->end()));
  }
  if (batch_.empty()) return std::nullopt;
  protocol::Event e = std::move(batch_.front());
  batch_.pop_front();
  sent_seq_ = e.seq;
  ++counters_.events_sent;
  return protocol::encode(protocol::AgentFrame(std::move(e)));
}

}  // namespace farmhand::agent
