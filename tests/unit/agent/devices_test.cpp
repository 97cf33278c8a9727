// The device manager's bookkeeping, with a real state.db and fakes for
// the device cgroup and the container's /dev: a lease covers every grant
// at every moment, failed attaches and revokes stay "attaching" and
// "revoking" and are retried, and a restarted agent finishes them.
#include "agent/devices.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/sqlite.h"
#include "tests/unit/temp_dir.h"

namespace farmhand::agent {
namespace {

using Clock = std::chrono::steady_clock;

constexpr pid_t kLeader = 4242;

std::string key(const std::string& container, const udev::NodeSpec& node) {
  return container + " " + std::to_string(node.major) + ":" + std::to_string(node.minor);
}

// The device cgroup: grants per container, with allow and revoke failing
// as often as told. Every allow is checked against the leases: the lease
// must be in state.db, "attaching", before the grant.
class FakeAccess final : public udev::DeviceAccess {
 public:
  explicit FakeAccess(udev::LeaseStore& leases) : leases_(leases) {}
  Status allow(const udev::ContainerRuntime& c, const udev::NodeSpec& node) override {
    ++allows;
    auto all = leases_.all();
    const bool covered = all && std::any_of(all->begin(), all->end(), [&](const udev::Lease& l) {
                           return l.container == c.name && l.major == node.major && l.minor == node.minor &&
                                  l.state == "attaching";
                         });
    if (!covered) ++grants_without_lease;
    if (allow_failures > 0) {
      --allow_failures;
      return fail("DeviceAllow=: Access denied");
    }
    granted.insert(key(c.name, node));
    return {};
  }
  Status revoke(const udev::ContainerRuntime& c, const udev::NodeSpec& node) override {
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
  udev::LeaseStore& leases_;
};

class DeviceManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = udev::LeaseStore::open((dir_.path() / "state.db").string());
    ASSERT_TRUE(store) << store.error().message();
    leases_.emplace(std::move(*store));
    access_.emplace(*leases_);
    provisioner::ContainerSpec fw;
    fw.name = "fw";
    udev::DeviceRule rule;
    rule.match.serial = "A1";
    fw.devices.push_back(rule);
    provisioner::ContainerSpec other;
    other.name = "other";
    config_.containers = {fw, other};
    running_ = {"fw", "other"};
  }

  // A new manager over the same state.db, as a restarted agent has.
  DeviceManager& start() {
    NodeOps nodes;
    nodes.create = [this](const udev::ContainerRuntime& c, const udev::NodeSpec& node) -> Status {
      if (!access_->granted.count(key(c.name, node))) ++nodes_without_grant_;
      if (create_failures_ > 0) {
        --create_failures_;
        return fail("mknod: No space left on device");
      }
      nodes_.insert(key(c.name, node));
      return {};
    };
    nodes.remove = [this](const udev::ContainerRuntime& c, const udev::NodeSpec& node) -> Status {
      nodes_.erase(key(c.name, node));
      return {};
    };
    nodes.remove_links = [this](const udev::ContainerRuntime& c, const udev::NodeSpec& node) -> Status {
      for (const auto& l : node.links) removed_links_.push_back(c.name + " " + l);
      return {};
    };
    manager_ = std::make_unique<DeviceManager>(
        config_, *leases_, *access_,
        [this](const std::string& name) -> std::optional<pid_t> {
          if (running_.count(name)) return kLeader;
          return std::nullopt;
        },
        std::move(nodes));
    manager_->on_record([this](const std::string& action, const udev::Lease& lease, const std::string& detail) {
      records_.push_back({action, lease.container, detail});
    });
    return *manager_;
  }

  static udev::Device board(const std::string& action, const std::string& serial = "A1") {
    udev::Device d;
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

  std::optional<udev::Lease> lease() {
    auto found = leases_->find(board("add").syspath);
    EXPECT_TRUE(found) << found.error().message();
    return found ? *found : std::nullopt;
  }
  std::string state() {
    auto l = lease();
    return l ? l->state : "(none)";
  }
  size_t count(const std::string& action) const {
    return static_cast<size_t>(
        std::count_if(records_.begin(), records_.end(), [&](const auto& r) { return r[0] == action; }));
  }
  // Runs the retries that are due next, as the daemon's timer does.
  void retry() {
    auto next = manager_->next_retry();
    ASSERT_TRUE(next);
    manager_->retry_due(*next);
  }

  void attach_board() {
    manager_->handle(board("add"), Clock::now());
    ASSERT_EQ(state(), "attached");
    ASSERT_EQ(nodes_, (std::set<std::string>{"fw 188:0"}));
    records_.clear();
  }

  test::TempDir dir_;
  std::optional<udev::LeaseStore> leases_;
  std::optional<FakeAccess> access_;
  provisioner::AgentConfig config_;
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

  manager_->handle(board("remove"), Clock::now());
  EXPECT_EQ(state(), "revoking");
  EXPECT_EQ(count("error"), 1U);
  EXPECT_EQ(count("detach"), 0U);
  EXPECT_EQ(access_->granted, (std::set<std::string>{"fw 188:0"}));
  const auto first = manager_->next_retry();
  ASSERT_TRUE(first);
  EXPECT_LE(*first, Clock::now() + DeviceManager::kFirstRetry);

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

  manager_->retry_due(Clock::now() + std::chrono::hours(1));
  EXPECT_EQ(count("detach"), 1U);
  EXPECT_EQ(access_->revokes, 3);
}

TEST_F(DeviceManagerTest, AnAllowThatFailsKeepsTheLeaseAttachingWithoutANode) {
  start();
  access_->allow_failures = 2;

  manager_->handle(board("add"), Clock::now());
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
  manager_->handle(board("add"), Clock::now());
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
  manager_->handle(board("add"), Clock::now());
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
  config_.containers[1].devices = config_.containers[0].devices;
  config_.containers[0].devices.clear();

  manager_->handle(board("change"), Clock::now());
  auto l = lease();
  ASSERT_TRUE(l);
  EXPECT_EQ(l->container, "fw");
  EXPECT_EQ(l->state, "revoking");
  EXPECT_EQ(access_->granted, (std::set<std::string>{"fw 188:0"}));

  retry();
  l = lease();
  ASSERT_TRUE(l);
  EXPECT_EQ(l->container, "other");
  EXPECT_EQ(l->state, "attached");
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
  manager_->handle(board("remove"), Clock::now());
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
  manager_->handle(board("remove"), Clock::now());
  std::chrono::milliseconds last{0};
  for (int i = 0; i < 12; ++i) {
    const auto before = Clock::now();
    retry();
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(*manager_->next_retry() - before);
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
  l->state = "revoking";
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
  manager_->handle(board("add"), Clock::now());
  ASSERT_EQ(state(), "attaching");

  start().reconcile({});
  EXPECT_FALSE(lease());
  EXPECT_EQ(access_->revokes, 1);
  EXPECT_EQ(count("detach"), 1U);
}

TEST_F(DeviceManagerTest, ReconcileAttachesAgainAnAttachingLeaseWhoseDeviceIsPresent) {
  start();
  access_->allow_failures = 1;
  manager_->handle(board("add"), Clock::now());
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
  l->state = "revoking";
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
  l->state = "revoking";
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
  manager_->handle(board("add"), Clock::now());
  EXPECT_FALSE(lease());
  EXPECT_EQ(access_->allows, 0);
  EXPECT_TRUE(access_->granted.empty());
  EXPECT_EQ(count("error"), 1U);
}

}  // namespace
}  // namespace farmhand::agent

namespace farmhand::agent {
namespace {

// A "change" event that renames the by-id link: the node stays, the new
// name is made and the old one removed, and the lease keeps the new one.
TEST_F(DeviceManagerTest, AChangeThatRenamesTheLinkRemovesTheOldName) {
  start();
  attach_board();
  udev::Device renamed = board("change");
  renamed.links = {"/dev/serial/by-id/usb-FTDI_Renamed_A1-if00-port0"};
  manager_->handle(renamed, Clock::now());
  EXPECT_EQ(state(), "attached");
  EXPECT_EQ(lease()->links, renamed.links);
  EXPECT_EQ(removed_links_, (std::vector<std::string>{"fw /dev/serial/by-id/usb-FTDI_FT232R_A1-if00-port0"}));
  EXPECT_EQ(nodes_, (std::set<std::string>{"fw 188:0"}));
  // The same change again changes nothing.
  removed_links_.clear();
  manager_->handle(renamed, Clock::now());
  EXPECT_TRUE(removed_links_.empty());
}

// The same adapter back with another minor number (re-enumerated under the
// same syspath): the old grant and node go, the new ones come.
TEST_F(DeviceManagerTest, AReEnumeratedAdapterWithANewMinorGetsOnlyTheNewGrant) {
  start();
  attach_board();
  udev::Device again = board("add");
  again.minor = 1;
  again.devnode = "/dev/ttyUSB1";
  manager_->handle(again, Clock::now());
  EXPECT_EQ(state(), "attached");
  EXPECT_EQ(lease()->minor, 1U);
  EXPECT_EQ(access_->granted, (std::set<std::string>{"fw 188:1"}));
  EXPECT_EQ(nodes_, (std::set<std::string>{"fw 188:1"}));
}

// Two identical adapters without serial numbers, on two ports: the rules
// tell them apart by ID_PATH, and each goes to its own container.
TEST_F(DeviceManagerTest, IdenticalSerialLessAdaptersAreToldApartByTheirPort) {
  udev::DeviceRule left;
  left.match.usb_ids = {{"0403", "6001"}};
  left.match.path = "pci-0000:00:14.0-usb-0:1:1.0";
  udev::DeviceRule right = left;
  right.match.path = "pci-0000:00:14.0-usb-0:2:1.0";
  config_.containers[0].devices = {left};
  config_.containers[1].devices = {right};
  start();
  auto adapter = [](int port, unsigned minor) {
    udev::Device d;
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
  manager_->handle(adapter(2, 0), Clock::now());  // the right-hand one enumerates first
  manager_->handle(adapter(1, 1), Clock::now());
  EXPECT_EQ(access_->granted, (std::set<std::string>{"other 188:0", "fw 188:1"}));
  EXPECT_EQ(nodes_, (std::set<std::string>{"other 188:0", "fw 188:1"}));
  udev::Device gone = adapter(2, 0);
  gone.action = "remove";
  manager_->handle(gone, Clock::now());
  EXPECT_EQ(access_->granted, (std::set<std::string>{"fw 188:1"}));
}

}  // namespace
}  // namespace farmhand::agent
