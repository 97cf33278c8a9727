// Inside udev/bpf_devices: the raw bpf(2) calls on farmhand's device
// program and its map. bpf_devices_kernel.cpp also builds the program's
// instructions (device_program(), udev/bpf_devices.h); which program and
// map a container's cgroup keeps, and what is pinned, is decided in
// udev/bpf_devices.cpp.
#pragma once

#include <linux/bpf.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/fs.h"
#include "common/result.h"
#include "udev/bpf_devices.h"

namespace farmhand::udev::bpf {

// A pointer as bpf_attr carries it.
inline uint64_t user_ptr(const void* p) { return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p)); }

// bpf(2), again on EINTR (and on EAGAIN from the verifier). The kernel
// wants every byte of bpf_attr past the command's fields zero: callers
// start from bpf_attr{} and the whole union is passed.
int call(int cmd, bpf_attr& attr);

struct ProgInfo {
  uint32_t id = 0;
  std::string name;
  std::vector<uint32_t> map_ids;  // a trailing 0: more than could be read
};
Result<ProgInfo> prog_info(int fd);
Result<bpf_map_info> map_info(int fd);

// The device programs attached directly to a cgroup, opened.
struct Program {
  UniqueFd fd;
  ProgInfo info;
};
Result<std::vector<Program>> programs_on(int cgroup_fd, const std::string& dir);
// farmhand's program, by its name's prefix.
bool is_ours(const ProgInfo& info);

// A new, empty device map; an existing one by id, and whether it has the
// layout every farmhand program reads.
Result<UniqueFd> create_map();
Result<UniqueFd> map_by_id(uint32_t id);
Status check_map(int fd, uint32_t id);

// Loads device_program(base, map_fd); the verifier's last line in the
// error if it refuses it.
Result<UniqueFd> load_program(const std::vector<BaseDevice>& base, int map_fd);
// With BPF_F_ALLOW_MULTI: every program on the cgroup must allow.
Status attach(int cgroup_fd, int prog_fd, const std::string& dir, bool others_attached);
// Already detached is done.
Status detach(int cgroup_fd, int prog_fd, uint32_t id, const std::string& dir);

}  // namespace farmhand::udev::bpf
