// Strict JSON parsing for documents that people write: configuration files.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

#include "common/result.h"

namespace farmhand {

// Parses `text` into an ordered_json whose objects keep their members in
// document order and keep a repeated key as a second member, so a validator
// can refuse it at its place (nlohmann alone silently keeps the last value).
// The error is nlohmann's reason without its "[json.exception...]" prefix:
// "parse error at line 3, column 5: syntax error ...".
Result<nlohmann::ordered_json> parse_json_keeping_duplicates(std::string_view text);

// nlohmann's exception text without its "[json.exception.x.N] " prefix.
std::string json_error_reason(const std::string& what);

}  // namespace farmhand
