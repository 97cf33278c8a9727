// The payload's reading of a container's /etc/passwd and /etc/group (the
// owners of its files, the build user of its sources and steps). It is all
// in this file so that it can be swapped for the one passwd/group reader
// (common/etc_files) without touching the rest of the payload.
#include <sstream>

#include "provisioner/payload/run.h"

namespace farmhand::provisioner {

namespace {

using payload_impl::numeric_id;

// Fields of a colon-separated line of /etc/passwd or /etc/group.
std::vector<std::string> colon_fields(const std::string& line) {
  std::vector<std::string> out;
  std::string field;
  std::istringstream in(line);
  while (std::getline(in, field, ':')) out.push_back(field);
  return out;
}

}  // namespace

std::optional<std::pair<uid_t, gid_t>> tree_user(const fs::path& tree, const std::string& name) {
  auto text = read_file_in_root(tree, "etc/passwd");
  if (text && *text) {
    std::istringstream in(**text);
    std::string line;
    while (std::getline(in, line)) {
      auto f = colon_fields(line);
      if (f.size() < 4) continue;
      auto uid = numeric_id(f[2]);
      auto gid = numeric_id(f[3]);
      if (!uid || !gid) continue;
      if (f[0] == name || f[2] == name) {
        return std::pair<uid_t, gid_t>(static_cast<uid_t>(*uid), static_cast<gid_t>(*gid));
      }
    }
  }
  if (auto id = numeric_id(name)) return std::pair<uid_t, gid_t>(static_cast<uid_t>(*id), static_cast<gid_t>(*id));
  return std::nullopt;
}

std::optional<gid_t> tree_group(const fs::path& tree, const std::string& name) {
  if (auto id = numeric_id(name)) return static_cast<gid_t>(*id);
  auto text = read_file_in_root(tree, "etc/group");
  if (!text || !*text) return std::nullopt;
  std::istringstream in(**text);
  std::string line;
  while (std::getline(in, line)) {
    auto f = colon_fields(line);
    if (f.size() >= 3 && f[0] == name) {
      if (auto gid = numeric_id(f[2])) return static_cast<gid_t>(*gid);
    }
  }
  return std::nullopt;
}

}  // namespace farmhand::provisioner
