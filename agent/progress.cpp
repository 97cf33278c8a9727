#include "agent/progress.h"

#include <unistd.h>

#include "common/clock.h"

namespace farmhand::agent {

namespace {
constexpr auto kQuietInterval = std::chrono::seconds(5);
constexpr size_t kMaxLine = 100;
}  // namespace

ConsoleProgress::ConsoleProgress(FILE* out) : out_(out), tty_(::isatty(::fileno(out)) == 1) {}

void ConsoleProgress::step_started(const std::string& container, const std::string& step) {
  step_ = "[" + container + "] " + step;
  started_ = last_print_ = monotonic_now();
}

void ConsoleProgress::step_output(const std::string&, std::string_view line) {
  auto now = monotonic_now();
  double secs = std::chrono::duration<double>(now - started_).count();
  std::string text(line.substr(0, kMaxLine));
  if (tty_) {
    std::fprintf(out_, "\r\033[K%s ... %.0f s  %s", step_.c_str(), secs, text.c_str());
    live_line_ = true;
  } else if (now - last_print_ >= kQuietInterval) {
    std::fprintf(out_, "%s ... %.0f s  %s\n", step_.c_str(), secs, text.c_str());
    last_print_ = now;
  }
  std::fflush(out_);
}

void ConsoleProgress::step_heartbeat(const std::string& container, std::string_view text) {
  const std::string line = "[" + container + "] " + std::string(text);
  if (tty_) {
    std::fprintf(out_, "\r\033[K%s", line.substr(0, kMaxLine + 40).c_str());
    live_line_ = true;
  } else {
    std::fprintf(out_, "%s\n", line.c_str());
    last_print_ = monotonic_now();
  }
  std::fflush(out_);
}

void ConsoleProgress::warning(const std::string& container, std::string_view text) {
  if (live_line_) std::fputs("\r\033[K", out_);
  live_line_ = false;
  std::fprintf(out_, "[%s] warning: %.*s\n", container.c_str(), static_cast<int>(text.size()), text.data());
  std::fflush(out_);
}

void ConsoleProgress::step_finished(const std::string& container, const std::string& step,
                                    std::chrono::milliseconds elapsed, const Status& result) {
  if (live_line_) std::fputs("\r\033[K", out_);
  live_line_ = false;
  std::fprintf(out_, "[%s] %s  %s %.2f s\n", container.c_str(), step.c_str(),
               result ? "done in" : "FAILED after", static_cast<double>(elapsed.count()) / 1000.0);
  std::fflush(out_);
}

}  // namespace farmhand::agent
