// A container's payload (docs/payload.md): git "sources", templated "files",
// "setup" steps and systemd "services". Names, paths and template variables
// are checked across the items of each array.
#include <algorithm>
#include <map>
#include <regex>

#include "provisioner/config/checks.h"
#include "provisioner/config/sections.h"
#include "provisioner/payload_rules.h"
#include "provisioner/template.h"

namespace farmhand::provisioner::config_parser {
namespace {

bool check_payload_name(Diagnostics& diag, const std::string& name, const std::string& p, const char* what) {
  if (valid_payload_name(name)) return true;
  diag.error(p, quote(name) + " is not a valid " + what +
                    " name: use 1 to 64 lower-case letters, digits, '_', '.' or '-', starting with a letter or digit");
  return false;
}

// Every {{variable}} of `text` must be one the container has.
void check_template(Diagnostics& diag, const std::string& text, const std::string& p,
                    const std::set<std::string>& variables) {
  if (auto problem = template_syntax_problem(text)) {
    diag.error(p, *problem);
    return;
  }
  for (const auto& name : template_variables(text)) {
    if (variables.contains(name)) continue;
    std::string bad = "unknown template variable " + quote(name);
    size_t dot = name.rfind('.');
    if (name.starts_with("source.") && dot > 7) {
      std::string source = name.substr(7, dot - 7);
      if (!variables.contains("source." + source + ".path")) {
        diag.error(p, bad + ": the container has no source " + quote(source));
      } else {
        diag.error(p, bad + " (a source has: path, commit, url)");
      }
    } else {
      diag.error(p, bad + " (known: address, container, gateway, home, host, hostname, server_url, subnet, user, "
                          "source.NAME.path, source.NAME.commit, source.NAME.url)");
    }
  }
}

// File and unit contents: a string, or an array of lines (each ends in "\n").
std::optional<std::string> content(Diagnostics& diag, const Json& v, const std::string& p,
                                   const std::set<std::string>& variables) {
  if (v.is_string()) {
    check_template(diag, v.get<std::string>(), p, variables);
    return v.get<std::string>();
  }
  if (!v.is_array()) {
    diag.error(p, "expected a string or an array of strings, got " + type_name(v));
    return std::nullopt;
  }
  std::string text;
  bool ok = true;
  for (size_t i = 0; i < v.size(); ++i) {
    auto line = as_string(diag, v[i], child(p, i));
    if (!line) {
      ok = false;
      continue;
    }
    check_template(diag, *line, child(p, i), variables);
    text += *line + "\n";
  }
  if (!ok) return std::nullopt;
  return text;
}

// A templated argv or environment entry; farmhand passes it to exec, which cannot carry NUL.
std::optional<std::string> exec_string(Diagnostics& diag, const Json& v, const std::string& p,
                                       const std::set<std::string>& variables) {
  auto s = as_string(diag, v, p);
  if (!s) return std::nullopt;
  if (s->find('\0') != std::string::npos) {
    diag.error(p, quote(*s) + " must not contain a NUL character");
    return std::nullopt;
  }
  check_template(diag, *s, p, variables);
  return s;
}

// Runs `parse_item` on each item of `array` that is an object.
template <class ParseItem>
void for_each_object(Diagnostics& diag, const Json& array, const std::string& pointer, ParseItem parse_item) {
  for (size_t i = 0; i < array.size(); ++i) {
    const std::string ip = child(pointer, i);
    if (expect_type(diag, array[i], ip, JsonType::kObject)) parse_item(array[i], ip);
  }
}

// ---- sources ----

struct SourceSection {
  Diagnostics& diag;
  SourceSpec& out;
  std::optional<std::string> peeked_url;                   // for the credentials, wherever "url" is
  std::map<std::string, std::string>& names;               // name -> pointer of its first use
  std::vector<std::pair<std::string, std::string>>& paths;  // normalized path, pointer

  void name(const Json& value, const std::string& p) {
    const auto s = value.get<std::string>();
    if (!check_payload_name(diag, s, p, "source")) return;
    if (auto [it, fresh] = names.emplace(s, p); !fresh) {
      diag.error(p, "duplicate source name " + quote(s) + " (also at " + it->second + ")");
    } else {
      out.name = s;
    }
  }

  void url(const Json& value, const std::string& p) {
    if (auto s = check_git_url(diag, value.get<std::string>(), p)) out.url = *s;
  }

  void ref(const Json& value, const std::string& p) {
    if (auto s = check_git_ref(diag, value.get<std::string>(), p)) out.ref = *s;
  }

  void path(const Json& value, const std::string& p) {
    const auto s = value.get<std::string>();
    if (!check_path(diag, s, p, false)) return;
    std::string key = normal_path(s);
    if (key == "/") {
      diag.error(p, quote(s) + " is the container's root: a source needs a directory of its own");
      return;
    }
    out.path = s;
    for (const auto& [other, other_pointer] : paths) {
      if (other == key) {
        diag.error(p, "duplicate source path " + quote(s) + " (also at " + other_pointer + ")");
      } else if (key.starts_with(other + "/")) {
        diag.error(p, quote(s) + " is inside the source at " + other_pointer + " (" + quote(other) +
                          "): sources must not nest");
      } else if (other.starts_with(key + "/")) {
        diag.error(p, quote(s) + " contains the source at " + other_pointer + " (" + quote(other) +
                          "): sources must not nest");
      } else {
        continue;
      }
      return;
    }
    paths.emplace_back(key, p);
  }

  void depth(const Json& value, const std::string& p) {
    if (auto d = int_in_range(diag, value, p, 0, 1000000, " (0: the whole history)")) out.depth = *d;
  }
  void submodules(const Json& value, const std::string&) { out.submodules = value.get<bool>(); }
  void clean(const Json& value, const std::string&) { out.clean = value.get<bool>(); }
  void credentials(const Json& value, const std::string& p) {
    parse_credentials(diag, value, p, peeked_url, out.credentials);
  }
};

// clean's default, false, is SourceSpec's own.
const Keyword<SourceSection> kSourceKeys[] = {
    {"name", JsonType::kString, Presence::kRequired, nullptr, &SourceSection::name},
    {"url", JsonType::kString, Presence::kRequired, nullptr, &SourceSection::url},
    {"ref", JsonType::kString, Presence::kRequired, nullptr, &SourceSection::ref},
    {"path", JsonType::kString, Presence::kRequired, nullptr, &SourceSection::path},
    {"depth", JsonType::kInteger, Presence::kOptional,
     [](SourceSection& s) { s.out.depth = kDefaults.source_depth; }, &SourceSection::depth},
    {"submodules", JsonType::kBoolean, Presence::kOptional,
     [](SourceSection& s) { s.out.submodules = kDefaults.source_submodules; }, &SourceSection::submodules},
    {"clean", JsonType::kBoolean, Presence::kOptional, nullptr, &SourceSection::clean},
    {"credentials", JsonType::kObject, Presence::kOptional, nullptr, &SourceSection::credentials},
};

// ---- files ----

// A user or group of a file: a name as useradd allows it, or a numeric id.
bool valid_owner(const std::string& s) {
  static const std::regex kName("[a-z_][a-z0-9_-]{0,31}");
  static const std::regex kId("[0-9]{1,10}");
  return std::regex_match(s, kName) || (std::regex_match(s, kId) && std::stoull(s) < 4294967295ULL);
}

struct FileSection {
  Diagnostics& diag;
  FileSpec& out;
  const std::set<std::string>& variables;
  std::map<std::string, std::string>& paths;  // normalized path -> pointer of its first use

  void path(const Json& value, const std::string& p) {
    const auto s = value.get<std::string>();
    if (!check_path(diag, s, p, false)) return;
    if (s.back() == '/') {
      diag.error(p, quote(s) + " names a directory: a file's path must not end in '/'");
    } else if (auto [it, fresh] = paths.emplace(normal_path(s), p); !fresh) {
      diag.error(p, "duplicate file path " + quote(s) + " (also at " + it->second + ")");
    } else {
      out.path = s;
    }
  }

  void content_key(const Json& value, const std::string& p) {
    if (auto text = content(diag, value, p, variables)) out.content = *text;
  }

  void id(const Json& value, const std::string& p, const char* what, std::string& field) {
    const auto s = value.get<std::string>();
    if (!valid_owner(s)) {
      diag.error(p, quote(s) + " is not a " + what + " name or numeric id");
    } else {
      field = s;
    }
  }
  void owner(const Json& value, const std::string& p) { id(value, p, "user", out.owner); }
  void group(const Json& value, const std::string& p) { id(value, p, "group", out.group); }

  void mode(const Json& value, const std::string& p) {
    const auto s = value.get<std::string>();
    static const std::regex kMode("[0-7]{3,4}");
    if (!std::regex_match(s, kMode)) {
      diag.error(p, quote(s) + " is not a file mode: write it in octal, like \"0644\"");
    } else if (unsigned mode = static_cast<unsigned>(std::stoul(s, nullptr, 8)); (mode & 02) != 0) {
      diag.error(p, quote(s) + " lets every user write the file: remove the world-write bit");
    } else {
      out.mode = mode;
    }
  }
};

const Keyword<FileSection> kFileKeys[] = {
    {"path", JsonType::kString, Presence::kRequired, nullptr, &FileSection::path},
    {"content", JsonType::kAny, Presence::kRequired, nullptr, &FileSection::content_key},
    {"owner", JsonType::kString, Presence::kOptional, [](FileSection& s) { s.out.owner = kDefaults.file_owner; },
     &FileSection::owner},
    {"group", JsonType::kString, Presence::kOptional, [](FileSection& s) { s.out.group = kDefaults.file_group; },
     &FileSection::group},
    {"mode", JsonType::kString, Presence::kOptional, [](FileSection& s) { s.out.mode = kDefaults.file_mode; },
     &FileSection::mode},
};

// ---- setup ----

struct StepSection {
  Diagnostics& diag;
  SetupStep& out;
  const std::set<std::string>& variables;
  const std::vector<std::string>& source_names;  // the container's
  std::map<std::string, std::string>& names;     // name -> pointer of its first use

  void name(const Json& value, const std::string& p) {
    const auto s = value.get<std::string>();
    if (!check_payload_name(diag, s, p, "step")) return;
    if (auto [it, fresh] = names.emplace(s, p); !fresh) {
      diag.error(p, "duplicate step name " + quote(s) + " (also at " + it->second + ")");
    } else {
      out.name = s;
    }
  }

  void run(const Json& value, const std::string& p) {
    if (value.empty()) diag.error(p, "expected at least one string: the program to run");
    for (size_t j = 0; j < value.size(); ++j) {
      auto arg = exec_string(diag, value[j], child(p, j), variables);
      if (!arg) continue;
      if (j == 0 && arg->empty()) diag.error(child(p, j), "the program must not be empty");
      out.run.push_back(*arg);
    }
  }

  void user(const Json& value, const std::string& p) {
    const auto s = value.get<std::string>();
    if (auto user = parse_run_as(s)) {
      out.user = *user;
    } else {
      diag.error(p, "unknown user " + quote(s) + " (expected one of: root, sai)");
    }
  }

  void cwd(const Json& value, const std::string& p) {
    const auto s = value.get<std::string>();
    if (check_path(diag, s, p, false)) out.cwd = s;
  }

  void env(const Json& value, const std::string& p) {
    static const std::regex kKey("[A-Za-z_][A-Za-z0-9_]*");
    std::map<std::string, std::string> keys;
    for (size_t j = 0; j < value.size(); ++j) {
      const std::string ep = child(p, j);
      auto entry = exec_string(diag, value[j], ep, variables);
      if (!entry) continue;
      std::string key = entry->substr(0, entry->find('='));
      if (key.size() == entry->size() || !std::regex_match(key, kKey)) {
        diag.error(ep, quote(*entry) + " is not KEY=value with KEY of letters, digits and '_' (not starting "
                                       "with a digit)");
      } else if (auto [it, fresh] = keys.emplace(key, ep); !fresh) {
        diag.error(ep, "duplicate variable " + quote(key) + " (also at " + it->second + ")");
      } else {
        out.env.push_back(*entry);
      }
    }
  }

  void sources(const Json& value, const std::string& p) {
    std::set<std::string> seen;
    for (size_t j = 0; j < value.size(); ++j) {
      auto s = as_string(diag, value[j], child(p, j));
      if (!s) continue;
      if (std::find(source_names.begin(), source_names.end(), *s) == source_names.end()) {
        diag.error(child(p, j), "unknown source " + quote(*s) +
                                    (source_names.empty() ? std::string(" (the container has no sources)")
                                                          : " (the container's sources: " + join(source_names) +
                                                                ")"));
      } else if (!seen.insert(*s).second) {
        diag.error(child(p, j), "duplicate source " + quote(*s));
      } else {
        out.sources.push_back(*s);
      }
    }
  }

  void timeout(const Json& value, const std::string& p) {
    if (auto t = int_in_range(diag, value, p, 1, 86400, " seconds")) out.timeout_s = *t;
  }
};

// cwd's default, empty, is the build user's home; "sources" left out means
// every source of the container (see parse_setup).
const Keyword<StepSection> kStepKeys[] = {
    {"name", JsonType::kString, Presence::kRequired, nullptr, &StepSection::name},
    {"run", JsonType::kArray, Presence::kRequired, nullptr, &StepSection::run},
    {"user", JsonType::kString, Presence::kOptional,
     [](StepSection& s) { s.out.user = *parse_run_as(kDefaults.setup_user); }, &StepSection::user},
    {"cwd", JsonType::kString, Presence::kOptional, nullptr, &StepSection::cwd},
    {"env", JsonType::kArray, Presence::kOptional, nullptr, &StepSection::env},
    {"sources", JsonType::kArray, Presence::kOptional, nullptr, &StepSection::sources},
    {"timeout", JsonType::kInteger, Presence::kOptional,
     [](StepSection& s) { s.out.timeout_s = kDefaults.setup_timeout_s; }, &StepSection::timeout},
};

// ---- services ----

struct ServiceSection {
  Diagnostics& diag;
  ServiceSpec& out;
  const std::set<std::string>& variables;
  std::map<std::string, std::string>& names;  // name -> pointer of its first use

  void name(const Json& value, const std::string& p) {
    const auto s = value.get<std::string>();
    if (auto problem = unit_name_problem(s)) {
      diag.error(p, quote(s) + " is not a unit file name: " + *problem);
    } else if (auto [it, fresh] = names.emplace(s, p); !fresh) {
      diag.error(p, "duplicate service " + quote(s) + " (also at " + it->second + ")");
    } else {
      out.name = s;
    }
  }
  void content_key(const Json& value, const std::string& p) {
    if (auto text = content(diag, value, p, variables)) out.content = *text;
  }
  void enable(const Json& value, const std::string&) { out.enable = value.get<bool>(); }
};

const Keyword<ServiceSection> kServiceKeys[] = {
    {"name", JsonType::kString, Presence::kRequired, nullptr, &ServiceSection::name},
    {"content", JsonType::kAny, Presence::kRequired, nullptr, &ServiceSection::content_key},
    {"enable", JsonType::kBoolean, Presence::kOptional,
     [](ServiceSection& s) { s.out.enable = kDefaults.service_enable; }, &ServiceSection::enable},
};

}  // namespace

std::vector<std::string> peek_source_names(const Json& container) {
  std::vector<std::string> names;
  const Json* sources = first_member(container, "sources");
  if (sources == nullptr || !sources->is_array()) return names;
  for (const Json& source : *sources) {
    auto name = peek_string(source, "name");
    if (name && std::find(names.begin(), names.end(), *name) == names.end()) names.push_back(*name);
  }
  return names;
}

void parse_sources(Diagnostics& diag, const Json& array, const std::string& pointer, ContainerSpec& spec) {
  std::map<std::string, std::string> names;
  std::vector<std::pair<std::string, std::string>> paths;
  for_each_object(diag, array, pointer, [&](const Json& item, const std::string& ip) {
    SourceSpec source;
    SourceSection section{diag, source, peek_string(item, "url"), names, paths};
    walk_keywords(diag, item, ip, kSourceKeys, section);
    spec.sources.push_back(std::move(source));
  });
}

void parse_files(Diagnostics& diag, const Json& array, const std::string& pointer, ContainerSpec& spec,
                 const std::set<std::string>& variables) {
  std::map<std::string, std::string> paths;
  for_each_object(diag, array, pointer, [&](const Json& item, const std::string& ip) {
    FileSpec file;
    FileSection section{diag, file, variables, paths};
    walk_keywords(diag, item, ip, kFileKeys, section);
    spec.files.push_back(std::move(file));
  });
}

void parse_setup(Diagnostics& diag, const Json& array, const std::string& pointer, ContainerSpec& spec,
                 const std::set<std::string>& variables, const std::vector<std::string>& source_names,
                 std::vector<size_t>& steps_on_all_sources) {
  std::map<std::string, std::string> names;
  for_each_object(diag, array, pointer, [&](const Json& item, const std::string& ip) {
    SetupStep step;
    StepSection section{diag, step, variables, source_names, names};
    walk_keywords(diag, item, ip, kStepKeys, section);
    if (first_member(item, "sources") == nullptr) steps_on_all_sources.push_back(spec.setup.size());
    spec.setup.push_back(std::move(step));
  });
}

void parse_services(Diagnostics& diag, const Json& array, const std::string& pointer, ContainerSpec& spec,
                    const std::set<std::string>& variables) {
  std::map<std::string, std::string> names;
  for_each_object(diag, array, pointer, [&](const Json& item, const std::string& ip) {
    ServiceSpec service;
    ServiceSection section{diag, service, variables, names};
    walk_keywords(diag, item, ip, kServiceKeys, section);
    spec.services.push_back(std::move(service));
  });
}

}  // namespace farmhand::provisioner::config_parser
