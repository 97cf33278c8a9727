// The host end of a container's veth link when `farmhand run` boots it on a
// host without systemd as PID 1.
//
// Under systemd the container's unit drop-in and the host's network services
// do this (docs/networking.md). Without systemd nothing would: the link stays
// down, nothing forwards or masquerades, and nothing answers DNS on the
// gateway that the container's resolv.conf names. So `farmhand run` starts a
// helper, detached from it, that for as long as the container's
// systemd-nspawn runs:
//   - puts the gateway address on ve-NAME and brings it up (as the plain
//     backend's drop-in does);
//   - turns IPv4 forwarding on;
//   - loads farmhand's own nftables tables (forwarding and masquerade), when
//     the host's firewall choice is nftables;
//   - answers DNS on the gateway with a small forwarder to the host's own
//     resolvers, unless something already listens there;
// and when the container stops, takes back what it did: the forwarder stops,
// the link goes with the container, and the nftables tables and forwarding
// are removed when no other container started this way still runs.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/fs.h"
#include "provisioner/layout.h"

namespace farmhand::agent {

struct RunNetworkPlan {
  std::string container;
  std::string ifname;       // ve-NAME
  std::string gateway;      // 192.168.80.1
  std::string gateway_cidr; // 192.168.80.1/24
  std::string nft_file;     // host path of farmhand's nftables file, or empty: none loaded
  std::vector<std::string> upstreams;  // DNS servers the forwarder asks
};

// What `farmhand run` will do for this container's network, or
// std::nullopt when the host end is not farmhand's to configure here (not a
// veth link, a host with systemd, a backend other than plain).
std::optional<RunNetworkPlan> run_network_plan(const HostRoot& root, const provisioner::ContainerLayout& layout,
                                               bool host_has_systemd);

// Starts the helper for `plan`, detached (a grandchild: the caller, which
// is about to become systemd-nspawn, never has to reap it). It watches the
// calling process and tears down when it exits. Errors of the helper go to
// stderr, prefixed with "farmhand run: ".
Status start_run_network(const HostRoot& root, const RunNetworkPlan& plan);

}  // namespace farmhand::agent
