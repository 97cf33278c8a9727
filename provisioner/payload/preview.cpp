// PayloadApplier::preview: what apply would do to a container's payload,
// read from state.db and the tree (and with `fetch`, the remotes' refs)
// without changing anything.
#include <set>

#include "provisioner/git.h"
#include "provisioner/payload/run.h"
#include "provisioner/template.h"

namespace farmhand::provisioner {

namespace {

using payload_impl::Records;
using payload_impl::short_commit;

std::string joined(const std::vector<std::string>& names) {
  std::string o;
  for (const auto& n : names) o += (o.empty() ? "" : ", ") + n;
  return o;
}

// One preview: each kind of item compared as apply compares it.
class Preview {
 public:
  Preview(const PayloadTarget& t, Records records, bool fetch)
      : t_(t), spec_(t.layout->spec), records_(std::move(records)), fetch_(fetch) {
    out.remotes_checked = fetch;
  }

  void sources();
  Status files();
  Status steps(const std::optional<PayloadStatus>& last);
  Status services();

  PayloadPreview out;

 private:
  void add(std::string what, std::string why) { out.items.push_back({std::move(what), std::move(why)}); }
  std::string step_why(const SetupStep& step, const SetupStep& rendered, const std::string& failed_item);

  const PayloadTarget& t_;
  const ContainerSpec& spec_;
  Records records_;
  bool fetch_;
  std::map<std::string, std::string> recorded_, expected_;  // source -> its recorded, its next commit
  std::set<std::string> unknown_;  // sources whose next commit is not known
  std::map<std::string, std::string> vars_;
  std::map<std::string, std::string> rerun_sources_;  // source -> the first step of it that reruns
};

// Sources: the recorded commits, or with `fetch` the remotes' own.
void Preview::sources() {
  for (const auto& src : spec_.sources) {
    const PayloadRecord* rec = records_.find(PayloadKind::kSource, src.name);
    const std::string label = "source " + src.name;
    if (rec) recorded_[src.name] = rec->revision;
    if (!rec || rec->revision.empty()) {
      add(label, "not checked out yet");
      unknown_.insert(src.name);
      continue;
    }
    if (rec->fingerprint == kCleanAsked) {
      add(label, "a clean checkout was asked for (farmhand rebuild --clean)");
    } else if (rec->fingerprint != source_fingerprint(src)) {
      add(label, "its url, ref, path or submodules changed");
      unknown_.insert(src.name);
      continue;
    }
    expected_[src.name] = rec->revision;
    if (!fetch_) continue;
    auto auth = load_git_auth(src.credentials);
    Result<std::string> remote = auth ? remote_commit(src.url, src.ref, *auth) : Result<std::string>(auth.error());
    if (!remote) {
      add(label, "cannot ask the remote: " + remote.error().message());
      unknown_.insert(src.name);
    } else if (*remote != rec->revision) {
      add(label, short_commit(rec->revision) + " -> " + short_commit(*remote) + " (the remote moved)");
      expected_[src.name] = *remote;
    }
  }
  vars_ = payload_impl::with_source_vars(t_.vars, spec_, expected_);
}

// Files, as apply compares them.
Status Preview::files() {
  for (const auto& f : spec_.files) {
    auto content = render_template(f.content, vars_);
    if (!content) return content.error().context("file " + f.path);
    auto have = read_file_in_root(t_.tree, f.path);
    if (!have) return have.error();
    auto st = stat_in_root(t_.tree, f.path);
    if (!st) return st.error();
    auto user = tree_user(t_.tree, f.owner);
    auto group = tree_group(t_.tree, f.group);
    if (!*have) {
      add("file " + f.path, "missing");
    } else if (**have != *content) {
      add("file " + f.path, "its content differs");
    } else if (*st && user && group) {
      const Ownership owner = payload_impl::shifted(t_.tree, user->first, *group);
      if (((*st)->mode & 07777) != f.mode || (*st)->uid != owner.uid || (*st)->gid != owner.gid) {
        add("file " + f.path, "its owner or mode differs");
      }
    }
  }
  return {};
}

// Steps: those whose fingerprint differs with the commits apply would check out.
Status Preview::steps(const std::optional<PayloadStatus>& last) {
  const std::string failed_item = last && last->state == "failed" ? last->item : "";
  for (const auto& step : spec_.setup) {
    auto rendered = render_step(spec_, step, vars_);
    if (!rendered) return rendered.error();
    const std::string why = step_why(step, *rendered, failed_item);
    if (why.empty()) continue;
    add("setup " + step.name, why);
    for (const auto& s : rendered->sources) rerun_sources_.emplace(s, step.name);
  }
  return {};
}

// Why a step would rerun, or "".
std::string Preview::step_why(const SetupStep& step, const SetupStep& rendered, const std::string& failed_item) {
  const std::string label = "setup " + step.name;
  const PayloadRecord* rec = records_.find(PayloadKind::kStep, step.name);
  std::vector<std::string> waiting, moved;
  for (const auto& s : rendered.sources) {
    if (unknown_.count(s)) waiting.push_back(s);
    else if (expected_.count(s) && recorded_.count(s) && expected_[s] != recorded_[s]) moved.push_back(s);
  }
  if (!rec) return failed_item == label ? "it failed at the last apply" : "it has not run yet";
  if (rec->fingerprint == kRebuildAsked) return "a rerun was asked for (farmhand rebuild)";
  if (!waiting.empty()) return "if source " + joined(waiting) + " moved: its commit is not known until it is fetched";
  if (rec->fingerprint != PayloadApplier::step_fingerprint(rendered, expected_)) {
    // The same definition with the recorded commits: only sources moved.
    auto with_recorded = render_step(spec_, step, [&] {
      auto v = vars_;
      for (const auto& [n, c] : recorded_) v["source." + n + ".commit"] = c;
      return v;
    }());
    const bool same_definition =
        with_recorded && rec->fingerprint == PayloadApplier::step_fingerprint(*with_recorded, recorded_);
    return same_definition && !moved.empty() ? "source " + joined(moved) + " moved" : "its definition changed";
  }
  for (const auto& s : rendered.sources) {
    if (rerun_sources_.count(s)) return "an earlier step of source " + s + " reruns (" + rerun_sources_[s] + ")";
  }
  return "";
}

// Services: the unit file and its links.
Status Preview::services() {
  for (const auto& svc : spec_.services) {
    auto content = render_template(svc.content, vars_);
    if (!content) return content.error().context("service " + svc.name);
    const std::string unit_path = "etc/systemd/system/" + svc.name;
    auto have = read_file_in_root(t_.tree, unit_path);
    if (!have) return have.error();
    if (!*have) {
      add("service " + svc.name, "not installed");
      continue;
    }
    if (**have != *content) add("service " + svc.name, "its unit file differs");
    for (const auto& dir : unit_install_dirs(*content)) {
      auto link = readlink_in_root(t_.tree, "etc/systemd/system/" + dir + "/" + svc.name);
      if (!link) return link.error();
      if (svc.enable && *link != "/" + unit_path) add("service " + svc.name, "not enabled (" + dir + ")");
      if (!svc.enable && *link) add("service " + svc.name, "enabled, but should not be");
    }
  }
  return {};
}

}  // namespace

Result<PayloadPreview> PayloadApplier::preview(const PayloadTarget& t, bool fetch,
                                               const std::optional<PayloadStatus>& last) {
  const ContainerSpec& spec = t.layout->spec;
  auto records = payload_impl::load_records(state_, spec.name);
  if (!records) return records.error();
  Preview p(t, std::move(*records), fetch);
  p.sources();
  // Files and services are read from the tree; an overlay clone's tree is
  // only there while it is mounted.
  const bool tree_there = fs::exists(t.tree / "etc");
  if (!tree_there && (!spec.files.empty() || !spec.services.empty())) {
    p.out.notes.push_back("its files and services are not compared: its tree is not mounted");
  }
  if (tree_there) {
    if (auto s = p.files(); !s) return s.error();
  }
  if (auto s = p.steps(last); !s) return s.error();
  if (tree_there) {
    if (auto s = p.services(); !s) return s.error();
  }
  return std::move(p.out);
}

}  // namespace farmhand::provisioner
