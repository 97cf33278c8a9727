// The keyword-table walker that every section of agent.json is read with.
// A section names each key it allows once, in a table of Keyword rows (its
// JSON type, whether it is required, its default and its handler), and
// walk_keywords() does the rest in one pass and in document order: repeated
// keys, unknown keys, wrong types, then the required keys that are missing.
// Messages are "<json pointer>: <reason>" (see provisioner/config.h).
#pragma once

#include <cstddef>
#include <functional>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace farmhand::provisioner::config_parser {

// Object members keep their document order (messages follow it), and a
// repeated key is a second member the walker refuses at its place.
using Json = nlohmann::ordered_json;

// The errors and warnings of one parse, in the order they are found.
class Diagnostics {
 public:
  void error(const std::string& pointer, const std::string& reason) {
    errors_.push_back(prefix_ + pointer + ": " + reason);
  }
  void warn(const std::string& pointer, const std::string& advice) {
    warnings_.push_back(prefix_ + pointer + ": " + advice);
  }
  // Starts every later message, e.g. "<repo label>: " while the config
  // repository's host file is read.
  void set_prefix(std::string prefix) { prefix_ = std::move(prefix); }

  size_t error_count() const { return errors_.size(); }
  const std::vector<std::string>& errors() const { return errors_; }
  const std::vector<std::string>& warnings() const { return warnings_; }
  std::vector<std::string> take_errors() { return std::move(errors_); }
  std::vector<std::string> take_warnings() { return std::move(warnings_); }

 private:
  std::string prefix_;
  std::vector<std::string> errors_;
  std::vector<std::string> warnings_;
};

// The JSON type a key's value must have; kAny leaves the check to the handler.
enum class JsonType { kAny, kString, kBoolean, kInteger, kObject, kArray };

// "an object", "a string", "a number"...: how messages name a value's type.
std::string type_name(const Json& value);
// Whether `value` has `type`; if not, the error "expected a string, got a
// number" at `pointer`. For array items and other values without a keyword.
bool expect_type(Diagnostics& diag, const Json& value, const std::string& pointer, JsonType type);

enum class Presence { kOptional, kRequired };

// One allowed key of a section. `Section` is the parser object the handler
// runs on; it holds what the handler fills in.
template <class Section>
struct Keyword {
  const char* name;
  JsonType type;
  Presence presence;
  // Writes the key's default into the section's output before any member is
  // read; nullptr when the output's own initial value is the default.
  void (*set_default)(Section&);
  // Reads one member with this name; `value` already has `type`.
  void (Section::*handle)(const Json& value, const std::string& pointer);
};

template <class Section>
using Keywords = std::span<const Keyword<Section>>;

namespace detail {
struct KeySpec {
  std::string_view name;
  JsonType type;
  Presence presence;
};
using MemberHandler = std::function<void(size_t row, const Json& value, const std::string& pointer)>;
// The walk itself, for any table: see walk_keywords.
void walk_members(Diagnostics& diag, const Json& object, const std::string& pointer,
                  const std::vector<KeySpec>& keys, const MemberHandler& handle);
}  // namespace detail

// Writes every default of `table` into the section's output.
template <class Section>
void apply_defaults(Section& section, std::type_identity_t<Keywords<Section>> table) {
  for (const auto& row : table) {
    if (row.set_default != nullptr) row.set_default(section);
  }
}

// Reads the members of `object` (which must be a JSON object) at `pointer`:
// applies the defaults first, then visits the members in document order. A
// repeated key is "duplicate key", a key not in the table is "unknown key
// (expected one of: <the table's keys, sorted>)", a value of the wrong type is
// "expected <type>, got <type>"; each of these is skipped. The rest go to
// their row's handler. Last, each required key that is absent is "required
// key is missing", in the table's order.
template <class Section>
void walk_keywords(Diagnostics& diag, const Json& object, const std::string& pointer,
                   std::type_identity_t<Keywords<Section>> table, Section& section) {
  apply_defaults<Section>(section, table);
  std::vector<detail::KeySpec> keys;
  keys.reserve(table.size());
  for (const auto& row : table) keys.push_back({row.name, row.type, row.presence});
  detail::walk_members(diag, object, pointer, keys, [&](size_t row, const Json& value, const std::string& p) {
    (section.*(table[row].handle))(value, p);
  });
}

}  // namespace farmhand::provisioner::config_parser
