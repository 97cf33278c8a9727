// Device rules: which USB serial adapters, debug probes and raw USB devices
// go to which container, and with what group and mode.
//
// A rule matches a device when every criterion it sets matches; a rule sets
// at least one. Criteria are udev properties as udev's own rules set them
// on the host, so a device without a serial number still matches by its
// physical port or its ids.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "udev/device.h"

namespace farmhand::udev {

struct UsbId {
  std::string vendor;   // 4 lower-case hex digits, "0403"
  std::string product;  // "6001"
  bool operator==(const UsbId&) const = default;
};

struct DeviceMatch {
  std::vector<UsbId> usb_ids;            // any of these (ID_VENDOR_ID:ID_MODEL_ID)
  std::optional<std::string> serial;     // ID_SERIAL_SHORT, exactly
  std::optional<std::string> path;       // ID_PATH, the physical port, exactly
  std::optional<std::string> interface;  // ID_USB_INTERFACE_NUM, 2 hex digits
  std::optional<std::string> subsystem;  // "tty", "usb" (raw USB devices) or "hidraw"
  std::optional<std::string> by_id;      // glob on the name in /dev/serial/by-id/
  bool operator==(const DeviceMatch&) const = default;
  bool empty() const;
};

struct DeviceRule {
  DeviceMatch match;
  std::string group = "dialout";  // resolved inside the container
  unsigned mode = 0660;
  bool operator==(const DeviceRule&) const = default;
};

// The subsystems farmhand hands to containers.
inline constexpr const char* kDeviceSubsystems[] = {"tty", "usb", "hidraw"};

// Whether farmhand handles this kind of device at all: a node of a watched
// subsystem (for "usb", only whole devices: DEVTYPE usb_device).
bool handled_device(const Device& device);

// Whether `rule` matches `device`. Hex ids compare case-insensitively.
bool rule_matches(const DeviceMatch& match, const Device& device);

// Whether some device could match both: false only when a criterion both
// set can never agree (different serials, disjoint id lists, ...).
bool rules_may_overlap(const DeviceMatch& a, const DeviceMatch& b);

// The host's udev rules file for the devices farmhand hands to containers:
// each matching device is tagged "farmhand" and ModemManager is told to
// leave it alone (ID_MM_DEVICE_IGNORE). It changes no owner or mode.
inline constexpr const char* kHostUdevRulesFile = "/etc/udev/rules.d/70-farmhand.rules";
std::string render_host_udev_rules(const std::vector<DeviceMatch>& matches, const std::string& header);

// The device's names in /dev/serial/by-id/ (file names only).
std::vector<std::string> by_id_names(const Device& device);

}  // namespace farmhand::udev
