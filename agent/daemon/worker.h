// The daemon's worker thread: slow work (a reconcile, a server's apply or
// restart) runs there one job at a time, so the event loop never waits.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace farmhand::agent {

class Worker {
 public:
  Worker();
  ~Worker();  // waits for the running job; later ones are dropped
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  // Thread-safe.
  void enqueue(std::function<void()> job);
  // Whether a job runs or waits; thread-safe.
  bool busy();

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool running_ = false;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace farmhand::agent
