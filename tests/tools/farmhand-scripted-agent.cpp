// A scripted agent for the dashboard test: the real outbox, link and event
// loop, reporting a host with one pretend container "web1" whose devices and
// events come from a control FIFO, and whose start/stop/restart commands
// only change what the inventory says.
//
//   farmhand-scripted-agent --enroll-token T --url URL --credential-file F
//   farmhand-scripted-agent --credential-file F --outbox DB --control FIFO
//                           [--state-file F] [--url URL] [--debug]
//
// Control lines (the FIFO is created if missing; it is opened read-write so
// writers coming and going never make it report EOF):
//   event MESSAGE      appends an event of kind "test" with that message
//   attach DEVICE_ID   adds the device, attached to web1, and says so
// --state-file gets web1's state ("running", "stopped"), written atomically.
// The inventory carries a fixed host.config_commit, the actions it offers,
// and two git sources and a failed payload of web1.
// Heartbeats are the real host's. SIGINT/SIGTERM stop it.
#include <fcntl.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/credential.h"
#include "agent/link.h"
#include "agent/loop.h"
#include "agent/outbox.h"
#include "agent/report.h"
#include "common/clock.h"
#include "common/fs.h"
#include "common/log.h"
#include "tool_common.h"

using namespace farmhand;
using namespace farmhand::agent;

namespace {

constexpr const char* kContainer = "web1";
constexpr const char* kVersion = "0.1.0-scripted";
constexpr const char* kConfigCommit = "5e7d0c3a9b1f42e68d0a7c4b2e9f13d5a6b8c071";

int usage(const std::string& problem) {
  std::cerr << "farmhand-scripted-agent: " << problem << "\n"
            << "usage: farmhand-scripted-agent --enroll-token T --url URL --credential-file F\n"
            << "       farmhand-scripted-agent --credential-file F --outbox DB --control FIFO\n"
            << "                               [--state-file F] [--url URL] [--debug]\n";
  return 2;
}

struct Device {
  std::string id;
  int64_t since = 0;
};

// What the pretend host looks like; the inventory is rendered from it.
struct FakeHost {
  std::string hostname;
  std::string state = "running";
  int64_t since = wall_ms();
  std::vector<Device> devices;

  nlohmann::json inventory() const {
    utsname u{};
    uname(&u);
    nlohmann::json devs = nlohmann::json::array();
    for (const Device& d : devices) {
      devs.push_back({{"id", d.id},
                      {"node", "/dev/ttyUSB0"},
                      {"container", kContainer},
                      {"state", state == "running" ? "attached" : "pending"},
                      {"since", d.since}});
    }
    nlohmann::json container = {{"name", kContainer},     {"distro", "debian"},
                                 {"release", "bookworm"},  {"state", state},
                                 {"address", "192.168.80.2"}, {"network", "healthy"},
                                 {"network_reason", ""},    {"since", since}};
    container["sources"] =
        nlohmann::json::array({{{"name", "builder"}, {"commit", "c0ffee5a1b2c3d4e5f60718293a4b5c6d7e8f901"}},
                               {{"name", "sai"}, {"commit", "9d8c7b6a5f4e3d2c1b0a99887766554433221100"}}});
    container["payload"] = {{"state", "failed"},
                            {"item", "setup sai-build"},
                            {"message", "make: *** [Makefile:146: all] Error 2"},
                            {"time", wall_ms()}};
    return {{"time", wall_ms()},
            {"host",
             {{"hostname", hostname},
              {"os", "Debian GNU/Linux 12 (bookworm)"},
              {"kernel", u.release},
              {"arch", u.machine},
              {"farmhand_version", kVersion},
              {"network_backend", "none"},
              {"firewall", "none"},
              {"config_commit", kConfigCommit},
              {"actions", nlohmann::json::array({"apply", "reprovision", "detach", "rebuild", "start", "stop", "restart"})}}},
            {"containers", nlohmann::json::array({container})},
            {"devices", devs}};
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> args;
  if (auto bad = test_tools::parse_args(argc, argv, {"--debug"}, args)) {
    return usage("unexpected argument '" + *bad + "'");
  }
  if (args.count("--debug")) log::set_max_level(log::Level::kDebug);
  if (!args.count("--credential-file")) return usage("--credential-file is required");
  if (args.count("--enroll-token")) {
    if (!args.count("--url")) return usage("--url is required to enroll");
    return test_tools::enroll(args["--url"], args["--enroll-token"], "", args["--credential-file"]);
  }
  if (!args.count("--outbox") || !args.count("--control")) return usage("--outbox and --control are required");

  auto credential = read_credential(args["--credential-file"]);
  if (!credential) {
    log::error(credential.error().message());
    return 1;
  }
  auto outbox = SqliteOutbox::open(args["--outbox"]);
  if (!outbox) {
    log::error(outbox.error().message());
    return 1;
  }
  auto created = EventLoop::create();
  if (!created) {
    log::error(created.error().message());
    return 1;
  }
  EventLoop& loop = **created;

  const std::string control = args["--control"];
  if (mkfifo(control.c_str(), 0600) != 0 && errno != EEXIST) {
    log::error("mkfifo ", control, ": ", std::strerror(errno));
    return 1;
  }
  int control_fd = open(control.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (control_fd < 0) {
    log::error("opening ", control, ": ", std::strerror(errno));
    return 1;
  }

  FakeHost host;
  host.hostname = credential->host;
  const std::string state_file = args.count("--state-file") ? args["--state-file"] : "";
  auto write_state = [&] {
    if (state_file.empty()) return;
    if (auto s = write_file_atomic(state_file, host.state + "\n", 0644); !s) log::error(s.error().message());
  };
  write_state();

  LinkOptions options;
  options.url = args.count("--url") ? args["--url"] : credential->server;
  options.host = credential->host;
  options.credential = credential->credential;
  options.version = kVersion;
  // The test stops the server for a few seconds; come back quickly.
  options.backoff_cap = std::chrono::milliseconds(3000);
  LinkCallbacks callbacks;
  callbacks.inventory = [&] { return host.inventory(); };
  callbacks.heartbeat = [] {
    auto h = read_heartbeat(HostRoot("/"), "/", wall_ms());
    if (!h) {
      log::warning("heartbeat: ", h.error().message());
      protocol::Heartbeat empty;
      empty.time = wall_ms();
      return empty;
    }
    return *h;
  };
  std::unique_ptr<AgentLink> link;

  auto emit = [&](const std::string& kind, std::optional<std::string> device, const std::string& message) {
    protocol::Event e;
    e.time = wall_ms();
    e.kind = kind;
    if (kind != "test") e.container = kContainer;
    e.device = std::move(device);
    e.message = message;
    if (auto seq = (*outbox)->append(std::move(e)); !seq) {
      log::error(seq.error().message());
      return;
    }
    link->notify_appended();
  };

  callbacks.on_command = [&](const protocol::Command& c) {
    protocol::CommandResult result{c.id, false, ""};
    const std::string target = c.container.value_or("");
    if (target != kContainer || (c.action != "start" && c.action != "stop" && c.action != "restart")) {
      result.message = "the scripted agent only starts, stops and restarts " + std::string(kContainer) + ", not " +
                       c.action + (target.empty() ? "" : " " + target);
      log::notice("command ", c.id, " refused: ", result.message);
      link->send_command_result(std::move(result));
      return;
    }
    if (c.action == "stop") {
      host.state = "stopped";
      result.message = target + " stopped";
    } else {
      host.state = "running";
      result.message = target + (c.action == "start" ? " started" : " restarted");
    }
    host.since = wall_ms();
    result.ok = true;
    log::notice("command ", c.id, ": ", result.message);
    write_state();
    emit("command", std::nullopt, result.message);
    link->send_command_result(std::move(result));
    link->send_inventory();
  };

  auto made = AgentLink::create(loop, **outbox, options, callbacks);
  if (!made) {
    log::error(made.error().message());
    return 1;
  }
  link = std::move(*made);

  auto on_line = [&](const std::string& line) {
    if (line.rfind("event ", 0) == 0) {
      emit("test", std::nullopt, line.substr(6));
    } else if (line.rfind("attach ", 0) == 0) {
      Device d{line.substr(7), wall_ms()};
      std::erase_if(host.devices, [&](const Device& x) { return x.id == d.id; });
      host.devices.push_back(d);
      link->send_inventory();
      emit("device_attached", d.id, "/dev/ttyUSB0 attached to " + std::string(kContainer) + " as /dev/ttyUSB0");
    } else if (!line.empty()) {
      log::warning("control: unknown line '", line, "'");
    }
  };
  std::string pending;
  auto control_watch = loop.watch_fd(control_fd, [&] {
    char buf[4096];
    ssize_t n;
    while ((n = read(control_fd, buf, sizeof(buf))) > 0) pending.append(buf, static_cast<size_t>(n));
    size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      on_line(line);
    }
  });
  if (!control_watch) {
    log::error(control_watch.error().message());
    return 1;
  }

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  auto signal_watch = loop.watch_fd(sfd, [&] {
    signalfd_siginfo info;
    while (read(sfd, &info, sizeof(info)) == sizeof(info)) {
    }
    loop.stop();
  });
  if (!signal_watch) {
    log::error(signal_watch.error().message());
    return 1;
  }

  link->start();
  loop.run();
  link.reset();
  loop.unwatch(*control_watch);
  loop.unwatch(*signal_watch);
  close(control_fd);
  close(sfd);
  return 0;
}
