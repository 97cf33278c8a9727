// The udev watcher: a libudev monitor on the "udev" source (events after
// udev's rules ran, with their properties and symlinks), filtered in the
// kernel to the subsystems farmhand hands to containers.
//
// Subscribe first, then enumerate: a device plugged in between is seen as
// an event rather than missed. The monitor's socket is non-blocking; the
// owner polls fd() in its event loop and calls drain(), which reads every
// queued event, each copied into a Device value.
#pragma once

#include <memory>
#include <vector>

#include "common/result.h"
#include "udev/device.h"

namespace farmhand::udev {

class Watcher {
 public:
  // Creates the monitor and starts receiving.
  static Result<std::unique_ptr<Watcher>> open();
  ~Watcher();
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  int fd() const;
  // Every event queued now; never blocks.
  std::vector<Device> drain();
  // The devices present and initialized by udev now, of the watched subsystems.
  Result<std::vector<Device>> enumerate();

 private:
  struct Impl;
  explicit Watcher(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace farmhand::udev
