// write_file_in_root / read_file_in_root / make_dirs_in_root: paths inside a
// container tree resolve as if the tree were "/". A symlink planted in the
// container ("etc" -> "/etc" of the host, played here by a temp dir) must
// never make farmhand read or write outside the tree.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <set>
#include <string>

#include "tests/unit/temp_dir.h"
#include "common/fs.h"

namespace farmhand {
namespace {

using test::TempDir;

std::set<std::string> names_in(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

std::string slurp(const fs::path& p) {
  auto r = read_file(p);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
  return r.ok() ? *r : "";
}

// A container tree plus a directory standing in for the host's /etc.
class InRootTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = tree_.path() / "root";
    ASSERT_TRUE(make_dirs(root_).ok());
    ASSERT_TRUE(write_file_atomic(host_etc() / "passwd", "root:x:0:0\n").ok());
  }
  fs::path host_etc() const { return host_.path() / "etc"; }
  // Where the absolute host_etc() path lands when resolved inside the tree.
  fs::path host_etc_in_root() const { return root_ / host_etc().relative_path(); }
  void expect_host_untouched() {
    EXPECT_EQ(names_in(host_etc()), (std::set<std::string>{"passwd"}));
    EXPECT_EQ(slurp(host_etc() / "passwd"), "root:x:0:0\n");
  }

  TempDir tree_;
  TempDir host_;
  fs::path root_;
};

TEST_F(InRootTest, WritesReadsAndCreatesDirectories) {
  ASSERT_TRUE(write_file_in_root(root_, "etc/systemd/network/50-host0.network", "[Match]\n").ok());
  ASSERT_TRUE(write_file_in_root(root_, "/etc/secret.conf", "s", 0600).ok());
  EXPECT_EQ(slurp(root_ / "etc/systemd/network/50-host0.network"), "[Match]\n");
  struct stat st {};
  ASSERT_EQ(::stat((root_ / "etc/secret.conf").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(names_in(root_ / "etc"), (std::set<std::string>{"systemd", "secret.conf"}));
  EXPECT_EQ(names_in(root_ / "etc/systemd/network"), (std::set<std::string>{"50-host0.network"}));

  auto r = read_file_in_root(root_, "etc/secret.conf");
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ(**r, "s");
  auto missing = read_file_in_root(root_, "etc/nope");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
  auto no_root = read_file_in_root(root_ / "absent", "etc/hostname");
  ASSERT_TRUE(no_root.ok());
  EXPECT_FALSE(no_root->has_value());

  ASSERT_TRUE(make_dirs_in_root(root_, "var/lib/x", 0700).ok());
  ASSERT_EQ(::stat((root_ / "var/lib/x").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
}

TEST_F(InRootTest, OverwriteKeepsNoTempFiles) {
  ASSERT_TRUE(write_file_in_root(root_, "etc/hostname", "a\n").ok());
  ASSERT_TRUE(write_file_in_root(root_, "etc/hostname", "b\n").ok());
  EXPECT_EQ(slurp(root_ / "etc/hostname"), "b\n");
  EXPECT_EQ(names_in(root_ / "etc"), (std::set<std::string>{"hostname"}));
}

// etc -> /abs/host/etc: the link resolves to ROOT/abs/host/etc, which does not
// exist, so the write fails instead of landing in the host directory.
TEST_F(InRootTest, AbsoluteSymlinkedDirectoryDoesNotEscape) {
  fs::create_directory_symlink(host_etc(), root_ / "etc");
  auto s = write_file_in_root(root_, "etc/passwd", "evil\n");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(),
            "cannot open '" + (root_ / "etc").string() + "': No such file or directory");
  s = write_file_in_root(root_, "etc/new-file", "evil\n");
  EXPECT_FALSE(s.ok());
  expect_host_untouched();
  EXPECT_TRUE(fs::is_symlink(root_ / "etc"));
}

// With the link's target also present inside the tree, the write lands there.
TEST_F(InRootTest, AbsoluteSymlinkResolvesInsideTheTree) {
  fs::create_directory_symlink(host_etc(), root_ / "etc");
  ASSERT_TRUE(make_dirs(host_etc_in_root()).ok());
  ASSERT_TRUE(write_file_in_root(root_, "etc/passwd", "inside\n").ok());
  ASSERT_TRUE(write_file_in_root(root_, "etc/hostname", "box\n").ok());
  expect_host_untouched();
  EXPECT_EQ(slurp(host_etc_in_root() / "passwd"), "inside\n");
  EXPECT_EQ(slurp(host_etc_in_root() / "hostname"), "box\n");
  auto r = read_file_in_root(root_, "etc/passwd");
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ(**r, "inside\n");
}

TEST_F(InRootTest, DotDotSymlinkIsClampedAtTheRoot) {
  std::string up;
  for (int i = 0; i < 20; ++i) up += "../";
  fs::create_directory_symlink(up + host_etc().relative_path().string(), root_ / "etc");
  EXPECT_FALSE(write_file_in_root(root_, "etc/passwd", "evil\n").ok());
  auto r = read_file_in_root(root_, "etc/passwd");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_value());
  auto dotdot = read_file_in_root(root_, up + host_etc().relative_path().string() + "/passwd");
  ASSERT_TRUE(dotdot.ok());
  EXPECT_FALSE(dotdot->has_value());
  expect_host_untouched();
}

// The final component a symlink to a host file: the link is replaced, the
// host file keeps its content.
TEST_F(InRootTest, SymlinkedFileIsReplacedNotFollowed) {
  ASSERT_TRUE(make_dirs(root_ / "etc").ok());
  fs::create_symlink(host_etc() / "passwd", root_ / "etc" / "passwd");
  ASSERT_TRUE(write_file_in_root(root_, "etc/passwd", "container\n").ok());
  expect_host_untouched();
  EXPECT_FALSE(fs::is_symlink(root_ / "etc" / "passwd"));
  EXPECT_EQ(slurp(root_ / "etc" / "passwd"), "container\n");
}

TEST_F(InRootTest, ReadThroughSymlinksStaysInside) {
  ASSERT_TRUE(make_dirs(root_ / "etc").ok());
  fs::create_symlink(host_etc() / "passwd", root_ / "etc" / "shadow");
  fs::create_directory_symlink(host_etc(), root_ / "hostetc");
  for (const char* rel : {"etc/shadow", "hostetc/passwd"}) {
    auto r = read_file_in_root(root_, rel);
    ASSERT_TRUE(r.ok()) << rel;
    EXPECT_FALSE(r->has_value()) << rel << " was read from outside the tree";
  }
}

TEST_F(InRootTest, MakeDirsThroughAbsoluteSymlinkDoesNotEscape) {
  fs::create_directory_symlink(host_etc(), root_ / "etc");
  auto s = make_dirs_in_root(root_, "etc/systemd/network");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(),
            "cannot open '" + (root_ / "etc").string() + "': No such file or directory");
  expect_host_untouched();
}

TEST_F(InRootTest, ProcSelfRootSymlinkDoesNotReachTheHost) {
  // Followed on the host, /proc/self/root leads back to the host's "/".
  ASSERT_TRUE(make_dirs(root_ / "proc").ok());
  fs::create_directory_symlink("/proc/self/root", root_ / "escape");
  auto r = read_file_in_root(root_, "escape" + host_etc().string() + "/passwd");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_value());
  expect_host_untouched();
}

}  // namespace
}  // namespace farmhand

namespace farmhand {
namespace {

TEST_F(InRootTest, SymlinksAreMadeReadAndRemovedInsideTheTree) {
  ASSERT_TRUE(symlink_in_root(root_, "etc/systemd/system/multi-user.target.wants/x.service",
                              "/etc/systemd/system/x.service")
                  .ok());
  EXPECT_EQ(readlink_in_root(root_, "/etc/systemd/system/multi-user.target.wants/x.service")->value_or(""),
            "/etc/systemd/system/x.service");
  // Replacing is atomic and leaves no temporary name behind.
  ASSERT_TRUE(symlink_in_root(root_, "etc/systemd/system/multi-user.target.wants/x.service", "/y").ok());
  EXPECT_EQ(names_in(root_ / "etc/systemd/system/multi-user.target.wants"), (std::set<std::string>{"x.service"}));
  EXPECT_FALSE(readlink_in_root(root_, "etc/missing")->has_value());
  ASSERT_TRUE(write_file_in_root(root_, "etc/plain", "x").ok());
  EXPECT_FALSE(readlink_in_root(root_, "etc/plain")->has_value());  // not a link
  ASSERT_TRUE(remove_in_root(root_, "etc/systemd/system/multi-user.target.wants/x.service").ok());
  EXPECT_TRUE(names_in(root_ / "etc/systemd/system/multi-user.target.wants").empty());
  EXPECT_TRUE(remove_in_root(root_, "etc/systemd/system/multi-user.target.wants/x.service").ok());  // already gone
}

TEST_F(InRootTest, StatAndRemoveDoNotFollowALinkOutOfTheTree) {
  ASSERT_EQ(::symlink(host_etc().c_str(), (root_ / "etc").c_str()), 0);
  // "/etc/passwd" in the tree resolves to the tree's own (missing) path.
  EXPECT_FALSE(stat_in_root(root_, "etc/passwd")->has_value());
  ASSERT_TRUE(remove_in_root(root_, "etc/passwd").ok());
  expect_host_untouched();
  ASSERT_TRUE(make_dirs(host_etc_in_root()).ok());
  ASSERT_TRUE(write_file_in_root(root_, "etc/passwd", "sai\n", 0640, Ownership{::getuid(), ::getgid()}).ok());
  expect_host_untouched();
  auto st = stat_in_root(root_, "etc/passwd");
  ASSERT_TRUE(st.ok() && st->has_value());
  EXPECT_EQ((*st)->mode & 07777, 0640u);
  EXPECT_EQ((*st)->uid, ::getuid());
  EXPECT_EQ(slurp(host_etc_in_root() / "passwd"), "sai\n");
}



TEST_F(InRootTest, AFifoIsRefusedWithoutBlocking) {
  ASSERT_TRUE(make_dirs(root_ / "home/sai").ok());
  ASSERT_EQ(::mkfifo((root_ / "home/sai/HEAD").c_str(), 0644), 0);
  auto r = read_file_in_root(root_, "home/sai/HEAD");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "'" + (root_ / "home/sai/HEAD").string() + "' is not a regular file");
}

}  // namespace
}  // namespace farmhand
