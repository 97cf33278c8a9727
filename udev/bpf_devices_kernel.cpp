// The kernel side of farmhand's device program: its instructions, built
// here, and the raw bpf(2) calls that load, attach, detach and inspect it
// and its map. udev/bpf_devices.cpp decides what goes where with them.
#include "udev/bpf_devices_kernel.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>

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

// ---- bpf(2) ----------------------------------------------------------------

namespace bpf {

int call(int cmd, bpf_attr& attr) {
  for (int tries = 0;; ++tries) {
    long r = ::syscall(__NR_bpf, cmd, &attr, sizeof attr);
    // The verifier may ask to be called again (EAGAIN) under memory pressure.
    if (r < 0 && (errno == EINTR || (errno == EAGAIN && cmd == BPF_PROG_LOAD)) && tries < 5) continue;
    return static_cast<int>(r);
  }
}

namespace {

// The ids of the device programs attached directly to a cgroup.
Result<std::vector<uint32_t>> query_programs(int cgroup_fd, const std::string& dir) {
  std::vector<uint32_t> ids(16);
  for (;;) {
    bpf_attr attr{};
    attr.query.target_fd = static_cast<uint32_t>(cgroup_fd);
    attr.query.attach_type = BPF_CGROUP_DEVICE;
    attr.query.prog_ids = user_ptr(ids.data());
    attr.query.prog_cnt = static_cast<uint32_t>(ids.size());
    if (call(BPF_PROG_QUERY, attr) == 0) {
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
  UniqueFd fd(call(BPF_PROG_GET_FD_BY_ID, attr));
  if (fd.get() < 0 && errno != ENOENT) {
    return fail("cannot open BPF program " + std::to_string(id) + ": " + errno_text(errno));
  }
  return fd;
}

}  // namespace

Result<ProgInfo> prog_info(int fd) {
  uint32_t maps[8] = {};
  bpf_prog_info info{};
  info.nr_map_ids = sizeof maps / sizeof maps[0];
  info.map_ids = user_ptr(maps);
  bpf_attr attr{};
  attr.info.bpf_fd = static_cast<uint32_t>(fd);
  attr.info.info_len = sizeof info;
  attr.info.info = user_ptr(&info);
  if (call(BPF_OBJ_GET_INFO_BY_FD, attr) < 0) {
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
  if (call(BPF_OBJ_GET_INFO_BY_FD, attr) < 0) {
    return fail("cannot read a BPF map's info: " + errno_text(errno));
  }
  return info;
}

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
  UniqueFd fd(call(BPF_MAP_CREATE, attr));
  if (fd.get() < 0) return fail("cannot create the device map: " + errno_text(errno));
  return fd;
}

Result<UniqueFd> map_by_id(uint32_t id) {
  bpf_attr attr{};
  attr.map_id = id;
  UniqueFd fd(call(BPF_MAP_GET_FD_BY_ID, attr));
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
    return UniqueFd(call(BPF_PROG_LOAD, attr));
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
  if (call(BPF_PROG_ATTACH, attr) == 0) return {};
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
  if (call(BPF_PROG_DETACH, attr) == 0 || errno == ENOENT) return {};
  return fail("cannot detach device program " + std::to_string(id) + " from " + dir + ": " +
              errno_text(errno));
}

}  // namespace bpf

}  // namespace farmhand::udev
