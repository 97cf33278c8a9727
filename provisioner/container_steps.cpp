#include "provisioner/container_steps.h"

#include <unistd.h>

#include "common/etc_files.h"
#include "common/hash.h"
#include "common/log.h"
#include "provisioner/base_image.h"
#include "provisioner/desired.h"
#include "provisioner/payload.h"
#include "provisioner/payload_run.h"
#include "provisioner/unit_file.h"

namespace farmhand::provisioner {

namespace {

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

Status ContainerSteps::create(const ContainerLayout& l) {
  const std::string& n = l.spec.name;
  if (auto s = record(l, Phase::kCreating); !s) return s;
  fs::path base_dir;
  std::string base_step =
      "base " + l.base.distro + "/" + l.base.release + "/" + l.base.arch + " (" + l.base.key() + ")";
  if (!ctx_.images.ready(l.base)) base_step += ": building";
  if (auto s = journal_.run(n, base_step,
                            [&]() -> Status {
                              auto recipe = ctx_.recipes.resolve(l.spec.distro, l.spec.release);
                              if (!recipe) return recipe.error();
                              auto dir = ctx_.images.ensure(
                                  l.base, *recipe, ctx_.mirror_for(l.spec.distro),
                                  [&](std::string_view line) { journal_.reporter().step_output(n, line); });
                              if (!dir) return dir.error();
                              base_dir = *dir;
                              return {};
                            });
      !s) {
    return s;
  }
  if (auto s = journal_.run(n, "clone (" + std::string(to_string(l.clone_method)) + ")",
                            [&] {
                              return ctx_.cloner.clone(l.clone_method, base_dir, ctx_.host(l.machine_dir),
                                                       ctx_.host(l.overlay_dir));
                            });
      !s) {
    return s;
  }
  return finish(l);
}

Status ContainerSteps::finish(const ContainerLayout& l) {
  const std::string& n = l.spec.name;
  if (l.clone_method == CloneMethod::kOverlay) {
    if (auto s = ctx_.cloner.mount_overlay(ctx_.host(l.base_dir), ctx_.host(l.machine_dir), ctx_.host(l.overlay_dir));
        !s) {
      return s;
    }
  }
  if (auto s = journal_.run(n, "configure container", [&] { return configure_tree(l); }); !s) return s;
  if (auto s = journal_.run(n, "write host files", [&] { return write_host_files(l); }); !s) return s;
  if (ctx_.systemd != nullptr) {
    if (auto s = journal_.run(n, "start " + unit_of(n), [&] { return start_if_wanted(l); }); !s) return s;
    if (auto s = configure_host_interface(l); !s) return s;
  }
  return record(l, Phase::kReady);
}

// The drop-in's start commands run at the next start; a container already
// running gets them now.
Status ContainerSteps::configure_host_interface(const ContainerLayout& l) {
  const std::string& n = l.spec.name;
  DropinNetworkLines net = dropin_network_lines(l.network, n, l.subnet);
  const bool link_up = ctx_.root.is_real_root() && path_exists(fs::path("/sys/class/net") / host_interface(n));
  if (l.spec.network.mode != NetworkMode::kVeth || net.exec_start_post.empty() || !link_up) return {};
  return journal_.run(n, "configure " + host_interface(n), [&]() -> Status {
    for (const auto& argv : net.exec_start_post) {
      if (auto r = ctx_.commands.host(argv, minimal_env(), {}, std::chrono::seconds(60)); !r) return r;
    }
    return {};
  });
}

Status ContainerSteps::destroy(const ContainerRecord& rec) {
  const std::string& n = rec.name;
  const AgentConfig& config = ctx_.config;
  if (auto s = ctx_.state->set_phase(n, Phase::kDestroying); !s) return s;
  if (ctx_.systemd != nullptr) {
    if (auto s = journal_.run(n, "stop " + unit_of(n), [&] { return ctx_.systemd->stop_unit(unit_of(n)); }); !s) {
      return s;
    }
  }
  const std::string machine = config.paths.machines + "/" + n;
  if (auto s = journal_.run(n, "remove host files",
                            [&]() -> Status {
                              const std::string mount_unit = escape_unit_path(machine) + ".mount";
                              for (const std::string& p :
                                   {config.paths.systemd + "/machines.target.wants/" + unit_of(n),
                                    config.paths.systemd + "/local-fs.target.wants/" + mount_unit,
                                    config.paths.systemd + "/" + unit_of(n) + ".d",
                                    config.paths.nspawn + "/" + n + ".nspawn", config.paths.systemd + "/" + mount_unit}) {
                                if (auto r = remove_tree(ctx_.host(p)); !r) return r;
                              }
                              if (ctx_.systemd != nullptr) return ctx_.systemd->daemon_reload();
                              return {};
                            });
      !s) {
    return s;
  }
  auto method = parse_clone_method(rec.clone_method).value_or(CloneMethod::kCopy);
  if (auto s = journal_.run(n, "remove root filesystem",
                            [&] {
                              return ctx_.cloner.remove(method, ctx_.host(machine),
                                                        ctx_.host(config.paths.state + "/overlay/" + n));
                            });
      !s) {
    return s;
  }
  return ctx_.state->delete_container(n);
}

Status ContainerSteps::configure_tree(const ContainerLayout& l) {
  const fs::path tree = ctx_.host(l.machine_dir);
  auto id = read_file_in_root(tree, "etc/machine-id");
  if (!id) return id.error();
  std::string current = id->value_or("");
  if (current.empty() || current == "\n" || current.rfind("uninitialized", 0) == 0) {
    if (auto s = write_file_in_root(tree, "etc/machine-id", random_id128_hex() + "\n", 0444); !s) return s;
  }
  for (const auto& [rel, content] : l.container_files) {
    auto have = read_file_in_root(tree, rel);
    if (have && *have == content) continue;
    auto mode = l.file_modes.count(rel) ? l.file_modes.at(rel) : 0644u;
    if (auto s = write_file_in_root(tree, rel, content, mode); !s) return s;
  }
  if (!tree_has_build_user(tree)) {
    auto recipe = ctx_.recipes.resolve(l.spec.distro, l.spec.release);
    if (!recipe) return recipe.error();
    auto argv = expand_argv(recipe->create_user.argv, {});
    if (!argv) return argv.error();
    if (auto s = ctx_.commands.in_tree(tree.string(), *argv, recipe->create_user.env, CommandRunner::Dns::kNone); !s) {
      return s;
    }
  }
  // The build user joins the groups its device nodes are given to, so it
  // can open them. The files are edited (atomically) rather than usermod
  // run: the container may be running.
  if (auto s = add_build_user_to_groups(tree, build_user_missing_groups(tree, l.build_user_groups)); !s) return s;
  if (path_exists(tree / "usr/sbin/sshd") && !path_exists(tree / "etc/ssh/ssh_host_ed25519_key")) {
    if (auto s = ctx_.commands.in_tree(tree.string(), {"ssh-keygen", "-A"}, {}, CommandRunner::Dns::kNone); !s) {
      return s;
    }
  }
  return {};
}

Status ContainerSteps::write_host_files(const ContainerLayout& l) {
  for (const auto& [path, content] : l.host_files) {
    auto have = read_file_if_exists(ctx_.host(path));
    if (have && *have == content) continue;
    if (auto s = write_file_atomic(ctx_.host(path), content, 0644); !s) return s;
  }
  for (const auto& [link, target] : l.links) {
    if (auto s = ensure_symlink(ctx_.host(link), target); !s) return s;
  }
  if (l.spec.boot) {
    // machines.target pulls the containers in at boot; Debian enables it,
    // but an admin may have disabled it.
    return ensure_symlink(ctx_.host(ctx_.config.paths.systemd + "/multi-user.target.wants/machines.target"),
                          "/lib/systemd/system/machines.target");
  }
  return remove_tree(ctx_.host(l.boot_link));
}

Status ContainerSteps::start_if_wanted(const ContainerLayout& l) {
  if (ctx_.systemd == nullptr) return {};
  if (auto s = ctx_.systemd->daemon_reload(); !s) return s;
  if (!l.spec.boot) return {};
  auto st = ctx_.systemd->active_state(unit_of(l.spec.name));
  if (!st) return st.error();
  if (*st == "active" || *st == "activating") return {};
  return ctx_.systemd->start_unit(unit_of(l.spec.name));
}

Status ContainerSteps::record(const ContainerLayout& l, Phase phase) {
  ContainerRecord r;
  r.name = l.spec.name;
  r.spec_json = spec_json(l.spec);
  r.base_key = l.base.key();
  r.clone_method = std::string(to_string(l.clone_method));
  r.phase = phase;
  return ctx_.state->put_container(r);
}

Result<bool> ContainerSteps::payload(const ContainerLayout& l) {
  const std::string& n = l.spec.name;
  PayloadTarget target = payload_target(ctx_, l);
  target.host_root = ctx_.root.map("/");
  if (l.clone_method == CloneMethod::kOverlay && !is_mount_point(target.tree)) {
    if (auto s = ctx_.cloner.mount_overlay(ctx_.host(l.base_dir), target.tree, ctx_.host(l.overlay_dir)); !s) {
      return s.error();
    }
  }
  StateStore& state = *ctx_.state;
  ApplyReporter& rep = journal_.reporter();
  // What `status` shows while it runs and after: the item at work, and the
  // one that failed. Written only when something happens: an apply with
  // nothing to do leaves state.db as it was (and costs no commit).
  std::string current;
  PayloadHooks hooks;
  hooks.started = [&](const std::string& what) {
    current = what;
    (void)state.put_payload_status(n, {"running", what, "", ctx_.clock.wall_ms()});
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
    journal_.finished(n, what, elapsed, result);
  };
  hooks.output = [&](std::string_view line) {
    log::info("[", n, "] ", line);
    rep.step_output(n, line);
  };
  PayloadApplier applier = payload_applier(ctx_);
  auto r = applier.apply(target, hooks);
  if (!r) {
    (void)state.put_payload_status(n, {"failed", current, r.error().message(), ctx_.clock.wall_ms()});
    return r.error();
  }
  auto before = state.payload_status(n);
  if (!current.empty() || !before || !*before || (*before)->state != "ok") {
    (void)state.put_payload_status(n, {"ok", "", "", ctx_.clock.wall_ms()});
  }
  return r->changed;
}

Status add_build_user_to_groups(const fs::path& tree, const std::vector<std::string>& groups) {
  return etc::add_user_to_groups_in_root(tree, kBuildUser, groups);
}

}  // namespace farmhand::provisioner
