// The binder: id maps and the parsers run anywhere; the node, link and
// cgroup tests run for real as root against a process that plays the
// container (own mount namespace, a tmpfs /dev, chroot-ed into a temp tree,
// optionally in a user namespace), reached through /proc/PID/root exactly
// as a running nspawn container is.
#include "udev/binder.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "common/fs.h"
#include "tests/unit/temp_dir.h"

namespace farmhand::udev {
namespace {

using test::TempDir;

TEST(MapId, IdentityMapCoversEveryIdButTheInvalidOne) {
  const std::string identity = "         0          0 4294967295\n";
  EXPECT_EQ(map_id(identity, 0), 0u);
  EXPECT_EQ(map_id(identity, 20), 20u);
  EXPECT_EQ(map_id(identity, 4294967294u), 4294967294u);
  EXPECT_EQ(map_id(identity, 4294967295u), std::nullopt);
}

TEST(MapId, PrivateUsersShiftIntoTheirRange) {
  const std::string private_users = "         0 1812594688      65536\n";
  EXPECT_EQ(map_id(private_users, 0), 1812594688u);
  EXPECT_EQ(map_id(private_users, 20), 1812594708u);
  EXPECT_EQ(map_id(private_users, 65535), 1812594688u + 65535u);
  EXPECT_EQ(map_id(private_users, 65536), std::nullopt);
}

TEST(MapId, SeveralLinesAndUnmappedIds) {
  const std::string map = "0 100000 1000\n1000 1000 1\n2000 300000 10\n";
  EXPECT_EQ(map_id(map, 999), 100999u);
  EXPECT_EQ(map_id(map, 1000), 1000u);
  EXPECT_EQ(map_id(map, 1001), std::nullopt);
  EXPECT_EQ(map_id(map, 2009), 300009u);
  EXPECT_EQ(map_id(map, 2010), std::nullopt);
  EXPECT_EQ(map_id("", 0), std::nullopt);
  EXPECT_EQ(map_id("garbage\n", 0), std::nullopt);
  EXPECT_EQ(map_id("0 4294967290 100\n", 10), std::nullopt);  // past the top of the id space
}

TEST(DevicesCgroupPath, FindsTheDevicesHierarchy) {
  EXPECT_EQ(
      devices_cgroup_path("9:name=systemd:/machine.slice/a\n5:devices:/machine.slice/a\n0::/x\n"),
      "/machine.slice/a");
  EXPECT_EQ(devices_cgroup_path("3:cpu,devices,memory:/x:y\n"), "/x:y");
  EXPECT_EQ(devices_cgroup_path("0::/machine.slice/a\n"), std::nullopt);
  EXPECT_EQ(devices_cgroup_path("4:devicesx:/a\n"), std::nullopt);
}

// ---------------------------------------------------------------------------
// Real nodes as root.

struct stat lstat_of(const fs::path& p) {
  struct stat st {};
  if (::lstat(p.c_str(), &st) != 0) st.st_mode = 0;
  return st;
}

std::string link_of(const fs::path& p) {
  std::error_code ec;
  auto t = fs::read_symlink(p, ec);
  return ec ? std::string("<" + ec.message() + ">") : t.string();
}

std::set<std::string> names_in(const fs::path& dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) out.insert(e.path().filename().string());
  return out;
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream out(p);
  out << text;
}

// A process standing in for a container's init.
class FakeContainer {
 public:
  FakeContainer(const fs::path& root, bool user_namespace) {
    int ready[2], go[2];
    if (::pipe2(ready, O_CLOEXEC) != 0 || ::pipe2(go, O_CLOEXEC) != 0) return;
    const std::string root_s = root.string(), dev_s = (root / "dev").string();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(ready[0]);
      ::close(go[1]);
      char c = 0;
      if (::unshare(CLONE_NEWNS) != 0) ::_exit(10);
      if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) ::_exit(11);
      if (::mount("tmpfs", dev_s.c_str(), "tmpfs", MS_NOSUID, "mode=0755") != 0) ::_exit(12);
      if (user_namespace) {
        if (::unshare(CLONE_NEWUSER) != 0) ::_exit(13);
        if (::write(ready[1], "u", 1) != 1 || ::read(go[0], &c, 1) != 1) ::_exit(14);
      }
      if (::chroot(root_s.c_str()) != 0 || ::chdir("/") != 0) ::_exit(15);
      if (::write(ready[1], "r", 1) != 1) ::_exit(16);
      for (;;) ::pause();
    }
    ::close(ready[1]);
    ::close(go[0]);
    char c = 0;
    if (pid_ > 0 && user_namespace) {
      const std::string proc = "/proc/" + std::to_string(pid_);
      if (::read(ready[0], &c, 1) == 1) {
        write_text(proc + "/uid_map", "0 100000 65536\n");
        write_text(proc + "/gid_map", "0 100000 65536\n");
        if (::write(go[1], "g", 1) != 1) c = 0;
      }
    }
    ok_ = pid_ > 0 && ::read(ready[0], &c, 1) == 1 && c == 'r';
    ::close(ready[0]);
    ::close(go[1]);
  }
  ~FakeContainer() { stop(); }
  FakeContainer(const FakeContainer&) = delete;
  FakeContainer& operator=(const FakeContainer&) = delete;

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  bool ok() const { return ok_; }
  pid_t pid() const { return pid_; }
  // A path inside the container, as the host reaches it.
  fs::path at(const std::string& inside) const {
    return "/proc/" + std::to_string(pid_) + "/root" + inside;
  }

 private:
  pid_t pid_ = -1;
  bool ok_ = false;
};

class BinderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: mount namespaces, chroot and mknod";
    root_ = tree_.path() / "root";
    ASSERT_TRUE(make_dirs(root_ / "etc").ok());
    ASSERT_TRUE(make_dirs(root_ / "dev").ok());
    // mkdtemp's 0700 would lock a user-namespaced container out of its root.
    fs::permissions(tree_.path(), fs::perms(0755));
    write_text(root_ / "etc/group", "root:x:0:\ntty:x:5:\ndialout:x:20:\n");
    old_umask_ = ::umask(027);  // must not narrow the modes the binder sets
  }
  void TearDown() override {
    if (old_umask_ != kNoUmask) ::umask(old_umask_);
  }
  void start(bool user_namespace = false) {
    container_ = std::make_unique<FakeContainer>(root_, user_namespace);
    ASSERT_TRUE(container_->ok()) << "the fake container did not start";
    c_ = ContainerRuntime{"a", container_->pid()};
  }
  fs::path at(const std::string& inside) const { return container_->at(inside); }

  static constexpr mode_t kNoUmask = 01000;
  TempDir tree_;
  fs::path root_;
  mode_t old_umask_ = kNoUmask;
  std::unique_ptr<FakeContainer> container_;
  ContainerRuntime c_;
};

NodeSpec serial_adapter() {
  NodeSpec n;
  n.devnode = "/dev/ttyUSB0";
  n.major = 4;
  n.minor = 64;
  n.links = {"/dev/serial/by-id/usb-FTDI_X-if00-port0",
             "/dev/serial/by-path/pci-0000:00:14.0-usb-0:1:1.0-port0"};
  return n;
}

TEST_F(BinderTest, CreatesNodeWithExactOwnerModeAndRelativeLinks) {
  start();
  const NodeSpec node = serial_adapter();
  auto s = create_node(c_, node);
  ASSERT_TRUE(s.ok()) << s.error().message();

  struct stat st = lstat_of(at("/dev/ttyUSB0"));
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(4, 64));
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_gid, 20u);
  EXPECT_EQ(link_of(at("/dev/serial/by-id/usb-FTDI_X-if00-port0")), "../../ttyUSB0");
  EXPECT_EQ(link_of(at("/dev/serial/by-path/pci-0000:00:14.0-usb-0:1:1.0-port0")), "../../ttyUSB0");
  EXPECT_EQ(lstat_of(at("/dev/serial/by-id")).st_mode & 07777, 0755u);
  // Everything went to the container's own /dev, not the tree's directory below it.
  EXPECT_TRUE(names_in(root_ / "dev").empty());
  EXPECT_EQ(names_in(at("/dev")), (std::set<std::string>{"serial", "ttyUSB0"}));

  // Again: the same node, its owner and mode repaired.
  ASSERT_EQ(::chmod(at("/dev/ttyUSB0").c_str(), 0600), 0);
  ASSERT_EQ(::chown(at("/dev/ttyUSB0").c_str(), 0, 0), 0);
  s = create_node(c_, node);
  ASSERT_TRUE(s.ok()) << s.error().message();
  struct stat again = lstat_of(at("/dev/ttyUSB0"));
  EXPECT_EQ(again.st_ino, st.st_ino);
  EXPECT_EQ(again.st_mode & 07777, 0660u);
  EXPECT_EQ(again.st_gid, 20u);
  EXPECT_EQ(names_in(at("/dev")), (std::set<std::string>{"serial", "ttyUSB0"}));
  EXPECT_EQ(names_in(at("/dev/serial/by-id")), (std::set<std::string>{"usb-FTDI_X-if00-port0"}));
}

TEST_F(BinderTest, UserNamespaceMapsOwnerAndGroupToTheHost) {
  start(/*user_namespace=*/true);
  auto uid = container_uid_to_host(c_.leader, 0);
  ASSERT_TRUE(uid.ok()) << uid.error().message();
  EXPECT_EQ(*uid, 100000u);
  auto gid = container_group_to_host_gid(c_.leader, "dialout");
  ASSERT_TRUE(gid.ok()) << gid.error().message();
  EXPECT_EQ(*gid, 100020u);
  auto unmapped = container_uid_to_host(c_.leader, 70000);
  ASSERT_FALSE(unmapped.ok());
  EXPECT_EQ(unmapped.error().message(), "the container of pid " + std::to_string(c_.leader) +
                                            ": uid 70000 is not mapped to the host (/proc/" +
                                            std::to_string(c_.leader) + "/uid_map)");

  NodeSpec node = serial_adapter();
  node.mode = 0620;
  auto s = create_node(c_, node);
  ASSERT_TRUE(s.ok()) << s.error().message();
  struct stat st = lstat_of(at("/dev/ttyUSB0"));
  EXPECT_EQ(st.st_uid, 100000u);
  EXPECT_EQ(st.st_gid, 100020u);
  EXPECT_EQ(st.st_mode & 07777, 0620u);
  struct stat dir = lstat_of(at("/dev/serial"));
  EXPECT_EQ(dir.st_uid, 100000u);
  EXPECT_EQ(dir.st_gid, 100000u);
  EXPECT_EQ(lstat_of(at("/dev/serial/by-id/usb-FTDI_X-if00-port0")).st_uid, 100000u);
}

TEST_F(BinderTest, RemoveTakesNodeAndLinksAndIsIdempotent) {
  start();
  const NodeSpec node = serial_adapter();
  ASSERT_TRUE(create_node(c_, node).ok());
  // The container's own udev keeps a link of its own in by-id.
  ASSERT_EQ(::symlink("../../ttyS0", at("/dev/serial/by-id/other").c_str()), 0);
  auto s = remove_node(c_, node);
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(names_in(at("/dev")), (std::set<std::string>{"serial"}));
  EXPECT_EQ(names_in(at("/dev/serial")), (std::set<std::string>{"by-id"}));
  EXPECT_EQ(names_in(at("/dev/serial/by-id")), (std::set<std::string>{"other"}));
  s = remove_node(c_, node);
  ASSERT_TRUE(s.ok()) << s.error().message();

  // Without the foreign link the directories the binder made go too.
  ASSERT_TRUE(create_node(c_, node).ok());
  ASSERT_EQ(::unlink(at("/dev/serial/by-id/other").c_str()), 0);
  ASSERT_TRUE(remove_node(c_, node).ok());
  EXPECT_TRUE(names_in(at("/dev")).empty());
}

TEST_F(BinderTest, RemoveLeavesWhatIsNotItsOwn) {
  start();
  const NodeSpec node = serial_adapter();
  ASSERT_EQ(::mknod(at("/dev/ttyUSB0").c_str(), S_IFCHR | 0600, makedev(1, 3)), 0);
  ASSERT_TRUE(make_dirs(at("/dev/serial/by-id")).ok());
  ASSERT_TRUE(make_dirs(at("/dev/serial/by-path")).ok());
  ASSERT_EQ(::symlink("../../ttyUSB1", at("/dev/serial/by-id/usb-FTDI_X-if00-port0").c_str()), 0);
  write_text(at("/dev/serial/by-path/pci-0000:00:14.0-usb-0:1:1.0-port0"), "x");
  ASSERT_TRUE(remove_node(c_, node).ok());
  EXPECT_EQ(lstat_of(at("/dev/ttyUSB0")).st_rdev, makedev(1, 3));
  EXPECT_EQ(link_of(at("/dev/serial/by-id/usb-FTDI_X-if00-port0")), "../../ttyUSB1");
  EXPECT_TRUE(
      S_ISREG(lstat_of(at("/dev/serial/by-path/pci-0000:00:14.0-usb-0:1:1.0-port0")).st_mode));
}

TEST_F(BinderTest, RawUsbNodeGetsItsBusDirectoryWhichRemoveTakesBack) {
  start();
  NodeSpec node;
  node.devnode = "/dev/bus/usb/001/004";
  node.major = 189;
  node.minor = 3;
  node.group = "root";
  node.mode = 0664;
  ASSERT_TRUE(make_dirs(at("/dev/bus/usb/002")).ok());  // another device's bus
  auto s = create_node(c_, node);
  ASSERT_TRUE(s.ok()) << s.error().message();
  struct stat st = lstat_of(at("/dev/bus/usb/001/004"));
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(189, 3));
  EXPECT_EQ(st.st_mode & 07777, 0664u);
  EXPECT_EQ(st.st_gid, 0u);
  ASSERT_TRUE(remove_node(c_, node).ok());
  EXPECT_EQ(names_in(at("/dev/bus/usb")), (std::set<std::string>{"002"}));
}

TEST_F(BinderTest, BlockNodesAreBlockNodes) {
  start();
  NodeSpec node;
  node.devnode = "/dev/sdz";
  node.block = true;
  node.major = 7;
  node.minor = 200;
  node.group = "tty";
  ASSERT_TRUE(create_node(c_, node).ok());
  struct stat st = lstat_of(at("/dev/sdz"));
  EXPECT_TRUE(S_ISBLK(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(7, 200));
  EXPECT_EQ(st.st_gid, 5u);
  node.block = false;  // a char device with the same numbers is not ours
  ASSERT_TRUE(remove_node(c_, node).ok());
  EXPECT_TRUE(S_ISBLK(lstat_of(at("/dev/sdz")).st_mode));
  node.block = true;
  ASSERT_TRUE(remove_node(c_, node).ok());
  EXPECT_TRUE(names_in(at("/dev")).empty());
}

TEST_F(BinderTest, ReplacesWhateverElseIsAtTheNodeAndLinkPaths) {
  start();
  const NodeSpec node = serial_adapter();
  write_text(at("/dev/ttyUSB0"), "not a device");
  ASSERT_TRUE(make_dirs(at("/dev/serial/by-id")).ok());
  ASSERT_EQ(::symlink("../../ttyUSB7", at("/dev/serial/by-id/usb-FTDI_X-if00-port0").c_str()), 0);
  auto s = create_node(c_, node);
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_TRUE(S_ISCHR(lstat_of(at("/dev/ttyUSB0")).st_mode));
  EXPECT_EQ(link_of(at("/dev/serial/by-id/usb-FTDI_X-if00-port0")), "../../ttyUSB0");

  // Another device under the name is replaced too.
  ASSERT_EQ(::unlink(at("/dev/ttyUSB0").c_str()), 0);
  ASSERT_EQ(::mknod(at("/dev/ttyUSB0").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  ASSERT_TRUE(create_node(c_, node).ok());
  struct stat st = lstat_of(at("/dev/ttyUSB0"));
  EXPECT_EQ(st.st_rdev, makedev(4, 64));
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  // No temporary names are left behind.
  EXPECT_EQ(names_in(at("/dev")), (std::set<std::string>{"serial", "ttyUSB0"}));
}

TEST_F(BinderTest, ErrorsNameTheContainerAndThePath) {
  start();
  NodeSpec node = serial_adapter();
  write_text(at("/dev/serial"), "");
  auto s = create_node(c_, node);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(),
            "container \"a\": cannot create directory /dev/serial: a non-directory is in the way");

  ASSERT_EQ(::unlink(at("/dev/serial").c_str()), 0);
  ASSERT_EQ(::unlink(at("/dev/ttyUSB0").c_str()), 0);
  ASSERT_EQ(::mkdir(at("/dev/ttyUSB0").c_str(), 0755), 0);
  s = create_node(c_, node);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(), "container \"a\": cannot create /dev/ttyUSB0: Is a directory");
  ASSERT_EQ(::rmdir(at("/dev/ttyUSB0").c_str()), 0);

  node.group = "plugdev";
  s = create_node(c_, node);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(), "group \"plugdev\" does not exist in container \"a\"");
  auto gid = container_group_to_host_gid(c_.leader, "plugdev");
  ASSERT_FALSE(gid.ok());
  EXPECT_EQ(gid.error().message(), "group \"plugdev\" does not exist in the container of pid " +
                                       std::to_string(c_.leader));

  node = serial_adapter();
  node.links = {"/etc/evil"};
  s = create_node(c_, node);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(), "container \"a\": link \"/etc/evil\" is not under /dev/");
  EXPECT_FALSE(path_exists(root_ / "etc/evil"));
  node.links = {"/dev/serial/../../etc/evil"};
  s = remove_node(c_, node);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(),
            "container \"a\": link \"/dev/serial/../../etc/evil\" is not a plain path");
  node = serial_adapter();
  node.devnode = "/tmp/ttyUSB0";
  s = create_node(c_, node);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(),
            "container \"a\": device node \"/tmp/ttyUSB0\" is not under /dev/");
}

TEST_F(BinderTest, PlantedSymlinksNeverLeadOutOfTheContainer) {
  // The host's /etc is played by a directory outside the container's tree.
  TempDir host;
  const fs::path host_etc = host.path() / "etc";
  ASSERT_TRUE(make_dirs(host_etc).ok());
  ASSERT_TRUE(make_dirs(root_ / host_etc.relative_path()).ok());
  start();
  NodeSpec node = serial_adapter();

  // An absolute link, and a relative one climbing far above the root.
  for (const std::string& planted :
       {host_etc.string(), "../../../../../../../../../.." + host_etc.string()}) {
    SCOPED_TRACE(planted);
    std::error_code ec;
    fs::remove(at("/dev/serial"), ec);
    ASSERT_EQ(::symlink(planted.c_str(), at("/dev/serial").c_str()), 0);
    auto s = create_node(c_, node);
    // Resolved inside the root, the planted link leads to the tree's copy.
    ASSERT_TRUE(s.ok()) << s.error().message();
    EXPECT_TRUE(names_in(host_etc).empty());
    EXPECT_EQ(link_of(root_ / host_etc.relative_path() / "by-id/usb-FTDI_X-if00-port0"),
              "../../ttyUSB0");
    ASSERT_TRUE(remove_node(c_, node).ok());
    EXPECT_TRUE(names_in(host_etc).empty());
    EXPECT_FALSE(path_exists(root_ / host_etc.relative_path() / "by-id/usb-FTDI_X-if00-port0"));
  }

  // /etc/group pointing at the host's copy is read inside the root (missing there).
  write_text(host_etc / "group", "dialout:x:99:\n");
  ASSERT_EQ(::unlink((root_ / "etc/group").c_str()), 0);
  ASSERT_EQ(::symlink((host_etc / "group").c_str(), (root_ / "etc/group").c_str()), 0);
  auto gid = container_group_to_host_gid(c_.leader, "dialout");
  ASSERT_FALSE(gid.ok());
  EXPECT_EQ(gid.error().message(), "the container of pid " + std::to_string(c_.leader) +
                                       ": cannot open /etc/group: No such file or directory");

  // A FIFO as /etc/group fails instead of hanging the binder.
  ASSERT_EQ(::unlink((root_ / "etc/group").c_str()), 0);
  ASSERT_EQ(::mkfifo((root_ / "etc/group").c_str(), 0644), 0);
  gid = container_group_to_host_gid(c_.leader, "dialout");
  ASSERT_FALSE(gid.ok());
  EXPECT_EQ(gid.error().message(), "the container of pid " + std::to_string(c_.leader) +
                                       ": /etc/group is not a regular file");
}

TEST_F(BinderTest, DetachFromAStoppedContainerSucceeds) {
  start();
  const NodeSpec node = serial_adapter();
  ASSERT_TRUE(create_node(c_, node).ok());
  container_->stop();
  auto s = remove_node(c_, node);
  EXPECT_TRUE(s.ok()) << s.error().message();
  s = create_node(c_, node);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(), "container \"a\": cannot open /proc/" + std::to_string(c_.leader) +
                                     "/root: No such file or directory");
}

// ---------------------------------------------------------------------------
// The v1 devices cgroup, for real.

Status write_kernel_file(const fs::path& p, const std::string& text) {
  int fd = ::open(p.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return fail("open " + p.string() + ": " + errno_text(errno));
  ssize_t n = ::write(fd, text.data(), text.size());
  int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size()))
    return fail("write " + p.string() + ": " + errno_text(err));
  return {};
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(CgroupV1Access, RefusesTheRootCgroupAndMissingLeaders) {
  TempDir fake_root;  // nothing is ever written to the real hierarchy here
  auto access = make_cgroup_v1_access(fake_root.path().string());
  NodeSpec node = serial_adapter();

  auto s = access->allow(ContainerRuntime{"a", 0}, node);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(), "container \"a\": no leader pid (is it running?)");

  auto self = read_file("/proc/self/cgroup");
  ASSERT_TRUE(self.ok());
  if (devices_cgroup_path(*self) != std::optional<std::string>("/")) {
    GTEST_SKIP() << "this process is not in the root devices cgroup";
  }
  s = access->revoke(ContainerRuntime{"a", ::getpid()}, node);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(), "container \"a\": pid " + std::to_string(::getpid()) +
                                     " is in the root devices cgroup; refusing to change device "
                                     "access for the whole host");
  EXPECT_TRUE(names_in(fake_root.path()).empty());
}

class CgroupV1Test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: creates a devices cgroup";
    if (!fs::is_directory(kDevices))
      GTEST_SKIP() << kDevices << " is missing: no cgroup v1 devices controller";
    dir_ = fs::path(kDevices) / ("farmhand-binder-test-" + std::to_string(::getpid()));
    ASSERT_EQ(::mkdir(dir_.c_str(), 0755), 0) << dir_ << ": " << errno_text(errno);
    made_ = true;
    leader_ = ::fork();
    if (leader_ == 0) {
      for (;;) ::pause();
    }
    ASSERT_GT(leader_, 0);
    ASSERT_TRUE(write_kernel_file(dir_ / "cgroup.procs", std::to_string(leader_)).ok());
    // A fresh cgroup inherits "a *:* rwm"; start from nothing allowed.
    ASSERT_TRUE(write_kernel_file(dir_ / "devices.deny", "a").ok());
    ASSERT_EQ(read_text(dir_ / "devices.list"), "");
  }
  void TearDown() override {
    if (leader_ > 0) {
      ::kill(leader_, SIGKILL);
      ::waitpid(leader_, nullptr, 0);
    }
    if (made_) ::rmdir(dir_.c_str());
  }

  // Whether a process in the test cgroup may open `dev` ("/dev/null").
  bool may_open(const char* dev) {
    const std::string procs = (dir_ / "cgroup.procs").string();
    pid_t pid = ::fork();
    if (pid == 0) {
      int fd = ::open(procs.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0 || ::write(fd, "0", 1) != 1) ::_exit(2);
      ::_exit(::open(dev, O_RDWR | O_CLOEXEC) >= 0 ? 0 : 1);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 2) << "probe could not join the cgroup";
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }

  static constexpr const char* kDevices = "/sys/fs/cgroup/devices";
  fs::path dir_;
  bool made_ = false;
  pid_t leader_ = -1;
};

TEST_F(CgroupV1Test, AllowAndRevokeOneDeviceForReal) {
  auto access = make_cgroup_v1_access();
  const ContainerRuntime c{"a", leader_};
  NodeSpec tty = serial_adapter();

  ASSERT_TRUE(access->allow(c, tty).ok());
  auto s = access->allow(c, tty);
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(read_text(dir_ / "devices.list"), "c 4:64 rw\n");
  s = access->revoke(c, tty);
  ASSERT_TRUE(s.ok()) << s.error().message();
  ASSERT_TRUE(access->revoke(c, tty).ok());
  EXPECT_EQ(read_text(dir_ / "devices.list"), "");

  NodeSpec disk;
  disk.block = true;
  disk.major = 7;
  disk.minor = 0;
  ASSERT_TRUE(access->allow(c, disk).ok());
  EXPECT_EQ(read_text(dir_ / "devices.list"), "b 7:0 rw\n");
  ASSERT_TRUE(access->revoke(c, disk).ok());

  // And the kernel enforces it: /dev/null (1:3) is denied, allowed, denied.
  NodeSpec null_dev;
  null_dev.devnode = "/dev/null";
  null_dev.major = 1;
  null_dev.minor = 3;
  EXPECT_FALSE(may_open("/dev/null"));
  ASSERT_TRUE(access->allow(c, null_dev).ok());
  EXPECT_TRUE(may_open("/dev/null"));
  ASSERT_TRUE(access->revoke(c, null_dev).ok());
  EXPECT_FALSE(may_open("/dev/null"));
}

TEST_F(CgroupV1Test, ErrorsNameTheFile) {
  TempDir elsewhere;
  auto access = make_cgroup_v1_access(elsewhere.path().string() + "/");
  auto s = access->allow(ContainerRuntime{"a", leader_}, serial_adapter());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(), "container \"a\": cannot allow c 4:64 in " +
                                     elsewhere.path().string() + "/" + dir_.filename().string() +
                                     "/devices.allow: No such file or directory");
}

}  // namespace
}  // namespace farmhand::udev
