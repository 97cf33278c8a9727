// One item of "containers": what to build (distro, release, arch, packages),
// how it runs (boot, private_users, network, binds, devices) and its payload.
// The recipe of its distro and release decides which releases, arches and
// package names are valid, wherever "distro" and "release" appear.
#include <algorithm>
#include <filesystem>
#include <map>
#include <regex>

#include "provisioner/config/checks.h"
#include "provisioner/config/sections.h"
#include "provisioner/template.h"

namespace farmhand::provisioner::config_parser {
namespace {

bool valid_name_char(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; }

// A machine name: also the .nspawn file's and, shortened, the host interface's.
bool check_name(Diagnostics& diag, const std::string& name, const std::string& p) {
  std::string bad = quote(name) + " is not a valid machine name: ";
  if (name.empty()) {
    diag.error(p, bad + "it must not be empty");
  } else if (!std::all_of(name.begin(), name.end(), valid_name_char)) {
    diag.error(p, bad + "use only lower-case letters, digits and '-'");
  } else if (name.front() == '-' || name.back() == '-') {
    diag.error(p, bad + "it must not start or end with '-'");
  } else if (name.size() > kDefaults.max_name_length) {
    diag.error(p, quote(name) + " is too long: at most " + std::to_string(kDefaults.max_name_length) +
                      " characters");
  } else {
    if (name.size() > kDefaults.recommended_name_length) {
      diag.warn(p, quote(name) + " is longer than " + std::to_string(kDefaults.recommended_name_length) +
                       " characters: its host interface will not be named exactly \"ve-" + name + "\"");
    }
    return true;
  }
  return false;
}

// ---- binds ----

struct BindSection {
  Diagnostics& diag;
  BindMount& out;
  bool source_ok = false;
  std::optional<bool> target_ok{};  // unset: no target, it defaults to the source

  void source(const Json& value, const std::string& p) {
    const auto s = value.get<std::string>();
    source_ok = check_path(diag, s, p, true);
    if (source_ok) out.source = s;
  }
  void target(const Json& value, const std::string& p) {
    const auto s = value.get<std::string>();
    target_ok = check_path(diag, s, p, true);
    if (*target_ok) out.target = s;
  }
  void read_only(const Json& value, const std::string&) { out.read_only = value.get<bool>(); }
};

const Keyword<BindSection> kBindKeys[] = {
    {"source", JsonType::kString, Presence::kRequired, nullptr, &BindSection::source},
    {"target", JsonType::kString, Presence::kOptional, nullptr, &BindSection::target},
    {"read_only", JsonType::kBoolean, Presence::kOptional,
     [](BindSection& s) { s.out.read_only = kDefaults.bind_read_only; }, &BindSection::read_only},
};

void parse_binds(Diagnostics& diag, const Json& array, const std::string& pointer, ContainerSpec& spec) {
  std::map<std::string, std::string> targets;  // normalized target -> pointer of its first use
  for (size_t i = 0; i < array.size(); ++i) {
    std::string bp = child(pointer, i);
    if (!expect_type(diag, array[i], bp, JsonType::kObject)) continue;
    BindMount bind;
    BindSection section{diag, bind};
    // A target of the wrong type makes the bind unusable, like an invalid one.
    if (first_member(array[i], "target") != nullptr) section.target_ok = false;
    walk_keywords(diag, array[i], bp, kBindKeys, section);
    if (!section.target_ok) bind.target = bind.source;
    bool usable = section.target_ok ? *section.target_ok : section.source_ok;
    if (!usable) continue;
    std::string target_pointer = child(bp, section.target_ok ? "target" : "source");
    if (auto [it, fresh] = targets.emplace(normal_path(bind.target), target_pointer); !fresh) {
      diag.error(target_pointer, "duplicate bind target " + quote(bind.target) + " (also at " + it->second + ")");
      continue;
    }
    spec.binds.push_back(std::move(bind));
  }
}

// ---- the container ----

struct ContainerSection {
  Context& ctx;
  Diagnostics& diag;
  ContainerSpec spec;
  ContainerFacts facts;

  // Peeked before the walk, wherever the keys are in the object.
  std::optional<std::string> given_distro;
  std::optional<std::string> given_release;
  bool distro_known = false;
  std::vector<std::string> releases;  // of the distro, when known
  bool release_known = false;
  std::optional<ReleaseRecipe> recipe;
  std::optional<std::string> recipe_error;
  std::optional<std::regex> package_pattern;
  std::vector<std::string> source_names;  // templates and steps may name them
  std::set<std::string> variables;        // that templates may use
  std::vector<size_t> steps_on_all_sources;

  ContainerSection(Context& context, const Json& v, const std::string& p)
      : ctx(context),
        diag(context.diag),
        facts{child(p, "name"), std::nullopt, child(child(p, "network"), "subnet"), std::nullopt,
              NetworkMode::kVeth, "", {}} {
    given_distro = peek_string(v, "distro");
    given_release = peek_string(v, "release");
    distro_known = given_distro && ctx.recipes.has_distro(*given_distro);
    if (distro_known) releases = ctx.recipes.releases(*given_distro);
    release_known =
        given_release && std::find(releases.begin(), releases.end(), *given_release) != releases.end();
    if (distro_known && release_known) {
      auto r = ctx.recipes.resolve(*given_distro, *given_release);
      if (r.ok()) {
        recipe = std::move(r).value();
      } else {
        recipe_error = r.error().message();
      }
    }
    if (recipe) {
      try {
        package_pattern.emplace(recipe->package_name_pattern, std::regex::ECMAScript);
      } catch (const std::regex_error&) {
        recipe_error =
            "the " + *given_distro + " recipe's package_name_pattern is not a valid regular expression";
      }
    }
    source_names = peek_source_names(v);
    variables = known_template_variables(source_names);
  }

  std::string arch_list() const {
    std::vector<std::string> arches;
    for (const auto& [arch, native] : recipe->arches) arches.push_back(arch);
    return join(arches);
  }

  void name(const Json& value, const std::string& p) {
    const auto s = value.get<std::string>();
    if (check_name(diag, s, p)) facts.name = spec.name = s;
  }

  void distro(const Json& value, const std::string& p) {
    const auto s = value.get<std::string>();
    spec.distro = s;
    if (!distro_known) {
      diag.error(p, "unknown distro " + quote(s) + " (known: " + join(ctx.recipes.distros()) + ")");
    } else if (recipe && recipe->mirror == MirrorPolicy::kRequired && !ctx.mirror_keys.contains(s)) {
      diag.error(p, s + " needs a mirror: set /mirrors/" + s);
    }
  }

  void release(const Json& value, const std::string& p) {
    const auto s = value.get<std::string>();
    spec.release = s;
    if (distro_known && !release_known) {
      diag.error(p, "unknown release " + quote(s) + " for " + *given_distro + " (known: " + join(releases) + ")");
    } else if (recipe_error) {
      diag.error(p, *recipe_error);
    }
  }

  void arch(const Json& value, const std::string& p) {
    const auto s = value.get<std::string>();
    spec.arch = s;
    if (recipe && !recipe->arches.contains(s)) {
      diag.error(p, *given_distro + " " + *given_release + " has no arch " + quote(s) + " (known: " +
                        arch_list() + ")");
    }
  }

  void packages(const Json& value, const std::string& p) {
    std::set<std::string> seen;
    for (size_t i = 0; i < value.size(); ++i) {
      std::string ip = child(p, i);
      auto s = as_string(diag, value[i], ip);
      if (!s) continue;
      if (package_pattern && !std::regex_match(*s, *package_pattern)) {
        diag.error(ip, quote(*s) + " is not a valid " + given_distro.value_or("") + " package name");
      } else if (!seen.insert(*s).second) {
        diag.error(ip, "duplicate package " + quote(*s));
      } else {
        spec.packages.push_back(*s);
      }
    }
  }

  void build_packages(const Json& value, const std::string&) { spec.build_packages = value.get<bool>(); }
  void boot(const Json& value, const std::string&) { spec.boot = value.get<bool>(); }
  void private_users(const Json& value, const std::string&) { spec.private_users = value.get<bool>(); }
  void network(const Json& value, const std::string& p) {
    parse_container_network(diag, value, p, spec.network, facts);
  }
  void binds(const Json& value, const std::string& p) { parse_binds(diag, value, p, spec); }
  void devices(const Json& value, const std::string& p) { parse_devices(diag, value, p, spec, facts); }
  void sources(const Json& value, const std::string& p) { parse_sources(diag, value, p, spec); }
  void files(const Json& value, const std::string& p) { parse_files(diag, value, p, spec, variables); }
  void setup(const Json& value, const std::string& p) {
    parse_setup(diag, value, p, spec, variables, source_names, steps_on_all_sources);
  }
  void services(const Json& value, const std::string& p) { parse_services(diag, value, p, spec, variables); }
};

// "arch" defaults to the host's; a recipe without it makes the key required
// (see parse_container).
const Keyword<ContainerSection> kContainerKeys[] = {
    {"name", JsonType::kString, Presence::kRequired, nullptr, &ContainerSection::name},
    {"distro", JsonType::kString, Presence::kRequired, nullptr, &ContainerSection::distro},
    {"release", JsonType::kString, Presence::kRequired, nullptr, &ContainerSection::release},
    {"arch", JsonType::kString, Presence::kOptional, [](ContainerSection& s) { s.spec.arch = s.ctx.host_arch; },
     &ContainerSection::arch},
    {"packages", JsonType::kArray, Presence::kOptional, nullptr, &ContainerSection::packages},
    {"build_packages", JsonType::kBoolean, Presence::kOptional,
     [](ContainerSection& s) { s.spec.build_packages = kDefaults.build_packages; },
     &ContainerSection::build_packages},
    {"boot", JsonType::kBoolean, Presence::kOptional, [](ContainerSection& s) { s.spec.boot = kDefaults.boot; },
     &ContainerSection::boot},
    {"private_users", JsonType::kBoolean, Presence::kOptional,
     [](ContainerSection& s) { s.spec.private_users = kDefaults.private_users; },
     &ContainerSection::private_users},
    {"network", JsonType::kObject, Presence::kOptional, nullptr, &ContainerSection::network},
    {"binds", JsonType::kArray, Presence::kOptional, nullptr, &ContainerSection::binds},
    {"devices", JsonType::kArray, Presence::kOptional, nullptr, &ContainerSection::devices},
    {"sources", JsonType::kArray, Presence::kOptional, nullptr, &ContainerSection::sources},
    {"files", JsonType::kArray, Presence::kOptional, nullptr, &ContainerSection::files},
    {"setup", JsonType::kArray, Presence::kOptional, nullptr, &ContainerSection::setup},
    {"services", JsonType::kArray, Presence::kOptional, nullptr, &ContainerSection::services},
};

}  // namespace

void parse_container(Context& ctx, const Json& object, const std::string& pointer, AgentConfig& config) {
  ContainerSection section(ctx, object, pointer);
  walk_keywords(ctx.diag, object, pointer, kContainerKeys, section);
  ContainerSpec& spec = section.spec;
  for (size_t i : section.steps_on_all_sources) {
    for (const auto& source : spec.sources) spec.setup[i].sources.push_back(source.name);
  }
  if (first_member(object, "arch") == nullptr && section.recipe &&
      !section.recipe->arches.contains(ctx.host_arch)) {
    ctx.diag.error(child(pointer, "arch"), "required key is missing: " + *section.given_distro + " " +
                                               *section.given_release + " has no arch " + quote(ctx.host_arch) +
                                               " (the host's; known: " + section.arch_list() + ")");
  }
  config.containers.push_back(std::move(spec));
  ctx.facts.push_back(std::move(section.facts));
}

}  // namespace farmhand::provisioner::config_parser
