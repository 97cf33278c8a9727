#include "common/etc_files.h"

#include <algorithm>
#include <climits>
#include <set>

namespace farmhand::etc {

namespace {

// The lines of a text, as std::getline splits them: a last line without a
// newline is a line, a text ending in one has no empty line after it.
std::vector<std::string_view> lines_of(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    out.push_back(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
  }
  return out;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  for (;;) {
    const size_t at = s.find(sep);
    out.push_back(s.substr(0, at));
    if (at == std::string_view::npos) return out;
    s = s.substr(at + 1);
  }
}

std::optional<User> parse_user(std::string_view line) {
  const auto f = split(line, ':');
  if (f.size() < 4) return std::nullopt;
  auto uid = parse_id(f[2]);
  auto gid = parse_id(f[3]);
  if (!uid || !gid) return std::nullopt;
  return User{std::string(f[0]), static_cast<uid_t>(*uid), static_cast<gid_t>(*gid),
              std::string(f.size() > 5 ? f[5] : ""), std::string(f.size() > 6 ? f[6] : "")};
}

std::vector<std::string> members_of(std::string_view list) {
  std::vector<std::string> out;
  if (list.empty()) return out;
  for (auto m : split(list, ',')) {
    if (!m.empty()) out.emplace_back(m);
  }
  return out;
}

std::optional<Group> parse_group_line(std::string_view line) {
  const auto f = split(line, ':');
  if (f.size() < 3) return std::nullopt;
  auto gid = parse_id(f[2]);
  if (!gid) return std::nullopt;
  return Group{std::string(f[0]), static_cast<gid_t>(*gid), members_of(f.size() > 3 ? f[3] : "")};
}

template <typename Entry, typename Parse, typename Match>
std::optional<Entry> first(std::string_view text, Parse parse, Match match) {
  for (auto line : lines_of(text)) {
    auto e = parse(line);
    if (e && match(*e)) return e;
  }
  return std::nullopt;
}

}  // namespace

std::optional<unsigned> parse_id(std::string_view text) {
  if (text.empty() || text.size() > 10 || text.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::nullopt;
  }
  const uint64_t value = std::stoull(std::string(text));
  if (value >= UINT_MAX) return std::nullopt;  // (uid_t)-1 and (gid_t)-1 are "none"
  return static_cast<unsigned>(value);
}

std::vector<User> parse_passwd(std::string_view text) {
  std::vector<User> out;
  for (auto line : lines_of(text)) {
    if (auto u = parse_user(line)) out.push_back(std::move(*u));
  }
  return out;
}

std::vector<Group> parse_group(std::string_view text) {
  std::vector<Group> out;
  for (auto line : lines_of(text)) {
    if (auto g = parse_group_line(line)) out.push_back(std::move(*g));
  }
  return out;
}

std::optional<User> find_user(std::string_view passwd_text, std::string_view name) {
  return first<User>(passwd_text, parse_user, [&](const User& u) { return u.name == name; });
}

std::optional<User> find_user_by_uid(std::string_view passwd_text, uid_t uid) {
  return first<User>(passwd_text, parse_user, [&](const User& u) { return u.uid == uid; });
}

std::optional<Group> find_group(std::string_view group_text, std::string_view name) {
  return first<Group>(group_text, parse_group_line, [&](const Group& g) { return g.name == name; });
}

std::optional<Group> find_group_by_gid(std::string_view group_text, gid_t gid) {
  return first<Group>(group_text, parse_group_line, [&](const Group& g) { return g.gid == gid; });
}

bool is_member(std::string_view group_text, std::string_view group, std::string_view user) {
  for (const auto& g : parse_group(group_text)) {
    if (g.name == group && std::find(g.members.begin(), g.members.end(), user) != g.members.end()) return true;
  }
  return false;
}

std::string add_user_to_groups(std::string_view group_text, std::string_view user,
                               const std::vector<std::string>& groups) {
  std::vector<std::string> lines;
  for (auto l : lines_of(group_text)) lines.emplace_back(l);
  std::set<gid_t> used;
  for (const auto& g : parse_group(group_text)) used.insert(g.gid);
  for (const auto& group : groups) {
    bool found = false;
    // Every line that names the group, even one whose gid does not parse:
    // the group exists, and a second line of that name would be worse.
    for (auto& line : lines) {
      const auto f = split(line, ':');
      if (f[0] != group) continue;
      found = true;
      const auto members = f.size() > 3 ? members_of(f[3]) : std::vector<std::string>{};
      if (std::find(members.begin(), members.end(), user) != members.end()) continue;
      if (f.size() < 4) {
        line += ":" + std::string(user);  // "name:x:gid" has no member field yet
      } else {
        line += (line.back() == ':' ? "" : ",") + std::string(user);
      }
    }
    if (!found) {
      gid_t gid = 999;
      while (gid > 100 && used.count(gid)) --gid;
      used.insert(gid);
      lines.push_back(group + ":x:" + std::to_string(gid) + ":" + std::string(user));
    }
  }
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

Result<std::optional<std::string>> read_passwd(const fs::path& root) { return read_file_in_root(root, "etc/passwd"); }

Result<std::optional<std::string>> read_group(const fs::path& root) { return read_file_in_root(root, "etc/group"); }

Status add_user_to_groups_in_root(const fs::path& root, std::string_view user,
                                  const std::vector<std::string>& groups) {
  if (groups.empty()) return {};
  auto text = read_group(root);
  if (!text) return text.error();
  if (!text->has_value()) return {};
  return write_file_in_root(root, "etc/group", add_user_to_groups(**text, user, groups), 0644);
}

}  // namespace farmhand::etc
