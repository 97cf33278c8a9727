#include "common/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/clock.h"
#include "common/log.h"

namespace farmhand {

namespace {

std::string shell_quote(std::string_view s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                        "0123456789-_./=:,+@%") == std::string_view::npos) {
    return std::string(s);
  }
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string redact_with(std::string text, std::vector<std::string> secrets) {
  // Longest first, so a secret that is a prefix of another cannot leave the
  // rest of the longer one behind.
  std::sort(secrets.begin(), secrets.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  for (const auto& secret : secrets) {
    if (secret.empty()) continue;
    for (size_t pos = text.find(secret); pos != std::string::npos; pos = text.find(secret, pos + 3)) {
      text.replace(pos, secret.size(), "***");
    }
  }
  return text;
}

// Appends to a capture buffer, keeping only the last `limit` bytes.
void append_capped(std::string& buf, const char* data, size_t n, size_t limit) {
  buf.append(data, n);
  if (buf.size() > limit) buf.erase(0, buf.size() - limit);
}

struct Stream {
  int fd = -1;
  std::string* capture = nullptr;
  std::string partial;  // incomplete line for on_line
};

}  // namespace

std::string Command::display() const {
  std::string line = shell_quote(path);
  // Redacted before quoting too: quoting rewrites a secret containing "'",
  // which the pass over the whole line would then miss.
  for (const auto& a : args) line += " " + shell_quote(log::redact(redact_with(a, secrets)));
  return log::redact(redact_with(line, secrets));
}

std::string ProcessResult::describe() const {
  if (timed_out) return "timed out";
  if (signal != 0) {
    return "killed by signal " + std::to_string(signal) + " (" + ::strsignal(signal) + ")";
  }
  return "exited with status " + std::to_string(exit_code);
}

std::vector<std::string> minimal_env(std::vector<std::string> extra) {
  std::vector<std::string> env = {
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"};
  for (auto& e : extra) env.push_back(std::move(e));
  return env;
}

Result<std::string> find_program(std::string_view name, std::string_view search_path) {
  auto executable = [](const std::string& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
  };
  if (!name.empty() && name.front() == '/') {
    if (executable(std::string(name))) return std::string(name);
    return fail("'" + std::string(name) + "' is not an executable file");
  }
  size_t start = 0;
  while (start <= search_path.size()) {
    size_t end = search_path.find(':', start);
    if (end == std::string_view::npos) end = search_path.size();
    std::string dir(search_path.substr(start, end - start));
    if (!dir.empty()) {
      std::string candidate = dir + "/" + std::string(name);
      if (executable(candidate)) return candidate;
    }
    start = end + 1;
  }
  return fail("'" + std::string(name) + "' was not found in " + std::string(search_path));
}

Error command_error(const Command& command, const ProcessResult& result) {
  const std::string& tail_src = result.err.empty() ? result.out : result.err;
  std::string tail = tail_src.size() > 2000 ? tail_src.substr(tail_src.size() - 2000) : tail_src;
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == ' ')) tail.pop_back();
  std::string msg = command.display() + " " + result.describe();
  if (!tail.empty()) msg += ":\n" + redact_with(tail, command.secrets);
  return Error(msg);
}

namespace {

// A started child: its pid and the read ends of its stdout and stderr.
struct Child {
  pid_t pid = -1;
  int out = -1;
  int err = -1;
};

// Forks and execs the command in its own process group, with stdin from
// /dev/null. An execve() failure is reported here, before anything runs.
Result<Child> spawn(const Command& command) {
  int out_pipe[2], err_pipe[2], exec_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return fail("pipe: " + errno_text(errno));
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return fail("pipe: " + errno_text(errno));
  }
  // Reports an execve() failure from the child before anything else happens.
  if (::pipe2(exec_pipe, O_CLOEXEC) != 0) {
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) ::close(fd);
    return fail("pipe: " + errno_text(errno));
  }

  // Everything the child needs is prepared before fork(): no allocation after.
  std::vector<char*> argv;
  std::string argv0 = command.path.substr(command.path.rfind('/') + 1);
  argv.push_back(argv0.data());
  std::vector<std::string> args = command.args;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env = command.env;
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  log::debug("running ", command.display());
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1], exec_pipe[0], exec_pipe[1]})
      ::close(fd);
    return fail("fork: " + errno_text(err));
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    // If farmhand is killed, its tools die with it rather than racing the
    // next run (which also waits for any survivors: see FileLock).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    sigset_t all;
    sigemptyset(&all);
    ::sigprocmask(SIG_SETMASK, &all, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    ::dup2(out_pipe[1], STDOUT_FILENO);
    ::dup2(err_pipe[1], STDERR_FILENO);
    ::execve(command.path.c_str(), argv.data(), envp.data());
    int err = errno;
    ssize_t ignored = ::write(exec_pipe[1], &err, sizeof err);
    (void)ignored;
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also in the parent, to avoid racing the child
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  ::close(exec_pipe[1]);

  int exec_errno = 0;
  ssize_t got = ::read(exec_pipe[0], &exec_errno, sizeof exec_errno);
  ::close(exec_pipe[0]);
  if (got == static_cast<ssize_t>(sizeof exec_errno)) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    ::waitpid(pid, nullptr, 0);
    return fail("cannot run " + command.path + ": " + errno_text(exec_errno));
  }
  return Child{pid, out_pipe[0], err_pipe[0]};
}

// Reads the child's output until both streams close, calling on_line and
// on_tick as it goes; kills the group at the deadline.
void pump_output(const Command& command, const Child& child, Clock::MonoTime deadline, ProcessResult& result) {
  Stream streams[2] = {{child.out, &result.out, {}}, {child.err, &result.err, {}}};
  auto next_tick = monotonic_now() + command.tick_interval;
  int open_streams = 2;
  char buf[16384];
  while (open_streams > 0) {
    pollfd fds[2];
    nfds_t nfds = 0;
    Stream* which[2];
    for (auto& s : streams) {
      if (s.fd < 0) continue;
      fds[nfds] = {s.fd, POLLIN, 0};
      which[nfds++] = &s;
    }
    int wait_ms = -1;
    const auto now = monotonic_now();
    if (command.timeout.count() > 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
      wait_ms = static_cast<int>(std::max<int64_t>(0, left.count()));
    }
    const bool ticking = command.on_tick && command.tick_interval.count() > 0;
    bool tick_first = false;
    if (ticking) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(next_tick - now);
      int tick_ms = static_cast<int>(std::max<int64_t>(0, left.count()));
      if (wait_ms < 0 || tick_ms < wait_ms) {
        wait_ms = tick_ms;
        tick_first = true;
      }
    }
    int n = ::poll(fds, nfds, wait_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (ticking && monotonic_now() >= next_tick) {
      next_tick = monotonic_now() + command.tick_interval;
      command.on_tick();
    }
    if (n == 0) {
      if (tick_first) continue;
      result.timed_out = true;
      ::kill(-child.pid, SIGKILL);
      break;
    }
    for (nfds_t i = 0; i < nfds; ++i) {
      if (fds[i].revents == 0) continue;
      Stream& s = *which[i];
      ssize_t r = ::read(s.fd, buf, sizeof buf);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        if (command.on_line && !s.partial.empty()) command.on_line(s.partial);
        ::close(s.fd);
        s.fd = -1;
        --open_streams;
        continue;
      }
      append_capped(*s.capture, buf, static_cast<size_t>(r), command.capture_limit);
      if (command.on_line) {
        s.partial.append(buf, static_cast<size_t>(r));
        size_t nl;
        while ((nl = s.partial.find('\n')) != std::string::npos) {
          command.on_line(std::string_view(s.partial).substr(0, nl));
          s.partial.erase(0, nl + 1);
        }
      }
    }
  }
  for (auto& s : streams) {
    if (s.fd >= 0) ::close(s.fd);
  }
}

// A program that closed its output can still be running: the deadline
// holds until it has exited, not just until its pipes are closed.
void wait_for_exit_until(pid_t pid, Clock::MonoTime deadline, ProcessResult& result) {
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - monotonic_now());
    pollfd pfd = {pidfd, POLLIN, 0};
    int n = pidfd >= 0 ? ::poll(&pfd, 1, static_cast<int>(std::max<int64_t>(0, left.count())))
                       : 1;  // no pidfd (old kernel): wait without a deadline, as before
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) {
      result.timed_out = true;
      ::kill(-pid, SIGKILL);
    }
    break;
  }
  if (pidfd >= 0) ::close(pidfd);
}

}  // namespace

Result<ProcessResult> PosixProcessRunner::run(const Command& command) {
  if (command.path.empty() || command.path.front() != '/') {
    return fail("refusing to run '" + command.path + "': not an absolute path");
  }
  auto child = spawn(command);
  if (!child) return child.error();
  ProcessResult result;
  const auto deadline = monotonic_now() + command.timeout;
  pump_output(command, *child, deadline, result);
  if (command.timeout.count() > 0 && !result.timed_out) wait_for_exit_until(child->pid, deadline, result);
  int status = 0;
  while (::waitpid(child->pid, &status, 0) < 0) {
    if (errno != EINTR) return fail("waitpid: " + errno_text(errno));
  }
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  // No kill after reaping: the group id may already belong to someone else.
  // Both timeout paths above killed the whole group before waitpid().
  return result;
}

}  // namespace farmhand
