#include "agent/daemon/nspawn_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>

#include "common/fs.h"
#include "common/log.h"

namespace farmhand::agent {

int open_notify_socket(const std::string& path) {
  (void)make_dirs(fs::path(path).parent_path(), 0755);
  ::unlink(path.c_str());
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  int one = 1;
  if (fd < 0 || path.size() >= sizeof addr.sun_path) {
    log::warning("containers started later are not noticed: cannot open ", path);
    if (fd >= 0) ::close(fd);
    return -1;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) != 0) {
    log::warning("containers started later are not noticed: ", path, ": ", errno_text(errno));
    ::close(fd);
    return -1;
  }
  return fd;
}

std::vector<pid_t> read_leader_notices(int fd) {
  std::vector<pid_t> senders;
  char buf[4096];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
  for (;;) {
    iovec iov{buf, sizeof buf - 1};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(fd, &msg, MSG_DONTWAIT);
    if (n < 0) break;
    buf[n] = '\0';
    const ucred* cred = nullptr;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
        cred = reinterpret_cast<const ucred*>(CMSG_DATA(c));
      }
    }
    if (cred == nullptr || std::string_view(buf).find("X_NSPAWN_LEADER_PID=") == std::string_view::npos) {
      continue;
    }
    senders.push_back(cred->pid);
  }
  return senders;
}

}  // namespace farmhand::agent
