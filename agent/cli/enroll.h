// `farmhand enroll`: the pure parts (what the configuration becomes, which
// prerequisites are missing, the unit to install), kept apart from the
// command so they can be tested without a host.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "provisioner/host_network.h"

namespace farmhand::agent {

struct EnrollRequest {
  std::optional<std::string> url;      // --server
  std::optional<std::string> token;    // --token / --token-file; never written anywhere
  std::optional<std::string> ca_file;  // --ca-file
  bool force = false;
};

// The agent.json text after enrolling: `existing` (the current file, if
// any) with its server settings set from the request and everything else
// kept. Refuses to replace a different server without --force; returns
// `existing` unchanged when there is nothing to change. The token is not
// kept: enroll exchanges it for the host's credential.
Result<std::string> merge_enrollment(const std::optional<std::string>& existing, const EnrollRequest& request);

// The service unit to install: the template with ExecStart= running
// `binary daemon`. Refuses a binary path systemd would need quoted.
Result<std::string> render_service_unit(const std::string& unit_template, const std::string& binary);

enum class PackageManager { kApt, kDnf, kNone };

struct Prerequisite {
  std::string program;      // what must be on PATH
  std::string apt_package;  // Debian and Ubuntu
  std::string dnf_package;  // Fedora, CentOS
  std::string purpose;      // for messages
};

// What a host needs for the chosen network backend and firewall. Without
// systemd as PID 1 systemd-resolved is left out: it cannot run there, and
// installing it would point /etc/resolv.conf at a stub that never comes up.
std::vector<Prerequisite> prerequisites(const provisioner::NetworkChoice& choice, bool with_systemd = true);

// The prerequisites whose program `found` does not find.
std::vector<Prerequisite> missing_prerequisites(const std::vector<Prerequisite>& all,
                                                const std::function<bool(const std::string&)>& found);

// The argv that installs `missing` (package names de-duplicated, in order).
std::vector<std::string> install_command(PackageManager manager, const std::vector<Prerequisite>& missing);

}  // namespace farmhand::agent
