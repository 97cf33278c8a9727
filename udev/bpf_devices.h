// Device access on a cgroup v2 host without systemd: farmhand's own
// BPF_PROG_TYPE_CGROUP_DEVICE program on the container's cgroup.
//
// cgroup v2 has no devices.allow. The kernel runs every device program
// attached to a process's cgroup and its ancestors, and all must allow.
// farmhand attaches one program to the container leader's cgroup, with
// BPF_F_ALLOW_MULTI so that it only ever narrows what other programs allow.
// The program allows the base set a container needs (compiled into its
// instructions) and whatever its hash map holds. A lease is a map update
// and a revoke a map delete: attach and revoke never swap programs, so
// access is never wider than the leases, not even for an instant.
//
// The map and the program are pinned in bpffs, under
// PIN_ROOT/farmhand/NAME/{map,prog}, with bpffs mounted at PIN_ROOT if it
// is not. The attachment itself lives as long as the cgroup does, so an
// agent restart keeps every grant: the next allow or revoke finds farmhand's
// program on the cgroup (by its name) and keeps using its map. A program
// built by another farmhand version (another base set) is replaced by
// attaching the new one, on the same map, before detaching the old one.
#pragma once

#include <linux/bpf.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "udev/binder.h"

namespace farmhand::udev {

// A device a container always gets, whatever is leased.
struct BaseDevice {
  const char* node = "";           // "/dev/null", for messages and the docs
  bool block = false;
  unsigned major = 0;
  std::optional<unsigned> minor;   // every minor without
  uint32_t access = 0;             // BPF_DEVCG_ACC_* bits
};

// The nodes systemd-nspawn sets up and a booted container uses: null,
// zero, full, random, urandom, tty, console, ptmx, the pty slaves
// (c 136:*) and /dev/net/tun, each read, write and mknod.
const std::vector<BaseDevice>& container_base_devices();

// A key of the program's hash map: one device as the kernel describes it
// to the program (bpf_cgroup_dev_ctx), in host byte order.
struct DeviceKey {
  uint32_t type = 0;   // BPF_DEVCG_DEV_CHAR or BPF_DEVCG_DEV_BLOCK
  uint32_t major = 0;
  uint32_t minor = 0;
  bool operator==(const DeviceKey&) const = default;
};
static_assert(sizeof(DeviceKey) == 12, "the program builds the key as three u32 on its stack");

DeviceKey device_key(const NodeSpec& node);
// The map value of a lease: read and write, as cgroup v1's "rw". No mknod:
// farmhand creates the node itself, from the host.
uint32_t lease_access();

// The program's instructions, with `map_fd` in its one map reference.
std::vector<bpf_insn> device_program(const std::vector<BaseDevice>& base, int map_fd);
// The program's name in the kernel: "fhdev_" and a hash of its
// instructions without the map fd. It marks farmhand's program among those
// on a cgroup, and tells one built from another base set.
std::string device_program_name(const std::vector<BaseDevice>& base);
constexpr const char* kDeviceProgramPrefix = "fhdev_";

// The cgroup v2 path in a /proc/PID/cgroup text (the "0::/path" line);
// std::nullopt without one.
std::optional<std::string> unified_cgroup_path(const std::string& proc_cgroup_text);
// The directory of cgroup v2 path `cgroup` ("/machine/x") under this
// mount namespace's cgroup2 mount, from a /proc/self/mountinfo text;
// std::nullopt if no cgroup2 mount shows that cgroup.
std::optional<std::string> cgroup2_directory(const std::string& mountinfo_text,
                                             const std::string& cgroup);
// Whether a cgroup v1 hierarchy with the "devices" controller is mounted.
bool has_v1_devices_controller(const std::string& mountinfo_text);

enum class DeviceMechanism { kCgroupV1, kCgroupBpf };
// cgroup v1 devices.allow when a v1 "devices" hierarchy is mounted (v1 and
// hybrid hosts); farmhand's BPF program on a pure cgroup v2 host; v1 (which
// then reports what is missing) when there is neither.
DeviceMechanism device_mechanism_for(const std::string& mountinfo_text);

struct BpfDeviceOptions {
  std::string pin_root = "/sys/fs/bpf";  // bpffs; mounted here if it is not
  std::vector<BaseDevice> base = container_base_devices();
};
std::unique_ptr<DeviceAccess> make_cgroup_bpf_access(BpfDeviceOptions options = {});

// The device programs attached directly to a cgroup directory, for checks
// and tests.
struct AttachedProgram {
  uint32_t id = 0;
  std::string name;
};
Result<std::vector<AttachedProgram>> device_programs_on(const std::string& cgroup_dir);

}  // namespace farmhand::udev
