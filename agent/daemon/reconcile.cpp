#include "agent/daemon/reconcile.h"

#include <chrono>
#include <cstdio>

#include "agent/progress.h"
#include "common/log.h"

namespace farmhand::agent {

namespace {

constexpr std::chrono::seconds kBootHealthTimeout{90};

// Prints like ConsoleProgress and keeps each container's failures, for the
// server's events.
class RecordingProgress final : public provisioner::ApplyReporter {
 public:
  RecordingProgress() : console_(stdout) {}
  void step_started(const std::string& container, const std::string& step) override {
    console_.step_started(container, step);
  }
  void step_output(const std::string& container, std::string_view line) override {
    console_.step_output(container, line);
  }
  void step_finished(const std::string& container, const std::string& step, std::chrono::milliseconds elapsed,
                     const Status& result) override {
    console_.step_finished(container, step, elapsed, result);
    if (!result) failures.emplace_back(container, step + ": " + result.error().message());
  }
  std::vector<std::pair<std::string, std::string>> failures;  // container, message

 private:
  ConsoleProgress console_;
};

}  // namespace

void reconcile_with(provisioner::Provisioner& p, Reconciled& out) {
  RecordingProgress progress;
  auto outcome = p.apply(progress);
  out.failures = progress.failures;
  size_t fixed = 0;
  if (!outcome) {
    log::error("reconcile: ", outcome.error().message());
  } else {
    for (const auto& c : outcome->plan.changes) {
      if (c.action == provisioner::Action::kUnchanged) continue;
      ++fixed;
      for (const auto& r : c.reasons) log::notice("reconcile: fixed container ", c.name, ": ", r);
    }
    if (outcome->plan.host_change.has_work()) ++fixed;
    for (const auto& r : outcome->plan.host_change.reasons) log::notice("reconcile: fixed host network: ", r);
    if (!outcome->result) log::error("reconcile: ", outcome->result.error().message());
  }
  auto started = p.start_boot_containers(progress);
  if (!started) {
    log::error("reconcile: ", started.error().message());
  } else {
    for (const auto& name : *started) log::notice("reconcile: started container ", name, ", which should run");
    fixed += started->size();
  }
  auto health = p.network_health(kBootHealthTimeout);
  size_t healthy = 0;
  size_t total = 0;
  if (health) {
    for (const auto& [name, h] : *health) {
      ++total;
      healthy += h.healthy ? 1 : 0;
      if (h.healthy) {
        log::info("container ", name, ": network ", describe_health(h));
      } else {
        log::warning("container ", name, ": network ", describe_health(h));
      }
    }
  } else {
    log::error("checking the containers' networks: ", health.error().message());
  }
  log::notice("reconcile: ", fixed == 0 ? std::string("nothing to fix") : std::to_string(fixed) + " thing(s) fixed",
              "; ", healthy, " of ", total, " running container network(s) healthy");
  out.summary = std::to_string(healthy) + " of " + std::to_string(total) + " container networks healthy";
  if (!out.failures.empty()) out.summary += "; " + std::to_string(out.failures.size()) + " step(s) failed";
}

}  // namespace farmhand::agent
