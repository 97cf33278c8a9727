// One backend of the host network: a network tool that configures the host
// end of the veth links (NetworkManager, systemd-networkd, plain iproute2)
// or a firewall that lets the containers' traffic out (firewalld, nftables).
//
// A backend renders its files (pure), adds the lines a container's unit
// drop-in needs, and reloads its daemon when its files changed. To add a
// backend: one file here implementing this interface, an enum value in
// config (NetworkBackend or FirewallBackend), and its entry in
// network_backend() / firewall_backend() (backend.cpp).
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/systemd.h"
#include "provisioner/host_network.h"

namespace farmhand::provisioner {

// What a backend's reload may use on the host.
class HostTools {
 public:
  virtual ~HostTools() = default;
  // Runs a host tool found on PATH; a failure carries its output.
  virtual Status run(const std::vector<std::string>& argv) = 0;
  // Whether a network interface exists now.
  virtual bool link_exists(const std::string& ifname) const = 0;
  virtual SystemdControl& systemd() = 0;
};

// What one apply wrote and removed.
struct ReloadRequest {
  const HostNetworkLayout& want;
  const HostNetworkChange& change;
  std::set<std::string> touched;  // written or removed paths
  ReloadRequest(const HostNetworkLayout& w, const HostNetworkChange& c);
  // Whether a path under (or equal to) `dir_or_file` was written or removed.
  bool touches(std::string_view dir_or_file) const;
};

class HostNetworkBackend {
 public:
  virtual ~HostNetworkBackend() = default;
  // Adds this backend's files for `containers` (sorted by name) to `layout`;
  // called when the backend is chosen.
  virtual void render(const NetworkChoice& choice, const Cidr& pool, const std::vector<VethContainer>& containers,
                      HostNetworkLayout& layout) const = 0;
  // Adds the lines one container's unit drop-in needs; when chosen.
  virtual void dropin(const NetworkChoice& choice, const std::string& container, const Cidr& subnet,
                      DropinNetworkLines& lines) const = 0;
  // Makes the running daemon take up what was written or removed. Called
  // for every backend, chosen or not, so one switched away from takes its
  // rules back.
  virtual Status reload(HostTools& tools, const ReloadRequest& request) const = 0;
};

// The backend of a choice; null for "auto" (and "none" for the firewall).
const HostNetworkBackend* network_backend(NetworkBackend backend);
const HostNetworkBackend* firewall_backend(FirewallBackend firewall);

// Every backend of each kind, in the order their daemons are reloaded
// (apply reloads the firewalls first, then the network tools).
std::vector<const HostNetworkBackend*> firewall_backends();
std::vector<const HostNetworkBackend*> network_backends();

// Shared by the backends.
std::string gateway_cidr(const Cidr& subnet);

}  // namespace farmhand::provisioner
