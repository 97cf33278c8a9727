#include "provisioner/net_health.h"

#include "common/clock.h"
#include "common/fs.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <random>
#include <thread>

namespace farmhand::provisioner {

namespace {

using MonoTime = Clock::MonoTime;

using Fd = UniqueFd;

double ms_since(MonoTime t0) {
  return std::chrono::duration<double, std::milli>(monotonic_now() - t0).count();
}

uint16_t checksum(const uint8_t* data, size_t size) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < size; i += 2) sum += static_cast<uint32_t>(data[i] << 8 | data[i + 1]);
  if (size % 2) sum += static_cast<uint32_t>(data[size - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

// Waits for `fd` to be readable until `deadline`.
bool wait_readable(int fd, MonoTime deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - monotonic_now()).count();
    if (left <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left));
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return false;
  }
}

// One ICMP echo to `to`; the round trip in ms, or -1 with `why` set.
double ping_once(const sockaddr_in& to, uint16_t id, uint16_t seq, MonoTime deadline, std::string& why) {
  Fd s(::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP));
  if (s.get() < 0) {
    why = std::string("cannot open an ICMP socket: ") + std::strerror(errno);
    return -1;
  }
  std::array<uint8_t, 16> pkt{};
  pkt[0] = ICMP_ECHO;
  pkt[4] = static_cast<uint8_t>(id >> 8);
  pkt[5] = static_cast<uint8_t>(id);
  pkt[6] = static_cast<uint8_t>(seq >> 8);
  pkt[7] = static_cast<uint8_t>(seq);
  std::memcpy(pkt.data() + 8, "farmhand", 8);
  uint16_t sum = checksum(pkt.data(), pkt.size());
  pkt[2] = static_cast<uint8_t>(sum >> 8);
  pkt[3] = static_cast<uint8_t>(sum);
  const auto t0 = monotonic_now();
  if (::sendto(s.get(), pkt.data(), pkt.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to) < 0) {
    why = std::string("cannot send a ping: ") + std::strerror(errno);
    return -1;
  }
  std::array<uint8_t, 1500> buf{};
  while (wait_readable(s.get(), deadline)) {
    sockaddr_in from{};
    socklen_t len = sizeof from;
    ssize_t n = ::recvfrom(s.get(), buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
    if (n <= 0 || from.sin_addr.s_addr != to.sin_addr.s_addr) continue;
    size_t ihl = static_cast<size_t>(buf[0] & 0x0f) * 4;  // raw ICMP sockets see the IP header
    if (static_cast<size_t>(n) < ihl + 8) continue;
    const uint8_t* icmp = buf.data() + ihl;
    if (icmp[0] == ICMP_ECHOREPLY && (icmp[4] << 8 | icmp[5]) == id && (icmp[6] << 8 | icmp[7]) == seq) {
      return ms_since(t0);
    }
  }
  why = "no reply";
  return -1;
}

double dns_once(const sockaddr_in& to, uint16_t id, MonoTime deadline, std::string& rcode, std::string& why) {
  sockaddr_in server = to;
  server.sin_port = htons(53);
  Fd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (s.get() < 0 || ::connect(s.get(), reinterpret_cast<const sockaddr*>(&server), sizeof server) != 0) {
    why = std::string("cannot open a DNS socket: ") + std::strerror(errno);
    return -1;
  }
  auto query = dns_probe_query(id);
  const auto t0 = monotonic_now();
  if (::send(s.get(), query.data(), query.size(), 0) < 0) {
    why = std::string("cannot send a DNS query: ") + std::strerror(errno);
    return -1;
  }
  std::array<uint8_t, 1500> buf{};
  while (wait_readable(s.get(), deadline)) {
    ssize_t n = ::recv(s.get(), buf.data(), buf.size(), 0);
    if (n < 0) {
      // ICMP port unreachable comes back as ECONNREFUSED: nothing listens.
      why = errno == ECONNREFUSED ? "nothing listens on port 53" : std::string(std::strerror(errno));
      return -1;
    }
    if (parse_dns_answer(buf.data(), static_cast<size_t>(n), id, rcode)) return ms_since(t0);
  }
  why = "no answer";
  return -1;
}

}  // namespace

std::vector<uint8_t> dns_probe_query(uint16_t id) {
  std::vector<uint8_t> q = {static_cast<uint8_t>(id >> 8), static_cast<uint8_t>(id), 0x01, 0x00,  // RD
                            0, 1, 0, 0, 0, 0, 0, 0};
  const char* label = "localhost";
  q.push_back(static_cast<uint8_t>(std::strlen(label)));
  q.insert(q.end(), label, label + std::strlen(label));
  q.push_back(0);
  q.insert(q.end(), {0, 1, 0, 1});  // type A, class IN
  return q;
}

bool parse_dns_answer(const uint8_t* data, size_t size, uint16_t id, std::string& rcode) {
  if (size < 12) return false;
  if ((data[0] << 8 | data[1]) != id) return false;
  if ((data[2] & 0x80) == 0) return false;  // not a response
  static const char* const kNames[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"};
  unsigned code = data[3] & 0x0f;
  rcode = code < 6 ? kNames[code] : "RCODE" + std::to_string(code);
  return true;
}

NetworkHealth check_network_health(pid_t leader, const std::string& gateway, std::chrono::milliseconds timeout) {
  NetworkHealth h;
  sockaddr_in to{};
  to.sin_family = AF_INET;
  if (::inet_pton(AF_INET, gateway.c_str(), &to.sin_addr) != 1) {
    h.reason = "bad gateway address \"" + gateway + "\"";
    return h;
  }
  const std::string ns_path = "/proc/" + std::to_string(leader) + "/ns/net";
  int ns = ::open(ns_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (ns < 0) {
    h.reason = "cannot open the container's network namespace: " + std::string(std::strerror(errno));
    return h;
  }
  std::thread worker([&] {
    if (::setns(ns, CLONE_NEWNET) != 0) {
      h.reason = "cannot enter the container's network namespace: " + std::string(std::strerror(errno));
      return;
    }
    std::random_device rd;
    const auto id = static_cast<uint16_t>(rd());
    const auto deadline = monotonic_now() + timeout;
    std::string why;
    // A container still booting may not have its address yet: try again
    // every half second until the deadline.
    for (uint16_t seq = 1; h.gateway_ms < 0 && monotonic_now() < deadline; ++seq) {
      auto attempt = std::min(deadline, monotonic_now() + std::chrono::milliseconds(500));
      h.gateway_ms = ping_once(to, id, seq, attempt, why);
      if (h.gateway_ms < 0) std::this_thread::sleep_until(attempt);
    }
    if (h.gateway_ms < 0) {
      h.reason = "the gateway " + gateway + " does not answer ping (" + why + ")";
      return;
    }
    for (uint16_t n = 0; h.dns_ms < 0 && monotonic_now() < deadline; ++n) {
      auto attempt = std::min(deadline, monotonic_now() + std::chrono::seconds(1));
      h.dns_ms = dns_once(to, static_cast<uint16_t>(id + n), attempt, h.dns_rcode, why);
      if (h.dns_ms < 0) std::this_thread::sleep_until(attempt);
    }
    if (h.dns_ms < 0) {
      h.reason = "no DNS server answers on the gateway " + gateway + " (" + why + ")";
      return;
    }
    h.healthy = true;
  });
  worker.join();
  ::close(ns);
  return h;
}

}  // namespace farmhand::provisioner
