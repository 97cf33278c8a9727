// What `farmhand apply` prints while a payload step runs, captured from
// ConsoleProgress: the running step's own label from the moment it starts,
// heartbeats while it is quiet, and a running count past the output limit.
// The steps and the clock are simulated; the applier and printer are real.
#include "agent/progress.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "common/clock.h"
#include "provisioner/payload.h"
#include "tests/unit/temp_dir.h"

namespace farmhand::agent {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using provisioner::PayloadApplier;

// Plays each step on a simulated clock: "quiet" prints nothing for 30 s,
// "chatty" prints 5,000 lines over 50 s; the clock advances 1 s per tick.
class SimulatedSteps final : public ProcessRunner {
 public:
  explicit SimulatedSteps(FakeClock& clock) : clock_(clock) {}
  Result<ProcessResult> run(const Command& c) override {
    const std::string step = c.args.empty() ? "" : c.args.back();
    auto tick = [&] {
      clock_.advance(1s);
      if (c.on_tick) c.on_tick();
    };
    if (step == "quiet") {
      for (int i = 0; i < 30; ++i) tick();
    } else if (step == "chatty") {
      for (int i = 0; i < 5000; ++i) {
        if (c.on_line) c.on_line("[" + std::to_string(i * 100 / 5000) + "%] Building C object obj" + std::to_string(i) + ".o");
        if (i % 100 == 99) tick();
      }
    }
    ProcessResult r;
    r.exit_code = 0;
    return r;
  }

 private:
  FakeClock& clock_;
};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

TEST(ConsoleProgress, ARunningStepShowsItsOwnLabelHeartbeatsAndItsLineCount) {
  test::TempDir tmp;
  fs::create_directories(tmp.path() / "tree/etc");
  std::ofstream(tmp.path() / "tree/etc/passwd") << "root:x:0:0::/root:/bin/sh\nsai:x:0:0::/home/sai:/bin/sh\n";
  auto st = provisioner::StateStore::open((tmp.path() / "state.db").string());
  ASSERT_TRUE(st.ok()) << st.error().message();
  provisioner::ContainerLayout layout;
  layout.spec.name = "deb12";
  provisioner::SetupStep quiet;
  quiet.name = "lws-configure";
  quiet.run = {"quiet"};
  provisioner::SetupStep chatty;
  chatty.name = "lws-build";
  chatty.run = {"chatty"};
  layout.spec.setup = {quiet, chatty};

  FakeClock clock;
  SimulatedSteps runner(clock);
  provisioner::PayloadOptions options;
  options.clock = &clock;
  PayloadApplier applier(*st, runner, "/usr/bin/farmhand", tmp.path() / "mnt", options);

  FILE* out = std::tmpfile();
  ASSERT_NE(out, nullptr);
  ConsoleProgress progress(out);
  provisioner::PayloadHooks hooks;
  hooks.started = [&](const std::string& what) { progress.step_started("deb12", what); };
  hooks.output = [&](std::string_view line) { progress.step_output("deb12", line); };
  hooks.heartbeat = [&](std::string_view text) { progress.step_heartbeat("deb12", text); };
  hooks.step = [&](const std::string& what, std::chrono::milliseconds elapsed, const Status& s) {
    progress.step_finished("deb12", what, elapsed, s);
  };
  provisioner::PayloadTarget target;
  target.layout = &layout;
  target.tree = tmp.path() / "tree";
  auto applied = applier.apply(target, hooks);
  ASSERT_TRUE(applied.ok()) << applied.error().message();

  std::rewind(out);
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, out)) > 0) text.append(buf, n);
  std::fclose(out);
  const auto lines = lines_of(text);

  // The quiet step: a heartbeat every 10 s, with its own name and time.
  const std::vector<std::string> quiet_beats = {"[deb12] lws-configure: 10 s, no output yet",
                                                "[deb12] lws-configure: 20 s, no output yet",
                                                "[deb12] lws-configure: 30 s, no output yet"};
  std::vector<std::string> beats;
  for (const auto& l : lines) {
    if (l.starts_with("[deb12] lws-configure:")) beats.push_back(l);
  }
  EXPECT_EQ(beats, quiet_beats) << text;

  // The chatty step: past the 200 lines shown, heartbeats count the rest.
  std::vector<std::string> counts;
  for (const auto& l : lines) {
    if (l.starts_with("[deb12] lws-build:")) counts.push_back(l);
  }
  // (the 200 lines and the notice that follows them are shown at 2 s)
  EXPECT_EQ(counts, (std::vector<std::string>{
                        "[deb12] lws-build: 12 s, 1,200 lines, last: [23%] Building C object obj1199.o",
                        "[deb12] lws-build: 22 s, 2,200 lines, last: [43%] Building C object obj2199.o",
                        "[deb12] lws-build: 32 s, 3,200 lines, last: [63%] Building C object obj3199.o",
                        "[deb12] lws-build: 42 s, 4,200 lines, last: [83%] Building C object obj4199.o"}))
      << text;

  // Nothing of the first step is shown while the second runs, and each
  // finished line carries the step's own elapsed time.
  bool in_build = false;
  for (const auto& l : lines) {
    if (l.starts_with("[deb12] setup lws-configure  done in")) in_build = true;
    if (in_build) {
      EXPECT_EQ(l.find("lws-configure:"), std::string::npos) << l;
    }
  }
  EXPECT_NE(std::find(lines.begin(), lines.end(), "[deb12] setup lws-configure  done in 30.00 s"), lines.end()) << text;
  EXPECT_NE(std::find(lines.begin(), lines.end(), "[deb12] setup lws-build  done in 50.00 s"), lines.end()) << text;
}

}  // namespace
}  // namespace farmhand::agent
