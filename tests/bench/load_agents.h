// The load tool's simulated agents: one AgentLink per enrolled host, all on
// one EventLoop, and the two load modes built on them (docs: README.md, B7).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "agent/link.h"
#include "agent/loop.h"
#include "agent/outbox.h"
#include "tests/bench/load_common.h"

namespace farmhand::load {

// An outbox that hands the link one event per read and writes the steady
// clock into its message at that moment ("t=<µs> ..."). The link encodes
// and writes an event right after reading it, so the stamp is the time the
// event went to the connection, whatever time it waited in the outbox. One
// event per read costs the link a lookup per event instead of per 32, which
// is small next to encoding and writing it.
class StampingOutbox : public agent::Outbox {
 public:
  explicit StampingOutbox(std::unique_ptr<agent::Outbox> inner) : inner_(std::move(inner)) {}

  Result<uint64_t> append(protocol::Event event) override { return inner_->append(std::move(event)); }
  Result<uint64_t> append_all(std::vector<protocol::Event> events) override {
    return inner_->append_all(std::move(events));
  }
  Result<std::vector<protocol::Event>> pending(uint64_t after_seq, size_t limit) override;
  Status acknowledge(uint64_t seq) override { return inner_->acknowledge(seq); }
  Status reconcile(uint64_t acked_seq) override { return inner_->reconcile(acked_seq); }
  Result<uint64_t> size() override { return inner_->size(); }
  Result<uint64_t> last_seq() override { return inner_->last_seq(); }

 private:
  std::unique_ptr<agent::Outbox> inner_;
  uint64_t stamped_ = 0;
};

// One simulated host.
struct SimAgent {
  std::string host;
  std::unique_ptr<StampingOutbox> outbox;
  std::unique_ptr<agent::AgentLink> link;
};

struct FleetOptions {
  std::string url;
  std::string sqlite_dir;  // empty: in-memory outboxes
  bool heartbeats = true;  // heartbeat and inventory callbacks, as the real agent has
  size_t window = 1000;
};

// Creates (but does not start) one agent per credential.
Result<std::vector<SimAgent>> make_fleet(agent::EventLoop& loop, const std::vector<HostCredential>& hosts,
                                         const FleetOptions& options);

// Starts the links `per_second` at a time (spread over 10 ms steps), so the
// server's listen backlog is not flooded with thousands of SYNs at once.
void start_ramped(agent::EventLoop& loop, std::vector<SimAgent>& agents, uint64_t per_second);

// Counters summed over the fleet.
struct FleetTotals {
  uint64_t connected = 0;
  agent::LinkCounters counters;
  std::string last_error;  // one link's reason for its last disconnect
};
FleetTotals totals(const std::vector<SimAgent>& agents);

int run_agents(const Args& args);
int run_events(const Args& args);

}  // namespace farmhand::load
