#include "provisioner/payload.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <sstream>

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

std::chrono::milliseconds since(Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
}

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

// Runs a command, forwarding at most kStepOutputLines lines of its output.
struct OutputPump {
  const PayloadHooks& hooks;
  size_t lines = 0;
  void operator()(std::string_view line) {
    if (nspawn_noise(line)) return;
    ++lines;
    if (!hooks.output) return;
    if (lines <= kStepOutputLines) {
      hooks.output(line);
    } else if (lines == kStepOutputLines + 1) {
      hooks.output("(more output is not logged; the end of it is kept if the step fails)");
    }
  }
};

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
    if (hooks.step) hooks.step(what, since(t0), s);
  };
  auto forget_removed = [&](PayloadKind kind, const std::set<std::string>& wanted,
                            const std::function<Status(const PayloadRecord&)>& remove) -> Status {
    for (const auto& [key, rec] : records.by_key) {
      if (key.first != kind || wanted.count(key.second)) continue;
      if (remove) {
        const auto t0 = Clock::now();
        Status s = remove(rec);
        report("remove " + std::string(to_string(kind)) + " " + rec.name, t0, s);
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
  std::set<std::string> wanted;
  for (const auto& src : spec.sources) {
    wanted.insert(src.name);
    const auto t0 = Clock::now();
    const Ownership owner = shifted(t.tree, build_ids->first, build_ids->second);
    const PayloadRecord* rec = records.find(PayloadKind::kSource, src.name);
    const nlohmann::json def = {{"url", src.url}, {"ref", src.ref}, {"path", src.path}, {"submodules", src.submodules}};
    const std::string fp = item_fingerprint(def);
    if (rec && rec->fingerprint == fp && unmoved(t.tree, src, rec->revision)) {
      out.commits[src.name] = rec->revision;
      continue;
    }
    if (auto s = make_dirs(mount_dir_, 0755); !s) return s.error();
    const fs::path mountpoint = mount_dir_ / (name + "." + src.name + "." + random_id128_hex().substr(0, 8));
    if (::mkdir(mountpoint.c_str(), 0755) != 0 && errno != EEXIST) {
      return fail("cannot create '" + mountpoint.string() + "': " + errno_text(errno));
    }
    Command cmd;
    cmd.path = helper_;
    cmd.args = {"git-sync", "--request",
                git_sync_request_json({t.tree.string(), src.path, owner.uid, owner.gid, mountpoint.string(), src})};
    cmd.env = minimal_env();
    cmd.timeout = std::chrono::hours(1);
    auto r = runner_.run(cmd);
    ::rmdir(mountpoint.c_str());
    Result<SyncResult> synced = fail("");
    if (!r) {
      synced = r.error();
    } else if (!r->success()) {
      std::string why = r->err.empty() ? r->out : r->err;
      while (!why.empty() && why.back() == '\n') why.pop_back();
      // The helper's own prefixes repeat what this message says already.
      for (const std::string& prefix : std::vector<std::string>{"error: ", "git-sync: ", "source \"" + src.name + "\": "}) {
        if (why.starts_with(prefix)) why.erase(0, prefix.size());
      }
      synced = fail("source \"" + src.name + "\" (" + redact_url(src.url) + " " + src.ref + "): " +
                    (why.empty() ? r->describe() : tail(why, kErrorTail)));
    } else {
      synced = parse_git_sync_output(r->out);
    }
    if (!synced) {
      report("source " + src.name, t0, synced.error());
      return synced.error();
    }
    out.commits[src.name] = synced->commit;
    const bool moved = rec == nullptr || rec->revision != synced->commit || rec->fingerprint != fp;
    if (moved || synced->changed) {
      out.changed = true;
      std::string what = "source " + src.name + ": " +
                         (rec && !rec->revision.empty() ? short_commit(rec->revision) + " -> " : std::string()) +
                         short_commit(synced->commit) + " (" + std::to_string(synced->received_objects) +
                         " objects fetched)";
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
    const auto t0 = Clock::now();
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
  for (const auto& step : spec.setup) wanted.insert(step.name);
  for (const auto& step : spec.setup) {
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
    const std::string fp = step_fingerprint(rendered, out.commits);
    const PayloadRecord* rec = records.find(PayloadKind::kStep, step.name);
    if (rec && rec->fingerprint == fp) continue;
    const auto t0 = Clock::now();
    Command cmd = step_command(t, rendered, helper_);
    OutputPump pump{hooks};
    cmd.on_line = [&pump](std::string_view line) { pump(line); };
    auto r = runner_.run(cmd);
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
    report("setup " + step.name, t0, s);
    if (!s) {
      // It reruns at the next apply, whatever its fingerprint was.
      (void)state_.delete_payload(name, PayloadKind::kStep, step.name);
      return s.error();
    }
    out.changed = true;
    out.steps_run.push_back(step.name);
    if (auto p = state_.put_payload({name, PayloadKind::kStep, step.name, fp, "", 0}); !p) return p.error();
  }
  if (auto s = forget_removed(PayloadKind::kStep, wanted, nullptr); !s) return s.error();

  // --- services -----------------------------------------------------------
  const std::string unit_dir = "etc/systemd/system";
  auto in_container = [&](std::vector<std::string> argv) -> Status {
    if (!t.leader) return {};
    SetupStep s;
    s.name = argv[0];
    s.run = std::move(argv);
    s.user = RunAs::kRoot;
    s.cwd = "/";
    s.timeout_s = 120;
    const Command shown = step_command(t, s, helper_);
    auto r = runner_.run(shown);
    if (!r) return r.error();
    if (!r->success()) return command_error(shown, *r);
    return {};
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
    const auto t0 = Clock::now();
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
  // when anything they may use (units, files, sources, builds) changed.
  if (t.leader && out.changed) {
    const auto t0 = Clock::now();
    Status s;
    if (units_changed) s = in_container({"systemctl", "daemon-reload"});
    for (const auto& svc : enabled) {
      if (!s) break;
      s = in_container({"systemctl", "restart", svc});
    }
    if (units_changed || !enabled.empty()) {
      std::string what = "restart";
      for (const auto& svc : enabled) what += " " + svc;
      if (enabled.empty()) what = "reload systemd";
      report(what, t0, s);
    }
    if (!s) return s.error();
  }
  return out;
}

}  // namespace farmhand::provisioner
