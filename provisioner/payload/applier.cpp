// PayloadApplier::apply and request_rebuild, and what every phase of an
// apply shares: the records, the journaling of each unit of work, the
// removal of what is no longer declared. The files phase is here too.
#include <sys/stat.h>

#include <algorithm>

#include "common/hash.h"
#include "provisioner/payload/run.h"
#include "provisioner/template.h"

namespace farmhand::provisioner {

namespace payload_impl {

std::string short_commit(const std::string& commit) { return commit.substr(0, 12); }

std::optional<unsigned long> numeric_id(const std::string& s) {
  if (s.empty() || s.size() > 10 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  return std::stoul(s);
}

Ownership shifted(const fs::path& tree, uid_t uid, gid_t gid) {
  auto root = stat_in_root(tree, ".");
  if (!root || !*root) return {uid, gid};
  return {(*root)->uid + uid, (*root)->gid + gid};
}

std::string item_fingerprint(const nlohmann::json& j) { return sha256_hex(j.dump()); }

std::map<std::string, std::string> with_source_vars(const std::map<std::string, std::string>& base,
                                                    const ContainerSpec& spec,
                                                    const std::map<std::string, std::string>& commits) {
  std::map<std::string, std::string> vars = base;
  for (const auto& src : spec.sources) {
    auto commit = commits.find(src.name);
    vars["source." + src.name + ".path"] = src.path;
    vars["source." + src.name + ".commit"] = commit == commits.end() ? "" : commit->second;
    vars["source." + src.name + ".url"] = src.url;
  }
  return vars;
}

Result<Records> load_records(StateStore& state, const std::string& container) {
  Records records;
  auto all = state.payload(container);
  if (!all) return all.error();
  for (auto& r : *all) records.by_key[{r.kind, r.name}] = std::move(r);
  return records;
}

PayloadRun::PayloadRun(StateStore& state, ProcessRunner& runner, const std::string& helper, const fs::path& mount_dir,
                       const PayloadOptions& options, const PayloadTarget& target, const PayloadHooks& hooks,
                       Records records)
    : state_(state),
      runner_(runner),
      helper_(helper),
      mount_dir_(mount_dir),
      options_(options),
      t_(target),
      hooks_(hooks),
      spec_(target.layout->spec),
      name_(target.layout->spec.name),
      records_(std::move(records)) {}

Clock::MonoTime PayloadRun::begin(const std::string& what) {
  if (hooks_.started) hooks_.started(what);
  return options_.clock->monotonic();
}

void PayloadRun::report(const std::string& what, Clock::MonoTime t0, const Status& s) {
  if (hooks_.step) {
    hooks_.step(what, std::chrono::duration_cast<std::chrono::milliseconds>(options_.clock->monotonic() - t0), s);
  }
}

void PayloadRun::warn(const std::string& text) {
  out.warnings.push_back(text);
  if (hooks_.warning) hooks_.warning(text);
}

Status PayloadRun::forget_removed(PayloadKind kind, const std::set<std::string>& wanted,
                                  const std::function<Status(const PayloadRecord&)>& remove) {
  for (const auto& [key, rec] : records_.by_key) {
    if (key.first != kind || wanted.count(key.second)) continue;
    if (remove) {
      const std::string what = "remove " + std::string(to_string(kind)) + " " + rec.name;
      const auto t0 = begin(what);
      Status s = remove(rec);
      report(what, t0, s);
      if (!s) return s;
    }
    if (auto s = state_.delete_payload(name_, kind, rec.name); !s) return s;
    out.changed = true;
  }
  return {};
}

Status PayloadRun::files() {
  std::set<std::string> wanted;
  for (const auto& f : spec_.files) {
    wanted.insert(f.path);
    auto content = render_template(f.content, vars_);
    if (!content) return content.error().context("file " + f.path);
    auto user = tree_user(t_.tree, f.owner);
    if (!user) return fail("file " + f.path + ": the container has no user \"" + f.owner + "\"");
    auto group = tree_group(t_.tree, f.group);
    if (!group) return fail("file " + f.path + ": the container has no group \"" + f.group + "\"");
    const Ownership owner = shifted(t_.tree, user->first, *group);
    auto st = stat_in_root(t_.tree, f.path);
    if (!st) return st.error();
    // Only a regular file is read; anything else there is replaced.
    const bool regular = *st && S_ISREG((*st)->mode);
    auto have = regular ? read_file_in_root(t_.tree, f.path) : Result<std::optional<std::string>>(std::nullopt);
    if (!have) return have.error();
    const bool same = regular && *have && **have == *content && ((*st)->mode & 07777) == f.mode &&
                      (*st)->uid == owner.uid && (*st)->gid == owner.gid;
    if (same) continue;
    const auto t0 = begin("file " + f.path);
    Status s = write_file_in_root(t_.tree, f.path, *content, f.mode, owner);
    report("file " + f.path, t0, s);
    if (!s) return s.error();
    out.changed = true;
    if (auto p = state_.put_payload({name_, PayloadKind::kFile, f.path, sha256_hex(*content), "", 0}); !p) {
      return p.error();
    }
  }
  return forget_removed(PayloadKind::kFile, wanted,
                        [&](const PayloadRecord& rec) { return remove_in_root(t_.tree, rec.name); });
}

}  // namespace payload_impl

using payload_impl::PayloadRun;

bool has_payload(const ContainerSpec& spec) {
  return !spec.sources.empty() || !spec.files.empty() || !spec.setup.empty() || !spec.services.empty();
}

Result<PayloadOutcome> PayloadApplier::apply(const PayloadTarget& t, const PayloadHooks& hooks) {
  auto records = payload_impl::load_records(state_, t.layout->spec.name);
  if (!records) return records.error();
  PayloadRun run(state_, runner_, helper_, mount_dir_, options_, t, hooks, std::move(*records));
  if (auto s = run.sources(); !s) return s.error();
  if (auto s = run.files(); !s) return s.error();
  if (auto s = run.steps(); !s) return s.error();
  if (auto s = run.services(); !s) return s.error();
  return std::move(run.out);
}

Result<std::vector<std::string>> PayloadApplier::request_rebuild(const ContainerSpec& spec, const std::string& step,
                                                                 bool clean) {
  size_t first = 0;
  if (!step.empty()) {
    first = spec.setup.size();
    for (size_t i = 0; i < spec.setup.size(); ++i) {
      if (spec.setup[i].name == step) first = i;
    }
    if (first == spec.setup.size()) {
      std::string names;
      for (const auto& s : spec.setup) names += (names.empty() ? "" : ", ") + s.name;
      return fail(spec.name + " has no setup step \"" + step + "\"" +
                  (names.empty() ? std::string(": it has none") : " (it has: " + names + ")"));
    }
  }
  std::vector<std::string> marked;
  std::set<std::string> sources;  // the checkouts the marked steps work in
  for (size_t i = first; i < spec.setup.size(); ++i) {
    const SetupStep& s = spec.setup[i];
    marked.push_back(s.name);
    for (const auto& src : spec.sources) {
      if (works_in(s, src)) sources.insert(src.name);
    }
  }
  auto records = state_.payload(spec.name);
  if (!records) return records.error();
  auto status = state_.db().transaction([&]() -> Status {
    for (const auto& name : marked) {
      if (auto s = state_.put_payload({spec.name, PayloadKind::kStep, name, kRebuildAsked, "", 0}); !s) return s;
    }
    if (!clean) return {};
    for (const auto& rec : *records) {
      if (rec.kind != PayloadKind::kSource || !sources.count(rec.name)) continue;
      if (auto s = state_.put_payload({spec.name, PayloadKind::kSource, rec.name, kCleanAsked, rec.revision, 0}); !s) {
        return s;
      }
    }
    return {};
  });
  if (!status) return status.error();
  return marked;
}

}  // namespace farmhand::provisioner
