// The one way an apply's step is journaled: reported to the ApplyReporter
// (started, finished with its time and result) and, when there is a state
// store, recorded in state.db's journal with its outcome.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/result.h"
#include "provisioner/state_store.h"

namespace farmhand::provisioner {

// Where apply reports its progress; the CLI prints it.
class ApplyReporter {
 public:
  virtual ~ApplyReporter() = default;
  virtual void step_started(const std::string& container, const std::string& step) = 0;
  // A line of a long-running tool's output (debootstrap, apt-get).
  virtual void step_output(const std::string& container, std::string_view line) = 0;
  virtual void step_finished(const std::string& container, const std::string& step,
                             std::chrono::milliseconds elapsed, const Status& result) = 0;
  // A running step's heartbeat ("lws-build: 2 m 10 s, 4,312 lines, last:
  // ..."), at least every 10 s while it shows nothing else.
  virtual void step_heartbeat(const std::string& container, std::string_view text) { step_output(container, text); }
  // Something the admin should fix that did not fail the apply.
  virtual void warning(const std::string& /*container*/, std::string_view /*text*/) {}
};

class StepJournal {
 public:
  // `state` null: steps are reported but not recorded (starting containers
  // at boot, which is not an apply).
  StepJournal(StateStore* state, ApplyReporter& reporter, int64_t apply_id, const Clock& clock)
      : state_(state), reporter_(reporter), apply_id_(apply_id), clock_(clock) {}

  // Runs one step: started, body, finished. A step the journal cannot be
  // begun for is not run.
  Status run(const std::string& container, const std::string& what, const std::function<Status()>& body);
  // A step that was run and timed elsewhere (the payload's): recorded and
  // reported as finished.
  void finished(const std::string& container, const std::string& what, std::chrono::milliseconds elapsed,
                const Status& result);

  ApplyReporter& reporter() { return reporter_; }
  int64_t apply_id() const { return apply_id_; }
  const Clock& clock() const { return clock_; }

 private:
  StateStore* state_;
  ApplyReporter& reporter_;
  int64_t apply_id_;
  const Clock& clock_;
};

}  // namespace farmhand::provisioner
