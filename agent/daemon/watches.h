// The daemon's periodic looks, each on a thread of its own with its own
// wired Provisioner (and so its own D-Bus connection): a slow look never
// delays a device event on the loop, nor waits for an apply on the worker.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "agent/cli/cli.h"
#include "agent/service_watch.h"
#include "provisioner/config.h"
#include "provisioner/net_health.h"
#include "provisioner/provisioner.h"

namespace farmhand::agent {

// A thread of its own that wires a provisioner, then calls `look` with it
// every `interval` (and at once, with `at_start`) until destroyed.
class PeriodicWatch {
 public:
  using Look = std::function<void(provisioner::Provisioner&)>;
  PeriodicWatch(const char* what, std::chrono::seconds interval, bool at_start, const Invocation& inv,
                provisioner::AgentConfig config, Look look);
  ~PeriodicWatch();
  PeriodicWatch(const PeriodicWatch&) = delete;
  PeriodicWatch& operator=(const PeriodicWatch&) = delete;

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// Watches the containers' network health every minute; `seen` gets each
// look's result, on the watch's thread.
using HealthSeen = std::function<void(std::map<std::string, provisioner::NetworkHealth>)>;
std::unique_ptr<PeriodicWatch> health_watch(const Invocation& inv, provisioner::AgentConfig config, HealthSeen seen);

// Watches the running containers' payload services through each
// container's systemd; a service that died (or that systemd had to
// restart) goes to `trouble`, on the watch's thread, with the end of its
// journal. It does not look while an apply runs: apply restarts services
// itself, and checks them. Null when no container has a service.
using ServiceTroubleSeen = std::function<void(const ServiceTrouble&)>;
std::unique_ptr<PeriodicWatch> service_watch(const Invocation& inv, provisioner::AgentConfig config,
                                             ServiceTroubleSeen trouble);

}  // namespace farmhand::agent
