// A container's payload: its git sources, templated files, setup steps and
// services, applied after the container exists and on every apply.
//
// Each item is fingerprinted in state.db. A source is fetched every time
// (cheap when the remote has not moved) and checked out when its commit
// changes; a file or service is rewritten when its rendered content, owner or
// mode differ; a setup step reruns only when its definition or the commit of
// a source it depends on changed since it last succeeded. The first failing
// step stops this container's payload; the caller carries on with the others.
//
// Sources are fetched by the `farmhand git-sync` helper, which drops to the
// build user's uid before libgit2 touches the container's tree.
//
// The code is in provisioner/payload/, one file per kind of item (see
// provisioner/payload/run.h for the map).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/fs.h"
#include "common/process.h"
#include "provisioner/layout.h"
#include "provisioner/state_store.h"

namespace farmhand::provisioner {

// How the payload reaches the outside: a unit of work that starts (its own
// label, at once), one that finished (journaled and shown like any apply
// step; its label may say more, such as the commits), lines of a step's
// output, heartbeats of a running step and warnings.
struct PayloadHooks {
  std::function<void(const std::string& what)> started;
  std::function<void(const std::string& what, std::chrono::milliseconds elapsed, const Status& result)> step;
  std::function<void(std::string_view line)> output;
  // "lws-build: 2 m 10 s, 4,312 lines, last: [ 61%] Building C object …",
  // at least every heartbeat interval while nothing else was shown.
  std::function<void(std::string_view text)> heartbeat;
  std::function<void(std::string_view text)> warning;
};

struct PayloadOptions {
  std::chrono::milliseconds heartbeat_interval{std::chrono::seconds(10)};
  std::chrono::milliseconds tick{std::chrono::seconds(1)};  // how often a running step is looked at
  // The clock of heartbeats, elapsed times and a service's settle time (a
  // test's FakeClock); it must outlive the applier.
  const Clock* clock = &real_clock();
  // A service (re)started in a running container must be active for this
  // long, and may take this long to get there (Type=notify, Type=forking).
  std::chrono::milliseconds service_settle{std::chrono::seconds(3)};
  std::chrono::milliseconds service_start_timeout{std::chrono::seconds(90)};
  std::chrono::milliseconds service_poll{std::chrono::milliseconds(250)};
};

// A unit as the container's systemd reports it (systemctl show).
struct UnitState {
  std::string active;  // ActiveState: active, activating, failed, inactive, ...
  std::string sub;     // SubState: running, auto-restart, dead, ...
  std::string result;  // Result: success, exit-code, signal, ...
  unsigned long restarts = 0;  // NRestarts
  std::string describe() const;  // "failed (failed), result exit-code"
};
UnitState parse_unit_state(std::string_view systemctl_show_output);

inline constexpr int kServiceJournalLines = 20;

// "45 s", "2 m 10 s", "1 h 05 m".
std::string format_elapsed(std::chrono::milliseconds elapsed);
// A heartbeat line: "NAME: ELAPSED, N lines, last: LINE" ("no output yet"
// before the first line; the line cut at 100 bytes, on a UTF-8 boundary).
std::string format_heartbeat(std::string_view step, std::chrono::milliseconds elapsed, size_t lines,
                             std::string_view last);

struct PayloadTarget {
  const ContainerLayout* layout = nullptr;
  fs::path tree;                  // host path of the container's root filesystem
  std::optional<pid_t> leader;    // the running container's init, if it runs
  std::map<std::string, std::string> vars;  // template variables (without source.*)
  fs::path host_root = "/";       // where the host's / is (--root), for the binds' sources
};

struct PayloadPreviewItem {
  std::string what;  // "setup lws-build", "source sai", "file /etc/sai/builder/conf"
  std::string why;   // "its definition changed", "source sai: 8e41a2b3c4d5 -> 4ec3..."
};

struct PayloadPreview {
  std::vector<PayloadPreviewItem> items;
  bool remotes_checked = false;
  std::vector<std::string> notes;  // what could not be looked at, and why
};

struct PayloadOutcome {
  std::map<std::string, std::string> commits;  // source name -> checked-out commit
  std::vector<std::string> steps_run;
  std::vector<std::string> warnings;  // also given to PayloadHooks::warning
  bool changed = false;  // anything rewritten, checked out, rerun or restarted
};

// Lines of a step's output passed to PayloadHooks::output; the rest is
// counted. The error of a failing step carries the last kErrorTail bytes.
inline constexpr size_t kStepOutputLines = 200;
inline constexpr size_t kErrorTail = 3072;

// Runs argv as root in a container: entered through its leader when it
// runs, with systemd-nspawn on its tree when not. `shown` (may be null)
// gets the command, for errors.
Result<ProcessResult> run_as_root_in(ProcessRunner& runner, const PayloadTarget& target, const std::string& helper,
                                     std::vector<std::string> argv, Command* shown);
// A unit's state from the running container's systemd.
Result<UnitState> container_unit_state(ProcessRunner& runner, const PayloadTarget& target, const std::string& helper,
                                       const std::string& unit);
// The unit's last kServiceJournalLines journal lines (at most kErrorTail
// bytes), or "" when they cannot be read.
std::string container_unit_journal(ProcessRunner& runner, const PayloadTarget& target, const std::string& helper,
                                   const std::string& unit);

class PayloadApplier {
 public:
  // `helper` is the farmhand binary (for `git-sync`), `mount_dir` a host
  // directory under which it gets a private mount point per source.
  PayloadApplier(StateStore& state, ProcessRunner& runner, std::string helper, fs::path mount_dir,
                 PayloadOptions options = {})
      : state_(state),
        runner_(runner),
        helper_(std::move(helper)),
        mount_dir_(std::move(mount_dir)),
        options_(std::move(options)) {}

  Result<PayloadOutcome> apply(const PayloadTarget& target, const PayloadHooks& hooks);

  // What apply would do to the payload, read only: items whose definition
  // changed, steps that failed or never ran, files that differ, services
  // not installed or enabled. With `fetch`, each remote is asked which
  // commit its ref names (no objects are fetched), and the steps that
  // depend on a source that moved are listed too. `last` is the payload's
  // last status (to say that a step failed).
  Result<PayloadPreview> preview(const PayloadTarget& target, bool fetch, const std::optional<PayloadStatus>& last);

  // Marks steps to rerun at the next apply: every step when `step` is
  // empty, else that step and every step after it. With `clean`, the
  // checkouts those steps work in are cleaned (git clean -ffdx) first.
  // Returns the steps marked; an unknown step is an error naming the others.
  Result<std::vector<std::string>> request_rebuild(const ContainerSpec& spec, const std::string& step, bool clean);

  // The step's fingerprint: its rendered definition and its sources' commits.
  static std::string step_fingerprint(const SetupStep& rendered, const std::map<std::string, std::string>& commits);

  // The command that runs a step inside the container, as its user: in a
  // running one through `helper enter` (see agent/cli/enter.h), else with
  // systemd-nspawn on its tree.
  static Command step_command(const PayloadTarget& target, const SetupStep& rendered, const std::string& helper);

 private:
  StateStore& state_;
  ProcessRunner& runner_;
  std::string helper_;
  fs::path mount_dir_;
  PayloadOptions options_;
};

// Files and directories under `dir` (a host path inside a container's tree)
// owned by `uid`, without following symlinks or leaving the file system;
// paths relative to `dir`, at most `limit` of them (and the count of all).
struct OwnedFiles {
  size_t count = 0;
  std::vector<std::string> paths;
};
OwnedFiles files_owned_by(const fs::path& dir, uid_t uid, size_t limit);

// Whether a step works in a source's checkout (its cwd is in it): its build
// state lives there, and a clean of the source reruns it.
bool works_in(const SetupStep& step, const SourceSpec& src);
// A source's fingerprint: what makes a checkout a different one.
std::string source_fingerprint(const SourceSpec& src);
// A step with its templates rendered and its default sources filled in.
Result<SetupStep> render_step(const ContainerSpec& spec, const SetupStep& step,
                              const std::map<std::string, std::string>& vars);
// Fingerprints in state.db that no definition has: a clean checkout asked
// for (on a source), a rerun asked for (on a step), by `farmhand rebuild`.
inline constexpr const char* kCleanAsked = "!clean";
inline constexpr const char* kRebuildAsked = "!rebuild";

// Whether a container's spec declares any payload.
bool has_payload(const ContainerSpec& spec);

// Looks up a user or group in the tree's /etc/passwd or /etc/group; a
// numeric name is taken as is. std::nullopt if unknown.
std::optional<std::pair<uid_t, gid_t>> tree_user(const fs::path& tree, const std::string& name);
std::optional<gid_t> tree_group(const fs::path& tree, const std::string& name);

// The [Install] WantedBy=/RequiredBy= targets of a unit file's text
// (multi-user.target if it names none), with ".wants"/".requires".
std::vector<std::string> unit_install_dirs(std::string_view unit_text);

}  // namespace farmhand::provisioner
