// The daemon without root: a temp HostRoot, a scripted process runner, a
// fake systemd, a fake device source, a FakeClock, and a small farmhand
// server on the test's own event loop that records what the agent says.
#include "agent/daemon/daemon.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "agent/credential.h"
#include "agent/daemon/nspawn_notify.h"
#include "agent/runtime.h"
#include "agent/wiring.h"
#include "common/fs.h"
#include "provisioner/state_store.h"
#include "tests/unit/agent/fake_server.h"
#include "tests/unit/fakes.h"
#include "tests/unit/temp_dir.h"

namespace farmhand::agent {
namespace {

// No devices present and none coming: a pipe nobody writes to.
class NoDevices final : public DeviceEvents {
 public:
  NoDevices() {
    if (::pipe2(fds_, O_CLOEXEC | O_NONBLOCK) != 0) std::abort();
  }
  ~NoDevices() override {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  int fd() const override { return fds_[0]; }
  std::vector<udev::Device> drain() override { return {}; }
  Result<std::vector<udev::Device>> enumerate() override { return std::vector<udev::Device>{}; }

 private:
  int fds_[2];
};

class NoAccess final : public udev::DeviceAccess {
 public:
  Status allow(const udev::ContainerRuntime&, const udev::NodeSpec&) override { return {}; }
  Status revoke(const udev::ContainerRuntime&, const udev::NodeSpec&) override { return {}; }
};

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    runner_.exit_code = 1;
    runner_.err = "not on this test host";
    auto loop = EventLoop::create();
    ASSERT_TRUE(loop) << loop.error().message();
    loop_ = std::move(*loop);
    server_ = std::make_unique<test::FakeServer>(*loop_, test::FakeServer::Options{});
    ASSERT_TRUE(server_->ok());
    const HostRoot root(dir_.path().string());
    ASSERT_TRUE(make_dirs(root.map("/etc/farmhand"), 0755));
    ASSERT_TRUE(write_credential(root.map("/etc/farmhand/credential").string(),
                                 Credential{server_->url(), "builder-01", "fhc_test"}));
  }
  void TearDown() override {
    daemon_.reset();
    // The loop's lws context calls the fake server's callback while it is
    // destroyed: the server must outlive it (as in link_test).
    loop_.reset();
    server_.reset();
  }

  // Writes agent.json with `containers` (a JSON array) and starts a daemon.
  void start(const std::string& containers, bool systemd) {
    const HostRoot root(dir_.path().string());
    const std::string config = R"({"server": {"url": ")" + server_->url() + R"("}, "containers": )" + containers + "}";
    ASSERT_TRUE(write_file_atomic(root.map("/etc/farmhand/agent.json"), config, 0600));
    Daemon::Deps deps;
    deps.inv.root = dir_.path().string();
    deps.loop = loop_.get();
    deps.clock = &clock_;
    deps.runner = &runner_;
    deps.devices = std::make_unique<NoDevices>();
    deps.device_access = [] { return std::make_unique<NoAccess>(); };
    deps.connect_worker = [this, systemd]() -> Result<std::unique_ptr<SystemdControl>> {
      if (!systemd) return std::unique_ptr<SystemdControl>();
      auto fake = std::make_unique<farmhand::test::FakeSystemd>();
      worker_systemd_ = fake.get();
      return std::unique_ptr<SystemdControl>(std::move(fake));
    };
    deps.leader = [this](const std::string& name) -> std::optional<pid_t> {
      if (name == "fw" && fw_leader_ > 0) return fw_leader_;
      return std::nullopt;
    };
    deps.load_config = [this, inv = deps.inv](std::string* commit) {
      ++loads_;
      return load_config(inv, commit);
    };
    deps.watches = false;
    auto initial = deps.load_config(nullptr);
    ASSERT_TRUE(initial);
    // state.db as an earlier agent left it: its first migration, run by the
    // loop and the worker at once, may find it locked (a known race of a
    // fresh state.db, not what these tests look at).
    ASSERT_TRUE(make_dirs(root.map(initial->paths.state), 0700));
    ASSERT_TRUE(provisioner::StateStore::open(root.map(initial->paths.state + "/state.db").string()));
    loads_ = 0;
    daemon_ = std::make_unique<Daemon>(std::move(deps));
    ASSERT_TRUE(daemon_->start(std::move(*initial)));
  }

  // The events the server stored, as "kind container: message".
  std::vector<std::string> events() const {
    std::vector<std::string> out;
    for (const auto& f : server_->frames()) {
      if (f.value("type", "") != "event") continue;
      out.push_back(f.value("kind", "") + " " + (f.contains("container") ? f["container"].get<std::string>() : "-") +
                    ": " + f.value("message", ""));
    }
    return out;
  }
  size_t count_events(const std::string& prefix) const {
    size_t n = 0;
    for (const auto& e : events()) n += e.rfind(prefix, 0) == 0 ? 1 : 0;
    return n;
  }
  bool wait_for_event(const std::string& prefix, size_t n = 1) {
    return test::run_until(*loop_, [&] { return count_events(prefix) >= n; });
  }
  // The unit restarts the worker's systemd was asked for.
  std::vector<std::string> restarts() const {
    std::vector<std::string> out;
    for (const auto& call : worker_systemd_->calls()) {
      if (call.rfind("restart ", 0) == 0) out.push_back(call);
    }
    return out;
  }
  std::optional<nlohmann::json> result_of(const std::string& id) const {
    for (const auto& f : server_->frames()) {
      if (f.value("type", "") == "command_result" && f.value("id", "") == id) return f;
    }
    return std::nullopt;
  }

  farmhand::test::TempDir dir_;
  FakeClock clock_;
  farmhand::test::ScriptedProcessRunner runner_;  // every program fails: nothing on the host is assumed
  farmhand::test::FakeSystemd* worker_systemd_ = nullptr;
  std::atomic<int> loads_{0};
  pid_t fw_leader_ = -1;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<test::FakeServer> server_;
  std::unique_ptr<Daemon> daemon_;
};

TEST_F(DaemonTest, ReconcileLoadsTheConfigOnceAndAppliesIt) {
  start("[]", false);
  ASSERT_TRUE(wait_for_event("apply -: reconciled at start: ")) << ::testing::PrintToString(events());
  EXPECT_EQ(loads_.load(), 1);
  EXPECT_EQ(count_events("agent_started -: farmhand agent started"), 1u);

  // A reload reconciles again, with the configuration loaded once more
  // (not once for the apply and again for the watches and devices).
  loads_ = 0;
  daemon_->on_signal(SIGHUP);
  ASSERT_TRUE(wait_for_event("apply -: reconciled on reload: ")) << ::testing::PrintToString(events());
  EXPECT_EQ(loads_.load(), 1);
  EXPECT_EQ(count_events("apply -: reconciled at start: 0 of 0 container networks healthy"), 1u);
  EXPECT_EQ(count_events("apply -: reconciled on reload: 0 of 0 container networks healthy"), 1u);
}

TEST_F(DaemonTest, ReconcileAppliesTheConfiguredContainers) {
  // The container cannot be built here (every program fails): the apply's
  // failed step is the evidence that it ran, once.
  start(R"([{"name": "fw", "distro": "debian", "release": "bookworm"}])", false);
  ASSERT_TRUE(wait_for_event("apply -: reconciled at start: ")) << ::testing::PrintToString(events());
  EXPECT_EQ(loads_.load(), 1);
  EXPECT_EQ(count_events("step_failed fw: "), 1u) << ::testing::PrintToString(events());
  EXPECT_EQ(count_events("apply -: reconciled at start: 0 of 0 container networks healthy; 1 step(s) failed"), 1u)
      << ::testing::PrintToString(events());
}

TEST_F(DaemonTest, ServerApplyCommandIsCarriedOutAndAnswered) {
  start("[]", false);
  ASSERT_TRUE(wait_for_event("apply -: reconciled at start: "));
  loads_ = 0;
  server_->send({{"type", "command"}, {"id", "c-1"}, {"action", "apply"}});
  ASSERT_TRUE(test::run_until(*loop_, [&] { return result_of("c-1").has_value(); }))
      << ::testing::PrintToString(events());
  const nlohmann::json r = *result_of("c-1");
  EXPECT_TRUE(r.value("ok", false)) << r.dump();
  EXPECT_EQ(r.value("message", ""), "applied: 0 container(s) changed");
  ASSERT_TRUE(wait_for_event("command -: apply: applied: 0 container(s) changed"))
      << ::testing::PrintToString(events());
  // What depends on the configuration follows it after an apply.
  EXPECT_EQ(loads_.load(), 1);
}

TEST_F(DaemonTest, ServerRestartCommandGoesToSystemd) {
  start("[]", true);
  ASSERT_TRUE(wait_for_event("apply -: reconciled at start: "));
  // Not a container farmhand made: refused before systemd is asked.
  server_->send({{"type", "command"}, {"id", "c-2"}, {"action", "restart"}, {"container", "fw"}});
  ASSERT_TRUE(test::run_until(*loop_, [&] { return result_of("c-2").has_value(); }))
      << ::testing::PrintToString(events());
  EXPECT_FALSE(result_of("c-2")->value("ok", true));
  EXPECT_EQ(result_of("c-2")->value("message", ""), "no container named \"fw\" is managed by farmhand");
  ASSERT_TRUE(wait_for_event("error fw: restart: failed: no container named")) << ::testing::PrintToString(events());
  ASSERT_NE(worker_systemd_, nullptr);
  EXPECT_TRUE(restarts().empty());

  // Once it is made (as an apply would record it), systemd restarts it.
  {
    Invocation inv;
    inv.root = dir_.path().string();
    auto config = load_config(inv);
    ASSERT_TRUE(config);
    auto state = provisioner::StateStore::open(
        HostRoot(dir_.path().string()).map(config->paths.state + "/state.db").string());
    ASSERT_TRUE(state) << state.error().message();
    provisioner::ContainerRecord fw;
    fw.name = "fw";
    fw.spec_json = "{}";
    fw.phase = provisioner::Phase::kReady;
    ASSERT_TRUE(state->put_container(fw));
  }
  server_->send({{"type", "command"}, {"id", "c-3"}, {"action", "restart"}, {"container", "fw"}});
  ASSERT_TRUE(test::run_until(*loop_, [&] { return result_of("c-3").has_value(); }))
      << ::testing::PrintToString(events());
  EXPECT_TRUE(result_of("c-3")->value("ok", false)) << result_of("c-3")->dump();
  EXPECT_EQ(result_of("c-3")->value("message", ""), "fw restarted");
  EXPECT_EQ(restarts(), std::vector<std::string>{"restart systemd-nspawn@fw.service"});
  ASSERT_TRUE(wait_for_event("command fw: restart: fw restarted")) << ::testing::PrintToString(events());
}

TEST_F(DaemonTest, ContainerExitIsNoticed) {
  // fw's init: a child that waits until it is killed.
  fw_leader_ = ::fork();
  ASSERT_GE(fw_leader_, 0);
  if (fw_leader_ == 0) {
    ::pause();
    ::_exit(0);
  }
  start(R"([{"name": "fw", "distro": "debian", "release": "bookworm"}])", false);
  ASSERT_TRUE(wait_for_event("agent_started"));
  ::kill(fw_leader_, SIGKILL);
  ::waitpid(fw_leader_, nullptr, 0);
  ASSERT_TRUE(wait_for_event("container_stopped fw: fw stopped")) << ::testing::PrintToString(events());
}

// Sends `text` to the datagram socket at `path` with this process's
// credentials (the kernel attaches them). Only system calls: safe in a
// child forked from a process with threads.
bool send_notice(const sockaddr_un& addr, const std::string& text) {
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool sent = ::sendto(fd, text.data(), text.size(), 0, reinterpret_cast<const sockaddr*>(&addr),
                             sizeof addr) == static_cast<ssize_t>(text.size());
  ::close(fd);
  return sent;
}

sockaddr_un socket_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  return addr;
}

TEST(NspawnNotify, LeaderNoticesCarryTheSendersPid) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
  int one = 1;
  ASSERT_EQ(::setsockopt(sv[0], SOL_SOCKET, SO_PASSCRED, &one, sizeof one), 0);
  const std::string notice = "X_NSPAWN_LEADER_PID=4242";
  const std::string other = "READY=1";
  ASSERT_EQ(::send(sv[1], other.data(), other.size(), 0), static_cast<ssize_t>(other.size()));
  ASSERT_EQ(::send(sv[1], notice.data(), notice.size(), 0), static_cast<ssize_t>(notice.size()));
  // From a child: another pid, whatever the text says.
  const std::string forged = "X_NSPAWN_LEADER_PID=" + std::to_string(::getpid());
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::_exit(::send(sv[1], forged.data(), forged.size(), 0) == static_cast<ssize_t>(forged.size()) ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(read_leader_notices(sv[0]), (std::vector<pid_t>{::getpid(), child}));
  EXPECT_TRUE(read_leader_notices(sv[0]).empty());
  ::close(sv[0]);
  ::close(sv[1]);
}

TEST_F(DaemonTest, NoticeFromAPidNoRunRecordNamesIsRefused) {
  // This process is fw's nspawn, as `farmhand run` records it.
  ASSERT_TRUE(record_running(HostRoot(dir_.path().string()), "fw"));
  start(R"([{"name": "fw", "distro": "debian", "release": "bookworm"}])", false);
  ASSERT_TRUE(wait_for_event("agent_started"));
  const sockaddr_un socket = socket_address(HostRoot(dir_.path().string()).map(kNotifySocket).string());
  const std::string notice = "X_NSPAWN_LEADER_PID=1";
  // First a child (a pid no run record names) says it is fw's nspawn...
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(send_notice(socket, notice) ? 0 : 1);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  // ...then fw's recorded nspawn does: only that one counts.
  ASSERT_TRUE(send_notice(socket, notice));
  ASSERT_TRUE(wait_for_event("container_started fw: fw started")) << ::testing::PrintToString(events());
  EXPECT_EQ(count_events("container_started"), 1u) << ::testing::PrintToString(events());
}

}  // namespace
}  // namespace farmhand::agent
