#include "agent/loop.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <thread>
#include <vector>

namespace farmhand::agent {
namespace {

std::unique_ptr<EventLoop> make_loop() {
  auto loop = EventLoop::create();
  if (!loop) ADD_FAILURE() << loop.error().message();
  return std::move(loop).value();
}

// A safety net so a broken loop fails the test instead of hanging it.
void stop_after(EventLoop& loop, std::chrono::seconds limit, bool& timed_out) {
  loop.after(limit, [&] {
    timed_out = true;
    loop.stop();
  });
}

int open_fd_count() {
  int n = 0;
  for (int fd = 0; fd < 4096; ++fd) {
    if (::fcntl(fd, F_GETFD) >= 0) ++n;
  }
  return n;
}

TEST(EventLoop, TimersFireInOrderAndCancelledOnesDoNot) {
  auto loop = make_loop();
  std::vector<int> fired;
  loop->after(std::chrono::milliseconds(30), [&] { fired.push_back(3); });
  loop->after(std::chrono::milliseconds(10), [&] { fired.push_back(1); });
  auto cancelled = loop->after(std::chrono::milliseconds(20), [&] { fired.push_back(2); });
  loop->after(std::chrono::milliseconds(50), [&] { loop->stop(); });
  loop->cancel(cancelled);
  loop->run();
  EXPECT_EQ(fired, (std::vector<int>{1, 3}));
}

TEST(EventLoop, TimerMayScheduleAndCancelFromItsCallback) {
  auto loop = make_loop();
  int count = 0;
  EventLoop::TimerId other = loop->after(std::chrono::milliseconds(40), [&] { count += 100; });
  loop->after(std::chrono::milliseconds(5), [&] {
    ++count;
    loop->cancel(other);
    loop->after(std::chrono::milliseconds(5), [&] {
      ++count;
      loop->stop();
    });
  });
  loop->run();
  EXPECT_EQ(count, 2);
}

TEST(EventLoop, PostFromAnotherThreadRunsOnTheLoop) {
  auto loop = make_loop();
  bool timed_out = false;
  stop_after(*loop, std::chrono::seconds(20), timed_out);
  std::thread::id loop_thread = std::this_thread::get_id();
  std::vector<int> seen;
  bool same_thread = true;
  std::thread poster([&] {
    for (int i = 0; i < 100; ++i) {
      loop->post([&, i] {
        if (std::this_thread::get_id() != loop_thread) same_thread = false;
        seen.push_back(i);
        if (i == 99) loop->stop();
      });
    }
  });
  loop->run();
  poster.join();
  EXPECT_FALSE(timed_out);
  ASSERT_EQ(seen.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(seen[static_cast<size_t>(i)], i);
  EXPECT_TRUE(same_thread);
}

TEST(EventLoop, StopFromAnotherThread) {
  auto loop = make_loop();
  bool timed_out = false;
  stop_after(*loop, std::chrono::seconds(20), timed_out);
  std::thread stopper([&] { loop->stop(); });
  loop->run();
  stopper.join();
  EXPECT_FALSE(timed_out);
}

TEST(EventLoop, WatchesAPipeAndLeavesTheCallersFdOpen) {
  int before = open_fd_count();
  {
    auto loop = make_loop();
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
    bool timed_out = false;
    stop_after(*loop, std::chrono::seconds(20), timed_out);
    std::string got;
    EventLoop::WatchId id = 0;
    auto w = loop->watch_fd(fds[0], [&] {
      char buf[64];
      ssize_t n = ::read(fds[0], buf, sizeof(buf));
      if (n > 0) got.append(buf, static_cast<size_t>(n));
      if (got == "hello") {
        loop->unwatch(id);
        loop->after(std::chrono::milliseconds(20), [&] { loop->stop(); });
      }
    });
    ASSERT_TRUE(w) << w.error().message();
    id = *w;
    loop->after(std::chrono::milliseconds(10), [&] { ASSERT_EQ(::write(fds[1], "hel", 3), 3); });
    loop->after(std::chrono::milliseconds(20), [&] { ASSERT_EQ(::write(fds[1], "lo", 2), 2); });
    loop->run();
    EXPECT_FALSE(timed_out);
    EXPECT_EQ(got, "hello");
    // The loop's dup is closed once unwatched; ours stays usable.
    EXPECT_EQ(::write(fds[1], "x", 1), 1);
    char c = 0;
    EXPECT_EQ(::read(fds[0], &c, 1), 1);
    ::close(fds[0]);
    ::close(fds[1]);
  }
  // Nothing leaked: the dup'ed descriptors were closed (by lws or by us).
  EXPECT_EQ(open_fd_count(), before);
}

TEST(EventLoop, WatchesAnEventfd) {
  auto loop = make_loop();
  int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  ASSERT_GE(efd, 0);
  bool timed_out = false;
  stop_after(*loop, std::chrono::seconds(20), timed_out);
  uint64_t total = 0;
  auto w = loop->watch_fd(efd, [&] {
    uint64_t value = 0;
    if (::read(efd, &value, sizeof(value)) == sizeof(value)) total += value;
    if (total >= 7) loop->stop();
  });
  ASSERT_TRUE(w);
  std::thread writer([&] {
    uint64_t v = 7;
    ASSERT_EQ(::write(efd, &v, sizeof(v)), static_cast<ssize_t>(sizeof(v)));
  });
  loop->run();
  writer.join();
  EXPECT_FALSE(timed_out);
  EXPECT_EQ(total, 7u);
  loop->unwatch(*w);
  ::close(efd);
}

TEST(EventLoop, PidfdBecomesReadableWhenTheChildExits) {
  auto loop = make_loop();
  int pipefd[2];
  ASSERT_EQ(::pipe2(pipefd, O_CLOEXEC), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Wait until told to exit, so the exit happens while the loop runs
    // (or until the parent goes away: then the read sees end of file).
    ::close(pipefd[1]);
    char c;
    ssize_t n = ::read(pipefd[0], &c, 1);
    ::_exit(n == 1 ? 3 : 4);
  }
  ::close(pipefd[0]);
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, child, 0));
  if (pidfd < 0) {
    ::close(pipefd[1]);
    ::waitpid(child, nullptr, 0);
    FAIL() << "pidfd_open: " << errno;
  }
  bool timed_out = false;
  stop_after(*loop, std::chrono::seconds(20), timed_out);
  int exit_code = -1;
  EventLoop::WatchId id = 0;
  auto w = loop->watch_fd(pidfd, [&] {
    siginfo_t info{};
    if (::waitid(P_PIDFD, static_cast<id_t>(pidfd), &info, WEXITED | WNOHANG) == 0 &&
        info.si_pid == child) {
      exit_code = info.si_status;
      loop->unwatch(id);
      loop->stop();
    }
  });
  ASSERT_TRUE(w) << w.error().message();
  id = *w;
  loop->after(std::chrono::milliseconds(10), [&] { ASSERT_EQ(::write(pipefd[1], "x", 1), 1); });
  loop->run();
  EXPECT_FALSE(timed_out);
  EXPECT_EQ(exit_code, 3);
  ::close(pipefd[1]);
  ::close(pidfd);
}

TEST(EventLoop, HangupOfAPipeIsReportedOnce) {
  auto loop = make_loop();
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
  bool timed_out = false;
  stop_after(*loop, std::chrono::seconds(20), timed_out);
  int calls = 0;
  bool eof = false;
  auto w = loop->watch_fd(fds[0], [&] {
    ++calls;
    char buf[16];
    if (::read(fds[0], buf, sizeof(buf)) == 0) eof = true;
    loop->after(std::chrono::milliseconds(50), [&] { loop->stop(); });
  });
  ASSERT_TRUE(w);
  loop->after(std::chrono::milliseconds(10), [&] { ::close(fds[1]); });
  loop->run();
  EXPECT_FALSE(timed_out);
  EXPECT_TRUE(eof);
  EXPECT_GE(calls, 1);
  loop->unwatch(*w);
  ::close(fds[0]);
}

}  // namespace
}  // namespace farmhand::agent
