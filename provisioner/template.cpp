#include "provisioner/template.h"

#include <nlohmann/json.hpp>

namespace farmhand::provisioner {
namespace {

constexpr std::string_view kOpen = "{{";
constexpr std::string_view kClose = "}}";
constexpr std::string_view kSpace = " \t\r\n";

std::string_view trim(std::string_view s) {
  size_t first = s.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(kSpace) - first + 1);
}

std::string quote(std::string_view s) {
  return nlohmann::json(std::string(s)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// One placeholder: [open, end) in the text, and the trimmed name.
struct Placeholder {
  size_t open = 0;
  size_t end = 0;
  std::string_view name;
};

// The placeholder at or after `from`; nullopt at the end of the text. Sets
// `unterminated` to the offset of a "{{" without a "}}".
std::optional<Placeholder> next_placeholder(std::string_view text, size_t from,
                                            std::optional<size_t>& unterminated) {
  size_t open = text.find(kOpen, from);
  if (open == std::string_view::npos) return std::nullopt;
  size_t close = text.find(kClose, open + kOpen.size());
  if (close == std::string_view::npos) {
    unterminated = open;
    return std::nullopt;
  }
  return Placeholder{open, close + kClose.size(),
                     trim(text.substr(open + kOpen.size(), close - open - kOpen.size()))};
}

std::string unterminated_message(size_t offset) {
  return "unterminated {{ at offset " + std::to_string(offset);
}

}  // namespace

std::vector<std::string> template_variables(std::string_view text) {
  std::vector<std::string> names;
  std::set<std::string_view> seen;
  std::optional<size_t> unterminated;
  size_t at = 0;
  while (auto p = next_placeholder(text, at, unterminated)) {
    if (seen.insert(p->name).second) names.emplace_back(p->name);
    at = p->end;
  }
  return names;
}

std::optional<std::string> template_syntax_problem(std::string_view text) {
  std::optional<size_t> unterminated;
  size_t at = 0;
  while (auto p = next_placeholder(text, at, unterminated)) at = p->end;
  if (unterminated) return unterminated_message(*unterminated);
  return std::nullopt;
}

Result<std::string> render_template(std::string_view text, const std::map<std::string, std::string>& vars) {
  std::string out;
  out.reserve(text.size());
  size_t at = 0;
  std::optional<size_t> unterminated;
  while (auto p = next_placeholder(text, at, unterminated)) {
    auto value = vars.find(std::string(p->name));
    if (value == vars.end()) return fail("unknown template variable " + quote(p->name));
    out.append(text.substr(at, p->open - at));
    out += value->second;
    at = p->end;
  }
  if (unterminated) return fail(unterminated_message(*unterminated));
  out.append(text.substr(at));
  return out;
}

std::set<std::string> known_template_variables(const std::vector<std::string>& source_names) {
  std::set<std::string> known{"container", "hostname", "host", "server_url", "address",
                              "gateway",   "subnet",   "user", "home"};
  for (const auto& name : source_names) {
    for (const char* field : {"path", "commit", "url"}) known.insert("source." + name + "." + field);
  }
  return known;
}

}  // namespace farmhand::provisioner
