// The farmhand commands. Each returns the process exit status:
// 0 success, 1 the operation failed, 2 bad usage or bad configuration.
// apply.cpp: check-config, plan, apply, rebuild, destroy, start, stop,
// restart; status.cpp: status, devices; run.cpp: run, shell; enroll.cpp;
// usage.cpp; agent/daemon/cmd_daemon.cpp: daemon.
#pragma once

#include "agent/cli/cli.h"
#include "agent/wiring.h"

namespace farmhand::agent {


int cmd_check_config(const Invocation& inv);
int cmd_plan(const Invocation& inv);
int cmd_rebuild(const Invocation& inv);
int cmd_apply(const Invocation& inv);
int cmd_status(const Invocation& inv);
int cmd_destroy(const Invocation& inv);
int cmd_run(const Invocation& inv);
int cmd_start(const Invocation& inv);
int cmd_stop(const Invocation& inv);
int cmd_restart(const Invocation& inv);
int cmd_shell(const Invocation& inv);
int cmd_enroll(const Invocation& inv);
int cmd_daemon(const Invocation& inv);
int cmd_devices(const Invocation& inv);

// Usage text of one command, or of farmhand as a whole for "".
const char* usage(const std::string& command);

}  // namespace farmhand::agent
