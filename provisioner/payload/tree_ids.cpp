// The payload's ids of a container's users and groups (the owners of its
// files, the build user of its sources and steps), read from the tree's
// /etc/passwd and /etc/group through common/etc_files. A numeric name that
// the tree does not list stands for itself.
#include "common/etc_files.h"
#include "provisioner/payload/run.h"

namespace farmhand::provisioner {

using payload_impl::numeric_id;

std::optional<std::pair<uid_t, gid_t>> tree_user(const fs::path& tree, const std::string& name) {
  auto text = etc::read_passwd(tree);
  if (text && *text) {
    for (const auto& u : etc::parse_passwd(**text)) {
      if (u.name == name || std::to_string(u.uid) == name) return std::pair<uid_t, gid_t>(u.uid, u.gid);
    }
  }
  if (auto id = numeric_id(name)) return std::pair<uid_t, gid_t>(static_cast<uid_t>(*id), static_cast<gid_t>(*id));
  return std::nullopt;
}

std::optional<gid_t> tree_group(const fs::path& tree, const std::string& name) {
  if (auto id = numeric_id(name)) return static_cast<gid_t>(*id);
  auto text = etc::read_group(tree);
  if (!text || !*text) return std::nullopt;
  if (auto g = etc::find_group(**text, name)) return g->gid;
  return std::nullopt;
}

}  // namespace farmhand::provisioner
