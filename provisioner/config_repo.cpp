#include "provisioner/config_repo.h"

#include <nlohmann/json.hpp>

#include "provisioner/git.h"

namespace farmhand::provisioner {

namespace {

struct LastGood {
  std::string url;
  std::string path;
  std::string commit;
  std::string document;
};

fs::path repo_dir(const AgentConfig& c, const HostRoot& root) { return root.map(c.paths.state + "/config-repo.git"); }
fs::path last_good_file(const AgentConfig& c, const HostRoot& root) {
  return root.map(c.paths.state + "/config-repo.json");
}

// The last good file, if it belongs to the repository and path configured now.
std::optional<LastGood> read_last_good(const AgentConfig& c, const HostRoot& root) {
  auto text = read_file_if_exists(last_good_file(c, root));
  if (!text || !*text) return std::nullopt;
  auto j = nlohmann::json::parse(**text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  LastGood g{j.value("url", ""), j.value("path", ""), j.value("commit", ""), j.value("document", "")};
  if (g.url != c.config_repo->url || g.path != c.config_repo->path || g.commit.empty()) return std::nullopt;
  return g;
}

Status write_last_good(const AgentConfig& c, const HostRoot& root, const LastGood& g) {
  nlohmann::json j = {{"url", g.url}, {"path", g.path}, {"commit", g.commit}, {"document", g.document}};
  return write_file_atomic(last_good_file(c, root), j.dump(2) + "\n", 0600);
}

std::string join_errors(const std::vector<std::string>& errors) {
  std::string out;
  for (const auto& e : errors) out += (out.empty() ? "" : "\n") + e;
  return out;
}

}  // namespace

std::string repo_label(const ConfigRepo& repo, const std::string& commit) {
  return repo.path + "@" + commit.substr(0, 12);
}

Result<RepoSync> sync_config_repo(const std::string& local_text, const AgentConfig& local, const HostRoot& root,
                                  const RecipeBook& recipes) {
  if (!local.config_repo) return fail("agent.json names no config_repo");
  const ConfigRepo& repo = *local.config_repo;
  RepoSync out;
  auto good = read_last_good(local, root);
  if (good) {
    out.commit = out.previous = good->commit;
    out.label = repo_label(repo, good->commit);
  }
  auto auth = load_git_auth(repo.credentials);
  if (!auth) return auth.error().context("config repository " + redact_url(repo.url));
  if (auto s = make_dirs(root.map(local.paths.state), 0700); !s) return s.error();
  auto fetched = fetch_bare(repo_dir(local, root).string(), repo.url, repo.ref, *auth);
  if (!fetched) return fetched.error().context("config repository " + redact_url(repo.url) + " " + repo.ref);
  const std::string& commit = fetched->commit;
  if (good && good->commit == commit) return out;
  const std::string label = repo_label(repo, commit);
  auto blob = read_blob_at(repo_dir(local, root).string(), commit, repo.path);
  if (!blob) return blob.error().context("config repository " + label);
  if (!*blob) {
    out.rejected = label + ": the repository has no file \"" + repo.path + "\" at this commit";
    return out;
  }
  ConfigLoad load = parse_config_with_repo(local_text, **blob, label, recipes);
  if (!load.config) {
    out.rejected = join_errors(load.errors);
    return out;
  }
  if (auto s = write_last_good(local, root, {repo.url, repo.path, commit, **blob}); !s) return s.error();
  out.commit = commit;
  out.label = label;
  out.changed = true;
  return out;
}

ConfigLoad load_config_with_repo(const std::string& local_text, const AgentConfig& local, const HostRoot& root,
                                 const RecipeBook& recipes, std::string* commit) {
  if (commit != nullptr) commit->clear();
  ConfigLoad out;
  if (!local.config_repo) {
    out.config = local;
    return out;
  }
  auto good = read_last_good(local, root);
  if (!good) {
    out.config = local;
    out.warnings.push_back("/config_repo: not fetched yet, so no containers are configured: `farmhand apply` "
                           "or the agent fetches it");
    return out;
  }
  out = parse_config_with_repo(local_text, good->document, repo_label(*local.config_repo, good->commit), recipes);
  if (out.config && commit != nullptr) *commit = good->commit;
  return out;
}

}  // namespace farmhand::provisioner
