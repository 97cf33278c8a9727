// systemd-style INI files (.nspawn, .network, unit drop-ins) with repeated
// keys. Sections and keys keep their insertion order, so rendering is stable
// and golden-file tests are exact.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace farmhand::provisioner {

class UnitFile {
 public:
  explicit UnitFile(std::string header_comment = "") : header_(std::move(header_comment)) {}

  // Appends key=value to `section` (created on first use). Keys may repeat:
  // Bind=, DeviceAllow=, Address= all do.
  UnitFile& add(const std::string& section, const std::string& key, const std::string& value);
  std::string str() const;
  bool empty() const { return sections_.empty(); }

 private:
  struct Section {
    std::string name;
    std::vector<std::pair<std::string, std::string>> entries;
  };
  std::string header_;
  std::vector<Section> sections_;
};

// systemd's path escaping for unit names ("/var/lib/machines/a-b" ->
// "var-lib-machines-a\x2db"), as systemd-escape --path does.
std::string escape_unit_path(const std::string& path);

}  // namespace farmhand::provisioner
