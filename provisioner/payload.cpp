#include "provisioner/payload.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/hash.h"
#include "common/log.h"
#include "provisioner/base_image.h"
#include "provisioner/command_runner.h"
#include "provisioner/git.h"
#include "provisioner/template.h"

namespace farmhand::provisioner {

namespace {

using Clock = std::chrono::steady_clock;

std::string short_commit(const std::string& commit) { return commit.substr(0, 12); }

// Fields of a colon-separated line of /etc/passwd or /etc/group.
std::vector<std::string> colon_fields(const std::string& line) {
  std::vector<std::string> out;
  std::string field;
  std::istringstream in(line);
  while (std::getline(in, field, ':')) out.push_back(field);
  return out;
}

std::optional<unsigned long> numeric_id(const std::string& s) {
  if (s.empty() || s.size() > 10 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  return std::stoul(s);
}

// The host ids of ids inside the tree: a container with a user namespace has
// its tree shifted by the owner of its root directory.
Ownership shifted(const fs::path& tree, uid_t uid, gid_t gid) {
  auto root = stat_in_root(tree, ".");
  if (!root || !*root) return {uid, gid};
  return {(*root)->uid + uid, (*root)->gid + gid};
}

std::string item_fingerprint(const nlohmann::json& j) { return sha256_hex(j.dump()); }

struct Records {
  std::map<std::pair<PayloadKind, std::string>, PayloadRecord> by_key;
  const PayloadRecord* find(PayloadKind kind, const std::string& name) const {
    auto it = by_key.find({kind, name});
    return it == by_key.end() ? nullptr : &it->second;
  }
};

// systemd-nspawn --register=no says this on hosts whose /run is not
// systemd's; it is about nspawn, not the step.
bool nspawn_noise(std::string_view line) {
  return line.starts_with("Attempted to remove disk file system under \"/run/systemd/nspawn/propagate/");
}

std::string without_noise(const std::string& text) {
  std::string out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + start, end - start);
    if (!nspawn_noise(line)) {
      out.append(line);
      if (end < text.size()) out += '\n';
    }
    start = end + 1;
  }
  return out;
}

// Watches a running step: forwards at most kStepOutputLines lines of its
// output, counts the rest, and gives a heartbeat when nothing was shown for
// a heartbeat interval (a quiet step, or one past the output limit).
class StepWatch {
 public:
  StepWatch(const PayloadHooks& hooks, const PayloadOptions& options, std::string label)
      : hooks_(hooks), options_(options), label_(std::move(label)), started_(options.now()), shown_(started_) {}

  void line(std::string_view text) {
    if (nspawn_noise(text)) return;
    ++lines_;
    last_.assign(text.substr(0, 512));
    if (!hooks_.output) return;
    if (lines_ <= kStepOutputLines) {
      hooks_.output(text);
      shown_ = options_.now();
    } else if (lines_ == kStepOutputLines + 1) {
      hooks_.output("(more output is not logged; a heartbeat counts it, and the end of it is kept if the step fails)");
      shown_ = options_.now();
    }
  }

  void tick() {
    const auto now = options_.now();
    if (now - shown_ < options_.heartbeat_interval || !hooks_.heartbeat) return;
    shown_ = now;
    hooks_.heartbeat(format_heartbeat(label_, std::chrono::duration_cast<std::chrono::milliseconds>(now - started_),
                                      lines_, last_));
  }

  // Hooks a command to this watch.
  void watch(Command& cmd, bool lines) {
    if (lines) cmd.on_line = [this](std::string_view l) { line(l); };
    cmd.on_tick = [this] { tick(); };
    cmd.tick_interval = options_.tick;
  }

 private:
  const PayloadHooks& hooks_;
  const PayloadOptions& options_;
  std::string label_;
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point shown_;
  size_t lines_ = 0;
  std::string last_;
};

std::string with_thousands(size_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string tail(const std::string& text, size_t n) {
  if (text.size() <= n) return text;
  size_t cut = text.size() - n;
  size_t nl = text.find('\n', cut);
  if (nl != std::string::npos && nl + 1 < text.size()) cut = nl + 1;
  return "...\n" + text.substr(cut);
}

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

std::string format_elapsed(std::chrono::milliseconds elapsed) {
  const long long s = std::max<long long>(0, elapsed.count() / 1000);
  char buf[48];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%lld s", s);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%lld m %02lld s", s / 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%lld h %02lld m", s / 3600, (s % 3600) / 60);
  }
  return buf;
}

std::string format_heartbeat(std::string_view step, std::chrono::milliseconds elapsed, size_t lines,
                             std::string_view last) {
  std::string out = std::string(step) + ": " + format_elapsed(elapsed) + ", ";
  if (lines == 0) return out + "no output yet";
  out += with_thousands(lines) + (lines == 1 ? " line" : " lines") + ", last: ";
  constexpr size_t kMax = 100;
  if (last.size() > kMax) {
    size_t cut = kMax;
    while (cut > 0 && (static_cast<unsigned char>(last[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 sequence
    out.append(last.substr(0, cut));
    out += "\u2026";
  } else {
    out.append(last);
  }
  return out;
}

OwnedFiles files_owned_by(const fs::path& dir, uid_t uid, size_t limit) {
  OwnedFiles out;
  struct stat top {};
  if (::lstat(dir.c_str(), &top) != 0 || !S_ISDIR(top.st_mode)) return out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode) && st.st_dev != top.st_dev) {
      it.disable_recursion_pending();  // another file system mounted here
      continue;
    }
    if (st.st_uid != uid) continue;
    ++out.count;
    if (out.paths.size() < limit) out.paths.push_back(it->path().lexically_relative(dir).string());
  }
  return out;
}

std::string UnitState::describe() const {
  std::string out = active.empty() ? "unknown" : active;
  if (!sub.empty() && sub != active) out += " (" + sub + ")";
  if (!result.empty() && result != "success") out += ", result " + result;
  return out;
}

UnitState parse_unit_state(std::string_view text) {
  UnitState st;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    const std::string_view key = line.substr(0, eq);
    const std::string value(line.substr(eq + 1));
    if (key == "ActiveState") st.active = value;
    else if (key == "SubState") st.sub = value;
    else if (key == "Result") st.result = value;
    else if (key == "NRestarts") st.restarts = numeric_id(value).value_or(0);
  }
  return st;
}

bool works_in(const SetupStep& step, const SourceSpec& src) {
  const std::string dir = src.path.ends_with("/") ? src.path : src.path + "/";
  return step.cwd == src.path || (step.cwd + "/").starts_with(dir);
}

std::string source_fingerprint(const SourceSpec& src) {
  return item_fingerprint(
      {{"url", src.url}, {"ref", src.ref}, {"path", src.path}, {"submodules", src.submodules}});
}

Result<SetupStep> render_step(const ContainerSpec& spec, const SetupStep& step,
                              const std::map<std::string, std::string>& vars) {
  SetupStep rendered = step;
  for (auto& arg : rendered.run) {
    auto r = render_template(arg, vars);
    if (!r) return r.error().context("setup step " + step.name);
    arg = std::move(*r);
  }
  for (auto& e : rendered.env) {
    auto r = render_template(e, vars);
    if (!r) return r.error().context("setup step " + step.name);
    e = std::move(*r);
  }
  if (rendered.sources.empty()) {
    for (const auto& src : spec.sources) rendered.sources.push_back(src.name);
  }
  return rendered;
}

Result<ProcessResult> run_as_root_in(ProcessRunner& runner, const PayloadTarget& t, const std::string& helper,
                                     std::vector<std::string> argv, Command* shown) {
  SetupStep s;
  s.name = argv[0];
  s.run = std::move(argv);
  s.user = RunAs::kRoot;
  s.cwd = "/";
  s.timeout_s = 120;
  Command cmd = PayloadApplier::step_command(t, s, helper);
  if (shown) *shown = cmd;
  return runner.run(cmd);
}

Result<UnitState> container_unit_state(ProcessRunner& runner, const PayloadTarget& t, const std::string& helper,
                                       const std::string& unit) {
  Command shown;
  auto r = run_as_root_in(runner, t, helper,
                          {"systemctl", "show", "--property=ActiveState,SubState,Result,NRestarts", "--", unit}, &shown);
  if (!r) return r.error();
  if (!r->success()) return command_error(shown, *r);
  return parse_unit_state(r->out);
}

std::string container_unit_journal(ProcessRunner& runner, const PayloadTarget& t, const std::string& helper,
                                   const std::string& unit) {
  auto r = run_as_root_in(runner, t, helper,
                          {"journalctl", "--no-pager", "--quiet", "-o", "short-iso", "-n",
                           std::to_string(kServiceJournalLines), "-u", unit},
                          nullptr);
  if (!r || !r->success()) return "";
  std::string text = without_noise(r->out);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return tail(text, kErrorTail);
}

bool has_payload(const ContainerSpec& spec) {
  return !spec.sources.empty() || !spec.files.empty() || !spec.setup.empty() || !spec.services.empty();
}

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

std::vector<std::string> unit_install_dirs(std::string_view unit_text) {
  std::vector<std::string> out;
  std::istringstream in{std::string(unit_text)};
  std::string line;
  bool install = false;
  auto trim = [](std::string s) {
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.pop_back();
    size_t b = s.find_first_not_of(" \t");
    return b == std::string::npos ? std::string() : s.substr(b);
  };
  while (std::getline(in, line)) {
    line = trim(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line[0] == '[') {
      install = line == "[Install]";
      continue;
    }
    if (!install) continue;
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = trim(line.substr(0, eq));
    const char* suffix = key == "WantedBy" ? ".wants" : key == "RequiredBy" ? ".requires" : nullptr;
    if (suffix == nullptr) continue;
    std::istringstream values(line.substr(eq + 1));
    std::string v;
    while (values >> v) {
      std::string dir = v + suffix;
      if (std::find(out.begin(), out.end(), dir) == out.end()) out.push_back(dir);
    }
  }
  if (out.empty()) out.push_back("multi-user.target.wants");
  return out;
}

std::string PayloadApplier::step_fingerprint(const SetupStep& s, const std::map<std::string, std::string>& commits) {
  nlohmann::json j = {{"run", s.run},      {"user", std::string(to_string(s.user))},
                      {"cwd", s.cwd},      {"env", s.env},
                      {"timeout", s.timeout_s}};
  nlohmann::json deps = nlohmann::json::object();
  for (const auto& name : s.sources) {
    auto it = commits.find(name);
    deps[name] = it == commits.end() ? "" : it->second;
  }
  j["sources"] = deps;
  return item_fingerprint(j);
}

Command PayloadApplier::step_command(const PayloadTarget& t, const SetupStep& s, const std::string& helper) {
  const bool root = s.user == RunAs::kRoot;
  const std::string home = root ? "/root" : std::string("/home/") + kBuildUser;
  const std::string cwd = s.cwd.empty() ? home : s.cwd;
  const std::string user = root ? "root" : kBuildUser;
  std::vector<std::string> env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                  "HOME=" + home, "USER=" + user, "LOGNAME=" + user, "LANG=C.UTF-8"};
  env.insert(env.end(), s.env.begin(), s.env.end());
  Command cmd;
  if (t.leader) {
    // The running container: join its namespaces, then resolve the working
    // directory and the program inside it.
    cmd.path = helper;
    cmd.args = {"enter", "--target", std::to_string(*t.leader), "--cwd", cwd};
    if (!root) {
      auto ids = tree_user(t.tree, kBuildUser);
      cmd.args.insert(cmd.args.end(), {"--uid", std::to_string(ids ? ids->first : kBuildUid), "--gid",
                                       std::to_string(ids ? ids->second : kBuildUid)});
    }
    cmd.args.push_back("--");
    cmd.args.insert(cmd.args.end(), s.run.begin(), s.run.end());
    cmd.env = env;
  } else {
    auto nspawn = find_program("systemd-nspawn");
    cmd.path = nspawn ? *nspawn : "/usr/bin/systemd-nspawn";
    std::vector<std::string> setenv = env;
    // The host's resolver for the command only: the container keeps its own
    // /etc/resolv.conf for when it boots.
    cmd.args = CommandRunner::nspawn_args(t.tree.string(), setenv, CommandRunner::Dns::kBindHost);
    cmd.args.pop_back();  // "--"
    // The container's binds, as it has them when it runs: a step sees the
    // same file system booted or not (a compiler cache, say).
    for (const auto& b : t.layout->spec.binds) {
      const std::string target = b.target.empty() ? b.source : b.target;
      cmd.args.push_back((b.read_only ? "--bind-ro=" : "--bind=") + (t.host_root / fs::path(b.source).relative_path()).string() +
                         ":" + target);
    }
    cmd.args.push_back("--chdir=" + cwd);
    if (!root) cmd.args.push_back(std::string("--user=") + kBuildUser);
    cmd.args.push_back("--");
    cmd.args.insert(cmd.args.end(), s.run.begin(), s.run.end());
    cmd.env = minimal_env();
  }
  cmd.timeout = std::chrono::seconds(s.timeout_s);
  cmd.capture_limit = 64 << 10;
  return cmd;
}

Result<PayloadOutcome> PayloadApplier::apply(const PayloadTarget& t, const PayloadHooks& hooks) {
  const ContainerSpec& spec = t.layout->spec;
  const std::string& name = spec.name;
  PayloadOutcome out;
  Records records;
  {
    auto all = state_.payload(name);
    if (!all) return all.error();
    for (auto& r : *all) records.by_key[{r.kind, r.name}] = std::move(r);
  }
  auto report = [&](const std::string& what, Clock::time_point t0, const Status& s) {
    if (hooks.step) hooks.step(what, std::chrono::duration_cast<std::chrono::milliseconds>(options_.now() - t0), s);
  };
  auto begin = [&](const std::string& what) {
    if (hooks.started) hooks.started(what);
    return options_.now();
  };
  auto warn = [&](const std::string& text) {
    out.warnings.push_back(text);
    if (hooks.warning) hooks.warning(text);
  };
  auto forget_removed = [&](PayloadKind kind, const std::set<std::string>& wanted,
                            const std::function<Status(const PayloadRecord&)>& remove) -> Status {
    for (const auto& [key, rec] : records.by_key) {
      if (key.first != kind || wanted.count(key.second)) continue;
      if (remove) {
        const std::string what = "remove " + std::string(to_string(kind)) + " " + rec.name;
        const auto t0 = begin(what);
        Status s = remove(rec);
        report(what, t0, s);
        if (!s) return s;
      }
      if (auto s = state_.delete_payload(name, kind, rec.name); !s) return s;
      out.changed = true;
    }
    return {};
  };

  // --- sources ----------------------------------------------------------
  auto build_ids = tree_user(t.tree, kBuildUser);
  if (!spec.sources.empty() && !build_ids) {
    return fail("the container has no build user \"" + std::string(kBuildUser) + "\" to own its sources");
  }
  // Runs the git-sync helper for one source (the fetch, the checkout, and
  // with `force_clean` the removal of untracked and ignored files).
  auto sync = [&](const SourceSpec& src, bool force_clean) -> Result<SyncResult> {
    const Ownership owner = shifted(t.tree, build_ids->first, build_ids->second);
    if (auto s = make_dirs(mount_dir_, 0755); !s) return s.error();
    const fs::path mountpoint = mount_dir_ / (name + "." + src.name + "." + random_id128_hex().substr(0, 8));
    if (::mkdir(mountpoint.c_str(), 0755) != 0 && errno != EEXIST) {
      return fail("cannot create '" + mountpoint.string() + "': " + errno_text(errno));
    }
    Command cmd;
    cmd.path = helper_;
    cmd.args = {"git-sync", "--request",
                git_sync_request_json(
                    {t.tree.string(), src.path, owner.uid, owner.gid, mountpoint.string(), src, force_clean})};
    cmd.env = minimal_env();
    cmd.timeout = std::chrono::hours(1);
    StepWatch fetching(hooks, options_, "source " + src.name);
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
  };
  std::set<std::string> cleaned;  // sources whose untracked files were removed in this apply
  std::set<std::string> wanted;
  for (const auto& src : spec.sources) {
    wanted.insert(src.name);
    const PayloadRecord* rec = records.find(PayloadKind::kSource, src.name);
    const std::string fp = source_fingerprint(src);
    const bool clean_asked = rec && rec->fingerprint == kCleanAsked;
    if (rec && rec->fingerprint == fp && unmoved(t.tree, src, rec->revision)) {
      out.commits[src.name] = rec->revision;
      continue;
    }
    const auto t0 = begin("source " + src.name);
    auto synced = sync(src, clean_asked);
    if (!synced) {
      report("source " + src.name, t0, synced.error());
      return synced.error();
    }
    // A first checkout has nothing of a build in it either.
    if (synced->cleaned || synced->cloned) cleaned.insert(src.name);
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
      if (auto s = state_.put_payload({name, PayloadKind::kSource, src.name, fp, synced->commit, 0}); !s) {
        return s.error();
      }
    }
  }
  if (auto s = forget_removed(PayloadKind::kSource, wanted, nullptr); !s) return s.error();

  std::map<std::string, std::string> vars = t.vars;
  for (const auto& src : spec.sources) {
    vars["source." + src.name + ".path"] = src.path;
    vars["source." + src.name + ".commit"] = out.commits[src.name];
    vars["source." + src.name + ".url"] = src.url;
  }

  // --- files --------------------------------------------------------------
  wanted.clear();
  for (const auto& f : spec.files) {
    wanted.insert(f.path);
    auto content = render_template(f.content, vars);
    if (!content) return content.error().context("file " + f.path);
    auto user = tree_user(t.tree, f.owner);
    if (!user) return fail("file " + f.path + ": the container has no user \"" + f.owner + "\"");
    auto group = tree_group(t.tree, f.group);
    if (!group) return fail("file " + f.path + ": the container has no group \"" + f.group + "\"");
    const Ownership owner = shifted(t.tree, user->first, *group);
    auto st = stat_in_root(t.tree, f.path);
    if (!st) return st.error();
    // Only a regular file is read; anything else there is replaced.
    const bool regular = *st && S_ISREG((*st)->mode);
    auto have = regular ? read_file_in_root(t.tree, f.path) : Result<std::optional<std::string>>(std::nullopt);
    if (!have) return have.error();
    const bool same = regular && *have && **have == *content && ((*st)->mode & 07777) == f.mode &&
                      (*st)->uid == owner.uid && (*st)->gid == owner.gid;
    if (same) continue;
    const auto t0 = begin("file " + f.path);
    Status s = write_file_in_root(t.tree, f.path, *content, f.mode, owner);
    report("file " + f.path, t0, s);
    if (!s) return s.error();
    out.changed = true;
    if (auto p = state_.put_payload({name, PayloadKind::kFile, f.path, sha256_hex(*content), "", 0}); !p) {
      return p.error();
    }
  }
  if (auto s = forget_removed(PayloadKind::kFile, wanted,
                              [&](const PayloadRecord& rec) { return remove_in_root(t.tree, rec.name); });
      !s) {
    return s.error();
  }

  // --- setup steps --------------------------------------------------------
  wanted.clear();
  std::vector<SetupStep> rendered_steps;
  for (const auto& step : spec.setup) {
    wanted.insert(step.name);
    auto rendered = render_step(spec, step, vars);
    if (!rendered) return rendered.error();
    rendered_steps.push_back(std::move(*rendered));
  }
  // Sources of the steps that ran in this apply: a later step of the same
  // source reruns too (a configure that reran means its build must).
  std::set<std::string> reran_sources;
  auto must_run = [&](size_t i) {
    const PayloadRecord* rec = records.find(PayloadKind::kStep, spec.setup[i].name);
    if (!rec || rec->fingerprint != step_fingerprint(rendered_steps[i], out.commits)) return true;
    for (const auto& s : rendered_steps[i].sources) {
      if (reran_sources.count(s)) return true;
    }
    for (const auto& src : spec.sources) {
      if (cleaned.count(src.name) && works_in(rendered_steps[i], src)) return true;  // its build state is gone
    }
    return false;
  };
  // A source with `clean` is cleaned before a step that works in its
  // checkout reruns (whatever the reason: the source moved, a new
  // definition, a failure last time), so that no build state survives a
  // failed or changed build; then every step that works in it reruns.
  for (const auto& src : spec.sources) {
    if (!src.clean || cleaned.count(src.name)) continue;
    bool rerun = false;
    for (size_t i = 0; i < rendered_steps.size() && !rerun; ++i) {
      rerun = works_in(rendered_steps[i], src) && must_run(i);
    }
    if (!rerun) continue;
    const std::string what = "clean source " + src.name;
    const auto t0 = begin(what);
    auto synced = sync(src, true);
    report(what + (synced ? " (untracked and ignored files removed)" : ""), t0,
           synced ? Status{} : Status(synced.error()));
    if (!synced) return synced.error();
    cleaned.insert(src.name);
    out.changed = true;
  }
  for (size_t i = 0; i < spec.setup.size(); ++i) {
    const SetupStep& step = spec.setup[i];
    const SetupStep& rendered = rendered_steps[i];
    const std::string fp = step_fingerprint(rendered, out.commits);
    if (!must_run(i)) continue;
    const std::string label = "setup " + step.name;
    // Root's files under the build user's home before the step, to name
    // the step that leaves new ones there.
    const fs::path build_home = t.tree / "home" / kBuildUser;
    const uid_t tree_root = shifted(t.tree, 0, 0).uid;
    std::set<std::string> root_owned_before;
    if (step.user == RunAs::kRoot) {
      auto before = files_owned_by(build_home, tree_root, SIZE_MAX);
      root_owned_before.insert(before.paths.begin(), before.paths.end());
    }
    const auto t0 = begin(label);
    Command cmd = step_command(t, rendered, helper_);
    StepWatch watch(hooks, options_, step.name);
    watch.watch(cmd, true);
    auto r = runner_.run(cmd);
    if (step.user == RunAs::kRoot) {
      auto after = files_owned_by(build_home, tree_root, SIZE_MAX);
      std::vector<std::string> fresh;
      for (const auto& p : after.paths) {
        // CMake's install writes its list of what it installed into the
        // build directory, by design, and only an install rewrites it.
        const std::string base = fs::path(p).filename().string();
        if (base.starts_with("install_manifest") && base.ends_with(".txt")) continue;
        if (!root_owned_before.count(p)) fresh.push_back(p);
      }
      if (!fresh.empty()) {
        warn("setup step \"" + step.name + "\" ran as root and left " + std::to_string(fresh.size()) +
             (fresh.size() == 1 ? " file" : " files") + " owned by root under /home/" + kBuildUser + " (/home/" +
             kBuildUser + "/" + fresh.front() + (fresh.size() > 1 ? ", ..." : "") + "): a later step as " +
             kBuildUser + " cannot change or remove " + (fresh.size() == 1 ? "it" : "them") +
             ". Build as " + kBuildUser + " and install as root with a command that only writes outside the "
             "build tree (such as cmake --install), or chown them back.");
      }
    }
    Status s;
    if (!r) {
      s = r.error();
    } else if (!r->success()) {
      std::string output = without_noise(r->out);
      const std::string err = without_noise(r->err);
      if (!err.empty()) output += (output.empty() || output.back() == '\n' ? "" : "\n") + err;
      while (!output.empty() && output.back() == '\n') output.pop_back();
      s = fail("setup step \"" + step.name + "\" " + r->describe() +
               (output.empty() ? std::string() : ":\n" + tail(output, kErrorTail)));
    }
    report(label, t0, s);
    if (!s) {
      // It reruns at the next apply, whatever its fingerprint was.
      (void)state_.delete_payload(name, PayloadKind::kStep, step.name);
      return s.error();
    }
    out.changed = true;
    out.steps_run.push_back(step.name);
    reran_sources.insert(rendered.sources.begin(), rendered.sources.end());
    if (auto p = state_.put_payload({name, PayloadKind::kStep, step.name, fp, "", 0}); !p) return p.error();
  }
  if (auto s = forget_removed(PayloadKind::kStep, wanted, nullptr); !s) return s.error();

  // --- services -----------------------------------------------------------
  const std::string unit_dir = "etc/systemd/system";
  auto run_in_container = [&](std::vector<std::string> argv, Command* shown) -> Result<ProcessResult> {
    return run_as_root_in(runner_, t, helper_, std::move(argv), shown);
  };
  auto in_container = [&](std::vector<std::string> argv) -> Status {
    if (!t.leader) return {};
    Command shown;
    auto r = run_in_container(std::move(argv), &shown);
    if (!r) return r.error();
    if (!r->success()) return command_error(shown, *r);
    return {};
  };
  auto unit_state = [&](const std::string& unit) { return container_unit_state(runner_, t, helper_, unit); };
  auto journal_tail = [&](const std::string& unit) { return container_unit_journal(runner_, t, helper_, unit); };
  // Waits until a unit that was just started stays up: active (for
  // Type=notify, systemctl waited for it to be ready) through the settle
  // time, or failed, stopped, or restarted by its Restart= policy meanwhile.
  auto verify_active = [&](const std::string& unit, const std::string& verb) -> Status {
    auto first = unit_state(unit);
    if (!first) return first.error();
    const auto t_start = options_.now();
    auto settled = t_start + options_.service_settle;
    UnitState st = *first;
    for (;;) {
      const bool up = st.active == "active" || st.active == "reloading";
      const bool starting = st.active == "activating" && st.sub != "auto-restart";
      if (!up && !starting) break;
      if (st.restarts > first->restarts) break;
      const auto now = options_.now();
      if (up && now >= settled) return {};
      if (starting && now - t_start >= options_.service_start_timeout) break;
      std::this_thread::sleep_for(options_.service_poll);
      auto next = unit_state(unit);
      if (!next) return next.error();
      st = *next;
    }
    std::string why = "service " + unit + " did not stay up after " + verb + ": " + st.describe();
    if (st.restarts > first->restarts && st.active != "failed") {
      why += ", restarted " + std::to_string(st.restarts - first->restarts) + " time(s) by its Restart= policy";
    }
    const std::string journal = journal_tail(unit);
    return fail(why + (journal.empty() ? std::string(" (its journal is empty)") : ". Its journal:\n" + journal));
  };
  wanted.clear();
  bool units_changed = false;
  std::vector<std::string> enabled;
  for (const auto& svc : spec.services) {
    wanted.insert(svc.name);
    auto content = render_template(svc.content, vars);
    if (!content) return content.error().context("service " + svc.name);
    const std::string unit_path = unit_dir + "/" + svc.name;
    const std::string target = "/" + unit_path;
    auto have = read_file_in_root(t.tree, unit_path);
    if (!have) return have.error();
    const auto t0 = options_.now();
    bool touched = false;
    Status s;
    if (!*have || **have != *content) {
      s = write_file_in_root(t.tree, unit_path, *content, 0644, shifted(t.tree, 0, 0));
      touched = true;
    }
    for (const auto& dir : unit_install_dirs(*content)) {
      if (!s) break;
      const std::string link = unit_dir + "/" + dir + "/" + svc.name;
      auto current = readlink_in_root(t.tree, link);
      if (!current) {
        s = current.error();
      } else if (svc.enable && *current != target) {
        s = symlink_in_root(t.tree, link, target);
        touched = true;
      } else if (!svc.enable && *current) {
        s = remove_in_root(t.tree, link);
        touched = true;
      }
    }
    if (touched) report(std::string(svc.enable ? "install and enable " : "install ") + svc.name, t0, s);
    if (!s) return s.error();
    if (svc.enable) enabled.push_back(svc.name);
    if (touched) {
      units_changed = true;
      out.changed = true;
      if (auto p = state_.put_payload({name, PayloadKind::kService, svc.name, sha256_hex(*content), "", 0}); !p) {
        return p.error();
      }
    }
  }
  if (auto s = forget_removed(PayloadKind::kService, wanted,
                              [&](const PayloadRecord& rec) -> Status {
                                (void)in_container({"systemctl", "disable", "--now", rec.name});
                                const std::string unit_path = unit_dir + "/" + rec.name;
                                auto text = read_file_in_root(t.tree, unit_path);
                                if (text && *text) {
                                  for (const auto& dir : unit_install_dirs(**text)) {
                                    if (auto r = remove_in_root(t.tree, unit_dir + "/" + dir + "/" + rec.name); !r) {
                                      return r;
                                    }
                                  }
                                }
                                units_changed = true;
                                return remove_in_root(t.tree, unit_path);
                              });
      !s) {
    return s.error();
  }

  // A running container takes the change now: its enabled services restart
  // when anything they may use (units, files, sources, builds) changed, and
  // an enabled service that is not running (it failed, at the last apply or
  // since) is started. Each must then stay up, or the payload fails with
  // the unit's journal, and the next apply tries again.
  if (t.leader) {
    if (units_changed) {
      const auto t0 = begin("reload systemd");
      Status s = in_container({"systemctl", "daemon-reload"});
      if (!s || enabled.empty()) report("reload systemd", t0, s);
      if (!s) return s.error();
    }
    for (const auto& svc : enabled) {
      std::string verb = "restart";
      if (!out.changed) {
        auto st = unit_state(svc);
        if (!st) return st.error();
        if (st->active == "active" || st->active == "reloading" || st->active == "activating") continue;
        verb = "start";
      }
      const std::string what = verb + " " + svc;
      const auto t0 = begin(what);
      Status s = in_container({"systemctl", verb, "--", svc});
      if (!s) {
        const std::string journal = journal_tail(svc);
        s = fail(s.error().message() + (journal.empty() ? "" : "\nIts journal:\n" + journal));
      } else {
        s = verify_active(svc, verb);
      }
      report(what, t0, s);
      if (!s) return s.error();
      out.changed = true;
    }
  }
  return out;
}

}  // namespace farmhand::provisioner

namespace farmhand::provisioner {

Result<PayloadPreview> PayloadApplier::preview(const PayloadTarget& t, bool fetch,
                                               const std::optional<PayloadStatus>& last) {
  const ContainerSpec& spec = t.layout->spec;
  PayloadPreview out;
  out.remotes_checked = fetch;
  Records records;
  {
    auto all = state_.payload(spec.name);
    if (!all) return all.error();
    for (auto& r : *all) records.by_key[{r.kind, r.name}] = std::move(r);
  }
  auto add = [&](std::string what, std::string why) { out.items.push_back({std::move(what), std::move(why)}); };

  // Sources: the recorded commits, or with `fetch` the remotes' own.
  std::map<std::string, std::string> recorded, expected;
  std::set<std::string> unknown;  // sources whose next commit is not known
  for (const auto& src : spec.sources) {
    const PayloadRecord* rec = records.find(PayloadKind::kSource, src.name);
    const std::string label = "source " + src.name;
    if (rec) recorded[src.name] = rec->revision;
    if (!rec || rec->revision.empty()) {
      add(label, "not checked out yet");
      unknown.insert(src.name);
      continue;
    }
    if (rec->fingerprint == kCleanAsked) {
      add(label, "a clean checkout was asked for (farmhand rebuild --clean)");
    } else if (rec->fingerprint != source_fingerprint(src)) {
      add(label, "its url, ref, path or submodules changed");
      unknown.insert(src.name);
      continue;
    }
    expected[src.name] = rec->revision;
    if (!fetch) continue;
    auto auth = load_git_auth(src.credentials);
    Result<std::string> remote = auth ? remote_commit(src.url, src.ref, *auth) : Result<std::string>(auth.error());
    if (!remote) {
      add(label, "cannot ask the remote: " + remote.error().message());
      unknown.insert(src.name);
    } else if (*remote != rec->revision) {
      add(label, short_commit(rec->revision) + " -> " + short_commit(*remote) + " (the remote moved)");
      expected[src.name] = *remote;
    }
  }

  std::map<std::string, std::string> vars = t.vars;
  for (const auto& src : spec.sources) {
    vars["source." + src.name + ".path"] = src.path;
    vars["source." + src.name + ".commit"] = expected.count(src.name) ? expected[src.name] : "";
    vars["source." + src.name + ".url"] = src.url;
  }

  // Files and services are read from the tree; an overlay clone's tree is
  // only there while it is mounted.
  const bool tree_there = fs::exists(t.tree / "etc");
  if (!tree_there && (!spec.files.empty() || !spec.services.empty())) {
    out.notes.push_back("its files and services are not compared: its tree is not mounted");
  }

  // Files, as apply compares them.
  for (const auto& f : tree_there ? spec.files : std::vector<FileSpec>{}) {
    auto content = render_template(f.content, vars);
    if (!content) return content.error().context("file " + f.path);
    auto have = read_file_in_root(t.tree, f.path);
    if (!have) return have.error();
    auto st = stat_in_root(t.tree, f.path);
    if (!st) return st.error();
    auto user = tree_user(t.tree, f.owner);
    auto group = tree_group(t.tree, f.group);
    if (!*have) {
      add("file " + f.path, "missing");
    } else if (**have != *content) {
      add("file " + f.path, "its content differs");
    } else if (*st && user && group) {
      const Ownership owner = shifted(t.tree, user->first, *group);
      if (((*st)->mode & 07777) != f.mode || (*st)->uid != owner.uid || (*st)->gid != owner.gid) {
        add("file " + f.path, "its owner or mode differs");
      }
    }
  }

  // Steps: those whose fingerprint differs with the commits apply would check out.
  const std::string failed_item = last && last->state == "failed" ? last->item : "";
  std::map<std::string, std::string> rerun_sources;  // source -> the first step of it that reruns
  for (const auto& step : spec.setup) {
    const size_t listed = out.items.size();
    auto rendered = render_step(spec, step, vars);
    if (!rendered) return rendered.error();
    const std::string label = "setup " + step.name;
    const PayloadRecord* rec = records.find(PayloadKind::kStep, step.name);
    std::vector<std::string> waiting, moved;
    for (const auto& s : rendered->sources) {
      if (unknown.count(s)) waiting.push_back(s);
      else if (expected.count(s) && recorded.count(s) && expected[s] != recorded[s]) moved.push_back(s);
    }
    auto join = [](const std::vector<std::string>& names) {
      std::string o;
      for (const auto& n : names) o += (o.empty() ? "" : ", ") + n;
      return o;
    };
    if (!rec) {
      add(label, failed_item == label ? "it failed at the last apply" : "it has not run yet");
    } else if (rec->fingerprint == kRebuildAsked) {
      add(label, "a rerun was asked for (farmhand rebuild)");
    } else if (!waiting.empty()) {
      add(label, "if source " + join(waiting) + " moved: its commit is not known until it is fetched");
    } else if (rec->fingerprint != step_fingerprint(*rendered, expected)) {
      // The same definition with the recorded commits: only sources moved.
      auto with_recorded = render_step(spec, step, [&] {
        auto v = vars;
        for (const auto& [n, c] : recorded) v["source." + n + ".commit"] = c;
        return v;
      }());
      const bool same_definition = with_recorded && rec->fingerprint == step_fingerprint(*with_recorded, recorded);
      add(label, same_definition && !moved.empty() ? "source " + join(moved) + " moved"
                                                   : "its definition changed");
    } else {
      for (const auto& s : rendered->sources) {
        if (rerun_sources.count(s)) {
          add(label, "an earlier step of source " + s + " reruns (" + rerun_sources[s] + ")");
          break;
        }
      }
    }
    if (out.items.size() > listed) {
      for (const auto& s : rendered->sources) rerun_sources.emplace(s, step.name);
    }
  }

  // Services: the unit file and its links.
  for (const auto& svc : tree_there ? spec.services : std::vector<ServiceSpec>{}) {
    auto content = render_template(svc.content, vars);
    if (!content) return content.error().context("service " + svc.name);
    const std::string unit_path = "etc/systemd/system/" + svc.name;
    auto have = read_file_in_root(t.tree, unit_path);
    if (!have) return have.error();
    if (!*have) {
      add("service " + svc.name, "not installed");
      continue;
    }
    if (**have != *content) add("service " + svc.name, "its unit file differs");
    for (const auto& dir : unit_install_dirs(*content)) {
      auto link = readlink_in_root(t.tree, "etc/systemd/system/" + dir + "/" + svc.name);
      if (!link) return link.error();
      if (svc.enable && *link != "/" + unit_path) add("service " + svc.name, "not enabled (" + dir + ")");
      if (!svc.enable && *link) add("service " + svc.name, "enabled, but should not be");
    }
  }
  return out;
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
