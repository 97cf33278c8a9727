// The load tool's dashboard: logs in over HTTP, watches the /ui feed on a
// thread and event loop of its own (so the thousands of simulated agents on
// the main loop do not delay its clock), and measures for every `event`
// frame how long ago the simulated agent handed that event to its
// connection. The agents write the time into the event's message as
// "t=<steady clock µs>"; both ends are in this process, so one monotonic
// clock serves both.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "agent/loop.h"
#include "common/result.h"

namespace farmhand::load {

// Microseconds of the steady clock: the stamp in event messages.
int64_t steady_us();
// "t=<steady_us()> ..." and back; -1 if the message carries no stamp.
std::string stamp_message(int64_t us, uint64_t n);
int64_t parse_stamp(std::string_view message);

// POST /api/login over plain HTTP: the value of the fh_session cookie.
Result<std::string> login(const std::string& url, const std::string& user, const std::string& password);

class UiProbe {
 public:
  struct Stats {
    uint64_t events = 0;            // event frames received
    uint64_t unstamped = 0;         // event frames without a stamp (not ours)
    std::vector<int64_t> latency_us;  // one per stamped event, sorted
    std::string error;              // why the feed ended early, if it did
  };

  // Logs in and connects on a new thread; returns once the snapshot
  // arrived (or with the reason it did not, within `timeout_ms`).
  static Result<std::unique_ptr<UiProbe>> start(const std::string& url, const std::string& user,
                                                const std::string& password, int timeout_ms);
  ~UiProbe();
  UiProbe(const UiProbe&) = delete;
  UiProbe& operator=(const UiProbe&) = delete;

  uint64_t events() const { return events_.load(); }
  // Ends the feed and the thread; the figures are final after this.
  Stats stop();

 private:
  class Feed;
  UiProbe() = default;

  std::unique_ptr<agent::EventLoop> loop_;
  std::unique_ptr<Feed> feed_;
  std::thread thread_;
  std::atomic<uint64_t> events_{0};
  bool stopped_ = false;
};

}  // namespace farmhand::load
