#include "agent/report.h"

#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <charconv>
#include <sstream>

#include "agent/container_row.h"

namespace farmhand::agent {

namespace {

std::optional<double> to_double(std::string_view s) {
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p == s.data()) return std::nullopt;
  return v;
}

std::string os_pretty_name(const HostRoot& root) {
  auto text = read_file(root.map("/etc/os-release").string());
  if (!text) return "";
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("PRETTY_NAME=", 0) != 0) continue;
    std::string v = line.substr(12);
    if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front()) {
      v = v.substr(1, v.size() - 2);
    }
    return v;
  }
  return "";
}

}  // namespace

std::optional<std::array<double, 3>> parse_loadavg(std::string_view text) {
  std::array<double, 3> out{};
  size_t pos = 0;
  for (double& v : out) {
    while (pos < text.size() && text[pos] == ' ') ++pos;
    size_t end = text.find(' ', pos);
    if (end == std::string_view::npos) end = text.size();
    auto d = to_double(text.substr(pos, end - pos));
    if (!d || *d < 0) return std::nullopt;
    v = *d;
    pos = end;
  }
  return out;
}

std::optional<std::pair<uint64_t, uint64_t>> parse_meminfo(std::string_view text) {
  std::optional<uint64_t> total;
  std::optional<uint64_t> available;
  std::istringstream in{std::string(text)};
  std::string key;
  uint64_t value = 0;
  std::string unit;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    if (!(fields >> key >> value)) continue;
    if (key == "MemTotal:") total = value;
    if (key == "MemAvailable:") available = value;
  }
  if (!total || !available) return std::nullopt;
  return std::pair{*total, *available};
}

std::optional<uint64_t> parse_uptime_seconds(std::string_view text) {
  const size_t end = text.find(' ');
  auto d = to_double(text.substr(0, end));
  if (!d || *d < 0) return std::nullopt;
  return static_cast<uint64_t>(*d);
}

Result<protocol::Heartbeat> read_heartbeat(const HostRoot& root, const std::string& disk_path, int64_t now_ms) {
  protocol::Heartbeat h;
  h.time = now_ms;
  auto loadavg = read_file(root.map("/proc/loadavg").string());
  if (!loadavg) return loadavg.error();
  auto load = parse_loadavg(*loadavg);
  if (!load) return fail("/proc/loadavg: unexpected contents");
  h.load = *load;
  auto meminfo = read_file(root.map("/proc/meminfo").string());
  if (!meminfo) return meminfo.error();
  auto mem = parse_meminfo(*meminfo);
  if (!mem) return fail("/proc/meminfo: no MemTotal or MemAvailable");
  h.memory_total_kb = mem->first;
  h.memory_available_kb = mem->second;
  auto uptime = read_file(root.map("/proc/uptime").string());
  if (!uptime) return uptime.error();
  auto up = parse_uptime_seconds(*uptime);
  if (!up) return fail("/proc/uptime: unexpected contents");
  h.uptime_s = *up;
  struct statvfs vfs {};
  const std::string disk = root.map(disk_path).string();
  if (::statvfs(disk.c_str(), &vfs) != 0) return fail(disk + ": " + errno_text(errno));
  h.disk_total_kb = static_cast<uint64_t>(vfs.f_blocks) * vfs.f_frsize / 1024;
  h.disk_free_kb = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize / 1024;
  return h;
}

nlohmann::json host_facts(const HostRoot& root, const provisioner::NetworkChoice& network) {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) name[0] = '\0';
  utsname u{};
  ::uname(&u);
  return {{"hostname", std::string(name)},
          {"os", os_pretty_name(root)},
          {"kernel", std::string(u.release)},
          {"arch", std::string(u.machine)},
          {"farmhand_version", FARMHAND_VERSION},
          {"network_backend", network.configure ? std::string(provisioner::to_string(network.backend)) : "none"},
          {"firewall", std::string(provisioner::to_string(network.firewall))}};
}

nlohmann::json inventory_body(const InventoryInput& in, int64_t now_ms) {
  nlohmann::json containers = nlohmann::json::array();
  for (const auto& c : in.containers) {
    const std::string state = dashboard_state(c, in.running);
    auto h = in.health.find(c.name);
    auto s = in.started_ms.find(c.name);
    containers.push_back(inventory_row(c, state, h != in.health.end() ? &h->second : nullptr,
                                       s != in.started_ms.end() ? std::optional<int64_t>(s->second) : std::nullopt));
  }
  nlohmann::json devices = nlohmann::json::array();
  for (const auto& l : in.leases) {
    // The lease's own state, by its name in state.db and on the wire (a
    // state.db row in no known state reads as pending: udev/leases.cpp).
    nlohmann::json row = {{"id", device_id(l)},
                          {"node", l.devnode},
                          {"container", l.container},
                          {"state", std::string(udev::to_string(l.state))}};
    if (l.since_ms > 0) row["since"] = l.since_ms;
    devices.push_back(std::move(row));
  }
  return {{"time", now_ms}, {"host", in.host}, {"containers", containers}, {"devices", devices}};
}

}  // namespace farmhand::agent
