// PosixProcessRunner against a real child process (tests/fixtures/fake_tool).
#include "common/process.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/log.h"

namespace farmhand {
namespace {

using namespace std::chrono_literals;

Command fake(std::vector<std::string> args) {
  Command c;
  c.path = FARMHAND_FAKE_TOOL;
  c.args = std::move(args);
  return c;
}

ProcessResult run_ok(const Command& c) {
  PosixProcessRunner runner;
  auto r = runner.run(c);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
  return r.ok() ? *r : ProcessResult{};
}

TEST(PosixProcessRunner, CapturesStdoutStderrAndExitCode) {
  auto r = run_ok(fake({"--out", "hello", "--err", "oops", "--exit", "3"}));
  EXPECT_EQ(r.out, "hello\n");
  EXPECT_EQ(r.err, "oops\n");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.signal, 0);
  EXPECT_FALSE(r.timed_out);
  EXPECT_FALSE(r.success());
  EXPECT_EQ(r.describe(), "exited with status 3");
}

TEST(PosixProcessRunner, ZeroExitIsSuccess) {
  auto r = run_ok(fake({"--out", "fine"}));
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(r.success());
  EXPECT_EQ(r.describe(), "exited with status 0");
}

TEST(PosixProcessRunner, ReportsDeathBySignal) {
  auto r = run_ok(fake({"--out", "before", "--signal", "15"}));
  EXPECT_EQ(r.signal, SIGTERM);
  EXPECT_EQ(r.out, "before\n");
  EXPECT_FALSE(r.success());
  EXPECT_EQ(r.describe(), "killed by signal 15 (Terminated)");
}

TEST(PosixProcessRunner, TimeoutKillsTheProcessQuickly) {
  auto c = fake({"--out", "started", "--sleep-ms", "20000", "--out", "never"});
  c.timeout = 200ms;
  const auto start = std::chrono::steady_clock::now();
  auto r = run_ok(c);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.signal, SIGKILL);
  EXPECT_EQ(r.out, "started\n");
  EXPECT_FALSE(r.success());
  EXPECT_EQ(r.describe(), "timed out");
  EXPECT_GE(elapsed, 150ms);  // poll() rounds the deadline to whole ms
  EXPECT_LT(elapsed, 5s);
}

// A quiet program still gets its ticks: heartbeats do not wait for output.
TEST(PosixProcessRunner, OnTickFiresWhileAProgramIsQuiet) {
  auto c = fake({"--sleep-ms", "600", "--out", "done"});
  int ticks = 0;
  c.on_tick = [&] { ++ticks; };
  c.tick_interval = 100ms;
  auto r = run_ok(c);
  EXPECT_TRUE(r.success());
  EXPECT_EQ(r.out, "done\n");
  EXPECT_GE(ticks, 3);
  EXPECT_LE(ticks, 7);
}

// Ticks do not stand in for the deadline: a program that outlives its
// timeout is killed though ticks keep waking the loop.
TEST(PosixProcessRunner, TicksDoNotDelayTheTimeout) {
  auto c = fake({"--sleep-ms", "20000"});
  int ticks = 0;
  c.on_tick = [&] { ++ticks; };
  c.tick_interval = 50ms;
  c.timeout = 400ms;
  const auto start = std::chrono::steady_clock::now();
  auto r = run_ok(c);
  EXPECT_TRUE(r.timed_out);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_GE(ticks, 2);
}

// A program that closes its output but keeps running must still be killed at
// the deadline: the timeout is not only a limit on reading the pipes.
TEST(PosixProcessRunner, TimeoutAppliesAfterOutputIsClosed) {
  Command c;
  c.path = "/bin/sh";
  c.args = {"-c", "exec >&- 2>&-; exec sleep 20"};
  c.env = minimal_env();
  c.timeout = 300ms;
  const auto start = std::chrono::steady_clock::now();
  auto r = run_ok(c);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.signal, SIGKILL);
  EXPECT_LT(elapsed, 5s);
}

TEST(PosixProcessRunner, NoTimeoutWhenProgramFinishesInTime) {
  auto c = fake({"--sleep-ms", "50", "--out", "done"});
  c.timeout = 10s;
  auto r = run_ok(c);
  EXPECT_FALSE(r.timed_out);
  EXPECT_TRUE(r.success());
  EXPECT_EQ(r.out, "done\n");
}

TEST(PosixProcessRunner, EnvironmentIsExactlyWhatIsGiven) {
  auto c = fake({"--env", "FARMHAND_TEST_VAR", "--env", "PATH", "--env", "HOME"});
  c.env = {"FARMHAND_TEST_VAR=a value with spaces"};
  auto r = run_ok(c);
  EXPECT_EQ(r.out, "a value with spaces\n<unset>\n<unset>\n");
}

TEST(PosixProcessRunner, MinimalEnvHasPathLangAndExtras) {
  auto c = fake({"--env", "PATH", "--env", "LANG", "--env", "EXTRA", "--env", "HOME"});
  c.env = minimal_env({"EXTRA=1"});
  auto r = run_ok(c);
  EXPECT_EQ(r.out,
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nC.UTF-8\n1\n<unset>\n");
}

TEST(PosixProcessRunner, ArgvIsPassedVerbatimWithoutAShell) {
  auto r = run_ok(fake({"--args", "a b; rm -rf /", "$(id)", "`id`", "*", "", "'q'", "x\ny"}));
  EXPECT_EQ(r.out, "fake_tool\n--args\na b; rm -rf /\n$(id)\n`id`\n*\n\n'q'\nx\ny\n");
}

TEST(PosixProcessRunner, OnLineGetsEveryLineInOrderIncludingAFinalPartialLine) {
  Command c;
  c.path = "/bin/sh";
  c.args = {"-c", "printf 'one\\ntwo\\n'; printf 'three\\nfour'"};
  c.env = minimal_env();
  std::vector<std::string> lines;
  c.on_line = [&](std::string_view l) { lines.emplace_back(l); };
  auto r = run_ok(c);
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "two", "three", "four"}));
  EXPECT_EQ(r.out, "one\ntwo\nthree\nfour");
}

TEST(PosixProcessRunner, OnLineSeesManyLinesInOrder) {
  auto c = fake({"--lines", "2000"});
  std::vector<std::string> lines;
  c.on_line = [&](std::string_view l) { lines.emplace_back(l); };
  auto r = run_ok(c);
  ASSERT_EQ(lines.size(), 2000u);
  for (size_t i = 0; i < lines.size(); ++i) ASSERT_EQ(lines[i], "line " + std::to_string(i));
  // 10 lines of 7 bytes, 90 of 8, 900 of 9, 1000 of 10.
  EXPECT_EQ(r.out.size(), 70u + 720u + 8100u + 10000u);
}

TEST(PosixProcessRunner, CaptureLimitKeepsTheTail) {
  auto c = fake({"--lines", "1000"});
  c.capture_limit = 18;
  auto r = run_ok(c);
  EXPECT_EQ(r.out, "line 998\nline 999\n");
}

TEST(PosixProcessRunner, CaptureLimitBoundsLargeOutput) {
  auto c = fake({"--bytes", "1000000"});
  c.capture_limit = 1000;
  auto r = run_ok(c);
  EXPECT_EQ(r.out, std::string(1000, 'x'));
  EXPECT_TRUE(r.success());
}

TEST(PosixProcessRunner, LargeOutputIsCapturedCompletely) {
  auto r = run_ok(fake({"--bytes", "300000"}));
  EXPECT_EQ(r.out.size(), 300000u);
}

TEST(PosixProcessRunner, RefusesARelativePath) {
  PosixProcessRunner runner;
  Command c;
  c.path = "fake_tool";
  auto r = runner.run(c);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "refusing to run 'fake_tool': not an absolute path");
  c.path = "";
  r = runner.run(c);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "refusing to run '': not an absolute path");
}

TEST(PosixProcessRunner, MissingProgramIsAnError) {
  PosixProcessRunner runner;
  Command c;
  c.path = "/nonexistent/farmhand-no-such-tool";
  auto r = runner.run(c);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(),
            "cannot run /nonexistent/farmhand-no-such-tool: No such file or directory");
}

TEST(FindProgram, FindsInSearchPathInOrder) {
  const std::string tool = FARMHAND_FAKE_TOOL;
  const std::string dir = tool.substr(0, tool.rfind('/'));
  auto r = find_program("fake_tool", "/nonexistent:" + dir + ":/usr/bin");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(*r, tool);
  auto sh = find_program("sh", "::/bin");
  ASSERT_TRUE(sh.ok());
  EXPECT_EQ(*sh, "/bin/sh");
}

TEST(FindProgram, AbsoluteNamesAreCheckedAsIs) {
  auto r = find_program(FARMHAND_FAKE_TOOL, "/nonexistent");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, FARMHAND_FAKE_TOOL);
  auto dir = find_program("/tmp");
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.error().message(), "'/tmp' is not an executable file");
}

TEST(FindProgram, MissingProgramNamesTheSearchPath) {
  auto r = find_program("farmhand-no-such-tool", "/a:/b");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "'farmhand-no-such-tool' was not found in /a:/b");
}

TEST(CommandDisplay, QuotesOnlyWhatNeedsQuoting) {
  Command c;
  c.path = "/usr/bin/tool";
  c.args = {"plain-arg_1.0", "--opt=a,b:c+d@e%f", "a b", "it's", "", "$(id)"};
  EXPECT_EQ(c.display(), "/usr/bin/tool plain-arg_1.0 --opt=a,b:c+d@e%f 'a b' 'it'\\''s' '' '$(id)'");
}

TEST(CommandDisplay, RedactsCommandSecrets) {
  Command c;
  c.path = "/usr/bin/git";
  c.args = {"clone", "https://user:tok3nVALUE@example.org/r.git", "tok3nVALUE"};
  c.secrets = {"tok3nVALUE", ""};
  // A redacted argument is quoted: an unquoted *** would be a glob.
  EXPECT_EQ(c.display(), "/usr/bin/git clone 'https://user:***@example.org/r.git' '***'");
}

TEST(CommandDisplay, RedactsSecretsThatNeedQuoting) {
  Command c;
  c.path = "/usr/bin/tool";
  c.args = {"--password=qu'ote ZZ"};
  c.secrets = {"qu'ote ZZ"};
  const std::string shown = c.display();
  EXPECT_EQ(shown.find("qu"), std::string::npos) << shown;
  EXPECT_EQ(shown.find("ote"), std::string::npos) << shown;
  EXPECT_EQ(shown.find("ZZ"), std::string::npos) << shown;
  EXPECT_EQ(shown, "/usr/bin/tool '--password=***'");
}

TEST(CommandDisplay, RedactsGloballyRegisteredSecrets) {
  log::add_secret("process-test-global-s3cret");
  Command c;
  c.path = "/usr/bin/tool";
  c.args = {"--key", "process-test-global-s3cret"};
  EXPECT_EQ(c.display(), "/usr/bin/tool --key '***'");
}

TEST(CommandError, NamesCommandOutcomeAndStderrTail) {
  Command c = fake({"--err", "bad thing"});
  c.path = "/usr/bin/tool";
  c.args = {"x", "y z"};
  ProcessResult r;
  r.exit_code = 2;
  r.out = "ignored\n";
  r.err = "warning\nbad thing\n\n  ";
  EXPECT_EQ(command_error(c, r).message(),
            "/usr/bin/tool x 'y z' exited with status 2:\nwarning\nbad thing");
}

TEST(CommandError, FallsBackToStdoutAndRedacts) {
  Command c;
  c.path = "/usr/bin/tool";
  c.args = {"--token", "SeCrEt"};
  c.secrets = {"SeCrEt"};
  ProcessResult r;
  r.signal = SIGKILL;
  r.out = "auth with SeCrEt failed\n";
  EXPECT_EQ(command_error(c, r).message(),
            "/usr/bin/tool --token '***' killed by signal 9 (Killed):\nauth with *** failed");
}

TEST(CommandError, NoOutputNoColon) {
  Command c;
  c.path = "/usr/bin/tool";
  ProcessResult r;
  r.timed_out = true;
  EXPECT_EQ(command_error(c, r).message(), "/usr/bin/tool timed out");
}

TEST(CommandError, KeepsOnlyTheLast2000BytesOfOutput) {
  Command c;
  c.path = "/usr/bin/tool";
  ProcessResult r;
  r.exit_code = 1;
  r.err = "HEAD" + std::string(3000, 'e');
  EXPECT_EQ(command_error(c, r).message(),
            "/usr/bin/tool exited with status 1:\n" + std::string(2000, 'e'));
}

}  // namespace
}  // namespace farmhand
