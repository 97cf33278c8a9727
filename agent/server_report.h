// The daemon's side of the central server: turns what happens on the host
// into outbox events, keeps the server's inventory current, answers its
// heartbeats and runs its commands. Lives on the daemon's event loop.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "agent/cli.h"
#include "agent/link.h"
#include "agent/loop.h"
#include "agent/outbox.h"
#include "agent/runtime.h"
#include "agent/wiring.h"
#include "provisioner/config.h"
#include "provisioner/net_health.h"
#include "udev/leases.h"

namespace farmhand::agent {

// Runs slow work (a container restart, an apply) one job at a time on a
// thread of its own, so the event loop never waits for it.
class Worker {
 public:
  Worker();
  ~Worker();  // waits for the running job; later ones are dropped
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  void enqueue(std::function<void()> job);
  bool busy();

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool running_ = false;
  bool stop_ = false;
  std::thread thread_;
};

class ServerReport {
 public:
  // Hooks into the rest of the daemon, all called on the loop's thread.
  struct Hooks {
    // The leases and the devices' own detach (empty: no device side).
    std::function<std::vector<udev::Lease>()> leases;
    std::function<Result<std::string>(const std::string& device)> detach;
    // A command changed the configuration's world (apply, reprovision):
    // the daemon rebuilds what depends on it.
    std::function<void()> reconciled;
  };

  // std::nullopt when the configuration names no server; an error when it
  // does but this host is not enrolled or the outbox cannot be opened.
  // Commands that take time run on `worker`, one at a time with the
  // daemon's own reconciles.
  static Result<std::unique_ptr<ServerReport>> create(EventLoop& loop, Worker& worker, const Invocation& inv,
                                                      const provisioner::AgentConfig& config, SystemdControl* systemd,
                                                      Hooks hooks);
  ~ServerReport();

  // Records an event for the server (kept in the outbox until stored there).
  void emit(const std::string& kind, const std::optional<std::string>& container,
            const std::optional<std::string>& device, const std::string& message);
  // Something in the inventory changed; it is sent again shortly.
  void inventory_changed();
  void container_started(const std::string& name);
  void container_stopped(const std::string& name);
  // The health watch's latest look (the daemon posts it to the loop).
  void set_health(std::map<std::string, provisioner::NetworkHealth> health);
  void set_config(const provisioner::AgentConfig& config) { config_ = config; }
  // Events for what a fetch of the config repository did, and the commit
  // in force for the inventory.
  void report_config_sync(const ConfigSync& synced);
  void set_config_commit(const std::string& commit) { config_commit_ = commit; }

 private:
  ServerReport(EventLoop& loop, Worker& worker, const Invocation& inv, provisioner::AgentConfig config,
               SystemdControl* systemd, Hooks hooks);
  nlohmann::json inventory();
  void run_command(const protocol::Command& command);
  void finish_command(const protocol::Command& command, Status result, const std::string& done);

  EventLoop& loop_;
  Worker& worker_;
  Invocation inv_;
  provisioner::AgentConfig config_;
  SystemdControl* systemd_;
  Hooks hooks_;
  ContainerLocator locator_;
  std::unique_ptr<SqliteOutbox> outbox_;
  std::unique_ptr<AgentLink> link_;
  std::map<std::string, provisioner::NetworkHealth> health_;
  std::map<std::string, int64_t> started_ms_;
  std::string config_commit_;
  std::string last_config_error_;
  EventLoop::TimerId inventory_timer_ = 0;
  // False once this is destroyed: a command's answer posted by the worker
  // may reach the loop after a reload replaced this report.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace farmhand::agent
