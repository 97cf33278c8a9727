#include "provisioner/clone.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>

namespace farmhand::provisioner {

namespace {
constexpr long kBtrfsMagic = 0x9123683E;

bool same_filesystem(const fs::path& a, const fs::path& b) {
  struct statfs sa {}, sb {};
  if (::statfs(a.c_str(), &sa) != 0 || ::statfs(b.c_str(), &sb) != 0) return false;
  return sa.f_fsid.__val[0] == sb.f_fsid.__val[0] && sa.f_fsid.__val[1] == sb.f_fsid.__val[1];
}

bool reflink_works(const fs::path& from_dir, const fs::path& to_dir) {
  const fs::path src = from_dir / ".farmhand-reflink-probe";
  const fs::path dst = to_dir / ".farmhand-reflink-probe";
  bool ok = false;
  int in = ::open(src.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (in >= 0) {
    ssize_t w = ::write(in, "farmhand", 8);
    int out = ::open(dst.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out >= 0) {
      ok = w == 8 && ::ioctl(out, FICLONE, in) == 0;
      ::close(out);
      ::unlink(dst.c_str());
    }
    ::close(in);
    ::unlink(src.c_str());
  }
  return ok;
}

bool overlay_supported() {
  std::ifstream in("/proc/filesystems");
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() >= 7 && line.compare(line.size() - 7, 7, "overlay") == 0) return true;
  }
  return false;
}

bool is_btrfs_subvolume(const fs::path& path) {
  struct stat st {};
  return is_btrfs(path) && ::stat(path.c_str(), &st) == 0 && st.st_ino == 256;
}

}  // namespace

bool is_btrfs(const fs::path& path) {
  struct statfs s {};
  return ::statfs(path.c_str(), &s) == 0 && s.f_type == kBtrfsMagic;
}

bool is_mount_point(const fs::path& path) {
  struct statx stx {};
  if (::statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &stx) != 0) {
    return false;
  }
  return (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) != 0 &&
         (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
}

CloneMethod detect_clone_method(const fs::path& images_dir, const fs::path& machines_dir) {
  if (is_btrfs(images_dir) && is_btrfs(machines_dir) && same_filesystem(images_dir, machines_dir)) {
    return CloneMethod::kBtrfs;
  }
  if (reflink_works(images_dir, machines_dir)) return CloneMethod::kReflink;
  if (overlay_supported()) return CloneMethod::kOverlay;
  return CloneMethod::kCopy;
}

fs::path partial_clone_path(const fs::path& machine_dir) {
  return machine_dir.parent_path() / ("." + machine_dir.filename().string() + ".farmhand-partial");
}

Status Cloner::remove_dir(const fs::path& dir) {
  if (!path_exists(dir)) return {};
  if (is_btrfs_subvolume(dir)) {
    return commands_.host({"btrfs", "subvolume", "delete", dir.string()}, {});
  }
  return remove_tree(dir);
}

Status Cloner::clone(CloneMethod method, const fs::path& base_dir, const fs::path& machine_dir,
                     const fs::path& overlay_dir) {
  if (method == CloneMethod::kOverlay) return mount_overlay(base_dir, machine_dir, overlay_dir);
  if (path_exists(machine_dir)) return {};  // renamed into place only when complete
  if (auto s = make_dirs(machine_dir.parent_path()); !s) return s;
  const fs::path partial = partial_clone_path(machine_dir);
  if (auto s = remove_dir(partial); !s) return s.error().context("removing an unfinished clone");
  Status made;
  if (method == CloneMethod::kBtrfs && is_btrfs_subvolume(base_dir)) {
    made = commands_.host({"btrfs", "subvolume", "snapshot", base_dir.string(), partial.string()},
                          {});
  } else {
    const char* reflink = method == CloneMethod::kCopy ? "--reflink=never" : "--reflink=always";
    if (method == CloneMethod::kBtrfs) reflink = "--reflink=auto";
    made = commands_.host({"cp", "-a", reflink, "--", base_dir.string(), partial.string()}, {});
  }
  if (!made) {
    (void)remove_dir(partial);
    return made;
  }
  return rename_durable(partial, machine_dir);
}

Status Cloner::mount_overlay(const fs::path& base_dir, const fs::path& machine_dir,
                             const fs::path& overlay_dir) {
  for (const auto& d : {overlay_dir / "upper", overlay_dir / "work", machine_dir}) {
    if (auto s = make_dirs(d); !s) return s;
  }
  if (is_mount_point(machine_dir)) return {};
  const std::string options = "lowerdir=" + base_dir.string() + ",upperdir=" +
                              (overlay_dir / "upper").string() +
                              ",workdir=" + (overlay_dir / "work").string();
  if (::mount("overlay", machine_dir.c_str(), "overlay", 0, options.c_str()) != 0) {
    return fail("cannot mount overlay on '" + machine_dir.string() + "' (" + options +
                "): " + errno_text(errno));
  }
  return {};
}

Status Cloner::remove(CloneMethod method, const fs::path& machine_dir,
                      const fs::path& overlay_dir) {
  if (auto s = remove_dir(partial_clone_path(machine_dir)); !s) return s;
  if (method == CloneMethod::kOverlay) {
    if (is_mount_point(machine_dir) && ::umount2(machine_dir.c_str(), UMOUNT_NOFOLLOW) != 0) {
      return fail("cannot unmount '" + machine_dir.string() + "': " + errno_text(errno) +
                  (errno == EBUSY ? " (is the container still running?)" : ""));
    }
    if (auto s = remove_tree(overlay_dir); !s) return s;
    if (::rmdir(machine_dir.c_str()) != 0 && errno != ENOENT) {
      return fail("cannot remove '" + machine_dir.string() + "': " + errno_text(errno));
    }
    return {};
  }
  return remove_dir(machine_dir);
}

}  // namespace farmhand::provisioner
