// A stand-in agent for the kill/restart/partition tests: the real outbox and
// link on the real event loop, without containers or devices.
//
//   farmhand-test-agent --enroll-token T --url URL --credential-file F
//   farmhand-test-agent --credential-file F --outbox DB --events N [--url URL]
//                       [--rate PER_SEC] [--heartbeat] [--wait-acked] [--ca-file F]
//
// Appends N events ("event K", K their seq) to the outbox, runs the link and,
// with --wait-acked, exits 0 once everything is acknowledged, printing
// "acked A/B" progress lines. SIGINT/SIGTERM stop it (exit 1 if events wait).
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <string>

#include "agent/credential.h"
#include "agent/link.h"
#include "agent/loop.h"
#include "agent/outbox.h"
#include "common/clock.h"
#include "common/log.h"
#include "tool_common.h"

using namespace farmhand;
using namespace farmhand::agent;

namespace {

int usage(const std::string& problem) {
  std::cerr << "farmhand-test-agent: " << problem << "\n"
            << "usage: farmhand-test-agent --enroll-token T --url URL --credential-file F\n"
            << "       farmhand-test-agent --credential-file F --outbox DB --events N [--url URL]\n"
            << "                           [--rate PER_SEC] [--heartbeat] [--wait-acked] [--ca-file F]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> args;
  if (auto bad = test_tools::parse_args(argc, argv, {"--heartbeat", "--wait-acked", "--debug"}, args)) {
    return usage("unexpected argument '" + *bad + "'");
  }
  if (args.count("--debug")) log::set_max_level(log::Level::kDebug);
  if (!args.count("--credential-file")) return usage("--credential-file is required");
  const std::string credential_file = args["--credential-file"];
  const std::string ca_file = args.count("--ca-file") ? args["--ca-file"] : "";

  if (args.count("--enroll-token")) {
    if (!args.count("--url")) return usage("--url is required to enroll");
    return test_tools::enroll(args["--url"], args["--enroll-token"], ca_file, credential_file);
  }

  if (!args.count("--outbox") || !args.count("--events")) return usage("--outbox and --events are required");
  uint64_t events = 0;
  double rate = 0;
  try {
    events = std::stoull(args["--events"]);
    if (args.count("--rate")) rate = std::stod(args["--rate"]);
  } catch (const std::exception&) {
    return usage("--events and --rate expect numbers");
  }
  auto credential = read_credential(credential_file);
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

  auto first = (*outbox)->last_seq();
  if (!first) {
    log::error(first.error().message());
    return 1;
  }
  uint64_t appended = 0;
  auto append_some = [&](uint64_t count) -> bool {
    std::vector<protocol::Event> batch;
    auto last = (*outbox)->last_seq();
    if (!last) {
      log::error(last.error().message());
      return false;
    }
    for (uint64_t i = 1; i <= count; ++i) {
      protocol::Event e;
      e.time = wall_ms();
      e.kind = "test";
      e.message = "event " + std::to_string(*last + i);
      batch.push_back(std::move(e));
    }
    if (auto r = (*outbox)->append_all(std::move(batch)); !r) {
      log::error(r.error().message());
      return false;
    }
    appended += count;
    return true;
  };

  LinkOptions options;
  options.url = args.count("--url") ? args["--url"] : credential->server;
  options.ca_file = ca_file;
  options.host = credential->host;
  options.credential = credential->credential;
  options.version = "0.1.0-test";
  LinkCallbacks callbacks;
  callbacks.inventory = [&] {
    return nlohmann::json{{"time", wall_ms()},
                          {"host", {{"hostname", credential->host}, {"farmhand_version", "0.1.0-test"}}},
                          {"containers", nlohmann::json::array()},
                          {"devices", nlohmann::json::array()}};
  };
  if (args.count("--heartbeat")) {
    callbacks.heartbeat = [] {
      protocol::Heartbeat h;
      h.time = wall_ms();
      double load[3] = {0, 0, 0};
      if (getloadavg(load, 3) == 3) h.load = {load[0], load[1], load[2]};
      return h;
    };
  }
  callbacks.on_command = nullptr;
  auto link = AgentLink::create(loop, **outbox, options, callbacks);
  if (!link) {
    log::error(link.error().message());
    return 1;
  }

  // SIGINT/SIGTERM through a signalfd on the loop, as the daemon does.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  int exit_code = 1;
  auto watch = loop.watch_fd(sfd, [&] {
    signalfd_siginfo info;
    while (read(sfd, &info, sizeof(info)) == sizeof(info)) {
    }
    auto waiting = (*outbox)->size();
    exit_code = waiting && *waiting == 0 ? 0 : 1;
    loop.stop();
  });
  if (!watch) {
    log::error(watch.error().message());
    return 1;
  }

  // Every 10 ms, whatever the rate says is due by now. (Declared here: the
  // timers it schedules refer to it until the loop ends.)
  auto started = monotonic_now();
  std::function<void()> tick;
  if (rate <= 0) {
    if (events > 0 && !append_some(events)) return 1;
  } else {
    tick = [&] {
      double elapsed = std::chrono::duration<double>(monotonic_now() - started).count();
      uint64_t due = std::min<uint64_t>(events, static_cast<uint64_t>(elapsed * rate) + 1);
      if (due > appended) {
        if (!append_some(due - appended)) return loop.stop();
        (*link)->notify_appended();
      }
      if (appended < events) loop.after(std::chrono::milliseconds(10), tick);
    };
    tick();
  }

  uint64_t total = *first + events;
  uint64_t last_printed = UINT64_MAX;
  bool wait_acked = args.count("--wait-acked") > 0;
  std::function<void()> progress = [&] {
    auto waiting = (*outbox)->size();
    uint64_t acked = (*link)->acked_seq();
    if (acked != last_printed) {
      std::cout << "acked " << acked << "/" << total << std::endl;
      last_printed = acked;
    }
    if (wait_acked && appended == events && waiting && *waiting == 0) {
      exit_code = 0;
      return loop.stop();
    }
    loop.after(std::chrono::milliseconds(wait_acked ? 100 : 1000), progress);
  };
  (*link)->start();
  loop.after(std::chrono::milliseconds(100), progress);
  loop.run();
  if (exit_code == 0) std::cout << "acked " << (*link)->acked_seq() << "/" << total << std::endl;
  link->reset();
  loop.unwatch(*watch);
  close(sfd);
  return exit_code;
}
