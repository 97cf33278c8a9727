// `{{name}}` placeholders in a container's payload (file and unit contents,
// setup argv and environment). There is no escape: a literal "{{" cannot be
// written, and "{{{{" is not special. Whitespace inside the braces is allowed.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace farmhand::provisioner {

// The names `text` uses, in order of first use, each once. An unterminated
// "{{" ends the scan (see template_syntax_problem).
std::vector<std::string> template_variables(std::string_view text);

// "unterminated {{ at offset N" when a "{{" has no "}}" after it; nullopt otherwise.
std::optional<std::string> template_syntax_problem(std::string_view text);

// `text` with every placeholder replaced by its value. A name not in `vars`
// is an error naming it; so is an unterminated "{{". Text without "{{" is
// returned unchanged.
Result<std::string> render_template(std::string_view text, const std::map<std::string, std::string>& vars);

// The variable names any container may use (container, hostname, host,
// server_url, address, gateway, subnet, user, home) plus
// source.NAME.{path,commit,url} for each of `source_names`.
std::set<std::string> known_template_variables(const std::vector<std::string>& source_names);

}  // namespace farmhand::provisioner
