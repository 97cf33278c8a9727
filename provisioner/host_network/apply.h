// Putting the host network in place: writing and removing the files the
// plan says, and making the running daemons take them up; and the kernel's
// IPv4 forwarding the plain backend relies on.
#pragma once

#include "provisioner/context.h"
#include "provisioner/host_network.h"
#include "provisioner/step_journal.h"

namespace farmhand::provisioner {

// Writes and removes the host network files, then makes the running daemons
// take them up. Without systemd (or under --root) only the files are
// written: they take effect at the next boot.
Status apply_host_network(ProvisionerContext& ctx, const HostNetworkLayout& want, const HostNetworkChange& change);

// Whether IPv4 forwarding must be switched on (the plain backend, under systemd).
bool ip_forward_off(const ProvisionerContext& ctx, const NetworkChoice& choice);
// Switches it on as a journaled step, if it is off.
Status ensure_ip_forward(const ProvisionerContext& ctx, StepJournal& journal, const NetworkChoice& choice);

}  // namespace farmhand::provisioner
