#include "agent/server_report.h"

#include <unistd.h>

#include <fstream>
#include <sstream>

#include "agent/credential.h"
#include "agent/report.h"
#include "common/log.h"

namespace farmhand::agent {

namespace {

constexpr std::chrono::milliseconds kInventoryDebounce{250};

// When process `pid` started, from its start time in clock ticks after boot.
std::optional<int64_t> process_start_ms(const HostRoot& root, pid_t pid) {
  std::ifstream stat_file(root.map("/proc/" + std::to_string(pid) + "/stat"));
  std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return std::nullopt;
  std::istringstream fields(stat.substr(paren + 2));
  std::string field;
  // After "pid (comm) ", starttime is the 20th field (state is the 1st).
  for (int i = 1; i <= 20 && fields >> field; ++i) {
  }
  long long ticks = 0;
  try {
    ticks = std::stoll(field);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  std::ifstream proc_stat(root.map("/proc/stat"));
  std::string key;
  long long btime = 0;
  while (proc_stat >> key) {
    if (key == "btime") {
      proc_stat >> btime;
      break;
    }
  }
  const long hz = ::sysconf(_SC_CLK_TCK);
  if (btime == 0 || hz <= 0) return std::nullopt;
  return btime * 1000 + ticks * 1000 / hz;
}

}  // namespace

ServerReport::ServerReport(EventLoop& loop, const Clock& clock, const Invocation& inv,
                           provisioner::AgentConfig config, SystemdControl* systemd, Hooks hooks)
    : loop_(loop),
      clock_(clock),
      inv_(inv),
      config_(std::move(config)),
      systemd_(systemd),
      hooks_(std::move(hooks)),
      locator_(HostRoot(inv.root), systemd) {}

ServerReport::~ServerReport() {
  if (inventory_timer_ != 0) loop_.cancel(inventory_timer_);
}

Result<std::unique_ptr<ServerReport>> ServerReport::create(EventLoop& loop, const Clock& clock, const Invocation& inv,
                                                           const provisioner::AgentConfig& config,
                                                           SystemdControl* systemd, Hooks hooks) {
  if (!config.server) return std::unique_ptr<ServerReport>();
  const HostRoot root(inv.root);
  auto credential = read_credential(root.map(config.server->credential_file).string());
  if (!credential) return credential.error();
  if (credential->server != config.server->url) {
    return fail(config.server->credential_file + " holds a credential for " + credential->server + ", not for " +
                config.server->url + "; run farmhand enroll --server " + config.server->url + " --token TOKEN");
  }
  if (!config.server->ca_file.empty() && ::access(root.map(config.server->ca_file).c_str(), R_OK) != 0) {
    return fail("cannot read the CA file " + config.server->ca_file + ": " + errno_text(errno));
  }
  // The outbox lives in state.db, which a first apply has not made yet.
  if (auto s = make_dirs(root.map(config.paths.state), 0700); !s) return s.error();
  auto outbox = SqliteOutbox::open(root.map(config.paths.state + "/state.db").string());
  if (!outbox) return outbox.error();
  std::unique_ptr<ServerReport> report(new ServerReport(loop, clock, inv, config, systemd, std::move(hooks)));
  report->outbox_ = std::move(*outbox);
  ServerReport* self = report.get();
  LinkOptions options;
  options.url = config.server->url;
  options.ca_file = config.server->ca_file.empty() ? "" : root.map(config.server->ca_file).string();
  options.host = credential->host;
  options.credential = credential->credential;
  options.version = FARMHAND_VERSION;
  LinkCallbacks callbacks;
  callbacks.inventory = [self] { return self->inventory(); };
  callbacks.heartbeat = [self] {
    auto hb = read_heartbeat(HostRoot(self->inv_.root), self->config_.paths.machines, self->clock_.wall_ms());
    if (hb) return *hb;
    log::warning("heartbeat: ", hb.error().message());
    protocol::Heartbeat empty;
    empty.time = self->clock_.wall_ms();
    return empty;
  };
  callbacks.on_command = [self](const protocol::Command& c) {
    if (self->hooks_.command) self->hooks_.command(c);
  };
  auto link = AgentLink::create(loop, *report->outbox_, std::move(options), std::move(callbacks));
  if (!link) return link.error();
  report->link_ = std::move(*link);
  report->link_->start();
  return report;
}

void ServerReport::emit(const std::string& kind, const std::optional<std::string>& container,
                        const std::optional<std::string>& device, const std::string& message) {
  protocol::Event e;
  e.time = clock_.wall_ms();
  e.kind = kind;
  e.container = container;
  e.device = device;
  e.message = message.size() > protocol::kMaxMessageBytes ? message.substr(0, protocol::kMaxMessageBytes) : message;
  if (auto seq = outbox_->append(std::move(e)); !seq) {
    log::error("outbox: ", seq.error().message(), "; the event \"", message, "\" is not reported");
    return;
  }
  link_->notify_appended();
}

void ServerReport::inventory_changed() {
  if (inventory_timer_ != 0) return;
  inventory_timer_ = loop_.after(kInventoryDebounce, [this] {
    inventory_timer_ = 0;
    link_->send_inventory();
  });
}

void ServerReport::container_started(const std::string& name) {
  if (auto leader = locator_.leader(name)) {
    if (auto t = process_start_ms(HostRoot(inv_.root), *leader)) started_ms_[name] = *t;
  }
  emit("container_started", name, std::nullopt, name + " started");
  inventory_changed();
}

void ServerReport::container_stopped(const std::string& name) {
  started_ms_.erase(name);
  emit("container_stopped", name, std::nullopt, name + " stopped");
  inventory_changed();
}

void ServerReport::set_health(std::map<std::string, provisioner::NetworkHealth> health) {
  for (const auto& [name, h] : health) {
    auto old = health_.find(name);
    if (old != health_.end() && old->second.healthy == h.healthy) continue;
    emit("network_changed", name, std::nullopt,
         name + ": network " + (h.healthy ? std::string("healthy") : "unhealthy: " + h.reason));
  }
  health_ = std::move(health);
  inventory_changed();
}

nlohmann::json ServerReport::inventory() {
  InventoryInput in;
  // The daemon's loop-side Provisioner, kept for the configuration in force:
  // no new one, and no new D-Bus connection, per inventory.
  if (provisioner::Provisioner* p = hooks_.containers ? hooks_.containers() : nullptr) {
    in.host = host_facts(HostRoot(inv_.root), p->network_choice());
    if (!config_commit_.empty()) in.host["config_commit"] = config_commit_;
    // What the dashboard may offer: starting and stopping containers needs
    // systemd (without it they run from `farmhand run`, in the foreground).
    in.host["actions"] = systemd_ != nullptr
                             ? nlohmann::json::array(
                                   {"apply", "reprovision", "detach", "rebuild", "start", "stop", "restart"})
                             : nlohmann::json::array({"apply", "reprovision", "detach", "rebuild"});
    if (auto rows = p->status(); rows) {
      in.containers = std::move(*rows);
    } else {
      log::warning("inventory: ", rows.error().message());
    }
  }
  in.running = [this](const std::string& name) { return locator_.leader(name).has_value(); };
  for (const auto& c : in.containers) {
    if (started_ms_.count(c.name)) continue;
    if (auto leader = locator_.leader(c.name)) {
      if (auto t = process_start_ms(HostRoot(inv_.root), *leader)) started_ms_[c.name] = *t;
    }
  }
  in.health = health_;
  in.started_ms = started_ms_;
  if (hooks_.leases) in.leases = hooks_.leases();
  return inventory_body(in, clock_.wall_ms());
}

void ServerReport::report_config_sync(const ConfigSync& synced) {
  if (synced.error) {
    // A refused commit is reported once, not at every fetch.
    if (*synced.error != last_config_error_) {
      emit(synced.refused ? "config_rejected" : "error", std::nullopt, std::nullopt, *synced.error);
    }
    last_config_error_ = *synced.error;
    return;
  }
  last_config_error_.clear();
  if (synced.changed) {
    emit("config_applied", std::nullopt, std::nullopt, synced.summary);
  }
  if (synced.commit != config_commit_) {
    config_commit_ = synced.commit;
    inventory_changed();
  }
}

void ServerReport::finish_command(const protocol::Command& c, Status result, const std::string& done) {
  protocol::CommandResult r;
  r.id = c.id;
  r.ok = result.ok();
  r.message = result ? done : result.error().message();
  if (result) {
    log::notice("server command ", c.id, ": ", r.message);
  } else {
    log::error("server command ", c.id, " failed: ", r.message);
  }
  emit(result ? "command" : "error", c.container, c.device,
       c.action + ": " + (result ? r.message : "failed: " + r.message));
  link_->send_command_result(std::move(r));
  inventory_changed();
}

void ServerReport::send_progress(protocol::Progress progress) {
  if (link_) link_->send_progress(std::move(progress));
}

}  // namespace farmhand::agent
