// Making a container's root filesystem from a base tree, by the cheapest
// method the filesystem offers, and removing it again.
//
//   btrfs    snapshot of the base subvolume (both on one btrfs filesystem)
//   reflink  cp --reflink=always (XFS, btrfs: shares blocks until written)
//   overlay  overlayfs with the base as the read-only lower layer
//   copy     cp -a, works everywhere
//
// Every method is atomic from the outside: copies go to a hidden partial
// directory that is renamed into place, so a killed clone leaves nothing that
// looks finished.
#pragma once

#include <string>

#include "common/fs.h"
#include "provisioner/command_runner.h"
#include "provisioner/config.h"

namespace farmhand::provisioner {

// The method `auto` resolves to for these directories (host paths).
CloneMethod detect_clone_method(const fs::path& images_dir, const fs::path& machines_dir);

bool is_btrfs(const fs::path& path);
bool is_mount_point(const fs::path& path);

// The hidden directory a copy is made in before it is renamed to `machine_dir`.
fs::path partial_clone_path(const fs::path& machine_dir);

class Cloner {
 public:
  explicit Cloner(CommandRunner& commands) : commands_(commands) {}

  // Makes machine_dir from base_dir. For kOverlay, overlay_dir holds upper/
  // and work/ and the overlay is mounted on machine_dir. Idempotent.
  Status clone(CloneMethod method, const fs::path& base_dir, const fs::path& machine_dir,
               const fs::path& overlay_dir);
  // Mounts an overlay clone if it is not mounted (after a reboot of a host
  // without systemd, for instance).
  Status mount_overlay(const fs::path& base_dir, const fs::path& machine_dir,
                       const fs::path& overlay_dir);
  // Removes the clone and any leftover partial copy. Missing parts are fine.
  Status remove(CloneMethod method, const fs::path& machine_dir, const fs::path& overlay_dir);

 private:
  Status remove_dir(const fs::path& dir);
  CommandRunner& commands_;
};

}  // namespace farmhand::provisioner
