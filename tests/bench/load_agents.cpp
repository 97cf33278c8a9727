#include "tests/bench/load_agents.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "common/fs.h"
#include "common/log.h"
#include "tests/bench/load_probe.h"

namespace farmhand::load {

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// What a small real host would report.
protocol::Heartbeat sample_heartbeat() {
  protocol::Heartbeat hb;
  hb.time = now_ms();
  hb.load = {0.42, 0.3, 0.25};
  hb.memory_total_kb = 8052124;
  hb.memory_available_kb = 5120000;
  hb.disk_total_kb = 102400000;
  hb.disk_free_kb = 51200000;
  hb.uptime_s = 86400;
  return hb;
}

nlohmann::json sample_inventory(const std::string& host) {
  return {{"time", now_ms()},
          {"host",
           {{"hostname", host},
            {"os", "Debian GNU/Linux 12 (bookworm)"},
            {"kernel", "6.1.0-18-amd64"},
            {"arch", "x86_64"},
            {"farmhand_version", "0.1.0"},
            {"network_backend", "networkmanager"},
            {"firewall", "firewalld"}}},
          {"containers",
           nlohmann::json::array({{{"name", "deb12"},
                                   {"distro", "debian"},
                                   {"release", "bookworm"},
                                   {"state", "running"},
                                   {"address", "192.168.80.2"},
                                   {"network", "healthy"},
                                   {"network_reason", ""}}})},
          {"devices", nlohmann::json::array()}};
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

Result<std::vector<protocol::Event>> StampingOutbox::pending(uint64_t after_seq, size_t limit) {
  auto events = inner_->pending(after_seq, std::min<size_t>(limit, 1));
  if (!events) return events;
  for (auto& e : *events) e.message = stamp_message(steady_us(), ++stamped_);
  return events;
}

Result<std::vector<SimAgent>> make_fleet(agent::EventLoop& loop, const std::vector<HostCredential>& hosts,
                                         const FleetOptions& options) {
  std::vector<SimAgent> agents;
  agents.reserve(hosts.size());
  for (const auto& h : hosts) {
    SimAgent a;
    a.host = h.host;
    std::unique_ptr<agent::Outbox> inner;
    if (options.sqlite_dir.empty()) {
      inner = std::make_unique<agent::MemoryOutbox>();
    } else {
      auto db = agent::SqliteOutbox::open(options.sqlite_dir + "/" + h.host + ".db");
      if (!db) return db.error().context("opening the outbox of " + h.host);
      inner = std::move(*db);
    }
    a.outbox = std::make_unique<StampingOutbox>(std::move(inner));
    agent::LinkOptions lo;
    lo.url = options.url;
    lo.host = h.host;
    lo.credential = h.credential;
    lo.version = "0.1.0-load";
    lo.window = options.window;
    lo.quiet = true;
    agent::LinkCallbacks cb;
    if (options.heartbeats) {
      cb.heartbeat = sample_heartbeat;
      cb.inventory = [host = h.host] { return sample_inventory(host); };
    }
    auto link = agent::AgentLink::create(loop, *a.outbox, lo, cb);
    if (!link) return link.error().context(h.host);
    a.link = std::move(*link);
    agents.push_back(std::move(a));
  }
  return agents;
}

namespace {
struct Ramp {
  agent::EventLoop* loop;
  std::vector<SimAgent>* agents;
  size_t step;
  size_t next = 0;
};

void ramp_step(const std::shared_ptr<Ramp>& r) {
  for (size_t n = 0; n < r->step && r->next < r->agents->size(); ++n) (*r->agents)[r->next++].link->start();
  if (r->next < r->agents->size()) r->loop->after(std::chrono::milliseconds(10), [r] { ramp_step(r); });
}
}  // namespace

void start_ramped(agent::EventLoop& loop, std::vector<SimAgent>& agents, uint64_t per_second) {
  ramp_step(std::make_shared<Ramp>(Ramp{&loop, &agents, std::max<size_t>(1, per_second / 100)}));
}

FleetTotals totals(const std::vector<SimAgent>& agents) {
  FleetTotals t;
  for (const auto& a : agents) {
    if (a.link->connected()) ++t.connected;
    const auto& c = a.link->counters();
    t.counters.connects += c.connects;
    t.counters.disconnects += c.disconnects;
    t.counters.events_sent += c.events_sent;
    t.counters.acks += c.acks;
    t.counters.heartbeats_sent += c.heartbeats_sent;
    t.counters.inventories_sent += c.inventories_sent;
    t.counters.server_errors += c.server_errors;
    if (!a.link->last_error().empty()) t.last_error = a.link->last_error();
  }
  return t;
}

// N agents with heartbeats and an inventory, as real hosts; held for --hold
// seconds once all are connected (or the connect timeout passed).
int run_agents(const Args& args) {
  auto url = args.need("url");
  auto creds_file = args.need("credentials");
  auto count = args.number("count", 0);
  auto hold = args.number("hold", 25);
  auto ramp = args.number("ramp-per-s", 2000);
  auto connect_timeout = args.number("connect-timeout", 60);
  for (const Status& s : {status_of(url), status_of(creds_file), status_of(count), status_of(hold), status_of(ramp),
                          status_of(connect_timeout)}) {
    if (!s) return usage_error(s.error());
  }
  auto hosts = read_credentials(*creds_file, *count);
  if (!hosts) {
    log::error(hosts.error().message());
    return 1;
  }
  uint64_t files = raise_open_files(hosts->size() + 256);
  if (files < hosts->size() + 64) {
    log::error("the open-file limit is ", files, ", too low for ", hosts->size(), " connections");
    return 1;
  }
  auto loop = agent::EventLoop::create();
  if (!loop) {
    log::error(loop.error().message());
    return 1;
  }
  const uint64_t rss_before = rss_kib();
  FleetOptions fo;
  fo.url = *url;
  auto agents = make_fleet(**loop, *hosts, fo);
  if (!agents) {
    log::error(agents.error().message());
    return 1;
  }
  const size_t n = agents->size();
  const auto t0 = std::chrono::steady_clock::now();
  double all_after = -1;
  uint64_t rss_connected = 0;
  size_t max_connected = 0;
  double last_print = 0;
  std::string ready_file = args.get("ready-file");
  bool stopping = false;

  start_ramped(**loop, *agents, *ramp);
  auto watch = std::make_shared<std::function<void()>>();
  *watch = [&] {
    size_t c = totals(*agents).connected;
    max_connected = std::max(max_connected, c);
    double t = seconds_since(t0);
    if (t - last_print >= 2.0) {
      last_print = t;
      std::fprintf(stderr, "t=%5.1f s: %zu/%zu connected\n", t, c, n);
    }
    bool all = c == n;
    if (all && all_after < 0) {
      all_after = t;
      rss_connected = rss_kib();
      if (!ready_file.empty()) {
        auto s = write_file_atomic(std::filesystem::absolute(ready_file), std::to_string(c) + "\n", 0644);
        if (!s) log::error("writing the ready file: ", s.error().message());
      }
    }
    if (!stopping && (all || t >= static_cast<double>(*connect_timeout))) {
      stopping = true;
      if (!all) std::fprintf(stderr, "only %zu/%zu connected after %.0f s\n", c, n, t);
      (*loop)->after(std::chrono::seconds(*hold), [&] { (*loop)->stop(); });
    }
    (*loop)->after(std::chrono::milliseconds(100), *watch);
  };
  (*watch)();
  (*loop)->run();

  FleetTotals t = totals(*agents);
  std::printf("agents=%zu\nconnected_at_end=%zu\nmax_connected=%zu\nall_connected_after_s=%.2f\n", n, t.connected,
              max_connected, all_after);
  std::printf("welcomes=%lu\ndisconnects=%lu\nserver_errors=%lu\nheartbeats_sent=%lu\ninventories_sent=%lu\n",
              static_cast<unsigned long>(t.counters.connects), static_cast<unsigned long>(t.counters.disconnects),
              static_cast<unsigned long>(t.counters.server_errors),
              static_cast<unsigned long>(t.counters.heartbeats_sent),
              static_cast<unsigned long>(t.counters.inventories_sent));
  std::printf("held_s=%lu\nrss_before_kib=%lu\nrss_connected_kib=%lu\nrss_end_kib=%lu\n",
              static_cast<unsigned long>(*hold), static_cast<unsigned long>(rss_before),
              static_cast<unsigned long>(rss_connected), static_cast<unsigned long>(rss_kib()));
  if (rss_connected > rss_before && n > 0) {
    std::printf("load_kib_per_link=%.1f\n", static_cast<double>(rss_connected - rss_before) / static_cast<double>(n));
  }
  if (!t.last_error.empty()) std::printf("last_error=%s\n", log::redact(t.last_error).c_str());
  std::fflush(stdout);
  agents->clear();
  return all_after < 0 ? 1 : 0;
}

}  // namespace farmhand::load
