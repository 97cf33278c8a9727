// farmhand-load events: sustained event ingest. K agents (no heartbeats, so
// only events load the server) connect; then E events per agent go into
// their outboxes, either all at once (--rate 0: the server's throughput) or
// paced at --rate events/s over the fleet (latency under a given load). The
// figure is the wall time from the first event handed to the links to the
// last one acknowledged, which the server sends only after the batch's
// transaction is committed. A dashboard probe on its own thread
// (load_probe.h) measures how long each event took from its agent's
// connection to the /ui feed.
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <thread>

#include "common/fs.h"
#include "common/log.h"
#include "tests/bench/load_agents.h"
#include "tests/bench/load_probe.h"

namespace farmhand::load {

namespace {

protocol::Event load_event() {
  protocol::Event e;
  e.time = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
               .count();
  e.kind = "apply";
  e.container = "deb12";
  e.message = "unstamped";  // replaced with the send time when the link reads it
  return e;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int run_events(const Args& args) {
  auto url = args.need("url");
  auto creds_file = args.need("credentials");
  auto count = args.number("count", 100);
  auto per_agent = args.number("events-per-agent", 200);
  auto rate = args.number("rate", 0);
  auto window = args.number("window", 1000);
  auto connect_timeout = args.number("connect-timeout", 60);
  auto drain_timeout = args.number("drain-timeout", 60);
  for (const Status& s : {status_of(url), status_of(creds_file), status_of(count), status_of(per_agent),
                          status_of(rate), status_of(window), status_of(connect_timeout), status_of(drain_timeout)}) {
    if (!s) return usage_error(s.error());
  }
  if (*count == 0 || *per_agent == 0) return usage_error(fail("--count and --events-per-agent must be at least 1"));
  auto hosts = read_credentials(*creds_file, *count);
  if (!hosts) {
    log::error(hosts.error().message());
    return 1;
  }
  raise_open_files(hosts->size() + 256);

  std::unique_ptr<UiProbe> probe;
  if (!args.get("probe-user").empty()) {
    auto password = read_file(args.get("probe-password-file"));
    if (!password) {
      log::error("reading --probe-password-file: ", password.error().message());
      return 1;
    }
    while (!password->empty() && (password->back() == '\n' || password->back() == '\r')) password->pop_back();
    log::add_secret(*password);
    auto p = UiProbe::start(*url, args.get("probe-user"), *password, 30000);
    if (!p) {
      log::error("the dashboard probe: ", p.error().message());
      return 1;
    }
    probe = std::move(*p);
  }

  auto loop = agent::EventLoop::create();
  if (!loop) {
    log::error(loop.error().message());
    return 1;
  }
  FleetOptions fo;
  fo.url = *url;
  fo.sqlite_dir = args.get("sqlite");
  fo.heartbeats = false;
  fo.window = *window;
  auto agents = make_fleet(**loop, *hosts, fo);
  if (!agents) {
    log::error(agents.error().message());
    return 1;
  }
  const size_t k = agents->size();
  const uint64_t e = *per_agent;
  const uint64_t total = k * e;
  std::vector<uint64_t> base(k, 0), appended(k, 0);
  uint64_t appended_total = 0;
  std::string error;
  const auto t_connect = std::chrono::steady_clock::now();
  auto t0 = t_connect;
  double seconds = -1;
  uint64_t probe_base = 0;
  size_t done_cursor = 0;

  auto append_one = [&](size_t i) -> bool {
    auto s = (*agents)[i].outbox->append(load_event());
    if (!s) error = "appending to the outbox of " + (*agents)[i].host + ": " + s.error().message();
    ++appended[i];
    ++appended_total;
    return static_cast<bool>(s);
  };
  // Paced: every 5 ms, the events due by now, round robin over the agents.
  auto pace = std::make_shared<std::function<void()>>();
  *pace = [&] {
    const auto due = std::min<uint64_t>(total, static_cast<uint64_t>(seconds_since(t0) * static_cast<double>(*rate)));
    std::vector<bool> touched(k, false);
    while (appended_total < due) {
      size_t i = appended_total % k;
      if (!append_one(i)) return (*loop)->stop();
      touched[i] = true;
    }
    for (size_t i = 0; i < k; ++i) {
      if (touched[i]) (*agents)[i].link->notify_appended();
    }
    if (appended_total < total) (*loop)->after(std::chrono::milliseconds(5), *pace);
  };
  auto check_done = std::make_shared<std::function<void()>>();
  *check_done = [&] {
    while (done_cursor < k && appended[done_cursor] == e &&
           (*agents)[done_cursor].link->acked_seq() >= base[done_cursor] + e) {
      ++done_cursor;
    }
    const double t = seconds_since(t0);
    if (done_cursor == k) {
      seconds = t;
      return (*loop)->stop();
    }
    const double limit = static_cast<double>(*drain_timeout) + (*rate ? static_cast<double>(total) / *rate : 0);
    if (t > limit) {
      error = "not every event was acknowledged within " + std::to_string(static_cast<int>(limit)) + " s";
      return (*loop)->stop();
    }
    (*loop)->after(std::chrono::milliseconds(1), *check_done);
  };
  auto begin = [&] {
    for (size_t i = 0; i < k; ++i) base[i] = (*agents)[i].link->acked_seq();
    if (probe) probe_base = probe->events();
    if (*rate == 0) {
      for (size_t i = 0; i < k; ++i) {
        std::vector<protocol::Event> batch(e, load_event());
        if (auto s = (*agents)[i].outbox->append_all(std::move(batch)); !s) {
          error = "appending to the outbox of " + (*agents)[i].host + ": " + s.error().message();
          return (*loop)->stop();
        }
        appended[i] = e;
      }
      appended_total = total;
      t0 = std::chrono::steady_clock::now();
      for (auto& a : *agents) a.link->notify_appended();
    } else {
      t0 = std::chrono::steady_clock::now();
      (*pace)();
    }
    (*check_done)();
  };
  auto wait_connected = std::make_shared<std::function<void()>>();
  *wait_connected = [&] {
    if (totals(*agents).connected == k) return begin();
    if (seconds_since(t_connect) > static_cast<double>(*connect_timeout)) {
      error = "only " + std::to_string(totals(*agents).connected) + " of " + std::to_string(k) +
              " agents connected within " + std::to_string(*connect_timeout) + " s";
      return (*loop)->stop();
    }
    (*loop)->after(std::chrono::milliseconds(10), *wait_connected);
  };
  start_ramped(**loop, *agents, 2000);
  (*wait_connected)();
  (*loop)->run();
  const double connect_s = std::chrono::duration<double>(t0 - t_connect).count();

  // The feed trails the acks a little: wait for the last events to arrive.
  UiProbe::Stats stats;
  if (probe) {
    const auto t_wait = std::chrono::steady_clock::now();
    while (error.empty() && probe->events() - probe_base < total && seconds_since(t_wait) < 10) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    stats = probe->stop();
  }

  FleetTotals t = totals(*agents);
  uint64_t acked = 0;
  for (size_t i = 0; i < k; ++i) acked += (*agents)[i].link->acked_seq() - base[i];
  std::printf("agents=%zu\nevents=%lu\nacked=%lu\nconnect_s=%.3f\n", k, static_cast<unsigned long>(total),
              static_cast<unsigned long>(acked), connect_s);
  std::printf("outbox=%s\nrate_requested=%lu\nwindow=%lu\n", fo.sqlite_dir.empty() ? "memory" : "sqlite",
              static_cast<unsigned long>(*rate), static_cast<unsigned long>(*window));
  if (seconds > 0) std::printf("seconds=%.3f\nevents_per_s=%.0f\n", seconds, static_cast<double>(total) / seconds);
  std::printf("events_sent=%lu\nacks=%lu\ndisconnects=%lu\nserver_errors=%lu\n",
              static_cast<unsigned long>(t.counters.events_sent), static_cast<unsigned long>(t.counters.acks),
              static_cast<unsigned long>(t.counters.disconnects), static_cast<unsigned long>(t.counters.server_errors));
  if (probe) {
    const auto& v = stats.latency_us;
    std::printf("feed_events=%lu\nfeed_stamped=%zu\nfeed_p50_ms=%.2f\nfeed_p99_ms=%.2f\nfeed_max_ms=%.2f\n",
                static_cast<unsigned long>(stats.events), v.size(), static_cast<double>(quantile(v, 0.50)) / 1000,
                static_cast<double>(quantile(v, 0.99)) / 1000, static_cast<double>(v.empty() ? 0 : v.back()) / 1000);
    if (!stats.error.empty()) std::printf("feed_error=%s\n", stats.error.c_str());
  }
  if (!t.last_error.empty()) std::printf("last_error=%s\n", log::redact(t.last_error).c_str());
  std::fflush(stdout);
  agents->clear();
  if (!error.empty()) {
    log::error(error);
    return 1;
  }
  return 0;
}

}  // namespace farmhand::load
