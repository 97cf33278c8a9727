// The daemon's side of the central server: turns what happens on the host
// into outbox events, keeps the server's inventory current, answers its
// heartbeats and passes its commands to the daemon (agent/daemon/), which
// answers them with finish_command(). Lives on the daemon's event loop:
// every method, and every hook, is called on the loop's thread.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "agent/cli/cli.h"
#include "agent/link.h"
#include "agent/loop.h"
#include "agent/outbox.h"
#include "agent/runtime.h"
#include "agent/wiring.h"
#include "common/clock.h"
#include "provisioner/config.h"
#include "provisioner/net_health.h"
#include "udev/leases.h"

namespace farmhand::agent {

class ServerReport {
 public:
  // Hooks into the rest of the daemon, all called on the loop's thread.
  struct Hooks {
    // The leases (empty: no device side).
    std::function<std::vector<udev::Lease>()> leases;
    // A command from the server; the daemon carries it out and answers
    // with finish_command().
    std::function<void(const protocol::Command&)> command;
    // The daemon's loop-side Provisioner, for the inventory's containers
    // and host facts (null: none yet).
    std::function<provisioner::Provisioner*()> containers;
  };

  // std::nullopt when the configuration names no server; an error when it
  // does but this host is not enrolled or the outbox cannot be opened.
  // `systemd` is the loop's connection (null without systemd).
  static Result<std::unique_ptr<ServerReport>> create(EventLoop& loop, const Clock& clock, const Invocation& inv,
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
  const provisioner::AgentConfig& config() const { return config_; }
  // Events for what a fetch of the config repository did, and the commit
  // in force for the inventory.
  void report_config_sync(const ConfigSync& synced);
  void set_config_commit(const std::string& commit) { config_commit_ = commit; }
  // A command's answer (and an event for it), and where a long one is.
  void finish_command(const protocol::Command& command, Status result, const std::string& done);
  void send_progress(protocol::Progress progress);

 private:
  ServerReport(EventLoop& loop, const Clock& clock, const Invocation& inv, provisioner::AgentConfig config,
               SystemdControl* systemd, Hooks hooks);
  nlohmann::json inventory();

  EventLoop& loop_;
  const Clock& clock_;
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
};

}  // namespace farmhand::agent
