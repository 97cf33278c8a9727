#include "agent/cli/enroll.h"

#include "agent/credential.h"
#include "agent/enroll_exchange.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "agent/cli/commands.h"
#include "agent/progress.h"
#include "agent/service_unit.h"
#include "agent/wiring.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/process.h"
#include "common/strict_json.h"

namespace farmhand::agent {

using provisioner::FirewallBackend;
using provisioner::NetworkBackend;

Result<std::string> merge_enrollment(const std::optional<std::string>& existing, const EnrollRequest& request) {
  nlohmann::ordered_json doc = nlohmann::ordered_json::object();
  if (existing) {
    auto parsed = parse_json_keeping_duplicates(*existing);
    if (!parsed) {
      return fail("the existing configuration is not valid JSON (" + parsed.error().message() +
                  "): fix it or move it away, then enroll again");
    }
    if (!parsed->is_object()) return fail("the existing configuration is not a JSON object: fix it or move it away");
    doc = std::move(*parsed);
  }
  if (!doc.contains("containers")) doc["containers"] = nlohmann::ordered_json::array();
  if (request.url) {
    const auto* server = doc.contains("server") && doc["server"].is_object() ? &doc["server"] : nullptr;
    std::string old_url = server && server->contains("url") && (*server)["url"].is_string()
                              ? (*server)["url"].get<std::string>()
                              : "";
    const bool other_server = !old_url.empty() && old_url != *request.url;
    if (other_server && !request.force) {
      return fail("this host is already enrolled with the server " + old_url + "; enrolling it with " +
                  *request.url + " would replace that: pass --force to do so");
    }
    nlohmann::ordered_json s = server ? *server : nlohmann::ordered_json::object();
    s["url"] = *request.url;
    s.erase("token");  // written by farmhand before it had a server to exchange it with
    if (request.ca_file) s["ca_file"] = *request.ca_file;
    doc["server"] = s;
  }
  if (existing) {
    auto before = parse_json_keeping_duplicates(*existing);
    if (before && *before == doc) return *existing;
  }
  return doc.dump(2) + "\n";
}

Result<std::string> render_service_unit(const std::string& unit_template, const std::string& binary) {
  bool plain = !binary.empty() && binary[0] == '/' &&
               std::all_of(binary.begin(), binary.end(), [](char c) {
                 return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                        c == '/' || c == '.' || c == '_' || c == '-' || c == '+';
               });
  if (!plain) {
    return fail("the farmhand binary's path \"" + binary +
                "\" has characters a unit's ExecStart= would need quoted; install farmhand under a plain path");
  }
  std::istringstream in(unit_template);
  std::string out;
  std::string line;
  bool replaced = false;
  while (std::getline(in, line)) {
    if (line.rfind("ExecStart=", 0) == 0) {
      line = "ExecStart=" + binary + " daemon";
      replaced = true;
    }
    out += line + "\n";
  }
  if (!replaced) return fail("the service unit template has no ExecStart= line");
  return out;
}

std::vector<Prerequisite> prerequisites(const provisioner::NetworkChoice& choice, bool with_systemd) {
  std::vector<Prerequisite> out = {
      {"systemd-nspawn", "systemd-container", "systemd-container", "runs the build containers"},
      {"machinectl", "systemd-container", "systemd-container", "`farmhand shell`"},
      {"debootstrap", "debootstrap", "debootstrap", "builds Debian and Ubuntu base trees"},
  };
  if (choice.backend == NetworkBackend::kPlain) {
    out.push_back({"ip", "iproute2", "iproute", "configures the containers' host interfaces"});
  }
  if (with_systemd && (choice.backend == NetworkBackend::kNetworkd || choice.backend == NetworkBackend::kPlain)) {
    out.push_back({"resolvectl", "systemd-resolved", "systemd-resolved", "answers the containers' DNS queries"});
  }
  if (choice.firewall == FirewallBackend::kNftables) {
    out.push_back({"nft", "nftables", "nftables", "masquerades the containers' traffic"});
  }
  return out;
}

std::vector<Prerequisite> missing_prerequisites(const std::vector<Prerequisite>& all,
                                                const std::function<bool(const std::string&)>& found) {
  std::vector<Prerequisite> out;
  for (const auto& p : all) {
    if (!found(p.program)) out.push_back(p);
  }
  return out;
}

std::vector<std::string> install_command(PackageManager manager, const std::vector<Prerequisite>& missing) {
  std::vector<std::string> argv;
  if (manager == PackageManager::kApt) {
    argv = {"apt-get", "install", "-y", "-q", "--no-install-recommends"};
  } else if (manager == PackageManager::kDnf) {
    argv = {"dnf", "install", "-y", "-q"};
  } else {
    return {};
  }
  std::set<std::string> seen;
  for (const auto& p : missing) {
    const std::string& pkg = manager == PackageManager::kApt ? p.apt_package : p.dnf_package;
    if (seen.insert(pkg).second) argv.push_back(pkg);
  }
  return argv;
}

namespace {

bool on_path(const std::string& program) { return find_program(program).ok(); }

PackageManager detect_package_manager() {
  if (on_path("apt-get")) return PackageManager::kApt;
  if (on_path("dnf")) return PackageManager::kDnf;
  return PackageManager::kNone;
}

std::string names(const std::vector<Prerequisite>& list) {
  std::string out;
  for (const auto& p : list) {
    out += (out.empty() ? "" : ", ") + p.program + " (package " + p.apt_package + ": " + p.purpose + ")";
  }
  return out;
}

void say(const std::string& line) {
  std::printf("==> %s\n", line.c_str());
  std::fflush(stdout);
}

// Installs what is missing; an error names every prerequisite still missing.
Status ensure_prerequisites(const std::vector<Prerequisite>& all) {
  auto missing = missing_prerequisites(all, on_path);
  if (missing.empty()) {
    say("prerequisites: all present");
    return {};
  }
  say("prerequisites: installing " + names(missing));
  const PackageManager pm = detect_package_manager();
  auto argv = install_command(pm, missing);
  std::string failure;
  if (argv.empty()) {
    failure = "no supported package manager (apt-get or dnf) on this host";
  } else {
    PosixProcessRunner runner;
    Command cmd;
    auto program = find_program(argv[0]);
    cmd.path = program ? *program : argv[0];
    cmd.args.assign(argv.begin() + 1, argv.end());
    cmd.env = minimal_env({"DEBIAN_FRONTEND=noninteractive"});
    cmd.timeout = std::chrono::minutes(20);
    auto result = runner.run(cmd);
    if (!result) {
      failure = result.error().message();
    } else if (result->exit_code != 0 || result->signal != 0) {
      failure = command_error(cmd, *result).message();
    }
  }
  auto still = missing_prerequisites(all, on_path);
  if (still.empty()) return {};
  return fail("missing prerequisite(s) that could not be installed: " + names(still) +
              (failure.empty() ? "" : "\n" + failure));
}

std::string self_binary() {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? "" : p.string();
}

// Installs and enables farmhand.service; returns the systemd connection and
// whether the unit changed.
Result<std::pair<std::unique_ptr<SystemdControl>, bool>> install_service(const provisioner::AgentConfig& config) {
  auto unit = render_service_unit(kServiceUnitTemplate, self_binary());
  if (!unit) {
    return unit.error();
  }
  auto sd = connect_systemd();
  if (!sd) {
    return sd.error();
  }
  const std::string unit_path = config.paths.systemd + "/farmhand.service";
  auto have_unit = read_file_if_exists(unit_path);
  bool unit_changed = !have_unit || !*have_unit || **have_unit != *unit;
  if (unit_changed) {
    if (auto s = write_file_atomic(unit_path, *unit, 0644); !s) {
      return s.error();
    }
    if (auto s = (*sd)->daemon_reload(); !s) {
      return s.error();
    }
  }
  const fs::path wants = fs::path(config.paths.systemd) / "multi-user.target.wants" / "farmhand.service";
  std::error_code ec;
  if (!fs::is_symlink(wants, ec)) {
    if (auto s = make_dirs(wants.parent_path()); !s) {
      return s.error();
    }
    if (::symlink(unit_path.c_str(), wants.c_str()) != 0 && errno != EEXIST) {
      return fail("cannot enable farmhand.service: " + errno_text(errno));
    }
  }
  say(std::string("service: farmhand.service ") + (unit_changed ? "installed" : "unchanged") + " and enabled");

  return std::pair{std::move(*sd), unit_changed};
}

Status ensure_credential(const provisioner::ServerSettings& server, const std::string& token, bool force) {
  if (!force && path_exists(server.credential_file)) {
    auto held = read_credential(server.credential_file);
    if (held && held->server == server.url) {
      say("server: already enrolled with " + server.url + " as \"" + held->host +
          "\"; the token was not used (pass --force to enroll again with it)");
      return {};
    }
  }
  if (!server.ca_file.empty() && ::access(server.ca_file.c_str(), R_OK) != 0) {
    return fail("cannot read the CA file " + server.ca_file + ": " + errno_text(errno));
  }
  auto enrolled = exchange_enrollment_token(server.url, token, server.ca_file, std::chrono::seconds(20));
  if (!enrolled) return enrolled.error().context("enrolling with " + server.url);
  log::add_secret(enrolled->credential);
  if (auto s = make_dirs(fs::path(server.credential_file).parent_path(), 0755); !s) return s;
  if (auto s = write_credential(server.credential_file, {server.url, enrolled->host, enrolled->credential}); !s) {
    return s;
  }
  say("server: enrolled with " + server.url + " as \"" + enrolled->host + "\"; credential in " +
      server.credential_file);
  return {};
}

// Enroll's first apply, with its progress and the containers' health
// shown; its exit status, or none if the provisioner cannot be wired.
std::optional<int> first_apply(const Invocation& inv, const provisioner::AgentConfig& config) {
  auto wired = wire(inv, config);
  if (!wired) {
    log::error(wired.error().message());
    return std::nullopt;
  }
  ConsoleProgress progress(stdout);
  auto outcome = (*wired)->provisioner->apply(progress);
  if (!outcome) {
    log::error(outcome.error().message());
    return kExitFailed;
  }
  if (!outcome->result) {
    log::error(outcome->result.error().message());
    return kExitFailed;
  }
  return report_health(*(*wired)->provisioner) ? kExitOk : kExitFailed;
}

// Reads enroll's arguments into `req` and checks them and the caller; the
// exit status to end with if something is wrong.
std::optional<int> read_enroll_args(const Invocation& inv, EnrollRequest& req) {
  for (size_t i = 0; i < inv.args.size(); ++i) {
    const std::string& a = inv.args[i];
    auto value = [&]() -> std::optional<std::string> {
      if (i + 1 >= inv.args.size()) return std::nullopt;
      return inv.args[++i];
    };
    std::optional<std::string> v;
    if (a == "--force") {
      req.force = true;
    } else if (a == "--server" && (v = value())) {
      req.url = *v;
    } else if (a == "--token" && (v = value())) {
      req.token = *v;
    } else if (a == "--ca-file" && (v = value())) {
      req.ca_file = *v;
    } else if (a == "--token-file" && (v = value())) {
      auto text = read_file(*v);
      if (!text) {
        log::error(text.error().message());
        return kExitUsage;
      }
      std::string t = *text;
      while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
      req.token = t;
    } else {
      std::fprintf(stderr, "farmhand enroll: unexpected argument \"%s\"\n%s", a.c_str(), usage("enroll"));
      return kExitUsage;
    }
  }
  if (req.token) log::add_secret(*req.token);
  if (req.url.has_value() != req.token.has_value()) {
    std::fprintf(stderr, "farmhand enroll: --server and --token (or --token-file) go together\n%s",
                 usage("enroll"));
    return kExitUsage;
  }
  if (req.url) {
    if (auto why = provisioner::server_url_problem(*req.url)) {
      log::error("\"", *req.url, "\" is not a server URL: ", *why);
      return kExitUsage;
    }
    if (auto why = provisioner::token_problem(*req.token)) {
      log::error("the token ", *why);
      return kExitUsage;
    }
  }
  if (::geteuid() != 0) {
    log::error("enroll must run as root: it installs packages and a system service");
    return kExitFailed;
  }
  if (inv.root != "/") {
    log::error("enroll works on this host only: --root is not supported");
    return kExitFailed;
  }
  return std::nullopt;
}

}  // namespace

int cmd_enroll(const Invocation& inv) {
  EnrollRequest req;
  if (auto refused = read_enroll_args(inv, req)) return *refused;
  // Without systemd as PID 1 (a build VM's container, say) the host is
  // enrolled all the same, but the agent service cannot be installed.
  const bool with_systemd = host_booted_with_systemd();

  // 1. The configuration, decided before anything is touched.
  const std::string path = config_path(inv);
  auto existing = read_file_if_exists(path);
  if (!existing) {
    log::error(existing.error().message());
    return kExitFailed;
  }
  auto merged = merge_enrollment(*existing, req);
  if (!merged) {
    log::error(merged.error().message());
    log::error("nothing was changed");
    return kExitFailed;
  }
  const provisioner::RecipeBook* book = recipes();
  if (book == nullptr) return kExitFailed;
  auto checked = provisioner::parse_config(*merged, *book);
  for (const auto& e : checked.errors) log::error(path, ": ", e);
  if (!checked.config) {
    log::error("nothing was changed");
    return kExitUsage;
  }
  provisioner::AgentConfig config = *checked.config;

  // 2. Prerequisites for this host's network backend and firewall.
  auto choice = provisioner::choose_network(config, provisioner::observe_host_facts(HostRoot("/")), true);
  if (auto s = ensure_prerequisites(prerequisites(choice, with_systemd)); !s) {
    log::error(s.error().message());
    return kExitFailed;
  }

  // 3. The host's credential: the one-time token is traded for it, unless
  //    this host already holds one for this server.
  if (req.url && config.server) {
    if (auto s = ensure_credential(*config.server, *req.token, req.force); !s) {
      log::error(s.error().message());
      log::error("the configuration was not changed");
      return kExitFailed;
    }
  }

  // 4. The configuration (0600) and directories.
  bool config_changed = !*existing || **existing != *merged;
  struct stat st {};
  bool mode_wrong = ::stat(path.c_str(), &st) == 0 && (st.st_mode & 07777) != 0600;
  if (config_changed || mode_wrong) {
    if (auto s = write_file_atomic(path, *merged, 0600); !s) {
      log::error(s.error().message());
      return kExitFailed;
    }
    say("configuration: " + std::string(*existing ? "updated " : "wrote ") + path);
  } else {
    say("configuration: " + path + " unchanged");
  }
  for (const auto& [dir, mode] : {std::pair{config.paths.state, 0700u}, std::pair{config.paths.machines, 0700u},
                                  std::pair{config.paths.cache, 0755u}}) {
    if (auto s = make_dirs(dir, mode); !s) {
      log::error(s.error().message());
      return kExitFailed;
    }
  }

  // 5. The agent service.
  std::unique_ptr<SystemdControl> sd;
  bool unit_changed = false;
  if (with_systemd) {
    auto service = install_service(config);
    if (!service) {
      log::error(service.error().message());
      return kExitFailed;
    }
    sd = std::move(service->first);
    unit_changed = service->second;
  }

  // 6. The first apply, here, so its progress and result are seen.
  say("first apply");
  auto rc = first_apply(inv, config);
  if (!rc) return kExitFailed;

  // 7. The agent itself; a changed unit is restarted to run the new binary.
  if (sd) {
    auto active = sd->active_state("farmhand.service");
    Status started = unit_changed || !active || *active != "active" ? sd->restart_unit("farmhand.service")
                                                                    : Status{};
    if (!started) {
      log::error(started.error().message());
      return kExitFailed;
    }
    say("service: farmhand.service running");
  } else {
    say("service: no systemd as PID 1 here, so farmhand.service is not installed; run `farmhand daemon` "
        "to keep the host reconciled and reporting");
  }
  if (*rc != kExitOk) {
    log::error("enrolled, but the first apply did not succeed: fix the problem above and run `farmhand apply`");
    return *rc;
  }
  std::printf("Enrolled %s%s.\n", host_hostname().c_str(), config.server ? (" with " + config.server->url).c_str() : "");
  return kExitOk;
}

}  // namespace farmhand::agent
