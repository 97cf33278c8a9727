#include "agent/cli/enter.h"

#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <optional>

#include "agent/wiring.h"
#include "common/fs.h"
#include "common/log.h"

extern char** environ;

namespace farmhand::agent {

namespace {

struct Request {
  pid_t target = 0;
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  std::string cwd;
  std::vector<std::string> argv;
};

std::optional<unsigned long> number(const std::string& s) {
  if (s.empty() || s.size() > 10 || s.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  return std::stoul(s);
}

Result<Request> parse(const std::vector<std::string>& args) {
  Request r;
  size_t i = 0;
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (i + 1 >= args.size()) return fail("option " + a + " needs a value");
    const std::string& v = args[++i];
    if (a == "--target") {
      auto n = number(v);
      if (!n || *n == 0) return fail("--target: \"" + v + "\" is not a pid");
      r.target = static_cast<pid_t>(*n);
    } else if (a == "--uid") {
      auto n = number(v);
      if (!n) return fail("--uid: \"" + v + "\" is not a number");
      r.uid = static_cast<uid_t>(*n);
    } else if (a == "--gid") {
      auto n = number(v);
      if (!n) return fail("--gid: \"" + v + "\" is not a number");
      r.gid = static_cast<gid_t>(*n);
    } else if (a == "--cwd") {
      if (v.empty() || v[0] != '/') return fail("--cwd: \"" + v + "\" is not an absolute path");
      r.cwd = v;
    } else {
      return fail("unknown option \"" + a + "\"");
    }
  }
  r.argv.assign(args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
  if (r.target == 0) return fail("--target is required");
  if (r.cwd.empty()) return fail("--cwd is required");
  if (r.uid.has_value() != r.gid.has_value()) return fail("--uid and --gid go together");
  if (r.argv.empty() || r.argv[0].empty()) return fail("no command after \"--\"");
  return r;
}

// The namespaces to join, the user namespace first: in a container with
// one of its own, it grants the rights to join the others.
constexpr const char* kNamespaces[] = {"user", "cgroup", "ipc", "uts", "net", "pid", "mnt"};

Status join_namespaces(pid_t target) {
  std::vector<std::pair<std::string, int>> fds;
  for (const char* ns : kNamespaces) {
    const std::string theirs = "/proc/" + std::to_string(target) + "/ns/" + ns;
    const std::string ours = std::string("/proc/self/ns/") + ns;
    struct stat a {}, b {};
    if (::stat(theirs.c_str(), &a) != 0) {
      if (errno == ENOENT && std::strcmp(ns, "cgroup") == 0) continue;  // a kernel without cgroup namespaces
      return fail("cannot see " + theirs + ": " + errno_text(errno));
    }
    if (::stat(ours.c_str(), &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) continue;  // shared
    int fd = ::open(theirs.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail("cannot open " + theirs + ": " + errno_text(errno));
    fds.emplace_back(ns, fd);
  }
  Status result;
  for (const auto& [ns, fd] : fds) {
    if (result && ::setns(fd, 0) != 0) result = fail("cannot join the " + ns + " namespace: " + errno_text(errno));
    ::close(fd);
  }
  return result;
}

int failed(const std::string& message) {
  log::error("enter: ", message);
  return 125;  // like env and nsenter: the command itself did not run
}

}  // namespace

int cmd_enter(const std::vector<std::string>& args) {
  auto r = parse(args);
  if (!r) return failed(r.error().message());
  // Joining the mount namespace also moves the root and working directory
  // to the container's root, so the paths below are the container's own.
  if (auto s = join_namespaces(r->target); !s) return failed(s.error().message());
  if (::chdir(r->cwd.c_str()) != 0) return failed("cannot change to " + r->cwd + ": " + errno_text(errno));
  if (r->uid) {
    if (::setgroups(0, nullptr) != 0) return failed("setgroups: " + errno_text(errno));
    if (::setresgid(*r->gid, *r->gid, *r->gid) != 0) return failed("setresgid: " + errno_text(errno));
    if (::setresuid(*r->uid, *r->uid, *r->uid) != 0) return failed("setresuid: " + errno_text(errno));
  }
  // The pid namespace applies to children only: the command is one.
  std::fflush(nullptr);
  const pid_t child = ::fork();
  if (child < 0) return failed("fork: " + errno_text(errno));
  if (child == 0) {
    std::vector<char*> argv;
    for (auto& a : r->argv) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execvpe(argv[0], argv.data(), environ);
    std::fprintf(stderr, "enter: cannot run %s: %s\n", argv[0], std::strerror(errno));
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) return failed("waitpid: " + errno_text(errno));
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 125;
}

}  // namespace farmhand::agent
