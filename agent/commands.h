// The farmhand commands. Each returns the process exit status:
// 0 success, 1 the operation failed, 2 bad usage or bad configuration.
#pragma once

#include "agent/cli.h"

namespace farmhand::agent {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;

int cmd_check_config(const Invocation& inv);
int cmd_plan(const Invocation& inv);
int cmd_apply(const Invocation& inv);
int cmd_status(const Invocation& inv);
int cmd_destroy(const Invocation& inv);
int cmd_run(const Invocation& inv);

// Usage text of one command, or of farmhand as a whole for "".
const char* usage(const std::string& command);

}  // namespace farmhand::agent
