// Where everything of one container lives, and what farmhand writes there.
//
// ContainerLayout is the resolved desired state of one container: its spec,
// subnet, base tree, clone method and every file farmhand renders for it,
// with their logical host paths (before any --root prefix).
#pragma once

#include <map>
#include <string>

#include "provisioner/config.h"
#include "provisioner/host_network.h"
#include "provisioner/recipe.h"

namespace farmhand::provisioner {

inline constexpr const char* kManagedHeader = "Managed by farmhand: `farmhand apply` rewrites this file.";

// The identity of a base tree: what goes into it decides its cache key.
struct BaseSpec {
  std::string distro;
  std::string release;
  std::string arch;
  std::vector<std::string> packages;  // sorted, unique: build set (if wanted) + extras
  std::string recipe_fingerprint;

  // "debian-bookworm-amd64-<12 hex>": stable for equal inputs, different for any change.
  std::string key() const;
};

struct ContainerLayout {
  ContainerSpec spec;
  Cidr subnet;
  std::string hostname;      // NAME-HOSTHOSTNAME, at most 64 characters
  BaseSpec base;
  std::string network_method;  // from the recipe: "networkd" or "networkmanager"
  std::string machine_dir;     // /var/lib/machines/NAME
  std::string base_dir;        // cache/images/KEY
  std::string overlay_dir;     // state/overlay/NAME (upper and work), used by the overlay method
  CloneMethod clone_method = CloneMethod::kCopy;  // resolved, never kAuto

  // Host files: logical path -> content.
  std::map<std::string, std::string> host_files;
  // Files inside the container: path relative to its root ("etc/hostname") -> content.
  std::map<std::string, std::string> container_files;
  // Mode for a file that is not 0644 (both maps).
  std::map<std::string, unsigned> file_modes;
  // Symlinks farmhand keeps, logical path -> target: the boot link when boot
  // is on, and for an overlay clone the link enabling its mount at every boot.
  std::map<std::string, std::string> links;
  // Logical path of the boot link (machines.target.wants/...), set either way.
  std::string boot_link;
  std::string nspawn_file;   // logical path of NAME.nspawn
  std::string dropin_dir;    // logical path of systemd-nspawn@NAME.service.d
  NetworkChoice network;     // how the host side of a veth link is configured
  // Groups the build user joins: those the device rules give their nodes to.
  std::vector<std::string> build_user_groups;
};

// The container's hostname: "NAME-HOST" with HOST's first label, lower-cased,
// invalid characters replaced by '-', cut to 64 characters.
std::string container_hostname(const std::string& name, const std::string& host_hostname);

std::string render_nspawn(const ContainerSpec& spec);
std::string render_host0_networkd(const Cidr& subnet);
std::string render_host0_keyfile(const Cidr& subnet);
// The container's network for macvlan and ipvlan links: DHCP on mv-*/iv-*.
std::string render_lan_networkd();
std::string render_lan_keyfile(const ContainerNetwork& network);
std::string render_dropin(const ContainerLayout& layout);
std::string render_overlay_mount(const ContainerLayout& layout);
// The overlay mount unit's logical path, e.g. /etc/systemd/system/var-lib-machines-a.mount.
std::string overlay_mount_unit(const ContainerLayout& layout);
std::string render_hosts(const std::string& hostname);

// Builds the full layout of one container.
ContainerLayout make_layout(const AgentConfig& config, const ContainerSpec& spec,
                            const ReleaseRecipe& recipe, const Cidr& subnet,
                            CloneMethod clone_method, const std::string& host_hostname,
                            const NetworkChoice& network = {});

}  // namespace farmhand::provisioner
