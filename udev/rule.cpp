#include "udev/rule.h"

#include <fnmatch.h>

#include <algorithm>
#include <cctype>

namespace farmhand::udev {

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

constexpr std::string_view kByIdDir = "/dev/serial/by-id/";

// The literal text of a glob before its first wildcard.
std::string literal_prefix(const std::string& glob) {
  return glob.substr(0, glob.find_first_of("*?["));
}
// The literal text after its last wildcard (the whole glob if none).
std::string literal_suffix(const std::string& glob) {
  size_t last = glob.find_last_of("*?]");
  return last == std::string::npos ? glob : glob.substr(last + 1);
}

bool globs_may_overlap(const std::string& a, const std::string& b) {
  const bool a_literal = a.find_first_of("*?[") == std::string::npos;
  const bool b_literal = b.find_first_of("*?[") == std::string::npos;
  if (a_literal && b_literal) return a == b;
  if (a_literal) return ::fnmatch(b.c_str(), a.c_str(), 0) == 0;
  if (b_literal) return ::fnmatch(a.c_str(), b.c_str(), 0) == 0;
  // Both have wildcards: disjoint when their fixed starts or ends disagree.
  const std::string pa = literal_prefix(a), pb = literal_prefix(b);
  if (pa.compare(0, pb.size(), pb) != 0 && pb.compare(0, pa.size(), pa) != 0) return false;
  const std::string sa = literal_suffix(a), sb = literal_suffix(b);
  const size_t n = std::min(sa.size(), sb.size());
  return sa.compare(sa.size() - n, n, sb, sb.size() - n, n) == 0;
}

}  // namespace

bool DeviceMatch::empty() const {
  return usb_ids.empty() && !serial && !path && !interface && !subsystem && !by_id;
}

bool handled_device(const Device& d) {
  if (d.devnode.empty()) return false;
  if (d.subsystem == "usb") return d.devtype == "usb_device";
  return d.subsystem == "tty" || d.subsystem == "hidraw";
}

std::vector<std::string> by_id_names(const Device& d) {
  std::vector<std::string> out;
  for (const auto& link : d.links) {
    if (link.rfind(kByIdDir, 0) == 0 && link.size() > kByIdDir.size()) out.push_back(link.substr(kByIdDir.size()));
  }
  return out;
}

bool rule_matches(const DeviceMatch& m, const Device& d) {
  if (m.empty() || !handled_device(d)) return false;
  if (m.subsystem && *m.subsystem != d.subsystem) return false;
  if (!m.usb_ids.empty()) {
    const std::string vendor = lower(d.property("ID_VENDOR_ID"));
    const std::string product = lower(d.property("ID_MODEL_ID"));
    bool any = std::any_of(m.usb_ids.begin(), m.usb_ids.end(),
                           [&](const UsbId& id) { return id.vendor == vendor && id.product == product; });
    if (!any) return false;
  }
  if (m.serial && *m.serial != d.property("ID_SERIAL_SHORT")) return false;
  if (m.path && *m.path != d.property("ID_PATH")) return false;
  if (m.interface && lower(*m.interface) != lower(d.property("ID_USB_INTERFACE_NUM"))) return false;
  if (m.by_id) {
    auto names = by_id_names(d);
    bool any = std::any_of(names.begin(), names.end(),
                           [&](const std::string& n) { return ::fnmatch(m.by_id->c_str(), n.c_str(), 0) == 0; });
    if (!any) return false;
  }
  return true;
}

bool rules_may_overlap(const DeviceMatch& a, const DeviceMatch& b) {
  if (a.subsystem && b.subsystem && *a.subsystem != *b.subsystem) return false;
  if (!a.usb_ids.empty() && !b.usb_ids.empty()) {
    bool shared = std::any_of(a.usb_ids.begin(), a.usb_ids.end(), [&](const UsbId& id) {
      return std::find(b.usb_ids.begin(), b.usb_ids.end(), id) != b.usb_ids.end();
    });
    if (!shared) return false;
  }
  if (a.serial && b.serial && *a.serial != *b.serial) return false;
  if (a.path && b.path && *a.path != *b.path) return false;
  if (a.interface && b.interface && lower(*a.interface) != lower(*b.interface)) return false;
  if (a.by_id && b.by_id && !globs_may_overlap(*a.by_id, *b.by_id)) return false;
  return true;
}

std::string render_host_udev_rules(const std::vector<DeviceMatch>& matches, const std::string& header) {
  std::string out = "# " + header + "\n";
  out += "# Lab devices that farmhand hands to build containers: tagged, and kept\n";
  out += "# away from ModemManager. Owner and mode stay as udev sets them.\n";
  for (const auto& m : matches) {
    std::string common;
    common += m.subsystem ? "SUBSYSTEM==\"" + *m.subsystem + "\", " : "SUBSYSTEM==\"tty|usb|hidraw\", ";
    if (m.serial) common += "ENV{ID_SERIAL_SHORT}==\"" + *m.serial + "\", ";
    if (m.path) common += "ENV{ID_PATH}==\"" + *m.path + "\", ";
    if (m.interface) common += "ENV{ID_USB_INTERFACE_NUM}==\"" + *m.interface + "\", ";
    if (m.by_id) common += "SYMLINK==\"serial/by-id/" + *m.by_id + "\", ";
    const std::string actions = "TAG+=\"farmhand\", ENV{ID_MM_DEVICE_IGNORE}=\"1\"\n";
    if (m.usb_ids.empty()) {
      out += common + actions;
      continue;
    }
    for (const auto& id : m.usb_ids) {
      out += common + "ENV{ID_VENDOR_ID}==\"" + id.vendor + "\", ENV{ID_MODEL_ID}==\"" + id.product + "\", " +
             actions;
    }
  }
  return out;
}

}  // namespace farmhand::udev
