#include "common/fs.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <dirent.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

namespace farmhand {

namespace {

using Fd = UniqueFd;

std::string random_suffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string s(8, 'x');
  for (auto& c : s) c = kAlphabet[rng() % (sizeof kAlphabet - 1)];
  return s;
}

Error io_error(const std::string& what, const fs::path& path, int err) {
  return Error(what + " '" + path.string() + "': " + errno_text(err));
}

Result<std::string> read_all(int fd, const fs::path& shown) {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("cannot read", shown, errno);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// Writes `name` in the directory `dir_fd` atomically: a temporary file in the
// same directory, written, chmod-ed (the umask must neither weaken nor widen
// `mode`), fsync-ed and renamed over `name`, then the directory fsync-ed.
// Renaming replaces a symlink at `name`; it never writes through one.
Status write_atomic_at(int dir_fd, const std::string& name, std::string_view content, mode_t mode,
                       const fs::path& shown, std::optional<Ownership> owner = std::nullopt) {
  const std::string tmp = "." + name + ".tmp-" + random_suffix();
  Fd fd(::openat(dir_fd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode));
  if (fd.get() < 0) return io_error("cannot create", shown.parent_path() / tmp, errno);
  auto cleanup_fail = [&](const std::string& what) {
    int err = errno;
    ::unlinkat(dir_fd, tmp.c_str(), 0);
    return io_error(what, shown, err);
  };
  const char* p = content.data();
  size_t left = content.size();
  while (left > 0) {
    ssize_t n = ::write(fd.get(), p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return cleanup_fail("cannot write");
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (owner && ::fchown(fd.get(), owner->uid, owner->gid) != 0) return cleanup_fail("cannot chown");
  if (::fchmod(fd.get(), mode) != 0) return cleanup_fail("cannot chmod");
  if (::fsync(fd.get()) != 0) return cleanup_fail("cannot fsync");
  if (::close(fd.release()) != 0) return cleanup_fail("cannot close");
  if (::renameat(dir_fd, tmp.c_str(), dir_fd, name.c_str()) != 0) {
    return cleanup_fail("cannot rename into place");
  }
  if (::fsync(dir_fd) != 0) return io_error("cannot fsync", shown.parent_path(), errno);
  return {};
}

}  // namespace

fs::path HostRoot::map(const fs::path& absolute) const {
  if (is_real_root()) return absolute;
  return prefix_ / absolute.relative_path();
}

Status make_dirs(const fs::path& path, mode_t mode) {
  if (path.empty()) return {};
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return {};
    if (S_ISLNK(st.st_mode) && ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return {};
    return fail("cannot create directory '" + path.string() + "': a non-directory is in the way");
  }
  if (path.has_parent_path() && path.parent_path() != path) {
    if (auto st2 = make_dirs(path.parent_path(), mode); !st2) return st2;
  }
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST) {
    return io_error("cannot create directory", path, errno);
  }
  return {};
}

Status sync_dir(const fs::path& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return io_error("cannot open directory", dir, errno);
  if (::fsync(fd.get()) != 0) return io_error("cannot fsync directory", dir, errno);
  return {};
}

Status write_file_atomic(const fs::path& path, std::string_view content, mode_t mode) {
  // A bare file name is in the current directory.
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  if (auto st = make_dirs(dir); !st) return st;
  Fd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.get() < 0) return io_error("cannot open directory", dir, errno);
  return write_atomic_at(dir_fd.get(), path.filename().string(), content, mode, path);
}

Result<std::optional<std::string>> read_file_if_exists(const fs::path& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return std::optional<std::string>{};
    return io_error("cannot open", path, errno);
  }
  auto content = read_all(fd.get(), path);
  if (!content) return content.error();
  return std::optional<std::string>(std::move(*content));
}

Result<std::string> read_file(const fs::path& path) {
  auto r = read_file_if_exists(path);
  if (!r) return r.error();
  if (!r->has_value()) return fail("cannot open '" + path.string() + "': " + errno_text(ENOENT));
  return std::move(**r);
}

bool path_exists(const fs::path& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

namespace {

Status remove_at(int parent_fd, const char* name, dev_t dev, const fs::path& shown) {
  struct stat st {};
  if (::fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return {};
    return io_error("cannot stat", shown, errno);
  }
  if (S_ISDIR(st.st_mode)) {
    if (st.st_dev != dev) {
      return fail("refusing to remove '" + shown.string() + "': it is a mount point");
    }
    int fd = ::openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return io_error("cannot open", shown, errno);
    DIR* d = ::fdopendir(fd);
    if (d == nullptr) {
      ::close(fd);
      return io_error("cannot read directory", shown, errno);
    }
    std::vector<std::string> names;
    while (struct dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
      names.emplace_back(e->d_name);
    }
    Status result;
    for (const auto& n : names) {
      if (auto s = remove_at(::dirfd(d), n.c_str(), dev, shown / n); !s) {
        result = s;
        break;
      }
    }
    ::closedir(d);
    if (!result) return result;
    // Immutable bits (chattr +i) inside rootfs trees are rare; report them plainly.
    if (::unlinkat(parent_fd, name, AT_REMOVEDIR) != 0 && errno != ENOENT) {
      return io_error("cannot remove directory", shown, errno);
    }
    return {};
  }
  if (::unlinkat(parent_fd, name, 0) != 0 && errno != ENOENT) {
    return io_error("cannot remove", shown, errno);
  }
  return {};
}

}  // namespace

Status remove_tree(const fs::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    return io_error("cannot stat", path, errno);
  }
  const fs::path parent = path.has_parent_path() ? path.parent_path() : fs::path(".");
  struct stat pst {};
  if (::stat(parent.c_str(), &pst) != 0) return io_error("cannot stat", parent, errno);
  if (S_ISDIR(st.st_mode) && st.st_dev != pst.st_dev) {
    return fail("refusing to remove '" + path.string() + "': it is a mount point");
  }
  Fd pfd(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (pfd.get() < 0) return io_error("cannot open", parent, errno);
  return remove_at(pfd.get(), path.filename().c_str(), st.st_dev, path);
}

Status rename_durable(const fs::path& from, const fs::path& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    return fail("cannot rename '" + from.string() + "' to '" + to.string() +
                "': " + errno_text(errno));
  }
  return sync_dir(to.parent_path());
}

Result<FileLock> FileLock::acquire(const fs::path& path) {
  if (auto st = make_dirs(path.parent_path()); !st) return st.error();
  // Deliberately not O_CLOEXEC: the tools farmhand runs while holding the
  // lock inherit it, so if farmhand is killed mid-build, the next run waits
  // until every leftover tool has exited instead of racing it.
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0600);  // NOLINT(android-cloexec-open)
  if (fd < 0) return io_error("cannot open lock file", path, errno);
  while (::flock(fd, LOCK_EX) != 0) {
    if (errno == EINTR) continue;
    int err = errno;
    ::close(fd);
    return io_error("cannot lock", path, err);
  }
  return FileLock(fd);
}

bool FileLock::held(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool busy = false;
  while (::flock(fd, LOCK_SH | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    busy = errno == EWOULDBLOCK;
    break;
  }
  ::close(fd);
  return busy;
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace farmhand

#include <linux/openat2.h>
#include <sys/syscall.h>

namespace farmhand {

int open_in_root(int root_fd, const fs::path& relative, int flags, mode_t mode) {
  open_how how{};
  how.flags = static_cast<uint64_t>(flags) | O_CLOEXEC;
  how.mode = (flags & O_CREAT) ? mode : 0;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  std::string rel = relative.relative_path().string();
  if (rel.empty()) rel = ".";
  // Retried, for every caller: with RESOLVE_IN_ROOT the kernel answers
  // EAGAIN when a rename or mount anywhere on the host raced a lookup that
  // went through "..", which a running container (a build renaming files)
  // makes likely, and the same open a moment later succeeds. EINTR is a
  // signal during an open that blocked. The bound keeps a container that
  // renames without pause from holding the agent in this loop.
  constexpr int kAttempts = 64;
  long fd = -1;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    fd = ::syscall(SYS_openat2, root_fd, rel.c_str(), &how, sizeof how);
    if (fd >= 0 || (errno != EAGAIN && errno != EINTR)) break;
  }
  return static_cast<int>(fd);
}

namespace {

Result<int> open_root(const fs::path& root) {
  int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return io_error("cannot open", root, errno);
  return fd;
}

// The directory that holds `rel` inside `root`, opened (-1 with errno set
// if it cannot be).
int open_parent_in_root(const fs::path& root, const fs::path& rel) {
  Fd root_fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (root_fd.get() < 0) return -1;
  return open_in_root(root_fd.get(), rel.parent_path(), O_RDONLY | O_DIRECTORY);
}

}  // namespace

Status make_dirs_in_root(const fs::path& root, const fs::path& relative, mode_t mode) {
  auto rfd = open_root(root);
  if (!rfd) return rfd.error();
  Fd root_fd(*rfd);
  fs::path so_far;
  for (const auto& part : relative.relative_path()) {
    so_far /= part;
    int fd = open_in_root(root_fd.get(), so_far, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
      ::close(fd);
      continue;
    }
    Fd parent(open_in_root(root_fd.get(), so_far.parent_path(), O_RDONLY | O_DIRECTORY));
    if (parent.get() < 0) return io_error("cannot open", root / so_far.parent_path(), errno);
    if (::mkdirat(parent.get(), part.c_str(), mode) != 0 && errno != EEXIST) {
      return io_error("cannot create directory", root / so_far, errno);
    }
  }
  return {};
}

Status write_file_in_root(const fs::path& root, const fs::path& relative, std::string_view content,
                          mode_t mode, std::optional<Ownership> owner) {
  const fs::path rel = relative.relative_path();
  if (auto s = make_dirs_in_root(root, rel.parent_path()); !s) return s;
  Fd dir(open_parent_in_root(root, rel));
  if (dir.get() < 0) return io_error("cannot open", root / rel.parent_path(), errno);
  return write_atomic_at(dir.get(), rel.filename().string(), content, mode, root / rel, owner);
}

Result<std::optional<InRootStat>> stat_in_root(const fs::path& root, const fs::path& relative) {
  auto rfd = open_root(root);
  if (!rfd) return rfd.error();
  Fd root_fd(*rfd);
  Fd fd(open_in_root(root_fd.get(), relative, O_PATH | O_NOFOLLOW));
  if (fd.get() < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return std::optional<InRootStat>{};
    return io_error("cannot open", root / relative.relative_path(), errno);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return io_error("cannot stat", root / relative.relative_path(), errno);
  return std::optional<InRootStat>(InRootStat{st.st_mode, st.st_uid, st.st_gid});
}

Result<std::optional<std::string>> readlink_in_root(const fs::path& root, const fs::path& relative) {
  const fs::path rel = relative.relative_path();
  Fd dir(open_parent_in_root(root, rel));
  if (dir.get() < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return std::optional<std::string>{};
    return io_error("cannot open", root / rel.parent_path(), errno);
  }
  char buf[4096];
  ssize_t n = ::readlinkat(dir.get(), rel.filename().c_str(), buf, sizeof buf);
  if (n < 0) {
    if (errno == ENOENT || errno == EINVAL) return std::optional<std::string>{};  // missing, or not a link
    return io_error("cannot read link", root / rel, errno);
  }
  return std::optional<std::string>(std::string(buf, static_cast<size_t>(n)));
}

Status symlink_in_root(const fs::path& root, const fs::path& relative, const std::string& target) {
  const fs::path rel = relative.relative_path();
  if (auto s = make_dirs_in_root(root, rel.parent_path()); !s) return s;
  Fd dir(open_parent_in_root(root, rel));
  if (dir.get() < 0) return io_error("cannot open", root / rel.parent_path(), errno);
  const std::string tmp = "." + rel.filename().string() + ".tmp-" + random_suffix();
  if (::symlinkat(target.c_str(), dir.get(), tmp.c_str()) != 0) {
    return io_error("cannot create symlink", root / rel.parent_path() / tmp, errno);
  }
  if (::renameat(dir.get(), tmp.c_str(), dir.get(), rel.filename().c_str()) != 0) {
    int err = errno;
    ::unlinkat(dir.get(), tmp.c_str(), 0);
    return io_error("cannot rename into place", root / rel, err);
  }
  if (::fsync(dir.get()) != 0) return io_error("cannot fsync", root / rel.parent_path(), errno);
  return {};
}

Status remove_in_root(const fs::path& root, const fs::path& relative) {
  const fs::path rel = relative.relative_path();
  Fd dir(open_parent_in_root(root, rel));
  if (dir.get() < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return {};
    return io_error("cannot open", root / rel.parent_path(), errno);
  }
  if (::unlinkat(dir.get(), rel.filename().c_str(), 0) != 0 && errno != ENOENT) {
    return io_error("cannot remove", root / rel, errno);
  }
  return {};
}

Result<std::optional<std::string>> read_file_in_root(const fs::path& root,
                                                     const fs::path& relative) {
  auto rfd = open_root(root);
  if (!rfd) {
    if (!path_exists(root)) return std::optional<std::string>{};
    return rfd.error();
  }
  Fd root_fd(*rfd);
  // O_NONBLOCK: a FIFO planted in the container must not block farmhand's
  // open; anything but a regular file is refused.
  Fd fd(open_in_root(root_fd.get(), relative, O_RDONLY | O_NONBLOCK));
  if (fd.get() < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return std::optional<std::string>{};
    return io_error("cannot open", root / relative.relative_path(), errno);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return io_error("cannot stat", root / relative.relative_path(), errno);
  if (!S_ISREG(st.st_mode)) return fail("'" + (root / relative.relative_path()).string() + "' is not a regular file");
  auto content = read_all(fd.get(), root / relative.relative_path());
  if (!content) return content.error();
  return std::optional<std::string>(std::move(*content));
}

}  // namespace farmhand
