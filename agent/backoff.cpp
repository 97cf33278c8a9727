#include "agent/backoff.h"

#include <algorithm>
#include <memory>
#include <random>

namespace farmhand::agent {

Backoff::Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds cap, Random random)
    : initial_(std::max(initial, std::chrono::milliseconds(1))),
      cap_(std::max(cap, initial_)),
      random_(std::move(random)) {}

std::chrono::milliseconds Backoff::next() {
  // Doubling stops at the cap; the shift is bounded so it cannot overflow.
  uint64_t ceiling = static_cast<uint64_t>(initial_.count());
  uint64_t cap = static_cast<uint64_t>(cap_.count());
  for (uint32_t i = 0; i < attempts_ && ceiling < cap; ++i) ceiling *= 2;
  ceiling = std::min(ceiling, cap);
  ++attempts_;
  uint64_t pick = std::min(random_(ceiling), ceiling);
  return std::chrono::milliseconds(static_cast<int64_t>(pick));
}

Backoff::Random Backoff::system_random() {
  auto engine = std::make_shared<std::mt19937_64>(std::random_device{}());
  return [engine](uint64_t max_inclusive) {
    return std::uniform_int_distribution<uint64_t>(0, max_inclusive)(*engine);
  };
}

}  // namespace farmhand::agent
