// A payload's setup steps: rendered, fingerprinted, and run inside the
// container as root or as the build user (entered through a running
// container's leader, or with systemd-nspawn on a stopped one's tree). A step
// as root is checked for files it leaves owned by root in the build user's home.
#include <sys/stat.h>

#include <cstdint>

#include "provisioner/base_image.h"
#include "provisioner/command_runner.h"
#include "provisioner/payload/run.h"
#include "provisioner/template.h"

namespace farmhand::provisioner {

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
  return payload_impl::item_fingerprint(j);
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

namespace payload_impl {

namespace {

// The warning for files a step as root left owned by root under the build
// user's home (`fresh`, relative to it), or "" when there are none: a later
// step as the build user could not change or remove them.
std::string root_files_warning(const std::string& step, const std::vector<std::string>& fresh) {
  if (fresh.empty()) return "";
  return "setup step \"" + step + "\" ran as root and left " + std::to_string(fresh.size()) +
         (fresh.size() == 1 ? " file" : " files") + " owned by root under /home/" + kBuildUser + " (/home/" +
         kBuildUser + "/" + fresh.front() + (fresh.size() > 1 ? ", ..." : "") + "): a later step as " +
         kBuildUser + " cannot change or remove " + (fresh.size() == 1 ? "it" : "them") +
         ". Build as " + kBuildUser + " and install as root with a command that only writes outside the "
         "build tree (such as cmake --install), or chown them back.";
}

// Files owned by `uid` under `home` that `before` did not list.
std::vector<std::string> new_files_of(const fs::path& home, uid_t uid, const std::set<std::string>& before) {
  std::vector<std::string> fresh;
  for (const auto& p : files_owned_by(home, uid, SIZE_MAX).paths) {
    // CMake's install writes its list of what it installed into the
    // build directory, by design, and only an install rewrites it.
    const std::string base = fs::path(p).filename().string();
    if (base.starts_with("install_manifest") && base.ends_with(".txt")) continue;
    if (!before.count(p)) fresh.push_back(p);
  }
  return fresh;
}

// How a step ended: an error with the end of its output when it failed.
Status step_status(const std::string& step, const Result<ProcessResult>& r) {
  if (!r) return r.error();
  if (r->success()) return {};
  std::string output = without_noise(r->out);
  const std::string err = without_noise(r->err);
  if (!err.empty()) output += (output.empty() || output.back() == '\n' ? "" : "\n") + err;
  while (!output.empty() && output.back() == '\n') output.pop_back();
  return fail("setup step \"" + step + "\" " + r->describe() +
              (output.empty() ? std::string() : ":\n" + tail(output, kErrorTail)));
}

}  // namespace

bool PayloadRun::must_run(size_t i) const {
  const PayloadRecord* rec = records_.find(PayloadKind::kStep, spec_.setup[i].name);
  if (!rec || rec->fingerprint != PayloadApplier::step_fingerprint(rendered_[i], out.commits)) return true;
  for (const auto& s : rendered_[i].sources) {
    if (reran_sources_.count(s)) return true;
  }
  for (const auto& src : spec_.sources) {
    if (cleaned_.count(src.name) && works_in(rendered_[i], src)) return true;  // its build state is gone
  }
  return false;
}

Status PayloadRun::steps() {
  std::set<std::string> wanted;
  for (const auto& step : spec_.setup) {
    wanted.insert(step.name);
    auto rendered = render_step(spec_, step, vars_);
    if (!rendered) return rendered.error();
    rendered_.push_back(std::move(*rendered));
  }
  if (auto s = clean_sources(); !s) return s;
  for (size_t i = 0; i < spec_.setup.size(); ++i) {
    if (!must_run(i)) continue;
    if (auto s = run_step(i); !s) return s;
  }
  return forget_removed(PayloadKind::kStep, wanted, nullptr);
}

Status PayloadRun::run_step(size_t i) {
  const SetupStep& step = spec_.setup[i];
  const SetupStep& rendered = rendered_[i];
  const std::string fp = PayloadApplier::step_fingerprint(rendered, out.commits);
  const std::string label = "setup " + step.name;
  // Root's files under the build user's home before the step, to name
  // the step that leaves new ones there.
  const fs::path build_home = t_.tree / "home" / kBuildUser;
  const uid_t tree_root = shifted(t_.tree, 0, 0).uid;
  std::set<std::string> root_owned_before;
  if (step.user == RunAs::kRoot) {
    auto before = files_owned_by(build_home, tree_root, SIZE_MAX);
    root_owned_before.insert(before.paths.begin(), before.paths.end());
  }
  const auto t0 = begin(label);
  Command cmd = PayloadApplier::step_command(t_, rendered, helper_);
  StepWatch watch(hooks_, options_, step.name);
  watch.watch(cmd, true);
  auto r = runner_.run(cmd);
  if (step.user == RunAs::kRoot) {
    const std::string warning = root_files_warning(step.name, new_files_of(build_home, tree_root, root_owned_before));
    if (!warning.empty()) warn(warning);
  }
  Status s = step_status(step.name, r);
  report(label, t0, s);
  if (!s) {
    // It reruns at the next apply, whatever its fingerprint was.
    (void)state_.delete_payload(name_, PayloadKind::kStep, step.name);
    return s.error();
  }
  out.changed = true;
  out.steps_run.push_back(step.name);
  reran_sources_.insert(rendered.sources.begin(), rendered.sources.end());
  if (auto p = state_.put_payload({name_, PayloadKind::kStep, step.name, fp, "", 0}); !p) return p.error();
  return {};
}

}  // namespace payload_impl
}  // namespace farmhand::provisioner
