// Provisioner::apply with fakes: a temp host root, a scripted process
// runner (cp really copies), an in-memory systemd and a fake clock. What is
// checked here is the orchestration: the order of the steps, one failing
// container not stopping the others, the journal, and resuming after a step
// that did not finish. The steps themselves are tested as root by
// tests/integration/provision_test.sh.
#include "provisioner/provisioner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "common/clock.h"
#include "tests/unit/fakes.h"
#include "tests/unit/temp_dir.h"

namespace farmhand::provisioner {
namespace {

namespace fs = std::filesystem;

// Records what apply reports, as "container: step" lines.
class RecordingReporter final : public ApplyReporter {
 public:
  void step_started(const std::string& c, const std::string& step) override { started.push_back(c + ": " + step); }
  void step_output(const std::string&, std::string_view) override {}
  void step_finished(const std::string& c, const std::string& step, std::chrono::milliseconds elapsed,
                     const Status& result) override {
    finished.push_back(c + ": " + step + (result ? "" : " FAILED"));
    elapsed_ms.push_back(elapsed.count());
  }
  std::vector<std::string> started;
  std::vector<std::string> finished;
  std::vector<int64_t> elapsed_ms;
  // The steps of one container, in order.
  std::vector<std::string> of(const std::string& c) const {
    std::vector<std::string> out;
    for (const auto& s : started) {
      if (s.rfind(c + ": ", 0) == 0) out.push_back(s.substr(c.size() + 2));
    }
    return out;
  }
};

ContainerSpec macvlan(const std::string& name) {
  ContainerSpec s;
  s.name = name;
  s.distro = "debian";
  s.release = "bookworm";
  s.arch = "amd64";
  s.network.mode = NetworkMode::kMacvlan;
  s.network.link = "eth0";
  return s;
}

class ProvisionerTest : public testing::Test {
 protected:
  void SetUp() override {
    auto book = RecipeBook::builtin();
    ASSERT_TRUE(book) << book.error().message();
    recipes_.emplace(std::move(*book));
    // `cp -a --reflink=never -- BASE PARTIAL` copies for real, unless told to fail.
    runner_.on["cp"] = [this](const Command& c, ProcessResult& r) {
      if (cp_fails_) {
        r.exit_code = 1;
        r.err = "cp: no space left on device\n";
        return;
      }
      const auto n = c.args.size();
      fs::copy(c.args[n - 2], c.args[n - 1], fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    };
  }

  AgentConfig config(std::vector<ContainerSpec> containers) {
    AgentConfig c;
    c.paths = {kDefaults.machines, kDefaults.state, kDefaults.cache, kDefaults.nspawn, kDefaults.systemd};
    c.pool = *Cidr::parse(kDefaults.pool);
    c.clone_method = CloneMethod::kCopy;
    c.containers = std::move(containers);
    return c;
  }

  Provisioner provisioner(std::vector<ContainerSpec> containers, SystemdControl* systemd) {
    return Provisioner(config(std::move(containers)), *recipes_, HostRoot(tmp_.path()), runner_, systemd, "host1",
                       clock_);
  }

  // A cached base tree for every container the plan creates, with the
  // build user already in it (as debootstrap and the recipe leave it).
  void make_base_images(Provisioner& p) {
    auto plan = p.plan();
    ASSERT_TRUE(plan) << plan.error().message();
    for (const auto& c : plan->changes) {
      if (!c.layout) continue;
      const std::string key = c.layout->base.key();
      const fs::path images = tmp_.path() / fs::path(kDefaults.cache).relative_path() / "images";
      fs::create_directories(images / key / "etc");
      std::ofstream(images / key / "etc/passwd") << "root:x:0:0::/root:/bin/sh\nsai:x:883:883::/home/sai:/bin/bash\n";
      std::ofstream(images / key / "etc/group") << "root:x:0:\nsai:x:883:\n";
      std::ofstream(images / key / "etc/machine-id") << "";
      std::ofstream(images / (key + ".json")) << R"({"key": ")" << key << R"("})";
    }
  }

  // The journal of the last apply, as "container: step status" lines.
  std::vector<std::string> journal(int64_t apply_id) {
    auto st = StateStore::open((tmp_.path() / fs::path(kDefaults.state).relative_path() / "state.db").string());
    EXPECT_TRUE(st);
    std::vector<std::string> out;
    auto entries = st->journal(apply_id);
    EXPECT_TRUE(entries);
    for (const auto& e : *entries) out.push_back(e.container + ": " + e.step + " " + e.status);
    return out;
  }

  test::TempDir tmp_;
  std::optional<RecipeBook> recipes_;
  test::ScriptedProcessRunner runner_;
  test::FakeSystemd systemd_;
  FakeClock clock_;
  bool cp_fails_ = false;
};

TEST_F(ProvisionerTest, ApplyCreatesEachContainerInStepOrderAndStartsIt) {
  auto p = provisioner({macvlan("a"), macvlan("b")}, &systemd_);
  make_base_images(p);
  RecordingReporter rep;
  auto out = p.apply(rep);
  ASSERT_TRUE(out) << out.error().message();
  ASSERT_TRUE(out->result) << out->result.error().message();
  for (const std::string name : {"a", "b"}) {
    const auto steps = rep.of(name);
    ASSERT_EQ(steps.size(), 5u) << name;
    EXPECT_EQ(steps[0].rfind("base debian/bookworm/amd64 (", 0), 0u) << steps[0];
    EXPECT_EQ(steps[0].find(": building"), std::string::npos) << "the base was cached: " << steps[0];
    EXPECT_EQ(steps[1], "clone (copy)");
    EXPECT_EQ(steps[2], "configure container");
    EXPECT_EQ(steps[3], "write host files");
    EXPECT_EQ(steps[4], "start systemd-nspawn@" + name + ".service");
    EXPECT_EQ(systemd_.state("systemd-nspawn@" + name + ".service"), "active");
    EXPECT_TRUE(fs::exists(tmp_.path() / "var/lib/machines" / name / "etc/passwd"));
  }
  // Every started step finished, in the same order, and none failed.
  EXPECT_EQ(rep.started, std::vector<std::string>(rep.finished.begin(), rep.finished.end()));
  auto status = p.status();
  ASSERT_TRUE(status);
  for (const auto& cs : *status) EXPECT_EQ(cs.state, ContainerState::kRunning) << cs.name;
}

TEST_F(ProvisionerTest, ApplyJournalsEveryStepWithItsOutcome) {
  auto p = provisioner({macvlan("a")}, &systemd_);
  make_base_images(p);
  RecordingReporter rep;
  auto out = p.apply(rep);
  ASSERT_TRUE(out && out->result);
  const auto j = journal(1);
  ASSERT_EQ(j.size(), 5u);
  EXPECT_EQ(j[1], "a: clone (copy) done");
  EXPECT_EQ(j[4], "a: start systemd-nspawn@a.service done");
  // Step times come from the injected clock, which did not move.
  for (auto ms : rep.elapsed_ms) EXPECT_EQ(ms, 0);
}

TEST_F(ProvisionerTest, OneFailingContainerDoesNotStopTheOthers) {
  systemd_.fail_start.insert("systemd-nspawn@a.service");
  auto p = provisioner({macvlan("a"), macvlan("b")}, &systemd_);
  make_base_images(p);
  RecordingReporter rep;
  auto out = p.apply(rep);
  ASSERT_TRUE(out) << out.error().message();
  ASSERT_FALSE(out->result);
  EXPECT_EQ(out->result.error().message(), "1 container(s) failed: \"a\"");
  EXPECT_NE(std::find(rep.finished.begin(), rep.finished.end(), "a: start systemd-nspawn@a.service FAILED"),
            rep.finished.end());
  EXPECT_EQ(rep.of("b").size(), 5u);
  auto status = p.status();
  ASSERT_TRUE(status);
  std::map<std::string, ContainerState> states;
  for (const auto& cs : *status) states[cs.name] = cs.state;
  EXPECT_EQ(states["a"], ContainerState::kCreating);  // never recorded ready
  EXPECT_EQ(states["b"], ContainerState::kRunning);
}

TEST_F(ProvisionerTest, AnApplyResumesAfterAStepThatDidNotFinish) {
  cp_fails_ = true;
  {
    auto p = provisioner({macvlan("a")}, &systemd_);
    make_base_images(p);
    RecordingReporter rep;
    auto out = p.apply(rep);
    ASSERT_TRUE(out);
    ASSERT_FALSE(out->result);
    EXPECT_EQ(rep.of("a").size(), 2u) << "nothing runs after the failed clone";
    EXPECT_EQ(journal(1).back(), "a: clone (copy) failed");
    EXPECT_FALSE(fs::exists(tmp_.path() / "var/lib/machines/a"));
  }
  cp_fails_ = false;
  auto p = provisioner({macvlan("a")}, &systemd_);
  auto plan = p.plan();
  ASSERT_TRUE(plan);
  ASSERT_TRUE(plan->has_work()) << "the container left creating is planned again";
  RecordingReporter rep;
  auto out = p.apply(rep);
  ASSERT_TRUE(out && out->result) << (out ? out->result.error().message() : out.error().message());
  EXPECT_EQ(rep.of("a").back(), "start systemd-nspawn@a.service");
  EXPECT_EQ(journal(2).back(), "a: start systemd-nspawn@a.service done");
}

TEST_F(ProvisionerTest, ASecondApplyDoesNothing) {
  auto p = provisioner({macvlan("a")}, &systemd_);
  make_base_images(p);
  RecordingReporter first;
  ASSERT_TRUE(p.apply(first));
  runner_.clear();
  systemd_.clear_calls();
  RecordingReporter second;
  auto out = p.apply(second);
  ASSERT_TRUE(out && out->result);
  EXPECT_FALSE(out->plan.has_work());
  EXPECT_TRUE(second.started.empty());
  EXPECT_TRUE(runner_.ran().empty());
  EXPECT_TRUE(systemd_.calls().empty());
}

TEST_F(ProvisionerTest, DestroysComeFirstAndForgetTheContainer) {
  {
    auto p = provisioner({macvlan("a"), macvlan("b")}, &systemd_);
    make_base_images(p);
    RecordingReporter rep;
    ASSERT_TRUE(p.apply(rep));
  }
  auto p = provisioner({macvlan("a"), macvlan("c")}, &systemd_);
  make_base_images(p);
  RecordingReporter rep;
  auto out = p.apply(rep);
  ASSERT_TRUE(out && out->result);
  ASSERT_FALSE(rep.started.empty());
  EXPECT_EQ(rep.started[0], "b: stop systemd-nspawn@b.service");
  EXPECT_EQ(rep.of("b"), (std::vector<std::string>{"stop systemd-nspawn@b.service", "remove host files",
                                                   "remove root filesystem"}));
  EXPECT_EQ(rep.of("c").size(), 5u);
  EXPECT_FALSE(fs::exists(tmp_.path() / "var/lib/machines/b"));
  EXPECT_EQ(systemd_.state("systemd-nspawn@b.service"), "inactive");
  auto status = p.status();
  ASSERT_TRUE(status);
  for (const auto& cs : *status) EXPECT_NE(cs.name, "b");
}

TEST_F(ProvisionerTest, WithoutSystemdNothingIsStarted) {
  auto p = provisioner({macvlan("a")}, nullptr);
  make_base_images(p);
  RecordingReporter rep;
  auto out = p.apply(rep);
  ASSERT_TRUE(out && out->result);
  EXPECT_EQ(rep.of("a"), (std::vector<std::string>{rep.of("a")[0], "clone (copy)", "configure container",
                                                   "write host files"}));
  auto status = p.status();
  ASSERT_TRUE(status);
  ASSERT_EQ(status->size(), 1u);
  EXPECT_EQ((*status)[0].state, ContainerState::kReady);  // nothing says whether it runs
}

TEST_F(ProvisionerTest, AControlOfAnUnknownContainerIsRefused) {
  auto p = provisioner({macvlan("a")}, &systemd_);
  auto s = p.control("nope", UnitAction::kStart);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message(), "no container named \"nope\" is managed by farmhand");
  EXPECT_TRUE(systemd_.calls().empty());
}

TEST(ContainerStateTable, EveryStateHasOneNameThatParsesBack) {
  for (auto s : {ContainerState::kPlanned, ContainerState::kCreating, ContainerState::kReady, ContainerState::kRunning,
                 ContainerState::kStopped, ContainerState::kDestroying, ContainerState::kMissing}) {
    EXPECT_EQ(parse_container_state(to_string(s)), s) << to_string(s);
  }
  EXPECT_EQ(parse_container_state("unknown"), std::nullopt);
}

}  // namespace
}  // namespace farmhand::provisioner
