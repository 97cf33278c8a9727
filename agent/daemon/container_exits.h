// Container exits on hosts without systemd (no machined to say so): the
// daemon watches each running container's init through a pidfd on its
// event loop; the init exiting (the pidfd readable) means the container
// stopped. Lives on, and is called on, the loop's thread.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <string>
#include <utility>

#include "agent/loop.h"

namespace farmhand::agent {

class ContainerExits {
 public:
  using Stopped = std::function<void(const std::string& container)>;
  // `stopped` is called on the loop when a watched container's init exits.
  ContainerExits(EventLoop& loop, Stopped stopped) : loop_(loop), stopped_(std::move(stopped)) {}
  ~ContainerExits();
  ContainerExits(const ContainerExits&) = delete;
  ContainerExits& operator=(const ContainerExits&) = delete;

  // Watches container `name`, whose init is `leader`; nothing if it is
  // watched already or the process is gone.
  void watch(const std::string& name, pid_t leader);
  // Stops watching `name` (it stopped, or started again with a new init).
  void forget(const std::string& name);
  bool watching(const std::string& name) const { return exits_.count(name) != 0; }

 private:
  EventLoop& loop_;
  Stopped stopped_;
  // container -> pidfd of its init and its watch
  std::map<std::string, std::pair<int, EventLoop::WatchId>> exits_;
};

}  // namespace farmhand::agent
