#include "agent/daemon/watches.h"

#include <cstdint>
#include <optional>

#include "agent/wiring.h"
#include "common/log.h"
#include "common/systemd.h"

namespace farmhand::agent {

namespace {

constexpr std::chrono::seconds kHealthInterval{60};
constexpr std::chrono::seconds kServiceInterval{10};
constexpr std::chrono::seconds kWatchHealthTimeout{5};

// Logs health changes since the last look; returns what it saw.
std::optional<std::map<std::string, provisioner::NetworkHealth>> watch(provisioner::Provisioner& p,
                                                                      std::map<std::string, bool>& last) {
  auto health = p.network_health(kWatchHealthTimeout);
  if (!health) {
    log::error("checking the containers' networks: ", health.error().message());
    return std::nullopt;
  }
  size_t healthy = 0;
  for (const auto& [name, h] : *health) {
    healthy += h.healthy ? 1 : 0;
    auto it = last.find(name);
    if (it == last.end() || it->second != h.healthy) {
      if (h.healthy) {
        log::notice("container ", name, ": network ", describe_health(h));
      } else {
        log::warning("container ", name, ": network ", describe_health(h));
      }
    }
    last[name] = h.healthy;
  }
  notify_service_manager("STATUS=" + std::to_string(healthy) + " of " + std::to_string(health->size()) +
                         " container networks healthy");
  return *health;
}

}  // namespace

PeriodicWatch::PeriodicWatch(const char* what, std::chrono::seconds interval, bool at_start, const Invocation& inv,
                             provisioner::AgentConfig config, Look look) {
  thread_ = std::thread([this, what, interval, at_start, inv, config = std::move(config),
                         look = std::move(look)]() mutable {
    auto wired = wire(inv, std::move(config));
    if (!wired) {
      log::error(what, ": ", wired.error().message());
      return;
    }
    std::unique_lock<std::mutex> lock(mutex_);
    bool first = at_start;
    while (!stop_) {
      if (!first && cv_.wait_for(lock, interval, [this] { return stop_; })) break;
      first = false;
      lock.unlock();
      look(*(*wired)->provisioner);
      lock.lock();
    }
  });
}

PeriodicWatch::~PeriodicWatch() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::unique_ptr<PeriodicWatch> health_watch(const Invocation& inv, provisioner::AgentConfig config, HealthSeen seen) {
  auto last = std::make_shared<std::map<std::string, bool>>();
  return std::make_unique<PeriodicWatch>("network health watch", kHealthInterval, false, inv, std::move(config),
                                         [last, seen = std::move(seen)](provisioner::Provisioner& p) {
                                           auto health = watch(p, *last);
                                           if (health && seen) seen(std::move(*health));
                                         });
}

std::unique_ptr<PeriodicWatch> service_watch(const Invocation& inv, provisioner::AgentConfig config,
                                             ServiceTroubleSeen trouble) {
  bool any = false;
  for (const auto& c : config.containers) any = any || !c.services.empty();
  if (!any) return nullptr;
  auto last = std::make_shared<std::map<std::pair<std::string, std::string>, provisioner::UnitState>>();
  auto said = std::make_shared<size_t>(SIZE_MAX);
  return std::make_unique<PeriodicWatch>(
      "service watch", kServiceInterval, true, inv, std::move(config),
      [last, said, trouble = std::move(trouble)](provisioner::Provisioner& p) {
        if (p.applying()) return;
        auto states = p.payload_services();
        if (!states) {
          log::warning("service watch: ", states.error().message());
          return;
        }
        if (states->size() != *said) {
          log::info("service watch: ", states->size(), " payload service(s) running");
          *said = states->size();
        }
        for (auto t : service_troubles(*last, *states)) {
          const std::string journal = p.service_journal(t.container, t.unit);
          if (!journal.empty()) t.message += ". Its journal:\n" + journal;
          log::warning("container ", t.container, ": ", t.message);
          trouble(t);
        }
      });
}

}  // namespace farmhand::agent
