#include "provisioner/config.h"

#include <sys/utsname.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <utility>

#include "common/fs.h"
#include "common/json_pointer.h"
#include "common/strict_json.h"
#include "provisioner/payload_rules.h"
#include "provisioner/template.h"

namespace farmhand::provisioner {
namespace {

// Object members keep their document order (messages follow it), and a
// repeated key is a second member the validator refuses at its place.
using Json = nlohmann::ordered_json;

// The container is .9 of its subnet and must not be the broadcast address, so
// a subnet needs more than kContainerOffset + 1 addresses: a /28 at most.
constexpr int max_subnet_prefix() {
  int prefix = 32;
  while (prefix > 1 && (uint64_t{1} << (32 - prefix)) <= uint64_t{kContainerOffset} + 1) --prefix;
  return prefix;
}
constexpr int kMaxSubnetPrefix = max_subnet_prefix();

std::string child(const std::string& parent, std::string_view key) {
  return json_pointer_child(parent, key);
}
std::string child(const std::string& parent, size_t index) { return child(parent, std::to_string(index)); }

std::string quote(std::string_view s) {
  return Json(std::string(s)).dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

std::string type_name(const Json& v) {
  switch (v.type()) {
    case Json::value_t::object: return "an object";
    case Json::value_t::array: return "an array";
    case Json::value_t::string: return "a string";
    case Json::value_t::boolean: return "a boolean";
    case Json::value_t::null: return "null";
    case Json::value_t::binary: return "binary data";
    default: return "a number";
  }
}

bool has_control(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

const Json* first_member(const Json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

std::optional<std::string> peek_string(const Json& obj, const char* key) {
  const Json* v = first_member(obj, key);
  if (v == nullptr || !v->is_string()) return std::nullopt;
  return v->get<std::string>();
}

// What the cross-container checks need to know about one container.
struct ContainerFacts {
  std::string name_pointer;
  std::optional<std::string> name;  // set when valid
  std::string subnet_pointer;
  std::optional<Cidr> subnet;  // set when given and valid
  NetworkMode mode = NetworkMode::kVeth;
  std::string link;            // macvlan/ipvlan parent, when valid
  // Valid device rules with their pointers.
  std::vector<std::pair<std::string, udev::DeviceMatch>> device_rules;
};

// One pass over the document: fills an AgentConfig and collects the errors.
class Validator {
 public:
  explicit Validator(const RecipeBook& recipes) : recipes_(recipes), host_arch_(host_arch()) {}

  // `repo` is the config repository's host file, if any: it supplies the
  // containers (and the mirrors when it has them), and its messages start
  // with "<repo_label>: ".
  ConfigLoad run(const Json& root, const Json* repo = nullptr, const std::string& repo_label = "") {
    config_.paths = {kDefaults.machines, kDefaults.state, kDefaults.cache, kDefaults.nspawn,
                     kDefaults.systemd};
    config_.pool = *Cidr::parse(kDefaults.pool);
    config_.subnet_prefix = kDefaults.subnet_prefix;
    config_.clone_method = *parse_clone_method(kDefaults.clone_method);
    config_.network_backend = *parse_network_backend(kDefaults.network_backend);
    config_.firewall = *parse_firewall_backend(kDefaults.firewall);
    config_.zone = kDefaults.zone;
    if (!root.is_object()) {
      error("/", "expected an object, got " + type_name(root));
    } else {
      repo_mirrors_ = repo != nullptr && first_member(*repo, "mirrors") != nullptr;
      const Json* mirrors = first_member(repo_mirrors_ ? *repo : root, "mirrors");
      if (mirrors && mirrors->is_object()) {
        for (const auto& member : mirrors->get_ref<const Json::object_t&>())
          mirror_keys_.insert(member.first);
      }
      if (repo != nullptr) {
        containers_source_ = repo_label;
      } else if (const Json* config_repo = first_member(root, "config_repo")) {
        auto url = peek_string(*config_repo, "url");
        auto path = peek_string(*config_repo, "path");
        containers_source_ = url && path ? *path + " in " + hide_url_password(*url) : "/config_repo";
      }
      walk(root, "/", {"clone_method", "config_repo", "containers", "mirrors", "network", "paths", "server"},
           [&](const std::string& key, const Json& v, const std::string& p) { top_level(key, v, p); });
      if (repo != nullptr) {
        prefix_ = repo_label + ": ";
        in_repo_ = true;
        if (!repo->is_object()) {
          error("/", "expected an object, got " + type_name(*repo));
        } else {
          walk(*repo, "/", {"containers", "mirrors"},
               [&](const std::string& key, const Json& v, const std::string& p) { top_level(key, v, p); });
        }
      }
      cross_container_checks();
    }
    ConfigLoad out;
    if (errors_.empty()) out.config = std::move(config_);
    out.errors = std::move(errors_);
    out.warnings = std::move(warnings_);
    return out;
  }

 private:
  using Handler = std::function<void(const std::string& key, const Json& value, const std::string& pointer)>;

  void error(const std::string& pointer, const std::string& reason) {
    errors_.push_back(prefix_ + pointer + ": " + reason);
  }
  void warn(const std::string& pointer, const std::string& advice) {
    warnings_.push_back(prefix_ + pointer + ": " + advice);
  }

  bool expect(bool ok, const Json& v, const std::string& p, const char* wanted) {
    if (!ok) error(p, std::string("expected ") + wanted + ", got " + type_name(v));
    return ok;
  }
  std::optional<std::string> as_string(const Json& v, const std::string& p) {
    if (!expect(v.is_string(), v, p, "a string")) return std::nullopt;
    return v.get<std::string>();
  }
  void as_bool(const Json& v, const std::string& p, bool& out) {
    if (expect(v.is_boolean(), v, p, "a boolean")) out = v.get<bool>();
  }

  // Visits an object's members in document order; repeated and unknown keys
  // are errors, the rest go to `handle`. `known` is sorted.
  void walk(const Json& obj, const std::string& p, std::initializer_list<const char*> known,
            const Handler& handle) {
    std::vector<std::string> names(known.begin(), known.end());
    std::set<std::string> seen;
    for (const auto& [key, value] : obj.get_ref<const Json::object_t&>()) {
      std::string kp = child(p, key);
      if (!seen.insert(key).second) {
        error(kp, "duplicate key");
      } else if (std::find(names.begin(), names.end(), key) == names.end()) {
        error(kp, "unknown key (expected one of: " + join(names) + ")");
      } else {
        handle(key, value, kp);
      }
    }
  }

  void top_level(const std::string& key, const Json& v, const std::string& p) {
    if (key == "containers") {
      if (!in_repo_ && !containers_source_.empty()) {
        error(p, "containers come from config_repo (" + containers_source_ + "): remove this key or config_repo");
        return;
      }
      if (!expect(v.is_array(), v, p, "an array")) return;
      for (size_t i = 0; i < v.size(); ++i) container(v[i], child(p, i));
    } else if (key == "paths") {
      if (!expect(v.is_object(), v, p, "an object")) return;
      AgentPaths& paths = config_.paths;
      std::map<std::string, std::string*> fields{{"cache", &paths.cache},
                                                 {"machines", &paths.machines},
                                                 {"nspawn", &paths.nspawn},
                                                 {"state", &paths.state},
                                                 {"systemd", &paths.systemd}};
      walk(v, p, {"cache", "machines", "nspawn", "state", "systemd"},
           [&](const std::string& k, const Json& value, const std::string& kp) {
             auto s = as_string(value, kp);
             if (s && check_path(*s, kp, false)) *fields.at(k) = *s;
           });
    } else if (key == "network") {
      if (!expect(v.is_object(), v, p, "an object")) return;
      network(v, p);
    } else if (key == "clone_method") {
      auto s = as_string(v, p);
      if (!s) return;
      if (auto m = parse_clone_method(*s)) {
        config_.clone_method = *m;
      } else {
        error(p, "unknown clone method " + quote(*s) +
                     " (expected one of: auto, btrfs, copy, overlay, reflink)");
      }
    } else if (key == "mirrors") {
      if (repo_mirrors_ && !in_repo_) return;  // replaced by the config repository's
      if (!expect(v.is_object(), v, p, "an object")) return;
      mirrors(v, p);
    } else if (key == "config_repo") {
      if (!expect(v.is_object(), v, p, "an object")) return;
      config_repo(v, p);
    } else if (key == "server") {
      if (!expect(v.is_object(), v, p, "an object")) return;
      server(v, p);
    }
  }

  void server(const Json& v, const std::string& p) {
    ServerSettings settings;
    walk(v, p, {"ca_file", "credential_file", "url"}, [&](const std::string& k, const Json& value,
                                                          const std::string& kp) {
      auto s = as_string(value, kp);
      if (!s) return;
      if (k == "url") {
        if (auto reason = server_url_problem(*s)) {
          error(kp, quote(*s) + " is not a server URL: " + *reason);
        } else {
          settings.url = *s;
        }
      } else if (s->empty() || (*s)[0] != '/') {
        error(kp, quote(*s) + " is not an absolute path");
      } else if (k == "ca_file") {
        settings.ca_file = *s;
      } else {
        settings.credential_file = *s;
      }
    });
    if (first_member(v, "url") == nullptr) error(child(p, "url"), "required key is missing");
    config_.server = settings;
  }

  void network(const Json& v, const std::string& p) {
    // The prefix's lower bound is the pool's prefix, wherever "pool" appears.
    std::optional<Cidr> pool = config_.pool;
    if (const Json* given = first_member(v, "pool")) {
      pool = given->is_string() ? Cidr::parse(given->get<std::string>()) : std::nullopt;
    }
    if (pool && pool->prefix > kMaxSubnetPrefix) pool.reset();
    walk(v, p, {"backend", "firewall", "pool", "subnet_prefix", "zone"},
         [&](const std::string& k, const Json& value, const std::string& kp) {
           if (k == "backend") {
             auto s = as_string(value, kp);
             if (!s) return;
             if (auto b = parse_network_backend(*s)) {
               config_.network_backend = *b;
             } else {
               error(kp, "unknown network backend " + quote(*s) +
                             " (expected one of: auto, networkmanager, networkd, plain)");
             }
           } else if (k == "firewall") {
             auto s = as_string(value, kp);
             if (!s) return;
             if (auto f = parse_firewall_backend(*s)) {
               config_.firewall = *f;
             } else {
               error(kp, "unknown firewall " + quote(*s) + " (expected one of: auto, firewalld, nftables, none)");
             }
           } else if (k == "zone") {
             auto s = as_string(value, kp);
             if (!s) return;
             if (valid_zone_name(*s)) {
               config_.zone = *s;
             } else {
               error(kp, quote(*s) + " is not a valid firewalld zone name: use 1 to 17 letters, digits, '-' or '_'");
             }
           } else if (k == "pool") {
             auto s = as_string(value, kp);
             if (!s) return;
             if (auto c = subnet(*s, kp, "192.168.80.0/20")) config_.pool = *c;
           } else if (expect(value.is_number_integer(), value, kp, "an integer")) {
             int lo = pool ? pool->prefix : 1;
             bool in_range = value.is_number_unsigned() ? value.get<uint64_t>() <= uint64_t{kMaxSubnetPrefix}
                                                        : value.get<int64_t>() <= kMaxSubnetPrefix;
             in_range = in_range && value.get<int64_t>() >= lo;
             if (in_range) {
               config_.subnet_prefix = value.get<int>();
             } else {
               error(kp, value.dump() + " is out of range: it must be between " + std::to_string(lo) +
                             (pool ? " (the prefix of the pool, " + pool->str() + ")" : std::string()) +
                             " and " + std::to_string(kMaxSubnetPrefix));
             }
           }
         });
  }

  void mirrors(const Json& v, const std::string& p) {
    std::set<std::string> seen;
    for (const auto& [distro, value] : v.get_ref<const Json::object_t&>()) {
      std::string kp = child(p, distro);
      if (!seen.insert(distro).second) {
        error(kp, "duplicate key");
        continue;
      }
      if (!recipes_.has_distro(distro)) {
        error(kp, "unknown distro " + quote(distro) + " (known: " + join(recipes_.distros()) + ")");
        continue;
      }
      auto url = as_string(value, kp);
      if (!url) continue;
      std::optional<std::string_view> rest;  // after the scheme
      for (std::string_view scheme : {"http://", "https://", "file://"}) {
        if (url->starts_with(scheme)) rest = std::string_view(*url).substr(scheme.size());
      }
      std::string bad = quote(*url) + " is not a mirror URL: ";
      if (!rest) {
        error(kp, bad + "it must start with http://, https:// or file://");
      } else if (has_control(*url) || url->find(' ') != std::string::npos) {
        error(kp, bad + "it must not contain whitespace or control characters");
      } else if (rest->empty()) {
        error(kp, bad + "it has nothing after the scheme");
      } else {
        config_.mirrors[distro] = *url;
        if (mirror_unused(distro)) warn(kp, distro + " does not use a mirror: this setting is ignored");
      }
    }
  }

  bool mirror_unused(const std::string& distro) const {
    auto releases = recipes_.releases(distro);
    return !releases.empty() && std::all_of(releases.begin(), releases.end(), [&](const std::string& r) {
      auto recipe = recipes_.resolve(distro, r);
      return recipe.ok() && recipe->mirror == MirrorPolicy::kUnused;
    });
  }

  // A CIDR subnet usable for containers: .1 for the host, .9 for the container.
  std::optional<Cidr> subnet(const std::string& text, const std::string& p, const char* example) {
    auto c = Cidr::parse(text);
    if (!c) {
      error(p, quote(text) + " is not a subnet in CIDR form, like \"" + example + "\"");
    } else if (c->prefix > kMaxSubnetPrefix) {
      error(p, c->str() + " is too small for the host (.1) and the container (.9): use a prefix of at most " +
                   std::to_string(kMaxSubnetPrefix));
      return std::nullopt;
    }
    return c;
  }

  static bool has_dotdot(const std::string& path) {
    std::filesystem::path parts(path);
    return std::any_of(parts.begin(), parts.end(),
                       [](const std::filesystem::path& part) { return part == ".."; });
  }

  bool check_path(const std::string& path, const std::string& p, bool bind) {
    if (path.empty() || path.front() != '/') {
      error(p, quote(path) + " is not an absolute path");
    } else if (has_control(path)) {
      error(p, quote(path) + " must not contain control characters");
    } else if (bind && path.find(':') != std::string::npos) {
      error(p, quote(path) + " must not contain ':' (the .nspawn Bind= setting uses it as a separator)");
    } else if (has_dotdot(path)) {
      error(p, quote(path) + " must not contain \"..\"");
    } else {
      return true;
    }
    return false;
  }

  static bool valid_name_char(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; }

  bool check_name(const std::string& name, const std::string& p) {
    std::string bad = quote(name) + " is not a valid machine name: ";
    if (name.empty()) {
      error(p, bad + "it must not be empty");
    } else if (!std::all_of(name.begin(), name.end(), valid_name_char)) {
      error(p, bad + "use only lower-case letters, digits and '-'");
    } else if (name.front() == '-' || name.back() == '-') {
      error(p, bad + "it must not start or end with '-'");
    } else if (name.size() > kDefaults.max_name_length) {
      error(p, quote(name) + " is too long: at most " + std::to_string(kDefaults.max_name_length) +
                   " characters");
    } else {
      if (name.size() > kDefaults.recommended_name_length) {
        warn(p, quote(name) + " is longer than " + std::to_string(kDefaults.recommended_name_length) +
                    " characters: its host interface will not be named exactly \"ve-" + name + "\"");
      }
      return true;
    }
    return false;
  }

  void container(const Json& v, const std::string& p) {
    ContainerFacts facts{child(p, "name"), std::nullopt, child(child(p, "network"), "subnet"), std::nullopt,
                         NetworkMode::kVeth, "", {}};
    if (!expect(v.is_object(), v, p, "an object")) return;
    ContainerSpec spec;
    spec.build_packages = kDefaults.build_packages;
    spec.boot = kDefaults.boot;
    spec.private_users = kDefaults.private_users;
    spec.arch = host_arch_;

    // The recipe decides what release, arch and package names are valid,
    // wherever "distro" and "release" appear in the object.
    auto distro = peek_string(v, "distro");
    auto release = peek_string(v, "release");
    bool distro_known = distro && recipes_.has_distro(*distro);
    std::optional<ReleaseRecipe> recipe;
    std::optional<std::string> recipe_error;
    std::vector<std::string> releases =
        distro_known ? recipes_.releases(*distro) : std::vector<std::string>{};
    bool release_known = release && std::find(releases.begin(), releases.end(), *release) != releases.end();
    if (distro_known && release_known) {
      auto r = recipes_.resolve(*distro, *release);
      if (r.ok()) {
        recipe = std::move(r).value();
      } else {
        recipe_error = r.error().message();
      }
    }
    std::optional<std::regex> package_pattern;
    if (recipe) {
      try {
        package_pattern.emplace(recipe->package_name_pattern, std::regex::ECMAScript);
      } catch (const std::regex_error&) {
        recipe_error = "the " + *distro + " recipe's package_name_pattern is not a valid regular expression";
      }
    }
    auto arch_list = [&] {
      std::vector<std::string> arches;
      for (const auto& [arch, native] : recipe->arches) arches.push_back(arch);
      return join(arches);
    };

    // Templates and steps may name the container's sources wherever they are.
    std::vector<std::string> source_names = peek_source_names(v);
    const std::set<std::string> variables = known_template_variables(source_names);
    std::vector<size_t> steps_on_all_sources;

    walk(v, p,
         {"arch", "binds", "boot", "build_packages", "devices", "distro", "files", "name", "network", "packages",
          "private_users", "release", "services", "setup", "sources"},
         [&](const std::string& k, const Json& value, const std::string& kp) {
           if (k == "name") {
             auto s = as_string(value, kp);
             if (s && check_name(*s, kp)) facts.name = spec.name = *s;
           } else if (k == "distro") {
             auto s = as_string(value, kp);
             if (!s) return;
             spec.distro = *s;
             if (!distro_known) {
               error(kp, "unknown distro " + quote(*s) + " (known: " + join(recipes_.distros()) + ")");
             } else if (recipe && recipe->mirror == MirrorPolicy::kRequired && !mirror_keys_.contains(*s)) {
               error(kp, *s + " needs a mirror: set /mirrors/" + *s);
             }
           } else if (k == "release") {
             auto s = as_string(value, kp);
             if (!s) return;
             spec.release = *s;
             if (distro_known && !release_known) {
               error(kp,
                     "unknown release " + quote(*s) + " for " + *distro + " (known: " + join(releases) + ")");
             } else if (recipe_error) {
               error(kp, *recipe_error);
             }
           } else if (k == "arch") {
             auto s = as_string(value, kp);
             if (!s) return;
             spec.arch = *s;
             if (recipe && !recipe->arches.contains(*s)) {
               error(kp, *distro + " " + *release + " has no arch " + quote(*s) + " (known: " + arch_list() +
                             ")");
             }
           } else if (k == "packages") {
             packages(value, kp, package_pattern ? &*package_pattern : nullptr, distro.value_or(""), spec);
           } else if (k == "build_packages") {
             as_bool(value, kp, spec.build_packages);
           } else if (k == "boot") {
             as_bool(value, kp, spec.boot);
           } else if (k == "private_users") {
             as_bool(value, kp, spec.private_users);
           } else if (k == "network") {
             if (!expect(value.is_object(), value, kp, "an object")) return;
             container_network(value, kp, spec.network, facts);
           } else if (k == "binds") {
             binds(value, kp, spec);
           } else if (k == "devices") {
             devices(value, kp, spec, facts);
           } else if (k == "sources") {
             sources(value, kp, spec);
           } else if (k == "files") {
             files(value, kp, spec, variables);
           } else if (k == "setup") {
             setup(value, kp, spec, variables, source_names, steps_on_all_sources);
           } else if (k == "services") {
             services(value, kp, spec, variables);
           }
         });
    for (size_t i : steps_on_all_sources) {
      for (const auto& source : spec.sources) spec.setup[i].sources.push_back(source.name);
    }

    for (const char* required : {"name", "distro", "release"}) {
      if (first_member(v, required) == nullptr) error(child(p, required), "required key is missing");
    }
    if (first_member(v, "arch") == nullptr && recipe && !recipe->arches.contains(host_arch_)) {
      error(child(p, "arch"), "required key is missing: " + *distro + " " + *release + " has no arch " +
                                  quote(host_arch_) + " (the host's; known: " + arch_list() + ")");
    }
    config_.containers.push_back(std::move(spec));
    facts_.push_back(std::move(facts));
  }

  void container_network(const Json& v, const std::string& p, ContainerNetwork& net, ContainerFacts& facts) {
    walk(v, p, {"link", "mode", "subnet"}, [&](const std::string& k, const Json& value, const std::string& kp) {
      auto s = as_string(value, kp);
      if (!s) return;
      if (k == "subnet") {
        facts.subnet = net.subnet = subnet(*s, kp, "192.168.85.0/24");
      } else if (k == "mode") {
        if (*s == "veth") {
          net.mode = NetworkMode::kVeth;
        } else if (*s == "macvlan") {
          net.mode = NetworkMode::kMacvlan;
        } else if (*s == "ipvlan") {
          net.mode = NetworkMode::kIpvlan;
        } else {
          error(kp, "unknown network mode " + quote(*s) + " (expected one of: ipvlan, macvlan, veth)");
        }
      } else if (valid_interface_name(*s)) {
        net.link = *s;
      } else {
        error(kp, quote(*s) + " is not a valid interface name: 1 to 15 characters, no '/', ':', whitespace or control characters");
      }
    });
    const bool veth = net.mode == NetworkMode::kVeth;
    facts.mode = net.mode;
    facts.link = veth ? "" : net.link;
    const Json* link = first_member(v, "link");
    if (veth && link != nullptr) {
      error(child(p, "link"), "only a macvlan or ipvlan network has a parent link");
    } else if (!veth && link == nullptr) {
      error(child(p, "link"), "required key is missing: a " + std::string(to_string(net.mode)) +
                                  " network needs the host interface it attaches to, like \"eth0\"");
    }
    if (!veth && first_member(v, "subnet") != nullptr) {
      error(child(p, "subnet"), "only a veth network has a subnet: " +
                                    std::string(net.mode == NetworkMode::kIpvlan ? "an " : "a ") +
                                    std::string(to_string(net.mode)) + " container gets its address from the parent link's network (DHCP)");
      facts.subnet.reset();
      net.subnet.reset();
    }
  }

  void devices(const Json& v, const std::string& p, ContainerSpec& spec, ContainerFacts& facts) {
    if (!expect(v.is_array(), v, p, "an array")) return;
    for (size_t i = 0; i < v.size(); ++i) {
      const std::string rp = child(p, i);
      if (!expect(v[i].is_object(), v[i], rp, "an object")) continue;
      udev::DeviceRule rule;
      const size_t errors_before = errors_.size();
      walk(v[i], rp, {"group", "match", "mode"}, [&](const std::string& k, const Json& value, const std::string& kp) {
        if (k == "match") {
          if (expect(value.is_object(), value, kp, "an object")) device_match(value, kp, rule.match);
          return;
        }
        auto s = as_string(value, kp);
        if (!s) return;
        if (k == "group") {
          static const std::regex kGroup("[a-z_][a-z0-9_-]{0,31}");
          if (std::regex_match(*s, kGroup)) {
            rule.group = *s;
          } else {
            error(kp, quote(*s) + " is not a valid group name");
          }
        } else {
          static const std::regex kMode("0?[0-7]{3}");
          if (!std::regex_match(*s, kMode)) {
            error(kp, quote(*s) + " is not a file mode: write it in octal, like \"0660\"");
          } else if (unsigned mode = static_cast<unsigned>(std::stoul(*s, nullptr, 8)); (mode & 07) != 0) {
            error(kp, quote(*s) + " gives other users access: a device node is never world-accessible (use \"0660\")");
          } else if ((mode & 0600) != 0600) {
            error(kp, quote(*s) + " does not let the owner read and write the device");
          } else {
            rule.mode = mode;
          }
        }
      });
      const Json* match = first_member(v[i], "match");
      if (match == nullptr) {
        error(child(rp, "match"), "required key is missing");
      } else if (match->is_object() && rule.match.empty() && errors_.size() == errors_before) {
        error(child(rp, "match"), "a rule must match on at least one of: by_id, interface, path, serial, subsystem, usb_ids");
      }
      if (errors_.size() == errors_before) {
        facts.device_rules.emplace_back(rp, rule.match);
        spec.devices.push_back(std::move(rule));
      }
    }
  }

  void device_match(const Json& v, const std::string& p, udev::DeviceMatch& m) {
    walk(v, p, {"by_id", "interface", "path", "serial", "subsystem", "usb_ids"},
         [&](const std::string& k, const Json& value, const std::string& kp) {
           if (k == "usb_ids") {
             if (!expect(value.is_array(), value, kp, "an array")) return;
             if (value.empty()) error(kp, "expected at least one \"vendor:product\" pair");
             static const std::regex kId("([0-9a-fA-F]{4}):([0-9a-fA-F]{4})");
             for (size_t i = 0; i < value.size(); ++i) {
               auto s = as_string(value[i], child(kp, i));
               std::smatch parts;
               if (!s) continue;
               if (!std::regex_match(*s, parts, kId)) {
                 error(child(kp, i), quote(*s) + " is not a USB id pair: write \"vendor:product\" in hex, like \"0403:6001\"");
                 continue;
               }
               udev::UsbId id;
               id.vendor = parts[1];
               id.product = parts[2];
               for (auto* part : {&id.vendor, &id.product}) {
                 for (auto& c : *part) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
               }
               m.usb_ids.push_back(id);
             }
             return;
           }
           auto s = as_string(value, kp);
           if (!s) return;
           if (s->empty() || has_control(*s) || s->find_first_of(" \"\\") != std::string::npos) {
             error(kp, quote(*s) + " must be non-empty, without spaces, quotes, backslashes or control characters");
             return;
           }
           if (k == "serial") {
             m.serial = *s;
           } else if (k == "path") {
             m.path = *s;
           } else if (k == "interface") {
             static const std::regex kIf("[0-9a-fA-F]{2}");
             if (std::regex_match(*s, kIf)) {
               m.interface = *s;
             } else {
               error(kp, quote(*s) + " is not a USB interface number: two hex digits, like \"00\"");
             }
           } else if (k == "subsystem") {
             if (*s == "tty" || *s == "usb" || *s == "hidraw") {
               m.subsystem = *s;
             } else {
               error(kp, "unknown subsystem " + quote(*s) + " (expected one of: hidraw, tty, usb)");
             }
           } else if (s->find('/') != std::string::npos) {
             error(kp, quote(*s) + " must be a name in /dev/serial/by-id/, without '/'");
           } else {
             m.by_id = *s;
           }
         });
  }

  void packages(const Json& v, const std::string& p, const std::regex* pattern, const std::string& distro,
                ContainerSpec& spec) {
    if (!expect(v.is_array(), v, p, "an array")) return;
    std::set<std::string> seen;
    for (size_t i = 0; i < v.size(); ++i) {
      std::string ip = child(p, i);
      auto s = as_string(v[i], ip);
      if (!s) continue;
      if (pattern && !std::regex_match(*s, *pattern)) {
        error(ip, quote(*s) + " is not a valid " + distro + " package name");
      } else if (!seen.insert(*s).second) {
        error(ip, "duplicate package " + quote(*s));
      } else {
        spec.packages.push_back(*s);
      }
    }
  }

  void binds(const Json& v, const std::string& p, ContainerSpec& spec) {
    if (!expect(v.is_array(), v, p, "an array")) return;
    std::map<std::string, std::string> targets;  // normalized target -> pointer of its first use
    for (size_t i = 0; i < v.size(); ++i) {
      std::string bp = child(p, i);
      if (!expect(v[i].is_object(), v[i], bp, "an object")) continue;
      BindMount bind;
      bind.read_only = kDefaults.bind_read_only;
      bool source_ok = false;
      std::optional<bool> target_ok;  // unset: defaulted to the source
      walk(v[i], bp, {"read_only", "source", "target"},
           [&](const std::string& k, const Json& value, const std::string& kp) {
             if (k == "read_only") {
               as_bool(value, kp, bind.read_only);
               return;
             }
             auto s = as_string(value, kp);
             bool ok = s && check_path(*s, kp, true);
             if (k == "source") {
               source_ok = ok;
               if (ok) bind.source = *s;
             } else {
               target_ok = ok;
               if (ok) bind.target = *s;
             }
           });
      if (first_member(v[i], "source") == nullptr) error(child(bp, "source"), "required key is missing");
      if (!target_ok) bind.target = bind.source;
      bool usable = target_ok ? *target_ok : source_ok;
      if (!usable) continue;
      std::string target_pointer = child(bp, target_ok ? "target" : "source");
      std::string key = std::filesystem::path(bind.target).lexically_normal().string();
      while (key.size() > 1 && key.back() == '/') key.pop_back();
      if (auto [it, fresh] = targets.emplace(key, target_pointer); !fresh) {
        error(target_pointer,
              "duplicate bind target " + quote(bind.target) + " (also at " + it->second + ")");
        continue;
      }
      spec.binds.push_back(std::move(bind));
    }
  }

  // ---- The payload: sources, files, setup steps, services ----

  static std::vector<std::string> peek_source_names(const Json& container) {
    std::vector<std::string> names;
    const Json* sources = first_member(container, "sources");
    if (sources == nullptr || !sources->is_array()) return names;
    for (const Json& source : *sources) {
      auto name = peek_string(source, "name");
      if (name && std::find(names.begin(), names.end(), *name) == names.end()) names.push_back(*name);
    }
    return names;
  }

  static std::string normal_path(const std::string& path) {
    std::string key = std::filesystem::path(path).lexically_normal().string();
    while (key.size() > 1 && key.back() == '/') key.pop_back();
    return key;
  }

  // An integer in [lo, hi]; `note` explains a special value.
  std::optional<int> int_in_range(const Json& v, const std::string& p, int lo, int hi, const char* note = "") {
    if (!expect(v.is_number_integer(), v, p, "an integer")) return std::nullopt;
    bool in_range = v.is_number_unsigned()
                        ? v.get<uint64_t>() <= static_cast<uint64_t>(hi) && v.get<uint64_t>() >= static_cast<uint64_t>(lo)
                        : v.get<int64_t>() >= lo && v.get<int64_t>() <= hi;
    if (!in_range) {
      error(p, v.dump() + " is out of range: it must be between " + std::to_string(lo) + " and " +
                   std::to_string(hi) + note);
      return std::nullopt;
    }
    return v.get<int>();
  }

  bool check_payload_name(const std::string& name, const std::string& p, const char* what) {
    if (valid_payload_name(name)) return true;
    error(p, quote(name) + " is not a valid " + what +
                 " name: use 1 to 64 lower-case letters, digits, '_', '.' or '-', starting with a letter or digit");
    return false;
  }

  // Every {{variable}} of `text` must be one the container has.
  void check_template(const std::string& text, const std::string& p, const std::set<std::string>& variables) {
    if (auto problem = template_syntax_problem(text)) {
      error(p, *problem);
      return;
    }
    for (const auto& name : template_variables(text)) {
      if (variables.contains(name)) continue;
      std::string bad = "unknown template variable " + quote(name);
      size_t dot = name.rfind('.');
      if (name.starts_with("source.") && dot > 7) {
        std::string source = name.substr(7, dot - 7);
        if (!variables.contains("source." + source + ".path")) {
          error(p, bad + ": the container has no source " + quote(source));
        } else {
          error(p, bad + " (a source has: path, commit, url)");
        }
      } else {
        error(p, bad + " (known: address, container, gateway, home, host, hostname, server_url, subnet, user, "
                       "source.NAME.path, source.NAME.commit, source.NAME.url)");
      }
    }
  }

  // File and unit contents: a string, or an array of lines (each ends in "\n").
  std::optional<std::string> content(const Json& v, const std::string& p, const std::set<std::string>& variables) {
    if (v.is_string()) {
      check_template(v.get<std::string>(), p, variables);
      return v.get<std::string>();
    }
    if (!v.is_array()) {
      error(p, "expected a string or an array of strings, got " + type_name(v));
      return std::nullopt;
    }
    std::string text;
    bool ok = true;
    for (size_t i = 0; i < v.size(); ++i) {
      auto line = as_string(v[i], child(p, i));
      if (!line) {
        ok = false;
        continue;
      }
      check_template(*line, child(p, i), variables);
      text += *line + "\n";
    }
    if (!ok) return std::nullopt;
    return text;
  }

  // A git URL; the message never shows a password that is in it.
  std::optional<std::string> git_url(const Json& v, const std::string& p) {
    auto s = as_string(v, p);
    if (!s) return std::nullopt;
    if (auto problem = git_url_problem(*s)) {
      error(p, quote(hide_url_password(*s)) + " is not a git URL: " + *problem);
      return std::nullopt;
    }
    return s;
  }

  std::optional<std::string> git_ref(const Json& v, const std::string& p) {
    auto s = as_string(v, p);
    if (!s) return std::nullopt;
    if (auto problem = git_ref_problem(*s)) {
      error(p, quote(*s) + " is not a branch, tag or commit: " + *problem);
      return std::nullopt;
    }
    return s;
  }

  // Credential files for the remote at `url` (peeked: it may come later in the object).
  void credentials(const Json& v, const std::string& p, const std::optional<std::string>& url, GitCredentials& out) {
    if (!expect(v.is_object(), v, p, "an object")) return;
    std::optional<GitTransport> transport;
    if (url && !git_url_problem(*url)) transport = git_transport(*url);
    std::string url_text = url ? quote(hide_url_password(*url)) : std::string();
    walk(v, p, {"known_hosts", "ssh_key", "token_file", "username"},
         [&](const std::string& k, const Json& value, const std::string& kp) {
           auto s = as_string(value, kp);
           if (!s) return;
           if (k == "username") {
             if (s->empty() || std::any_of(s->begin(), s->end(), [](char c) {
                   return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || c == ':' || c == '@';
                 })) {
               error(kp, quote(*s) + " is not a user name: it must be non-empty, without whitespace, control "
                                     "characters, ':' or '@'");
             } else {
               out.username = *s;
             }
             return;
           }
           if (!check_path(*s, kp, false)) return;
           bool ssh_only = k != "token_file";
           if (transport && ssh_only && *transport != GitTransport::kSsh) {
             error(kp, std::string("only an ssh URL (ssh:// or user@host:path) uses ") +
                           (k == "ssh_key" ? "an ssh key" : "known_hosts") + "; " + url_text + " is not one");
           } else if (transport && !ssh_only && *transport != GitTransport::kHttp) {
             error(kp, "only an https:// or http:// URL uses a token file; " + url_text + " is not one");
           } else if (k == "ssh_key") {
             out.ssh_key = *s;
           } else if (k == "known_hosts") {
             out.known_hosts = *s;
           } else {
             out.token_file = *s;
           }
         });
  }

  void sources(const Json& v, const std::string& p, ContainerSpec& spec) {
    if (!expect(v.is_array(), v, p, "an array")) return;
    std::map<std::string, std::string> names;                 // name -> pointer of its first use
    std::vector<std::pair<std::string, std::string>> paths;   // normalized path, pointer
    for (size_t i = 0; i < v.size(); ++i) {
      const std::string sp = child(p, i);
      if (!expect(v[i].is_object(), v[i], sp, "an object")) continue;
      SourceSpec source;
      source.depth = kDefaults.source_depth;
      source.submodules = kDefaults.source_submodules;
      const auto url = peek_string(v[i], "url");
      walk(v[i], sp, {"clean", "credentials", "depth", "name", "path", "ref", "submodules", "url"},
           [&](const std::string& k, const Json& value, const std::string& kp) {
             if (k == "name") {
               auto s = as_string(value, kp);
               if (!s || !check_payload_name(*s, kp, "source")) return;
               if (auto [it, fresh] = names.emplace(*s, kp); !fresh) {
                 error(kp, "duplicate source name " + quote(*s) + " (also at " + it->second + ")");
               } else {
                 source.name = *s;
               }
             } else if (k == "url") {
               if (auto s = git_url(value, kp)) source.url = *s;
             } else if (k == "ref") {
               if (auto s = git_ref(value, kp)) source.ref = *s;
             } else if (k == "path") {
               auto s = as_string(value, kp);
               if (!s || !check_path(*s, kp, false)) return;
               std::string key = normal_path(*s);
               if (key == "/") {
                 error(kp, quote(*s) + " is the container's root: a source needs a directory of its own");
                 return;
               }
               source.path = *s;
               for (const auto& [other, other_pointer] : paths) {
                 if (other == key) {
                   error(kp, "duplicate source path " + quote(*s) + " (also at " + other_pointer + ")");
                 } else if (key.starts_with(other + "/")) {
                   error(kp, quote(*s) + " is inside the source at " + other_pointer + " (" + quote(other) +
                                 "): sources must not nest");
                 } else if (other.starts_with(key + "/")) {
                   error(kp, quote(*s) + " contains the source at " + other_pointer + " (" + quote(other) +
                                 "): sources must not nest");
                 } else {
                   continue;
                 }
                 return;
               }
               paths.emplace_back(key, kp);
             } else if (k == "depth") {
               if (auto d = int_in_range(value, kp, 0, 1000000, " (0: the whole history)")) source.depth = *d;
             } else if (k == "submodules") {
               as_bool(value, kp, source.submodules);
             } else if (k == "clean") {
               as_bool(value, kp, source.clean);
             } else if (k == "credentials") {
               credentials(value, kp, url, source.credentials);
             }
           });
      for (const char* required : {"name", "url", "ref", "path"}) {
        if (first_member(v[i], required) == nullptr) error(child(sp, required), "required key is missing");
      }
      spec.sources.push_back(std::move(source));
    }
  }

  // A user or group of a file: a name as useradd allows it, or a numeric id.
  static bool valid_owner(const std::string& s) {
    static const std::regex kName("[a-z_][a-z0-9_-]{0,31}");
    static const std::regex kId("[0-9]{1,10}");
    return std::regex_match(s, kName) || (std::regex_match(s, kId) && std::stoull(s) < 4294967295ULL);
  }

  void files(const Json& v, const std::string& p, ContainerSpec& spec, const std::set<std::string>& variables) {
    if (!expect(v.is_array(), v, p, "an array")) return;
    std::map<std::string, std::string> paths;  // normalized path -> pointer of its first use
    for (size_t i = 0; i < v.size(); ++i) {
      const std::string fp = child(p, i);
      if (!expect(v[i].is_object(), v[i], fp, "an object")) continue;
      FileSpec file;
      file.owner = kDefaults.file_owner;
      file.group = kDefaults.file_group;
      file.mode = kDefaults.file_mode;
      walk(v[i], fp, {"content", "group", "mode", "owner", "path"},
           [&](const std::string& k, const Json& value, const std::string& kp) {
             if (k == "content") {
               if (auto text = content(value, kp, variables)) file.content = *text;
               return;
             }
             auto s = as_string(value, kp);
             if (!s) return;
             if (k == "path") {
               if (!check_path(*s, kp, false)) return;
               if (s->back() == '/') {
                 error(kp, quote(*s) + " names a directory: a file's path must not end in '/'");
               } else if (auto [it, fresh] = paths.emplace(normal_path(*s), kp); !fresh) {
                 error(kp, "duplicate file path " + quote(*s) + " (also at " + it->second + ")");
               } else {
                 file.path = *s;
               }
             } else if (k == "owner" || k == "group") {
               if (!valid_owner(*s)) {
                 error(kp, quote(*s) + " is not a " + (k == "owner" ? "user" : "group") + " name or numeric id");
               } else {
                 (k == "owner" ? file.owner : file.group) = *s;
               }
             } else {
               static const std::regex kMode("[0-7]{3,4}");
               if (!std::regex_match(*s, kMode)) {
                 error(kp, quote(*s) + " is not a file mode: write it in octal, like \"0644\"");
               } else if (unsigned mode = static_cast<unsigned>(std::stoul(*s, nullptr, 8)); (mode & 02) != 0) {
                 error(kp, quote(*s) + " lets every user write the file: remove the world-write bit");
               } else {
                 file.mode = mode;
               }
             }
           });
      for (const char* required : {"path", "content"}) {
        if (first_member(v[i], required) == nullptr) error(child(fp, required), "required key is missing");
      }
      spec.files.push_back(std::move(file));
    }
  }

  // A templated argv or environment entry; farmhand passes it to exec, which cannot carry NUL.
  std::optional<std::string> exec_string(const Json& v, const std::string& p, const std::set<std::string>& variables) {
    auto s = as_string(v, p);
    if (!s) return std::nullopt;
    if (s->find('\0') != std::string::npos) {
      error(p, quote(*s) + " must not contain a NUL character");
      return std::nullopt;
    }
    check_template(*s, p, variables);
    return s;
  }

  void setup(const Json& v, const std::string& p, ContainerSpec& spec, const std::set<std::string>& variables,
             const std::vector<std::string>& source_names, std::vector<size_t>& steps_on_all_sources) {
    if (!expect(v.is_array(), v, p, "an array")) return;
    std::map<std::string, std::string> names;  // name -> pointer of its first use
    for (size_t i = 0; i < v.size(); ++i) {
      const std::string sp = child(p, i);
      if (!expect(v[i].is_object(), v[i], sp, "an object")) continue;
      SetupStep step;
      step.user = *parse_run_as(kDefaults.setup_user);
      step.timeout_s = kDefaults.setup_timeout_s;
      walk(v[i], sp, {"cwd", "env", "name", "run", "sources", "timeout", "user"},
           [&](const std::string& k, const Json& value, const std::string& kp) {
             if (k == "name") {
               auto s = as_string(value, kp);
               if (!s || !check_payload_name(*s, kp, "step")) return;
               if (auto [it, fresh] = names.emplace(*s, kp); !fresh) {
                 error(kp, "duplicate step name " + quote(*s) + " (also at " + it->second + ")");
               } else {
                 step.name = *s;
               }
             } else if (k == "run") {
               if (!expect(value.is_array(), value, kp, "an array")) return;
               if (value.empty()) error(kp, "expected at least one string: the program to run");
               for (size_t j = 0; j < value.size(); ++j) {
                 auto arg = exec_string(value[j], child(kp, j), variables);
                 if (!arg) continue;
                 if (j == 0 && arg->empty()) error(child(kp, j), "the program must not be empty");
                 step.run.push_back(*arg);
               }
             } else if (k == "user") {
               auto s = as_string(value, kp);
               if (!s) return;
               if (auto user = parse_run_as(*s)) {
                 step.user = *user;
               } else {
                 error(kp, "unknown user " + quote(*s) + " (expected one of: root, sai)");
               }
             } else if (k == "cwd") {
               auto s = as_string(value, kp);
               if (s && check_path(*s, kp, false)) step.cwd = *s;
             } else if (k == "env") {
               if (!expect(value.is_array(), value, kp, "an array")) return;
               static const std::regex kKey("[A-Za-z_][A-Za-z0-9_]*");
               std::map<std::string, std::string> keys;
               for (size_t j = 0; j < value.size(); ++j) {
                 const std::string ep = child(kp, j);
                 auto entry = exec_string(value[j], ep, variables);
                 if (!entry) continue;
                 std::string key = entry->substr(0, entry->find('='));
                 if (key.size() == entry->size() || !std::regex_match(key, kKey)) {
                   error(ep, quote(*entry) + " is not KEY=value with KEY of letters, digits and '_' (not starting "
                                             "with a digit)");
                 } else if (auto [it, fresh] = keys.emplace(key, ep); !fresh) {
                   error(ep, "duplicate variable " + quote(key) + " (also at " + it->second + ")");
                 } else {
                   step.env.push_back(*entry);
                 }
               }
             } else if (k == "sources") {
               if (!expect(value.is_array(), value, kp, "an array")) return;
               std::set<std::string> seen;
               for (size_t j = 0; j < value.size(); ++j) {
                 auto s = as_string(value[j], child(kp, j));
                 if (!s) continue;
                 if (std::find(source_names.begin(), source_names.end(), *s) == source_names.end()) {
                   error(child(kp, j), "unknown source " + quote(*s) +
                                           (source_names.empty() ? std::string(" (the container has no sources)")
                                                                 : " (the container's sources: " +
                                                                       join(source_names) + ")"));
                 } else if (!seen.insert(*s).second) {
                   error(child(kp, j), "duplicate source " + quote(*s));
                 } else {
                   step.sources.push_back(*s);
                 }
               }
             } else if (k == "timeout") {
               if (auto t = int_in_range(value, kp, 1, 86400, " seconds")) step.timeout_s = *t;
             }
           });
      if (first_member(v[i], "name") == nullptr) error(child(sp, "name"), "required key is missing");
      if (first_member(v[i], "run") == nullptr) error(child(sp, "run"), "required key is missing");
      if (first_member(v[i], "sources") == nullptr) steps_on_all_sources.push_back(spec.setup.size());
      spec.setup.push_back(std::move(step));
    }
  }

  void services(const Json& v, const std::string& p, ContainerSpec& spec, const std::set<std::string>& variables) {
    if (!expect(v.is_array(), v, p, "an array")) return;
    std::map<std::string, std::string> names;  // name -> pointer of its first use
    for (size_t i = 0; i < v.size(); ++i) {
      const std::string sp = child(p, i);
      if (!expect(v[i].is_object(), v[i], sp, "an object")) continue;
      ServiceSpec service;
      service.enable = kDefaults.service_enable;
      walk(v[i], sp, {"content", "enable", "name"}, [&](const std::string& k, const Json& value,
                                                       const std::string& kp) {
        if (k == "name") {
          auto s = as_string(value, kp);
          if (!s) return;
          if (auto problem = unit_name_problem(*s)) {
            error(kp, quote(*s) + " is not a unit file name: " + *problem);
          } else if (auto [it, fresh] = names.emplace(*s, kp); !fresh) {
            error(kp, "duplicate service " + quote(*s) + " (also at " + it->second + ")");
          } else {
            service.name = *s;
          }
        } else if (k == "content") {
          if (auto text = content(value, kp, variables)) service.content = *text;
        } else {
          as_bool(value, kp, service.enable);
        }
      });
      for (const char* required : {"name", "content"}) {
        if (first_member(v[i], required) == nullptr) error(child(sp, required), "required key is missing");
      }
      spec.services.push_back(std::move(service));
    }
  }

  void config_repo(const Json& v, const std::string& p) {
    ConfigRepo repo;
    repo.ref = kDefaults.config_repo_ref;
    repo.interval_s = kDefaults.config_repo_interval_s;
    const auto url = peek_string(v, "url");
    walk(v, p, {"credentials", "interval", "path", "ref", "url"},
         [&](const std::string& k, const Json& value, const std::string& kp) {
           if (k == "url") {
             if (auto s = git_url(value, kp)) repo.url = *s;
           } else if (k == "ref") {
             if (auto s = git_ref(value, kp)) repo.ref = *s;
           } else if (k == "path") {
             auto s = as_string(value, kp);
             if (!s) return;
             if (s->empty() || s->back() == '/') {
               error(kp, quote(*s) + " does not name a file in the repository");
             } else if (s->front() == '/') {
               error(kp, quote(*s) + " must be relative to the top of the repository (no leading '/')");
             } else if (has_control(*s)) {
               error(kp, quote(*s) + " must not contain control characters");
             } else if (has_dotdot(*s)) {
               error(kp, quote(*s) + " must not contain \"..\"");
             } else {
               repo.path = *s;
             }
           } else if (k == "interval") {
             if (auto t = int_in_range(value, kp, 30, 86400, " seconds")) repo.interval_s = *t;
           } else if (k == "credentials") {
             credentials(value, kp, url, repo.credentials);
           }
         });
    for (const char* required : {"url", "path"}) {
      if (first_member(v, required) == nullptr) error(child(p, required), "required key is missing");
    }
    config_.config_repo = std::move(repo);
  }

  void cross_container_checks() {
    const size_t legacy = kDefaults.legacy_ifname_chars;
    for (size_t i = 0; i < facts_.size(); ++i) {
      const ContainerFacts& a = facts_[i];
      for (size_t j = 0; a.name && j < i; ++j) {
        const ContainerFacts& b = facts_[j];
        if (!b.name) continue;
        if (*a.name == *b.name) {
          error(a.name_pointer, "duplicate name " + quote(*a.name) + " (also at " + b.name_pointer + ")");
          break;
        }
        if (a.name->substr(0, legacy) == b.name->substr(0, legacy)) {
          error(a.name_pointer, quote(*a.name) + " collides with " + quote(*b.name) + " (" + b.name_pointer +
                                    "): systemd older than v245 names both host interfaces \"ve-" +
                                    a.name->substr(0, legacy) + "\"");
          break;
        }
      }
      for (const auto& [rule_pointer, rule] : a.device_rules) {
        bool reported = false;
        for (size_t j = 0; j < i && !reported; ++j) {
          const ContainerFacts& b = facts_[j];
          if (a.name && b.name && *a.name == *b.name) continue;
          for (const auto& [other_pointer, other] : b.device_rules) {
            if (!udev::rules_may_overlap(rule, other)) continue;
            error(rule_pointer, "can match the same device as " + other_pointer + " (container " +
                                    quote(b.name.value_or("?")) +
                                    "): a device belongs to one container at most; make the rules differ in "
                                    "usb_ids, serial, path, interface, subsystem or by_id");
            reported = true;
            break;
          }
        }
      }
      for (size_t j = 0; !a.link.empty() && j < i; ++j) {
        const ContainerFacts& b = facts_[j];
        if (b.link == a.link && b.mode != a.mode) {
          error(child(a.subnet_pointer.substr(0, a.subnet_pointer.rfind('/')), "link"),
                quote(a.link) + " already carries " + std::string(to_string(b.mode)) + " links (" +
                    child(b.subnet_pointer.substr(0, b.subnet_pointer.rfind('/')), "link") +
                    "): the kernel does not allow " + std::string(to_string(a.mode)) +
                    " links on the same interface");
          break;
        }
      }
      for (size_t j = 0; a.subnet && j < i; ++j) {
        const ContainerFacts& b = facts_[j];
        if (b.subnet && a.subnet->overlaps(*b.subnet)) {
          error(a.subnet_pointer,
                a.subnet->str() + " overlaps " + b.subnet->str() + " (" + b.subnet_pointer + ")");
          break;
        }
      }
    }
  }

  const RecipeBook& recipes_;
  const std::string host_arch_;
  std::string prefix_;             // "<repo label>: " while checking the config repository's file
  bool in_repo_ = false;           // checking the config repository's file
  bool repo_mirrors_ = false;      // the config repository's file has "mirrors"
  std::string containers_source_;  // where containers come from when config_repo is set
  std::set<std::string> mirror_keys_;
  AgentConfig config_;
  std::vector<ContainerFacts> facts_;
  std::vector<std::string> errors_;
  std::vector<std::string> warnings_;
};

}  // namespace

std::optional<std::string> server_url_problem(std::string_view url) {
  std::optional<std::string_view> rest;
  for (std::string_view scheme : {"ws://", "wss://", "http://", "https://"}) {
    if (url.starts_with(scheme)) rest = url.substr(scheme.size());
  }
  if (!rest) return "it must start with ws://, wss://, http:// or https://";
  if (has_control(url) || url.find(' ') != std::string_view::npos) {
    return "it must not contain whitespace or control characters";
  }
  if (rest->empty() || rest->front() == '/') return "it has no host";
  return std::nullopt;
}

std::optional<std::string> token_problem(std::string_view token) {
  if (token.empty()) return "is empty";
  if (token.size() > 4096) return "is longer than 4096 characters";
  bool printable = std::all_of(token.begin(), token.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7f;
  });
  if (!printable) return "must be printable ASCII without spaces";
  return std::nullopt;
}

bool valid_interface_name(std::string_view name) {
  if (name.empty() || name.size() > 15 || name == "." || name == "..") return false;
  return std::none_of(name.begin(), name.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f || c == '/' || c == ':';
  });
}

bool valid_zone_name(std::string_view name) {
  // firewalld limits zone names to 17 characters.
  if (name.empty() || name.size() > 17) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
  });
}

std::string_view to_string(NetworkMode mode) {
  switch (mode) {
    case NetworkMode::kVeth: return "veth";
    case NetworkMode::kMacvlan: return "macvlan";
    case NetworkMode::kIpvlan: return "ipvlan";
  }
  return "veth";
}

std::string_view to_string(NetworkBackend backend) {
  switch (backend) {
    case NetworkBackend::kAuto: return "auto";
    case NetworkBackend::kNetworkManager: return "networkmanager";
    case NetworkBackend::kNetworkd: return "networkd";
    case NetworkBackend::kPlain: return "plain";
  }
  return "auto";
}

std::optional<NetworkBackend> parse_network_backend(std::string_view text) {
  for (auto b : {NetworkBackend::kAuto, NetworkBackend::kNetworkManager, NetworkBackend::kNetworkd,
                 NetworkBackend::kPlain}) {
    if (to_string(b) == text) return b;
  }
  return std::nullopt;
}

std::string_view to_string(FirewallBackend firewall) {
  switch (firewall) {
    case FirewallBackend::kAuto: return "auto";
    case FirewallBackend::kFirewalld: return "firewalld";
    case FirewallBackend::kNftables: return "nftables";
    case FirewallBackend::kNone: return "none";
  }
  return "auto";
}

std::optional<FirewallBackend> parse_firewall_backend(std::string_view text) {
  for (auto f : {FirewallBackend::kAuto, FirewallBackend::kFirewalld, FirewallBackend::kNftables,
                 FirewallBackend::kNone}) {
    if (to_string(f) == text) return f;
  }
  return std::nullopt;
}

std::optional<CloneMethod> parse_clone_method(std::string_view text) {
  for (auto m : {CloneMethod::kAuto, CloneMethod::kBtrfs, CloneMethod::kReflink, CloneMethod::kOverlay,
                 CloneMethod::kCopy}) {
    if (to_string(m) == text) return m;
  }
  return std::nullopt;
}

std::string_view to_string(CloneMethod method) {
  switch (method) {
    case CloneMethod::kAuto: return "auto";
    case CloneMethod::kBtrfs: return "btrfs";
    case CloneMethod::kReflink: return "reflink";
    case CloneMethod::kOverlay: return "overlay";
    case CloneMethod::kCopy: return "copy";
  }
  return "unknown";
}

std::string_view to_string(RunAs user) {
  switch (user) {
    case RunAs::kRoot: return "root";
    case RunAs::kBuildUser: return "sai";
  }
  return "sai";
}

std::optional<RunAs> parse_run_as(std::string_view text) {
  for (auto user : {RunAs::kRoot, RunAs::kBuildUser}) {
    if (to_string(user) == text) return user;
  }
  return std::nullopt;
}

ConfigLoad parse_config(std::string_view json_text, const RecipeBook& recipes) {
  auto doc = parse_json_keeping_duplicates(json_text);
  if (!doc) {
    ConfigLoad out;
    out.errors.push_back("/: invalid JSON: " + doc.error().message());
    return out;
  }
  return Validator(recipes).run(*doc);
}

ConfigLoad parse_config_with_repo(std::string_view local_json, std::string_view repo_json,
                                  const std::string& repo_label, const RecipeBook& recipes) {
  auto local = parse_json_keeping_duplicates(local_json);
  auto repo = parse_json_keeping_duplicates(repo_json);
  ConfigLoad out;
  if (!local) out.errors.push_back("/: invalid JSON: " + local.error().message());
  if (!repo) out.errors.push_back(repo_label + ": /: invalid JSON: " + repo.error().message());
  if (!out.errors.empty()) return out;
  return Validator(recipes).run(*local, &*repo, repo_label);
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

std::string host_arch() {
  struct utsname u {};
  if (::uname(&u) != 0) return "unknown";
  static const std::map<std::string, std::string, std::less<>> kDebianNames{
      {"x86_64", "amd64"}, {"aarch64", "arm64"},   {"armv7l", "armhf"}, {"i686", "i386"},
      {"i386", "i386"},    {"ppc64le", "ppc64el"}, {"s390x", "s390x"},  {"riscv64", "riscv64"}};
  auto it = kDebianNames.find(std::string_view(u.machine));
  return it == kDebianNames.end() ? std::string(u.machine) : it->second;
}

}  // namespace farmhand::provisioner
