// farmhand's BPF device program: the instructions are run here by a small
// interpreter of the few opcodes they use, and the parsers on fixed texts;
// then, as root, the real program on a real cgroup v2 directory gates a
// probe process's open(2) of real device nodes. On a hybrid host the v1
// devices controller lets that cgroup do everything, so the program is the
// only gate.
#include "udev/bpf_devices.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <deque>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <tuple>

#include "common/fs.h"
#include "tests/unit/temp_dir.h"

namespace farmhand::udev {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

constexpr uint32_t kRead = BPF_DEVCG_ACC_READ;
constexpr uint32_t kWrite = BPF_DEVCG_ACC_WRITE;
constexpr uint32_t kMknod = BPF_DEVCG_ACC_MKNOD;
constexpr uint32_t kChar = BPF_DEVCG_DEV_CHAR;
constexpr uint32_t kBlock = BPF_DEVCG_DEV_BLOCK;

// ---------------------------------------------------------------------------
// The program, run by an interpreter of the opcodes it may use. Anything
// else fails the test: the program must stay this simple.

using FakeMap = std::map<std::tuple<uint32_t, uint32_t, uint32_t>, uint32_t>;
constexpr int kFakeMapFd = 42;

// 1 (allow) or 0 (deny); -1 after a failed expectation.
int run(const std::vector<bpf_insn>& code, uint32_t type, uint32_t access, uint32_t major, uint32_t minor,
        FakeMap& map) {
  bpf_cgroup_dev_ctx ctx{(access << 16) | type, major, minor};
  alignas(8) unsigned char stack[512] = {};
  uint64_t r[11] = {};
  const uint64_t kMapToken = 0xfeedf00d;
  auto addr = [](const void* p) { return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p)); };
  auto mem = [](uint64_t a, int16_t off) { return reinterpret_cast<unsigned char*>(a + static_cast<int64_t>(off)); };
  r[1] = addr(&ctx);
  r[10] = addr(stack + sizeof stack);
  size_t pc = 0;
  for (int steps = 0; steps < 10000; ++steps) {
    if (pc >= code.size()) {
      ADD_FAILURE() << "ran off the end at " << pc;
      return -1;
    }
    const bpf_insn& i = code[pc++];
    const uint8_t cls = BPF_CLASS(i.code);
    const uint8_t op = BPF_OP(i.code);
    const uint64_t operand = BPF_SRC(i.code) == BPF_X ? r[i.src_reg] : static_cast<uint64_t>(int64_t{i.imm});
    if (i.code == (BPF_LDX | BPF_MEM | BPF_W)) {
      uint32_t v = 0;
      std::memcpy(&v, mem(r[i.src_reg], i.off), sizeof v);
      r[i.dst_reg] = v;
    } else if (i.code == (BPF_STX | BPF_MEM | BPF_W)) {
      const auto v = static_cast<uint32_t>(r[i.src_reg]);
      std::memcpy(mem(r[i.dst_reg], i.off), &v, sizeof v);
    } else if (i.code == (BPF_LD | BPF_DW | BPF_IMM)) {
      EXPECT_EQ(i.src_reg, BPF_PSEUDO_MAP_FD);
      EXPECT_EQ(i.imm, kFakeMapFd);
      r[i.dst_reg] = kMapToken;
      ++pc;
    } else if (cls == BPF_ALU64 && op == BPF_MOV) {
      r[i.dst_reg] = operand;
    } else if (cls == BPF_ALU64 && op == BPF_AND) {
      r[i.dst_reg] &= operand;
    } else if (cls == BPF_ALU64 && op == BPF_ADD) {
      r[i.dst_reg] += operand;
    } else if (cls == BPF_ALU64 && op == BPF_RSH) {
      r[i.dst_reg] >>= operand;
    } else if (i.code == (BPF_JMP | BPF_CALL)) {
      EXPECT_EQ(i.imm, BPF_FUNC_map_lookup_elem);
      EXPECT_EQ(r[1], kMapToken);
      DeviceKey key;
      std::memcpy(&key, mem(r[2], 0), sizeof key);
      auto it = map.find({key.type, key.major, key.minor});
      r[0] = it == map.end() ? 0 : addr(&it->second);
    } else if (i.code == (BPF_JMP | BPF_EXIT)) {
      return static_cast<int>(r[0]);
    } else if (cls == BPF_JMP && (op == BPF_JEQ || op == BPF_JNE)) {
      const bool equal = r[i.dst_reg] == operand;
      if (equal == (op == BPF_JEQ)) pc += static_cast<size_t>(static_cast<int64_t>(i.off));
    } else {
      ADD_FAILURE() << "unexpected opcode 0x" << std::hex << int{i.code} << " at " << std::dec << pc - 1;
      return -1;
    }
  }
  ADD_FAILURE() << "does not end";
  return -1;
}

TEST(DeviceProgram, AllowsTheBaseSetForEveryAccess) {
  const auto code = device_program(container_base_devices(), kFakeMapFd);
  FakeMap none;
  for (const auto& [major, minor] : std::vector<std::pair<uint32_t, uint32_t>>{
           {1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, {5, 0}, {5, 1}, {5, 2}, {136, 0}, {136, 4095}, {10, 200}}) {
    for (uint32_t access : {kRead, kWrite, kMknod, kRead | kWrite | kMknod}) {
      EXPECT_EQ(run(code, kChar, access, major, minor, none), 1) << major << ":" << minor << " access " << access;
    }
    // The same numbers as a block device are something else.
    EXPECT_EQ(run(code, kBlock, kRead, major, minor, none), 0) << "b " << major << ":" << minor;
  }
  EXPECT_EQ(run(code, kChar, kRead, 1, 1, none), 0);     // /dev/mem
  EXPECT_EQ(run(code, kChar, kRead, 1, 4, none), 0);     // /dev/port
  EXPECT_EQ(run(code, kChar, kRead, 5, 3, none), 0);
  EXPECT_EQ(run(code, kChar, kRead, 4, 64, none), 0);    // ttyS0, not leased
  EXPECT_EQ(run(code, kChar, kRead, 137, 0, none), 0);
  EXPECT_EQ(run(code, kChar, kRead, 10, 201, none), 0);
  EXPECT_EQ(run(code, kBlock, kRead | kWrite, 8, 0, none), 0);  // a disk
}

TEST(DeviceProgram, AllowsALeaseForTheAccessItGivesOnly) {
  const auto code = device_program(container_base_devices(), kFakeMapFd);
  FakeMap map;
  NodeSpec tty;
  tty.major = 4;
  tty.minor = 64;
  const DeviceKey k = device_key(tty);
  map[{k.type, k.major, k.minor}] = lease_access();
  EXPECT_EQ(run(code, kChar, kRead, 4, 64, map), 1);
  EXPECT_EQ(run(code, kChar, kWrite, 4, 64, map), 1);
  EXPECT_EQ(run(code, kChar, kRead | kWrite, 4, 64, map), 1);
  EXPECT_EQ(run(code, kChar, kMknod, 4, 64, map), 0);
  EXPECT_EQ(run(code, kChar, kRead | kMknod, 4, 64, map), 0);
  EXPECT_EQ(run(code, kChar, kRead, 4, 65, map), 0);
  EXPECT_EQ(run(code, kChar, kRead, 5, 64, map), 0);
  EXPECT_EQ(run(code, kBlock, kRead, 4, 64, map), 0);
  // A read-only entry (none is made today) gives reading only.
  map[{kBlock, 7, 0}] = kRead;
  EXPECT_EQ(run(code, kBlock, kRead, 7, 0, map), 1);
  EXPECT_EQ(run(code, kBlock, kWrite, 7, 0, map), 0);
}

TEST(DeviceProgram, WithoutABaseSetOnlyTheMapCounts) {
  const auto code = device_program({}, kFakeMapFd);
  FakeMap map;
  EXPECT_EQ(run(code, kChar, kRead, 1, 3, map), 0);
  map[{kChar, 1, 3}] = kRead | kWrite;
  EXPECT_EQ(run(code, kChar, kRead | kWrite, 1, 3, map), 1);
}

TEST(DeviceProgram, HasOneMapReferenceAndOnlyForwardJumpsInside) {
  const auto code = device_program(container_base_devices(), 7);
  int map_refs = 0;
  for (size_t pc = 0; pc < code.size(); ++pc) {
    const bpf_insn& i = code[pc];
    if (i.code == (BPF_LD | BPF_DW | BPF_IMM)) {
      ++map_refs;
      EXPECT_EQ(i.src_reg, BPF_PSEUDO_MAP_FD);
      EXPECT_EQ(i.imm, 7);
      ++pc;
      continue;
    }
    const uint8_t op = BPF_OP(i.code);
    if (BPF_CLASS(i.code) == BPF_JMP && op != BPF_CALL && op != BPF_EXIT) {
      EXPECT_GE(i.off, 0) << "at " << pc;  // no loops
      EXPECT_LT(pc + 1 + static_cast<size_t>(i.off), code.size()) << "at " << pc;
    }
  }
  EXPECT_EQ(map_refs, 1);
  EXPECT_EQ(code.back().code, BPF_JMP | BPF_EXIT);
}

TEST(DeviceProgram, NameTellsTheBaseSetNotTheMap) {
  const std::string name = device_program_name(container_base_devices());
  EXPECT_EQ(name.rfind(kDeviceProgramPrefix, 0), 0u) << name;
  EXPECT_LT(name.size(), size_t{BPF_OBJ_NAME_LEN});
  EXPECT_EQ(name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_"), std::string::npos) << name;
  EXPECT_EQ(device_program_name(container_base_devices()), name);
  auto fewer = container_base_devices();
  fewer.pop_back();
  EXPECT_NE(device_program_name(fewer), name);
  auto narrower = container_base_devices();
  narrower.front().access = kRead;
  EXPECT_NE(device_program_name(narrower), name);
}

TEST(DeviceProgram, BaseSetIsWhatNspawnsContainersNeed) {
  std::vector<std::string> nodes;
  for (const auto& d : container_base_devices()) {
    nodes.push_back(d.node);
    EXPECT_FALSE(d.block) << d.node;
    EXPECT_EQ(d.access, kRead | kWrite | kMknod) << d.node;
    EXPECT_EQ(d.minor.has_value(), d.major != 136) << d.node;
  }
  EXPECT_EQ(nodes, (std::vector<std::string>{"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
                                             "/dev/tty", "/dev/console", "/dev/ptmx", "/dev/pts/*", "/dev/net/tun"}));
}

TEST(DeviceKeyTest, CharAndBlockInTheKernelsTerms) {
  NodeSpec n;
  n.major = 188;
  n.minor = 3;
  EXPECT_EQ(device_key(n), (DeviceKey{kChar, 188, 3}));
  n.block = true;
  EXPECT_EQ(device_key(n), (DeviceKey{kBlock, 188, 3}));
  EXPECT_EQ(lease_access(), kRead | kWrite);
}

// ---------------------------------------------------------------------------
// The host's cgroup layout.

const char* const kHybrid =
    "23 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices\n"
    "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
const char* const kPureV2 =
    "23 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
    "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n"
    "31 23 0:27 / /sys/fs/bpf rw,nosuid,nodev,noexec,relatime shared:5 - bpf bpf rw,mode=700\n";
const char* const kLegacy =
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices,freezer\n";

TEST(CgroupLayout, MechanismFollowsTheHost) {
  EXPECT_EQ(device_mechanism_for(kHybrid), DeviceMechanism::kCgroupV1);
  EXPECT_EQ(device_mechanism_for(kLegacy), DeviceMechanism::kCgroupV1);
  EXPECT_EQ(device_mechanism_for(kPureV2), DeviceMechanism::kCgroupBpf);
  EXPECT_EQ(device_mechanism_for(""), DeviceMechanism::kCgroupV1);
  EXPECT_TRUE(has_v1_devices_controller(kLegacy));
  EXPECT_FALSE(has_v1_devices_controller(kPureV2));
  // "devices" must be a controller, not part of another option.
  EXPECT_FALSE(has_v1_devices_controller("36 31 0:33 / /x rw - cgroup cgroup rw,name=devicesish\n"));
}

TEST(CgroupLayout, Cgroup2DirectoryUnderItsMount) {
  EXPECT_EQ(cgroup2_directory(kHybrid, "/farmhand/x"), "/sys/fs/cgroup/unified/farmhand/x");
  EXPECT_EQ(cgroup2_directory(kPureV2, "/machine.slice/systemd-nspawn@a.service/payload"),
            "/sys/fs/cgroup/machine.slice/systemd-nspawn@a.service/payload");
  EXPECT_EQ(cgroup2_directory(kPureV2, "/"), "/sys/fs/cgroup");
  EXPECT_EQ(cgroup2_directory(kLegacy, "/x"), std::nullopt);
  // Escaped mount points, and a mount showing only a subtree.
  EXPECT_EQ(cgroup2_directory("50 1 0:40 / /mnt/cg\\040two rw - cgroup2 cgroup2 rw\n", "/a"), "/mnt/cg two/a");
  const std::string sub = "50 1 0:40 /lab /mnt/lab rw - cgroup2 cgroup2 rw\n";
  EXPECT_EQ(cgroup2_directory(sub, "/lab/fw"), "/mnt/lab/fw");
  EXPECT_EQ(cgroup2_directory(sub, "/lab"), "/mnt/lab");
  EXPECT_EQ(cgroup2_directory(sub, "/laboratory"), std::nullopt);
  EXPECT_EQ(cgroup2_directory(sub, "/other"), std::nullopt);
  // Optional fields before the separator.
  EXPECT_EQ(cgroup2_directory("30 23 0:26 / /cg rw shared:4 master:1 - cgroup2 cgroup2 rw\n", "/a"), "/cg/a");
}

TEST(CgroupLayout, UnifiedPathOfAProcess) {
  EXPECT_EQ(unified_cgroup_path("5:devices:/x\n0::/\n"), "/");
  EXPECT_EQ(unified_cgroup_path("0::/machine.slice/systemd-nspawn@a:b.service/payload\n"),
            "/machine.slice/systemd-nspawn@a:b.service/payload");
  EXPECT_EQ(unified_cgroup_path("5:devices:/x\n1:name=systemd:/\n"), std::nullopt);
  EXPECT_EQ(unified_cgroup_path(""), std::nullopt);
}

TEST(CgroupBpfAccess, RefusesTheRootCgroupMissingLeadersAndPathNames) {
  TempDir pins;
  BpfDeviceOptions options;
  options.pin_root = pins.path().string();
  auto access = make_cgroup_bpf_access(options);
  NodeSpec node;
  node.major = 4;
  node.minor = 64;
  auto s = access->allow(ContainerRuntime{"a", 0}, node);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(), "container \"a\": no leader pid (is it running?)");
  s = access->allow(ContainerRuntime{"../a", ::getpid()}, node);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(), "container \"../a\": the name cannot be a bpffs directory");

  auto self = read_file("/proc/self/cgroup");
  ASSERT_TRUE(self.ok());
  if (unified_cgroup_path(*self) != std::optional<std::string>("/")) {
    GTEST_SKIP() << "this process is not in the root cgroup v2";
  }
  s = access->revoke(ContainerRuntime{"a", ::getpid()}, node);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(), "container \"a\": pid " + std::to_string(::getpid()) +
                                     " is in the root cgroup; refusing to change device access for the "
                                     "whole host");
  EXPECT_TRUE(fs::is_empty(pins.path()));
}

// ---------------------------------------------------------------------------
// The real program on a real cgroup v2 directory.

Status write_kernel_file(const fs::path& p, const std::string& text) {
  int fd = ::open(p.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return fail("open " + p.string() + ": " + errno_text(errno));
  ssize_t n = ::write(fd, text.data(), text.size());
  int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size())) return fail("write " + p.string() + ": " + errno_text(err));
  return {};
}

enum class Open { kOk, kEperm, kOther };

class BpfDevicesTest : public ::testing::Test {
 protected:
  // A cgroup with a process standing in for a container's leader.
  struct Cgroup {
    fs::path dir;
    pid_t leader = -1;
  };

  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: creates a cgroup and loads a BPF program";
    auto mountinfo = read_file("/proc/self/mountinfo");
    ASSERT_TRUE(mountinfo.ok());
    auto root = cgroup2_directory(*mountinfo, "/");
    if (!root) GTEST_SKIP() << "no cgroup2 mount in /proc/self/mountinfo";
    cgroup2_root_ = *root;
    for (const char* dev : {"/dev/tty63", "/dev/null"}) {
      if (!fs::exists(dev)) GTEST_SKIP() << dev << " is missing";
    }
    struct stat st {};
    ASSERT_EQ(::stat("/dev/tty63", &st), 0);
    tty_.devnode = "/dev/tty63";
    tty_.major = major(st.st_rdev);
    tty_.minor = minor(st.st_rdev);
    // A lease of another device, to get the program in place.
    other_.devnode = "/dev/ttyS0";
    other_.major = 4;
    other_.minor = 64;
    name_ = "bpf-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }

  void TearDown() override {
    for (auto& cg : cgroups_) {
      if (cg.leader > 0) {
        ::kill(cg.leader, SIGKILL);
        ::waitpid(cg.leader, nullptr, 0);
      }
      // A reaped process leaves its cgroup a moment later.
      for (int i = 0; i < 100 && ::rmdir(cg.dir.c_str()) != 0 && errno == EBUSY; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      EXPECT_FALSE(fs::exists(cg.dir)) << cg.dir;
    }
    for (const auto& root : pin_roots_) {
      const fs::path mine = fs::path(root) / "farmhand" / name_;
      for (const char* pin : {"map", "prog"}) ::unlink((mine / pin).c_str());
      ::rmdir(mine.c_str());
      ::rmdir((fs::path(root) / "farmhand").c_str());  // only if no one else's pins are there
      if (root != "/sys/fs/bpf") ::umount2(root.c_str(), MNT_DETACH);
    }
  }

  Cgroup& make_cgroup() {
    Cgroup cg;
    cg.dir = fs::path(cgroup2_root_) / ("farmhand-bpf-test-" + std::to_string(::getpid()) + "-" +
                                        std::to_string(cgroups_.size()));
    EXPECT_EQ(::mkdir(cg.dir.c_str(), 0755), 0) << cg.dir << ": " << errno_text(errno);
    cg.leader = ::fork();
    if (cg.leader == 0) {
      for (;;) ::pause();
    }
    EXPECT_GT(cg.leader, 0);
    auto s = write_kernel_file(cg.dir / "cgroup.procs", std::to_string(cg.leader));
    EXPECT_TRUE(s.ok()) << s.error().message();
    cgroups_.push_back(cg);
    return cgroups_.back();
  }

  std::unique_ptr<DeviceAccess> access(const std::string& pin_root, std::vector<BaseDevice> base = container_base_devices()) {
    pin_roots_.push_back(pin_root);
    BpfDeviceOptions options;
    options.pin_root = pin_root;
    options.base = std::move(base);
    return make_cgroup_bpf_access(options);
  }

  // What a process in the cgroup gets opening `dev` for reading and writing.
  static Open probe(const Cgroup& cg, const char* dev) {
    const std::string procs = (cg.dir / "cgroup.procs").string();
    pid_t pid = ::fork();
    if (pid == 0) {
      int fd = ::open(procs.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0 || ::write(fd, "0", 1) != 1) ::_exit(3);
      if (::open(dev, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC) >= 0) ::_exit(0);
      ::_exit(errno == EPERM ? 1 : 2);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 3) << "the probe could not join " << cg.dir;
    if (!WIFEXITED(status)) return Open::kOther;
    return WEXITSTATUS(status) == 0 ? Open::kOk : WEXITSTATUS(status) == 1 ? Open::kEperm : Open::kOther;
  }

  ContainerRuntime runtime(const Cgroup& cg) const { return ContainerRuntime{name_, cg.leader}; }

  // farmhand's programs on the cgroup, by name.
  static std::vector<std::string> programs(const Cgroup& cg) {
    auto attached = device_programs_on(cg.dir.string());
    EXPECT_TRUE(attached.ok()) << attached.error().message();
    std::vector<std::string> out;
    if (attached.ok()) {
      for (const auto& p : *attached) out.push_back(p.name);
    }
    return out;
  }

  std::string cgroup2_root_;
  std::string name_;
  NodeSpec tty_;
  NodeSpec other_;
  std::deque<Cgroup> cgroups_;  // references stay valid as it grows
  std::vector<std::string> pin_roots_;
  // A private bpffs goes on here/bpf; it outlives TearDown's unmount.
  TempDir tmp_;
  std::string private_pins() const { return (tmp_.path() / "bpf").string(); }
};

TEST_F(BpfDevicesTest, BaseSetOpensALeaseOpensOnlyBetweenAllowAndRevoke) {
  // The real place: bpffs at /sys/fs/bpf, mounted by the access if need be.
  auto a = access("/sys/fs/bpf");
  Cgroup& cg = make_cgroup();
  // Nothing gates the new cgroup yet.
  EXPECT_EQ(probe(cg, "/dev/tty63"), Open::kOk);

  auto s = a->allow(runtime(cg), other_);
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(programs(cg), std::vector<std::string>{device_program_name(container_base_devices())});
  EXPECT_EQ(probe(cg, "/dev/null"), Open::kOk);
  EXPECT_EQ(probe(cg, "/dev/zero"), Open::kOk);
  EXPECT_EQ(probe(cg, "/dev/urandom"), Open::kOk);
  EXPECT_EQ(probe(cg, "/dev/tty63"), Open::kEperm);
  if (fs::exists("/dev/loop0")) {
    EXPECT_EQ(probe(cg, "/dev/loop0"), Open::kEperm);  // a block device
  }

  s = a->allow(runtime(cg), tty_);
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(probe(cg, "/dev/tty63"), Open::kOk);
  ASSERT_TRUE(a->allow(runtime(cg), tty_).ok());  // again: nothing changes
  EXPECT_EQ(probe(cg, "/dev/tty63"), Open::kOk);

  s = a->revoke(runtime(cg), tty_);
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(probe(cg, "/dev/tty63"), Open::kEperm);
  ASSERT_TRUE(a->revoke(runtime(cg), tty_).ok());  // again: nothing to delete
  EXPECT_EQ(probe(cg, "/dev/null"), Open::kOk);
  EXPECT_EQ(programs(cg).size(), 1u);

  // Pinned where the docs say, in a real bpffs.
  const fs::path pins = fs::path("/sys/fs/bpf/farmhand") / name_;
  EXPECT_TRUE(fs::exists(pins / "map"));
  EXPECT_TRUE(fs::exists(pins / "prog"));
}

TEST_F(BpfDevicesTest, ARestartedAgentKeepsTheGrantsAndTheProgram) {
  Cgroup& cg = make_cgroup();
  {
    auto before = access(private_pins());
    auto s = before->allow(runtime(cg), tty_);
    ASSERT_TRUE(s.ok()) << s.error().message();
  }
  // The mount the access made, and its pins.
  EXPECT_TRUE(fs::exists(fs::path(private_pins()) / "farmhand" / name_ / "map"));
  EXPECT_EQ(probe(cg, "/dev/tty63"), Open::kOk);

  auto after = access(private_pins());
  auto s = after->allow(runtime(cg), other_);
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(programs(cg).size(), 1u) << "a second program was attached";
  EXPECT_EQ(probe(cg, "/dev/tty63"), Open::kOk);
  s = after->revoke(runtime(cg), tty_);
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(probe(cg, "/dev/tty63"), Open::kEperm);
  EXPECT_EQ(probe(cg, "/dev/null"), Open::kOk);
  EXPECT_EQ(programs(cg).size(), 1u);
}

TEST_F(BpfDevicesTest, AProgramFromAnotherBaseSetIsReplacedKeepingTheGrants) {
  Cgroup& cg = make_cgroup();
  // An "older farmhand" whose base set lacks /dev/null.
  std::vector<BaseDevice> old_base;
  for (const auto& d : container_base_devices()) {
    if (std::string(d.node) != "/dev/null") old_base.push_back(d);
  }
  auto s = access(private_pins(), old_base)->allow(runtime(cg), tty_);
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(programs(cg), std::vector<std::string>{device_program_name(old_base)});
  EXPECT_EQ(probe(cg, "/dev/null"), Open::kEperm);

  s = access(private_pins())->allow(runtime(cg), other_);
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(programs(cg), std::vector<std::string>{device_program_name(container_base_devices())});
  EXPECT_EQ(probe(cg, "/dev/null"), Open::kOk);
  EXPECT_EQ(probe(cg, "/dev/tty63"), Open::kOk);  // the map came along
}

TEST_F(BpfDevicesTest, AContainerInANewCgroupStartsFromTheBaseSet) {
  auto a = access(private_pins());
  Cgroup& first = make_cgroup();
  ASSERT_TRUE(a->allow(runtime(first), tty_).ok());
  EXPECT_EQ(probe(first, "/dev/tty63"), Open::kOk);

  // The container restarted: same name, another cgroup.
  Cgroup& second = make_cgroup();
  auto s = a->allow(ContainerRuntime{name_, second.leader}, other_);
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(probe(second, "/dev/tty63"), Open::kEperm);
  EXPECT_EQ(probe(second, "/dev/null"), Open::kOk);
  EXPECT_EQ(programs(second).size(), 1u);
}

}  // namespace
}  // namespace farmhand::udev
