// A small DNS forwarder on a container's gateway address, for hosts where
// nothing else answers there: without systemd there is no systemd-resolved
// stub listener and no NetworkManager dnsmasq, and a container's
// /etc/resolv.conf points at its gateway.
//
// UDP only: each query is sent on to the host's own resolvers (from the
// host's /etc/resolv.conf) and the answer relayed back. A query nobody
// answers within the time limit gets SERVFAIL, so a client never waits in
// vain; at most kMaxInFlight queries are outstanding, and further ones are
// answered SERVFAIL at once, so a container cannot make the host hold an
// unbounded number of sockets. A truncated answer is relayed as it is (the
// client then retries over TCP, which is not served: the host's resolver is
// reached from the container only by UDP).
#pragma once

#include <netinet/in.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/result.h"

namespace farmhand::agent {

// The nameservers of a resolv.conf text, IPv4 only, in order; `skip` is
// left out (the gateway itself, which would loop).
std::vector<std::string> resolv_conf_nameservers(std::string_view text, const std::string& skip = "");

// The SERVFAIL answer to `query` (its header and question), or an empty
// string if `query` is not a DNS query worth answering.
std::string servfail_for(std::string_view query);

class DnsForwarder {
 public:
  static constexpr size_t kMaxInFlight = 256;
  static constexpr std::chrono::milliseconds kUpstreamTimeout{2500};

  // Listens on `address`:`port` (UDP) and serves on a thread of its own
  // until destroyed. Upstreams are "ADDRESS" (port 53) or "ADDRESS:PORT". `upstreams` may be empty: every query then gets
  // SERVFAIL, which still tells a client that DNS is served here.
  static Result<std::unique_ptr<DnsForwarder>> start(const std::string& address, uint16_t port,
                                                     std::vector<std::string> upstreams);
  ~DnsForwarder();
  DnsForwarder(const DnsForwarder&) = delete;
  DnsForwarder& operator=(const DnsForwarder&) = delete;

 private:
  struct Pending;
  DnsForwarder() = default;
  void serve();
  void on_query();
  void on_answer(size_t index);
  void send_upstream(Pending& p);
  void expire(std::chrono::steady_clock::time_point now);
  void reply(const sockaddr_in& client, std::string_view data);

  int listen_fd_ = -1;
  int stop_fd_ = -1;  // an eventfd: written to stop the thread
  std::vector<sockaddr_in> upstreams_;
  std::vector<std::unique_ptr<Pending>> pending_;
  std::thread thread_;
};

}  // namespace farmhand::agent
