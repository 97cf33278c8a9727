// Device access through farmhand's BPF device program on a cgroup v2 host:
// which program and map each container's cgroup keeps (attached once,
// reused after an agent restart, replaced when another base set is built),
// the map updates that allow and revoke, the pins in bpffs, and which
// mechanism a host gets. The program and the raw bpf(2) calls are in
// udev/bpf_devices_kernel.cpp.
#include "udev/bpf_devices.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <random>
#include <sstream>

#include "common/fs.h"
#include "common/log.h"
#include "udev/bpf_devices_kernel.h"

namespace farmhand::udev {

namespace {

// ---- bpffs -----------------------------------------------------------------

std::string random_suffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string s(8, 'x');
  for (auto& ch : s) ch = kAlphabet[rng() % (sizeof kAlphabet - 1)];
  return s;
}

Status ensure_bpffs(const std::string& root) {
  struct statfs st {};
  if (::statfs(root.c_str(), &st) == 0 && static_cast<unsigned long>(st.f_type) == BPF_FS_MAGIC) return {};
  if (auto s = make_dirs(root, 0700); !s) return s;
  // Like systemd's own /sys/fs/bpf: only root may look inside.
  if (::mount("bpf", root.c_str(), "bpf", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700") != 0) {
    return fail("cannot mount bpffs on " + root + ": " + errno_text(errno));
  }
  return {};
}

// The id of what is pinned at `path`; 0 if nothing is.
uint32_t pinned_id(const std::string& path, bool map) {
  bpf_attr attr{};
  attr.pathname = bpf::user_ptr(path.c_str());
  UniqueFd fd(bpf::call(BPF_OBJ_GET, attr));
  if (fd.get() < 0) return 0;
  if (map) {
    auto info = bpf::map_info(fd.get());
    return info ? info->id : 0;
  }
  auto info = bpf::prog_info(fd.get());
  return info ? info->id : 0;
}

// Pins `fd` at dir/name unless it is already there. A pin is made under a
// temporary name and renamed over the old one, so the name never leads to
// nothing.
Status pin(int fd, uint32_t id, bool map, const std::string& dir, const std::string& name) {
  const std::string path = dir + "/" + name;
  if (pinned_id(path, map) == id) return {};
  // bpffs refuses names with a dot ("reserved for future use").
  const std::string tmp = dir + "/new-" + name + "-" + random_suffix();
  bpf_attr attr{};
  attr.pathname = bpf::user_ptr(tmp.c_str());
  attr.bpf_fd = static_cast<uint32_t>(fd);
  if (bpf::call(BPF_OBJ_PIN, attr) != 0) return fail("cannot pin " + path + ": " + errno_text(errno));
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return fail("cannot pin " + path + ": " + errno_text(err));
  }
  return {};
}

// ---- parsing ---------------------------------------------------------------

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape(const std::string& s) {
  auto octal = [](char ch) { return ch >= '0' && ch <= '7'; };
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && octal(s[i + 1]) && octal(s[i + 2]) && octal(s[i + 3])) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

struct Mount {
  std::string root;         // the path inside the filesystem that is mounted
  std::string mount_point;
  std::string fstype;
  std::string super_options;
};

// "36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices"
std::vector<Mount> parse_mountinfo(const std::string& text) {
  std::vector<Mount> out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream in(line);
    std::vector<std::string> f;
    std::string word;
    while (in >> word) f.push_back(word);
    // Optional fields end with "-"; it is never among the first six.
    size_t dash = 6;
    while (dash < f.size() && f[dash] != "-") ++dash;
    if (f.size() < 6 || dash + 2 >= f.size()) continue;
    Mount m;
    m.root = unescape(f[3]);
    m.mount_point = unescape(f[4]);
    m.fstype = f[dash + 1];
    m.super_options = dash + 3 < f.size() ? f[dash + 3] : "";
    out.push_back(std::move(m));
  }
  return out;
}

bool has_cgroup2(const std::string& mountinfo_text) {
  for (const auto& m : parse_mountinfo(mountinfo_text)) {
    if (m.fstype == "cgroup2") return true;
  }
  return false;
}

// ---- the access ------------------------------------------------------------

std::string shown_container(const ContainerRuntime& c) { return "container \"" + c.name + "\""; }

std::string shown_device(const NodeSpec& node) {
  return std::string(node.block ? "b " : "c ") + std::to_string(node.major) + ":" + std::to_string(node.minor);
}

class CgroupBpfAccess : public DeviceAccess {
 public:
  explicit CgroupBpfAccess(BpfDeviceOptions options)
      : options_(std::move(options)), program_name_(device_program_name(options_.base)) {}

  Status allow(const ContainerRuntime& c, const NodeSpec& node) override {
    const std::string who = shown_container(c);
    std::lock_guard<std::mutex> hold(mu_);
    auto map = program_map(c, who);
    if (!map) return map.error();
    const DeviceKey key = device_key(node);
    const uint32_t value = lease_access();
    bpf_attr attr{};
    attr.map_fd = static_cast<uint32_t>(map->fd.get());
    attr.key = bpf::user_ptr(&key);
    attr.value = bpf::user_ptr(&value);
    attr.flags = BPF_ANY;
    if (bpf::call(BPF_MAP_UPDATE_ELEM, attr) != 0) {
      return fail(who + ": cannot allow " + shown_device(node) + " in the device map of " + map->dir + ": " +
                  errno_text(errno));
    }
    return {};
  }

  Status revoke(const ContainerRuntime& c, const NodeSpec& node) override {
    const std::string who = shown_container(c);
    std::lock_guard<std::mutex> hold(mu_);
    // Even with nothing to delete, the program must be there: a revoked
    // device is denied only once something denies it.
    auto map = program_map(c, who);
    if (!map) return map.error();
    const DeviceKey key = device_key(node);
    bpf_attr attr{};
    attr.map_fd = static_cast<uint32_t>(map->fd.get());
    attr.key = bpf::user_ptr(&key);
    if (bpf::call(BPF_MAP_DELETE_ELEM, attr) != 0 && errno != ENOENT) {
      return fail(who + ": cannot revoke " + shown_device(node) + " in the device map of " + map->dir + ": " +
                  errno_text(errno));
    }
    return {};
  }

 private:
  struct DeviceMap {
    UniqueFd fd;
    std::string dir;  // the cgroup's
  };

  // The container's cgroup v2 directory, from its leader.
  static Result<std::string> cgroup_dir(const ContainerRuntime& c, const std::string& who) {
    if (c.leader <= 0) return fail(who + ": no leader pid (is it running?)");
    const std::string proc = "/proc/" + std::to_string(c.leader) + "/cgroup";
    auto text = read_file(proc);
    if (!text) return text.error().context(who);
    auto path = unified_cgroup_path(*text);
    if (!path) {
      return fail(who + ": pid " + std::to_string(c.leader) + " is in no cgroup v2 hierarchy (" + proc +
                  " has no \"0::\" line)");
    }
    if (path->empty() || path->front() != '/') {
      return fail(who + ": unexpected cgroup \"" + *path + "\" in " + proc);
    }
    for (const auto& part : std::filesystem::path(*path)) {
      if (part == "..") {
        return fail(who + ": cgroup \"" + *path + "\" in " + proc + " lies outside this cgroup namespace");
      }
    }
    // A program on the root cgroup would gate every process of the host.
    if (*path == "/") {
      return fail(who + ": pid " + std::to_string(c.leader) +
                  " is in the root cgroup; refusing to change device access for the whole host");
    }
    auto mountinfo = read_file("/proc/self/mountinfo");
    if (!mountinfo) return mountinfo.error().context(who);
    auto dir = cgroup2_directory(*mountinfo, *path);
    if (!dir) return fail(who + ": no cgroup2 mount shows cgroup " + *path + " (/proc/self/mountinfo)");
    return *dir;
  }

  // The pins of one container: a plain name, never a path.
  Result<std::string> pin_dir(const ContainerRuntime& c, const std::string& who) const {
    // bpffs refuses any name with a dot in it.
    if (c.name.empty() || c.name.find_first_of("/.") != std::string::npos || c.name.size() > 200) {
      return fail(who + ": the name cannot be a bpffs directory");
    }
    return options_.pin_root + "/farmhand/" + c.name;
  }

  // The map of farmhand's program on the container's cgroup, attaching the
  // program first if it is not there.
  Result<DeviceMap> program_map(const ContainerRuntime& c, const std::string& who) {
    auto pins = pin_dir(c, who);
    if (!pins) return pins.error();
    auto dir = cgroup_dir(c, who);
    if (!dir) return dir.error();
    UniqueFd cgroup(::open(dir->c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (cgroup.get() < 0) return fail(who + ": cannot open " + *dir + ": " + errno_text(errno));
    auto attached = bpf::programs_on(cgroup.get(), *dir);
    if (!attached) return attached.error().context(who);

    std::vector<bpf::Program*> ours;
    for (auto& p : *attached) {
      if (bpf::is_ours(p.info)) ours.push_back(&p);
    }
    std::optional<UniqueFd> map;
    std::optional<UniqueFd> prog;
    uint32_t map_id = 0;
    if (ours.empty()) {
      auto made = bpf::create_map();
      if (!made) return made.error().context(who);
      map.emplace(std::move(*made));
      auto info = bpf::map_info(map->get());
      if (!info) return info.error().context(who);
      map_id = info->id;
      auto loaded = bpf::load_program(options_.base, map->get());
      if (!loaded) return loaded.error().context(who);
      prog.emplace(std::move(*loaded));
      if (auto s = bpf::attach(cgroup.get(), prog->get(), *dir, !attached->empty()); !s) {
        return s.error().context(who);
      }
    } else {
      // Another instance (an agent before its restart) attached it: keep
      // its map, and with it every grant.
      bpf::Program* kept = ours.front();
      for (bpf::Program* p : ours) {
        if (p->info.name == program_name_) {
          kept = p;
          break;
        }
      }
      if (kept->info.map_ids.size() != 1 || kept->info.map_ids.front() == 0) {
        return fail(who + ": device program " + std::to_string(kept->info.id) + " on " + *dir +
                    " does not use exactly one map");
      }
      map_id = kept->info.map_ids.front();
      auto found = bpf::map_by_id(map_id);
      if (!found) return found.error().context(who);
      if (auto s = bpf::check_map(found->get(), map_id); !s) return s.error().context(who);
      map.emplace(std::move(*found));
      if (kept->info.name == program_name_) {
        prog.emplace(kept->fd.release());
      } else {
        // Built from another base set. The new program goes on before the
        // old one comes off: meanwhile both must allow, which is narrower.
        auto loaded = bpf::load_program(options_.base, map->get());
        if (!loaded) return loaded.error().context(who);
        prog.emplace(std::move(*loaded));
        if (auto s = bpf::attach(cgroup.get(), prog->get(), *dir, true); !s) return s.error().context(who);
        if (auto s = bpf::detach(cgroup.get(), kept->fd.get(), kept->info.id, *dir); !s) {
          return s.error().context(who);
        }
        log::notice(who, ": replaced device program ", kept->info.name, " on ", *dir, " with ", program_name_);
      }
      // Leftovers of an interrupted replacement read the same map: without
      // them only the base set changes, to the one now in force.
      for (bpf::Program* p : ours) {
        if (p == kept) continue;
        if (p->info.map_ids == std::vector<uint32_t>{map_id}) {
          if (auto s = bpf::detach(cgroup.get(), p->fd.get(), p->info.id, *dir); !s) return s.error().context(who);
        } else {
          log::warning(who, ": leaving device program ", p->info.id, " (", p->info.name, ") on ", *dir,
                       ": it reads another map");
        }
      }
    }

    // The pins let an admin see what is in force (bpftool map dump pinned
    // .../map); the grants hold without them, as long as the cgroup lives.
    auto prog_id = bpf::prog_info(prog->get());
    Status pinned = prog_id ? Status{} : Status(prog_id.error());
    if (pinned) pinned = ensure_bpffs(options_.pin_root);
    if (pinned) pinned = make_dirs(*pins, 0700);
    if (pinned) pinned = pin(map->get(), map_id, true, *pins, "map");
    if (pinned) pinned = pin(prog->get(), prog_id->id, false, *pins, "prog");
    if (!pinned) log::warning(who, ": device program on ", *dir, " works but is not pinned: ", pinned.error().message());
    return DeviceMap{std::move(*map), *dir};
  }

  BpfDeviceOptions options_;
  std::string program_name_;
  std::mutex mu_;
};

}  // namespace

std::optional<std::string> unified_cgroup_path(const std::string& proc_cgroup_text) {
  std::istringstream lines(proc_cgroup_text);
  std::string line;
  while (std::getline(lines, line)) {
    // cgroup v2's line has hierarchy 0 and no controllers.
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  }
  return std::nullopt;
}

std::optional<std::string> cgroup2_directory(const std::string& mountinfo_text, const std::string& cgroup) {
  for (const auto& m : parse_mountinfo(mountinfo_text)) {
    if (m.fstype != "cgroup2") continue;
    // A mount may show only a subtree (root "/machine.slice"): the cgroup
    // must lie inside it.
    std::string rest;
    if (m.root == "/") {
      rest = cgroup;
    } else if (cgroup == m.root) {
      rest = "";
    } else if (cgroup.rfind(m.root + "/", 0) == 0) {
      rest = cgroup.substr(m.root.size());
    } else {
      continue;
    }
    if (rest == "/") rest = "";
    return m.mount_point == "/" ? (rest.empty() ? "/" : rest) : m.mount_point + rest;
  }
  return std::nullopt;
}

bool has_v1_devices_controller(const std::string& mountinfo_text) {
  for (const auto& m : parse_mountinfo(mountinfo_text)) {
    if (m.fstype != "cgroup") continue;
    std::istringstream options(m.super_options);
    std::string option;
    while (std::getline(options, option, ',')) {
      if (option == "devices") return true;
    }
  }
  return false;
}

DeviceMechanism device_mechanism_for(const std::string& mountinfo_text) {
  if (has_v1_devices_controller(mountinfo_text)) return DeviceMechanism::kCgroupV1;
  if (has_cgroup2(mountinfo_text)) return DeviceMechanism::kCgroupBpf;
  return DeviceMechanism::kCgroupV1;
}

std::unique_ptr<DeviceAccess> make_cgroup_bpf_access(BpfDeviceOptions options) {
  while (options.pin_root.size() > 1 && options.pin_root.back() == '/') options.pin_root.pop_back();
  return std::make_unique<CgroupBpfAccess>(std::move(options));
}

Result<std::vector<AttachedProgram>> device_programs_on(const std::string& cgroup_dir) {
  UniqueFd cgroup(::open(cgroup_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (cgroup.get() < 0) return fail("cannot open " + cgroup_dir + ": " + errno_text(errno));
  auto programs = bpf::programs_on(cgroup.get(), cgroup_dir);
  if (!programs) return programs.error();
  std::vector<AttachedProgram> out;
  for (const auto& p : *programs) out.push_back(AttachedProgram{p.info.id, p.info.name});
  return out;
}

std::unique_ptr<DeviceAccess> make_device_access_for_host() {
  auto mountinfo = read_file("/proc/self/mountinfo");
  if (!mountinfo) {
    log::warning("devices: ", mountinfo.error().message(), "; using cgroup v1 devices.allow");
    return make_cgroup_v1_access();
  }
  if (device_mechanism_for(*mountinfo) == DeviceMechanism::kCgroupBpf) {
    log::info("devices: no cgroup v1 devices controller; container device access through farmhand's BPF "
              "device program (pinned under /sys/fs/bpf/farmhand)");
    return make_cgroup_bpf_access();
  }
  return make_cgroup_v1_access();
}

}  // namespace farmhand::udev
