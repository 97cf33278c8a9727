#include "agent/run_network.h"

#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "common/clock.h"
#include "agent/dns_forwarder.h"
#include "agent/runtime.h"
#include "common/log.h"
#include "common/process.h"
#include "provisioner/host_network.h"
#include "provisioner/subnet.h"

namespace farmhand::agent {

namespace {

constexpr const char* kIpForward = "/proc/sys/net/ipv4/ip_forward";
// Left while forwarding is on because `farmhand run` turned it on, so the
// last container to stop turns it off again, whichever one turned it on.
constexpr const char* kForwardingMarker = "/run/farmhand/ip_forward-by-run";

void say(const std::string& what) { std::fprintf(stderr, "farmhand run: %s\n", what.c_str()); }

Status run_tool(const std::vector<std::string>& argv) {
  auto path = find_program(argv[0]);
  if (!path) return path.error();
  Command c;
  c.path = *path;
  c.args.assign(argv.begin() + 1, argv.end());
  c.env = minimal_env();
  c.timeout = std::chrono::seconds(30);
  PosixProcessRunner runner;
  auto r = runner.run(c);
  if (!r) return r.error();
  if (!r->success()) return command_error(c, *r);
  return {};
}

bool forwarding_on() {
  auto v = read_file(kIpForward);
  return v && v->rfind("1", 0) == 0;
}

Status set_forwarding(bool on) {
  FILE* f = std::fopen(kIpForward, "we");
  if (f == nullptr) return fail(std::string("cannot open ") + kIpForward + ": " + errno_text(errno));
  bool ok = std::fputs(on ? "1\n" : "0\n", f) >= 0;
  ok = std::fclose(f) == 0 && ok;
  if (!ok) return fail(std::string("cannot write ") + kIpForward + ": " + errno_text(errno));
  return {};
}

// Whether a container other than `self` still runs from `farmhand run`.
bool others_running(const HostRoot& root, const std::string& self) {
  ContainerLocator locator(root, nullptr);
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root.map(kRunningDir), ec)) {
    const std::string name = entry.path().filename().string();
    if (name != self && locator.leader(name)) return true;
  }
  return false;
}

// The helper's whole life: set up, wait for the container's nspawn (the
// process behind `watched`) to exit, tear down.
int serve(const HostRoot& root, const RunNetworkPlan& plan, int watched) {
  const auto alive = [&] {
    pollfd p{watched, POLLIN, 0};
    return ::poll(&p, 1, 0) == 0;
  };
  // nspawn creates ve-NAME as the container starts.
  const fs::path link = fs::path("/sys/class/net") / plan.ifname;
  const auto deadline = monotonic_now() + std::chrono::seconds(120);
  while (!path_exists(link)) {
    if (!alive()) return 0;
    if (monotonic_now() > deadline) {
      say(plan.ifname + " did not appear within 120 s: the container has no network");
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // A short command in the container may be over before this is done:
  // what failed because the link went away is not worth a word.
  const auto report = [&](const std::string& what) {
    if (alive()) say(what);
  };
  if (auto s = run_tool({"ip", "address", "replace", plan.gateway_cidr, "dev", plan.ifname}); !s) {
    report(s.error().message());
  }
  if (auto s = run_tool({"ip", "link", "set", plan.ifname, "up"}); !s) report(s.error().message());
  if (!forwarding_on()) {
    if (auto s = set_forwarding(true); !s) {
      report(s.error().message() + ": the container cannot reach past the host");
    } else {
      (void)make_dirs(fs::path(kForwardingMarker).parent_path(), 0755);
      (void)write_file_atomic(kForwardingMarker, plan.container + "\n", 0644);
    }
  }
  bool nft_loaded = false;
  if (!plan.nft_file.empty()) {
    if (auto s = run_tool({"nft", "-f", plan.nft_file}); !s) {
      report(s.error().message() + ": the container's traffic is not masqueraded");
    } else {
      nft_loaded = true;
    }
  }
  std::unique_ptr<DnsForwarder> dns;
  if (auto d = DnsForwarder::start(plan.gateway, 53, plan.upstreams); d) {
    dns = std::move(*d);
  } else if (d.error().message().find("in use") == std::string::npos) {
    // In use: another resolver (systemd-resolved, dnsmasq) answers there.
    report(d.error().message() + ": no DNS for the container");
  }

  pollfd p{watched, POLLIN, 0};
  while (::poll(&p, 1, -1) < 0 && errno == EINTR) {
  }

  dns.reset();
  // The link went with the container's network namespace. What is shared
  // stays while another container needs it.
  if (!others_running(root, plan.container)) {
    if (nft_loaded) {
      (void)run_tool({"nft", "delete", "table", "inet", "farmhand"});
      (void)run_tool({"nft", "delete", "table", "ip", "farmhand_nat"});
    }
    if (path_exists(kForwardingMarker) && set_forwarding(false)) ::unlink(kForwardingMarker);
  }
  return 0;
}

}  // namespace

std::optional<RunNetworkPlan> run_network_plan(const HostRoot& root, const provisioner::ContainerLayout& layout,
                                               bool host_has_systemd) {
  using provisioner::FirewallBackend;
  using provisioner::NetworkBackend;
  if (host_has_systemd || layout.spec.network.mode != provisioner::NetworkMode::kVeth) return std::nullopt;
  if (!layout.network.configure || layout.network.backend != NetworkBackend::kPlain) return std::nullopt;
  RunNetworkPlan plan;
  plan.container = layout.spec.name;
  plan.ifname = provisioner::host_interface(layout.spec.name);
  plan.gateway = layout.subnet.host(provisioner::kGatewayOffset);
  plan.gateway_cidr = plan.gateway + "/" + std::to_string(layout.subnet.prefix);
  if (layout.network.firewall == FirewallBackend::kNftables && path_exists(root.map(provisioner::kNftFile))) {
    plan.nft_file = root.map(provisioner::kNftFile).string();
  }
  // The forwarder runs in the host's network namespace, whatever --root
  // says: it asks the resolvers this machine itself uses.
  auto resolv = read_file_if_exists("/etc/resolv.conf");
  if (resolv && *resolv) plan.upstreams = resolv_conf_nameservers(**resolv, plan.gateway);
  return plan;
}

Status start_run_network(const HostRoot& root, const RunNetworkPlan& plan) {
  // A pidfd of this process: it stays this process's across exec, so the
  // helper sees systemd-nspawn exit.
  const int self = static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0));
  if (self < 0) return fail("pidfd_open: " + errno_text(errno));
  std::fflush(nullptr);
  const pid_t child = ::fork();
  if (child < 0) {
    ::close(self);
    return fail("fork: " + errno_text(errno));
  }
  if (child == 0) {
    // Detached from the terminal's signals, and reparented: the
    // intermediate child exits at once.
    ::setsid();
    const pid_t helper = ::fork();
    if (helper != 0) ::_exit(helper < 0 ? 1 : 0);
    // Nothing of the caller's is kept open (its state database), and no
    // mount is kept busy by a working directory.
    if (::dup2(self, 3) < 0) ::_exit(1);
    ::close_range(4, ~0U, 0);
    (void)!::chdir("/");
    ::_exit(serve(root, plan, 3));
  }
  ::close(self);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return fail("cannot start the network helper");
  return {};
}

}  // namespace farmhand::agent
