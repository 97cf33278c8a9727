// A device as udev describes it once its rules have run, copied into a
// value: no udev handle outlives the event it came from.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace farmhand::udev {

struct Device {
  std::string action;     // "add", "remove", "change", "bind", ...; "" when enumerated
  std::string syspath;    // "/sys/devices/.../ttyUSB0"
  std::string subsystem;  // "tty", "usb", "hidraw"
  std::string devtype;    // "usb_device" for raw USB devices, often ""
  std::string devnode;    // "/dev/ttyUSB0", "/dev/bus/usb/001/004"; "" if none
  unsigned major = 0;
  unsigned minor = 0;
  uint64_t seqnum = 0;
  std::map<std::string, std::string> properties;  // ID_VENDOR_ID, ID_SERIAL_SHORT, ...
  std::vector<std::string> links;                 // DEVLINKS: "/dev/serial/by-id/usb-...", ...

  // A property's value, "" if unset.
  std::string property(const std::string& key) const {
    auto it = properties.find(key);
    return it == properties.end() ? std::string() : it->second;
  }
};

// What to hand over: one device node, and the names it is reached by.
struct NodeSpec {
  std::string devnode;             // host path, "/dev/ttyUSB0"; the same path inside
  bool block = false;              // char device unless set
  unsigned major = 0;
  unsigned minor = 0;
  std::string group = "dialout";   // resolved in the container's /etc/group
  unsigned mode = 0660;
  std::vector<std::string> links;  // host symlink paths to recreate inside, e.g. "/dev/serial/by-id/usb-x"
  bool operator==(const NodeSpec&) const = default;
};

}  // namespace farmhand::udev
