#include "agent/wiring.h"

#include <unistd.h>

#include <cstdio>

#include "agent/cli/commands.h"
#include "agent/runtime.h"
#include "provisioner/config_repo.h"
#include "common/fs.h"
#include "common/log.h"

namespace farmhand::agent {

using provisioner::AgentConfig;
using provisioner::ConfigLoad;
using provisioner::RecipeBook;

std::string host_hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

std::string config_path(const Invocation& inv) {
  if (!inv.config_file.empty()) return inv.config_file;
  return HostRoot(inv.root).map(provisioner::kDefaults.config_file).string();
}

const RecipeBook* recipes() {
  static auto book = RecipeBook::builtin();
  if (!book) {
    log::error("the built-in distro recipes are broken: ", book.error().message());
    return nullptr;
  }
  return &*book;
}

std::optional<AgentConfig> load_config(const std::string& path) {
  const RecipeBook* book = recipes();
  if (book == nullptr) return std::nullopt;
  ConfigLoad loaded = provisioner::load_config_file(path, *book);
  for (const auto& w : loaded.warnings) log::warning(path, ": ", w);
  for (const auto& e : loaded.errors) log::error(path, ": ", e);
  return loaded.config;
}

std::optional<AgentConfig> load_config(const Invocation& inv, std::string* commit) {
  const std::string path = config_path(inv);
  auto local = load_config(path);
  if (commit != nullptr) commit->clear();
  if (!local || !local->config_repo) return local;
  auto text = read_file(path);
  if (!text) {
    log::error(text.error().message());
    return std::nullopt;
  }
  ConfigLoad loaded = provisioner::load_config_with_repo(*text, *local, HostRoot(inv.root), *recipes(), commit);
  for (const auto& w : loaded.warnings) log::warning(path, ": ", w);
  for (const auto& e : loaded.errors) log::error(e);
  return loaded.config;
}

ConfigSync sync_config(const Invocation& inv) {
  ConfigSync out;
  const std::string path = config_path(inv);
  const RecipeBook* book = recipes();
  if (book == nullptr) return out;
  auto text = read_file(path);
  if (!text) return out;
  ConfigLoad local = provisioner::parse_config(*text, *book);
  if (!local.config || !local.config->config_repo) return out;
  out.configured = true;
  const provisioner::ConfigRepo& repo = *local.config->config_repo;
  auto synced = provisioner::sync_config_repo(*text, *local.config, HostRoot(inv.root), *book);
  if (!synced) {
    out.error = "cannot fetch the config repository: " + synced.error().message();
    out.summary = *out.error;
    log::error(out.summary);
    return out;
  }
  out.commit = synced->commit;
  out.changed = synced->changed;
  if (synced->rejected) {
    out.refused = true;
    out.error = "config refused, " +
                (synced->commit.empty() ? std::string("and no earlier config is in force")
                                        : provisioner::repo_label(repo, synced->commit) + " stays in force") +
                ":\n" + *synced->rejected;
    out.summary = *out.error;
    log::error(out.summary);
  } else if (synced->changed) {
    out.summary = "config " + synced->label + " accepted" +
                  (synced->previous.empty() ? std::string() : " (was " + synced->previous.substr(0, 12) + ")");
    log::notice(out.summary);
  } else {
    out.summary = "config " + synced->label + " is current";
    log::info(out.summary);
  }
  return out;
}

Result<std::unique_ptr<Wired>> wire(const Invocation& inv, AgentConfig config) {
  auto w = std::make_unique<Wired>();
  if (inv.root == "/" && host_booted_with_systemd()) {
    auto sd = connect_systemd();
    if (!sd) return sd.error();
    w->systemd = std::move(*sd);
  }
  w->provisioner = wire_over(inv, std::move(config), w->runner, w->systemd.get());
  return w;
}

std::unique_ptr<provisioner::Provisioner> wire_over(const Invocation& inv, AgentConfig config, ProcessRunner& runner,
                                                    SystemdControl* systemd) {
  auto p = std::make_unique<provisioner::Provisioner>(std::move(config), *recipes(), HostRoot(inv.root), runner,
                                                      systemd, host_hostname());
  // Setup steps run in a running container through its leader, also one
  // started by `farmhand run` on a host without systemd.
  auto locator = std::make_shared<ContainerLocator>(HostRoot(inv.root), systemd);
  p->set_payload_runtime("", [locator](const std::string& name) { return locator->leader(name); });
  return p;
}

bool has_flag(const Invocation& inv, const std::string& flag) {
  for (const auto& a : inv.args) {
    if (a == flag) return true;
  }
  return false;
}

bool expect_args(const Invocation& inv, size_t positional, const std::vector<std::string>& flags) {
  size_t count = 0;
  for (const auto& a : inv.args) {
    if (!a.empty() && a[0] == '-') {
      bool known = false;
      for (const auto& f : flags) known = known || f == a;
      if (!known) {
        std::fprintf(stderr, "farmhand %s: unknown option \"%s\"\n%s", inv.command.c_str(), a.c_str(),
                     usage(inv.command));
        return false;
      }
    } else {
      ++count;
    }
  }
  if (count != positional) {
    std::fprintf(stderr, "farmhand %s: expected %zu argument(s), got %zu\n%s", inv.command.c_str(), positional,
                 count, usage(inv.command));
    return false;
  }
  return true;
}

std::string describe_health(const provisioner::NetworkHealth& h) {
  if (!h.healthy) return "unhealthy: " + h.reason;
  char buf[128];
  std::snprintf(buf, sizeof buf, "healthy (gateway %.1f ms, DNS %.1f ms %s)", h.gateway_ms, h.dns_ms,
                h.dns_rcode.c_str());
  return buf;
}

bool report_health(provisioner::Provisioner& p, std::chrono::milliseconds timeout) {
  auto health = p.network_health(timeout);
  if (!health) {
    log::error("checking the containers' networks: ", health.error().message());
    return false;
  }
  bool all = true;
  for (const auto& [name, h] : *health) {
    std::printf("[%s] network %s\n", name.c_str(), describe_health(h).c_str());
    all = all && h.healthy;
  }
  std::fflush(stdout);
  if (!all) log::error("a container's network is unhealthy: see above");
  return all;
}

}  // namespace farmhand::agent
