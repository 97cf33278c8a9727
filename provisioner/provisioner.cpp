#include "provisioner/provisioner.h"

#include <unistd.h>

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/hash.h"
#include "common/log.h"
#include "provisioner/base_image.h"
#include "provisioner/clone.h"
#include "provisioner/command_runner.h"
#include "provisioner/payload.h"
#include "provisioner/unit_file.h"

namespace farmhand::provisioner {

namespace {

std::string unit_of(const std::string& name) { return "systemd-nspawn@" + name + ".service"; }

fs::path nearest_existing(fs::path p) {
  while (!p.empty() && !path_exists(p) && p != p.parent_path()) p = p.parent_path();
  return p;
}

// Creates or corrects a symlink atomically.
Status ensure_symlink(const fs::path& link, const std::string& target) {
  std::error_code ec;
  if (fs::is_symlink(link, ec) && fs::read_symlink(link, ec).string() == target) return {};
  if (auto s = make_dirs(link.parent_path()); !s) return s;
  const fs::path tmp = link.parent_path() / ("." + link.filename().string() + ".farmhand-tmp");
  ::unlink(tmp.c_str());
  if (::symlink(target.c_str(), tmp.c_str()) != 0) {
    return fail("cannot create symlink '" + tmp.string() + "': " + errno_text(errno));
  }
  return rename_durable(tmp, link);
}

}  // namespace

struct Provisioner::Impl {
  AgentConfig config;
  const RecipeBook& recipes;
  HostRoot root;
  CommandRunner commands;
  Cloner cloner;
  BaseImages images;
  SystemdControl* systemd;
  std::string host_hostname;
  std::optional<StateStore> state;
  std::optional<CloneMethod> detected;
  ProcessRunner& process_runner;
  std::string helper_exe;
  std::function<std::optional<pid_t>(const std::string&)> leader_of;

  Impl(AgentConfig c, const RecipeBook& r, HostRoot h, ProcessRunner& runner, SystemdControl* sd,
       std::string hn)
      : config(std::move(c)),
        recipes(r),
        root(std::move(h)),
        commands(runner),
        cloner(commands),
        images(root.map(config.paths.cache + "/images"), commands),
        systemd(sd),
        host_hostname(std::move(hn)),
        process_runner(runner) {
    std::error_code ec;
    helper_exe = fs::read_symlink("/proc/self/exe", ec).string();
  }

  std::optional<pid_t> leader(const std::string& name) {
    if (leader_of) return leader_of(name);
    if (systemd == nullptr) return std::nullopt;
    auto l = systemd->machine_leader(name);
    if (l && *l) return **l;
    return std::nullopt;
  }

  // Whether apply has payload to look at: declared, or left by an earlier apply.
  bool payload_work() {
    for (const auto& spec : config.containers) {
      if (has_payload(spec)) return true;
    }
    if (!state) return false;
    auto any = state->any_payload();
    return !any || *any;
  }

  std::map<std::string, std::string> template_vars(const ContainerLayout& l) const {
    std::map<std::string, std::string> v = {{"container", l.spec.name},
                                            {"hostname", l.hostname},
                                            {"host", host_hostname},
                                            {"server_url", config.server ? config.server->url : ""},
                                            {"user", kBuildUser},
                                            {"home", std::string("/home/") + kBuildUser},
                                            {"address", ""},
                                            {"gateway", ""},
                                            {"subnet", ""}};
    if (l.spec.network.mode == NetworkMode::kVeth) {
      v["address"] = l.subnet.host(kContainerOffset);
      v["gateway"] = l.subnet.host(kGatewayOffset);
      v["subnet"] = l.subnet.str();
    }
    return v;
  }

  Result<bool> payload(ApplyReporter& rep, int64_t apply_id, const ContainerLayout& l) {
    const std::string& n = l.spec.name;
    PayloadTarget target;
    target.layout = &l;
    target.tree = host(l.machine_dir);
    target.leader = leader(n);
    target.vars = template_vars(l);
    target.host_root = root.map("/");
    if (l.clone_method == CloneMethod::kOverlay && !is_mount_point(target.tree)) {
      if (auto s = cloner.mount_overlay(host(l.base_dir), target.tree, host(l.overlay_dir)); !s) return s.error();
    }
    // What `status` shows while it runs and after: the item at work, and
    // the one that failed.
    auto now_ms = [] {
      return std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
          .count();
    };
    // Written only when something happens: an apply with nothing to do
    // leaves state.db as it was (and costs no commit).
    std::string current;
    PayloadHooks hooks;
    hooks.started = [&](const std::string& what) {
      current = what;
      (void)state->put_payload_status(n, {"running", what, "", now_ms()});
      rep.step_started(n, what);
    };
    hooks.heartbeat = [&](std::string_view text) {
      log::info("[", n, "] ", text);
      rep.step_heartbeat(n, text);
    };
    hooks.warning = [&](std::string_view text) {
      log::warning("[", n, "] ", text);
      rep.warning(n, text);
    };
    hooks.step = [&](const std::string& what, std::chrono::milliseconds elapsed, const Status& result) {
      auto entry = state->journal_begin(apply_id, n, what);
      if (entry) (void)state->journal_end(*entry, result.ok(), result.ok() ? "" : result.error().message());
      rep.step_finished(n, what, elapsed, result);
    };
    hooks.output = [&](std::string_view line) {
      log::info("[", n, "] ", line);
      rep.step_output(n, line);
    };
    PayloadApplier applier(*state, process_runner, helper_exe, root.map("/run/farmhand/git"));
    auto r = applier.apply(target, hooks);
    if (!r) {
      (void)state->put_payload_status(n, {"failed", current, r.error().message(), now_ms()});
      return r.error();
    }
    auto before = state->payload_status(n);
    if (!current.empty() || !before || !*before || (*before)->state != "ok") {
      (void)state->put_payload_status(n, {"ok", "", "", now_ms()});
    }
    return r->changed;
  }


  fs::path host(const std::string& logical) const { return root.map(logical); }
  fs::path state_db_path() const { return host(config.paths.state + "/state.db"); }

  // Opens state.db, creating it, for commands that change things.
  Status open_state() {
    if (state) return {};
    if (auto s = make_dirs(host(config.paths.state), 0700); !s) return s;
    auto st = StateStore::open(state_db_path());
    if (!st) return st.error();
    state.emplace(std::move(*st));
    return {};
  }

  // Opens state.db only if it exists: planning must not create anything.
  Status open_state_if_present() {
    if (state || !path_exists(state_db_path())) return {};
    return open_state();
  }

  CloneMethod method_for_new_container() {
    if (config.clone_method != CloneMethod::kAuto) return config.clone_method;
    if (!detected) {
      detected = detect_clone_method(nearest_existing(host(config.paths.cache + "/images")),
                                     nearest_existing(host(config.paths.machines)));
    }
    return *detected;
  }

  std::string mirror_for(const std::string& distro) const {
    auto it = config.mirrors.find(distro);
    return it == config.mirrors.end() ? "" : it->second;
  }

  struct Desired {
    std::vector<ContainerLayout> layouts;
    HostNetworkLayout host_network;
    std::vector<std::string> conflicts;
  };

  NetworkChoice network_choice() {
    bool any_veth = std::any_of(config.containers.begin(), config.containers.end(),
                                [](const ContainerSpec& s) { return s.network.mode == NetworkMode::kVeth; });
    return choose_network(config, observe_host_facts(root), any_veth);
  }

  Result<Desired> desired(const std::map<std::string, ContainerRecord>& records) {
    Desired out;
    std::map<std::string, Cidr> previous;
    if (state) {
      auto s = state->subnets();
      if (!s) return s.error();
      previous = std::move(*s);
    }
    std::vector<std::pair<std::string, std::optional<Cidr>>> wanted;
    for (const auto& spec : config.containers) {
      if (spec.network.mode == NetworkMode::kVeth) wanted.emplace_back(spec.name, spec.network.subnet);
    }
    Assignment assignment = assign_subnets(config.pool, config.subnet_prefix, wanted, previous);
    const NetworkChoice choice = network_choice();
    for (const auto& c : choice.conflicts) out.conflicts.push_back("host network: " + c);
    std::vector<VethContainer> veths;
    for (const auto& name : assignment.exhausted) {
      out.conflicts.push_back("container \"" + name + "\": the network pool " + config.pool.str() +
                              " has no free /" + std::to_string(config.subnet_prefix) + " left");
    }
    for (const auto& spec : config.containers) {
      Cidr subnet_of_container;  // none for macvlan and ipvlan
      if (spec.network.mode == NetworkMode::kVeth) {
        auto subnet = assignment.subnets.find(spec.name);
        if (subnet == assignment.subnets.end()) continue;
        subnet_of_container = subnet->second;
      }
      auto recipe = recipes.resolve(spec.distro, spec.release);
      if (!recipe) return recipe.error();
      CloneMethod method;
      auto rec = records.find(spec.name);
      if (rec != records.end() && rec->second.phase != Phase::kDestroying &&
          parse_clone_method(rec->second.clone_method)) {
        method = *parse_clone_method(rec->second.clone_method);  // a clone keeps its method
      } else {
        method = method_for_new_container();
      }
      if (spec.network.mode != NetworkMode::kVeth && root.is_real_root() &&
          !path_exists(fs::path("/sys/class/net") / spec.network.link)) {
        out.conflicts.push_back("container \"" + spec.name + "\": this host has no network interface \"" +
                                spec.network.link + "\" for its " + std::string(to_string(spec.network.mode)) +
                                " link");
      }
      if (spec.network.mode == NetworkMode::kVeth) {
        veths.push_back({spec.name, subnet_of_container});
        if (choice.configure && !host_interface_exact(spec.name)) {
          out.conflicts.push_back("container \"" + spec.name +
                                  "\": the name is longer than 12 characters, so systemd shortens its host "
                                  "interface and farmhand cannot configure it as \"ve-" +
                                  spec.name + "\"; use a shorter name");
        }
      }
      out.layouts.push_back(
          make_layout(config, spec, *recipe, subnet_of_container, method, host_hostname, choice));
    }
    out.host_network = make_host_network(choice, config.pool, veths);
    // The host's udev rule for the devices of every container's rules.
    std::vector<udev::DeviceMatch> matches;
    for (const auto& spec : config.containers) {
      for (const auto& rule : spec.devices) matches.push_back(rule.match);
    }
    const std::string rules_file = udev::kHostUdevRulesFile;
    out.host_network.owned.emplace_back(rules_file.substr(0, rules_file.rfind('/')),
                                        rules_file.substr(rules_file.rfind('/') + 1));
    if (!matches.empty()) out.host_network.files[rules_file] = udev::render_host_udev_rules(matches, kManagedHeader);
    return out;
  }

  ObservedContainer observe(const ContainerLayout* want, const std::optional<ContainerRecord>& rec) {
    ObservedContainer o;
    o.record = rec;
    if (want == nullptr) return o;
    const fs::path machine = host(want->machine_dir);
    if (want->clone_method == CloneMethod::kOverlay) {
      o.overlay_mounted = is_mount_point(machine);
      o.machine_dir_exists = path_exists(host(want->overlay_dir) / "upper");
    } else {
      o.machine_dir_exists = path_exists(machine);
    }
    for (const auto& [path, content] : want->host_files) {
      auto r = read_file_if_exists(host(path));
      o.host_files[path] = r ? *r : std::nullopt;
    }
    bool readable = o.machine_dir_exists &&
                    (want->clone_method != CloneMethod::kOverlay || o.overlay_mounted);
    for (const auto& [rel, content] : want->container_files) {
      std::optional<std::string> have;
      if (readable) {
        auto r = read_file_in_root(machine, rel);
        if (r) have = *r;
      }
      o.container_files[rel] = have;
    }
    std::error_code ec;
    for (const auto& [link, target] : want->links) {
      const fs::path p = host(link);
      o.links[link] = fs::is_symlink(p, ec) ? std::optional(fs::read_symlink(p, ec).string())
                                            : std::nullopt;
    }
    o.stray_boot_link = !want->spec.boot && fs::is_symlink(host(want->boot_link), ec);
    if (readable) o.missing_user_groups = build_user_missing_groups(machine, want->build_user_groups);
    return o;
  }

  // The record of a container farmhand manages; an error for any other name.
  Result<ContainerRecord> managed_record(const std::string& name) {
    if (auto s = open_state_if_present(); !s) return s.error();
    std::optional<ContainerRecord> rec;
    if (state) {
      auto r = state->container(name);
      if (!r) return r.error();
      rec = *r;
    }
    if (!rec) return fail("no container named \"" + name + "\" is managed by farmhand");
    return *rec;
  }

  // The subnets state.db holds, by container; none before the first apply.
  Result<std::map<std::string, Cidr>> subnets() {
    if (!state) return std::map<std::string, Cidr>{};
    return state->subnets();
  }

  Result<std::map<std::string, ContainerRecord>> records() {
    std::map<std::string, ContainerRecord> out;
    if (!state) return out;
    auto all = state->containers();
    if (!all) return all.error();
    for (auto& r : *all) out[r.name] = std::move(r);
    return out;
  }

  Result<Plan> make_plan() {
    if (auto s = open_state_if_present(); !s) return s.error();
    auto recs = records();
    if (!recs) return recs.error();
    auto want = desired(*recs);
    if (!want) return want.error();
    std::map<std::string, ObservedContainer> observed;
    for (const auto& l : want->layouts) {
      auto rec = recs->find(l.spec.name);
      observed[l.spec.name] = observe(&l, rec == recs->end() ? std::nullopt
                                                             : std::optional(rec->second));
    }
    for (const auto& [name, rec] : *recs) {
      if (observed.count(name) == 0) observed[name] = observe(nullptr, rec);
    }
    Plan plan = compute_plan(want->layouts, observed);
    for (auto& c : want->conflicts) plan.conflicts.push_back(std::move(c));
    plan.host_network = want->host_network;
    plan.host_change = plan_host_network(want->host_network, observe_host_network(want->host_network));
    return plan;
  }

  ObservedHostNetwork observe_host_network(const HostNetworkLayout& want) {
    ObservedHostNetwork o;
    for (const auto& [path, content] : want.files) {
      auto r = read_file_if_exists(host(path));
      o.files[path] = r ? *r : std::nullopt;
    }
    for (const auto& [dir, prefix] : want.owned) {
      std::error_code ec;
      for (const auto& entry : fs::directory_iterator(host(dir), ec)) {
        const std::string name = entry.path().filename().string();
        if (name.rfind(prefix, 0) != 0 || !entry.is_regular_file(ec)) continue;
        auto text = read_file_if_exists(entry.path());
        if (text && *text && (*text)->find(kManagedHeader) != std::string::npos) o.managed.push_back(dir + "/" + name);
      }
    }
    std::sort(o.managed.begin(), o.managed.end());
    return o;
  }

  // The plain backend relies on the kernel forwarding IPv4, which
  // /etc/sysctl.d sets at boot where systemd-sysctl can (not in a
  // container host); every apply makes sure of it at run time.
  static constexpr const char* kIpForwardKnob = "/proc/sys/net/ipv4/ip_forward";

  bool ip_forward_off(const NetworkChoice& c) const {
    if (systemd == nullptr || !c.configure || c.backend != NetworkBackend::kPlain) return false;
    auto now = read_file(kIpForwardKnob);
    return !now || now->rfind("1", 0) != 0;
  }

  Status ensure_ip_forward(ApplyReporter& rep, int64_t apply_id, const NetworkChoice& c) {
    if (!ip_forward_off(c)) return {};
    const char* knob = kIpForwardKnob;
    return step(rep, apply_id, "host", "enable IPv4 forwarding (it was off)", [&]() -> Status {
      FILE* f = std::fopen(knob, "we");
      if (f == nullptr) return fail(std::string("cannot open ") + knob + ": " + errno_text(errno));
      bool ok = std::fputs("1\n", f) >= 0;
      ok = std::fclose(f) == 0 && ok;
      if (!ok) return fail(std::string("cannot write ") + knob + ": " + errno_text(errno));
      return {};
    });
  }

  // Runs a host tool found on PATH; a failure carries its output.
  Status tool(const std::vector<std::string>& argv) {
    auto path = find_program(argv[0]);
    if (!path) return path.error();
    std::vector<std::string> full = argv;
    full[0] = *path;
    return commands.host(full, minimal_env(), {}, std::chrono::seconds(120));
  }

  bool link_exists(const std::string& ifname) const {
    return root.is_real_root() && path_exists(fs::path("/sys/class/net") / ifname);
  }

  // Writes and removes the host network files, then makes the running
  // daemons take them up. Without systemd (or under --root) only the files
  // are written: they take effect at the next boot.
  Status apply_host_network(const HostNetworkLayout& want, const HostNetworkChange& change) {
    for (const auto& path : change.write) {
      auto mode = want.modes.count(path) ? want.modes.at(path) : 0644u;
      if (auto s = write_file_atomic(host(path), want.files.at(path), mode); !s) return s;
    }
    for (const auto& path : change.remove) {
      if (auto s = remove_tree(host(path)); !s) return s;
    }
    if (systemd == nullptr) return {};
    std::set<std::string> touched(change.write.begin(), change.write.end());
    touched.insert(change.remove.begin(), change.remove.end());
    auto any = [&](const std::string& dir_or_file) {
      return std::any_of(touched.begin(), touched.end(),
                         [&](const std::string& p) { return p.rfind(dir_or_file, 0) == 0; });
    };
    const NetworkChoice& c = want.choice;

    if (any(kNftFile)) {
      if (want.files.count(kNftFile)) {
        if (auto s = tool({"nft", "-f", kNftFile}); !s) return s;
      } else {
        (void)tool({"nft", "delete", "table", "inet", "farmhand"});
        (void)tool({"nft", "delete", "table", "ip", "farmhand_nat"});
      }
    }
    if (any(kFirewalldZoneDir) || any(kFirewalldPolicyDir)) {
      if (auto s = tool({"firewall-cmd", "--reload"}); !s) return s;
    }
    if (any(kResolvedConfFile)) {
      auto st = systemd->active_state("systemd-resolved.service");
      if (st && *st == "active") {
        if (auto s = systemd->restart_unit("systemd-resolved.service"); !s) return s;
      }
    }
    if (c.backend == NetworkBackend::kNetworkManager && (any(kNmConfFile) || any(kNmConnectionDir))) {
      if (any(kNmConfFile)) {
        if (auto s = tool({"nmcli", "general", "reload", "conf"}); !s) return s;
      }
      if (auto s = tool({"nmcli", "connection", "reload"}); !s) return s;
      for (const auto& path : change.write) {
        if (path.rfind(kNmConnectionDir, 0) != 0) continue;
        // NetworkManager skips a keyfile it does not like without failing
        // the reload: make sure it has the connection now.
        const std::string id = fs::path(path).stem().string();
        if (auto s = tool({"nmcli", "-g", "connection.id", "connection", "show", id}); !s) {
          return fail("NetworkManager did not load " + path + " (see its log): " + s.error().message());
        }
        // A running container's link is taken over now; a new one is
        // connected automatically when it appears.
        std::string name = id.substr(std::string("nm-ve-").size());
        if (!link_exists(host_interface(name))) continue;
        if (auto s = tool({"nmcli", "--wait", "30", "connection", "up", nm_connection_name(name)}); !s) return s;
      }
    }
    if (any(udev::kHostUdevRulesFile) && find_program("udevadm")) {
      if (auto s = tool({"udevadm", "control", "--reload"}); !s) {
        log::warning("udev rules not reloaded (", s.error().message(), "): they apply from the next boot");
      }
    }
    if (c.backend == NetworkBackend::kNetworkd && any(kNetworkdDir)) {
      if (auto s = tool({"networkctl", "reload"}); !s) return s;
    }
    return {};
  }

  // --- steps -------------------------------------------------------------

  Status step(ApplyReporter& rep, int64_t apply_id, const std::string& name,
              const std::string& what, const std::function<Status()>& body) {
    rep.step_started(name, what);
    const auto t0 = std::chrono::steady_clock::now();
    auto entry = state->journal_begin(apply_id, name, what);
    if (!entry) return entry.error();
    Status s = body();
    (void)state->journal_end(*entry, s.ok(), s.ok() ? "" : s.error().message());
    rep.step_finished(name, what,
                      std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now() - t0),
                      s);
    return s;
  }

  Status configure_tree(const ContainerLayout& l) {
    const fs::path tree = host(l.machine_dir);
    auto id = read_file_in_root(tree, "etc/machine-id");
    if (!id) return id.error();
    std::string current = id->value_or("");
    if (current.empty() || current == "\n" || current.rfind("uninitialized", 0) == 0) {
      if (auto s = write_file_in_root(tree, "etc/machine-id", random_id128_hex() + "\n", 0444); !s) {
        return s;
      }
    }
    for (const auto& [rel, content] : l.container_files) {
      auto have = read_file_in_root(tree, rel);
      if (have && *have == content) continue;
      auto mode = l.file_modes.count(rel) ? l.file_modes.at(rel) : 0644u;
      if (auto s = write_file_in_root(tree, rel, content, mode); !s) return s;
    }
    if (!tree_has_build_user(tree)) {
      auto recipe = recipes.resolve(l.spec.distro, l.spec.release);
      if (!recipe) return recipe.error();
      auto argv = expand_argv(recipe->create_user.argv, {});
      if (!argv) return argv.error();
      if (auto s = commands.in_tree(tree.string(), *argv, recipe->create_user.env,
                                    CommandRunner::Dns::kNone);
          !s) {
        return s;
      }
    }
    // The build user joins the groups its device nodes are given to, so it
    // can open them. The files are edited (atomically) rather than usermod
    // run: the container may be running.
    if (auto s = add_build_user_to_groups(tree, build_user_missing_groups(tree, l.build_user_groups)); !s) {
      return s;
    }
    if (path_exists(tree / "usr/sbin/sshd") && !path_exists(tree / "etc/ssh/ssh_host_ed25519_key")) {
      if (auto s = commands.in_tree(tree.string(), {"ssh-keygen", "-A"}, {}, CommandRunner::Dns::kNone);
          !s) {
        return s;
      }
    }
    return {};
  }

  // Adds the build user to `groups` in the tree's /etc/group, creating a
  // missing group as a system group. Membership is what the kernel checks
  // when the user opens a node; /etc/gshadow (for newgrp) is left alone.
  Status add_build_user_to_groups(const fs::path& tree, const std::vector<std::string>& groups) {
    if (groups.empty()) return {};
    for (const char* file : {"etc/group"}) {
      auto text = read_file_in_root(tree, file);
      if (!text) return text.error();
      if (!text->has_value()) continue;
      std::vector<std::string> lines;
      std::istringstream in(**text);
      std::string line;
      std::set<unsigned> gids;
      while (std::getline(in, line)) lines.push_back(line);
      for (const auto& l : lines) {
        auto a = l.find(':');
        auto b = a == std::string::npos ? a : l.find(':', a + 1);
        auto c = b == std::string::npos ? b : l.find(':', b + 1);
        if (c != std::string::npos) gids.insert(static_cast<unsigned>(std::atoi(l.substr(b + 1, c - b - 1).c_str())));
      }
      for (const auto& g : groups) {
        bool found = false;
        for (auto& l : lines) {
          if (l.rfind(g + ":", 0) != 0) continue;
          found = true;
          const char last = l.empty() ? ':' : l.back();
          l += last == ':' ? std::string(kBuildUser) : "," + std::string(kBuildUser);
        }
        if (!found) {
          unsigned gid = 999;
          while (gid > 100 && gids.count(gid)) --gid;
          gids.insert(gid);
          lines.push_back(g + ":x:" + std::to_string(gid) + ":" + kBuildUser);
        }
      }
      std::string out;
      for (const auto& l : lines) out += l + "\n";
      if (auto w = write_file_in_root(tree, file, out, 0644); !w) return w;
    }
    return {};
  }

  Status write_host_files(const ContainerLayout& l) {
    for (const auto& [path, content] : l.host_files) {
      auto have = read_file_if_exists(host(path));
      if (have && *have == content) continue;
      if (auto s = write_file_atomic(host(path), content, 0644); !s) return s;
    }
    for (const auto& [link, target] : l.links) {
      if (auto s = ensure_symlink(host(link), target); !s) return s;
    }
    if (l.spec.boot) {
      // machines.target pulls the containers in at boot; Debian enables it,
      // but an admin may have disabled it.
      if (auto s = ensure_symlink(host(config.paths.systemd + "/multi-user.target.wants/machines.target"),
                                  "/lib/systemd/system/machines.target");
          !s) {
        return s;
      }
    } else if (auto s = remove_tree(host(l.boot_link)); !s) {
      return s;
    }
    return {};
  }

  Status start_if_wanted(const ContainerLayout& l) {
    if (systemd == nullptr) return {};
    if (auto s = systemd->daemon_reload(); !s) return s;
    if (!l.spec.boot) return {};
    auto st = systemd->active_state(unit_of(l.spec.name));
    if (!st) return st.error();
    if (*st == "active" || *st == "activating") return {};
    return systemd->start_unit(unit_of(l.spec.name));
  }

  Status record(const ContainerLayout& l, Phase phase) {
    ContainerRecord r;
    r.name = l.spec.name;
    r.spec_json = spec_json(l.spec);
    r.base_key = l.base.key();
    r.clone_method = std::string(to_string(l.clone_method));
    r.phase = phase;
    return state->put_container(r);
  }

  Status create(ApplyReporter& rep, int64_t apply_id, const ContainerLayout& l) {
    const std::string& n = l.spec.name;
    if (auto s = record(l, Phase::kCreating); !s) return s;
    fs::path base_dir;
    std::string base_step = "base " + l.base.distro + "/" + l.base.release + "/" + l.base.arch +
                            " (" + l.base.key() + ")";
    if (!images.ready(l.base)) base_step += ": building";
    if (auto s = step(rep, apply_id, n, base_step, [&]() -> Status {
          auto recipe = recipes.resolve(l.spec.distro, l.spec.release);
          if (!recipe) return recipe.error();
          auto dir = images.ensure(l.base, *recipe, mirror_for(l.spec.distro),
                                   [&](std::string_view line) { rep.step_output(n, line); });
          if (!dir) return dir.error();
          base_dir = *dir;
          return {};
        });
        !s) {
      return s;
    }
    if (auto s = step(rep, apply_id, n, "clone (" + std::string(to_string(l.clone_method)) + ")",
                      [&] {
                        return cloner.clone(l.clone_method, base_dir, host(l.machine_dir),
                                            host(l.overlay_dir));
                      });
        !s) {
      return s;
    }
    return finish(rep, apply_id, l);
  }

  // The steps create and update share.
  Status finish(ApplyReporter& rep, int64_t apply_id, const ContainerLayout& l) {
    const std::string& n = l.spec.name;
    if (l.clone_method == CloneMethod::kOverlay) {
      if (auto s = cloner.mount_overlay(host(l.base_dir), host(l.machine_dir), host(l.overlay_dir));
          !s) {
        return s;
      }
    }
    if (auto s = step(rep, apply_id, n, "configure container", [&] { return configure_tree(l); });
        !s) {
      return s;
    }
    if (auto s = step(rep, apply_id, n, "write host files", [&] { return write_host_files(l); }); !s) {
      return s;
    }
    if (systemd != nullptr) {
      if (auto s = step(rep, apply_id, n, "start " + unit_of(n), [&] { return start_if_wanted(l); });
          !s) {
        return s;
      }
      // The drop-in's start commands run at the next start; a container
      // already running gets them now.
      DropinNetworkLines net = dropin_network_lines(l.network, n, l.subnet);
      if (l.spec.network.mode == NetworkMode::kVeth && !net.exec_start_post.empty() &&
          link_exists(host_interface(n))) {
        if (auto s = step(rep, apply_id, n, "configure " + host_interface(n), [&]() -> Status {
              for (const auto& argv : net.exec_start_post) {
                if (auto r = commands.host(argv, minimal_env(), {}, std::chrono::seconds(60)); !r) return r;
              }
              return {};
            });
            !s) {
          return s;
        }
      }
    }
    return record(l, Phase::kReady);
  }

  Status destroy(ApplyReporter& rep, int64_t apply_id, const ContainerRecord& rec) {
    const std::string& n = rec.name;
    if (auto s = state->set_phase(n, Phase::kDestroying); !s) return s;
    if (systemd != nullptr) {
      if (auto s = step(rep, apply_id, n, "stop " + unit_of(n), [&] {
            return systemd->stop_unit(unit_of(n));
          });
          !s) {
        return s;
      }
    }
    const std::string machine = config.paths.machines + "/" + n;
    if (auto s = step(rep, apply_id, n, "remove host files", [&]() -> Status {
          const std::string mount_unit = escape_unit_path(machine) + ".mount";
          for (const std::string& p :
               {config.paths.systemd + "/machines.target.wants/" + unit_of(n),
                config.paths.systemd + "/local-fs.target.wants/" + mount_unit,
                config.paths.systemd + "/" + unit_of(n) + ".d",
                config.paths.nspawn + "/" + n + ".nspawn",
                config.paths.systemd + "/" + mount_unit}) {
            if (auto r = remove_tree(host(p)); !r) return r;
          }
          if (systemd != nullptr) return systemd->daemon_reload();
          return {};
        });
        !s) {
      return s;
    }
    auto method = parse_clone_method(rec.clone_method).value_or(CloneMethod::kCopy);
    if (auto s = step(rep, apply_id, n, "remove root filesystem", [&] {
          return cloner.remove(method, host(machine), host(config.paths.state + "/overlay/" + n));
        });
        !s) {
      return s;
    }
    return state->delete_container(n);
  }
};

Provisioner::Provisioner(AgentConfig config, const RecipeBook& recipes, HostRoot root,
                         ProcessRunner& runner, SystemdControl* systemd, std::string host_hostname)
    : impl_(std::make_unique<Impl>(std::move(config), recipes, std::move(root), runner, systemd,
                                   std::move(host_hostname))) {}

Provisioner::~Provisioner() = default;

Result<Plan> Provisioner::plan() { return impl_->make_plan(); }

Result<std::vector<Provisioner::PayloadPlan>> Provisioner::payload_plan(bool fetch) {
  auto plan = impl_->make_plan();
  if (!plan) return plan.error();
  std::vector<PayloadPlan> out;
  for (const auto& c : plan->changes) {
    if (!c.layout || !has_payload(c.layout->spec)) continue;
    PayloadPlan pp;
    pp.container = c.name;
    if (c.action == Action::kCreate || c.action == Action::kReplace || !impl_->state) {
      pp.new_container = true;
      out.push_back(std::move(pp));
      continue;
    }
    const ContainerLayout& l = *c.layout;
    PayloadTarget target;
    target.layout = &l;
    target.tree = impl_->host(l.machine_dir);
    target.leader = impl_->leader(c.name);
    target.vars = impl_->template_vars(l);
    auto last = impl_->state->payload_status(c.name);
    if (!last) return last.error();
    PayloadApplier applier(*impl_->state, impl_->process_runner, impl_->helper_exe,
                           impl_->root.map("/run/farmhand/git"));
    auto preview = applier.preview(target, fetch, *last);
    if (!preview) return preview.error().context(c.name);
    pp.preview = std::move(*preview);
    out.push_back(std::move(pp));
  }
  return out;
}

Result<std::vector<Provisioner::ServiceState>> Provisioner::payload_services() {
  std::vector<ServiceState> out;
  for (const auto& spec : impl_->config.containers) {
    bool any = false;
    for (const auto& svc : spec.services) any = any || svc.enable;
    if (!any) continue;
    auto leader = impl_->leader(spec.name);
    if (!leader) continue;
    PayloadTarget target;
    target.tree = impl_->host(impl_->config.paths.machines + "/" + spec.name);
    target.leader = leader;
    for (const auto& svc : spec.services) {
      if (!svc.enable) continue;
      auto st = container_unit_state(impl_->process_runner, target, impl_->helper_exe, svc.name);
      if (!st) return st.error().context(spec.name + ": " + svc.name);
      out.push_back({spec.name, svc.name, *st});
    }
  }
  return out;
}

std::string Provisioner::service_journal(const std::string& container, const std::string& unit) {
  auto leader = impl_->leader(container);
  if (!leader) return "";
  PayloadTarget target;
  target.tree = impl_->host(impl_->config.paths.machines + "/" + container);
  target.leader = leader;
  return container_unit_journal(impl_->process_runner, target, impl_->helper_exe, unit);
}

bool Provisioner::applying() { return FileLock::held(impl_->host(impl_->config.paths.state + "/apply.lock")); }

Result<std::vector<std::string>> Provisioner::request_rebuild(const std::string& name, const std::string& step,
                                                              bool clean) {
  const ContainerSpec* spec = nullptr;
  for (const auto& s : impl_->config.containers) {
    if (s.name == name) spec = &s;
  }
  if (spec == nullptr) return fail("no container "" + name + "" in the configuration");
  if (spec->setup.empty()) return fail(name + " has no setup steps to rebuild");
  if (auto s = impl_->open_state(); !s) return s.error();
  auto lock = FileLock::acquire(impl_->host(impl_->config.paths.state + "/apply.lock"));
  if (!lock) return lock.error();
  PayloadApplier applier(*impl_->state, impl_->process_runner, impl_->helper_exe, impl_->root.map("/run/farmhand/git"));
  return applier.request_rebuild(*spec, step, clean);
}

std::string last_line(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ' || text.back() == '\r')) text.remove_suffix(1);
  const size_t nl = text.rfind('\n');
  if (nl != std::string_view::npos) text.remove_prefix(nl + 1);
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  return std::string(text);
}

std::string describe_payload(const ContainerStatus::Payload& p) {
  char when[32] = "";
  const time_t secs = static_cast<time_t>(p.time_ms / 1000);
  struct tm tm {};
  if (p.time_ms > 0 && ::localtime_r(&secs, &tm) != nullptr) std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
  // "setup lws-build" reads as "step lws-build".
  std::string item = p.item.starts_with("setup ") ? "step " + p.item.substr(6) : p.item;
  const std::string at = *when ? std::string(" at ") + when : "";
  if (p.state == "ok") return *when ? std::string("ok (") + when + ")" : "ok";
  if (p.state == "failed") return (item.empty() ? std::string("payload") : item) + " failed" + at + ": " + last_line(p.message);
  if (p.state == "running") {
    return "running" + (item.empty() ? std::string() : " " + item) + (*when ? std::string(" (since ") + when + ")" : "");
  }
  return "interrupted" + (item.empty() ? std::string() : " at " + item) + (*when ? std::string(" (") + when + ")" : "") +
         ": the next apply carries on";
}

Result<ApplyOutcome> Provisioner::apply(ApplyReporter& reporter) {
  // Plan under the lock: a concurrent apply must never act on a stale plan.
  std::optional<FileLock> lock;
  const fs::path state_dir = impl_->host(impl_->config.paths.state);
  if (path_exists(state_dir)) {
    auto l = FileLock::acquire(state_dir / "apply.lock");
    if (!l) return l.error();
    lock.emplace(std::move(*l));
  }
  auto planned = impl_->make_plan();
  if (!planned) return planned.error();
  ApplyOutcome outcome{std::move(*planned), {}, {}};
  const Plan& plan = outcome.plan;
  if (!plan.conflicts.empty()) {
    std::string all;
    for (const auto& c : plan.conflicts) all += (all.empty() ? "" : "\n") + c;
    return fail(all);
  }
  if (!plan.has_work() && !impl_->ip_forward_off(plan.host_network.choice) && !impl_->payload_work()) {
    return outcome;
  }
  if (auto s = impl_->open_state(); !s) return s.error();
  if (!lock) {
    auto l = FileLock::acquire(state_dir / "apply.lock");
    if (!l) return l.error();
    lock.emplace(std::move(*l));
  }
  auto apply_id = impl_->state->begin_apply();
  if (!apply_id) return apply_id.error();

  std::vector<std::string> failed;
  auto note_failure = [&](const std::string& name, const Status& s) {
    if (s) return;
    log::error("container \"", name, "\": ", s.error().message());
    failed.push_back(name);
  };
  // Destroys first: they free subnets and names the others may take.
  for (const auto& c : plan.changes) {
    if ((c.action == Action::kDestroy || c.action == Action::kReplace) && c.record) {
      note_failure(c.name, impl_->destroy(reporter, *apply_id, *c.record));
    }
  }
  std::map<std::string, Cidr> subnets;
  for (const auto& c : plan.changes) {
    if (c.layout && c.layout->spec.network.mode == NetworkMode::kVeth) subnets[c.name] = c.layout->subnet;
  }
  if (auto s = impl_->state->set_subnets(subnets); !s) return s.error();
  if (auto s = impl_->ensure_ip_forward(reporter, *apply_id, plan.host_network.choice); !s) {
    outcome.result = s;
    return outcome;
  }
  if (plan.host_change.has_work()) {
    const NetworkChoice& net = plan.host_network.choice;
    std::string what = net.configure ? "host network (" + std::string(to_string(net.backend)) + ", firewall " +
                                           std::string(to_string(net.firewall)) + ")"
                                     : "host network (no veth containers left)";
    Status s = impl_->step(reporter, *apply_id, "host", what, [&] {
      return impl_->apply_host_network(plan.host_network, plan.host_change);
    });
    if (!s) {
      // Containers started without their host network would come up
      // unreachable: stop here, nothing else was changed.
      log::error("host network: ", s.error().message());
      outcome.result = fail("the host network could not be configured: " + s.error().message());
      return outcome;
    }
  }
  for (const auto& c : plan.changes) {
    if (!c.layout || std::find(failed.begin(), failed.end(), c.name) != failed.end()) continue;
    switch (c.action) {
      case Action::kCreate:
      case Action::kReplace:
        note_failure(c.name, impl_->create(reporter, *apply_id, *c.layout));
        break;
      case Action::kUpdate:
        note_failure(c.name, impl_->finish(reporter, *apply_id, *c.layout));
        break;
      case Action::kDestroy:
      case Action::kUnchanged:
        break;
    }
  }
  // The payload of every container that exists, changed or not: sources
  // are fetched each time, and only what changed is redone.
  for (const auto& c : plan.changes) {
    if (!c.layout || c.action == Action::kDestroy ||
        std::find(failed.begin(), failed.end(), c.name) != failed.end()) {
      continue;
    }
    auto rec = impl_->state->container(c.name);
    if (!rec) return rec.error();
    if (!*rec || (*rec)->phase != Phase::kReady) continue;
    auto changed = impl_->payload(reporter, *apply_id, *c.layout);
    if (!changed) {
      note_failure(c.name, changed.error());
    } else if (*changed) {
      outcome.payload_changed.push_back(c.name);
    }
  }
  if (failed.empty()) return outcome;
  std::string names;
  for (const auto& n : failed) names += (names.empty() ? "\"" : ", \"") + n + "\"";
  outcome.result = fail(std::to_string(failed.size()) + " container(s) failed: " + names);
  return outcome;
}

Status Provisioner::destroy(const std::string& name, ApplyReporter& reporter) {
  auto rec = impl_->managed_record(name);
  if (!rec) return rec.error();
  auto lock = FileLock::acquire(impl_->host(impl_->config.paths.state + "/apply.lock"));
  if (!lock) return lock.error();
  auto apply_id = impl_->state->begin_apply();
  if (!apply_id) return apply_id.error();
  if (auto s = impl_->destroy(reporter, *apply_id, *rec); !s) return s;
  // Its host network entries go with it: what remains is the host network
  // of the containers that still hold a subnet.
  auto subnets = impl_->state->subnets();
  if (!subnets) return subnets.error();
  std::vector<VethContainer> veths;
  for (const auto& [n, cidr] : *subnets) veths.push_back({n, cidr});
  HostNetworkLayout want = make_host_network(impl_->network_choice(), impl_->config.pool, veths);
  HostNetworkChange change = plan_host_network(want, impl_->observe_host_network(want));
  if (!change.has_work()) return {};
  return impl_->step(reporter, *apply_id, "host", "host network", [&] {
    return impl_->apply_host_network(want, change);
  });
}

Result<std::vector<ContainerStatus>> Provisioner::status(std::chrono::milliseconds health_timeout) {
  if (auto s = impl_->open_state_if_present(); !s) return s.error();
  auto recs = impl_->records();
  if (!recs) return recs.error();
  auto subnets_held = impl_->subnets();
  if (!subnets_held) return subnets_held.error();
  const std::map<std::string, Cidr>& subnets = *subnets_held;
  std::vector<ContainerStatus> out;
  std::set<std::string> seen;
  auto fill = [&](ContainerStatus& cs, const std::string& json) {
    auto j = nlohmann::json::parse(json, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return;
    cs.distro = j.value("distro", "");
    cs.release = j.value("release", "");
    cs.arch = j.value("arch", "");
    cs.boot = j.value("boot", false);
    cs.network_mode = j.value("network_mode", "veth");
    cs.link = j.value("link", "");
  };
  for (const auto& [name, rec] : *recs) {
    ContainerStatus cs;
    cs.name = name;
    fill(cs, rec.spec_json);
    cs.state = std::string(to_string(rec.phase));
    cs.clone_method = rec.clone_method;
    if (rec.phase == Phase::kReady) {
      bool overlay = rec.clone_method == "overlay";
      fs::path data = overlay ? impl_->host(impl_->config.paths.state + "/overlay/" + name + "/upper")
                              : impl_->host(impl_->config.paths.machines + "/" + name);
      if (!path_exists(data)) cs.state = "missing";
    }
    if (auto it = subnets.find(name); it != subnets.end()) {
      cs.subnet = it->second.str();
      cs.address = it->second.host(kContainerOffset);
      cs.gateway = it->second.host(kGatewayOffset);
    }
    if (impl_->systemd != nullptr && cs.state == "ready") {
      auto active = impl_->systemd->active_state(unit_of(name));
      if (active) cs.state = *active == "active" ? "running" : "stopped";
    } else if (cs.state == "ready" && impl_->leader_of && impl_->leader_of(name)) {
      cs.state = "running";  // started by `farmhand run`, on a host without systemd
    }
    if (auto ps = impl_->state->payload_status(name); ps && *ps) {
      ContainerStatus::Payload pl;
      pl.state = (*ps)->state;
      pl.item = (*ps)->item;
      pl.message = (*ps)->message;
      pl.time_ms = (*ps)->updated_ms;
      // A payload left "running" by an apply that no longer holds the lock
      // was cut short (farmhand killed, the host rebooted).
      if (pl.state == "running" && !FileLock::held(impl_->host(impl_->config.paths.state + "/apply.lock"))) {
        pl.state = "interrupted";
      }
      cs.payload = std::move(pl);
    }
    if (auto payload = impl_->state->payload(name); payload) {
      const ContainerSpec* spec = nullptr;
      for (const auto& sp : impl_->config.containers) {
        if (sp.name == name) spec = &sp;
      }
      for (const auto& p : *payload) {
        if (p.kind != PayloadKind::kSource) continue;
        ContainerStatus::Source src{p.name, "", p.revision};
        if (spec) {
          for (const auto& s : spec->sources) {
            if (s.name == p.name) src.ref = s.ref;
          }
        }
        cs.sources.push_back(std::move(src));
      }
    }
    seen.insert(name);
    out.push_back(std::move(cs));
  }
  for (const auto& spec : impl_->config.containers) {
    if (seen.count(spec.name)) continue;
    ContainerStatus cs;
    cs.name = spec.name;
    fill(cs, spec_json(spec));
    cs.state = "planned";
    out.push_back(std::move(cs));
  }
  if (health_timeout.count() > 0) {
    auto health = network_health(health_timeout);
    if (!health) return health.error();
    for (auto& cs : out) {
      if (auto it = health->find(cs.name); it != health->end()) cs.health = it->second;
    }
  }
  return out;
}

NetworkChoice Provisioner::network_choice() { return impl_->network_choice(); }

void Provisioner::set_payload_runtime(std::string helper,
                                      std::function<std::optional<pid_t>(const std::string&)> leader_of) {
  if (!helper.empty()) impl_->helper_exe = std::move(helper);
  impl_->leader_of = std::move(leader_of);
}

Result<std::map<std::string, NetworkHealth>> Provisioner::network_health(std::chrono::milliseconds timeout) {
  std::map<std::string, NetworkHealth> out;
  // Without systemd, the containers `farmhand run` started (found through
  // leader_of) are checked the same way.
  if (impl_->systemd == nullptr && !impl_->leader_of) return out;
  if (auto s = impl_->open_state_if_present(); !s) return s.error();
  auto recs = impl_->records();
  if (!recs) return recs.error();
  auto subnets_held = impl_->subnets();
  if (!subnets_held) return subnets_held.error();
  const std::map<std::string, Cidr>& subnets = *subnets_held;
  std::vector<std::pair<std::string, pid_t>> running;
  for (const auto& [name, rec] : *recs) {
    if (rec.phase != Phase::kReady || subnets.count(name) == 0) continue;
    if (impl_->systemd == nullptr) {
      if (auto leader = impl_->leader_of(name)) running.emplace_back(name, *leader);
      continue;
    }
    auto leader = impl_->systemd->machine_leader(name);
    if (!leader) return leader.error();
    if (*leader) running.emplace_back(name, **leader);
  }
  // In parallel: a container still booting must not delay the others.
  std::vector<NetworkHealth> results(running.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < running.size(); ++i) {
    const std::string gateway = subnets.at(running[i].first).host(kGatewayOffset);
    threads.emplace_back([&results, i, pid = running[i].second, gateway, timeout] {
      results[i] = check_network_health(pid, gateway, timeout);
    });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < running.size(); ++i) out[running[i].first] = results[i];
  return out;
}

Result<std::vector<std::string>> Provisioner::start_boot_containers(ApplyReporter& reporter) {
  std::vector<std::string> started;
  if (impl_->systemd == nullptr) return started;
  if (auto s = impl_->open_state_if_present(); !s) return s.error();
  auto recs = impl_->records();
  if (!recs) return recs.error();
  for (const auto& [name, rec] : *recs) {
    if (rec.phase != Phase::kReady) continue;
    auto j = nlohmann::json::parse(rec.spec_json, nullptr, false);
    if (j.is_discarded() || !j.value("boot", false)) continue;
    auto st = impl_->systemd->active_state(unit_of(name));
    if (!st) return st.error();
    if (*st == "active" || *st == "activating") continue;
    const auto t0 = std::chrono::steady_clock::now();
    reporter.step_started(name, "start " + unit_of(name) + " (was " + *st + ")");
    Status s = impl_->systemd->start_unit(unit_of(name));
    reporter.step_finished(name, "start " + unit_of(name) + " (was " + *st + ")",
                           std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::steady_clock::now() - t0),
                           s);
    if (!s) return s.error();
    started.push_back(name);
  }
  return started;
}

Status Provisioner::control(const std::string& name, UnitAction action) {
  if (impl_->systemd == nullptr) {
    return fail("starting and stopping containers needs a host booted with systemd; use `farmhand run " + name +
                "` here");
  }
  auto rec = impl_->managed_record(name);
  if (!rec) return rec.error();
  if (rec->phase != Phase::kReady) {
    return fail("container \"" + name + "\" is not ready (" + std::string(to_string(rec->phase)) +
                "): run `farmhand apply` first");
  }
  switch (action) {
    case UnitAction::kStart: return impl_->systemd->start_unit(unit_of(name));
    case UnitAction::kStop: return impl_->systemd->stop_unit(unit_of(name));
    case UnitAction::kRestart: return impl_->systemd->restart_unit(unit_of(name));
  }
  return {};
}

Result<ContainerLayout> Provisioner::prepare_to_run(const std::string& name) {
  if (auto s = impl_->open_state_if_present(); !s) return s.error();
  auto recs = impl_->records();
  if (!recs) return recs.error();
  auto rec = recs->find(name);
  if (rec == recs->end() || rec->second.phase != Phase::kReady) {
    return fail("container \"" + name + "\" has not been created yet: run `farmhand apply` first");
  }
  auto want = impl_->desired(*recs);
  if (!want) return want.error();
  for (auto& l : want->layouts) {
    if (l.spec.name != name) continue;
    if (l.clone_method == CloneMethod::kOverlay) {
      if (auto s = impl_->cloner.mount_overlay(impl_->host(l.base_dir), impl_->host(l.machine_dir),
                                               impl_->host(l.overlay_dir));
          !s) {
        return s.error();
      }
    }
    return std::move(l);
  }
  return fail("no container named \"" + name + "\" in the configuration");
}

}  // namespace farmhand::provisioner
