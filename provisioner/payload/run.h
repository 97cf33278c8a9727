// The inside of the payload applier, shared by the files of this folder and
// by nothing else (its users include provisioner/payload.h).
//
// One apply is a PayloadRun: its phases run in order (sources, files, setup
// steps, services), each in its own file, and share the container's records,
// the commits checked out and the outcome so far.
//
//   applier.cpp    PayloadApplier::apply and request_rebuild, the records,
//                  the journaling of each unit of work, the files phase
//   sources.cpp    the git-sync helper: fetch, checkout, clean; source fingerprints
//   steps.cpp      running a step as root or as the build user, its fingerprint,
//                  the check for root's files left in the build user's home
//   step_watch.cpp a running step's output, heartbeats and error tail
//   services.cpp   unit files and links, start and verify, the unit's journal
//   preview.cpp    PayloadApplier::preview, read only
//   tree_ids.cpp   users and groups of the container's /etc/passwd and /etc/group
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "provisioner/git.h"
#include "provisioner/payload.h"

namespace farmhand::provisioner::payload_impl {

std::string short_commit(const std::string& commit);
// A decimal id of at most 10 digits, else std::nullopt.
std::optional<unsigned long> numeric_id(const std::string& s);
// The host ids of ids inside the tree: a container with a user namespace has
// its tree shifted by the owner of its root directory.
Ownership shifted(const fs::path& tree, uid_t uid, gid_t gid);
std::string item_fingerprint(const nlohmann::json& j);
// Template variables: `base` and source.NAME.{path,commit,url} of each
// source, its commit taken from `commits` ("" when not there).
std::map<std::string, std::string> with_source_vars(const std::map<std::string, std::string>& base,
                                                    const ContainerSpec& spec,
                                                    const std::map<std::string, std::string>& commits);

// systemd-nspawn --register=no says this on hosts whose /run is not
// systemd's; it is about nspawn, not the step.
bool nspawn_noise(std::string_view line);
std::string without_noise(const std::string& text);
// The last `n` bytes of `text`, from a line start where there is one, after "...".
std::string tail(const std::string& text, size_t n);

// A container's payload records in state.db, by kind and name.
struct Records {
  std::map<std::pair<PayloadKind, std::string>, PayloadRecord> by_key;
  const PayloadRecord* find(PayloadKind kind, const std::string& name) const {
    auto it = by_key.find({kind, name});
    return it == by_key.end() ? nullptr : &it->second;
  }
};
Result<Records> load_records(StateStore& state, const std::string& container);

// Watches a running step: forwards at most kStepOutputLines lines of its
// output, counts the rest, and gives a heartbeat when nothing was shown for
// a heartbeat interval (a quiet step, or one past the output limit).
class StepWatch {
 public:
  StepWatch(const PayloadHooks& hooks, const PayloadOptions& options, std::string label);

  void line(std::string_view text);
  void tick();
  // Hooks a command to this watch.
  void watch(Command& cmd, bool lines);

 private:
  const PayloadHooks& hooks_;
  const PayloadOptions& options_;
  std::string label_;
  Clock::MonoTime started_;
  Clock::MonoTime shown_;
  size_t lines_ = 0;
  std::string last_;
};

// One apply of one container's payload.
class PayloadRun {
 public:
  PayloadRun(StateStore& state, ProcessRunner& runner, const std::string& helper, const fs::path& mount_dir,
             const PayloadOptions& options, const PayloadTarget& target, const PayloadHooks& hooks, Records records);

  // The phases, in this order; the first error stops the payload.
  Status sources();   // fetched and checked out; then the template variables know their commits
  Status files();     // rewritten where they differ, removed when no longer declared
  Status steps();     // rerun where their fingerprint changed
  Status services();  // installed, enabled, and in a running container (re)started

  PayloadOutcome out;

 private:
  // A unit of work starts (shown at once) and ends (journaled with its time).
  Clock::MonoTime begin(const std::string& what);
  void report(const std::string& what, Clock::MonoTime t0, const Status& s);
  void warn(const std::string& text);
  // Drops the records of `kind` that are no longer declared, after `remove`
  // (if given) undid each in the tree.
  Status forget_removed(PayloadKind kind, const std::set<std::string>& wanted,
                        const std::function<Status(const PayloadRecord&)>& remove);

  // sources.cpp
  Result<SyncResult> sync(const SourceSpec& src, bool force_clean);
  Status source(const SourceSpec& src);
  Status clean_sources();

  // steps.cpp
  bool must_run(size_t i) const;
  Status run_step(size_t i);

  // services.cpp
  Status in_container(std::vector<std::string> argv);
  Status verify_active(const std::string& unit, const std::string& verb);
  Status install_service(const ServiceSpec& svc, std::vector<std::string>& enabled);
  Status remove_service(const PayloadRecord& rec);
  Status start_services(const std::vector<std::string>& enabled);

  StateStore& state_;
  ProcessRunner& runner_;
  const std::string& helper_;
  const fs::path& mount_dir_;
  const PayloadOptions& options_;
  const PayloadTarget& t_;
  const PayloadHooks& hooks_;
  const ContainerSpec& spec_;
  const std::string& name_;
  Records records_;

  std::optional<std::pair<uid_t, gid_t>> build_ids_;  // the build user, who owns the checkouts
  std::set<std::string> cleaned_;  // sources whose untracked files were removed in this apply
  std::map<std::string, std::string> vars_;  // the template variables, with the sources' commits
  std::vector<SetupStep> rendered_;  // the steps, rendered
  // Sources of the steps that ran in this apply: a later step of the same
  // source reruns too (a configure that reran means its build must).
  std::set<std::string> reran_sources_;
  bool units_changed_ = false;  // a unit file or link was written or removed
};

}  // namespace farmhand::provisioner::payload_impl
