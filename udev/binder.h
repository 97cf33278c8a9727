// Hands one device node to one running container, and takes it back.
//
// Attach, in this order: allow the device in the container's device cgroup,
// create the node in the container's /dev (owner root, the rule's group
// resolved in the container, the rule's mode), then the container-side
// symlinks (/dev/serial/by-id/..., /dev/serial/by-path/...). Detach:
// revoke, then unlink the symlinks and the node. Every step is idempotent:
// attaching twice or detaching what is gone succeeds.
//
// The container's files are reached through /proc/LEADER/root with
// openat2(RESOLVE_IN_ROOT), so a symlink planted in the container can never
// redirect a write to the host. With private users, the owner and group are
// mapped through the leader's uid_map and gid_map.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "udev/device.h"

namespace farmhand::udev {

// Where a running container is.
struct ContainerRuntime {
  std::string name;
  pid_t leader = 0;  // host pid of its init
};

// The device cgroup side: allow and revoke one device for one container.
class DeviceAccess {
 public:
  virtual ~DeviceAccess() = default;
  virtual Status allow(const ContainerRuntime& c, const NodeSpec& node) = 0;
  virtual Status revoke(const ContainerRuntime& c, const NodeSpec& node) = 0;
};

// cgroup v1 "devices" controller, written directly: the cgroup of the
// leader (from /proc/LEADER/cgroup) under `devices_root`
// (/sys/fs/cgroup/devices). For hosts where systemd does not manage the
// container.
std::unique_ptr<DeviceAccess> make_cgroup_v1_access(std::string devices_root = "/sys/fs/cgroup/devices");

// The device access for a host where systemd does not manage the container,
// chosen from the host's cgroup layout (/proc/self/mountinfo): the cgroup v1
// access above where a v1 "devices" hierarchy is mounted (v1 and hybrid
// hosts), farmhand's own BPF device program on a pure cgroup v2 host
// (udev/bpf_devices.h).
std::unique_ptr<DeviceAccess> make_device_access_for_host();

// The node and its symlinks inside the container.
Status create_node(const ContainerRuntime& c, const NodeSpec& node);
Status remove_node(const ContainerRuntime& c, const NodeSpec& node);
// Only the symlinks of `node.links` that lead to `node.devnode` (a `change`
// event renamed them: the node stays, the old names go).
Status remove_links(const ContainerRuntime& c, const NodeSpec& node);

// The container-side gid of a group in the container's /etc/group (through
// /proc/LEADER/root), then mapped to the host through the leader's gid_map.
Result<gid_t> container_group_to_host_gid(pid_t leader, const std::string& group);
// Container uid -> host uid through the leader's uid_map (identity without one).
Result<uid_t> container_uid_to_host(pid_t leader, uid_t inside);

// Maps an id through a /proc/PID/[ug]id_map text ("inside outside count" lines).
std::optional<unsigned> map_id(const std::string& map_text, unsigned inside);

// The path of the v1 "devices" cgroup in a /proc/PID/cgroup text
// ("5:devices:/machine.slice/x"); std::nullopt without such a line.
std::optional<std::string> devices_cgroup_path(const std::string& proc_cgroup_text);

}  // namespace farmhand::udev
