#include "provisioner/layout.h"

#include <algorithm>

#include "common/hash.h"
#include "provisioner/unit_file.h"

namespace farmhand::provisioner {

std::string BaseSpec::key() const {
  std::string canonical = distro + "\n" + release + "\n" + arch + "\n" + recipe_fingerprint + "\n";
  for (const auto& p : packages) canonical += p + "\n";
  return distro + "-" + release + "-" + arch + "-" + sha256_hex(canonical).substr(0, 12);
}

std::string container_hostname(const std::string& name, const std::string& host_hostname) {
  std::string host = host_hostname.substr(0, host_hostname.find('.'));
  for (auto& c : host) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) c = '-';
  }
  std::string out = host.empty() ? name : name + "-" + host;
  if (out.size() > 64) out.resize(64);
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out;
}

std::string render_nspawn(const ContainerSpec& spec) {
  UnitFile f(kManagedHeader);
  f.add("Exec", "Boot", "yes");
  f.add("Exec", "PrivateUsers", spec.private_users ? "pick" : "no");
  switch (spec.network.mode) {
    case NetworkMode::kVeth: f.add("Network", "VirtualEthernet", "yes"); break;
    case NetworkMode::kMacvlan: f.add("Network", "MACVLAN", spec.network.link); break;
    case NetworkMode::kIpvlan: f.add("Network", "IPVLAN", spec.network.link); break;
  }
  for (const auto& b : spec.binds) {
    const std::string target = b.target.empty() ? b.source : b.target;
    const std::string value = target == b.source ? b.source : b.source + ":" + target;
    f.add("Files", b.read_only ? "BindReadOnly" : "Bind", value);
  }
  if (spec.private_users) f.add("Files", "PrivateUsersOwnership", "auto");
  return f.str();
}

std::string render_host0_networkd(const Cidr& subnet) {
  UnitFile f(kManagedHeader);
  f.add("Match", "Name", "host0");
  f.add("Network", "Address", subnet.host(kContainerOffset) + "/" + std::to_string(subnet.prefix));
  f.add("Network", "Gateway", subnet.host(kGatewayOffset));
  f.add("Network", "DNS", subnet.host(kGatewayOffset));
  f.add("Network", "IPForward", "1");
  return f.str();
}

std::string render_host0_keyfile(const Cidr& subnet) {
  UnitFile f(kManagedHeader);
  f.add("connection", "id", "host0");
  f.add("connection", "type", "ethernet");
  f.add("connection", "interface-name", "host0");
  f.add("connection", "autoconnect", "true");
  f.add("ipv4", "method", "manual");
  f.add("ipv4", "address1",
        subnet.host(kContainerOffset) + "/" + std::to_string(subnet.prefix) + "," +
            subnet.host(kGatewayOffset));
  f.add("ipv4", "dns", subnet.host(kGatewayOffset) + ";");
  f.add("ipv6", "method", "ignore");
  return f.str();
}

// The interface systemd-nspawn creates inside the container for a macvlan
// ("mv-eth0") or ipvlan ("iv-eth0") link.
std::string lan_interface(const ContainerNetwork& network) {
  return (network.mode == NetworkMode::kMacvlan ? "mv-" : "iv-") + network.link;
}

std::string render_lan_networkd() {
  UnitFile f(kManagedHeader);
  f.add("Match", "Name", "mv-* iv-*");
  f.add("Network", "DHCP", "yes");
  return f.str();
}

std::string render_lan_keyfile(const ContainerNetwork& network) {
  UnitFile f(kManagedHeader);
  const std::string ifname = lan_interface(network);
  f.add("connection", "id", ifname);
  f.add("connection", "type", "ethernet");
  f.add("connection", "interface-name", ifname);
  f.add("connection", "autoconnect", "true");
  f.add("ipv4", "method", "auto");
  f.add("ipv6", "method", "auto");
  return f.str();
}

std::string overlay_mount_unit(const ContainerLayout& layout) {
  return layout.dropin_dir.substr(0, layout.dropin_dir.rfind('/')) + "/" +
         escape_unit_path(layout.machine_dir) + ".mount";
}

std::string render_dropin(const ContainerLayout& layout) {
  UnitFile f(kManagedHeader);
  f.add("Unit", "Description", "farmhand build container %i");
  if (layout.clone_method == CloneMethod::kOverlay) {
    f.add("Unit", "RequiresMountsFor", layout.machine_dir);
  }
  if (layout.spec.network.mode == NetworkMode::kVeth) {
    DropinNetworkLines net = dropin_network_lines(layout.network, layout.spec.name, layout.subnet);
    std::string units;
    for (const auto& u : net.after) units += (units.empty() ? "" : " ") + u;
    if (!units.empty()) {
      // Ordering only: the host's network services come up first when they
      // are enabled, and their absence does not stop the container.
      f.add("Unit", "After", units);
    }
    auto join = [](const std::vector<std::string>& argv) {
      std::string line;
      for (const auto& a : argv) line += (line.empty() ? "" : " ") + a;  // our own words: no quoting needed
      return line;
    };
    for (const auto& argv : net.exec_start_pre) f.add("Service", "ExecStartPre", join(argv));
    for (const auto& argv : net.exec_start_post) f.add("Service", "ExecStartPost", join(argv));
  }
  return f.str();
}

std::string render_overlay_mount(const ContainerLayout& layout) {
  UnitFile f(kManagedHeader);
  f.add("Unit", "Description", "farmhand overlay root of build container " + layout.spec.name);
  f.add("Unit", "Before", "systemd-nspawn@" + layout.spec.name + ".service");
  f.add("Unit", "RequiresMountsFor", layout.base_dir + " " + layout.overlay_dir);
  f.add("Mount", "What", "overlay");
  f.add("Mount", "Where", layout.machine_dir);
  f.add("Mount", "Type", "overlay");
  f.add("Mount", "Options",
        "lowerdir=" + layout.base_dir + ",upperdir=" + layout.overlay_dir +
            "/upper,workdir=" + layout.overlay_dir + "/work");
  f.add("Install", "WantedBy", "local-fs.target");
  return f.str();
}

std::string render_hosts(const std::string& hostname) {
  return "# " + std::string(kManagedHeader) +
         "\n127.0.0.1\tlocalhost\n127.0.1.1\t" + hostname +
         "\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";
}

ContainerLayout make_layout(const AgentConfig& config, const ContainerSpec& spec,
                            const ReleaseRecipe& recipe, const Cidr& subnet,
                            CloneMethod clone_method, const std::string& host_hostname,
                            const NetworkChoice& network) {
  ContainerLayout l;
  l.network = network;
  l.spec = spec;
  l.subnet = subnet;
  l.hostname = container_hostname(spec.name, host_hostname);
  l.base.distro = spec.distro;
  l.base.release = spec.release;
  l.base.arch = spec.arch;
  l.base.recipe_fingerprint = recipe.fingerprint;
  if (spec.build_packages) l.base.packages = recipe.build_packages;
  l.base.packages.insert(l.base.packages.end(), spec.packages.begin(), spec.packages.end());
  std::sort(l.base.packages.begin(), l.base.packages.end());
  l.base.packages.erase(std::unique(l.base.packages.begin(), l.base.packages.end()),
                        l.base.packages.end());
  l.network_method = recipe.network_method;
  l.machine_dir = config.paths.machines + "/" + spec.name;
  l.base_dir = config.paths.cache + "/images/" + l.base.key();
  l.overlay_dir = config.paths.state + "/overlay/" + spec.name;
  l.clone_method = clone_method;
  l.nspawn_file = config.paths.nspawn + "/" + spec.name + ".nspawn";
  l.dropin_dir = config.paths.systemd + "/systemd-nspawn@" + spec.name + ".service.d";

  l.host_files[l.nspawn_file] = render_nspawn(spec);
  l.host_files[l.dropin_dir + "/10-farmhand.conf"] = render_dropin(l);
  if (clone_method == CloneMethod::kOverlay) {
    // The root is mounted at every boot whether or not the container starts
    // then, as a plain directory would be there.
    const std::string unit = overlay_mount_unit(l);
    l.host_files[unit] = render_overlay_mount(l);
    l.links[config.paths.systemd + "/local-fs.target.wants/" + unit.substr(unit.rfind('/') + 1)] =
        unit;
  }
  l.boot_link =
      config.paths.systemd + "/machines.target.wants/systemd-nspawn@" + spec.name + ".service";
  if (spec.boot) l.links[l.boot_link] = "/lib/systemd/system/systemd-nspawn@.service";

  for (const auto& rule : spec.devices) l.build_user_groups.push_back(rule.group);
  std::sort(l.build_user_groups.begin(), l.build_user_groups.end());
  l.build_user_groups.erase(std::unique(l.build_user_groups.begin(), l.build_user_groups.end()),
                            l.build_user_groups.end());
  l.container_files["etc/hostname"] = l.hostname + "\n";
  l.container_files["etc/hosts"] = render_hosts(l.hostname);
  if (spec.network.mode != NetworkMode::kVeth) {
    // On the parent link's network: address, gateway and DNS come from DHCP.
    if (recipe.network_method == "networkmanager") {
      const std::string keyfile =
          "etc/NetworkManager/system-connections/" + lan_interface(spec.network) + ".nmconnection";
      l.container_files[keyfile] = render_lan_keyfile(spec.network);
      l.file_modes[keyfile] = 0600;
    } else {
      l.container_files["etc/systemd/network/50-lan.network"] = render_lan_networkd();
    }
    return l;
  }
  l.container_files["etc/resolv.conf"] =
      "# " + std::string(kManagedHeader) + "\nnameserver " + subnet.host(kGatewayOffset) + "\n";
  if (recipe.network_method == "networkmanager") {
    const std::string keyfile = "etc/NetworkManager/system-connections/host0.nmconnection";
    l.container_files[keyfile] = render_host0_keyfile(subnet);
    l.file_modes[keyfile] = 0600;  // NetworkManager ignores keyfiles others can read
  } else {
    l.container_files["etc/systemd/network/50-host0.network"] = render_host0_networkd(subnet);
  }
  return l;
}

}  // namespace farmhand::provisioner
