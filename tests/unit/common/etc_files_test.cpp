// etc_files: the passwd and group parsers and the membership editor on
// texts, and the edit of a tree's etc/group written inside the tree.
#include "common/etc_files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "tests/unit/temp_dir.h"

namespace farmhand::etc {
namespace {

std::optional<gid_t> gid_of(std::string_view text, std::string_view name) {
  auto g = find_group(text, name);
  return g ? std::optional<gid_t>(g->gid) : std::nullopt;
}

// Moved here from binder_test.cpp (the binder's own parser until it used this one).
TEST(FindGroup, ReadsTheGidOfTheNamedGroupOnly) {
  const std::string group =
      "root:x:0:\ndial:x:7:\ndialout:x:20:alice,bob\n+nis\nbroken:x:\nplugdev:x:abc:\n";
  EXPECT_EQ(gid_of(group, "dialout"), 20u);
  EXPECT_EQ(gid_of(group, "root"), 0u);
  EXPECT_EQ(gid_of(group, "dial"), 7u);
  EXPECT_EQ(gid_of(group, "dialou"), std::nullopt);
  EXPECT_EQ(gid_of(group, "broken"), std::nullopt);
  EXPECT_EQ(gid_of(group, "plugdev"), std::nullopt);
  EXPECT_EQ(gid_of("nogroup:x:65534", "nogroup"), 65534u);  // no trailing ':' or newline
  EXPECT_EQ(gid_of("bad:x:4294967295:\n", "bad"), std::nullopt);
}

TEST(FindGroup, HasMembersAndIsFoundByGid) {
  const std::string group = "root:x:0:\ndialout:x:20:alice,,bob\nplugdev:x:46\ndialout:x:21:carol\n";
  EXPECT_EQ(find_group(group, "dialout"), (Group{"dialout", 20, {"alice", "bob"}}));
  EXPECT_EQ(find_group(group, "plugdev"), (Group{"plugdev", 46, {}}));
  EXPECT_EQ(find_group_by_gid(group, 21), (Group{"dialout", 21, {"carol"}}));
  EXPECT_EQ(find_group_by_gid(group, 22), std::nullopt);
  EXPECT_EQ(parse_group(group).size(), 4u);
  // Membership is any line of the group.
  EXPECT_TRUE(is_member(group, "dialout", "bob"));
  EXPECT_TRUE(is_member(group, "dialout", "carol"));
  EXPECT_FALSE(is_member(group, "dialout", "bo"));
  EXPECT_FALSE(is_member(group, "plugdev", "bob"));
  EXPECT_FALSE(is_member(group, "video", "bob"));
}

TEST(FindUser, ByNameAndByUidSkippingMalformedLines) {
  const std::string passwd =
      "root:x:0:0:root:/root:/bin/bash\n"
      "sai:x:abc:883::/home/sai:/bin/sh\n"   // uid not a number: skipped
      "sai:x:883:883:SAI builder:/home/sai:/bin/sh\n"
      "short:x:5\n"                          // no gid field: skipped
      "nobody:x:65534:65534::/nonexistent\n"  // no shell field
      "none:x:4294967295:0::/:/bin/false";    // (uid_t)-1 is "none": skipped
  EXPECT_EQ(find_user(passwd, "sai"), (User{"sai", 883, 883, "/home/sai", "/bin/sh"}));
  EXPECT_EQ(find_user(passwd, "nobody"), (User{"nobody", 65534, 65534, "/nonexistent", ""}));
  EXPECT_EQ(find_user(passwd, "sa"), std::nullopt);
  EXPECT_EQ(find_user(passwd, "short"), std::nullopt);
  EXPECT_EQ(find_user(passwd, "none"), std::nullopt);
  EXPECT_EQ(find_user_by_uid(passwd, 0)->name, "root");
  EXPECT_EQ(find_user_by_uid(passwd, 883)->home, "/home/sai");
  EXPECT_EQ(find_user_by_uid(passwd, 5), std::nullopt);
  EXPECT_EQ(parse_passwd(passwd).size(), 3u);
}

TEST(ParseId, PlainDecimalBelowTheNoneId) {
  EXPECT_EQ(parse_id("0"), 0u);
  EXPECT_EQ(parse_id("4294967294"), 4294967294u);
  EXPECT_EQ(parse_id("4294967295"), std::nullopt);
  EXPECT_EQ(parse_id("99999999999"), std::nullopt);
  EXPECT_EQ(parse_id(""), std::nullopt);
  EXPECT_EQ(parse_id("-1"), std::nullopt);
  EXPECT_EQ(parse_id(" 1"), std::nullopt);
}

TEST(AddUserToGroups, AppendsToExistingGroupsAndKeepsOtherLines) {
  const std::string group = "root:x:0:\n# comment\ndialout:x:20:alice\nplugdev:x:46:\n\ntty:x:5:sai,bob";
  EXPECT_EQ(add_user_to_groups(group, "sai", {"dialout", "plugdev", "tty"}),
            "root:x:0:\n# comment\ndialout:x:20:alice,sai\nplugdev:x:46:sai\n\ntty:x:5:sai,bob\n");
  // A group line without its member field gets one, not a changed gid.
  EXPECT_EQ(add_user_to_groups("kvm:x:104\n", "sai", {"kvm"}), "kvm:x:104:sai\n");
  // Every line of a group that does not list the user yet.
  EXPECT_EQ(add_user_to_groups("g:x:7:a\ng:x:7:sai\ng:x:7:\n", "sai", {"g"}), "g:x:7:a,sai\ng:x:7:sai\ng:x:7:sai\n");
  EXPECT_EQ(add_user_to_groups(group, "sai", {}), group + "\n");
}

TEST(AddUserToGroups, CreatesMissingGroupsWithTheHighestFreeSystemGid) {
  EXPECT_EQ(add_user_to_groups("root:x:0:\n", "sai", {"dialout"}), "root:x:0:\ndialout:x:999:sai\n");
  EXPECT_EQ(add_user_to_groups("a:x:999:\nb:x:998:x\n", "sai", {"dialout", "gpio"}),
            "a:x:999:\nb:x:998:x\ndialout:x:997:sai\ngpio:x:996:sai\n");
  EXPECT_EQ(add_user_to_groups("", "sai", {"dialout"}), "dialout:x:999:sai\n");
  // With every gid from 999 down to 101 taken, 100 is what is left.
  std::string full;
  for (int gid = 101; gid <= 999; ++gid) full += "g" + std::to_string(gid) + ":x:" + std::to_string(gid) + ":\n";
  EXPECT_EQ(add_user_to_groups(full, "sai", {"dialout"}), full + "dialout:x:100:sai\n");
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(AddUserToGroupsInRoot, EditsTheTreesGroupFileInPlace) {
  test::TempDir tree;
  fs::create_directories(tree.path() / "etc");
  std::ofstream(tree.path() / "etc/group") << "root:x:0:\ndialout:x:20:\n";
  std::ofstream(tree.path() / "etc/passwd") << "root:x:0:0::/root:/bin/sh\nsai:x:883:883::/home/sai:/bin/sh\n";
  ASSERT_TRUE(add_user_to_groups_in_root(tree.path(), "sai", {"dialout", "gpio"}));
  EXPECT_EQ(read_text(tree.path() / "etc/group"), "root:x:0:\ndialout:x:20:sai\ngpio:x:999:sai\n");
  struct stat st {};
  ASSERT_EQ(::stat((tree.path() / "etc/group").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  auto group = read_group(tree.path());
  ASSERT_TRUE(group && group->has_value());
  EXPECT_TRUE(is_member(**group, "gpio", "sai"));
  auto passwd = read_passwd(tree.path());
  ASSERT_TRUE(passwd && passwd->has_value());
  EXPECT_EQ(find_user(**passwd, "sai")->uid, 883u);
}

TEST(AddUserToGroupsInRoot, LeavesATreeWithoutGroupFileAlone) {
  test::TempDir tree;
  ASSERT_TRUE(add_user_to_groups_in_root(tree.path(), "sai", {"dialout"}));
  EXPECT_FALSE(fs::exists(tree.path() / "etc/group"));
  auto group = read_group(tree.path());
  ASSERT_TRUE(group);
  EXPECT_FALSE(group->has_value());
}

TEST(AddUserToGroupsInRoot, AGroupFileLinkedOutOfTheTreeIsReadAndWrittenInside) {
  test::TempDir tree, host;
  fs::create_directories(tree.path() / "etc");
  std::ofstream(host.path() / "group") << "dialout:x:20:\n";
  // An absolute link, as a container could plant: resolved inside the tree,
  // where it leads nowhere, so the host's file is neither read nor written.
  fs::create_symlink(host.path() / "group", tree.path() / "etc/group");
  ASSERT_TRUE(add_user_to_groups_in_root(tree.path(), "sai", {"dialout"}));
  EXPECT_EQ(read_text(host.path() / "group"), "dialout:x:20:\n");
  EXPECT_TRUE(fs::is_symlink(tree.path() / "etc/group"));
}

}  // namespace
}  // namespace farmhand::etc
