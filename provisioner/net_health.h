// Network health of a running container, checked from inside it: its
// gateway answers ping, and a DNS server on the gateway answers a query.
//
// The checks run on a thread that joins the container's network namespace
// (setns affects only the calling thread), so nothing has to be installed
// in the container and no process is started.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace farmhand::provisioner {

struct NetworkHealth {
  bool healthy = false;
  std::string reason;         // why not, for the admin; empty when healthy
  double gateway_ms = -1;     // ping round trip, -1 if none
  double dns_ms = -1;         // DNS round trip, -1 if none
  std::string dns_rcode;      // "NOERROR", "REFUSED", ... of the answer
};

// Checks from inside the network namespace of process `leader` (the
// container's init). Each check retries until `timeout`, so a container that
// is still bringing up its network is given that long.
NetworkHealth check_network_health(pid_t leader, const std::string& gateway,
                                   std::chrono::milliseconds timeout);

// The DNS probe: a query for "localhost. IN A" with the given id; and
// whether a datagram is the answer to it (the rcode's name in `rcode`).
std::vector<uint8_t> dns_probe_query(uint16_t id);
bool parse_dns_answer(const uint8_t* data, size_t size, uint16_t id, std::string& rcode);

}  // namespace farmhand::provisioner
