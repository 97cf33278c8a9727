// Loading, validating, merging and expanding the distro recipes. The recipes
// themselves are data (nspawn-templates/recipes/*.json); nothing here knows a
// distro by name.
#include "provisioner/recipe.h"

#include "common/json_pointer.h"
#include "common/strict_json.h"

#include <algorithm>
#include <array>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>

#include "common/hash.h"
#include "nspawn-templates/embedded.h"

namespace farmhand::provisioner {

using nlohmann::json;

struct RecipeBook::Entry {
  std::map<std::string, ReleaseRecipe> releases;
};

namespace {

// ---- placeholders ---------------------------------------------------------

constexpr std::string_view kPackages = "{packages}";
constexpr std::string_view kBootPackages = "{boot_packages}";

std::string join(const std::vector<std::string>& items, char sep) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += sep;
    out += item;
  }
  return out;
}

// The placeholders substituted inside an argument.
constexpr std::pair<std::string_view, std::string ExpandVars::*> kScalars[] = {
    {"release", &ExpandVars::release}, {"arch", &ExpandVars::arch},
    {"root", &ExpandVars::root},       {"mirror", &ExpandVars::mirror},
    {"work", &ExpandVars::work}};

// Substitutes the in-argument placeholders of `arg`. Returns nullopt when the
// argument names a placeholder whose value is empty (the argument is dropped).
// With vars == nullptr only the syntax is checked (recipe loading).
Result<std::optional<std::string>> expand_argument(const std::string& arg, const ExpandVars* vars) {
  std::string out;
  bool drop = false;
  size_t pos = 0;
  while (pos < arg.size()) {
    const size_t open = arg.find_first_of("{}", pos);
    if (open == std::string::npos) {
      out.append(arg, pos);
      break;
    }
    if (arg[open] == '}') return fail("unmatched \"}\" in \"" + arg + "\"");
    out.append(arg, pos, open - pos);
    const size_t close = arg.find('}', open);
    if (close == std::string::npos) return fail("unterminated placeholder in \"" + arg + "\"");
    const std::string name = arg.substr(open + 1, close - open - 1);
    const std::string placeholder = "{" + name + "}";
    std::string value;
    const auto scalar = std::find_if(std::begin(kScalars), std::end(kScalars),
                                     [&](const auto& entry) { return entry.first == name; });
    if (scalar != std::end(kScalars)) {
      value = vars != nullptr ? vars->*(scalar->second) : placeholder;
    } else if (name == "boot_packages,") {
      value = vars != nullptr ? join(vars->boot_packages, ',') : placeholder;
    } else if (name == "packages" || name == "boot_packages") {
      return fail("placeholder \"" + placeholder + "\" must be a whole argument in \"" + arg +
                  "\"");
    } else {
      return fail("unknown placeholder \"" + placeholder + "\" in \"" + arg + "\"");
    }
    if (value.empty()) drop = true;
    out += value;
    pos = close + 1;
  }
  if (drop) return std::optional<std::string>();
  return std::optional<std::string>(std::move(out));
}

// ---- JSON validation ------------------------------------------------------

// Errors name the document and the JSON pointer: "fedora.json: /install/argv: ...".
class Location {
 public:
  Location(const std::string& file, std::string pointer)
      : file_(file), pointer_(std::move(pointer)) {}
  Location operator/(const std::string& token) const {
    return Location(file_, pointer_ + "/" + escape_json_pointer_token(token));
  }
  Location operator/(size_t index) const {
    return Location(file_, pointer_ + "/" + std::to_string(index));
  }
  Error error(const std::string& reason) const {
    return fail(pointer_.empty() ? file_ + ": " + reason : file_ + ": " + pointer_ + ": " + reason);
  }

 private:
  const std::string& file_;
  std::string pointer_;
};

bool is_string_array(const json& value) {
  return value.is_array() &&
         std::all_of(value.begin(), value.end(), [](const json& v) { return v.is_string(); });
}

Status check_keys(const json& object, const Location& at, const std::set<std::string>& allowed,
                  const std::vector<std::string>& required) {
  for (const auto& [key, value] : object.items()) {
    if (allowed.count(key) == 0) return (at / key).error("unknown key");
  }
  for (const auto& key : required) {
    if (!object.contains(key)) return at.error("missing required key \"" + key + "\"");
  }
  return {};
}

Status check_argv(const json& argv, const Location& at) {
  if (!is_string_array(argv)) return at.error("expected an array of strings");
  if (argv.empty()) return at.error("expected at least one argument");
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string arg = argv[i].get<std::string>();
    if (arg == kPackages || arg == kBootPackages) continue;
    auto checked = expand_argument(arg, nullptr);
    if (!checked) return (at / i).error(checked.error().message());
  }
  return {};
}

Status check_command(const json& command, const Location& at) {
  if (!command.is_object()) return at.error("expected an object");
  if (auto s = check_keys(command, at, {"run", "argv", "env"}, {"argv"}); !s) return s;
  if (command.contains("run")) {
    const json& run = command["run"];
    if (!run.is_string() || (run != "host" && run != "container")) {
      return (at / "run").error("expected \"host\" or \"container\"");
    }
  }
  if (auto s = check_argv(command["argv"], at / "argv"); !s) return s;
  if (command.contains("env")) {
    const json& env = command["env"];
    if (!is_string_array(env)) return (at / "env").error("expected an array of strings");
    for (size_t i = 0; i < env.size(); ++i) {
      const std::string entry = env[i].get<std::string>();
      const size_t eq = entry.find('=');
      if (eq == std::string::npos || eq == 0)
        return (at / "env" / i).error("expected \"KEY=value\"");
    }
  }
  return {};
}

Status check_command_list(const json& list, const Location& at) {
  if (!list.is_array()) return at.error("expected an array of commands");
  for (size_t i = 0; i < list.size(); ++i) {
    if (auto s = check_command(list[i], at / i); !s) return s;
  }
  return {};
}

Status check_package_list(const json& list, const Location& at) {
  if (!is_string_array(list)) return at.error("expected an array of strings");
  return {};
}

// A package name pattern must never let a name become an option or carry
// whitespace or shell syntax, whatever else it admits.
Status check_pattern(const json& value, const Location& at) {
  if (!value.is_string()) return at.error("expected a string");
  std::regex re;
  try {
    re = std::regex(value.get<std::string>(), std::regex::ECMAScript);
  } catch (const std::regex_error&) {
    return at.error("not a valid ECMAScript regular expression");
  }
  static const std::array<std::string, 5> kShapes = {"X", "X1", "aX", "aXb", "a/Xb"};
  static const std::string kUnsafe = " \t\n;|&$`'\"<>()\\*?!{}[]#~";
  std::vector<std::string> probes = {"", "-", "-x", "-a/b", "--x", "a/-b"};
  for (char c : kUnsafe) {
    for (const auto& shape : kShapes) {
      std::string probe = shape;
      std::replace(probe.begin(), probe.end(), 'X', c);
      probes.push_back(probe);
      probes.push_back(probe + "/b");
    }
  }
  for (const auto& probe : probes) {
    if (std::regex_match(probe, re)) {
      return at.error("admits the unsafe package name " + json(probe).dump());
    }
  }
  return {};
}

Status check_name_map(const json& value, const Location& at) {
  if (!value.is_object()) return at.error("expected an object of strings");
  if (value.empty()) return at.error("expected at least one architecture");
  for (const auto& [key, name] : value.items()) {
    if (!name.is_string() || name.get<std::string>().empty()) {
      return (at / key).error("expected a non-empty string");
    }
  }
  return {};
}

Status check_enum(const json& value, const Location& at, const std::vector<std::string>& choices,
                  const std::string& expected) {
  if (!value.is_string() ||
      std::find(choices.begin(), choices.end(), value.get<std::string>()) == choices.end()) {
    return at.error("expected " + expected);
  }
  return {};
}

// Checks the type of every key a recipe or a release may set.
Status check_overridable(const json& object, const Location& at) {
  for (const auto& [key, value] : object.items()) {
    const Location here = at / key;
    Status s;
    if (key == "recipe_version") {
      if (!value.is_number_integer() || value.get<long long>() < 1) {
        s = here.error("expected a positive integer");
      }
    } else if (key == "family") {
      if (!value.is_string() || value.get<std::string>().empty()) {
        s = here.error("expected a non-empty string");
      }
    } else if (key == "arches") {
      s = check_name_map(value, here);
    } else if (key == "package_name_pattern") {
      s = check_pattern(value, here);
    } else if (key == "mirror") {
      s = check_enum(value, here, {"optional", "required", "unused"},
                     "\"optional\", \"required\" or \"unused\"");
    } else if (key == "boot_packages" || key == "build_packages") {
      s = check_package_list(value, here);
    } else if (key == "bootstrap" || key == "prepare" || key == "cleanup") {
      s = check_command_list(value, here);
    } else if (key == "install") {
      s = check_command(value, here);
    } else if (key == "user") {
      if (!value.is_object()) return here.error("expected an object");
      if (s = check_keys(value, here, {"group", "argv"}, {"group", "argv"}); !s) return s;
      if (!value["group"].is_string() || value["group"].get<std::string>().empty()) {
        return (here / "group").error("expected a non-empty string");
      }
      s = check_argv(value["argv"], here / "argv");
    } else if (key == "network") {
      if (!value.is_object()) return here.error("expected an object");
      if (s = check_keys(value, here, {"method", "enable"}, {"method", "enable"}); !s) return s;
      if (s = check_enum(value["method"], here / "method", {"networkd", "networkmanager"},
                         "\"networkd\" or \"networkmanager\"");
          !s) {
        return s;
      }
      if (!is_string_array(value["enable"])) {
        s = (here / "enable").error("expected an array of strings");
      }
    }
    if (!s) return s;
  }
  return {};
}

const std::set<std::string> kOverridable = {
    "recipe_version", "family",        "arches",         "package_name_pattern",
    "mirror",         "boot_packages", "build_packages", "bootstrap",
    "prepare",        "install",       "cleanup",        "user",
    "network"};
// In the order they are reported when missing.
const std::vector<std::string> kRequiredPerRelease = {
    "recipe_version", "family",        "arches",         "package_name_pattern",
    "mirror",         "boot_packages", "build_packages", "bootstrap",
    "install",        "user",          "network"};

bool valid_name(const std::string& name, bool allow_upper_and_dots) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && c == '-') ||
        (allow_upper_and_dots && ((c >= 'A' && c <= 'Z') || (i > 0 && (c == '.' || c == '_'))));
    if (!ok) return false;
  }
  return true;
}

std::vector<std::string> strings(const json& array) {
  return array.get<std::vector<std::string>>();
}

RecipeCommand to_command(const json& j) {
  RecipeCommand command;
  command.where =
      j.value("run", std::string("container")) == "host" ? Where::kHost : Where::kContainer;
  command.argv = strings(j["argv"]);
  if (j.contains("env")) command.env = strings(j["env"]);
  return command;
}

std::vector<RecipeCommand> to_commands(const json& list) {
  std::vector<RecipeCommand> out;
  for (const auto& j : list) out.push_back(to_command(j));
  return out;
}

// Merges one release into the recipe (whole-value replacement per key), checks
// the result as a whole and converts it. Messages point at the object each
// key came from.
Result<ReleaseRecipe> resolve_release(const std::string& distro, const json& top,
                                      const std::string& release, const json& overrides,
                                      const Location& top_at) {
  const Location release_at = top_at / "releases" / release;
  json merged = json::object();
  std::map<std::string, bool> from_release;
  for (const auto& [key, value] : top.items()) {
    if (key == "releases") continue;
    merged[key] = value;
    from_release[key] = false;
  }
  for (const auto& [key, value] : overrides.items()) {
    merged[key] = value;
    from_release[key] = true;
  }
  merged["release"] = release;
  for (const auto& key : kRequiredPerRelease) {
    if (!merged.contains(key)) {
      return release_at.error("missing required key \"" + key +
                              "\" (set it at the top level or in the release)");
    }
  }
  auto at = [&](const std::string& key) { return (from_release[key] ? release_at : top_at) / key; };

  if (merged["bootstrap"].empty()) return at("bootstrap").error("expected at least one command");
  const auto& install_argv = merged["install"]["argv"];
  if (std::find(install_argv.begin(), install_argv.end(), json(std::string(kPackages))) ==
      install_argv.end()) {
    return (at("install") / "argv").error("must contain the argument \"{packages}\"");
  }
  const std::regex pattern(merged["package_name_pattern"].get<std::string>(),
                           std::regex::ECMAScript);
  for (const std::string list : {"boot_packages", "build_packages"}) {
    const auto& names = merged[list];
    for (size_t i = 0; i < names.size(); ++i) {
      if (!std::regex_match(names[i].get<std::string>(), pattern)) {
        return (at(list) / i).error(names[i].dump() + " does not match package_name_pattern");
      }
    }
  }

  ReleaseRecipe r;
  r.distro = distro;
  r.release = release;
  r.recipe_version = merged["recipe_version"].get<int>();
  r.family = merged["family"].get<std::string>();
  r.arches = merged["arches"].get<std::map<std::string, std::string>>();
  r.package_name_pattern = merged["package_name_pattern"].get<std::string>();
  const std::string mirror = merged["mirror"].get<std::string>();
  r.mirror = mirror == "required" ? MirrorPolicy::kRequired
             : mirror == "unused" ? MirrorPolicy::kUnused
                                  : MirrorPolicy::kOptional;
  r.boot_packages = strings(merged["boot_packages"]);
  r.build_packages = strings(merged["build_packages"]);
  r.bootstrap = to_commands(merged["bootstrap"]);
  if (merged.contains("prepare")) r.prepare = to_commands(merged["prepare"]);
  r.install = to_command(merged["install"]);
  if (merged.contains("cleanup")) r.cleanup = to_commands(merged["cleanup"]);
  r.create_user.where = Where::kContainer;
  r.create_user.argv = strings(merged["user"]["argv"]);
  r.user_group = merged["user"]["group"].get<std::string>();
  r.network_method = merged["network"]["method"].get<std::string>();
  r.enable_units = strings(merged["network"]["enable"]);
  // nlohmann objects keep their keys sorted, so dump() is canonical.
  r.fingerprint = sha256_hex(merged.dump());
  return r;
}

using ReleaseMap = std::map<std::string, ReleaseRecipe>;

// Parses and checks one document; sets *distro_out to its distro name.
Result<ReleaseMap> load_document(const std::string& file, const std::string& text,
                                 std::string* distro_out) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::parse_error& e) {
    return fail(file + ": invalid JSON: " + json_error_reason(e.what()));
  }
  const Location top_at(file, "");
  if (!doc.is_object()) return top_at.error("expected an object at the top level");
  std::set<std::string> allowed = kOverridable;
  allowed.insert({"distro", "releases"});
  if (auto s = check_keys(doc, top_at, allowed, {"distro", "releases"}); !s) return s.error();
  const json& distro = doc["distro"];
  if (!distro.is_string() || !valid_name(distro.get<std::string>(), false)) {
    return (top_at / "distro").error("expected a name of lower-case letters, digits and \"-\"");
  }
  if (auto s = check_overridable(doc, top_at); !s) return s.error();
  const json& releases = doc["releases"];
  if (!releases.is_object()) return (top_at / "releases").error("expected an object");
  if (releases.empty()) return (top_at / "releases").error("expected at least one release");

  ReleaseMap out;
  for (const auto& [name, overrides] : releases.items()) {
    const Location release_at = top_at / "releases" / name;
    if (!valid_name(name, true)) {
      return release_at.error("expected a release name of letters, digits, \".\", \"_\" and \"-\"");
    }
    if (!overrides.is_object()) return release_at.error("expected an object");
    if (auto s = check_keys(overrides, release_at, kOverridable, {}); !s) return s.error();
    if (auto s = check_overridable(overrides, release_at); !s) return s.error();
    auto recipe = resolve_release(distro.get<std::string>(), doc, name, overrides, top_at);
    if (!recipe) return recipe.error();
    out.emplace(name, std::move(recipe).value());
  }
  *distro_out = distro.get<std::string>();
  return out;
}

}  // namespace

Result<std::vector<std::string>> expand_argv(const std::vector<std::string>& argv_template,
                                             const ExpandVars& vars) {
  std::vector<std::string> out;
  for (const auto& arg : argv_template) {
    if (arg == kPackages) {
      out.insert(out.end(), vars.packages.begin(), vars.packages.end());
      continue;
    }
    if (arg == kBootPackages) {
      out.insert(out.end(), vars.boot_packages.begin(), vars.boot_packages.end());
      continue;
    }
    auto expanded = expand_argument(arg, &vars);
    if (!expanded) return expanded.error();
    if (expanded->has_value()) out.push_back(std::move(**expanded));
  }
  return out;
}

Result<RecipeBook> RecipeBook::builtin() { return from_documents(templates::embedded_recipes()); }

Result<RecipeBook> RecipeBook::from_documents(
    const std::vector<std::pair<std::string, std::string>>& documents) {
  RecipeBook book;
  std::map<std::string, std::string> defined_in;
  for (const auto& [file, text] : documents) {
    std::string distro;
    Result<ReleaseMap> releases = fail("");
    try {
      releases = load_document(file, text, &distro);
    } catch (const std::exception& e) {
      // Validation should leave nothing to throw; never let a recipe crash the agent.
      return fail(file + ": " + e.what());
    }
    if (!releases) return releases.error();
    if (auto it = defined_in.find(distro); it != defined_in.end()) {
      return fail(file + ": distro \"" + distro + "\" is already defined by " + it->second);
    }
    defined_in[distro] = file;
    auto entry = std::make_shared<Entry>();
    entry->releases = std::move(releases).value();
    book.by_distro_[distro] = std::move(entry);
  }
  return book;
}

std::vector<std::string> RecipeBook::distros() const {
  std::vector<std::string> out;
  for (const auto& [name, entry] : by_distro_) out.push_back(name);
  return out;
}

bool RecipeBook::has_distro(const std::string& distro) const {
  return by_distro_.count(distro) != 0;
}

std::vector<std::string> RecipeBook::releases(const std::string& distro) const {
  std::vector<std::string> out;
  if (auto it = by_distro_.find(distro); it != by_distro_.end()) {
    for (const auto& [name, recipe] : it->second->releases) out.push_back(name);
  }
  return out;
}

Result<ReleaseRecipe> RecipeBook::resolve(const std::string& distro,
                                          const std::string& release) const {
  auto quoted_list = [](const std::vector<std::string>& names) {
    std::string out;
    for (const auto& name : names) out += (out.empty() ? "" : ", ") + ("\"" + name + "\"");
    return out.empty() ? std::string("none") : out;
  };
  auto it = by_distro_.find(distro);
  if (it == by_distro_.end()) {
    return fail("unknown distro \"" + distro + "\" (known: " + quoted_list(distros()) + ")");
  }
  auto rel = it->second->releases.find(release);
  if (rel == it->second->releases.end()) {
    return fail("unknown release \"" + release + "\" of " + distro +
                " (known: " + quoted_list(releases(distro)) + ")");
  }
  return rel->second;
}

}  // namespace farmhand::provisioner
