#include "provisioner/host_network/apply.h"

#include <cstdio>

#include "common/log.h"
#include "provisioner/host_network/backend.h"
#include "udev/rule.h"

namespace farmhand::provisioner {

namespace {

// The plain backend relies on the kernel forwarding IPv4, which
// /etc/sysctl.d sets at boot where systemd-sysctl can (not in a container
// host); every apply makes sure of it at run time.
constexpr const char* kIpForwardKnob = "/proc/sys/net/ipv4/ip_forward";

class ContextTools final : public HostTools {
 public:
  explicit ContextTools(ProvisionerContext& ctx) : ctx_(ctx) {}
  Status run(const std::vector<std::string>& argv) override {
    auto path = find_program(argv[0]);
    if (!path) return path.error();
    std::vector<std::string> full = argv;
    full[0] = *path;
    return ctx_.commands.host(full, minimal_env(), {}, std::chrono::seconds(120));
  }
  bool link_exists(const std::string& ifname) const override {
    return ctx_.root.is_real_root() && path_exists(fs::path("/sys/class/net") / ifname);
  }
  SystemdControl& systemd() override { return *ctx_.systemd; }

 private:
  ProvisionerContext& ctx_;
};

// systemd-resolved takes its conf.d only on a restart.
Status restart_resolved(HostTools& tools, const ReloadRequest& r) {
  if (!r.touches(kResolvedConfFile)) return {};
  auto st = tools.systemd().active_state("systemd-resolved.service");
  if (st && *st == "active") return tools.systemd().restart_unit("systemd-resolved.service");
  return {};
}

// The host's device rules (written with the network files) apply to the
// next event once udevd reloads them.
void reload_udev(HostTools& tools, const ReloadRequest& r) {
  if (!r.touches(udev::kHostUdevRulesFile) || !find_program("udevadm")) return;
  if (auto s = tools.run({"udevadm", "control", "--reload"}); !s) {
    log::warning("udev rules not reloaded (", s.error().message(), "): they apply from the next boot");
  }
}

}  // namespace

Status apply_host_network(ProvisionerContext& ctx, const HostNetworkLayout& want, const HostNetworkChange& change) {
  for (const auto& path : change.write) {
    auto mode = want.modes.count(path) ? want.modes.at(path) : 0644u;
    if (auto s = write_file_atomic(ctx.host(path), want.files.at(path), mode); !s) return s;
  }
  for (const auto& path : change.remove) {
    if (auto s = remove_tree(ctx.host(path)); !s) return s;
  }
  if (ctx.systemd == nullptr) return {};
  ContextTools tools(ctx);
  const ReloadRequest request(want, change);
  for (const auto* firewall : firewall_backends()) {
    if (auto s = firewall->reload(tools, request); !s) return s;
  }
  if (auto s = restart_resolved(tools, request); !s) return s;
  for (const auto* network : network_backends()) {
    if (auto s = network->reload(tools, request); !s) return s;
  }
  reload_udev(tools, request);
  return {};
}

bool ip_forward_off(const ProvisionerContext& ctx, const NetworkChoice& c) {
  if (ctx.systemd == nullptr || !c.configure || c.backend != NetworkBackend::kPlain) return false;
  auto now = read_file(kIpForwardKnob);
  return !now || now->rfind("1", 0) != 0;
}

Status ensure_ip_forward(const ProvisionerContext& ctx, StepJournal& journal, const NetworkChoice& c) {
  if (!ip_forward_off(ctx, c)) return {};
  return journal.run("host", "enable IPv4 forwarding (it was off)", [&]() -> Status {
    FILE* f = std::fopen(kIpForwardKnob, "we");
    if (f == nullptr) return fail(std::string("cannot open ") + kIpForwardKnob + ": " + errno_text(errno));
    bool ok = std::fputs("1\n", f) >= 0;
    ok = std::fclose(f) == 0 && ok;
    if (!ok) return fail(std::string("cannot write ") + kIpForwardKnob + ": " + errno_text(errno));
    return {};
  });
}

}  // namespace farmhand::provisioner
