#include <gtest/gtest.h>
#include <sys/stat.h>

#include <thread>

#include "agent/credential.h"
#include "agent/enroll_exchange.h"
#include "common/fs.h"
#include "tests/unit/agent/fake_server.h"
#include "tests/unit/temp_dir.h"

namespace farmhand::agent {
namespace {

using std::chrono::milliseconds;

// A FakeServer on its own loop and thread, for the blocking exchange.
class ServerThread {
 public:
  explicit ServerThread(test::FakeServer::Options options = {}) {
    loop_ = std::move(EventLoop::create()).value();
    server_ = std::make_unique<test::FakeServer>(*loop_, options);
    url_ = server_->url();
    thread_ = std::thread([this] { loop_->run(); });
  }
  ~ServerThread() {
    loop_->stop();
    thread_.join();
    loop_.reset();
    server_.reset();
  }
  const std::string& url() const { return url_; }

 private:
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<test::FakeServer> server_;
  std::string url_;
  std::thread thread_;
};

TEST(EnrollExchange, TradesTheTokenForTheCredential) {
  ServerThread server;
  auto r = exchange_enrollment_token(server.url(), "fht_good", "", milliseconds(10000));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->host, "builder-01");
  EXPECT_EQ(r->credential, "fhc_issued");
}

TEST(EnrollExchange, ReportsTheServersRefusalWithoutTheToken) {
  ServerThread server;
  auto r = exchange_enrollment_token(server.url(), "fht_secret_bad", "", milliseconds(10000));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), server.url() + " refused the enrollment: unknown or expired token (unauthorized)");
  EXPECT_EQ(r.error().message().find("fht_secret_bad"), std::string::npos);
}

TEST(EnrollExchange, ReportsARefusedConnection) {
  int port = 0;
  {
    // A port that was just free: nothing listens there now.
    ServerThread server;
    port = std::stoi(server.url().substr(server.url().rfind(':') + 1));
  }
  std::string url = "ws://127.0.0.1:" + std::to_string(port);
  auto r = exchange_enrollment_token(url, "fht_good", "", milliseconds(10000));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message().rfind("cannot enroll with " + url + ": ", 0), 0u) << r.error().message();
}

TEST(EnrollExchange, TimesOutOnASilentServer) {
  test::FakeServer::Options options;
  options.silent = true;
  ServerThread server(options);
  auto r = exchange_enrollment_token(server.url(), "fht_good", "", milliseconds(300));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "no answer from " + server.url() + " within 300 ms");
}

TEST(EnrollExchange, RefusesABadUrlBeforeConnecting) {
  auto bad = exchange_enrollment_token("ftp://x", "t", "", milliseconds(100));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message(), "server URL 'ftp://x': expected ws://, wss://, http:// or https://");
}

TEST(Credential, RoundTripsWithMode0600) {
  farmhand::test::TempDir dir;
  std::string path = (dir.path() / "credential").string();
  ASSERT_TRUE(write_credential(path, {"wss://farm:8443", "builder-01", "fhc_abc"}));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto c = read_credential(path);
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->server, "wss://farm:8443");
  EXPECT_EQ(c->host, "builder-01");
  EXPECT_EQ(c->credential, "fhc_abc");
}

TEST(Credential, ClearErrors) {
  farmhand::test::TempDir dir;
  std::string path = (dir.path() / "credential").string();
  EXPECT_EQ(read_credential(path).error().message(),
            "not enrolled: " + path + " does not exist; run farmhand enroll --server URL --token TOKEN");
  ASSERT_TRUE(write_file_atomic(path, "{\"server\": \"ws://x\", \"host\": 3}", 0600));
  EXPECT_EQ(read_credential(path).error().message(), path + ": /host: expected a non-empty string");
  ASSERT_TRUE(write_file_atomic(path, "[", 0600));
  EXPECT_EQ(read_credential(path).error().message(), path + ": expected a JSON object");
}

}  // namespace
}  // namespace farmhand::agent
