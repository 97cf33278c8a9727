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
  size_t b = path.find_first_not_of('/');
  if (b == std::string::npos) return "-";
  size_t e = path.find_last_not_of('/');
  std::string trimmed = path.substr(b, e - b + 1);
  std::string out;
  bool slash = false;
  for (size_t i = 0; i < trimmed.size(); ++i) {
    char c = trimmed[i];
    if (c == '/') {
      if (!slash) out += '-';  // collapse repeated slashes
      slash = true;
      continue;
    }
    slash = false;
    bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == ':' || c == '_' || (c == '.' && i != 0);
    if (plain) {
      out += c;
    } else {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
      out += buf;
    }
  }
  return out;
}

}  // namespace farmhand::provisioner
