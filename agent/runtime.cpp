#include "agent/runtime.h"

#include <unistd.h>

#include <sstream>

namespace farmhand::agent {

std::optional<unsigned long long> process_start_time(pid_t pid) {
  auto stat = read_file_if_exists("/proc/" + std::to_string(pid) + "/stat");
  if (!stat || !*stat) return std::nullopt;
  const std::string& text = **stat;
  // The command name is in parentheses and may contain spaces: fields are
  // counted after the last ')'.
  size_t close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream in(text.substr(close + 2));
  std::string field;
  for (int i = 3; i < 22 && in >> field; ++i) {
  }
  unsigned long long start = 0;
  if (!(in >> start)) return std::nullopt;
  return start;
}

Status record_running(const HostRoot& root, const std::string& name) {
  const pid_t self = ::getpid();
  auto start = process_start_time(self);
  if (!start) return fail("cannot read this process's start time");
  return write_file_atomic(root.map(std::string(kRunningDir) + "/" + name),
                           std::to_string(self) + " " + std::to_string(*start) + "\n", 0644);
}

std::optional<std::string> ContainerLocator::container_of(pid_t pid) const {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root_.map(kRunningDir), ec)) {
    auto record = read_file_if_exists(entry.path());
    if (!record || !*record) continue;
    std::istringstream in(**record);
    long recorded = 0;
    if (in >> recorded && recorded == pid) return entry.path().filename().string();
  }
  return std::nullopt;
}

std::optional<pid_t> ContainerLocator::leader(const std::string& name) const {
  if (systemd_ != nullptr) {
    auto l = systemd_->machine_leader(name);
    if (l && *l) return **l;
    return std::nullopt;
  }
  auto record = read_file_if_exists(root_.map(std::string(kRunningDir) + "/" + name));
  if (!record || !*record) return std::nullopt;
  std::istringstream in(**record);
  long pid = 0;
  unsigned long long start = 0;
  if (!(in >> pid >> start) || pid <= 0) return std::nullopt;
  auto now = process_start_time(static_cast<pid_t>(pid));
  if (!now || *now != start) return std::nullopt;  // gone, or the pid was reused
  // The container's init is the child of systemd-nspawn that runs in a PID
  // namespace of its own (nspawn may have helper children, with -U).
  auto children = read_file_if_exists("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  if (!children || !*children) return std::nullopt;
  std::error_code ec;
  const auto own_ns = fs::read_symlink("/proc/" + std::to_string(pid) + "/ns/pid", ec);
  if (ec) return std::nullopt;
  std::istringstream kids(**children);
  long child = 0;
  while (kids >> child) {
    auto ns = fs::read_symlink("/proc/" + std::to_string(child) + "/ns/pid", ec);
    if (!ec && ns != own_ns) return static_cast<pid_t>(child);
  }
  return std::nullopt;
}

}  // namespace farmhand::agent
