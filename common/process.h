// The one place farmhand runs external programs.
//
// A Command is an absolute path plus an argv vector: never a shell. The
// environment is explicit, output is captured, and a timeout kills the whole
// process group. display() renders the command line for logs with secrets
// replaced by "***".
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace farmhand {

struct Command {
  std::string path;               // absolute path of the program
  std::vector<std::string> args;  // argv[1..]; argv[0] is the path's file name
  std::vector<std::string> env;   // "KEY=value"; exactly this environment
  std::chrono::milliseconds timeout{0};  // 0: no timeout
  std::vector<std::string> secrets;      // replaced by *** in display()
  // Called for every complete line the program writes to stdout or stderr,
  // as it arrives (for live progress). Lines are still captured.
  std::function<void(std::string_view line)> on_line;
  // Called every tick_interval while the program runs, output or not (for
  // heartbeats of quiet programs). 0: never.
  std::function<void()> on_tick;
  std::chrono::milliseconds tick_interval{0};
  size_t capture_limit = 4 << 20;  // bytes kept per stream; the tail is kept

  // Shell-quoted, redacted command line, for logs and error messages.
  std::string display() const;
};

struct ProcessResult {
  int exit_code = -1;    // valid when signal == 0
  int signal = 0;        // the signal that ended it, if any
  bool timed_out = false;
  std::string out;
  std::string err;

  bool success() const { return signal == 0 && !timed_out && exit_code == 0; }
  // "exited with status 3", "killed by signal 9 (Killed)", "timed out".
  std::string describe() const;
};

class ProcessRunner {
 public:
  virtual ~ProcessRunner() = default;
  // Fails only if the program could not be started; a non-zero exit is a
  // result, not an error.
  virtual Result<ProcessResult> run(const Command& command) = 0;
};

class PosixProcessRunner final : public ProcessRunner {
 public:
  Result<ProcessResult> run(const Command& command) override;
};

// Finds `name` in PATH-style `search_path`; absolute names are checked as-is.
Result<std::string> find_program(std::string_view name,
                                 std::string_view search_path =
                                     "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");

// The environment most commands want: PATH and LANG only, plus `extra`.
std::vector<std::string> minimal_env(std::vector<std::string> extra = {});

// The error a caller reports when a command failed: the command line, how it
// ended and the tail of its stderr (or stdout when stderr is empty).
Error command_error(const Command& command, const ProcessResult& result);

}  // namespace farmhand
