// Filesystem access for host paths.
//
// Every host path goes through HostRoot, so a test can point farmhand at a
// temporary directory (like systemd's --root) and compare the whole rendered
// host against golden files. Every write is atomic: temp file, fsync, rename,
// fsync of the directory. A crash never leaves half a file behind.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace farmhand {

namespace fs = std::filesystem;

// Maps absolute host paths ("/etc/systemd/nspawn/x.nspawn") under a prefix.
class HostRoot {
 public:
  explicit HostRoot(fs::path prefix = "/") : prefix_(std::move(prefix)) {}
  // `absolute` must start with '/'.
  fs::path map(const fs::path& absolute) const;
  const fs::path& prefix() const { return prefix_; }
  bool is_real_root() const { return prefix_ == "/" || prefix_.empty(); }

 private:
  fs::path prefix_;
};

// Writes `content` to `path` atomically with `mode`; parent directories are created.
Status write_file_atomic(const fs::path& path, std::string_view content, mode_t mode = 0644);

// The file's content, std::nullopt if it does not exist, or an error.
Result<std::optional<std::string>> read_file_if_exists(const fs::path& path);
Result<std::string> read_file(const fs::path& path);

// mkdir -p with `mode` for the directories it creates.
Status make_dirs(const fs::path& path, mode_t mode = 0755);

// rm -rf that does not cross into other filesystems (mount points are refused)
// and never follows symlinks. Missing paths are fine.
Status remove_tree(const fs::path& path);

// fsync() of a directory, so a rename inside it is durable.
Status sync_dir(const fs::path& dir);

// Atomic rename, then fsync of the parent.
Status rename_durable(const fs::path& from, const fs::path& to);

// Whether something (file, dir, symlink, even dangling) exists at path.
bool path_exists(const fs::path& path);

// A held flock(2) on a lock file; released on destruction. Child processes
// started while it is held inherit it, so the lock outlives a killed farmhand
// until its leftover children have exited too.
class FileLock {
 public:
  static Result<FileLock> acquire(const fs::path& path);
  // Whether some process holds the lock now (false if the file is missing).
  static bool held(const fs::path& path);
  FileLock(FileLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  FileLock& operator=(FileLock&&) = delete;
  FileLock(const FileLock&) = delete;
  ~FileLock();

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace farmhand

namespace farmhand {

// Owns a file descriptor; closes it when it goes.
class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = other.release();
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

// openat2 of `relative` below the directory `root_fd` with RESOLVE_IN_ROOT:
// the directory acts as "/" for every component and symlink, so no symlink,
// "..", or absolute link target leads out of it. `relative` may also be
// written as an absolute path ("/dev/bus/usb"): it is taken below root_fd
// all the same. A lookup that a concurrent rename made the kernel refuse
// (EAGAIN) is retried. -1 with errno set on failure.
int open_in_root(int root_fd, const fs::path& relative, int flags, mode_t mode = 0);

// Paths inside a container's root filesystem are resolved as if `root` were
// "/" (openat2 RESOLVE_IN_ROOT): a symlink in the container can never make
// farmhand read or write a host file.
struct Ownership {
  uid_t uid = 0;
  gid_t gid = 0;
  bool operator==(const Ownership&) const = default;
};
// `owner` set: the file is given that owner before it is renamed into place.
Status write_file_in_root(const fs::path& root, const fs::path& relative, std::string_view content,
                          mode_t mode = 0644, std::optional<Ownership> owner = std::nullopt);
struct InRootStat {
  mode_t mode = 0;  // with the file type bits
  uid_t uid = 0;
  gid_t gid = 0;
};
// The entry itself (a final symlink is not followed); std::nullopt if missing.
Result<std::optional<InRootStat>> stat_in_root(const fs::path& root, const fs::path& relative);
// A symlink's target; std::nullopt if missing or not a symlink.
Result<std::optional<std::string>> readlink_in_root(const fs::path& root, const fs::path& relative);
// Creates or replaces a symlink atomically (parent directories are created).
Status symlink_in_root(const fs::path& root, const fs::path& relative, const std::string& target);
// Removes a file or symlink; a missing one is fine.
Status remove_in_root(const fs::path& root, const fs::path& relative);
Result<std::optional<std::string>> read_file_in_root(const fs::path& root,
                                                     const fs::path& relative);
Status make_dirs_in_root(const fs::path& root, const fs::path& relative, mode_t mode = 0755);

}  // namespace farmhand
