// Golden-file comparison for rendered files. Regenerate with
// FARMHAND_UPDATE_GOLDEN=1 and review the diff before committing.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "common/fs.h"

namespace farmhand::test {

inline void expect_golden(const std::string& dir, const std::string& name, const std::string& actual) {
  const std::string path = std::string(FARMHAND_TEST_DATA_DIR) + "/golden/" + dir + "/" + name;
  const char* update = std::getenv("FARMHAND_UPDATE_GOLDEN");
  if (update != nullptr && std::string(update) == "1") {
    ASSERT_TRUE(write_file_atomic(path, actual).ok()) << path;
    return;
  }
  auto want = read_file_if_exists(path);
  ASSERT_TRUE(want.ok()) << want.error().message();
  ASSERT_TRUE(want->has_value()) << path << " is missing; run with FARMHAND_UPDATE_GOLDEN=1";
  EXPECT_EQ(actual, **want) << "differs from " << path;
}

}  // namespace farmhand::test
