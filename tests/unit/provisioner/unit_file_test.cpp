// INI rendering for systemd files and unit-name path escaping.
#include "provisioner/unit_file.h"

#include <gtest/gtest.h>

namespace farmhand::provisioner {
namespace {

TEST(UnitFile, KeepsSectionsAndRepeatedKeysInInsertionOrder) {
  UnitFile f;
  EXPECT_TRUE(f.empty());
  f.add("Exec", "Boot", "yes")
      .add("Files", "Bind", "/b")
      .add("Files", "BindReadOnly", "/ro")
      .add("Exec", "PrivateUsers", "no")
      .add("Files", "Bind", "/a");
  EXPECT_FALSE(f.empty());
  EXPECT_EQ(f.str(),
            "[Exec]\n"
            "Boot=yes\n"
            "PrivateUsers=no\n"
            "\n"
            "[Files]\n"
            "Bind=/b\n"
            "BindReadOnly=/ro\n"
            "Bind=/a\n");
}

TEST(UnitFile, HeaderCommentComesFirstThenABlankLine) {
  UnitFile f("Managed by farmhand.");
  EXPECT_EQ(f.str(), "# Managed by farmhand.\n");
  f.add("Match", "Name", "host0");
  f.add("Network", "Address", "192.168.80.9/24");
  EXPECT_EQ(f.str(),
            "# Managed by farmhand.\n"
            "\n"
            "[Match]\n"
            "Name=host0\n"
            "\n"
            "[Network]\n"
            "Address=192.168.80.9/24\n");
}

TEST(UnitFile, EmptyValuesAreKept) {
  UnitFile f;
  f.add("Service", "ExecStart", "").add("Service", "ExecStart", "/bin/true");
  EXPECT_EQ(f.str(), "[Service]\nExecStart=\nExecStart=/bin/true\n");
}

// Expected values are what `systemd-escape --path` (systemd 252) prints.
TEST(EscapeUnitPath, MatchesSystemdEscapePath) {
  const std::pair<const char*, const char*> cases[] = {
      {"/var/lib/machines/bookworm-a", "var-lib-machines-bookworm\\x2da"},
      {"/", "-"},
      {"//", "-"},
      {"", "-"},
      {"/var//lib///machines/", "var-lib-machines"},
      {"/.hidden/x", "\\x2ehidden-x"},
      {"/a/.b", "a-.b"},
      {"/x.", "x."},
      {"/a b/c", "a\\x20b-c"},
      {"/\xc3\xa4\xc3\xb6", "\\xc3\\xa4\\xc3\\xb6"},
      {"/foo:bar_baz.q", "foo:bar_baz.q"},
      {"/a\\b", "a\\x5cb"},
      {"/-x", "\\x2dx"},
      {"/a/./b", "a-b"},
      {"/./.b", "\\x2eb"},
      {"/var/lib/machines/Trixie_1", "var-lib-machines-Trixie_1"},
      {"relative/path", "relative-path"},
  };
  for (const auto& [in, want] : cases) EXPECT_EQ(escape_unit_path(in), want) << '"' << in << '"';
}

}  // namespace
}  // namespace farmhand::provisioner
