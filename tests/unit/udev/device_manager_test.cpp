// The device manager's bookkeeping, with a real state.db in a temporary
// directory, fakes for the device cgroup and the container's /dev, and a
// FakeClock: a lease covers every grant at every moment, failed attaches
// and revokes stay "attaching" and "revoking" and are retried when the
// clock says they are due, and a restarted agent finishes them. No root.
#include "udev/device_manager.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/sqlite.h"
#include "tests/unit/temp_dir.h"

namespace farmhand::udev {
namespace {

constexpr pid_t kLeader = 4242;

std::string key(const std::string& container, const NodeSpec& node) {
  return container + " " + std::to_string(node.major) + ":" + std::to_string(node.minor);
}

// The device cgroup: grants per container, with allow and revoke failing
// as often as told. Every allow is checked against the leases: the lease
// must be in state.db, "attaching", before the grant.
class FakeAccess final : public DeviceAccess {
 public:
  explicit FakeAccess(LeaseStore& leases) : leases_(leases) {}
  Status allow(const ContainerRuntime& c, const NodeSpec& node) override {
    ++allows;
    auto all = leases_.all();
    const bool covered = all && std::any_of(all->begin(), all->end(), [&](const Lease& l) {
                           return l.container == c.name && l.major == node.major && l.minor == node.minor &&
                                  l.state == LeaseState::kAttaching;
                         });
    if (!covered) ++grants_without_lease;
    if (allow_failures > 0) {
      --allow_failures;
      return fail("DeviceAllow=: Access denied");
    }
    granted.insert(key(c.name, node));
    return {};
  }
  Status revoke(const ContainerRuntime& c, const NodeSpec& node) override {
    ++revokes;
    if (revoke_failures > 0) {
      --revoke_failures;
      return fail("DeviceAllow=: Connection timed out");
    }
    granted.erase(key(c.name, node));
    return {};
  }

  int allow_failures = 0;
  int revoke_failures = 0;
  int allows = 0;
  int revokes = 0;
  int grants_without_lease = 0;
  std::set<std::string> granted;

 private:
  LeaseStore& leases_;
};

class DeviceManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = LeaseStore::open((dir_.path() / "state.db").string());
    ASSERT_TRUE(store) << store.error().message();
    leases_.emplace(std::move(*store));
    access_.emplace(*leases_);
    DeviceRule rule;
    rule.match.serial = "A1";
    rules_ = {{"fw", {{rule, "/containers/0/devices/0"}}}, {"other", {}}};
    running_ = {"fw", "other"};
  }

  // A new manager over the same state.db, as a restarted agent has.
  DeviceManager& start() {
    NodeOps nodes;
    nodes.create = [this](const ContainerRuntime& c, const NodeSpec& node) -> Status {
      if (!access_->granted.count(key(c.name, node))) ++nodes_without_grant_;
      if (create_failures_ > 0) {
        --create_failures_;
        return fail("mknod: No space left on device");
      }
      nodes_.insert(key(c.name, node));
      return {};
    };
    nodes.remove = [this](const ContainerRuntime& c, const NodeSpec& node) -> Status {
      nodes_.erase(key(c.name, node));
      return {};
    };
    nodes.remove_links = [this](const ContainerRuntime& c, const NodeSpec& node) -> Status {
      for (const auto& l : node.links) removed_links_.push_back(c.name + " " + l);
      return {};
    };
    manager_ = std::make_unique<DeviceManager>(
        rules_, *leases_, *access_,
        [this](const std::string& name) -> std::optional<pid_t> {
          if (running_.count(name)) return kLeader;
          return std::nullopt;
        },
        std::move(nodes), clock_);
    manager_->on_record([this](DeviceAction action, const Lease& lease, const std::string& detail) {
      records_.push_back({std::string(to_string(action)), lease.container, detail});
    });
    return *manager_;
  }

  static Device board(const std::string& action, const std::string& serial = "A1") {
    Device d;
    d.action = action;
    d.syspath = "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-3/1-3:1.0/ttyUSB0/tty/ttyUSB0";
    d.subsystem = "tty";
    d.devnode = "/dev/ttyUSB0";
    d.major = 188;
    d.minor = 0;
    d.properties = {{"ID_VENDOR_ID", "0403"}, {"ID_MODEL_ID", "6001"}, {"ID_SERIAL_SHORT", serial}};
    d.links = {"/dev/serial/by-id/usb-FTDI_FT232R_" + serial + "-if00-port0"};
    return d;
  }

  std::optional<Lease> lease() {
    auto found = leases_->find(board("add").syspath);
    EXPECT_TRUE(found) << found.error().message();
    return found ? *found : std::nullopt;
  }
  std::string state() {
    auto l = lease();
    return l ? std::string(to_string(l->state)) : "(none)";
  }
  size_t count(const std::string& action) const {
    return static_cast<size_t>(
        std::count_if(records_.begin(), records_.end(), [&](const auto& r) { return r[0] == action; }));
  }
  // Runs the retries that are due next, as the daemon's timer does: the
  // clock moves on to when they are due.
  void retry() {
    auto next = manager_->next_retry();
    ASSERT_TRUE(next);
    if (*next > clock_.monotonic()) {
      clock_.advance(std::chrono::duration_cast<std::chrono::milliseconds>(*next - clock_.monotonic()));
    }
    manager_->retry_due();
  }

  void attach_board() {
    manager_->handle(board("add"), clock_.monotonic());
    ASSERT_EQ(state(), "attached");
    ASSERT_EQ(nodes_, (std::set<std::string>{"fw 188:0"}));
    records_.clear();
  }

  test::TempDir dir_;
  std::optional<LeaseStore> leases_;
  std::optional<FakeAccess> access_;
  FakeClock clock_;
  DeviceRuleSet rules_;
  std::set<std::string> running_;
  std::set<std::string> nodes_;
  int create_failures_ = 0;
  int nodes_without_grant_ = 0;
  std::vector<std::string> removed_links_;            // "container link"
  std::vector<std::array<std::string, 3>> records_;  // action, container, detail
  std::unique_ptr<DeviceManager> manager_;
};

TEST_F(DeviceManagerTest, AttachesWithTheLeaseWrittenBeforeTheGrant) {
  start();
  attach_board();
  EXPECT_EQ(access_->allows, 1);
  EXPECT_EQ(access_->grants_without_lease, 0);
  EXPECT_EQ(nodes_without_grant_, 0);
  EXPECT_FALSE(manager_->next_retry());
}

TEST_F(DeviceManagerTest, ARevokeThatFailsKeepsTheLeaseRevokingUntilTheGrantIsGone) {
  start();
  attach_board();
  access_->revoke_failures = 2;

  manager_->handle(board("remove"), clock_.monotonic());
  EXPECT_EQ(state(), "revoking");
  EXPECT_EQ(count("error"), 1U);
  EXPECT_EQ(count("detach"), 0U);
  EXPECT_EQ(access_->granted, (std::set<std::string>{"fw 188:0"}));
  const auto first = manager_->next_retry();
  ASSERT_TRUE(first);
  EXPECT_LE(*first, clock_.monotonic() + DeviceManager::kFirstRetry);

  // Not due yet: nothing is tried.
  manager_->retry_due(*first - std::chrono::milliseconds(1));
  EXPECT_EQ(access_->revokes, 1);

  retry();  // fails again, and waits twice as long
  EXPECT_EQ(access_->revokes, 2);
  EXPECT_EQ(state(), "revoking");
  EXPECT_EQ(count("detach"), 0U);
  EXPECT_EQ(count("error"), 1U) << "the same failure again is not another event";
  const auto second = manager_->next_retry();
  ASSERT_TRUE(second);
  EXPECT_GE(*second - *first, DeviceManager::kFirstRetry);

  retry();  // succeeds
  EXPECT_EQ(access_->revokes, 3);
  EXPECT_FALSE(lease());
  EXPECT_TRUE(access_->granted.empty());
  EXPECT_TRUE(nodes_.empty());
  EXPECT_EQ(count("detach"), 1U);
  EXPECT_FALSE(manager_->next_retry());

  manager_->retry_due(clock_.monotonic() + std::chrono::hours(1));
  EXPECT_EQ(count("detach"), 1U);
  EXPECT_EQ(access_->revokes, 3);
}

TEST_F(DeviceManagerTest, AnAllowThatFailsKeepsTheLeaseAttachingWithoutANode) {
  start();
  access_->allow_failures = 2;

  manager_->handle(board("add"), clock_.monotonic());
  EXPECT_EQ(state(), "attaching");
  EXPECT_EQ(count("error"), 1U);
  EXPECT_EQ(count("attach"), 0U);
  EXPECT_TRUE(nodes_.empty());

  retry();
  EXPECT_EQ(state(), "attaching");
  EXPECT_TRUE(nodes_.empty());
  EXPECT_EQ(count("attach"), 0U);

  retry();
  EXPECT_EQ(state(), "attached");
  EXPECT_EQ(nodes_, (std::set<std::string>{"fw 188:0"}));
  EXPECT_EQ(count("attach"), 1U);
  EXPECT_EQ(access_->allows, 3);
  EXPECT_EQ(access_->grants_without_lease, 0);
  EXPECT_EQ(nodes_without_grant_, 0);
  EXPECT_FALSE(manager_->next_retry());
}

TEST_F(DeviceManagerTest, ANodeThatCannotBeCreatedIsRetriedAttaching) {
  start();
  create_failures_ = 1;
  manager_->handle(board("add"), clock_.monotonic());
  EXPECT_EQ(state(), "attaching");
  EXPECT_EQ(count("error"), 1U);
  retry();
  EXPECT_EQ(state(), "attached");
  EXPECT_EQ(count("attach"), 1U);
  EXPECT_EQ(nodes_without_grant_, 0);
}

TEST_F(DeviceManagerTest, AnAttachRetriedAfterItsContainerStoppedWaitsPending) {
  start();
  access_->allow_failures = 1;
  manager_->handle(board("add"), clock_.monotonic());
  EXPECT_EQ(state(), "attaching");
  running_.clear();
  retry();
  EXPECT_EQ(state(), "pending");
  EXPECT_FALSE(manager_->next_retry());
  EXPECT_TRUE(nodes_.empty());
}

TEST_F(DeviceManagerTest, ADeviceWantedByAnotherContainerMovesOnlyOnceRevoked) {
  start();
  attach_board();
  access_->revoke_failures = 1;
  // The rule now names the other container.
  rules_[1].rules = {{rules_[0].rules[0].rule, "/containers/1/devices/0"}};
  rules_[0].rules.clear();

  manager_->handle(board("change"), clock_.monotonic());
  auto l = lease();
  ASSERT_TRUE(l);
  EXPECT_EQ(l->container, "fw");
  EXPECT_EQ(l->state, LeaseState::kRevoking);
  EXPECT_EQ(access_->granted, (std::set<std::string>{"fw 188:0"}));

  retry();
  l = lease();
  ASSERT_TRUE(l);
  EXPECT_EQ(l->container, "other");
  EXPECT_EQ(l->state, LeaseState::kAttached);
  EXPECT_EQ(access_->granted, (std::set<std::string>{"other 188:0"}));
  EXPECT_EQ(nodes_, (std::set<std::string>{"other 188:0"}));
  EXPECT_EQ(count("detach"), 1U);
  EXPECT_EQ(count("attach"), 1U);
}

TEST_F(DeviceManagerTest, AnAdminDetachThatCannotRevokeSaysSoAndIsRetried) {
  start();
  attach_board();
  access_->revoke_failures = 1;
  auto done = manager_->detach_device("usb-FTDI_FT232R_A1-if00-port0");
  ASSERT_FALSE(done);
  EXPECT_NE(done.error().message().find("retried"), std::string::npos) << done.error().message();
  EXPECT_EQ(state(), "revoking");
  EXPECT_EQ(count("error"), 1U);

  retry();
  EXPECT_FALSE(lease());
  ASSERT_EQ(count("detach"), 1U);
  EXPECT_EQ(records_.back()[2], "by command");
}

TEST_F(DeviceManagerTest, ARevokingLeaseOfAStoppedContainerIsRemoved) {
  start();
  attach_board();
  access_->revoke_failures = 5;
  manager_->handle(board("remove"), clock_.monotonic());
  EXPECT_EQ(state(), "revoking");
  // The grant goes with the container.
  running_.clear();
  manager_->container_stopped("fw");
  EXPECT_FALSE(lease());
  EXPECT_EQ(count("detach"), 1U);
  EXPECT_FALSE(manager_->next_retry());
}

TEST_F(DeviceManagerTest, BackoffDoublesUpToAMinute) {
  start();
  attach_board();
  access_->revoke_failures = 1000;
  manager_->handle(board("remove"), clock_.monotonic());
  std::chrono::milliseconds last{0};
  for (int i = 0; i < 12; ++i) {
    retry();  // the clock is now when it was due
    const auto wait =
        std::chrono::duration_cast<std::chrono::milliseconds>(*manager_->next_retry() - clock_.monotonic());
    EXPECT_EQ(wait, std::min(DeviceManager::kFirstRetry * (2 << i), DeviceManager::kLastRetry)) << i;
    EXPECT_GE(wait, std::min(last, DeviceManager::kLastRetry - std::chrono::milliseconds(1)));
    EXPECT_LE(wait, DeviceManager::kLastRetry + std::chrono::milliseconds(1000));
    last = wait;
  }
  EXPECT_GE(last, DeviceManager::kLastRetry - std::chrono::milliseconds(1000));
  EXPECT_EQ(state(), "revoking");
  EXPECT_EQ(count("error"), 1U);
}

// A restarted agent: the leases are what an earlier one left in state.db.
TEST_F(DeviceManagerTest, ReconcileRevokesARevokingLeaseWhoseDeviceIsGone) {
  start();
  attach_board();
  auto l = lease();
  ASSERT_TRUE(l);
  l->state = LeaseState::kRevoking;
  ASSERT_TRUE(leases_->put(*l));

  start().reconcile({});
  EXPECT_FALSE(lease());
  EXPECT_EQ(access_->revokes, 1);
  EXPECT_TRUE(access_->granted.empty());
  EXPECT_TRUE(nodes_.empty());
  EXPECT_EQ(count("detach"), 1U);
}

TEST_F(DeviceManagerTest, ReconcileRevokesAnAttachingLeaseWhoseDeviceIsGone) {
  start();
  access_->allow_failures = 1;
  manager_->handle(board("add"), clock_.monotonic());
  ASSERT_EQ(state(), "attaching");

  start().reconcile({});
  EXPECT_FALSE(lease());
  EXPECT_EQ(access_->revokes, 1);
  EXPECT_EQ(count("detach"), 1U);
}

TEST_F(DeviceManagerTest, ReconcileAttachesAgainAnAttachingLeaseWhoseDeviceIsPresent) {
  start();
  access_->allow_failures = 1;
  manager_->handle(board("add"), clock_.monotonic());
  ASSERT_EQ(state(), "attaching");
  records_.clear();

  start().reconcile({board("")});
  EXPECT_EQ(state(), "attached");
  EXPECT_EQ(nodes_, (std::set<std::string>{"fw 188:0"}));
  EXPECT_EQ(count("attach"), 1U);
  EXPECT_EQ(access_->grants_without_lease, 0);
  EXPECT_FALSE(manager_->next_retry());
}

TEST_F(DeviceManagerTest, ReconcileAttachesAgainARevokingLeaseWhoseDeviceIsBackForTheSameContainer) {
  start();
  attach_board();
  auto l = lease();
  ASSERT_TRUE(l);
  l->state = LeaseState::kRevoking;
  ASSERT_TRUE(leases_->put(*l));

  start().reconcile({board("")});
  EXPECT_EQ(state(), "attached");
  EXPECT_EQ(access_->granted, (std::set<std::string>{"fw 188:0"}));
  EXPECT_EQ(count("detach"), 0U);
}

TEST_F(DeviceManagerTest, ReconcileForgetsARevokingLeaseOfAContainerNotRunning) {
  start();
  attach_board();
  auto l = lease();
  ASSERT_TRUE(l);
  l->state = LeaseState::kRevoking;
  ASSERT_TRUE(leases_->put(*l));
  running_.clear();

  start().reconcile({});
  EXPECT_FALSE(lease());
  EXPECT_EQ(access_->revokes, 0);
  EXPECT_EQ(count("detach"), 1U);
}

TEST_F(DeviceManagerTest, AStateDbThatCannotTakeTheLeaseGetsNoGrant) {
  start();
  // Nothing else writes state.db: a trigger refusing every new lease
  // stands in for a full disk or a locked database.
  {
    auto db = sql::Database::open((dir_.path() / "state.db").string());
    ASSERT_TRUE(db);
    ASSERT_TRUE(db->exec("CREATE TRIGGER refuse BEFORE INSERT ON device_leases BEGIN "
                         "SELECT RAISE(ABORT, 'disk full'); END"));
  }
  manager_->handle(board("add"), clock_.monotonic());
  EXPECT_FALSE(lease());
  EXPECT_EQ(access_->allows, 0);
  EXPECT_TRUE(access_->granted.empty());
  EXPECT_EQ(count("error"), 1U);
}

}  // namespace
}  // namespace farmhand::udev

namespace farmhand::udev {
namespace {

// A "change" event that renames the by-id link: the node stays, the new
// name is made and the old one removed, and the lease keeps the new one.
TEST_F(DeviceManagerTest, AChangeThatRenamesTheLinkRemovesTheOldName) {
  start();
  attach_board();
  Device renamed = board("change");
  renamed.links = {"/dev/serial/by-id/usb-FTDI_Renamed_A1-if00-port0"};
  manager_->handle(renamed, clock_.monotonic());
  EXPECT_EQ(state(), "attached");
  EXPECT_EQ(lease()->links, renamed.links);
  EXPECT_EQ(removed_links_, (std::vector<std::string>{"fw /dev/serial/by-id/usb-FTDI_FT232R_A1-if00-port0"}));
  EXPECT_EQ(nodes_, (std::set<std::string>{"fw 188:0"}));
  // The same change again changes nothing.
  removed_links_.clear();
  manager_->handle(renamed, clock_.monotonic());
  EXPECT_TRUE(removed_links_.empty());
}

// The same adapter back with another minor number (re-enumerated under the
// same syspath): the old grant and node go, the new ones come.
TEST_F(DeviceManagerTest, AReEnumeratedAdapterWithANewMinorGetsOnlyTheNewGrant) {
  start();
  attach_board();
  Device again = board("add");
  again.minor = 1;
  again.devnode = "/dev/ttyUSB1";
  manager_->handle(again, clock_.monotonic());
  EXPECT_EQ(state(), "attached");
  EXPECT_EQ(lease()->minor, 1U);
  EXPECT_EQ(access_->granted, (std::set<std::string>{"fw 188:1"}));
  EXPECT_EQ(nodes_, (std::set<std::string>{"fw 188:1"}));
}

// Two identical adapters without serial numbers, on two ports: the rules
// tell them apart by ID_PATH, and each goes to its own container.
TEST_F(DeviceManagerTest, IdenticalSerialLessAdaptersAreToldApartByTheirPort) {
  DeviceRule left;
  left.match.usb_ids = {{"0403", "6001"}};
  left.match.path = "pci-0000:00:14.0-usb-0:1:1.0";
  DeviceRule right = left;
  right.match.path = "pci-0000:00:14.0-usb-0:2:1.0";
  rules_[0].rules = {{left, "/containers/0/devices/0"}};
  rules_[1].rules = {{right, "/containers/1/devices/0"}};
  start();
  auto adapter = [](int port, unsigned minor) {
    Device d;
    d.action = "add";
    d.syspath = "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-" + std::to_string(port) + "/1-" +
                std::to_string(port) + ":1.0/ttyUSB" + std::to_string(minor) + "/tty/ttyUSB" + std::to_string(minor);
    d.subsystem = "tty";
    d.devnode = "/dev/ttyUSB" + std::to_string(minor);
    d.major = 188;
    d.minor = minor;
    d.properties = {{"ID_VENDOR_ID", "0403"}, {"ID_MODEL_ID", "6001"},
                    {"ID_PATH", "pci-0000:00:14.0-usb-0:" + std::to_string(port) + ":1.0"}};
    d.links = {"/dev/serial/by-path/pci-0000:00:14.0-usb-0:" + std::to_string(port) + ":1.0-port0"};
    return d;
  };
  manager_->handle(adapter(2, 0), clock_.monotonic());  // the right-hand one enumerates first
  manager_->handle(adapter(1, 1), clock_.monotonic());
  EXPECT_EQ(access_->granted, (std::set<std::string>{"other 188:0", "fw 188:1"}));
  EXPECT_EQ(nodes_, (std::set<std::string>{"other 188:0", "fw 188:1"}));
  Device gone = adapter(2, 0);
  gone.action = "remove";
  manager_->handle(gone, clock_.monotonic());
  EXPECT_EQ(access_->granted, (std::set<std::string>{"fw 188:1"}));
}

}  // namespace
}  // namespace farmhand::udev

namespace farmhand::udev {
namespace {

// Plugged in: leased and handed over, with the event's latency measured on
// the injected clock and the lease dated by its calendar time. Unplugged:
// taken back and forgotten.
TEST_F(DeviceManagerTest, PlugAttachesAndUnplugDetaches) {
  start();
  const auto arrived = clock_.monotonic();
  clock_.advance(std::chrono::milliseconds(3));
  manager_->handle(board("add"), arrived);
  auto l = lease();
  ASSERT_TRUE(l);
  EXPECT_EQ(l->state, LeaseState::kAttached);
  EXPECT_EQ(l->container, "fw");
  EXPECT_EQ(l->rule, "/containers/0/devices/0");
  EXPECT_EQ(l->devnode, "/dev/ttyUSB0");
  EXPECT_EQ(l->group, "dialout");
  EXPECT_EQ(l->mode, 0660U);
  EXPECT_EQ(l->links, (std::vector<std::string>{"/dev/serial/by-id/usb-FTDI_FT232R_A1-if00-port0"}));
  EXPECT_EQ(l->since_ms, clock_.wall_ms());
  EXPECT_EQ(access_->granted, (std::set<std::string>{"fw 188:0"}));
  EXPECT_EQ(nodes_, (std::set<std::string>{"fw 188:0"}));
  auto events = leases_->events(10);
  ASSERT_TRUE(events);
  ASSERT_EQ(events->size(), 1U);
  EXPECT_EQ((*events)[0].action, DeviceAction::kAttach);
  EXPECT_EQ((*events)[0].latency_us, 3000);
  EXPECT_EQ((*events)[0].at_ms, clock_.wall_ms());

  clock_.advance(std::chrono::seconds(10));
  manager_->handle(board("remove"), clock_.monotonic());
  EXPECT_FALSE(lease());
  EXPECT_TRUE(access_->granted.empty());
  EXPECT_TRUE(nodes_.empty());
  ASSERT_EQ(records_.size(), 2U);
  EXPECT_EQ(records_[1], (std::array<std::string, 3>{"detach", "fw", ""}));
  events = leases_->events(10);
  ASSERT_TRUE(events);
  ASSERT_EQ(events->size(), 2U);
  EXPECT_EQ((*events)[0].action, DeviceAction::kDetach);  // the newest first
  EXPECT_EQ((*events)[0].latency_us, 0);
}

// A device no rule wants is left alone: no lease, no grant, no event.
TEST_F(DeviceManagerTest, ADeviceNoRuleWantsIsLeftAlone) {
  start();
  manager_->handle(board("add", "B2"), clock_.monotonic());
  EXPECT_FALSE(lease());
  EXPECT_EQ(access_->allows, 0);
  EXPECT_TRUE(records_.empty());
}

// Plugged in while its container is stopped: leased, pending, and handed
// over only when the container starts.
TEST_F(DeviceManagerTest, PlugWhileTheContainerIsStoppedWaitsPendingUntilItStarts) {
  running_.clear();
  start();
  manager_->handle(board("add"), clock_.monotonic());
  EXPECT_EQ(state(), "pending");
  EXPECT_EQ(access_->allows, 0);
  EXPECT_TRUE(nodes_.empty());
  ASSERT_EQ(count("pending"), 1U);
  EXPECT_FALSE(manager_->next_retry());

  // Started under another name: nothing of fw's moves.
  running_ = {"other"};
  manager_->container_started("other");
  EXPECT_EQ(state(), "pending");

  running_ = {"fw", "other"};
  manager_->container_started("fw");
  EXPECT_EQ(state(), "attached");
  EXPECT_EQ(access_->granted, (std::set<std::string>{"fw 188:0"}));
  EXPECT_EQ(nodes_, (std::set<std::string>{"fw 188:0"}));
  EXPECT_EQ(count("attach"), 1U);
  EXPECT_EQ(access_->grants_without_lease, 0);
}

// Stopped: the lease waits, pending (its grant and node went with the
// container); a second stop records nothing more. Started: attached again.
TEST_F(DeviceManagerTest, ContainerStopMakesTheLeasePendingAndStartAttachesItAgain) {
  start();
  attach_board();
  running_.clear();
  access_->granted.clear();
  nodes_.clear();
  manager_->container_stopped("fw");
  EXPECT_EQ(state(), "pending");
  EXPECT_EQ(count("pending"), 1U);
  manager_->container_stopped("fw");
  EXPECT_EQ(count("pending"), 1U);
  EXPECT_EQ(access_->revokes, 0);

  // A start that finds no leader after all leaves it pending, quietly.
  manager_->container_started("fw");
  EXPECT_EQ(state(), "pending");
  EXPECT_EQ(count("pending"), 1U);
  EXPECT_EQ(count("attach"), 0U);

  running_ = {"fw"};
  manager_->container_started("fw");
  EXPECT_EQ(state(), "attached");
  EXPECT_EQ(nodes_, (std::set<std::string>{"fw 188:0"}));
  EXPECT_EQ(count("attach"), 1U);
  // Unplugged while pending: nothing to revoke, the lease goes.
  running_.clear();
  manager_->container_stopped("fw");
  manager_->handle(board("remove"), clock_.monotonic());
  EXPECT_FALSE(lease());
  EXPECT_EQ(access_->revokes, 0);
  EXPECT_EQ(count("detach"), 1U);
}

// An agent restarted over the same state.db: an attached lease whose device
// is still there is attached again (its node may have gone meanwhile),
// keeping the date it was first leased; one whose device went is revoked.
TEST_F(DeviceManagerTest, AManagerOverTheSameLeasesReconcilesAfterARestart) {
  start();
  attach_board();
  const int64_t since = lease()->since_ms;
  Device second = board("add", "A2");
  second.syspath = "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-4/1-4:1.0/ttyUSB1/tty/ttyUSB1";
  second.devnode = "/dev/ttyUSB1";
  second.minor = 1;
  rules_[0].rules.push_back({rules_[0].rules[0].rule, "/containers/0/devices/1"});
  rules_[0].rules[1].rule.match.serial = "A2";
  manager_->handle(second, clock_.monotonic());
  ASSERT_EQ(nodes_, (std::set<std::string>{"fw 188:0", "fw 188:1"}));
  records_.clear();

  nodes_.clear();  // the container restarted while the agent was down
  clock_.advance(std::chrono::minutes(5));
  start().reconcile({board("")});
  EXPECT_EQ(state(), "attached");
  EXPECT_EQ(lease()->since_ms, since);
  EXPECT_EQ(nodes_, (std::set<std::string>{"fw 188:0"}));
  EXPECT_EQ(access_->granted, (std::set<std::string>{"fw 188:0"}));
  auto all = leases_->all();
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), 1U);
  EXPECT_EQ(count("attach"), 1U);
  EXPECT_EQ(count("detach"), 1U);
  EXPECT_EQ(access_->grants_without_lease, 0);
}

// A failed attach is tried again only when the clock says it is due: after
// half a second, then a second, then two.
TEST_F(DeviceManagerTest, AFailedAttachIsRetriedWithBackoffOnTheClock) {
  start();
  access_->allow_failures = 3;
  manager_->handle(board("add"), clock_.monotonic());
  ASSERT_EQ(state(), "attaching");
  ASSERT_EQ(records_.size(), 1U);
  EXPECT_EQ(records_[0], (std::array<std::string, 3>{"error", "fw",
                                                     "attach: DeviceAllow=: Access denied (attaching, retried in "
                                                     "500 ms)"}));
  const auto t0 = clock_.monotonic();
  EXPECT_EQ(manager_->next_retry(), t0 + std::chrono::milliseconds(500));

  int allows = access_->allows;
  for (const int ms : {500, 1000, 2000}) {
    clock_.advance(std::chrono::milliseconds(ms - 1));
    manager_->retry_due();
    EXPECT_EQ(access_->allows, allows) << "not due yet after " << ms - 1 << " ms";
    clock_.advance(std::chrono::milliseconds(1));
    manager_->retry_due();
    EXPECT_EQ(access_->allows, ++allows) << "due after " << ms << " ms";
  }
  EXPECT_EQ(state(), "attached");
  EXPECT_EQ(count("error"), 1U);
  EXPECT_EQ(count("attach"), 1U);
  EXPECT_FALSE(manager_->next_retry());
}

// An admin's detach, by the device's node or its dashboard id; an unknown
// one is refused with the message the server shows.
TEST_F(DeviceManagerTest, DetachByNodeOrIdAndRefusesAnUnknownOne) {
  start();
  attach_board();
  auto none = manager_->detach_device("ttyUSB9");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().message(), "no device \"ttyUSB9\" is leased to a container");
  EXPECT_EQ(state(), "attached");

  auto done = manager_->detach_device("/dev/ttyUSB0");
  ASSERT_TRUE(done) << done.error().message();
  EXPECT_EQ(*done, "/dev/ttyUSB0 detached from fw");
  EXPECT_FALSE(lease());
  EXPECT_TRUE(access_->granted.empty());
  EXPECT_TRUE(nodes_.empty());
  ASSERT_EQ(records_.size(), 1U);
  EXPECT_EQ(records_[0], (std::array<std::string, 3>{"detach", "fw", "by command"}));

  // Back when plugged in again.
  manager_->handle(board("add"), clock_.monotonic());
  EXPECT_EQ(state(), "attached");
  auto again = manager_->detach_device("usb-FTDI_FT232R_A1-if00-port0");
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_FALSE(lease());
}

// The first rule that matches wins, by the order of the rule set, and names
// where it is written.
TEST(MatchDevice, TheFirstMatchingRuleWins) {
  Device d;
  d.subsystem = "tty";
  d.devnode = "/dev/ttyUSB0";
  d.properties = {{"ID_VENDOR_ID", "0403"}, {"ID_MODEL_ID", "6001"}, {"ID_SERIAL_SHORT", "A1"}};
  DeviceRule by_serial;
  by_serial.match.serial = "A1";
  DeviceRule by_id;
  by_id.match.usb_ids = {{"0403", "6001"}};
  by_id.group = "plugdev";
  DeviceRule other;
  other.match.serial = "B2";
  const DeviceRuleSet rules = {{"a", {{other, "/containers/0/devices/0"}}},
                               {"b", {{other, "/containers/1/devices/0"}, {by_id, "/containers/1/devices/1"}}},
                               {"c", {{by_serial, "/containers/2/devices/0"}}}};
  auto m = match_device(rules, d);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->container, "b");
  EXPECT_EQ(m->rule, "/containers/1/devices/1");
  ASSERT_NE(m->device_rule, nullptr);
  EXPECT_EQ(m->device_rule->group, "plugdev");
  d.properties["ID_SERIAL_SHORT"] = "B2";
  d.properties["ID_VENDOR_ID"] = "1234";
  m = match_device(rules, d);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->container, "a");
  d.properties["ID_SERIAL_SHORT"] = "C3";
  EXPECT_FALSE(match_device(rules, d));
}

TEST(NodeFor, KeepsOnlyTheSerialLinksSortedWithTheRulesGroupAndMode) {
  Device d;
  d.devnode = "/dev/ttyACM0";
  d.major = 166;
  d.minor = 2;
  d.links = {"/dev/serial/by-path/pci-x", "/dev/disk/by-id/y", "/dev/serial/by-id/usb-z"};
  DeviceRule rule;
  rule.group = "plugdev";
  rule.mode = 0600;
  const NodeSpec n = node_for(d, rule);
  EXPECT_EQ(n.devnode, "/dev/ttyACM0");
  EXPECT_EQ(n.major, 166U);
  EXPECT_EQ(n.minor, 2U);
  EXPECT_FALSE(n.block);
  EXPECT_EQ(n.group, "plugdev");
  EXPECT_EQ(n.mode, 0600U);
  EXPECT_EQ(n.links, (std::vector<std::string>{"/dev/serial/by-id/usb-z", "/dev/serial/by-path/pci-x"}));
}

TEST(DeviceStrings, EachStateAndActionHasOneNameBothWays) {
  for (const auto s : {LeaseState::kAttached, LeaseState::kPending, LeaseState::kAttaching, LeaseState::kRevoking}) {
    EXPECT_EQ(lease_state_from_string(to_string(s)), s);
  }
  EXPECT_EQ(to_string(LeaseState::kAttached), "attached");
  EXPECT_EQ(to_string(LeaseState::kPending), "pending");
  EXPECT_EQ(to_string(LeaseState::kAttaching), "attaching");
  EXPECT_EQ(to_string(LeaseState::kRevoking), "revoking");
  EXPECT_FALSE(lease_state_from_string("detaching"));
  EXPECT_FALSE(lease_state_from_string(""));
  for (const auto a : {DeviceAction::kAttach, DeviceAction::kDetach, DeviceAction::kPending, DeviceAction::kError}) {
    EXPECT_EQ(device_action_from_string(to_string(a)), a);
  }
  EXPECT_EQ(to_string(DeviceAction::kAttach), "attach");
  EXPECT_EQ(to_string(DeviceAction::kDetach), "detach");
  EXPECT_EQ(to_string(DeviceAction::kPending), "pending");
  EXPECT_EQ(to_string(DeviceAction::kError), "error");
  EXPECT_FALSE(device_action_from_string("attached"));
}

}  // namespace
}  // namespace farmhand::udev
