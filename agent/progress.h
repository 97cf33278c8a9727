// Prints apply progress: one line per finished step with its elapsed time,
// and, while a long step runs, its own label, elapsed time and latest output
// line (redrawn in place on a terminal, every few seconds otherwise), and its
// heartbeats (a line each when not on a terminal).
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

#include "provisioner/provisioner.h"

namespace farmhand::agent {

class ConsoleProgress final : public provisioner::ApplyReporter {
 public:
  explicit ConsoleProgress(FILE* out);
  void step_started(const std::string& container, const std::string& step) override;
  void step_output(const std::string& container, std::string_view line) override;
  void step_finished(const std::string& container, const std::string& step,
                     std::chrono::milliseconds elapsed, const Status& result) override;
  void step_heartbeat(const std::string& container, std::string_view text) override;
  void warning(const std::string& container, std::string_view text) override;

 private:
  FILE* out_;
  bool tty_;
  std::string step_;
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point last_print_;
  bool live_line_ = false;
};

}  // namespace farmhand::agent
