// The server's commands, as the daemon carries them out: a detach on the
// loop (the device side lives there), the rest on the worker with the
// daemon's one Provisioner; the answer goes back through the ServerReport.
#include <optional>
#include <string>

#include "agent/daemon/daemon.h"
#include "agent/wiring.h"
#include "common/log.h"

namespace farmhand::agent {

namespace {

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

bool changes_config(const protocol::Command& c) {
  return c.action == "apply" || c.action == "reprovision" || c.action == "rebuild";
}

}  // namespace

void Daemon::on_command(const protocol::Command& c) {
  const std::string what = c.action + (c.container ? " " + *c.container : "") + (c.device ? " " + *c.device : "");
  log::notice("server command ", c.id, ": ", what);
  if (!report_) return;
  if (c.action == "detach") {
    auto done = detach_device(*c.device);
    report_->finish_command(c, done ? Status{} : Status(done.error()), done ? *done : "");
    report_->inventory_changed();
    return;
  }
  // As the report has it: the configuration of the last reconcile or
  // command (an apply loads it afresh on the worker).
  worker_->enqueue([this, c, generation = report_generation_, config = report_->config()] {
    run_command(c, config, generation);
  });
}

provisioner::Provisioner* Daemon::provision(provisioner::AgentConfig config, std::string* error) {
  if (!worker_connected_ && deps_.connect_worker) {
    auto sd = deps_.connect_worker();
    if (!sd) {
      *error = sd.error().message();
      return nullptr;
    }
    worker_systemd_ = std::move(*sd);
  }
  worker_connected_ = true;
  provisioner_.reset();
  provisioner_ = wire_over(deps_.inv, std::move(config), *deps_.runner, worker_systemd_.get());
  return provisioner_.get();
}

// Worker thread.
void Daemon::run_command(const protocol::Command& c, provisioner::AgentConfig config, uint64_t generation) {
  Status result;
  std::string done;
  // An apply follows the config repository: fetched first, so the server
  // can roll a reviewed change out now rather than at the next timer.
  std::optional<ConfigSync> synced;
  if (changes_config(c)) {
    synced = sync_config(deps_.inv);
    if (!synced->configured) {
      synced.reset();
    } else if (auto fresh = deps_.load_config(nullptr)) {
      config = std::move(*fresh);
    }
  }
  std::string error;
  provisioner::Provisioner* p = provision(std::move(config), &error);
  if (p == nullptr) {
    result = Error(error);
  } else if (c.action == "start" || c.action == "stop" || c.action == "restart") {
    const auto action = c.action == "start"  ? provisioner::UnitAction::kStart
                        : c.action == "stop" ? provisioner::UnitAction::kStop
                                             : provisioner::UnitAction::kRestart;
    result = p->control(*c.container, action);
    done = *c.container + (c.action == "stop" ? " stopped" : c.action == "start" ? " started" : " restarted");
  } else {
    QuietProgress progress;
    progress.on_progress = [this, generation, id = c.id](const std::string& container, const std::string& step,
                                                         const std::string& text) {
      loop_.post([this, generation, p = protocol::Progress{id, container, step, text}]() mutable {
        if (report_ && report_generation_ == generation) report_->send_progress(std::move(p));
      });
    };
    std::string rebuilt;
    if (c.action == "reprovision") {
      result = p->destroy(*c.container, progress);
    } else if (c.action == "rebuild") {
      auto marked = p->request_rebuild(*c.container, c.step.value_or(""), c.clean);
      if (!marked) {
        result = marked.error();
      } else {
        for (const auto& s : *marked) rebuilt += (rebuilt.empty() ? "" : ", ") + s;
      }
    }
    if (result) {
      auto outcome = p->apply(progress);
      if (!outcome) {
        result = outcome.error();
      } else if (!outcome->result) {
        result = Error(outcome->result.error().message() +
                       (progress.failures.empty() ? "" : " (" + progress.failures + ")"));
      } else {
        size_t changed = 0;
        for (const auto& ch : outcome->plan.changes) changed += ch.action != provisioner::Action::kUnchanged;
        done = c.action == "reprovision" ? *c.container + " reprovisioned"
               : c.action == "rebuild"
                   ? *c.container + " rebuilt: " + rebuilt + (c.clean ? " (sources cleaned)" : "")
                   : "applied: " + std::to_string(changed) + " container(s) changed";
      }
    }
  }
  loop_.post([this, generation, c, result, done, synced] {
    // A reload may have replaced the report the command came from.
    if (!report_ || report_generation_ != generation) return;
    if (synced) report_->report_config_sync(*synced);
    report_->finish_command(c, result, done);
    // The command changed the configuration's world: what depends on it
    // follows the configuration now in force.
    if (changes_config(c)) {
      if (auto in_force = deps_.load_config(nullptr)) follow_config(*in_force);
    }
  });
}

}  // namespace farmhand::agent
