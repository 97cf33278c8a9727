// When the agent retries its server connection: exponential backoff with
// full jitter (AWS architecture blog, "Exponential Backoff And Jitter"), so
// a fleet of agents that lost the server at the same moment does not come
// back at the same moment. Pure: the random source is injected.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

namespace farmhand::agent {

class Backoff {
 public:
  // Returns a uniformly distributed integer in [0, max_inclusive].
  using Random = std::function<uint64_t(uint64_t max_inclusive)>;

  Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds cap, Random random);

  // The delay before the next attempt: uniform in [0, min(cap, initial * 2^n)]
  // where n is the number of delays handed out since the last reset().
  std::chrono::milliseconds next();
  // The longest delay, without jitter (used when retrying sooner is useless).
  std::chrono::milliseconds cap() const { return cap_; }
  void reset() { attempts_ = 0; }
  uint32_t attempts() const { return attempts_; }

  // A random source from std::random_device, for production.
  static Random system_random();

 private:
  std::chrono::milliseconds initial_;
  std::chrono::milliseconds cap_;
  Random random_;
  uint32_t attempts_ = 0;
};

}  // namespace farmhand::agent
