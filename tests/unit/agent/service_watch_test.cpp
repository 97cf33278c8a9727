// What the daemon's service watch reports between two looks.
#include "agent/service_watch.h"

#include <gtest/gtest.h>

namespace farmhand::agent {
namespace {

using provisioner::Provisioner;
using provisioner::UnitState;

Provisioner::ServiceState seen(const std::string& active, const std::string& sub, unsigned long restarts,
                               const std::string& result = "success") {
  return {"deb12", "sai-builder.service", UnitState{active, sub, result, restarts}};
}

TEST(ServiceTroubles, ADeathARestartByItsPolicyAndAFailureAtFirstSightAreReported) {
  std::map<std::pair<std::string, std::string>, UnitState> last;
  // First look: up, nothing to say.
  EXPECT_TRUE(service_troubles(last, {seen("active", "running", 0)}).empty());
  EXPECT_TRUE(service_troubles(last, {seen("active", "running", 0)}).empty());
  // Killed, and its Restart= policy brought it back between two looks.
  auto t = service_troubles(last, {seen("active", "running", 1)});
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].container, "deb12");
  EXPECT_EQ(t[0].message, "sai-builder.service died and systemd restarted it (1 time since the last look); now active "
                          "(running)");
  // Dead for good.
  t = service_troubles(last, {seen("failed", "failed", 1, "signal")});
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].message, "sai-builder.service died: failed, result signal");
  // Still dead: said once.
  EXPECT_TRUE(service_troubles(last, {seen("failed", "failed", 1, "signal")}).empty());
  // Its container stopped, then came back with the unit failed.
  EXPECT_TRUE(service_troubles(last, {}).empty());
  t = service_troubles(last, {seen("failed", "failed", 0, "exit-code")});
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].message, "sai-builder.service is down: failed, result exit-code");
}

}  // namespace
}  // namespace farmhand::agent
