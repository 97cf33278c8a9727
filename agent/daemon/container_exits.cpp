#include "agent/daemon/container_exits.h"

#include <sys/syscall.h>
#include <unistd.h>

namespace farmhand::agent {

ContainerExits::~ContainerExits() {
  for (auto& [name, e] : exits_) {
    loop_.unwatch(e.second);
    ::close(e.first);
  }
}

void ContainerExits::watch(const std::string& name, pid_t leader) {
  if (exits_.count(name)) return;
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, leader, 0));
  if (pidfd < 0) return;
  auto id = loop_.watch_fd(pidfd, [this, name] { stopped_(name); });
  if (!id) {
    ::close(pidfd);
    return;
  }
  exits_[name] = {pidfd, *id};
}

void ContainerExits::forget(const std::string& name) {
  if (auto it = exits_.find(name); it != exits_.end()) {
    loop_.unwatch(it->second.second);
    ::close(it->second.first);
    exits_.erase(it);
  }
}

}  // namespace farmhand::agent
