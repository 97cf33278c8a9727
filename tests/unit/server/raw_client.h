// A minimal blocking websocket/HTTP client over a raw socket, enough to talk
// to farmhand-server from a unit test (masked text frames, no extensions).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

namespace farmhand::server::test {

class RawClient {
 public:
  explicit RawClient(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  }
  ~RawClient() { ::close(fd_); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }

  // Sends an HTTP request and returns the response head (and keeps any body).
  std::string request(const std::string& text) {
    send_all(text);
    while (buf_.find("\r\n\r\n") == std::string::npos) {
      if (!fill()) break;
    }
    size_t end = buf_.find("\r\n\r\n");
    if (end == std::string::npos) return buf_;
    std::string head = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    return head;
  }
  // The rest of an HTTP body of `length` bytes.
  std::string body(size_t length) {
    while (buf_.size() < length && fill()) {
    }
    std::string out = buf_.substr(0, length);
    buf_.erase(0, out.size());
    return out;
  }

  // Upgrades to a websocket; the status code of the answer.
  int upgrade(const std::string& path, const std::string& protocol, const std::string& cookie = "") {
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                      "Sec-WebSocket-Protocol: " + protocol + "\r\n";
    if (!cookie.empty()) req += "Cookie: " + cookie + "\r\n";
    std::string head = request(req + "\r\n");
    if (head.size() < 12) return 0;
    return std::stoi(head.substr(9, 3));
  }

  void send_frame(const std::string& payload, uint8_t opcode = 1) {
    std::string f;
    f += static_cast<char>(0x80 | opcode);
    const size_t n = payload.size();
    if (n < 126) {
      f += static_cast<char>(0x80 | n);
    } else if (n < 65536) {
      f += static_cast<char>(0x80 | 126);
      f += static_cast<char>(n >> 8);
      f += static_cast<char>(n & 0xff);
    } else {
      f += static_cast<char>(0x80 | 127);
      for (int i = 7; i >= 0; --i) f += static_cast<char>((static_cast<uint64_t>(n) >> (8 * i)) & 0xff);
    }
    const char mask[4] = {0x12, 0x34, 0x56, 0x78};
    f.append(mask, 4);
    for (size_t i = 0; i < n; ++i) f += static_cast<char>(payload[i] ^ mask[i % 4]);
    send_all(f);
  }

  struct Message {
    int opcode = 0;
    std::string payload;  // for a close: the reason, after the code
    int close_code = 0;
  };
  // The next frame, or std::nullopt when the connection ends or times out.
  std::optional<Message> receive() {
    if (!need(2)) return std::nullopt;
    const auto b0 = static_cast<uint8_t>(buf_[0]);
    uint64_t n = static_cast<uint8_t>(buf_[1]) & 0x7f;
    size_t header = 2;
    if (n == 126) {
      if (!need(4)) return std::nullopt;
      n = (static_cast<uint64_t>(static_cast<uint8_t>(buf_[2])) << 8) | static_cast<uint8_t>(buf_[3]);
      header = 4;
    } else if (n == 127) {
      if (!need(10)) return std::nullopt;
      n = 0;
      for (int i = 0; i < 8; ++i) n = (n << 8) | static_cast<uint8_t>(buf_[2 + i]);
      header = 10;
    }
    if (!need(header + n)) return std::nullopt;
    Message m;
    m.opcode = b0 & 0x0f;
    m.payload = buf_.substr(header, n);
    buf_.erase(0, header + n);
    if (m.opcode == 8 && m.payload.size() >= 2) {
      m.close_code = (static_cast<uint8_t>(m.payload[0]) << 8) | static_cast<uint8_t>(m.payload[1]);
      m.payload.erase(0, 2);
    }
    return m;
  }

 private:
  void send_all(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return;
      off += static_cast<size_t>(n);
    }
  }
  bool fill() {
    char tmp[65536];
    ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }
  bool need(size_t n) {
    while (buf_.size() < n) {
      if (!fill()) return false;
    }
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

}  // namespace farmhand::server::test
