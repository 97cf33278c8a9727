#include "agent/cli/git_sync.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/openat2.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "agent/wiring.h"
#include "common/fs.h"
#include "common/log.h"
#include "provisioner/git.h"

namespace farmhand::agent {

namespace {

using provisioner::GitSyncRequest;

using Fd = UniqueFd;

Result<bool> is_empty_dir(int dir_fd) {
  int fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return fail(errno_text(errno));
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    ::close(fd);
    return fail(errno_text(errno));
  }
  bool empty = true;
  while (const dirent* e = ::readdir(dir)) {
    const std::string_view name = e->d_name;
    if (name != "." && name != "..") {
      empty = false;
      break;
    }
  }
  ::closedir(dir);
  return empty;
}

Status check_container_path(const std::string& path) {
  const fs::path p(path);
  if (!p.is_absolute() || p == "/" || p.lexically_normal() != p || !p.has_filename()) {
    return fail("request/path: \"" + path + "\" is not a normalised absolute path below /");
  }
  for (const auto& part : p) {
    if (part == "..") return fail("request/path: \"" + path + "\" contains \"..\"");
  }
  return {};
}

// The source's directory inside the tree, opened as root: missing parents
// are made (root-owned, 0755), the directory itself is made and given to
// the build user, or given to it when it is empty and still root's.
Result<int> open_checkout_dir(const GitSyncRequest& r) {
  const fs::path rel = fs::path(r.path).relative_path();
  if (auto s = make_dirs_in_root(r.tree, rel.parent_path()); !s) return s.error();
  Fd root(::open(r.tree.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (root.get() < 0) return fail("cannot open " + r.tree + ": " + errno_text(errno));
  Fd parent(open_in_root(root.get(), rel.parent_path(), O_RDONLY | O_DIRECTORY));
  if (parent.get() < 0) return fail("cannot open " + r.path + "'s parent in " + r.tree + ": " + errno_text(errno));
  bool created = false;
  if (::mkdirat(parent.get(), rel.filename().c_str(), 0755) == 0) {
    created = true;
  } else if (errno != EEXIST) {
    return fail("cannot create " + r.path + " in " + r.tree + ": " + errno_text(errno));
  }
  // O_NOFOLLOW: a symlink planted at the path itself is refused rather than
  // followed to some other (perhaps root's) directory that would be chowned.
  int fd = open_in_root(root.get(), rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOTDIR || errno == ELOOP) return fail(r.path + " in " + r.tree + " exists and is not a directory");
    return fail("cannot open " + r.path + " in " + r.tree + ": " + errno_text(errno));
  }
  Fd dir(fd);
  struct stat st {};
  if (::fstat(dir.get(), &st) != 0) return fail("cannot stat " + r.path + ": " + errno_text(errno));
  bool give = created;
  if (!created && st.st_uid == 0 && (st.st_uid != r.uid || st.st_gid != r.gid)) {
    auto empty = is_empty_dir(dir.get());
    if (!empty) return fail("cannot read " + r.path + " in " + r.tree + ": " + empty.error().message());
    give = *empty;
  }
  if (give && ::fchown(dir.get(), r.uid, r.gid) != 0) {
    return fail("cannot give " + r.path + " in " + r.tree + " to " + std::to_string(r.uid) + ":" +
                std::to_string(r.gid) + ": " + errno_text(errno));
  }
  return dir.release();
}

// A private mount namespace, so the bind mount below is seen by nobody else
// and vanishes with this process.
Status enter_private_mount_namespace() {
  if (::unshare(CLONE_NEWNS) != 0) return fail("unshare(CLONE_NEWNS): " + errno_text(errno));
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return fail("making / private: " + errno_text(errno));
  }
  return {};
}

// Shows the directory `fd` (opened in this namespace: the kernel refuses to
// bind a mount of another namespace) on `mountpoint`.
Status bind_on_mountpoint(int fd, const std::string& mountpoint) {
  const std::string source = "/proc/self/fd/" + std::to_string(fd);
  if (::mount(source.c_str(), mountpoint.c_str(), nullptr, MS_BIND, nullptr) != 0) {
    return fail("bind-mounting the checkout on " + mountpoint + ": " + errno_text(errno));
  }
  return {};
}

Status drop_privileges(uid_t uid, gid_t gid) {
  if (::setgroups(0, nullptr) != 0) return fail("setgroups: " + errno_text(errno));
  if (::setresgid(gid, gid, gid) != 0) return fail("setresgid(" + std::to_string(gid) + "): " + errno_text(errno));
  if (::setresuid(uid, uid, uid) != 0) return fail("setresuid(" + std::to_string(uid) + "): " + errno_text(errno));
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return fail("PR_SET_NO_NEW_PRIVS: " + errno_text(errno));
  // Other processes of the build user must not read the key from our memory.
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return fail("PR_SET_DUMPABLE: " + errno_text(errno));
  if (uid != 0 && (::setuid(0) == 0 || ::geteuid() == 0)) return fail("still root after dropping privileges");
  return {};
}

int failed(const std::string& message) {
  log::error("git-sync: ", message);
  return kExitFailed;
}

int run(const GitSyncRequest& r) {
  auto auth = provisioner::load_git_auth(r.source.credentials);
  if (!auth) return failed(auth.error().message());
  if (auto s = enter_private_mount_namespace(); !s) return failed(s.error().message());
  auto fd = open_checkout_dir(r);
  if (!fd) return failed(fd.error().message());
  {
    Fd dir(*fd);
    if (auto s = bind_on_mountpoint(dir.get(), r.mountpoint); !s) return failed(s.error().message());
  }
  if (auto s = drop_privileges(r.uid, r.gid); !s) return failed(s.error().message());
  ::umask(022);
  ::setenv("HOME", "/nonexistent", 1);
  if (::chdir(r.mountpoint.c_str()) != 0) return failed("cannot enter " + r.mountpoint + ": " + errno_text(errno));
  auto result = provisioner::sync_checkout(r.mountpoint, r.source, *auth, r.force_clean);
  if (!result) {
    // Name the checkout as the admin knows it, not by the private mountpoint.
    std::string message = result.error().message();
    const std::string shown = r.tree + r.path;
    for (size_t pos = message.find(r.mountpoint); pos != std::string::npos;
         pos = message.find(r.mountpoint, pos + shown.size())) {
      message.replace(pos, r.mountpoint.size(), shown);
    }
    return failed("source \"" + r.source.name + "\": " + message);
  }
  std::printf("%s\n", provisioner::git_sync_result_json(*result).c_str());
  return std::fflush(stdout) == 0 ? kExitOk : kExitFailed;
}

}  // namespace

int cmd_git_sync(const std::vector<std::string>& args) {
  std::string json;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--request" && i + 1 < args.size()) {
      json = args[++i];
    } else if (args[i].rfind("--request=", 0) == 0) {
      json = args[i].substr(10);
    } else {
      std::fprintf(stderr, "farmhand git-sync: unexpected argument \"%s\"\n", args[i].c_str());
      return kExitUsage;
    }
  }
  if (json.empty()) {
    std::fputs("Usage: farmhand git-sync --request JSON (internal: run by apply)\n", stderr);
    return kExitUsage;
  }
  auto request = provisioner::parse_git_sync_request(json);
  if (!request) {
    std::fprintf(stderr, "farmhand git-sync: %s\n", request.error().message().c_str());
    return kExitUsage;
  }
  if (auto s = check_container_path(request->path); !s) {
    std::fprintf(stderr, "farmhand git-sync: %s\n", s.error().message().c_str());
    return kExitUsage;
  }
  if (request->uid == 0) {
    std::fputs("farmhand git-sync: request/uid: must not be 0 (the point is not to run git as root)\n", stderr);
    return kExitUsage;
  }
  if (::geteuid() != 0) {
    std::fputs("farmhand git-sync: must run as root (it drops to the build user itself)\n", stderr);
    return kExitFailed;
  }
  return run(*request);
}

}  // namespace farmhand::agent
