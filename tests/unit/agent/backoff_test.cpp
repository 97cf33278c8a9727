#include "agent/backoff.h"

#include <gtest/gtest.h>

#include <vector>

namespace farmhand::agent {
namespace {

using std::chrono::milliseconds;

TEST(Backoff, CeilingDoublesFromOneSecondToTheCap) {
  std::vector<uint64_t> ceilings;
  // A "random" source that records the ceiling and picks the maximum.
  Backoff backoff(milliseconds(1000), milliseconds(60000), [&](uint64_t max) {
    ceilings.push_back(max);
    return max;
  });
  std::vector<int64_t> delays;
  for (int i = 0; i < 9; ++i) delays.push_back(backoff.next().count());
  EXPECT_EQ(delays, (std::vector<int64_t>{1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000}));
  EXPECT_EQ(ceilings, (std::vector<uint64_t>{1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000}));
  EXPECT_EQ(backoff.attempts(), 9u);
}

TEST(Backoff, FullJitterPicksAnywhereFromZeroToTheCeiling) {
  uint64_t pick_zero = 0;
  Backoff low(milliseconds(1000), milliseconds(60000), [&](uint64_t) { return pick_zero; });
  EXPECT_EQ(low.next().count(), 0);
  Backoff half(milliseconds(1000), milliseconds(60000), [](uint64_t max) { return max / 2; });
  EXPECT_EQ(half.next().count(), 500);
  EXPECT_EQ(half.next().count(), 1000);
  EXPECT_EQ(half.next().count(), 2000);
}

TEST(Backoff, AnOutOfRangeRandomValueIsClamped) {
  Backoff backoff(milliseconds(1000), milliseconds(60000), [](uint64_t) { return uint64_t{1} << 62; });
  EXPECT_EQ(backoff.next().count(), 1000);
}

TEST(Backoff, ResetStartsOverAtTheInitialDelay) {
  Backoff backoff(milliseconds(1000), milliseconds(60000), [](uint64_t max) { return max; });
  for (int i = 0; i < 20; ++i) (void)backoff.next();
  EXPECT_EQ(backoff.next().count(), 60000);
  backoff.reset();
  EXPECT_EQ(backoff.attempts(), 0u);
  EXPECT_EQ(backoff.next().count(), 1000);
  EXPECT_EQ(backoff.cap().count(), 60000);
}

TEST(Backoff, ManyAttemptsDoNotOverflow) {
  Backoff backoff(milliseconds(1000), milliseconds(60000), [](uint64_t max) { return max; });
  for (int i = 0; i < 100000; ++i) (void)backoff.next();
  EXPECT_EQ(backoff.next().count(), 60000);
}

TEST(Backoff, SystemRandomStaysWithinTheCeiling) {
  Backoff backoff(milliseconds(1000), milliseconds(4000), Backoff::system_random());
  for (int i = 0; i < 200; ++i) {
    auto d = backoff.next().count();
    EXPECT_GE(d, 0);
    EXPECT_LE(d, 4000);
  }
}

}  // namespace
}  // namespace farmhand::agent
