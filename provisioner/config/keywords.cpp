#include "provisioner/config/keywords.h"

#include <algorithm>
#include <set>

#include "common/json_pointer.h"

namespace farmhand::provisioner::config_parser {
namespace {

bool has_type(const Json& value, JsonType type) {
  switch (type) {
    case JsonType::kAny: return true;
    case JsonType::kString: return value.is_string();
    case JsonType::kBoolean: return value.is_boolean();
    case JsonType::kInteger: return value.is_number_integer();
    case JsonType::kObject: return value.is_object();
    case JsonType::kArray: return value.is_array();
  }
  return false;
}

const char* wanted_name(JsonType type) {
  switch (type) {
    case JsonType::kAny: return "any value";
    case JsonType::kString: return "a string";
    case JsonType::kBoolean: return "a boolean";
    case JsonType::kInteger: return "an integer";
    case JsonType::kObject: return "an object";
    case JsonType::kArray: return "an array";
  }
  return "any value";
}

}  // namespace

std::string type_name(const Json& value) {
  switch (value.type()) {
    case Json::value_t::object: return "an object";
    case Json::value_t::array: return "an array";
    case Json::value_t::string: return "a string";
    case Json::value_t::boolean: return "a boolean";
    case Json::value_t::null: return "null";
    case Json::value_t::binary: return "binary data";
    default: return "a number";
  }
}

bool expect_type(Diagnostics& diag, const Json& value, const std::string& pointer, JsonType type) {
  if (has_type(value, type)) return true;
  diag.error(pointer, std::string("expected ") + wanted_name(type) + ", got " + type_name(value));
  return false;
}

namespace detail {

void walk_members(Diagnostics& diag, const Json& object, const std::string& pointer,
                  const std::vector<KeySpec>& keys, const MemberHandler& handle) {
  std::vector<std::string_view> sorted;
  for (const auto& key : keys) sorted.push_back(key.name);
  std::sort(sorted.begin(), sorted.end());
  std::string known;
  for (auto name : sorted) known += (known.empty() ? "" : ", ") + std::string(name);

  std::set<std::string, std::less<>> seen;
  // Not a structured binding: clang 14 (the fuzz build) cannot capture one in a lambda.
  for (const auto& entry : object.get_ref<const Json::object_t&>()) {
    const std::string& key = entry.first;
    const Json& value = entry.second;
    std::string member = json_pointer_child(pointer, key);
    auto row = std::find_if(keys.begin(), keys.end(), [&](const KeySpec& k) { return k.name == key; });
    if (!seen.insert(key).second) {
      diag.error(member, "duplicate key");
    } else if (row == keys.end()) {
      diag.error(member, "unknown key (expected one of: " + known + ")");
    } else if (expect_type(diag, value, member, row->type)) {
      handle(static_cast<size_t>(row - keys.begin()), value, member);
    }
  }
  for (const auto& key : keys) {
    if (key.presence == Presence::kRequired && !seen.contains(key.name)) {
      diag.error(json_pointer_child(pointer, key.name), "required key is missing");
    }
  }
}

}  // namespace detail
}  // namespace farmhand::provisioner::config_parser
