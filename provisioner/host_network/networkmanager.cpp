// NetworkManager: a shared (NAT) keyfile connection per container's host
// interface, and a conf.d file so ve-* links are managed.
#include <string>

#include "common/hash.h"
#include "provisioner/host_network/backend.h"
#include "provisioner/layout.h"
#include "provisioner/unit_file.h"

namespace farmhand::provisioner {

namespace {

// A stable UUID for a connection, so rewriting the keyfile keeps its identity.
std::string stable_uuid(const std::string& seed) {
  std::string h = sha256_hex("farmhand:" + seed).substr(0, 32);
  h[12] = '4';                                             // version 4 layout
  h[16] = "89ab"[std::stoi(h.substr(16, 1), nullptr, 16) & 3];  // RFC 4122 variant
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) + "-" +
         h.substr(20, 12);
}

class NetworkManagerBackend final : public HostNetworkBackend {
 public:
  void render(const NetworkChoice& choice, const Cidr& /*pool*/, const std::vector<VethContainer>& containers,
              HostNetworkLayout& l) const override {
    l.files[kNmConfFile] = render_nm_conf();
    for (const auto& c : containers) {
      l.files[nm_connection_file(c.name)] = render_nm_connection(c.name, c.subnet, choice.zone);
      l.modes[nm_connection_file(c.name)] = 0600;  // NetworkManager ignores keyfiles others can read
    }
  }

  void dropin(const NetworkChoice&, const std::string&, const Cidr&, DropinNetworkLines& d) const override {
    d.after.push_back("NetworkManager.service");
  }

  Status reload(HostTools& tools, const ReloadRequest& r) const override {
    if (r.want.choice.backend != NetworkBackend::kNetworkManager) return {};
    if (!r.touches(kNmConfFile) && !r.touches(kNmConnectionDir)) return {};
    if (r.touches(kNmConfFile)) {
      if (auto s = tools.run({"nmcli", "general", "reload", "conf"}); !s) return s;
    }
    if (auto s = tools.run({"nmcli", "connection", "reload"}); !s) return s;
    for (const auto& path : r.change.write) {
      if (path.rfind(kNmConnectionDir, 0) != 0) continue;
      // NetworkManager skips a keyfile it does not like without failing the
      // reload: make sure it has the connection now.
      const std::string id = fs::path(path).stem().string();
      if (auto s = tools.run({"nmcli", "-g", "connection.id", "connection", "show", id}); !s) {
        return fail("NetworkManager did not load " + path + " (see its log): " + s.error().message());
      }
      // A running container's link is taken over now; a new one is
      // connected automatically when it appears.
      std::string name = id.substr(std::string("nm-ve-").size());
      if (!tools.link_exists(host_interface(name))) continue;
      if (auto s = tools.run({"nmcli", "--wait", "30", "connection", "up", nm_connection_name(name)}); !s) return s;
    }
    return {};
  }
};

}  // namespace

std::string nm_connection_name(const std::string& container) { return "nm-ve-" + container; }
std::string nm_connection_file(const std::string& container) {
  return std::string(kNmConnectionDir) + "/" + nm_connection_name(container) + ".nmconnection";
}

std::string render_nm_conf() {
  UnitFile f(kManagedHeader);
  // No automatic DHCP "Wired connection" on a new ve- link: it would hold
  // the link until it times out, ahead of the container's own connection.
  f.add("main", "no-auto-default+", "interface-name:ve-*");
  // NetworkManager leaves veth devices alone by default (a udev rule marks
  // them unmanaged); the host ends of the containers' links must be managed
  // for their shared connections.
  f.add("device-farmhand-ve", "match-device", "interface-name:ve-*");
  f.add("device-farmhand-ve", "managed", "1");
  return f.str();
}

std::string render_nm_connection(const std::string& container, const Cidr& subnet, const std::string& zone) {
  UnitFile f(kManagedHeader);
  f.add("connection", "id", nm_connection_name(container));
  f.add("connection", "uuid", stable_uuid(nm_connection_name(container)));
  f.add("connection", "type", "ethernet");
  f.add("connection", "interface-name", host_interface(container));
  f.add("connection", "autoconnect", "true");
  f.add("connection", "zone", zone);
  f.add("ipv4", "method", "shared");
  f.add("ipv4", "address1", gateway_cidr(subnet));
  f.add("ipv6", "method", "disabled");
  return f.str();
}

const HostNetworkBackend& networkmanager_backend() {
  static const NetworkManagerBackend backend;
  return backend;
}

}  // namespace farmhand::provisioner
