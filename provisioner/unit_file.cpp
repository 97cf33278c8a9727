#include "provisioner/unit_file.h"

#include <cstdio>

namespace farmhand::provisioner {

UnitFile& UnitFile::add(const std::string& section, const std::string& key,
                        const std::string& value) {
  for (auto& s : sections_) {
    if (s.name == section) {
      s.entries.emplace_back(key, value);
      return *this;
    }
  }
  sections_.push_back({section, {{key, value}}});
  return *this;
}

std::string UnitFile::str() const {
  std::string out;
  if (!header_.empty()) out += "# " + header_ + "\n";
  bool first = true;
  for (const auto& s : sections_) {
    if (!first || !header_.empty()) out += "\n";
    first = false;
    out += "[" + s.name + "]\n";
    for (const auto& [k, v] : s.entries) out += k + "=" + v + "\n";
  }
  return out;
}

std::string escape_unit_path(const std::string& path) {
  std::string out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    const std::string part = path.substr(start, end - start);
    start = end + 1;
    // Empty and "." components vanish, as in systemd's path_simplify().
    if (part.empty() || part == ".") continue;
    const bool first = out.empty();
    if (!first) out += '-';
    for (size_t i = 0; i < part.size(); ++i) {
      char c = part[i];
      bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == ':' || c == '_' || (c == '.' && !(first && i == 0));
      if (plain) {
        out += c;
      } else {
        char buf[5];
        std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
        out += buf;
      }
    }
  }
  return out.empty() ? "-" : out;
}

}  // namespace farmhand::provisioner
