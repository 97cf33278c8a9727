#include "agent/server_report.h"

#include <unistd.h>

#include <fstream>
#include <sstream>

#include "agent/credential.h"
#include "agent/progress.h"
#include "agent/report.h"
#include "agent/wiring.h"
#include "common/log.h"

namespace farmhand::agent {

namespace {

constexpr std::chrono::milliseconds kInventoryDebounce{250};

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

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

// Collects an apply's failures for a command's answer, and passes where it
// is (a step starting, a heartbeat) to `on_progress`; prints nothing.
class QuietProgress final : public provisioner::ApplyReporter {
 public:
  void step_started(const std::string& container, const std::string& step) override {
    step_ = step;
    if (on_progress) on_progress(container, step, "");
  }
  void step_output(const std::string&, std::string_view) override {}
  void step_heartbeat(const std::string& container, std::string_view text) override {
    if (on_progress) on_progress(container, step_, std::string(text));
  }
  std::function<void(const std::string& container, const std::string& step, const std::string& text)> on_progress;
  void step_finished(const std::string& container, const std::string& step, std::chrono::milliseconds,
                     const Status& result) override {
    if (!result) failures += container + ": " + step + ": " + result.error().message() + "; ";
  }
  std::string failures;

 private:
  std::string step_;
};

}  // namespace

Worker::Worker() {
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      cv_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
      if (stop_) return;
      auto job = std::move(jobs_.front());
      jobs_.pop_front();
      running_ = true;
      lock.unlock();
      job();
      lock.lock();
      running_ = false;
    }
  });
}

Worker::~Worker() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    jobs_.clear();
  }
  cv_.notify_all();
  thread_.join();
}

void Worker::enqueue(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_all();
}

bool Worker::busy() {
  std::lock_guard<std::mutex> lock(mutex_);
  return running_ || !jobs_.empty();
}

ServerReport::ServerReport(EventLoop& loop, Worker& worker, const Invocation& inv, provisioner::AgentConfig config,
                           SystemdControl* systemd, Hooks hooks)
    : loop_(loop),
      worker_(worker),
      inv_(inv),
      config_(std::move(config)),
      systemd_(systemd),
      hooks_(std::move(hooks)),
      locator_(HostRoot(inv.root), systemd) {}

ServerReport::~ServerReport() {
  *alive_ = false;
  if (inventory_timer_ != 0) loop_.cancel(inventory_timer_);
}

Result<std::unique_ptr<ServerReport>> ServerReport::create(EventLoop& loop, Worker& worker, const Invocation& inv,
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
  std::unique_ptr<ServerReport> report(new ServerReport(loop, worker, inv, config, systemd, std::move(hooks)));
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
    auto hb = read_heartbeat(HostRoot(self->inv_.root), self->config_.paths.machines, wall_ms());
    if (hb) return *hb;
    log::warning("heartbeat: ", hb.error().message());
    protocol::Heartbeat empty;
    empty.time = wall_ms();
    return empty;
  };
  callbacks.on_command = [self](const protocol::Command& c) { self->run_command(c); };
  auto link = AgentLink::create(loop, *report->outbox_, std::move(options), std::move(callbacks));
  if (!link) return link.error();
  report->link_ = std::move(*link);
  report->link_->start();
  return report;
}

void ServerReport::emit(const std::string& kind, const std::optional<std::string>& container,
                        const std::optional<std::string>& device, const std::string& message) {
  protocol::Event e;
  e.time = wall_ms();
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
  auto wired = wire(inv_, config_);
  if (wired) {
    in.host = host_facts(HostRoot(inv_.root), (*wired)->provisioner->network_choice());
    if (!config_commit_.empty()) in.host["config_commit"] = config_commit_;
    // What the dashboard may offer: starting and stopping containers needs
    // systemd (without it they run from `farmhand run`, in the foreground).
    in.host["actions"] = (*wired)->systemd != nullptr
                             ? nlohmann::json::array(
                                   {"apply", "reprovision", "detach", "rebuild", "start", "stop", "restart"})
                             : nlohmann::json::array({"apply", "reprovision", "detach", "rebuild"});
    if (auto rows = (*wired)->provisioner->status(); rows) {
      in.containers = std::move(*rows);
    } else {
      log::warning("inventory: ", rows.error().message());
    }
  } else {
    log::warning("inventory: ", wired.error().message());
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
  return inventory_body(in, wall_ms());
}

void ServerReport::run_command(const protocol::Command& c) {
  const std::string what = c.action + (c.container ? " " + *c.container : "") + (c.device ? " " + *c.device : "");
  log::notice("server command ", c.id, ": ", what);
  if (c.action == "detach") {
    if (!hooks_.detach) {
      finish_command(c, fail("devices are not watched on this host"), "");
      return;
    }
    auto done = hooks_.detach(*c.device);
    finish_command(c, done ? Status{} : Status(done.error()), done ? *done : "");
    inventory_changed();
    return;
  }
  const Invocation inv = inv_;
  const provisioner::AgentConfig config = config_;
  EventLoop& loop = loop_;
  worker_.enqueue([this, &loop, alive = alive_, c, inv, config] {
    Status result;
    std::string done;
    // An apply follows the config repository: fetched first, so the server
    // can roll a reviewed change out now rather than at the next timer.
    std::optional<ConfigSync> synced;
    provisioner::AgentConfig effective = config;
    if (c.action == "apply" || c.action == "reprovision" || c.action == "rebuild") {
      synced = sync_config(inv);
      if (!synced->configured) {
        synced.reset();
      } else if (auto fresh = load_config(inv)) {
        effective = std::move(*fresh);
      }
    }
    auto wired = wire(inv, effective);
    if (!wired) {
      result = wired.error();
    } else if (c.action == "start" || c.action == "stop" || c.action == "restart") {
      const auto action = c.action == "start"  ? provisioner::UnitAction::kStart
                          : c.action == "stop" ? provisioner::UnitAction::kStop
                                               : provisioner::UnitAction::kRestart;
      result = (*wired)->provisioner->control(*c.container, action);
      done = *c.container + (c.action == "stop" ? " stopped" : c.action == "start" ? " started" : " restarted");
    } else {
      QuietProgress progress;
      progress.on_progress = [this, &loop, alive, id = c.id](const std::string& container, const std::string& step,
                                                            const std::string& text) {
        loop.post([this, alive, p = protocol::Progress{id, container, step, text}]() mutable {
          if (*alive && link_) link_->send_progress(std::move(p));
        });
      };
      std::string rebuilt;
      if (c.action == "reprovision") {
        result = (*wired)->provisioner->destroy(*c.container, progress);
      } else if (c.action == "rebuild") {
        auto marked = (*wired)->provisioner->request_rebuild(*c.container, c.step.value_or(""), c.clean);
        if (!marked) {
          result = marked.error();
        } else {
          for (const auto& s : *marked) rebuilt += (rebuilt.empty() ? "" : ", ") + s;
        }
      }
      if (result) {
        auto outcome = (*wired)->provisioner->apply(progress);
        if (!outcome) {
          result = outcome.error();
        } else if (!outcome->result) {
          result = Error(outcome->result.error().message() + (progress.failures.empty() ? "" : " (" + progress.failures + ")"));
        } else {
          size_t changed = 0;
          for (const auto& ch : outcome->plan.changes) changed += ch.action != provisioner::Action::kUnchanged;
          done = c.action == "reprovision" ? *c.container + " reprovisioned"
                 : c.action == "rebuild"   ? *c.container + " rebuilt: " + rebuilt + (c.clean ? " (sources cleaned)" : "")
                                           : "applied: " + std::to_string(changed) + " container(s) changed";
        }
      }
    }
    loop.post([this, alive, c, result, done, synced] {
      if (!*alive) return;
      if (synced) report_config_sync(*synced);
      finish_command(c, result, done);
    });
  });
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
  if ((c.action == "apply" || c.action == "reprovision" || c.action == "rebuild") && hooks_.reconciled) {
    hooks_.reconciled();
  }
  inventory_changed();
}

}  // namespace farmhand::agent
