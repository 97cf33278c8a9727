// Clone-method names, partial clone paths and mount-point detection.
#include "tests/unit/temp_dir.h"
#include "provisioner/clone.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>

namespace farmhand::provisioner {
namespace {

TEST(ParseCloneMethod, KnownNamesRoundTrip) {
  for (CloneMethod m : {CloneMethod::kAuto, CloneMethod::kBtrfs, CloneMethod::kReflink,
                        CloneMethod::kOverlay, CloneMethod::kCopy}) {
    auto parsed = parse_clone_method(std::string(to_string(m)));
    ASSERT_TRUE(parsed.has_value()) << to_string(m);
    EXPECT_EQ(*parsed, m);
  }
  EXPECT_EQ(parse_clone_method("overlay"), CloneMethod::kOverlay);
  EXPECT_EQ(to_string(CloneMethod::kReflink), "reflink");
}

TEST(ParseCloneMethod, RejectsEverythingElse) {
  for (const char* bad : {"", "Copy", "COPY", "cp", "btrfs ", " auto", "snapshot", "unknown"}) {
    EXPECT_FALSE(parse_clone_method(bad).has_value()) << '"' << bad << '"';
  }
}

TEST(PartialClonePath, IsAHiddenSibling) {
  EXPECT_EQ(partial_clone_path("/var/lib/machines/bookworm-a"),
            fs::path("/var/lib/machines/.bookworm-a.farmhand-partial"));
  EXPECT_EQ(partial_clone_path("/srv/m/x"), fs::path("/srv/m/.x.farmhand-partial"));
}

TEST(IsMountPoint, ProcIsAndAPlainDirectoryIsNot) {
  EXPECT_TRUE(is_mount_point("/proc"));
  test::TempDir tmp;
  const fs::path& dir = tmp.path();
  EXPECT_FALSE(is_mount_point(dir));
  EXPECT_FALSE(is_mount_point(dir / "missing"));
  // A symlink to a mount point is not one itself.
  fs::create_directory_symlink("/proc", dir / "proc-link");
  EXPECT_FALSE(is_mount_point(dir / "proc-link"));
}

}  // namespace
}  // namespace farmhand::provisioner
