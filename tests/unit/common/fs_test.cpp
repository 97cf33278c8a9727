// Atomic writes, tree removal, locks and root-confined paths on a temp dir.
#include "tests/unit/temp_dir.h"
#include "common/fs.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

namespace farmhand {
namespace {

using test::TempDir;

std::string slurp(const fs::path& p) {
  auto r = read_file(p);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
  return r.ok() ? *r : "";
}

mode_t mode_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

std::set<std::string> names_in(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

// Sets the umask for one scope.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t m) : old_(::umask(m)) {}
  ~ScopedUmask() { ::umask(old_); }

 private:
  mode_t old_;
};

TEST(WriteFileAtomic, WritesContentCreatesParentsLeavesNoTempFiles) {
  TempDir t;
  const fs::path p = t.path() / "a" / "b" / "c.conf";
  ASSERT_TRUE(write_file_atomic(p, "hello\n").ok());
  EXPECT_EQ(slurp(p), "hello\n");
  EXPECT_EQ(mode_of(p), 0644u);
  EXPECT_EQ(names_in(p.parent_path()), (std::set<std::string>{"c.conf"}));
  ASSERT_TRUE(write_file_atomic(p, "second").ok());
  EXPECT_EQ(slurp(p), "second");
  EXPECT_EQ(names_in(p.parent_path()), (std::set<std::string>{"c.conf"}));
}

TEST(WriteFileAtomic, EmptyContentMakesAnEmptyFile) {
  TempDir t;
  ASSERT_TRUE(write_file_atomic(t.path() / "empty", "").ok());
  EXPECT_EQ(slurp(t.path() / "empty"), "");
}

TEST(WriteFileAtomic, ModeIsExactWhateverTheUmask) {
  TempDir t;
  {
    ScopedUmask u(0077);
    ASSERT_TRUE(write_file_atomic(t.path() / "wide", "x", 0644).ok());
  }
  {
    ScopedUmask u(0);
    ASSERT_TRUE(write_file_atomic(t.path() / "secret", "x", 0600).ok());
  }
  EXPECT_EQ(mode_of(t.path() / "wide"), 0644u);
  EXPECT_EQ(mode_of(t.path() / "secret"), 0600u);
  // Rewriting an existing 0644 file with 0600 narrows it.
  ASSERT_TRUE(write_file_atomic(t.path() / "wide", "y", 0600).ok());
  EXPECT_EQ(mode_of(t.path() / "wide"), 0600u);
}

TEST(WriteFileAtomic, ReplacesASymlinkNotItsTarget) {
  TempDir t;
  const fs::path target = t.path() / "target";
  ASSERT_TRUE(write_file_atomic(target, "original").ok());
  fs::create_symlink(target, t.path() / "link");
  ASSERT_TRUE(write_file_atomic(t.path() / "link", "new").ok());
  EXPECT_EQ(slurp(target), "original");
  EXPECT_FALSE(fs::is_symlink(t.path() / "link"));
  EXPECT_EQ(slurp(t.path() / "link"), "new");
}

TEST(WriteFileAtomic, FailsWhenAFileIsInTheWayOfTheDirectory) {
  TempDir t;
  ASSERT_TRUE(write_file_atomic(t.path() / "f", "x").ok());
  auto s = write_file_atomic(t.path() / "f" / "g", "y");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(),
            "cannot create directory '" + (t.path() / "f").string() +
                "': a non-directory is in the way");
}

TEST(ReadFile, MissingIsNulloptAndReadFileSaysSo) {
  TempDir t;
  auto r = read_file_if_exists(t.path() / "nope");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_value());
  auto under_file = read_file_if_exists(t.path() / "nope" / "deeper");
  ASSERT_TRUE(under_file.ok());
  EXPECT_FALSE(under_file->has_value());
  auto strict = read_file(t.path() / "nope");
  ASSERT_FALSE(strict.ok());
  EXPECT_EQ(strict.error().message(),
            "cannot open '" + (t.path() / "nope").string() + "': No such file or directory");
}

TEST(ReadFile, ReadsBinaryContentAndLargeFiles) {
  TempDir t;
  std::string big(200000, 'z');
  big[5] = '\0';
  ASSERT_TRUE(write_file_atomic(t.path() / "big", big).ok());
  auto r = read_file_if_exists(t.path() / "big");
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ(**r, big);
}

TEST(RemoveTree, RemovesNestedDirectoriesAndMissingIsFine) {
  TempDir t;
  const fs::path root = t.path() / "tree";
  ASSERT_TRUE(write_file_atomic(root / "a" / "b" / "c" / "file", "1").ok());
  ASSERT_TRUE(write_file_atomic(root / "top", "2").ok());
  ASSERT_TRUE(make_dirs(root / "empty" / "dir").ok());
  ASSERT_TRUE(remove_tree(root).ok());
  EXPECT_FALSE(path_exists(root));
  EXPECT_TRUE(remove_tree(root).ok());
  EXPECT_TRUE(names_in(t.path()).empty());
}

TEST(RemoveTree, DoesNotFollowSymlinks) {
  TempDir t;
  const fs::path outside = t.path() / "outside";
  ASSERT_TRUE(write_file_atomic(outside / "keep" / "me", "precious").ok());
  const fs::path root = t.path() / "tree";
  ASSERT_TRUE(make_dirs(root / "sub").ok());
  fs::create_directory_symlink(outside, root / "sub" / "abs-link");
  fs::create_directory_symlink("../../outside/keep", root / "sub" / "rel-link");
  fs::create_symlink(outside / "keep" / "me", root / "file-link");
  ASSERT_TRUE(remove_tree(root).ok());
  EXPECT_FALSE(path_exists(root));
  EXPECT_EQ(slurp(outside / "keep" / "me"), "precious");
}

TEST(RemoveTree, ASymlinkArgumentRemovesOnlyTheLink) {
  TempDir t;
  ASSERT_TRUE(write_file_atomic(t.path() / "real" / "f", "data").ok());
  fs::create_directory_symlink(t.path() / "real", t.path() / "link");
  ASSERT_TRUE(remove_tree(t.path() / "link").ok());
  EXPECT_FALSE(path_exists(t.path() / "link"));
  EXPECT_EQ(slurp(t.path() / "real" / "f"), "data");
}

TEST(PathExists, SeesDanglingSymlinks) {
  TempDir t;
  fs::create_symlink(t.path() / "nowhere", t.path() / "dangling");
  EXPECT_TRUE(path_exists(t.path() / "dangling"));
  EXPECT_FALSE(path_exists(t.path() / "nowhere"));
}

TEST(MakeDirs, CreatesWithModeAndAcceptsExisting) {
  TempDir t;
  ScopedUmask u(0);
  ASSERT_TRUE(make_dirs(t.path() / "x" / "y", 0700).ok());
  EXPECT_EQ(mode_of(t.path() / "x"), 0700u);
  EXPECT_EQ(mode_of(t.path() / "x" / "y"), 0700u);
  EXPECT_TRUE(make_dirs(t.path() / "x" / "y").ok());
}

TEST(HostRoot, MapsUnderThePrefix) {
  HostRoot test_root("/tmp/r");
  EXPECT_FALSE(test_root.is_real_root());
  EXPECT_EQ(test_root.map("/etc/systemd/nspawn/a.nspawn"),
            fs::path("/tmp/r/etc/systemd/nspawn/a.nspawn"));
  EXPECT_EQ(test_root.map("/"), fs::path("/tmp/r/"));
  HostRoot real;
  EXPECT_TRUE(real.is_real_root());
  EXPECT_EQ(real.map("/etc/hosts"), fs::path("/etc/hosts"));
  EXPECT_TRUE(HostRoot("").is_real_root());
}

// The child waits for the go byte, then blocks in acquire() until the parent
// releases; it reports acquisition by writing one byte.
TEST(FileLock, SecondHolderWaitsForRelease) {
  TempDir t;
  const fs::path lock_path = t.path() / "locks" / "apply.lock";
  int go[2], got[2];
  ASSERT_EQ(::pipe(go), 0);
  ASSERT_EQ(::pipe(got), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::alarm(20);  // never outlive a broken test
    char c;
    if (::read(go[0], &c, 1) != 1) ::_exit(2);
    auto lock = FileLock::acquire(lock_path);
    if (!lock.ok()) ::_exit(3);
    if (::write(got[1], "L", 1) != 1) ::_exit(4);
    ::_exit(0);
  }
  ::close(go[0]);
  ::close(got[1]);
  {
    auto lock = FileLock::acquire(lock_path);
    ASSERT_TRUE(lock.ok()) << lock.error().message();
    EXPECT_EQ(mode_of(lock_path), 0600u);
    ASSERT_EQ(::write(go[1], "g", 1), 1);
    pollfd p = {got[0], POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 300), 0) << "the child got the lock while it was held";
  }
  pollfd p = {got[0], POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 10000), 1) << "the child never got the released lock";
  char c = 0;
  EXPECT_EQ(::read(got[0], &c, 1), 1);
  EXPECT_EQ(c, 'L');
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  ::close(go[1]);
  ::close(got[0]);
}

// Whether another open file description could take the lock right now.
bool lock_is_free(const fs::path& p) {
  int fd = ::open(p.c_str(), O_RDWR | O_CLOEXEC);
  EXPECT_GE(fd, 0);
  bool free = ::flock(fd, LOCK_EX | LOCK_NB) == 0;
  ::close(fd);
  return free;
}

TEST(FileLock, HeldUntilTheLastOwnerIsDestroyed) {
  TempDir t;
  const fs::path p = t.path() / "l";
  {
    auto a = FileLock::acquire(p);
    ASSERT_TRUE(a.ok());
    EXPECT_FALSE(lock_is_free(p));
    {
      FileLock moved(std::move(*a));
      EXPECT_FALSE(lock_is_free(p));
    }
    EXPECT_TRUE(lock_is_free(p));
  }
  EXPECT_TRUE(lock_is_free(p));
}

}  // namespace
}  // namespace farmhand

namespace farmhand {
namespace {

TEST(WriteFileAtomic, BareFileNameIsInTheCurrentDirectory) {
  char dir_template[] = "/tmp/farmhand-fs-bare.XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const fs::path old_cwd = fs::current_path();
  fs::current_path(dir_template);
  Status st = write_file_atomic("bare.txt", "hello\n", 0600);
  fs::current_path(old_cwd);
  ASSERT_TRUE(st) << st.error().message();
  EXPECT_EQ(*read_file(fs::path(dir_template) / "bare.txt"), "hello\n");
  fs::remove_all(dir_template);
}

}  // namespace
}  // namespace farmhand
