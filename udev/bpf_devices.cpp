#include "udev/bpf_devices.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <random>
#include <sstream>

#include "common/fs.h"
#include "common/log.h"

namespace farmhand::udev {

namespace {

constexpr uint32_t kReadWriteMknod = BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD;
// Far more than a container ever leases; a full map refuses further leases
// with an error rather than allowing anything.
constexpr uint32_t kMapEntries = 1024;
constexpr const char* kMapName = "fhdev_leases";

// ---- the program -----------------------------------------------------------

bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  bpf_insn i{};
  i.code = code;
  i.dst_reg = dst & 0xf;
  i.src_reg = src & 0xf;
  i.off = off;
  i.imm = imm;
  return i;
}

// Straight-line code with forward jumps to labels, patched at the end.
class Assembler {
 public:
  using Label = size_t;
  Label label() {
    targets_.push_back(kUnbound);
    return targets_.size() - 1;
  }
  void bind(Label l) { targets_[l] = code_.size(); }
  void emit(bpf_insn i) { code_.push_back(i); }
  // if (dst OP imm) goto l
  void jump_imm(uint8_t op, uint8_t dst, int32_t imm, Label l) {
    fixups_.push_back({code_.size(), l});
    emit(insn(BPF_JMP | op | BPF_K, dst, 0, 0, imm));
  }
  // if (dst OP src) goto l
  void jump_reg(uint8_t op, uint8_t dst, uint8_t src, Label l) {
    fixups_.push_back({code_.size(), l});
    emit(insn(BPF_JMP | op | BPF_X, dst, src, 0, 0));
  }
  std::vector<bpf_insn> finish() {
    for (const auto& [at, l] : fixups_) {
      // Offsets count from the instruction after the jump.
      code_[at].off = static_cast<int16_t>(static_cast<long>(targets_[l]) - static_cast<long>(at) - 1);
    }
    return std::move(code_);
  }

 private:
  static constexpr size_t kUnbound = static_cast<size_t>(-1);
  std::vector<bpf_insn> code_;
  std::vector<size_t> targets_;
  std::vector<std::pair<size_t, Label>> fixups_;
};

bpf_insn load_u32(uint8_t dst, uint8_t base, int16_t off) {
  return insn(BPF_LDX | BPF_MEM | BPF_W, dst, base, off, 0);
}
bpf_insn store_u32(uint8_t base, int16_t off, uint8_t src) {
  return insn(BPF_STX | BPF_MEM | BPF_W, base, src, off, 0);
}
bpf_insn alu_imm(uint8_t op, uint8_t dst, int32_t imm) {
  return insn(BPF_ALU64 | op | BPF_K, dst, 0, 0, imm);
}
bpf_insn alu_reg(uint8_t op, uint8_t dst, uint8_t src) {
  return insn(BPF_ALU64 | op | BPF_X, dst, src, 0, 0);
}

// The map key's place on the program's stack, below the frame pointer.
constexpr int16_t kKeyOnStack = -16;
static_assert(-kKeyOnStack >= static_cast<int>(sizeof(DeviceKey)));
int16_t key_at(size_t field) { return static_cast<int16_t>(kKeyOnStack + static_cast<int>(field)); }
int16_t ctx_at(size_t field) { return static_cast<int16_t>(field); }

uint32_t dev_type(bool block) { return block ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR; }

// ---- bpf(2) ----------------------------------------------------------------

uint64_t user_ptr(const void* p) { return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p)); }

// The kernel wants every byte of bpf_attr past the command's fields zero:
// callers start from bpf_attr{} and the whole union is passed.
int bpf_call(int cmd, bpf_attr& attr) {
  for (int tries = 0;; ++tries) {
    long r = ::syscall(__NR_bpf, cmd, &attr, sizeof attr);
    // The verifier may ask to be called again (EAGAIN) under memory pressure.
    if (r < 0 && (errno == EINTR || (errno == EAGAIN && cmd == BPF_PROG_LOAD)) && tries < 5) continue;
    return static_cast<int>(r);
  }
}

struct ProgInfo {
  uint32_t id = 0;
  std::string name;
  std::vector<uint32_t> map_ids;
};

Result<ProgInfo> prog_info(int fd) {
  uint32_t maps[8] = {};
  bpf_prog_info info{};
  info.nr_map_ids = sizeof maps / sizeof maps[0];
  info.map_ids = user_ptr(maps);
  bpf_attr attr{};
  attr.info.bpf_fd = static_cast<uint32_t>(fd);
  attr.info.info_len = sizeof info;
  attr.info.info = user_ptr(&info);
  if (bpf_call(BPF_OBJ_GET_INFO_BY_FD, attr) < 0) {
    return fail("cannot read a BPF program's info: " + errno_text(errno));
  }
  ProgInfo out;
  out.id = info.id;
  out.name = std::string(info.name, strnlen(info.name, sizeof info.name));
  for (uint32_t i = 0; i < info.nr_map_ids && i < sizeof maps / sizeof maps[0]; ++i) {
    out.map_ids.push_back(maps[i]);
  }
  if (info.nr_map_ids > sizeof maps / sizeof maps[0]) out.map_ids.push_back(0);  // "too many"
  return out;
}

Result<bpf_map_info> map_info(int fd) {
  bpf_map_info info{};
  bpf_attr attr{};
  attr.info.bpf_fd = static_cast<uint32_t>(fd);
  attr.info.info_len = sizeof info;
  attr.info.info = user_ptr(&info);
  if (bpf_call(BPF_OBJ_GET_INFO_BY_FD, attr) < 0) {
    return fail("cannot read a BPF map's info: " + errno_text(errno));
  }
  return info;
}

// The ids of the device programs attached directly to a cgroup.
Result<std::vector<uint32_t>> query_programs(int cgroup_fd, const std::string& dir) {
  std::vector<uint32_t> ids(16);
  for (;;) {
    bpf_attr attr{};
    attr.query.target_fd = static_cast<uint32_t>(cgroup_fd);
    attr.query.attach_type = BPF_CGROUP_DEVICE;
    attr.query.prog_ids = user_ptr(ids.data());
    attr.query.prog_cnt = static_cast<uint32_t>(ids.size());
    if (bpf_call(BPF_PROG_QUERY, attr) == 0) {
      ids.resize(attr.query.prog_cnt);
      return ids;
    }
    // ENOSPC: more programs than room; prog_cnt says how many.
    if (errno == ENOSPC && attr.query.prog_cnt > ids.size()) {
      ids.resize(attr.query.prog_cnt);
      continue;
    }
    return fail("cannot list the device programs of " + dir + ": " + errno_text(errno));
  }
}

// A program by id; an invalid fd if it went away meanwhile.
Result<UniqueFd> program_by_id(uint32_t id) {
  bpf_attr attr{};
  attr.prog_id = id;
  UniqueFd fd(bpf_call(BPF_PROG_GET_FD_BY_ID, attr));
  if (fd.get() < 0 && errno != ENOENT) {
    return fail("cannot open BPF program " + std::to_string(id) + ": " + errno_text(errno));
  }
  return fd;
}

struct Program {
  UniqueFd fd;
  ProgInfo info;
};

Result<std::vector<Program>> programs_on(int cgroup_fd, const std::string& dir) {
  auto ids = query_programs(cgroup_fd, dir);
  if (!ids) return ids.error();
  std::vector<Program> out;
  for (uint32_t id : *ids) {
    auto fd = program_by_id(id);
    if (!fd) return fd.error();
    if (fd->get() < 0) continue;  // detached meanwhile
    auto info = prog_info(fd->get());
    if (!info) return info.error();
    out.push_back(Program{std::move(*fd), std::move(*info)});
  }
  return out;
}

bool is_ours(const ProgInfo& info) { return info.name.rfind(kDeviceProgramPrefix, 0) == 0; }

Result<UniqueFd> create_map() {
  bpf_attr attr{};
  attr.map_type = BPF_MAP_TYPE_HASH;
  attr.key_size = sizeof(DeviceKey);
  attr.value_size = sizeof(uint32_t);
  attr.max_entries = kMapEntries;
  std::snprintf(attr.map_name, sizeof attr.map_name, "%s", kMapName);
  UniqueFd fd(bpf_call(BPF_MAP_CREATE, attr));
  if (fd.get() < 0) return fail("cannot create the device map: " + errno_text(errno));
  return fd;
}

Result<UniqueFd> map_by_id(uint32_t id) {
  bpf_attr attr{};
  attr.map_id = id;
  UniqueFd fd(bpf_call(BPF_MAP_GET_FD_BY_ID, attr));
  if (fd.get() < 0) return fail("cannot open BPF map " + std::to_string(id) + ": " + errno_text(errno));
  return fd;
}

// A map farmhand can use: the one layout every farmhand program reads.
Status check_map(int fd, uint32_t id) {
  auto info = map_info(fd);
  if (!info) return info.error();
  if (info->type != BPF_MAP_TYPE_HASH || info->key_size != sizeof(DeviceKey) ||
      info->value_size != sizeof(uint32_t)) {
    return fail("BPF map " + std::to_string(id) + " is not a farmhand device map (type " +
                std::to_string(info->type) + ", key " + std::to_string(info->key_size) + " bytes, value " +
                std::to_string(info->value_size) + " bytes)");
  }
  return {};
}

Result<UniqueFd> load_program(const std::vector<BaseDevice>& base, int map_fd) {
  const auto code = device_program(base, map_fd);
  const std::string name = device_program_name(base);
  // The kernel checks the license only for GPL-only helpers; the map
  // lookup this program calls is not one.
  static const char kLicense[] = "GPL";
  auto load = [&](char* log, uint32_t log_size) {
    bpf_attr attr{};
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    attr.expected_attach_type = BPF_CGROUP_DEVICE;
    attr.insns = user_ptr(code.data());
    attr.insn_cnt = static_cast<uint32_t>(code.size());
    attr.license = user_ptr(kLicense);
    std::snprintf(attr.prog_name, sizeof attr.prog_name, "%s", name.c_str());
    if (log != nullptr) {
      attr.log_level = 1;
      attr.log_buf = user_ptr(log);
      attr.log_size = log_size;
    }
    return UniqueFd(bpf_call(BPF_PROG_LOAD, attr));
  };
  UniqueFd fd = load(nullptr, 0);
  if (fd.get() >= 0) return fd;
  const int err = errno;
  // Again with the verifier's log, for the message only.
  std::vector<char> log(65536, '\0');
  UniqueFd again = load(log.data(), static_cast<uint32_t>(log.size()));
  if (again.get() >= 0) return again;
  std::string why(log.data(), strnlen(log.data(), log.size()));
  while (!why.empty() && why.back() == '\n') why.pop_back();
  const size_t last = why.rfind('\n');
  if (last != std::string::npos) why = why.substr(last + 1);
  return fail("cannot load the device program: " + errno_text(err) + (why.empty() ? "" : " (verifier: " + why + ")"));
}

Status attach(int cgroup_fd, int prog_fd, const std::string& dir, bool others_attached) {
  bpf_attr attr{};
  attr.target_fd = static_cast<uint32_t>(cgroup_fd);
  attr.attach_bpf_fd = static_cast<uint32_t>(prog_fd);
  attr.attach_type = BPF_CGROUP_DEVICE;
  // MULTI: every program on the cgroup must allow; ours only narrows.
  attr.attach_flags = BPF_F_ALLOW_MULTI;
  if (bpf_call(BPF_PROG_ATTACH, attr) == 0) return {};
  const int err = errno;
  std::string hint;
  if (err == EPERM && others_attached) {
    hint = " (another device program is attached there without BPF_F_ALLOW_MULTI)";
  }
  return fail("cannot attach the device program to " + dir + ": " + errno_text(err) + hint);
}

Status detach(int cgroup_fd, int prog_fd, uint32_t id, const std::string& dir) {
  bpf_attr attr{};
  attr.target_fd = static_cast<uint32_t>(cgroup_fd);
  attr.attach_bpf_fd = static_cast<uint32_t>(prog_fd);
  attr.attach_type = BPF_CGROUP_DEVICE;
  if (bpf_call(BPF_PROG_DETACH, attr) == 0 || errno == ENOENT) return {};
  return fail("cannot detach device program " + std::to_string(id) + " from " + dir + ": " +
              errno_text(errno));
}

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
  attr.pathname = user_ptr(path.c_str());
  UniqueFd fd(bpf_call(BPF_OBJ_GET, attr));
  if (fd.get() < 0) return 0;
  if (map) {
    auto info = map_info(fd.get());
    return info ? info->id : 0;
  }
  auto info = prog_info(fd.get());
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
  attr.pathname = user_ptr(tmp.c_str());
  attr.bpf_fd = static_cast<uint32_t>(fd);
  if (bpf_call(BPF_OBJ_PIN, attr) != 0) return fail("cannot pin " + path + ": " + errno_text(errno));
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
    attr.key = user_ptr(&key);
    attr.value = user_ptr(&value);
    attr.flags = BPF_ANY;
    if (bpf_call(BPF_MAP_UPDATE_ELEM, attr) != 0) {
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
    attr.key = user_ptr(&key);
    if (bpf_call(BPF_MAP_DELETE_ELEM, attr) != 0 && errno != ENOENT) {
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
    auto attached = programs_on(cgroup.get(), *dir);
    if (!attached) return attached.error().context(who);

    std::vector<Program*> ours;
    for (auto& p : *attached) {
      if (is_ours(p.info)) ours.push_back(&p);
    }
    std::optional<UniqueFd> map;
    std::optional<UniqueFd> prog;
    uint32_t map_id = 0;
    if (ours.empty()) {
      auto made = create_map();
      if (!made) return made.error().context(who);
      map.emplace(std::move(*made));
      auto info = map_info(map->get());
      if (!info) return info.error().context(who);
      map_id = info->id;
      auto loaded = load_program(options_.base, map->get());
      if (!loaded) return loaded.error().context(who);
      prog.emplace(std::move(*loaded));
      if (auto s = attach(cgroup.get(), prog->get(), *dir, !attached->empty()); !s) {
        return s.error().context(who);
      }
    } else {
      // Another instance (an agent before its restart) attached it: keep
      // its map, and with it every grant.
      Program* kept = ours.front();
      for (Program* p : ours) {
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
      auto found = map_by_id(map_id);
      if (!found) return found.error().context(who);
      if (auto s = check_map(found->get(), map_id); !s) return s.error().context(who);
      map.emplace(std::move(*found));
      if (kept->info.name == program_name_) {
        prog.emplace(kept->fd.release());
      } else {
        // Built from another base set. The new program goes on before the
        // old one comes off: meanwhile both must allow, which is narrower.
        auto loaded = load_program(options_.base, map->get());
        if (!loaded) return loaded.error().context(who);
        prog.emplace(std::move(*loaded));
        if (auto s = attach(cgroup.get(), prog->get(), *dir, true); !s) return s.error().context(who);
        if (auto s = detach(cgroup.get(), kept->fd.get(), kept->info.id, *dir); !s) {
          return s.error().context(who);
        }
        log::notice(who, ": replaced device program ", kept->info.name, " on ", *dir, " with ", program_name_);
      }
      // Leftovers of an interrupted replacement read the same map: without
      // them only the base set changes, to the one now in force.
      for (Program* p : ours) {
        if (p == kept) continue;
        if (p->info.map_ids == std::vector<uint32_t>{map_id}) {
          if (auto s = detach(cgroup.get(), p->fd.get(), p->info.id, *dir); !s) return s.error().context(who);
        } else {
          log::warning(who, ": leaving device program ", p->info.id, " (", p->info.name, ") on ", *dir,
                       ": it reads another map");
        }
      }
    }

    // The pins let an admin see what is in force (bpftool map dump pinned
    // .../map); the grants hold without them, as long as the cgroup lives.
    auto prog_id = prog_info(prog->get());
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

const std::vector<BaseDevice>& container_base_devices() {
  static const std::vector<BaseDevice> kBase = {
      {"/dev/null", false, 1, 3, kReadWriteMknod},     {"/dev/zero", false, 1, 5, kReadWriteMknod},
      {"/dev/full", false, 1, 7, kReadWriteMknod},     {"/dev/random", false, 1, 8, kReadWriteMknod},
      {"/dev/urandom", false, 1, 9, kReadWriteMknod},  {"/dev/tty", false, 5, 0, kReadWriteMknod},
      {"/dev/console", false, 5, 1, kReadWriteMknod},  {"/dev/ptmx", false, 5, 2, kReadWriteMknod},
      {"/dev/pts/*", false, 136, std::nullopt, kReadWriteMknod},
      {"/dev/net/tun", false, 10, 200, kReadWriteMknod},
  };
  return kBase;
}

DeviceKey device_key(const NodeSpec& node) {
  return DeviceKey{dev_type(node.block), node.major, node.minor};
}

uint32_t lease_access() { return BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE; }

std::vector<bpf_insn> device_program(const std::vector<BaseDevice>& base, int map_fd) {
  // r6 type, r7 major, r8 minor, r9 access: callee-saved, so they survive
  // the map lookup.
  Assembler a;
  const auto allow = a.label();
  const auto deny = a.label();
  a.emit(load_u32(BPF_REG_6, BPF_REG_1, ctx_at(offsetof(bpf_cgroup_dev_ctx, access_type))));
  a.emit(load_u32(BPF_REG_7, BPF_REG_1, ctx_at(offsetof(bpf_cgroup_dev_ctx, major))));
  a.emit(load_u32(BPF_REG_8, BPF_REG_1, ctx_at(offsetof(bpf_cgroup_dev_ctx, minor))));
  a.emit(alu_reg(BPF_MOV, BPF_REG_9, BPF_REG_6));
  a.emit(alu_imm(BPF_RSH, BPF_REG_9, 16));
  a.emit(alu_imm(BPF_AND, BPF_REG_6, 0xffff));

  // The base set: allowed if every access asked for is in the entry's.
  for (const auto& d : base) {
    const auto next = a.label();
    a.jump_imm(BPF_JNE, BPF_REG_6, static_cast<int32_t>(dev_type(d.block)), next);
    a.jump_imm(BPF_JNE, BPF_REG_7, static_cast<int32_t>(d.major), next);
    if (d.minor) a.jump_imm(BPF_JNE, BPF_REG_8, static_cast<int32_t>(*d.minor), next);
    a.emit(alu_reg(BPF_MOV, BPF_REG_0, BPF_REG_9));
    a.emit(alu_imm(BPF_AND, BPF_REG_0, static_cast<int32_t>(d.access)));
    a.jump_reg(BPF_JEQ, BPF_REG_0, BPF_REG_9, allow);
    a.bind(next);
  }

  // The leases: the key {type, major, minor} on the stack, its value the
  // access the lease gives.
  a.emit(store_u32(BPF_REG_10, key_at(offsetof(DeviceKey, type)), BPF_REG_6));
  a.emit(store_u32(BPF_REG_10, key_at(offsetof(DeviceKey, major)), BPF_REG_7));
  a.emit(store_u32(BPF_REG_10, key_at(offsetof(DeviceKey, minor)), BPF_REG_8));
  a.emit(insn(BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0, map_fd));
  a.emit(insn(0, 0, 0, 0, 0));  // the upper half of the 64-bit load
  a.emit(alu_reg(BPF_MOV, BPF_REG_2, BPF_REG_10));
  a.emit(alu_imm(BPF_ADD, BPF_REG_2, kKeyOnStack));
  a.emit(insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_lookup_elem));
  a.jump_imm(BPF_JEQ, BPF_REG_0, 0, deny);
  a.emit(load_u32(BPF_REG_1, BPF_REG_0, 0));
  a.emit(alu_reg(BPF_AND, BPF_REG_1, BPF_REG_9));
  a.jump_reg(BPF_JEQ, BPF_REG_1, BPF_REG_9, allow);

  a.bind(deny);
  a.emit(alu_imm(BPF_MOV, BPF_REG_0, 0));
  a.emit(insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
  a.bind(allow);
  a.emit(alu_imm(BPF_MOV, BPF_REG_0, 1));
  a.emit(insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
  return a.finish();
}

std::string device_program_name(const std::vector<BaseDevice>& base) {
  // FNV-1a over the instructions as loaded, the map fd left out: the same
  // name for the same program, whichever fd it was loaded with.
  uint32_t h = 2166136261u;
  for (const bpf_insn& i : device_program(base, 0)) {
    unsigned char bytes[sizeof(bpf_insn)];
    std::memcpy(bytes, &i, sizeof bytes);
    for (unsigned char b : bytes) {
      h ^= b;
      h *= 16777619u;
    }
  }
  char name[BPF_OBJ_NAME_LEN];
  std::snprintf(name, sizeof name, "%s%08x", kDeviceProgramPrefix, h);
  return name;
}

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
  auto programs = programs_on(cgroup.get(), cgroup_dir);
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
