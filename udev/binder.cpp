#include "udev/binder.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <filesystem>
#include <random>
#include <sstream>

#include "common/etc_files.h"
#include "common/fs.h"

namespace farmhand::udev {

namespace {

using Fd = UniqueFd;

// Container files are untrusted: /etc/group may be huge or a FIFO.
constexpr size_t kMaxContainerFile = 16 * 1024 * 1024;

std::string shown_container(const ContainerRuntime& c) { return "container \"" + c.name + "\""; }
std::string shown_leader(pid_t leader) { return "the container of pid " + std::to_string(leader); }

Error io_error(const std::string& who, const std::string& what, const std::string& path, int err) {
  return fail(who + ": cannot " + what + " " + path + ": " + errno_text(err));
}

std::string random_suffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string s(8, 'x');
  for (auto& ch : s) ch = kAlphabet[rng() % (sizeof kAlphabet - 1)];
  return s;
}

Result<Fd> open_container_root(pid_t leader, const std::string& who) {
  if (leader <= 0) return fail(who + ": no leader pid (is it running?)");
  const std::string path = "/proc/" + std::to_string(leader) + "/root";
  int fd = ::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return io_error(who, "open", path, errno);
  return Fd(fd);
}

// A device path the container may get: absolute, under /dev/, and made of
// plain names only.
Status check_dev_path(const std::string& path, const std::string& who, const std::string& what) {
  const std::string bad = who + ": " + what + " \"" + path + "\" ";
  if (path.rfind("/dev/", 0) != 0) return fail(bad + "is not under /dev/");
  std::filesystem::path p(path);
  for (const auto& part : p.relative_path()) {
    const std::string s = part.string();
    if (s.empty() || s == "." || s == "..") return fail(bad + "is not a plain path");
  }
  if (path.back() == '/' || path.find("//") != std::string::npos) {
    return fail(bad + "is not a plain path");
  }
  return {};
}

std::string parent_of(const std::string& path) {
  return std::filesystem::path(path).parent_path().string();
}
std::string name_of(const std::string& path) {
  return std::filesystem::path(path).filename().string();
}

// Who owns what the binder creates: the container's root user and group,
// and the node's group, all as host ids.
struct Owners {
  uid_t root_uid = 0;
  gid_t root_gid = 0;
  gid_t node_gid = 0;
};

Result<std::string> read_id_map(pid_t leader, const char* which) {
  const std::string path = "/proc/" + std::to_string(leader) + "/" + which;
  auto text = read_file_if_exists(path);
  if (!text) return text.error();
  // A kernel without user namespaces has no map: ids are the host's.
  if (!text->has_value()) return std::string("0 0 4294967295\n");
  return std::move(**text);
}

Result<unsigned> map_through(pid_t leader, const char* which, const char* kind, unsigned inside,
                             const std::string& who) {
  auto text = read_id_map(leader, which);
  if (!text) return text.error().context(who);
  auto mapped = map_id(*text, inside);
  if (!mapped) {
    return fail(who + ": " + kind + " " + std::to_string(inside) +
                " is not mapped to the host (/proc/" + std::to_string(leader) + "/" + which + ")");
  }
  return *mapped;
}

Result<std::string> read_container_file(int root_fd, const std::string& path,
                                        const std::string& who) {
  Fd fd(open_in_root(root_fd, path, O_RDONLY | O_NONBLOCK | O_NOCTTY));
  if (fd.get() < 0) return io_error(who, "open", path, errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return io_error(who, "stat", path, errno);
  if (!S_ISREG(st.st_mode)) return fail(who + ": " + path + " is not a regular file");
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error(who, "read", path, errno);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxContainerFile) return fail(who + ": " + path + " is too large");
  }
  return out;
}

Result<gid_t> group_to_host(int root_fd, pid_t leader, const std::string& group,
                            const std::string& who) {
  auto text = read_container_file(root_fd, "/etc/group", who);
  if (!text) return text.error();
  auto inside = etc::find_group(*text, group);
  if (!inside) return fail("group \"" + group + "\" does not exist in " + who);
  auto host = map_through(leader, "gid_map", "gid", inside->gid, who);
  if (!host) {
    return fail("group \"" + group + "\" (gid " + std::to_string(inside->gid) + ") of " + who +
                " is not mapped to the host");
  }
  return static_cast<gid_t>(*host);
}

// Opens the directory `dir` inside the container, creating what is missing
// with mode 0755, owned by the container's root.
Result<Fd> make_dirs_inside(int root_fd, const std::string& dir, const Owners& owners,
                            const std::string& who) {
  Fd cur(open_in_root(root_fd, "/", O_PATH | O_DIRECTORY));
  if (cur.get() < 0) return io_error(who, "open", "/", errno);
  std::string so_far;
  for (const auto& part : std::filesystem::path(dir).relative_path()) {
    const std::string name = part.string();
    so_far += "/" + name;
    int fd = open_in_root(root_fd, so_far, O_PATH | O_DIRECTORY);
    if (fd < 0 && errno == ENOENT) {
      // mkdirat never follows a symlink in the last component, and `cur` was
      // itself resolved inside the root.
      if (::mkdirat(cur.get(), name.c_str(), 0755) == 0) {
        // The umask must not narrow the mode; the owner is the container's.
        if (::fchownat(cur.get(), name.c_str(), owners.root_uid, owners.root_gid,
                       AT_SYMLINK_NOFOLLOW) != 0 ||
            ::fchmodat(cur.get(), name.c_str(), 0755, AT_SYMLINK_NOFOLLOW) != 0) {
          return io_error(who, "set up directory", so_far, errno);
        }
      } else if (errno != EEXIST) {
        return io_error(who, "create directory", so_far, errno);
      }
      fd = open_in_root(root_fd, so_far, O_PATH | O_DIRECTORY);
    }
    if (fd < 0) {
      if (errno == ENOTDIR) {
        return fail(who + ": cannot create directory " + so_far +
                    ": a non-directory is in the way");
      }
      return io_error(who, "create directory", so_far, errno);
    }
    cur = Fd(fd);
  }
  return cur;
}

// Opens an existing directory inside the container; an invalid fd if it is
// not there.
Result<Fd> open_dir_if_exists(int root_fd, const std::string& dir, const std::string& who) {
  Fd fd(open_in_root(root_fd, dir, O_PATH | O_DIRECTORY));
  if (fd.get() < 0 && errno != ENOENT && errno != ENOTDIR) {
    return io_error(who, "open", dir, errno);
  }
  return fd;
}

mode_t node_type(const NodeSpec& node) { return node.block ? S_IFBLK : S_IFCHR; }

bool is_our_node(const struct stat& st, const NodeSpec& node) {
  return (st.st_mode & S_IFMT) == node_type(node) &&
         st.st_rdev == ::makedev(node.major, node.minor);
}

// What a udev-style symlink at `link` holds to reach `devnode`: "../../ttyUSB0".
std::string link_target(const std::string& link, const std::string& devnode) {
  return std::filesystem::path(devnode).lexically_relative(parent_of(link)).string();
}

Result<std::optional<std::string>> read_link(int dir_fd, const std::string& name,
                                             const std::string& shown, const std::string& who) {
  char buf[PATH_MAX];
  ssize_t n = ::readlinkat(dir_fd, name.c_str(), buf, sizeof buf);
  if (n < 0) {
    // EINVAL: something other than a symlink is there.
    if (errno == ENOENT || errno == EINVAL) return std::optional<std::string>{};
    return io_error(who, "read", shown, errno);
  }
  return std::optional<std::string>(std::string(buf, static_cast<size_t>(n)));
}

// Removes what an agent killed between making a node or link under its
// temporary name and renaming it left in `dir_fd`: ".NAME.farmhand-*".
// Only farmhand makes such names, and only one agent runs.
void remove_stale_temporaries(int dir_fd, const std::string& name) {
  const int fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    ::close(fd);
    return;
  }
  const std::string prefix = "." + name + ".farmhand-";
  std::vector<std::string> stale;
  while (const dirent* e = ::readdir(d)) {
    if (std::string_view(e->d_name).rfind(prefix, 0) == 0) stale.emplace_back(e->d_name);
  }
  for (const auto& n : stale) ::unlinkat(dirfd(d), n.c_str(), 0);
  ::closedir(d);
}

// Creates the node under a temporary name, sets its owner and mode, then
// renames it over whatever is at `name` (a regular file, another device):
// the container never sees a node with the wrong owner or mode.
Status place_node(int dir_fd, const std::string& name, const NodeSpec& node, const Owners& owners,
                  const std::string& who) {
  remove_stale_temporaries(dir_fd, name);
  const std::string tmp = "." + name + ".farmhand-" + random_suffix();
  const mode_t mode = static_cast<mode_t>(node.mode & 07777);
  if (::mknodat(dir_fd, tmp.c_str(), node_type(node) | mode, ::makedev(node.major, node.minor)) !=
      0) {
    return io_error(who, "create", node.devnode, errno);
  }
  auto undo = [&](const std::string& what) {
    int err = errno;
    ::unlinkat(dir_fd, tmp.c_str(), 0);
    return io_error(who, what, node.devnode, err);
  };
  if (::fchownat(dir_fd, tmp.c_str(), owners.root_uid, owners.node_gid, AT_SYMLINK_NOFOLLOW) != 0) {
    return undo("chown");
  }
  if (::fchmodat(dir_fd, tmp.c_str(), mode, AT_SYMLINK_NOFOLLOW) != 0) return undo("chmod");
  if (::renameat(dir_fd, tmp.c_str(), dir_fd, name.c_str()) != 0) return undo("create");
  return {};
}

Status create_link(int root_fd, const std::string& link, const NodeSpec& node, const Owners& owners,
                   const std::string& who) {
  auto dir = make_dirs_inside(root_fd, parent_of(link), owners, who);
  if (!dir) return dir.error();
  const std::string name = name_of(link);
  const std::string target = link_target(link, node.devnode);
  remove_stale_temporaries(dir->get(), name);
  auto existing = read_link(dir->get(), name, link, who);
  if (!existing) return existing.error();
  if (existing->has_value() && **existing == target) return {};
  const std::string tmp = "." + name + ".farmhand-" + random_suffix();
  if (::symlinkat(target.c_str(), dir->get(), tmp.c_str()) != 0) {
    return io_error(who, "create", link, errno);
  }
  if (::fchownat(dir->get(), tmp.c_str(), owners.root_uid, owners.root_gid, AT_SYMLINK_NOFOLLOW) !=
          0 ||
      ::renameat(dir->get(), tmp.c_str(), dir->get(), name.c_str()) != 0) {
    int err = errno;
    ::unlinkat(dir->get(), tmp.c_str(), 0);
    return io_error(who, "create", link, err);
  }
  return {};
}

// Directories a detach may leave empty: the ones udev itself creates for
// serial links and raw USB nodes.
bool prunable(const std::string& dir) {
  if (dir == "/dev/serial" || dir.rfind("/dev/serial/", 0) == 0) return true;
  const std::string usb = "/dev/bus/usb/";
  return dir.size() > usb.size() && dir.rfind(usb, 0) == 0 &&
         dir.find('/', usb.size()) == std::string::npos;
}

Status prune_dirs(int root_fd, const NodeSpec& node, const std::string& who) {
  std::vector<std::string> dirs;
  auto add = [&](std::string dir) {
    while (prunable(dir)) {
      dirs.push_back(dir);
      dir = parent_of(dir);
    }
  };
  add(parent_of(node.devnode));
  for (const auto& link : node.links) add(parent_of(link));
  // Deepest first, so /dev/serial/by-id goes before /dev/serial.
  std::sort(dirs.begin(), dirs.end(), [](const std::string& a, const std::string& b) {
    auto depth = [](const std::string& s) { return std::count(s.begin(), s.end(), '/'); };
    return depth(a) != depth(b) ? depth(a) > depth(b) : a < b;
  });
  dirs.erase(std::unique(dirs.begin(), dirs.end()), dirs.end());
  for (const auto& dir : dirs) {
    auto parent = open_dir_if_exists(root_fd, parent_of(dir), who);
    if (!parent) return parent.error();
    if (parent->get() < 0) continue;
    if (::unlinkat(parent->get(), name_of(dir).c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT &&
        errno != ENOTEMPTY && errno != EEXIST && errno != ENOTDIR && errno != EBUSY) {
      return io_error(who, "remove", dir, errno);
    }
  }
  return {};
}

}  // namespace

std::optional<unsigned> map_id(const std::string& map_text, unsigned inside) {
  std::istringstream lines(map_text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    uint64_t first = 0, outside = 0, count = 0;
    if (!(fields >> first >> outside >> count)) continue;
    if (inside < first || inside - first >= count) continue;
    const uint64_t mapped = outside + (inside - first);
    if (mapped > UINT_MAX) return std::nullopt;
    return static_cast<unsigned>(mapped);
  }
  return std::nullopt;
}

std::optional<std::string> devices_cgroup_path(const std::string& proc_cgroup_text) {
  std::istringstream lines(proc_cgroup_text);
  std::string line;
  while (std::getline(lines, line)) {
    // hierarchy-id:controller-list:path; the path may itself hold ':'.
    const size_t c1 = line.find(':');
    if (c1 == std::string::npos) continue;
    const size_t c2 = line.find(':', c1 + 1);
    if (c2 == std::string::npos) continue;
    std::istringstream controllers(line.substr(c1 + 1, c2 - c1 - 1));
    std::string controller;
    while (std::getline(controllers, controller, ',')) {
      if (controller == "devices") return line.substr(c2 + 1);
    }
  }
  return std::nullopt;
}

Result<uid_t> container_uid_to_host(pid_t leader, uid_t inside) {
  auto mapped = map_through(leader, "uid_map", "uid", inside, shown_leader(leader));
  if (!mapped) return mapped.error();
  return static_cast<uid_t>(*mapped);
}

Result<gid_t> container_group_to_host_gid(pid_t leader, const std::string& group) {
  const std::string who = shown_leader(leader);
  auto root = open_container_root(leader, who);
  if (!root) return root.error();
  return group_to_host(root->get(), leader, group, who);
}

Status create_node(const ContainerRuntime& c, const NodeSpec& node) {
  const std::string who = shown_container(c);
  if (auto s = check_dev_path(node.devnode, who, "device node"); !s) return s;
  for (const auto& link : node.links) {
    if (auto s = check_dev_path(link, who, "link"); !s) return s;
    if (link == node.devnode) return fail(who + ": link \"" + link + "\" is the node itself");
  }
  auto root = open_container_root(c.leader, who);
  if (!root) return root.error();

  Owners owners;
  auto uid = map_through(c.leader, "uid_map", "uid", 0, who);
  if (!uid) return uid.error();
  owners.root_uid = *uid;
  auto gid = map_through(c.leader, "gid_map", "gid", 0, who);
  if (!gid) return gid.error();
  owners.root_gid = *gid;
  auto node_gid = group_to_host(root->get(), c.leader, node.group, who);
  if (!node_gid) return node_gid.error();
  owners.node_gid = *node_gid;

  auto dir = make_dirs_inside(root->get(), parent_of(node.devnode), owners, who);
  if (!dir) return dir.error();
  const std::string name = name_of(node.devnode);
  struct stat st {};
  const bool present = ::fstatat(dir->get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
  if (!present && errno != ENOENT) return io_error(who, "stat", node.devnode, errno);
  if (present && is_our_node(st, node)) {
    if (::fchownat(dir->get(), name.c_str(), owners.root_uid, owners.node_gid,
                   AT_SYMLINK_NOFOLLOW) != 0) {
      return io_error(who, "chown", node.devnode, errno);
    }
    if (::fchmodat(dir->get(), name.c_str(), static_cast<mode_t>(node.mode & 07777),
                   AT_SYMLINK_NOFOLLOW) != 0) {
      return io_error(who, "chmod", node.devnode, errno);
    }
  } else if (auto s = place_node(dir->get(), name, node, owners, who); !s) {
    return s;
  }

  for (const auto& link : node.links) {
    if (auto s = create_link(root->get(), link, node, owners, who); !s) return s;
  }
  return {};
}

namespace {

// Removes the links of `node` that lead to its node, below `root`.
Status remove_own_links(int root, const NodeSpec& node, const std::string& who) {
  for (const auto& link : node.links) {
    auto dir = open_dir_if_exists(root, parent_of(link), who);
    if (!dir) return dir.error();
    if (dir->get() < 0) continue;
    const std::string name = name_of(link);
    remove_stale_temporaries(dir->get(), name);
    auto existing = read_link(dir->get(), name, link, who);
    if (!existing) return existing.error();
    // Only our own link: the name may already lead to another device.
    if (!existing->has_value() || **existing != link_target(link, node.devnode)) continue;
    if (::unlinkat(dir->get(), name.c_str(), 0) != 0 && errno != ENOENT) {
      return io_error(who, "remove", link, errno);
    }
  }
  return {};
}

// Removes the links of `node` that lead to its node and, with `with_node`,
// the node itself, inside the container.
Status remove_in_container(const ContainerRuntime& c, const NodeSpec& node, bool with_node) {
  const std::string who = shown_container(c);
  if (with_node) {
    if (auto s = check_dev_path(node.devnode, who, "device node"); !s) return s;
  }
  for (const auto& link : node.links) {
    if (auto s = check_dev_path(link, who, "link"); !s) return s;
  }
  auto root = open_container_root(c.leader, who);
  if (!root) {
    // The container is gone, and its /dev with it.
    if (c.leader > 0 && !path_exists("/proc/" + std::to_string(c.leader))) return {};
    return root.error();
  }
  if (auto s = remove_own_links(root->get(), node, who); !s) return s;
  if (!with_node) return prune_dirs(root->get(), node, who);

  auto dir = open_dir_if_exists(root->get(), parent_of(node.devnode), who);
  if (!dir) return dir.error();
  if (dir->get() >= 0) {
    const std::string name = name_of(node.devnode);
    remove_stale_temporaries(dir->get(), name);
    struct stat st {};
    if (::fstatat(dir->get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      if (is_our_node(st, node) && ::unlinkat(dir->get(), name.c_str(), 0) != 0 &&
          errno != ENOENT) {
        return io_error(who, "remove", node.devnode, errno);
      }
    } else if (errno != ENOENT && errno != ENOTDIR) {
      return io_error(who, "stat", node.devnode, errno);
    }
  }
  return prune_dirs(root->get(), node, who);
}

}  // namespace

Status remove_links(const ContainerRuntime& c, const NodeSpec& node) { return remove_in_container(c, node, false); }

Status remove_node(const ContainerRuntime& c, const NodeSpec& node) { return remove_in_container(c, node, true); }

namespace {

// Writes "c MAJ:MIN rw" lines into the leader's own v1 devices cgroup.
class CgroupV1Access : public DeviceAccess {
 public:
  explicit CgroupV1Access(std::string devices_root) : devices_root_(std::move(devices_root)) {}

  Status allow(const ContainerRuntime& c, const NodeSpec& node) override {
    return write(c, node, "devices.allow", "allow");
  }
  Status revoke(const ContainerRuntime& c, const NodeSpec& node) override {
    return write(c, node, "devices.deny", "revoke");
  }

 private:
  Result<std::string> cgroup_dir(const ContainerRuntime& c, const std::string& who) const {
    if (c.leader <= 0) return fail(who + ": no leader pid (is it running?)");
    const std::string proc = "/proc/" + std::to_string(c.leader) + "/cgroup";
    auto text = read_file(proc);
    if (!text) return text.error().context(who);
    auto path = devices_cgroup_path(*text);
    if (!path) {
      return fail(who + ": pid " + std::to_string(c.leader) +
                  " is in no cgroup v1 \"devices\" hierarchy (" + proc +
                  " has no devices line; a pure cgroup v2 host?)");
    }
    if (path->empty() || path->front() != '/') {
      return fail(who + ": unexpected devices cgroup \"" + *path + "\" in " + proc);
    }
    for (const auto& part : std::filesystem::path(*path)) {
      if (part == "..") {
        return fail(who + ": devices cgroup \"" + *path + "\" in " + proc +
                    " lies outside this cgroup namespace");
      }
    }
    // The root cgroup is the whole host: allowing there means nothing and
    // revoking would take the device from every process.
    if (*path == "/") {
      return fail(who + ": pid " + std::to_string(c.leader) +
                  " is in the root devices cgroup; refusing to change device access for the "
                  "whole host");
    }
    return devices_root_ + *path;
  }

  Status write(const ContainerRuntime& c, const NodeSpec& node, const char* file,
               const char* verb) const {
    const std::string who = shown_container(c);
    auto dir = cgroup_dir(c, who);
    if (!dir) return dir.error();
    const std::string path = *dir + "/" + file;
    const std::string entry = std::string(node.block ? "b " : "c ") + std::to_string(node.major) +
                              ":" + std::to_string(node.minor) + " rw";
    // A kernel file: written in place, one entry per write(2).
    Fd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    ssize_t n = -1;
    if (fd.get() >= 0) {
      do {
        n = ::write(fd.get(), entry.data(), entry.size());
      } while (n < 0 && errno == EINTR);
    }
    if (n != static_cast<ssize_t>(entry.size())) {
      const int err = n < 0 ? errno : EIO;
      return fail(who + ": cannot " + verb + " " + entry.substr(0, entry.size() - 3) + " in " +
                  path + ": " + errno_text(err));
    }
    return {};
  }

  std::string devices_root_;
};

}  // namespace

std::unique_ptr<DeviceAccess> make_cgroup_v1_access(std::string devices_root) {
  while (devices_root.size() > 1 && devices_root.back() == '/') devices_root.pop_back();
  return std::make_unique<CgroupV1Access>(std::move(devices_root));
}

}  // namespace farmhand::udev
