#include "common/clock.h"

namespace farmhand {

Clock::WallTime RealClock::wall() const { return std::chrono::system_clock::now(); }
Clock::MonoTime RealClock::monotonic() const { return std::chrono::steady_clock::now(); }

const Clock& real_clock() {
  static const RealClock clock;
  return clock;
}

FakeClock::FakeClock(int64_t wall_start_ms) : wall_ms_(wall_start_ms) {}

Clock::WallTime FakeClock::wall() const {
  std::lock_guard lock(mu_);
  return WallTime(std::chrono::milliseconds(wall_ms_));
}

Clock::MonoTime FakeClock::monotonic() const {
  std::lock_guard lock(mu_);
  return MonoTime(std::chrono::milliseconds(mono_ms_));
}

void FakeClock::advance(std::chrono::milliseconds by) {
  std::lock_guard lock(mu_);
  wall_ms_ += by.count();
  mono_ms_ += by.count();
}

void FakeClock::set_wall_ms(int64_t ms) {
  std::lock_guard lock(mu_);
  wall_ms_ = ms;
}

}  // namespace farmhand
