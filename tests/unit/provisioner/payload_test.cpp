// The payload's logic with a scripted process runner: what is rerun, what is
// skipped, what a failure leaves behind. Real git and real containers are in
// tests/integration/payload_test.sh.
#include "provisioner/payload.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <functional>

#include <gtest/gtest.h>

#include "provisioner/git.h"
#include "tests/unit/provisioner/git_fixture.h"
#include "tests/unit/temp_dir.h"

namespace farmhand::provisioner {
namespace {

namespace fs = std::filesystem;

// Answers git-sync with the commit the test sets, and every other command
// with the exit code the test sets; records what ran.
class ScriptedRunner final : public ProcessRunner {
 public:
  Result<ProcessResult> run(const Command& c) override {
    commands.push_back(c);
    ProcessResult r;
    if (!c.args.empty() && c.args[0] == "git-sync") {
      auto req = parse_git_sync_request(c.args.at(2));
      if (!req) return req.error();
      SyncResult s;
      s.commit = commits[req->source.name];
      s.changed = last_sync[req->source.name] != s.commit;
      s.cloned = last_sync[req->source.name].empty();
      s.cleaned = req->force_clean || (req->source.clean && s.changed && !last_sync[req->source.name].empty());
      last_sync[req->source.name] = s.commit;
      if (s.cleaned) cleans.push_back(req->source.name);
      r.exit_code = 0;
      r.out = git_sync_result_json(s) + "\n";
      return r;
    }
    const std::string last = c.args.empty() ? "" : c.args.back();
    if (effects.count(last)) effects[last]();
    r.exit_code = fail_with.count(last) ? fail_with[last] : 0;
    if (r.exit_code != 0) r.err = "step output for " + last + "\n";
    if (c.on_line) c.on_line("a line from " + last);
    return r;
  }
  // The argv tails (after "--") of the steps run, in order.
  std::vector<std::string> steps_run() const {
    std::vector<std::string> out;
    for (const auto& c : commands) {
      if (!c.args.empty() && c.args[0] == "git-sync") continue;
      out.push_back(c.args.back());
    }
    return out;
  }
  std::vector<Command> commands;
  std::map<std::string, std::string> commits;
  std::map<std::string, std::string> last_sync;
  std::map<std::string, int> fail_with;
  std::map<std::string, std::function<void()>> effects;  // what a step does to the tree
  std::vector<std::string> cleans;  // sources synced with their untracked files removed
};

std::string commit_of(char c) { return std::string(40, c); }

class PayloadTest : public testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(tree() / "etc");
    // The build user gets the test's own uid, so ownership works unprivileged.
    std::ofstream(tree() / "etc/passwd") << "root:x:0:0::/root:/bin/sh\nsai:x:0:0::/home/sai:/bin/sh\n";
    std::ofstream(tree() / "etc/group") << "root:x:0:\nnogroup:x:0:\n";
    auto st = StateStore::open((tmp_.path() / "state.db").string());
    ASSERT_TRUE(st.ok()) << st.error().message();
    state_.emplace(std::move(*st));
    layout_.spec.name = "deb12";
    SourceSpec builder;
    builder.name = "builder";
    builder.url = "file:///srv/builder.git";
    builder.ref = "main";
    builder.path = "/home/sai/src/builder";
    SourceSpec tools = builder;
    tools.name = "tools";
    tools.url = "file:///srv/tools.git";
    tools.path = "/home/sai/src/tools";
    layout_.spec.sources = {builder, tools};
    SetupStep configure;
    configure.name = "configure";
    configure.run = {"cmake", "-DCOMMIT={{source.builder.commit}}", "configure"};
    configure.sources = {"builder"};
    SetupStep tool;
    tool.name = "tool";
    tool.run = {"make", "tool"};
    tool.sources = {"tools"};
    tool.user = RunAs::kRoot;
    layout_.spec.setup = {configure, tool};
    FileSpec conf;
    conf.path = "/etc/builder/conf";
    conf.content = "name={{container}}\n";
    conf.owner = "sai";
    conf.group = "nogroup";
    conf.mode = 0640;
    layout_.spec.files = {conf};
    ServiceSpec svc;
    svc.name = "sai-builder.service";
    svc.content = "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n";
    layout_.spec.services = {svc};
    runner_.commits = {{"builder", commit_of('a')}, {"tools", commit_of('b')}};
  }

  fs::path tree() const { return tmp_.path() / "tree"; }

  // An applier on the test's state.db, with `runner` (the scripted one by default).
  PayloadApplier applier(ProcessRunner& runner, PayloadOptions options = {}) {
    return PayloadApplier(*state_, runner, "/usr/bin/farmhand", tmp_.path() / "mnt", std::move(options));
  }
  PayloadApplier applier() { return applier(runner_); }

  // The container: its tree, running with `leader` if given.
  PayloadTarget target(std::optional<pid_t> leader = std::nullopt) const {
    PayloadTarget t;
    t.layout = &layout_;
    t.tree = tree();
    t.leader = leader;
    t.vars = {{"container", "deb12"}};
    return t;
  }

  Result<PayloadOutcome> apply(std::vector<std::string>* failures = nullptr) {
    PayloadHooks hooks;
    hooks.step = [failures](const std::string& what, std::chrono::milliseconds, const Status& s) {
      if (!s && failures) failures->push_back(what + ": " + s.error().message());
    };
    return applier().apply(target(), hooks);
  }

  // Only the builder source and its configure step, the source at a real
  // local remote with one commit, which the scripted git-sync checks out.
  // Returns that commit.
  std::string use_real_remote() {
    repos_.emplace(tmp_.path());
    repos_->init(remote());
    const std::string head = repos_->commit(remote(), "README", "one\n");
    layout_.spec.sources.resize(1);
    layout_.spec.sources[0].url = test::GitRepos::url(remote());
    layout_.spec.setup.resize(1);
    runner_.commits["builder"] = head;
    return head;
  }
  fs::path remote() const { return tmp_.path() / "remote"; }
  // A new commit on the real remote.
  std::string move_remote() { return repos_->commit(remote(), "README", "two\n"); }

  // Only the file and the service; service checks on a short settle time.
  PayloadOptions services_only(std::chrono::milliseconds settle) {
    layout_.spec.sources.clear();
    layout_.spec.setup.clear();
    PayloadOptions options;
    options.service_settle = settle;
    options.service_poll = std::chrono::milliseconds(5);
    return options;
  }

  test::TempDir tmp_;
  ScriptedRunner runner_;
  std::optional<StateStore> state_;
  ContainerLayout layout_;
  std::optional<test::GitRepos> repos_;
};

TEST_F(PayloadTest, FirstApplyRunsEveryStepWritesFilesAndEnablesServices) {
  auto out = apply();
  ASSERT_TRUE(out.ok()) << out.error().message();
  EXPECT_EQ(runner_.steps_run(), (std::vector<std::string>{"configure", "tool"}));
  EXPECT_EQ(out->commits.at("builder"), commit_of('a'));
  EXPECT_TRUE(out->changed);
  // The template saw the source's commit.
  const Command& configure = runner_.commands.at(2);
  EXPECT_NE(std::find(configure.args.begin(), configure.args.end(), "-DCOMMIT=" + commit_of('a')),
            configure.args.end());
  // Not running: systemd-nspawn on the tree, as the build user for a default step.
  EXPECT_NE(std::find(configure.args.begin(), configure.args.end(), "--user=sai"), configure.args.end());
  EXPECT_NE(std::find(configure.args.begin(), configure.args.end(), "--chdir=/home/sai"), configure.args.end());
  const Command& tool = runner_.commands.at(3);
  EXPECT_EQ(std::find(tool.args.begin(), tool.args.end(), "--user=sai"), tool.args.end());

  auto conf = read_file_in_root(tree(), "etc/builder/conf");
  ASSERT_TRUE(conf.ok() && conf->has_value());
  EXPECT_EQ(**conf, "name=deb12\n");
  struct stat st {};
  ASSERT_EQ(::stat((tree() / "etc/builder/conf").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_TRUE(fs::exists(tree() / "etc/systemd/system/sai-builder.service"));
  EXPECT_EQ(fs::read_symlink(tree() / "etc/systemd/system/multi-user.target.wants/sai-builder.service"),
            "/etc/systemd/system/sai-builder.service");
}

TEST_F(PayloadTest, AnUnchangedApplyRerunsNothing) {
  ASSERT_TRUE(apply().ok());
  runner_.commands.clear();
  auto out = apply();
  ASSERT_TRUE(out.ok()) << out.error().message();
  EXPECT_TRUE(runner_.steps_run().empty());
  EXPECT_FALSE(out->changed);
  EXPECT_EQ(runner_.commands.size(), 2u);  // the two fetches
}

TEST_F(PayloadTest, ASourceAtTheRemotesCommitIsNotFetchedAgain) {
  // A real remote; the checkout's HEAD says it is at the remote's commit.
  const std::string head = use_real_remote();
  ASSERT_TRUE(apply().ok());
  fs::create_directories(tree() / "home/sai/src/builder/.git");
  std::ofstream(tree() / "home/sai/src/builder/.git/HEAD") << head << "\n";
  runner_.commands.clear();
  auto out = apply();
  ASSERT_TRUE(out.ok()) << out.error().message();
  EXPECT_TRUE(runner_.commands.empty());  // no helper, no step
  EXPECT_EQ(out->commits.at("builder"), head);
  EXPECT_FALSE(out->changed);

  // The remote moved: the helper runs.
  runner_.commits["builder"] = move_remote();
  ASSERT_TRUE(apply().ok());
  EXPECT_EQ(runner_.steps_run(), (std::vector<std::string>{"configure"}));
}

TEST_F(PayloadTest, ANewCommitRerunsOnlyTheStepsOfThatSource) {
  ASSERT_TRUE(apply().ok());
  runner_.commands.clear();
  runner_.commits["builder"] = commit_of('c');
  auto out = apply();
  ASSERT_TRUE(out.ok()) << out.error().message();
  EXPECT_EQ(runner_.steps_run(), (std::vector<std::string>{"configure"}));
  EXPECT_EQ(out->commits.at("builder"), commit_of('c'));
}

TEST_F(PayloadTest, AChangedStepDefinitionRerunsIt) {
  ASSERT_TRUE(apply().ok());
  runner_.commands.clear();
  layout_.spec.setup[1].env = {"JOBS=4"};
  ASSERT_TRUE(apply().ok());
  EXPECT_EQ(runner_.steps_run(), (std::vector<std::string>{"tool"}));
}

TEST_F(PayloadTest, AFailingStepStopsThePayloadCarriesItsOutputAndRerunsNextTime) {
  runner_.fail_with["configure"] = 2;
  std::vector<std::string> failures;
  auto out = apply(&failures);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.error().message().find("setup step \"configure\" exited with status 2"), std::string::npos)
      << out.error().message();
  EXPECT_NE(out.error().message().find("step output for configure"), std::string::npos);
  ASSERT_EQ(failures.size(), 1u);
  // The later step and the services were not reached.
  EXPECT_EQ(runner_.steps_run(), (std::vector<std::string>{"configure"}));
  EXPECT_FALSE(fs::exists(tree() / "etc/systemd/system/sai-builder.service"));

  runner_.fail_with.clear();
  runner_.commands.clear();
  ASSERT_TRUE(apply().ok());
  EXPECT_EQ(runner_.steps_run(), (std::vector<std::string>{"configure", "tool"}));
}

TEST_F(PayloadTest, FilesAreRewrittenWhenChangedOnDiskAndRemovedWhenUndeclared) {
  ASSERT_TRUE(apply().ok());
  ASSERT_TRUE(write_file_in_root(tree(), "etc/builder/conf", "edited by hand\n", 0666).ok());
  auto out = apply();
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE(out->changed);
  EXPECT_EQ(read_file_in_root(tree(), "etc/builder/conf")->value_or(""), "name=deb12\n");
  struct stat st {};
  ASSERT_EQ(::stat((tree() / "etc/builder/conf").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);

  layout_.spec.files.clear();
  layout_.spec.services.clear();
  ASSERT_TRUE(apply().ok());
  EXPECT_FALSE(fs::exists(tree() / "etc/builder/conf"));
  EXPECT_FALSE(fs::exists(tree() / "etc/systemd/system/sai-builder.service"));
  EXPECT_FALSE(fs::is_symlink(tree() / "etc/systemd/system/multi-user.target.wants/sai-builder.service"));
}

TEST_F(PayloadTest, AFileOwnedByAnUnknownUserIsAnError) {
  layout_.spec.files[0].owner = "nobody-here";
  auto out = apply();
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().message(), "file /etc/builder/conf: the container has no user \"nobody-here\"");
}

TEST_F(PayloadTest, AFailedFetchNamesTheSourceWithoutCredentials) {
  class FailingFetch final : public ProcessRunner {
   public:
    Result<ProcessResult> run(const Command&) override {
      ProcessResult r;
      r.exit_code = 1;
      r.err = "git: fetch: unexpected http status code: 404\n";
      return r;
    }
  } failing;
  layout_.spec.sources[0].url = "https://ci:s3cret@git.example/builder.git";
  auto out = applier(failing).apply(target(), {});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().message(),
            "source \"builder\" (https://ci:***@git.example/builder.git main): git: fetch: unexpected http status "
            "code: 404");
}

// The build user's home gets files owned by root from a step as root: the
// warning names the step and a file; what was there before, and CMake's
// install manifest, are not counted.
TEST_F(PayloadTest, AStepAsRootThatLeavesRootsFilesInTheBuildUsersHomeIsNamed) {
  fs::create_directories(tree() / "home/sai/src/build");
  std::ofstream(tree() / "home/sai/src/old.o") << "from before\n";
  runner_.effects["tool"] = [this] {
    std::ofstream(tree() / "home/sai/src/build/install_manifest.txt") << "/usr/local/lib/libx.so\n";
    std::ofstream(tree() / "home/sai/src/build/libx.so") << "rebuilt as root\n";
  };
  auto out = apply();
  ASSERT_TRUE(out.ok()) << out.error().message();
  ASSERT_EQ(out->warnings.size(), 1u);
  EXPECT_EQ(out->warnings[0].rfind("setup step \"tool\" ran as root and left 1 file owned by root under /home/sai "
                                   "(/home/sai/src/build/libx.so): a later step as sai cannot change or remove it.",
                                   0),
            0u)
      << out->warnings[0];

  // A step as sai is not looked at, and a rerun that adds nothing says nothing.
  runner_.effects.clear();
  layout_.spec.setup[1].env = {"AGAIN=1"};
  out = apply();
  ASSERT_TRUE(out.ok()) << out.error().message();
  EXPECT_TRUE(out->warnings.empty());
}

TEST(FilesOwnedBy, CountsWithoutFollowingSymlinks) {
  test::TempDir tmp;
  fs::create_directories(tmp.path() / "home/a/b");
  std::ofstream(tmp.path() / "home/a/b/f") << "x";
  fs::create_symlink("/etc", tmp.path() / "home/a/etc");
  auto owned = files_owned_by(tmp.path() / "home", ::getuid(), 2);
  EXPECT_EQ(owned.count, 4u);  // a, a/b, a/b/f, a/etc (the link itself)
  EXPECT_EQ(owned.paths.size(), 2u);
  EXPECT_EQ(files_owned_by(tmp.path() / "missing", ::getuid(), 2).count, 0u);
}

TEST(Heartbeat, NamesTheStepItsOwnElapsedTimeTheCountAndTheLastLine) {
  using std::chrono::milliseconds;
  EXPECT_EQ(format_elapsed(milliseconds(45'900)), "45 s");
  EXPECT_EQ(format_elapsed(milliseconds(130'000)), "2 m 10 s");
  EXPECT_EQ(format_elapsed(milliseconds(3'720'000)), "1 h 02 m");
  EXPECT_EQ(format_heartbeat("lws-build", milliseconds(130'000), 4312, "[ 61%] Building C object x.o"),
            "lws-build: 2 m 10 s, 4,312 lines, last: [ 61%] Building C object x.o");
  EXPECT_EQ(format_heartbeat("quiet", milliseconds(30'000), 0, ""), "quiet: 30 s, no output yet");
  EXPECT_EQ(format_heartbeat("one", milliseconds(1'000), 1, "x"), "one: 1 s, 1 line, last: x");
  // A long line is cut on a character boundary.
  const std::string long_line = std::string(99, 'a') + "\xc3\xa9" + "tail";
  EXPECT_EQ(format_heartbeat("s", milliseconds(0), 1'234'567, long_line),
            "s: 0 s, 1,234,567 lines, last: " + std::string(99, 'a') + "\u2026");
}

TEST(UnitStateParse, ReadsSystemctlShow) {
  auto st = parse_unit_state("ActiveState=failed\nSubState=failed\nResult=exit-code\nNRestarts=3\nOther=x\n");
  EXPECT_EQ(st.active, "failed");
  EXPECT_EQ(st.restarts, 3u);
  EXPECT_EQ(st.describe(), "failed, result exit-code");
  EXPECT_EQ(parse_unit_state("ActiveState=activating\nSubState=auto-restart\nResult=success\n").describe(),
            "activating (auto-restart)");
}

// A running container's services, answered by a scripted systemd.
class ScriptedSystemd final : public ProcessRunner {
 public:
  Result<ProcessResult> run(const Command& c) override {
    ProcessResult r;
    r.exit_code = 0;
    auto dash = std::find(c.args.begin(), c.args.end(), "--");
    std::vector<std::string> argv(dash == c.args.end() ? c.args.begin() : dash + 1, c.args.end());
    if (argv.empty()) return r;
    calls.push_back(argv[0] + (argv.size() > 1 ? " " + argv[1] : ""));
    if (argv[0] == "systemctl" && argv[1] == "show") {
      const std::string state = states.size() > 1 ? states.front() : states.back();
      if (states.size() > 1) states.erase(states.begin());
      r.out = state;
    } else if (argv[0] == "journalctl") {
      r.out = "builder: cannot parse /etc/sai/builder/conf\nbuilder: exiting\n";
    }
    return r;
  }
  std::vector<std::string> states;  // systemctl show answers, in turn; the last one stays
  std::vector<std::string> calls;
};

constexpr const char* kActive = "ActiveState=active\nSubState=running\nResult=success\nNRestarts=0\n";
constexpr const char* kFailed = "ActiveState=failed\nSubState=failed\nResult=exit-code\nNRestarts=0\n";

TEST_F(PayloadTest, AServiceThatFailsAfterItsRestartFailsThePayloadWithItsJournalAndIsStartedNextTime) {
  const PayloadOptions options = services_only(std::chrono::milliseconds(50));
  ScriptedSystemd systemd;
  auto run = [&] { return applier(systemd, options).apply(target(4242), {}); };
  systemd.states = {kActive, kFailed};
  auto out = run();
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().message(),
            "service sai-builder.service did not stay up after restart: failed, result exit-code. Its journal:\n"
            "builder: cannot parse /etc/sai/builder/conf\nbuilder: exiting");

  // Nothing changed, but the service is down: it is started, and stays up.
  systemd.calls.clear();
  systemd.states = {kFailed, kActive};
  out = run();
  ASSERT_TRUE(out.ok()) << out.error().message();
  EXPECT_NE(std::find(systemd.calls.begin(), systemd.calls.end(), "systemctl start"), systemd.calls.end());
  EXPECT_EQ(std::find(systemd.calls.begin(), systemd.calls.end(), "systemctl restart"), systemd.calls.end());

  // Up and unchanged: only asked, never touched.
  systemd.calls.clear();
  systemd.states = {kActive};
  out = run();
  ASSERT_TRUE(out.ok()) << out.error().message();
  EXPECT_EQ(systemd.calls, (std::vector<std::string>{"systemctl show"}));
  EXPECT_FALSE(out->changed);
}

TEST_F(PayloadTest, AServiceInARestartLoopIsAFailure) {
  const PayloadOptions options = services_only(std::chrono::milliseconds(200));
  ScriptedSystemd systemd;
  systemd.states = {kActive, "ActiveState=activating\nSubState=auto-restart\nResult=exit-code\nNRestarts=1\n"};
  auto out = applier(systemd, options).apply(target(4242), {});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.error().message().find("did not stay up after restart: activating (auto-restart), result "
                                       "exit-code, restarted 1 time(s) by its Restart= policy"),
            std::string::npos)
      << out.error().message();
}

// plan's view of the payload, read only: what changed, what failed, what
// differs; with the remotes asked, the steps of a source that moved.
TEST_F(PayloadTest, PreviewListsWhatApplyWouldDoAndChangesNothing) {
  auto preview = [&](bool fetch) {
    auto last = state_->payload_status("deb12");
    EXPECT_TRUE(last.ok());
    auto p = applier().preview(target(), fetch, last.ok() ? *last : std::nullopt);
    EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.error().message());
    std::vector<std::string> out;
    if (p.ok()) {
      for (const auto& i : p->items) out.push_back(i.what + ": " + i.why);
    }
    return out;
  };
  // Nothing applied yet: everything is to do.
  EXPECT_EQ(preview(false), (std::vector<std::string>{
                                "source builder: not checked out yet", "source tools: not checked out yet",
                                "file /etc/builder/conf: missing", "setup configure: it has not run yet",
                                "setup tool: it has not run yet", "service sai-builder.service: not installed"}));
  EXPECT_TRUE(runner_.commands.empty());
  ASSERT_TRUE(apply().ok());
  EXPECT_TRUE(preview(false).empty());

  // A changed definition, a file edited by hand, a link removed.
  layout_.spec.setup[1].env = {"JOBS=4"};
  ASSERT_TRUE(write_file_in_root(tree(), "etc/builder/conf", "edited\n", 0640).ok());
  fs::remove(tree() / "etc/systemd/system/multi-user.target.wants/sai-builder.service");
  EXPECT_EQ(preview(false), (std::vector<std::string>{
                                "file /etc/builder/conf: its content differs", "setup tool: its definition changed",
                                "service sai-builder.service: not enabled (multi-user.target.wants)"}));
  ASSERT_TRUE(apply().ok());

  // A step that failed says so.
  runner_.fail_with["tool"] = 1;
  layout_.spec.setup[1].env = {"JOBS=2"};
  ASSERT_TRUE(state_->put_payload_status("deb12", {"failed", "setup tool", "boom", 1}).ok());
  ASSERT_FALSE(apply().ok());
  ASSERT_TRUE(state_->put_payload_status("deb12", {"failed", "setup tool", "boom", 1}).ok());
  EXPECT_EQ(preview(false), (std::vector<std::string>{"setup tool: it failed at the last apply"}));
  runner_.fail_with.clear();
  ASSERT_TRUE(apply().ok());
}

TEST_F(PayloadTest, PreviewWithFetchNamesTheStepsOfASourceThatMovedWithoutFetching) {
  const std::string first = use_real_remote();
  ASSERT_TRUE(apply().ok());
  const std::string second = move_remote();
  PayloadApplier payload = applier();
  const PayloadTarget t = target();
  auto quick = payload.preview(t, false, std::nullopt);
  ASSERT_TRUE(quick.ok()) << quick.error().message();
  EXPECT_TRUE(quick->items.empty());
  EXPECT_FALSE(quick->remotes_checked);
  runner_.commands.clear();
  auto asked = payload.preview(t, true, std::nullopt);
  ASSERT_TRUE(asked.ok()) << asked.error().message();
  ASSERT_EQ(asked->items.size(), 2u);
  EXPECT_EQ(asked->items[0].what + ": " + asked->items[0].why,
            "source builder: " + first.substr(0, 12) + " -> " + second.substr(0, 12) + " (the remote moved)");
  EXPECT_EQ(asked->items[1].what + ": " + asked->items[1].why, "setup configure: source builder moved");
  EXPECT_TRUE(runner_.commands.empty());  // no helper ran: nothing was fetched
}

TEST_F(PayloadTest, RebuildMarksAStepAndTheStepsAfterItAndCleansTheirSources) {
  layout_.spec.setup[1].cwd = "/home/sai/src/tools";  // tool works in the tools checkout
  ASSERT_TRUE(apply().ok());
  PayloadApplier payload = applier();
  auto marked = payload.request_rebuild(layout_.spec, "tool", true);
  ASSERT_TRUE(marked.ok()) << marked.error().message();
  EXPECT_EQ(*marked, (std::vector<std::string>{"tool"}));
  runner_.commands.clear();
  ASSERT_TRUE(apply().ok());
  EXPECT_EQ(runner_.steps_run(), (std::vector<std::string>{"tool"}));
  // Only the step's own source was synced with a clean asked for.
  size_t cleaned = 0;
  for (const auto& c : runner_.commands) {
    if (c.args.empty() || c.args[0] != "git-sync") continue;
    auto req = parse_git_sync_request(c.args.at(2));
    ASSERT_TRUE(req.ok());
    if (req->force_clean) {
      ++cleaned;
      EXPECT_EQ(req->source.name, "tools");
    }
  }
  EXPECT_EQ(cleaned, 1u);

  // All steps, without clean.
  marked = payload.request_rebuild(layout_.spec, "", false);
  ASSERT_TRUE(marked.ok());
  EXPECT_EQ(*marked, (std::vector<std::string>{"configure", "tool"}));
  runner_.commands.clear();
  ASSERT_TRUE(apply().ok());
  EXPECT_EQ(runner_.steps_run(), (std::vector<std::string>{"configure", "tool"}));
  // Then nothing again.
  runner_.commands.clear();
  ASSERT_TRUE(apply().ok());
  EXPECT_TRUE(runner_.steps_run().empty());

  auto unknown = payload.request_rebuild(layout_.spec, "bogus", false);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().message(), "deb12 has no setup step \"bogus\" (it has: configure, tool)");
}

// A source with clean: a dependent step that reruns for any reason (here a
// failed configure, then its fixed definition) gets a clean checkout first,
// and every step of that source reruns with it.
TEST_F(PayloadTest, ACleanSourceIsCleanedBeforeItsStepsRerunAndAllOfThemRerun) {
  layout_.spec.sources[0].clean = true;
  layout_.spec.setup[0].cwd = "/home/sai/src/builder";
  SetupStep build;
  build.name = "build";
  build.run = {"make", "build"};
  build.sources = {"builder"};
  build.cwd = "/home/sai/src/builder/build";
  layout_.spec.setup.insert(layout_.spec.setup.begin() + 1, build);
  // Depends on builder, works elsewhere: its rerun does not clean builder.
  SetupStep elsewhere;
  elsewhere.name = "elsewhere";
  elsewhere.run = {"make", "elsewhere"};
  elsewhere.sources = {"builder"};
  elsewhere.cwd = "/home/sai/src/tools";
  layout_.spec.setup.push_back(elsewhere);
  ASSERT_TRUE(apply().ok());
  EXPECT_TRUE(runner_.cleans.empty());  // a first checkout has nothing to clean

  // A poisoned configure: it fails; the source was cleaned before it ran.
  layout_.spec.setup[0].env = {"CC=broken"};
  runner_.fail_with["configure"] = 1;
  runner_.commands.clear();
  ASSERT_FALSE(apply().ok());
  EXPECT_EQ(runner_.cleans, (std::vector<std::string>{"builder"}));
  EXPECT_EQ(runner_.steps_run(), (std::vector<std::string>{"configure"}));

  // The fixed definition: cleaned again; configure and the later steps of
  // builder rerun (not tool, of tools).
  layout_.spec.setup[0].env.clear();
  runner_.fail_with.clear();
  runner_.cleans.clear();
  runner_.commands.clear();
  ASSERT_TRUE(apply().ok());
  EXPECT_EQ(runner_.cleans, (std::vector<std::string>{"builder"}));
  EXPECT_EQ(runner_.steps_run(), (std::vector<std::string>{"configure", "build", "elsewhere"}));

  // A step that only depends on builder reruns: builder stays as it is.
  layout_.spec.setup.back().env = {"X=1"};
  runner_.cleans.clear();
  runner_.commands.clear();
  ASSERT_TRUE(apply().ok());
  EXPECT_TRUE(runner_.cleans.empty());
  EXPECT_EQ(runner_.steps_run(), (std::vector<std::string>{"elsewhere"}));

  // Nothing to rerun: nothing is cleaned.
  runner_.cleans.clear();
  runner_.commands.clear();
  ASSERT_TRUE(apply().ok());
  EXPECT_TRUE(runner_.cleans.empty());
  EXPECT_TRUE(runner_.steps_run().empty());
}

TEST(UnitInstallDirs, WantedByAndRequiredByWithDefault) {
  EXPECT_EQ(unit_install_dirs("[Service]\nExecStart=/x\n"), (std::vector<std::string>{"multi-user.target.wants"}));
  EXPECT_EQ(unit_install_dirs("[Unit]\nWantedBy=ignored.target\n[Install]\n WantedBy = a.target b.target\n"
                              "RequiredBy=c.target\n# WantedBy=d.target\n"),
            (std::vector<std::string>{"a.target.wants", "b.target.wants", "c.target.requires"}));
}

TEST(StepFingerprint, DependsOnDefinitionAndSourceCommitsOnly) {
  SetupStep s;
  s.name = "build";
  s.run = {"make"};
  s.sources = {"a"};
  const std::map<std::string, std::string> c1 = {{"a", "1"}, {"b", "1"}};
  const std::map<std::string, std::string> c2 = {{"a", "1"}, {"b", "2"}};
  const std::map<std::string, std::string> c3 = {{"a", "2"}, {"b", "1"}};
  EXPECT_EQ(PayloadApplier::step_fingerprint(s, c1), PayloadApplier::step_fingerprint(s, c2));
  EXPECT_NE(PayloadApplier::step_fingerprint(s, c1), PayloadApplier::step_fingerprint(s, c3));
  SetupStep t = s;
  t.user = RunAs::kRoot;
  EXPECT_NE(PayloadApplier::step_fingerprint(s, c1), PayloadApplier::step_fingerprint(t, c1));
}

TEST(StepCommand, ARunningContainerIsEnteredThroughItsLeader) {
  test::TempDir tmp;
  fs::create_directories(tmp.path() / "etc");
  std::ofstream(tmp.path() / "etc/passwd") << "sai:x:883:65534::/home/sai:/bin/sh\n";
  ContainerLayout l;
  l.spec.name = "deb12";
  PayloadTarget t;
  t.layout = &l;
  t.tree = tmp.path();
  t.leader = 4242;
  SetupStep s;
  s.name = "build";
  s.run = {"make", "-j2"};
  s.cwd = "/home/sai/src";
  Command c = PayloadApplier::step_command(t, s, "/usr/bin/farmhand");
  EXPECT_EQ(c.path, "/usr/bin/farmhand");
  EXPECT_EQ(c.args, (std::vector<std::string>{"enter", "--target", "4242", "--cwd", "/home/sai/src", "--uid", "883",
                                              "--gid", "65534", "--", "make", "-j2"}));
  EXPECT_NE(std::find(c.env.begin(), c.env.end(), "HOME=/home/sai"), c.env.end());
  EXPECT_EQ(c.timeout, std::chrono::seconds(3600));
}

// A stopped container's step sees the container's binds, as it does booted.
TEST(StepCommand, AStoppedContainersStepGetsItsBinds) {
  test::TempDir tmp;
  ContainerLayout l;
  l.spec.name = "deb12";
  l.spec.binds = {{"/var/cache/ccache", "/var/cache/ccache", false}, {"/srv/ro", "", true}};
  PayloadTarget t;
  t.layout = &l;
  t.tree = tmp.path();
  t.host_root = "/prefix";
  SetupStep s;
  s.name = "build";
  s.run = {"make"};
  s.user = RunAs::kRoot;
  Command c = PayloadApplier::step_command(t, s, "/usr/bin/farmhand");
  EXPECT_NE(std::find(c.args.begin(), c.args.end(), "--bind=/prefix/var/cache/ccache:/var/cache/ccache"), c.args.end());
  EXPECT_NE(std::find(c.args.begin(), c.args.end(), "--bind-ro=/prefix/srv/ro:/srv/ro"), c.args.end());
}

}  // namespace
}  // namespace farmhand::provisioner
