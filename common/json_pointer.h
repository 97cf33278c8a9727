// JSON pointers (RFC 6901), as used in every configuration error message.
#pragma once

#include <string>
#include <string_view>

namespace farmhand {

// A reference token escaped for a pointer: '~' -> "~0", '/' -> "~1".
inline std::string escape_json_pointer_token(std::string_view token) {
  std::string out;
  for (char c : token) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

// The pointer of member `token` under `parent`, where the root is "/".
inline std::string json_pointer_child(const std::string& parent, std::string_view token) {
  return (parent == "/" ? "/" : parent + "/") + escape_json_pointer_token(token);
}

}  // namespace farmhand
