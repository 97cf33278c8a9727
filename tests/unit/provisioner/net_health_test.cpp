// The network health check: the DNS probe's wire format, and the whole
// check run for real from inside another network namespace (root only).
#include "provisioner/net_health.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>

namespace farmhand::provisioner {
namespace {

TEST(DnsProbe, AsksForLocalhostWithRecursion) {
  auto q = dns_probe_query(0xbeef);
  const std::vector<uint8_t> want = {0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 9, 'l', 'o', 'c', 'a', 'l',
                                     'h',  'o',  's',  't',  0, 0, 1, 0, 1};
  EXPECT_EQ(q, want);
}

TEST(DnsProbe, AcceptsOnlyAResponseToItsOwnId) {
  std::string rcode;
  std::vector<uint8_t> answer = {0xbe, 0xef, 0x81, 0x85, 0, 1, 0, 0, 0, 0, 0, 0};
  EXPECT_TRUE(parse_dns_answer(answer.data(), answer.size(), 0xbeef, rcode));
  EXPECT_EQ(rcode, "REFUSED");
  answer[3] = 0x80;
  EXPECT_TRUE(parse_dns_answer(answer.data(), answer.size(), 0xbeef, rcode));
  EXPECT_EQ(rcode, "NOERROR");
  EXPECT_FALSE(parse_dns_answer(answer.data(), answer.size(), 0xbeee, rcode));  // another id
  answer[2] = 0x01;                                                             // a query, not a response
  EXPECT_FALSE(parse_dns_answer(answer.data(), answer.size(), 0xbeef, rcode));
  EXPECT_FALSE(parse_dns_answer(answer.data(), 11, 0xbeef, rcode));  // too short
}

// A child in a network namespace of its own with only loopback up; with
// `dns`, it answers every DNS query on 127.0.0.1:53 with REFUSED.
class NamespaceChild {
 public:
  explicit NamespaceChild(bool dns) {
    int ready[2];
    if (::pipe(ready) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(ready[0]);
      if (::unshare(CLONE_NEWNET) != 0) ::_exit(1);
      int s = ::socket(AF_INET, SOCK_DGRAM, 0);
      ifreq ifr{};
      std::strcpy(ifr.ifr_name, "lo");
      if (::ioctl(s, SIOCGIFFLAGS, &ifr) != 0) ::_exit(2);
      ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
      if (::ioctl(s, SIOCSIFFLAGS, &ifr) != 0) ::_exit(3);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(53);
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (dns && ::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) ::_exit(4);
      if (::write(ready[1], "x", 1) != 1) ::_exit(5);
      for (;;) {
        if (!dns) {
          ::pause();
          continue;
        }
        uint8_t buf[512];
        sockaddr_in from{};
        socklen_t len = sizeof from;
        ssize_t n = ::recvfrom(s, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
        if (n < 12) continue;
        buf[2] = static_cast<uint8_t>(buf[2] | 0x80);
        buf[3] = static_cast<uint8_t>((buf[3] & 0xf0) | 5);
        (void)::sendto(s, buf, static_cast<size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), len);
      }
    }
    ::close(ready[1]);
    char c;
    ok_ = pid_ > 0 && ::read(ready[0], &c, 1) == 1;
    ::close(ready[0]);
  }
  ~NamespaceChild() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  bool ok() const { return ok_; }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  bool ok_ = false;
};

TEST(NetworkHealth, ChecksFromInsideAnotherNetworkNamespace) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces, raw ICMP); CI runs unit tests as root";
  NamespaceChild child(true);
  ASSERT_TRUE(child.ok()) << "could not set up the namespace";
  NetworkHealth h = check_network_health(child.pid(), "127.0.0.1", std::chrono::seconds(5));
  EXPECT_TRUE(h.healthy) << h.reason;
  EXPECT_GE(h.gateway_ms, 0);
  EXPECT_GE(h.dns_ms, 0);
  EXPECT_EQ(h.dns_rcode, "REFUSED");
}

TEST(NetworkHealth, NamesWhatIsMissing) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces, raw ICMP); CI runs unit tests as root";
  NamespaceChild no_dns(false);
  ASSERT_TRUE(no_dns.ok());
  NetworkHealth h = check_network_health(no_dns.pid(), "127.0.0.1", std::chrono::seconds(2));
  EXPECT_FALSE(h.healthy);
  EXPECT_EQ(h.reason, "no DNS server answers on the gateway 127.0.0.1 (nothing listens on port 53)");

  // In that namespace nothing routes to 10.0.0.1: no ping answer.
  h = check_network_health(no_dns.pid(), "10.0.0.1", std::chrono::milliseconds(1200));
  EXPECT_FALSE(h.healthy);
  EXPECT_EQ(h.reason.rfind("the gateway 10.0.0.1 does not answer ping (", 0), 0u) << h.reason;

  h = check_network_health(no_dns.pid(), "not-an-address", std::chrono::seconds(1));
  EXPECT_EQ(h.reason, "bad gateway address \"not-an-address\"");
}

}  // namespace
}  // namespace farmhand::provisioner
