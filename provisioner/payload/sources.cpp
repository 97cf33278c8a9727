// A payload's git sources: fetched and checked out by the `farmhand
// git-sync` helper (as the build user, see provisioner/git.h), skipped when
// neither the checkout nor the remote moved, and cleaned of untracked and
// ignored files when asked or before a step that works in them reruns.
#include <sys/stat.h>
#include <unistd.h>

#include "common/hash.h"
#include "provisioner/base_image.h"
#include "provisioner/payload/run.h"

namespace farmhand::provisioner {

bool works_in(const SetupStep& step, const SourceSpec& src) {
  const std::string dir = src.path.ends_with("/") ? src.path : src.path + "/";
  return step.cwd == src.path || (step.cwd + "/").starts_with(dir);
}

std::string source_fingerprint(const SourceSpec& src) {
  return payload_impl::item_fingerprint(
      {{"url", src.url}, {"ref", src.ref}, {"path", src.path}, {"submodules", src.submodules}});
}

namespace payload_impl {

namespace {

// Whether a source is still at `commit` both in the container (its HEAD,
// read as a file, nothing followed out of the tree) and on the remote (asked
// without fetching): then the helper, a process with a mount namespace of
// its own, need not run at all. Any doubt (an error, submodules) says no,
// and the full sync decides.
bool unmoved(const fs::path& tree, const SourceSpec& src, const std::string& commit) {
  if (src.submodules || commit.empty()) return false;
  auto head = read_file_in_root(tree, fs::path(src.path) / ".git/HEAD");
  if (!head || !*head) return false;
  std::string text = **head;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  if (text != commit) return false;
  auto auth = load_git_auth(src.credentials);
  if (!auth) return false;
  auto remote = remote_commit(src.url, src.ref, *auth);
  return remote && *remote == commit;
}

}  // namespace

// Runs the git-sync helper for one source (the fetch, the checkout, and
// with `force_clean` the removal of untracked and ignored files).
Result<SyncResult> PayloadRun::sync(const SourceSpec& src, bool force_clean) {
  const Ownership owner = shifted(t_.tree, build_ids_->first, build_ids_->second);
  if (auto s = make_dirs(mount_dir_, 0755); !s) return s.error();
  const fs::path mountpoint = mount_dir_ / (name_ + "." + src.name + "." + random_id128_hex().substr(0, 8));
  if (::mkdir(mountpoint.c_str(), 0755) != 0 && errno != EEXIST) {
    return fail("cannot create '" + mountpoint.string() + "': " + errno_text(errno));
  }
  Command cmd;
  cmd.path = helper_;
  cmd.args = {"git-sync", "--request",
              git_sync_request_json(
                  {t_.tree.string(), src.path, owner.uid, owner.gid, mountpoint.string(), src, force_clean})};
  cmd.env = minimal_env();
  cmd.timeout = std::chrono::hours(1);
  StepWatch fetching(hooks_, options_, "source " + src.name);
  fetching.watch(cmd, false);
  auto r = runner_.run(cmd);
  ::rmdir(mountpoint.c_str());
  if (!r) return r.error();
  if (!r->success()) {
    std::string why = r->err.empty() ? r->out : r->err;
    while (!why.empty() && why.back() == '\n') why.pop_back();
    // The helper's own prefixes repeat what this message says already.
    for (const std::string& prefix : std::vector<std::string>{"error: ", "git-sync: ", "source \"" + src.name + "\": "}) {
      if (why.starts_with(prefix)) why.erase(0, prefix.size());
    }
    return fail("source \"" + src.name + "\" (" + redact_url(src.url) + " " + src.ref + "): " +
                (why.empty() ? r->describe() : tail(why, kErrorTail)));
  }
  return parse_git_sync_output(r->out);
}

Status PayloadRun::sources() {
  build_ids_ = tree_user(t_.tree, kBuildUser);
  if (!spec_.sources.empty() && !build_ids_) {
    return fail("the container has no build user \"" + std::string(kBuildUser) + "\" to own its sources");
  }
  std::set<std::string> wanted;
  for (const auto& src : spec_.sources) {
    wanted.insert(src.name);
    if (auto s = source(src); !s) return s;
  }
  if (auto s = forget_removed(PayloadKind::kSource, wanted, nullptr); !s) return s;
  vars_ = with_source_vars(t_.vars, spec_, out.commits);
  return {};
}

// One source: left alone when it has not moved, else synced, journaled
// when anything changed, and its new commit recorded.
Status PayloadRun::source(const SourceSpec& src) {
  const PayloadRecord* rec = records_.find(PayloadKind::kSource, src.name);
  const std::string fp = source_fingerprint(src);
  const bool clean_asked = rec && rec->fingerprint == kCleanAsked;
  if (rec && rec->fingerprint == fp && unmoved(t_.tree, src, rec->revision)) {
    out.commits[src.name] = rec->revision;
    return {};
  }
  const auto t0 = begin("source " + src.name);
  auto synced = sync(src, clean_asked);
  if (!synced) {
    report("source " + src.name, t0, synced.error());
    return synced.error();
  }
  // A first checkout has nothing of a build in it either.
  if (synced->cleaned || synced->cloned) cleaned_.insert(src.name);
  out.commits[src.name] = synced->commit;
  const bool moved = rec == nullptr || rec->revision != synced->commit || rec->fingerprint != fp;
  if (moved || synced->changed || synced->cleaned) {
    out.changed = true;
    std::string what = "source " + src.name + ": " +
                       (rec && !rec->revision.empty() && rec->revision != synced->commit
                            ? short_commit(rec->revision) + " -> "
                            : std::string()) +
                       short_commit(synced->commit) + " (" + std::to_string(synced->received_objects) +
                       " objects fetched" + (synced->cleaned ? ", untracked files removed" : "") + ")";
    report(what, t0, {});
  }
  if (moved) {
    if (auto s = state_.put_payload({name_, PayloadKind::kSource, src.name, fp, synced->commit, 0}); !s) {
      return s.error();
    }
  }
  return {};
}

// A source with `clean` is cleaned before a step that works in its
// checkout reruns (whatever the reason: the source moved, a new
// definition, a failure last time), so that no build state survives a
// failed or changed build; then every step that works in it reruns.
Status PayloadRun::clean_sources() {
  for (const auto& src : spec_.sources) {
    if (!src.clean || cleaned_.count(src.name)) continue;
    bool rerun = false;
    for (size_t i = 0; i < rendered_.size() && !rerun; ++i) {
      rerun = works_in(rendered_[i], src) && must_run(i);
    }
    if (!rerun) continue;
    const std::string what = "clean source " + src.name;
    const auto t0 = begin(what);
    auto synced = sync(src, true);
    report(what + (synced ? " (untracked and ignored files removed)" : ""), t0,
           synced ? Status{} : Status(synced.error()));
    if (!synced) return synced.error();
    cleaned_.insert(src.name);
    out.changed = true;
  }
  return {};
}

}  // namespace payload_impl
}  // namespace farmhand::provisioner
