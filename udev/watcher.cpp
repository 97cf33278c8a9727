#include "udev/watcher.h"

#include <libudev.h>
#include <sys/sysmacros.h>

#include <cerrno>

#include "udev/rule.h"

namespace farmhand::udev {

namespace {

// Copies everything farmhand uses out of a udev device.
Device to_value(struct udev_device* d) {
  Device out;
  auto str = [](const char* s) { return s ? std::string(s) : std::string(); };
  out.action = str(udev_device_get_action(d));
  out.syspath = str(udev_device_get_syspath(d));
  out.subsystem = str(udev_device_get_subsystem(d));
  out.devtype = str(udev_device_get_devtype(d));
  out.devnode = str(udev_device_get_devnode(d));
  dev_t num = udev_device_get_devnum(d);
  out.major = major(num);
  out.minor = minor(num);
  out.seqnum = udev_device_get_seqnum(d);
  for (auto* e = udev_device_get_properties_list_entry(d); e != nullptr; e = udev_list_entry_get_next(e)) {
    out.properties[str(udev_list_entry_get_name(e))] = str(udev_list_entry_get_value(e));
  }
  for (auto* e = udev_device_get_devlinks_list_entry(d); e != nullptr; e = udev_list_entry_get_next(e)) {
    out.links.push_back(str(udev_list_entry_get_name(e)));
  }
  // A remove event's device has no devnum in some paths; MAJOR/MINOR are
  // always in its properties.
  if (out.major == 0 && out.minor == 0 && out.properties.count("MAJOR")) {
    try {
      out.major = static_cast<unsigned>(std::stoul(out.properties["MAJOR"]));
      out.minor = static_cast<unsigned>(std::stoul(out.properties["MINOR"]));
    } catch (const std::exception&) {
      out.major = out.minor = 0;
    }
  }
  if (out.devnode.empty() && out.properties.count("DEVNAME")) {
    const std::string& name = out.properties["DEVNAME"];
    out.devnode = name.rfind("/dev/", 0) == 0 ? name : "/dev/" + name;
  }
  return out;
}

}  // namespace

struct Watcher::Impl {
  struct udev* udev = nullptr;
  struct udev_monitor* monitor = nullptr;
  ~Impl() {
    if (monitor) udev_monitor_unref(monitor);
    if (udev) udev_unref(udev);
  }
};

Watcher::Watcher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Watcher::~Watcher() = default;

Result<std::unique_ptr<Watcher>> Watcher::open() {
  auto impl = std::make_unique<Impl>();
  impl->udev = udev_new();
  if (impl->udev == nullptr) return fail("cannot create a udev context: " + errno_text(errno));
  impl->monitor = udev_monitor_new_from_netlink(impl->udev, "udev");
  if (impl->monitor == nullptr) return fail("cannot create a udev monitor: " + errno_text(errno));
  int r = 0;
  r = r < 0 ? r : udev_monitor_filter_add_match_subsystem_devtype(impl->monitor, "tty", nullptr);
  r = r < 0 ? r : udev_monitor_filter_add_match_subsystem_devtype(impl->monitor, "usb", "usb_device");
  r = r < 0 ? r : udev_monitor_filter_add_match_subsystem_devtype(impl->monitor, "hidraw", nullptr);
  if (r < 0) return fail("cannot filter the udev monitor: " + errno_text(-r));
  // Bursts (a hub with many adapters, a storm of resets) must not overflow.
  (void)udev_monitor_set_receive_buffer_size(impl->monitor, 128 * 1024 * 1024);
  r = udev_monitor_enable_receiving(impl->monitor);
  if (r < 0) return fail("cannot start the udev monitor: " + errno_text(-r));
  return std::unique_ptr<Watcher>(new Watcher(std::move(impl)));
}

int Watcher::fd() const { return udev_monitor_get_fd(impl_->monitor); }

std::vector<Device> Watcher::drain() {
  std::vector<Device> out;
  // The socket is non-blocking: receive until nothing is queued.
  while (struct udev_device* d = udev_monitor_receive_device(impl_->monitor)) {
    out.push_back(to_value(d));
    udev_device_unref(d);
  }
  return out;
}

Result<std::vector<Device>> Watcher::enumerate() {
  struct udev_enumerate* e = udev_enumerate_new(impl_->udev);
  if (e == nullptr) return fail("cannot enumerate devices: " + errno_text(errno));
  for (const char* subsystem : kDeviceSubsystems) udev_enumerate_add_match_subsystem(e, subsystem);
  udev_enumerate_add_match_is_initialized(e);
  int r = udev_enumerate_scan_devices(e);
  if (r < 0) {
    udev_enumerate_unref(e);
    return fail("cannot enumerate devices: " + errno_text(-r));
  }
  std::vector<Device> out;
  for (auto* entry = udev_enumerate_get_list_entry(e); entry != nullptr; entry = udev_list_entry_get_next(entry)) {
    struct udev_device* d = udev_device_new_from_syspath(impl_->udev, udev_list_entry_get_name(entry));
    if (d == nullptr) continue;  // gone since the scan
    Device v = to_value(d);
    udev_device_unref(d);
    if (handled_device(v)) out.push_back(std::move(v));
  }
  udev_enumerate_unref(e);
  return out;
}

}  // namespace farmhand::udev
