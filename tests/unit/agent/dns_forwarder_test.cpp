// The gateway's DNS forwarder for `farmhand run`, on loopback: a real
// forwarder, a real UDP "upstream" resolver in the test, real sockets.
#include "agent/dns_forwarder.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace farmhand::agent {
namespace {

// A query for NAME (type A, class IN) with id ID.
std::string query(uint16_t id, const std::string& name) {
  std::string q;
  q += static_cast<char>(id >> 8);
  q += static_cast<char>(id & 0xff);
  q += std::string("\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00", 10);  // RD, one question
  size_t start = 0;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    q += static_cast<char>(dot - start);
    q += name.substr(start, dot - start);
    start = dot + 1;
  }
  q += std::string("\x00\x00\x01\x00\x01", 5);
  return q;
}

struct Udp {
  int fd = -1;
  uint16_t port = 0;
  Udp() {
    fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~Udp() { ::close(fd); }
  void send_to(uint16_t to, const std::string& data) const {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(to);
    ::sendto(fd, data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  // The next datagram within `ms`, or "" (and `from`'s port).
  std::string receive(int ms, uint16_t* from = nullptr) const {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, ms) != 1) return "";
    char buf[4096];
    sockaddr_in a{};
    socklen_t len = sizeof a;
    ssize_t n = ::recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&a), &len);
    if (from) *from = ntohs(a.sin_port);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  }
};

// A free UDP port on loopback for the forwarder.
uint16_t free_port() {
  Udp u;
  return u.port;
}

TEST(ResolvConf, NameserversInOrderIpv4OnlyWithoutTheGateway) {
  const std::string text =
      "# generated\nsearch example.test\nnameserver 10.0.0.53\nnameserver ::1\n"
      "nameserver 192.168.80.1\nnameserver   127.0.0.53  \nnameserver 10.0.0.53\noptions edns0\n";
  EXPECT_EQ((std::vector<std::string>{"10.0.0.53", "127.0.0.53"}), resolv_conf_nameservers(text, "192.168.80.1"));
  EXPECT_TRUE(resolv_conf_nameservers("").empty());
}

TEST(Servfail, KeepsIdAndQuestionDropsTheRest) {
  std::string q = query(0xbeef, "localhost");
  q[11] = 1;  // an additional record (EDNS) follows the question
  q += std::string("\x00\x00\x29\x10\x00\x00\x00\x00\x00\x00\x00", 11);
  const std::string a = servfail_for(q);
  ASSERT_EQ(q.size() - 11, a.size());
  EXPECT_EQ(q.substr(0, 2), a.substr(0, 2));
  EXPECT_EQ(0x81, static_cast<uint8_t>(a[2]));  // QR, RD kept
  EXPECT_EQ(0x82, static_cast<uint8_t>(a[3]));  // RA, SERVFAIL
  EXPECT_EQ(std::string("\x00\x01\x00\x00\x00\x00\x00\x00", 8), a.substr(4, 8));
  EXPECT_EQ(q.substr(12, a.size() - 12), a.substr(12));
}

TEST(Servfail, RefusesWhatIsNoQuery) {
  EXPECT_EQ("", servfail_for(""));
  EXPECT_EQ("", servfail_for("short"));
  std::string answer = query(1, "x");
  answer[2] = static_cast<char>(0x81);
  EXPECT_EQ("", servfail_for(answer));
  std::string two = query(1, "x");
  two[5] = 2;
  EXPECT_EQ("", servfail_for(two));
  std::string cut = query(1, "localhost");
  cut.resize(cut.size() - 3);
  EXPECT_EQ("", servfail_for(cut));
  std::string compressed = query(1, "x");
  compressed[12] = static_cast<char>(0xc0);
  EXPECT_EQ("", servfail_for(compressed));
}

TEST(DnsForwarder, RelaysTheUpstreamAnswerToTheClient) {
  Udp upstream;
  const uint16_t port = free_port();
  auto f = DnsForwarder::start("127.0.0.1", port, {"127.0.0.1:" + std::to_string(upstream.port)});
  ASSERT_TRUE(f) << f.error().message();
  Udp client;
  const std::string q = query(0x1234, "upstream.farm.test");
  client.send_to(port, q);
  uint16_t forwarder_port = 0;
  const std::string got = upstream.receive(2000, &forwarder_port);
  ASSERT_EQ(q, got) << "the query reaches the upstream unchanged";
  std::string answer = got;
  answer[2] = static_cast<char>(0x81);
  answer[3] = static_cast<char>(0x80);
  answer += "answer-bytes";
  upstream.send_to(forwarder_port, answer);
  EXPECT_EQ(answer, client.receive(2000));
}

TEST(DnsForwarder, IgnoresAnAnswerWithAnotherIdThenTimesOutWithServfail) {
  Udp upstream;
  const uint16_t port = free_port();
  auto f = DnsForwarder::start("127.0.0.1", port, {"127.0.0.1:" + std::to_string(upstream.port)});
  ASSERT_TRUE(f) << f.error().message();
  Udp client;
  const std::string q = query(0x0101, "slow.farm.test");
  client.send_to(port, q);
  uint16_t forwarder_port = 0;
  ASSERT_EQ(q, upstream.receive(2000, &forwarder_port));
  std::string wrong = query(0x0202, "slow.farm.test");
  wrong[2] = static_cast<char>(0x81);
  upstream.send_to(forwarder_port, wrong);
  const std::string got = client.receive(5000);
  EXPECT_EQ(servfail_for(q), got) << "after the upstream time limit, SERVFAIL and not the stray answer";
}

TEST(DnsForwarder, WithoutUpstreamsAnswersServfailAtOnce) {
  const uint16_t port = free_port();
  auto f = DnsForwarder::start("127.0.0.1", port, {});
  ASSERT_TRUE(f) << f.error().message();
  Udp client;
  const std::string q = query(7, "localhost");
  client.send_to(port, q);
  EXPECT_EQ(servfail_for(q), client.receive(1000));
  client.send_to(port, "garbage");  // dropped, and the forwarder goes on
  client.send_to(port, q);
  EXPECT_EQ(servfail_for(q), client.receive(1000));
}

TEST(DnsForwarder, RefusesAnAddressInUseAndABadUpstream) {
  Udp taken;
  auto f = DnsForwarder::start("127.0.0.1", taken.port, {});
  ASSERT_FALSE(f);
  EXPECT_NE(std::string::npos, f.error().message().find("in use")) << f.error().message();
  auto bad = DnsForwarder::start("127.0.0.1", free_port(), {"not-an-address"});
  ASSERT_FALSE(bad);
  EXPECT_NE(std::string::npos, bad.error().message().find("not-an-address"));
}

}  // namespace
}  // namespace farmhand::agent
