#include "agent/wiring.h"

#include <unistd.h>

#include <cstdio>

#include "agent/commands.h"
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

Result<std::unique_ptr<Wired>> wire(const Invocation& inv, AgentConfig config) {
  auto w = std::make_unique<Wired>();
  if (inv.root == "/" && host_booted_with_systemd()) {
    auto sd = connect_systemd();
    if (!sd) return sd.error();
    w->systemd = std::move(*sd);
  }
  w->provisioner = std::make_unique<provisioner::Provisioner>(std::move(config), *recipes(), HostRoot(inv.root),
                                                              w->runner, w->systemd.get(), host_hostname());
  return w;
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
