// Password checks are rationed: each costs tens of milliseconds of the
// server's only thread.
#include <gtest/gtest.h>

#include "server/hub.h"
#include "server/store.h"
#include "tests/unit/temp_dir.h"

namespace farmhand::server {
namespace {

TEST(LoginThrottle, AllowsABurstThenFourPerSecond) {
  farmhand::test::TempDir dir;
  auto store = Store::open((dir.path() / "server.db").string());
  ASSERT_TRUE(store.ok());
  int64_t now = 1'000'000;
  Hub hub(default_server_config(), std::move(*store), [&now] { return now; });
  for (int i = 0; i < 8; ++i) EXPECT_TRUE(hub.allow_password_check()) << i;
  EXPECT_FALSE(hub.allow_password_check());
  now += 250;
  EXPECT_TRUE(hub.allow_password_check());
  EXPECT_FALSE(hub.allow_password_check());
  now += 10'000;  // refills up to the burst, not beyond
  for (int i = 0; i < 8; ++i) EXPECT_TRUE(hub.allow_password_check()) << i;
  EXPECT_FALSE(hub.allow_password_check());
}

}  // namespace
}  // namespace farmhand::server
