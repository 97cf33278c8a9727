#include "agent/dns_forwarder.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <optional>
#include <cstring>
#include <sstream>

#include "common/clock.h"
#include "common/log.h"

namespace farmhand::agent {

namespace {

constexpr size_t kHeader = 12;
constexpr size_t kMaxMessage = 4096;  // EDNS answers beyond this are rare on a build network

std::optional<sockaddr_in> ipv4(const std::string& address, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (::inet_pton(AF_INET, address.c_str(), &a.sin_addr) != 1) return std::nullopt;
  return a;
}

uint16_t id_of(std::string_view m) {
  return static_cast<uint16_t>((static_cast<uint8_t>(m[0]) << 8) | static_cast<uint8_t>(m[1]));
}

}  // namespace

std::vector<std::string> resolv_conf_nameservers(std::string_view text, const std::string& skip) {
  std::vector<std::string> out;
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string key, value;
    if (!(words >> key >> value) || key != "nameserver") continue;
    in_addr a{};
    if (value == skip || ::inet_pton(AF_INET, value.c_str(), &a) != 1) continue;
    if (std::find(out.begin(), out.end(), value) == out.end()) out.push_back(value);
  }
  return out;
}

std::string servfail_for(std::string_view query) {
  if (query.size() < kHeader) return {};
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(query[i]); };
  if (byte(2) & 0x80) return {};                   // an answer, not a query
  const unsigned qdcount = (byte(4) << 8) | byte(5);
  if (qdcount != 1) return {};
  // The question: a name of labels, then type and class.
  size_t i = kHeader;
  while (i < query.size() && byte(i) != 0) {
    if (byte(i) & 0xc0) return {};  // no compression in a question we answer
    i += 1 + byte(i);
  }
  if (i + 5 > query.size()) return {};
  std::string out(query.substr(0, i + 5));
  out[2] = static_cast<char>(0x80 | (byte(2) & 0x79));  // QR, keep opcode and RD
  out[3] = static_cast<char>(0x80 | 2);                  // RA, RCODE SERVFAIL
  for (size_t k = 6; k < kHeader; ++k) out[k] = 0;       // no answer, authority or additional records
  return out;
}

struct DnsForwarder::Pending {
  int fd = -1;
  sockaddr_in client{};
  std::string query;
  size_t upstream = 0;
  std::chrono::steady_clock::time_point deadline;
  ~Pending() {
    if (fd >= 0) ::close(fd);
  }
};

Result<std::unique_ptr<DnsForwarder>> DnsForwarder::start(const std::string& address, uint16_t port,
                                                          std::vector<std::string> upstreams) {
  auto listen_at = ipv4(address, port);
  if (!listen_at) return fail("\"" + address + "\" is not an IPv4 address");
  std::unique_ptr<DnsForwarder> f(new DnsForwarder());
  for (const auto& u : upstreams) {
    // "ADDRESS" or "ADDRESS:PORT"
    const auto colon = u.find(':');
    const int upstream_port = colon == std::string::npos ? 53 : std::atoi(u.c_str() + colon + 1);
    if (upstream_port <= 0 || upstream_port > 65535) return fail("bad upstream DNS server \"" + u + "\"");
    auto a = ipv4(u.substr(0, colon), static_cast<uint16_t>(upstream_port));
    if (!a) return fail("bad upstream DNS server \"" + u + "\"");
    f->upstreams_.push_back(*a);
  }
  f->listen_fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (f->listen_fd_ < 0) return fail("DNS on " + address + ": socket: " + errno_text(errno));
  if (::bind(f->listen_fd_, reinterpret_cast<const sockaddr*>(&*listen_at), sizeof *listen_at) != 0) {
    return fail("DNS on " + address + ":" + std::to_string(port) + ": " + errno_text(errno));
  }
  f->stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (f->stop_fd_ < 0) return fail("DNS on " + address + ": eventfd: " + errno_text(errno));
  f->thread_ = std::thread([raw = f.get()] { raw->serve(); });
  return f;
}

DnsForwarder::~DnsForwarder() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void)!::write(stop_fd_, &one, sizeof one);
    thread_.join();
  }
  pending_.clear();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (stop_fd_ >= 0) ::close(stop_fd_);
}

void DnsForwarder::reply(const sockaddr_in& client, std::string_view data) {
  if (data.empty()) return;
  (void)::sendto(listen_fd_, data.data(), data.size(), MSG_DONTWAIT, reinterpret_cast<const sockaddr*>(&client),
                 sizeof client);
}

void DnsForwarder::send_upstream(Pending& p) {
  if (p.fd >= 0) ::close(p.fd);
  p.fd = -1;
  while (p.upstream < upstreams_.size()) {
    const sockaddr_in& to = upstreams_[p.upstream];
    // A connected socket of its own per query: only that server's answers
    // reach it, and its random source port makes spoofed answers unlikely.
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd >= 0 && ::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) == 0 &&
        ::send(fd, p.query.data(), p.query.size(), 0) == static_cast<ssize_t>(p.query.size())) {
      p.fd = fd;
      p.deadline = monotonic_now() + kUpstreamTimeout;
      return;
    }
    if (fd >= 0) ::close(fd);
    ++p.upstream;
  }
}

void DnsForwarder::on_query() {
  for (int n = 0; n < 64; ++n) {  // a burst at a time; poll() brings the rest
    char buf[kMaxMessage];
    sockaddr_in client{};
    socklen_t len = sizeof client;
    ssize_t got = ::recvfrom(listen_fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&client), &len);
    if (got < 0) return;
    std::string_view query(buf, static_cast<size_t>(got));
    const std::string servfail = servfail_for(query);
    if (servfail.empty()) continue;  // not a query: dropped
    if (pending_.size() >= kMaxInFlight || upstreams_.empty()) {
      reply(client, servfail);
      continue;
    }
    auto p = std::make_unique<Pending>();
    p->client = client;
    p->query.assign(query);
    send_upstream(*p);
    if (p->fd < 0) {
      reply(client, servfail);
      continue;
    }
    pending_.push_back(std::move(p));
  }
}

void DnsForwarder::on_answer(size_t index) {
  Pending& p = *pending_[index];
  char buf[kMaxMessage];
  ssize_t got = ::recv(p.fd, buf, sizeof buf, 0);
  if (got < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (got >= static_cast<ssize_t>(kHeader) && id_of(std::string_view(buf, 2)) == id_of(p.query)) {
    reply(p.client, std::string_view(buf, static_cast<size_t>(got)));
    pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(index));
    return;
  }
  if (got < 0) {  // refused (ICMP port unreachable): the next server, if any
    ++p.upstream;
    send_upstream(p);
    if (p.fd < 0) {
      reply(p.client, servfail_for(p.query));
      pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(index));
    }
  }
  // Anything else (a stray datagram with another id) is ignored.
}

void DnsForwarder::expire(std::chrono::steady_clock::time_point now) {
  for (size_t i = 0; i < pending_.size();) {
    Pending& p = *pending_[i];
    if (p.deadline > now) {
      ++i;
      continue;
    }
    ++p.upstream;
    send_upstream(p);
    if (p.fd >= 0) {
      ++i;
      continue;
    }
    reply(p.client, servfail_for(p.query));
    pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(i));
  }
}

void DnsForwarder::serve() {
  std::vector<pollfd> fds;
  for (;;) {
    fds.clear();
    fds.push_back({stop_fd_, POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    auto now = monotonic_now();
    auto next = now + std::chrono::seconds(60);
    for (const auto& p : pending_) {
      fds.push_back({p->fd, POLLIN, 0});
      next = std::min(next, p->deadline);
    }
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count();
    int n = ::poll(fds.data(), fds.size(), static_cast<int>(std::max<long long>(0, wait) + 1));
    if (n < 0 && errno != EINTR) {
      log::error("DNS forwarder: poll: ", errno_text(errno));
      return;
    }
    if (fds[0].revents) return;
    // Answers first, from the back, so erasing keeps the other indexes valid.
    for (size_t i = fds.size(); i-- > 2;) {
      if (fds[i].revents) on_answer(i - 2);
    }
    if (fds[1].revents) on_query();
    expire(monotonic_now());
  }
}

}  // namespace farmhand::agent
