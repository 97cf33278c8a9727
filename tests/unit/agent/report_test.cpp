#include "agent/report.h"

#include <gtest/gtest.h>

namespace farmhand::agent {
namespace {

TEST(Heartbeat, ParsesProcTexts) {
  auto load = parse_loadavg("0.42 0.30 0.25 2/345 6789\n");
  ASSERT_TRUE(load);
  EXPECT_DOUBLE_EQ((*load)[0], 0.42);
  EXPECT_DOUBLE_EQ((*load)[2], 0.25);
  EXPECT_FALSE(parse_loadavg("garbage"));
  EXPECT_FALSE(parse_loadavg("1 2"));
  auto mem = parse_meminfo("MemTotal:        8052124 kB\nMemFree:  1 kB\nMemAvailable:    5120000 kB\n");
  ASSERT_TRUE(mem);
  EXPECT_EQ(mem->first, 8052124U);
  EXPECT_EQ(mem->second, 5120000U);
  EXPECT_FALSE(parse_meminfo("MemTotal: 1 kB\n"));
  EXPECT_EQ(parse_uptime_seconds("86400.57 170000.00\n"), 86400U);
  EXPECT_FALSE(parse_uptime_seconds("x"));
}

TEST(Heartbeat, ReadsThisHostAndIsAValidFrame) {
  auto hb = read_heartbeat(HostRoot("/"), "/", 1795406470000);
  ASSERT_TRUE(hb) << hb.error().message();
  EXPECT_GT(hb->memory_total_kb, 0U);
  EXPECT_GT(hb->disk_total_kb, 0U);
  auto back = protocol::decode_agent_frame(protocol::encode(protocol::AgentFrame{*hb}));
  ASSERT_TRUE(std::holds_alternative<protocol::AgentFrame>(back));
}

TEST(Inventory, MapsStatesHealthAndLeasesIntoAValidFrame) {
  InventoryInput in;
  in.host = {{"hostname", "builder-01"}};
  provisioner::ContainerStatus a;
  a.name = "a";
  a.state = provisioner::ContainerState::kRunning;
  a.address = "192.168.80.2";
  provisioner::ContainerStatus b;
  b.name = "b";
  b.state = provisioner::ContainerState::kReady;
  provisioner::ContainerStatus c;
  c.name = "c";
  c.state = provisioner::ContainerState::kCreating;
  a.payload = provisioner::ContainerStatus::Payload{
      "failed", "setup lws-build", "setup step \"lws-build\" exited with status 2:\n...\nmake: *** [all] Error 2\n", 11};
  in.containers = {a, b, c};
  in.running = [](const std::string& n) { return n == "b"; };
  in.health["a"] = provisioner::NetworkHealth{false, "no DNS", -1, -1, ""};
  in.started_ms["a"] = 5;
  udev::Lease l;
  l.devnode = "/dev/ttyUSB0";
  l.links = {"/dev/serial/by-path/x", "/dev/serial/by-id/usb-FTDI_A1-if00-port0"};
  l.container = "a";
  l.state = udev::LeaseState::kPending;
  l.since_ms = 7;
  in.leases = {l};
  const auto body = inventory_body(in, 99);
  EXPECT_EQ(body["containers"][0]["state"], "running");
  EXPECT_EQ(body["containers"][0]["network"], "unhealthy");
  EXPECT_EQ(body["containers"][0]["network_reason"], "no DNS");
  EXPECT_EQ(body["containers"][0]["since"], 5);
  EXPECT_EQ(body["containers"][0]["payload"],
            nlohmann::json({{"state", "failed"}, {"item", "setup lws-build"}, {"message", "make: *** [all] Error 2"},
                            {"time", 11}}));
  EXPECT_FALSE(body["containers"][1].contains("payload"));
  EXPECT_EQ(body["containers"][1]["state"], "running");
  EXPECT_EQ(body["containers"][1]["network"], "unknown");
  EXPECT_EQ(body["containers"][2]["state"], "unknown");
  EXPECT_EQ(body["devices"][0]["id"], "usb-FTDI_A1-if00-port0");
  EXPECT_EQ(body["devices"][0]["state"], "pending");
  nlohmann::json frame = body;
  frame["type"] = "inventory";
  auto decoded = protocol::decode_agent_frame(frame.dump());
  ASSERT_TRUE(std::holds_alternative<protocol::AgentFrame>(decoded))
      << std::get<protocol::ProtocolError>(decoded).message;
}

TEST(Inventory, SendsEachLeaseStateAsItIs) {
  InventoryInput in;
  in.host = {{"hostname", "builder-01"}};
  for (const char* state : {"attached", "pending", "attaching", "revoking"}) {
    udev::Lease l;
    l.devnode = std::string("/dev/ttyUSB") + std::to_string(in.leases.size());
    l.container = "a";
    l.state = *udev::lease_state_from_string(state);
    in.leases.push_back(l);
  }
  const auto body = inventory_body(in, 99);
  ASSERT_EQ(body["devices"].size(), 4U);
  EXPECT_EQ(body["devices"][0]["state"], "attached");
  EXPECT_EQ(body["devices"][1]["state"], "pending");
  EXPECT_EQ(body["devices"][2]["state"], "attaching");
  EXPECT_EQ(body["devices"][3]["state"], "revoking");
  nlohmann::json frame = body;
  frame["type"] = "inventory";
  auto decoded = protocol::decode_agent_frame(frame.dump());
  ASSERT_TRUE(std::holds_alternative<protocol::AgentFrame>(decoded))
      << std::get<protocol::ProtocolError>(decoded).message;
}

}  // namespace
}  // namespace farmhand::agent
