// /etc/passwd and /etc/group of a root filesystem: the one reader, and the
// one editor of group membership.
//
// The parsers take the files' text, so a caller reads it however the tree
// must be reached (read_file_in_root for a container's tree, an fd below
// /proc/PID/root for a running container). A line that is not well formed
// (too few fields, an id that is not a plain number, the id (uid_t)-1 that
// means "none", a NIS "+" entry) is skipped by the lookups.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/fs.h"
#include "common/result.h"

namespace farmhand::etc {

// name:password:uid:gid:gecos:home:shell
struct User {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string home;   // empty if the line stops before it
  std::string shell;
  bool operator==(const User&) const = default;
};

// name:password:gid:member,member
struct Group {
  std::string name;
  gid_t gid = 0;
  std::vector<std::string> members;
  bool operator==(const Group&) const = default;
};

// A decimal id of at most 10 digits, below (unsigned)-1; std::nullopt
// otherwise.
std::optional<unsigned> parse_id(std::string_view text);

std::vector<User> parse_passwd(std::string_view text);
std::vector<Group> parse_group(std::string_view text);

// The first well-formed entry with that name or id.
std::optional<User> find_user(std::string_view passwd_text, std::string_view name);
std::optional<User> find_user_by_uid(std::string_view passwd_text, uid_t uid);
std::optional<Group> find_group(std::string_view group_text, std::string_view name);
std::optional<Group> find_group_by_gid(std::string_view group_text, gid_t gid);

// Whether any entry of `group` lists `user` as a member.
bool is_member(std::string_view group_text, std::string_view group, std::string_view user);

// The /etc/group text with `user` added to each of `groups`: to every line
// of a group that exists and does not list it yet, and as a new system group
// (the highest free gid from 999 down to 100) with `user` as its only member
// for a group that does not exist. Every other line is kept as it was; each
// line ends with a newline.
std::string add_user_to_groups(std::string_view group_text, std::string_view user,
                               const std::vector<std::string>& groups);

// The tree's etc/passwd and etc/group, read inside it (read_file_in_root:
// a symlink in the tree never leads out of it); std::nullopt if missing.
Result<std::optional<std::string>> read_passwd(const fs::path& root);
Result<std::optional<std::string>> read_group(const fs::path& root);

// add_user_to_groups on the tree's etc/group, written atomically inside the
// tree (mode 0644). Nothing is written when `groups` is empty or the tree
// has no etc/group.
Status add_user_to_groups_in_root(const fs::path& root, std::string_view user,
                                  const std::vector<std::string>& groups);

}  // namespace farmhand::etc
