// The one place farmhand reads the time.
//
// Code that needs the time takes a `const Clock&` (or uses `real_clock()`
// where nothing injects one yet), so backoff, heartbeats, leases and login
// throttles are unit-tested with a FakeClock instead of sleeping (as Envoy's
// TimeSource and simulated time do). `wall` is the calendar time that goes
// into records and the wire; `monotonic` measures intervals and never jumps.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>

namespace farmhand {

class Clock {
 public:
  using WallTime = std::chrono::system_clock::time_point;
  using MonoTime = std::chrono::steady_clock::time_point;

  virtual ~Clock() = default;
  virtual WallTime wall() const = 0;
  virtual MonoTime monotonic() const = 0;

  // Milliseconds since the Unix epoch: what records and frames carry.
  int64_t wall_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(wall().time_since_epoch()).count();
  }
  // Milliseconds on the monotonic clock (an arbitrary origin).
  int64_t monotonic_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(monotonic().time_since_epoch()).count();
  }
};

// The system's clocks.
class RealClock final : public Clock {
 public:
  WallTime wall() const override;
  MonoTime monotonic() const override;
};

// The process-wide real clock.
const Clock& real_clock();

// Shorthands for code that has no clock injected.
inline int64_t wall_ms() { return real_clock().wall_ms(); }
inline Clock::MonoTime monotonic_now() { return real_clock().monotonic(); }

// A clock that moves only when told to; thread-safe. Both times start at
// `wall_start` (default 2026-01-01T00:00:00Z) and advance together.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t wall_start_ms = 1767225600000);
  WallTime wall() const override;
  MonoTime monotonic() const override;
  void advance(std::chrono::milliseconds by);
  // Sets the calendar time only (a clock step); monotonic time stays.
  void set_wall_ms(int64_t ms);

 private:
  mutable std::mutex mu_;
  int64_t wall_ms_;
  int64_t mono_ms_ = 1'000'000;
};

}  // namespace farmhand
