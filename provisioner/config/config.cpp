// Loading agent.json: the file, the top-level keys, and the config
// repository's host file merged in. Each section is read by its own parser
// (sections.h), on the keyword-table walker (keywords.h).
#include <cerrno>

#include "common/fs.h"
#include "common/strict_json.h"
#include "provisioner/config.h"
#include "provisioner/config/checks.h"
#include "provisioner/config/sections.h"
#include "provisioner/payload_rules.h"

namespace farmhand::provisioner {
namespace config_parser {
namespace {

// /paths: where farmhand keeps its files on the host.
struct PathsSection {
  Diagnostics& diag;
  AgentPaths& out;

  template <std::string AgentPaths::*field>
  void path(const Json& value, const std::string& p) {
    const auto s = value.get<std::string>();
    if (check_path(diag, s, p, false)) out.*field = s;
  }
};

const Keyword<PathsSection> kPathsKeys[] = {
    {"cache", JsonType::kString, Presence::kOptional, [](PathsSection& s) { s.out.cache = kDefaults.cache; },
     &PathsSection::path<&AgentPaths::cache>},
    {"machines", JsonType::kString, Presence::kOptional,
     [](PathsSection& s) { s.out.machines = kDefaults.machines; }, &PathsSection::path<&AgentPaths::machines>},
    {"nspawn", JsonType::kString, Presence::kOptional, [](PathsSection& s) { s.out.nspawn = kDefaults.nspawn; },
     &PathsSection::path<&AgentPaths::nspawn>},
    {"state", JsonType::kString, Presence::kOptional, [](PathsSection& s) { s.out.state = kDefaults.state; },
     &PathsSection::path<&AgentPaths::state>},
    {"systemd", JsonType::kString, Presence::kOptional,
     [](PathsSection& s) { s.out.systemd = kDefaults.systemd; }, &PathsSection::path<&AgentPaths::systemd>},
};

// The top level of agent.json, and then of the config repository's host file.
struct TopLevel {
  Context& ctx;
  AgentConfig& config;
  bool in_repo = false;           // reading the config repository's host file
  bool repo_mirrors = false;      // that file has "mirrors"
  std::string containers_source{};  // where containers come from when config_repo is set

  void containers(const Json& value, const std::string& p) {
    if (!in_repo && !containers_source.empty()) {
      ctx.diag.error(p, "containers come from config_repo (" + containers_source +
                            "): remove this key or config_repo");
      return;
    }
    if (!expect_type(ctx.diag, value, p, JsonType::kArray)) return;
    for (size_t i = 0; i < value.size(); ++i) {
      const std::string ip = child(p, i);
      if (expect_type(ctx.diag, value[i], ip, JsonType::kObject)) parse_container(ctx, value[i], ip, config);
    }
  }

  void mirrors(const Json& value, const std::string& p) {
    if (repo_mirrors && !in_repo) return;  // replaced by the config repository's
    if (expect_type(ctx.diag, value, p, JsonType::kObject)) parse_mirrors(ctx, value, p, config);
  }

  void paths(const Json& value, const std::string& p) {
    PathsSection section{ctx.diag, config.paths};
    walk_keywords(ctx.diag, value, p, kPathsKeys, section);
  }

  void network(const Json& value, const std::string& p) { parse_network(ctx.diag, value, p, config); }

  void clone_method(const Json& value, const std::string& p) {
    const auto s = value.get<std::string>();
    if (auto m = parse_clone_method(s)) {
      config.clone_method = *m;
    } else {
      ctx.diag.error(p, "unknown clone method " + quote(s) +
                            " (expected one of: auto, btrfs, copy, overlay, reflink)");
    }
  }

  void config_repo(const Json& value, const std::string& p) { parse_config_repo(ctx.diag, value, p, config); }
  void server(const Json& value, const std::string& p) { parse_server(ctx.diag, value, p, config); }
};

// An absent /paths or /network still gives every default of its keys.
const Keyword<TopLevel> kTopLevelKeys[] = {
    {"containers", JsonType::kAny, Presence::kOptional, nullptr, &TopLevel::containers},
    {"mirrors", JsonType::kAny, Presence::kOptional, nullptr, &TopLevel::mirrors},
    {"paths", JsonType::kObject, Presence::kOptional,
     [](TopLevel& t) {
       PathsSection section{t.ctx.diag, t.config.paths};
       apply_defaults<PathsSection>(section, kPathsKeys);
     },
     &TopLevel::paths},
    {"network", JsonType::kObject, Presence::kOptional,
     [](TopLevel& t) { set_network_defaults(t.ctx.diag, t.config); }, &TopLevel::network},
    {"clone_method", JsonType::kString, Presence::kOptional,
     [](TopLevel& t) { t.config.clone_method = *parse_clone_method(kDefaults.clone_method); },
     &TopLevel::clone_method},
    {"config_repo", JsonType::kObject, Presence::kOptional, nullptr, &TopLevel::config_repo},
    {"server", JsonType::kObject, Presence::kOptional, nullptr, &TopLevel::server},
};

// The config repository's host file may hold only these (and has no defaults).
std::vector<Keyword<TopLevel>> repo_file_keys() {
  std::vector<Keyword<TopLevel>> keys;
  for (const auto& row : kTopLevelKeys) {
    if (std::string_view(row.name) == "containers" || std::string_view(row.name) == "mirrors") keys.push_back(row);
  }
  return keys;
}

// One pass over the document (and the repository's host file, if any): an
// AgentConfig when there is no error, and every message in document order.
ConfigLoad read_document(const RecipeBook& recipes, const Json& root, const Json* repo,
                         const std::string& repo_label) {
  Context ctx{Diagnostics{}, recipes, host_arch(), {}, {}};
  AgentConfig config;
  TopLevel top{ctx, config};
  if (!root.is_object()) {
    ctx.diag.error("/", "expected an object, got " + type_name(root));
  } else {
    top.repo_mirrors = repo != nullptr && first_member(*repo, "mirrors") != nullptr;
    const Json* mirrors = first_member(top.repo_mirrors ? *repo : root, "mirrors");
    if (mirrors && mirrors->is_object()) {
      for (const auto& member : mirrors->get_ref<const Json::object_t&>()) ctx.mirror_keys.insert(member.first);
    }
    if (repo != nullptr) {
      top.containers_source = repo_label;
    } else if (const Json* config_repo = first_member(root, "config_repo")) {
      auto url = peek_string(*config_repo, "url");
      auto path = peek_string(*config_repo, "path");
      top.containers_source = url && path ? *path + " in " + hide_url_password(*url) : "/config_repo";
    }
    walk_keywords(ctx.diag, root, "/", kTopLevelKeys, top);
    if (repo != nullptr) {
      ctx.diag.set_prefix(repo_label + ": ");
      top.in_repo = true;
      if (!repo->is_object()) {
        ctx.diag.error("/", "expected an object, got " + type_name(*repo));
      } else {
        const auto keys = repo_file_keys();
        walk_keywords(ctx.diag, *repo, "/", keys, top);
      }
    }
    cross_container_checks(ctx.diag, ctx.facts);
  }
  ConfigLoad out;
  if (ctx.diag.error_count() == 0) out.config = std::move(config);
  out.errors = ctx.diag.take_errors();
  out.warnings = ctx.diag.take_warnings();
  return out;
}

}  // namespace
}  // namespace config_parser

ConfigLoad parse_config(std::string_view json_text, const RecipeBook& recipes) {
  auto doc = parse_json_keeping_duplicates(json_text);
  if (!doc) {
    ConfigLoad out;
    out.errors.push_back("/: invalid JSON: " + doc.error().message());
    return out;
  }
  return config_parser::read_document(recipes, *doc, nullptr, "");
}

ConfigLoad parse_config_with_repo(std::string_view local_json, std::string_view repo_json,
                                  const std::string& repo_label, const RecipeBook& recipes) {
  auto local = parse_json_keeping_duplicates(local_json);
  auto repo = parse_json_keeping_duplicates(repo_json);
  ConfigLoad out;
  if (!local) out.errors.push_back("/: invalid JSON: " + local.error().message());
  if (!repo) out.errors.push_back(repo_label + ": /: invalid JSON: " + repo.error().message());
  if (!out.errors.empty()) return out;
  return config_parser::read_document(recipes, *local, &*repo, repo_label);
}

ConfigLoad load_config_file(const std::string& path, const RecipeBook& recipes) {
  auto text = read_file_if_exists(path);
  ConfigLoad out;
  if (!text.ok()) {
    // fs says "cannot open '<path>': <errno text>"; lead with the path like every other message.
    const std::string& message = text.error().message();
    std::string quoted = " '" + path + "': ";
    size_t at = message.find(quoted);
    out.errors.push_back(at == std::string::npos ? path + ": " + message
                                                 : path + ": " + message.substr(0, at) + ": " +
                                                       message.substr(at + quoted.size()));
    return out;
  }
  if (!text->has_value()) {
    out.errors.push_back(path + ": cannot open: " + errno_text(ENOENT));
    return out;
  }
  return parse_config(**text, recipes);
}

}  // namespace farmhand::provisioner
