// CIDR parsing and the per-container subnet allocator.
#include "provisioner/subnet.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace farmhand::provisioner {
namespace {

Cidr cidr(const char* text) {
  auto c = Cidr::parse(text);
  EXPECT_TRUE(c.has_value()) << text;
  return c.value_or(Cidr{});
}

const Cidr kPool = Cidr{0xC0A85000u, 20};  // 192.168.80.0/20, the default pool

TEST(Cidr, ParsesValidSubnets) {
  auto c = Cidr::parse("192.168.80.0/20");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->network, 0xC0A85000u);
  EXPECT_EQ(c->prefix, 20);
  EXPECT_EQ(*c, kPool);
  EXPECT_EQ(c->str(), "192.168.80.0/20");
  EXPECT_EQ(c->size(), 4096u);
  EXPECT_EQ(format_ipv4(c->last()), "192.168.95.255");

  for (const char* ok : {"10.0.0.0/8", "1.2.3.4/32", "0.0.0.0/1", "128.0.0.0/1",
                         "255.255.255.255/32", "172.16.0.0/12", "0.0.0.0/8"}) {
    auto p = Cidr::parse(ok);
    ASSERT_TRUE(p) << ok;
    EXPECT_EQ(p->str(), ok);
  }
  EXPECT_EQ(cidr("1.2.3.4/32").size(), 1u);
  EXPECT_EQ(cidr("1.2.3.4/32").last(), cidr("1.2.3.4/32").network);
  EXPECT_EQ(format_ipv4(cidr("128.0.0.0/1").last()), "255.255.255.255");
}

TEST(Cidr, RejectsBadText) {
  for (const char* bad : {
           "192.168.80.1/20",    // host bits set
           "192.168.81.0/20",    // host bits set
           "192.168.080.0/24",   // leading zero in an octet
           "010.0.0.0/8",        // leading zero (octal to some tools)
           "10.0.0.0/08",        // leading zero in the prefix
           "0.0.0.0/0",          // the whole internet
           "10.0.0.0/33", "10.0.0.0/-8", "10.0.0.0/+8", "10.0.0.0/", "10.0.0.0/8x",
           "10.0.0.0/ 8", "10.0.0.0", "10.0.0/8", "10.0.0.0.0/8", "256.0.0.0/8",
           "10..0.0/8", ".10.0.0/8", " 10.0.0.0/8", "10.0.0.0/8 ", "a.b.c.d/8", "garbage", "",
           "/", "10.0.0.0//8", "0x0a.0.0.0/8", "4294967296.0.0.0/8"}) {
    EXPECT_FALSE(Cidr::parse(bad).has_value()) << '"' << bad << '"';
  }
}

TEST(Ipv4, ParsesAndFormats) {
  EXPECT_EQ(parse_ipv4("0.0.0.0"), 0u);
  EXPECT_EQ(parse_ipv4("192.168.80.9"), 0xC0A85009u);
  EXPECT_EQ(parse_ipv4("255.255.255.255"), 0xFFFFFFFFu);
  EXPECT_FALSE(parse_ipv4("1.2.3"));
  EXPECT_FALSE(parse_ipv4("1.2.3.04"));
  EXPECT_FALSE(parse_ipv4("1.2.3.4."));
  EXPECT_EQ(format_ipv4(0xC0A85009u), "192.168.80.9");
  EXPECT_EQ(format_ipv4(0), "0.0.0.0");
}

TEST(Cidr, OverlapsAndContainsAtTheEdges) {
  const Cidr a = cidr("192.168.80.0/24");
  const Cidr b = cidr("192.168.81.0/24");
  const Cidr last = cidr("192.168.95.0/24");
  const Cidr after = cidr("192.168.96.0/24");
  const Cidr before = cidr("192.168.79.0/24");
  EXPECT_FALSE(a.overlaps(b));
  EXPECT_FALSE(b.overlaps(a));
  EXPECT_TRUE(a.overlaps(a));
  EXPECT_TRUE(kPool.overlaps(a));
  EXPECT_TRUE(a.overlaps(kPool));
  EXPECT_TRUE(kPool.overlaps(last));
  EXPECT_FALSE(kPool.overlaps(after));
  EXPECT_FALSE(kPool.overlaps(before));
  EXPECT_TRUE(kPool.contains(a));
  EXPECT_TRUE(kPool.contains(last));
  EXPECT_TRUE(kPool.contains(kPool));
  EXPECT_FALSE(kPool.contains(after));
  EXPECT_FALSE(a.contains(kPool));
  EXPECT_FALSE(cidr("192.168.88.0/21").contains(cidr("192.168.80.0/20")));
  EXPECT_TRUE(cidr("192.168.88.0/21").overlaps(cidr("192.168.80.0/20")));
  EXPECT_TRUE(cidr("192.168.80.5/32").overlaps(a));
  EXPECT_FALSE(cidr("192.168.81.0/32").overlaps(a));
}

TEST(Cidr, HostOffsets) {
  const Cidr a = cidr("192.168.85.0/24");
  EXPECT_EQ(a.host(kGatewayOffset), "192.168.85.1");
  EXPECT_EQ(a.host(kContainerOffset), "192.168.85.9");
  EXPECT_EQ(a.host(0), "192.168.85.0");
  EXPECT_EQ(cidr("10.0.0.0/8").host(256 + 9), "10.0.1.9");
}

TEST(AllocateSubnet, DefaultPoolHoldsSixteenThenIsExhausted) {
  std::vector<Cidr> taken;
  for (int i = 0; i < 16; ++i) {
    auto c = allocate_subnet(kPool, 24, taken);
    ASSERT_TRUE(c) << i;
    EXPECT_EQ(c->str(), "192.168." + std::to_string(80 + i) + ".0/24");
    taken.push_back(*c);
  }
  EXPECT_FALSE(allocate_subnet(kPool, 24, taken).has_value());
}

TEST(AllocateSubnet, SkipsTakenAndFillsHoles) {
  EXPECT_EQ(allocate_subnet(kPool, 24, {cidr("192.168.80.0/22")})->str(), "192.168.84.0/24");
  EXPECT_EQ(allocate_subnet(kPool, 24, {cidr("192.168.80.0/24"), cidr("192.168.82.0/24")})->str(),
            "192.168.81.0/24");
  EXPECT_EQ(allocate_subnet(kPool, 24, {cidr("192.168.80.77/32")})->str(), "192.168.81.0/24");
  EXPECT_EQ(allocate_subnet(kPool, 24, {cidr("10.0.0.0/8")})->str(), "192.168.80.0/24");
  EXPECT_EQ(allocate_subnet(kPool, 28, {cidr("192.168.80.0/28")})->str(), "192.168.80.16/28");
  EXPECT_EQ(allocate_subnet(kPool, 20, {})->str(), "192.168.80.0/20");
  EXPECT_FALSE(allocate_subnet(kPool, 24, {cidr("192.168.0.0/16")}).has_value());
}

TEST(AllocateSubnet, RejectsPrefixesOutsideThePool) {
  EXPECT_FALSE(allocate_subnet(kPool, 19, {}).has_value());   // larger than the pool
  EXPECT_FALSE(allocate_subnet(kPool, 16, {}).has_value());
  EXPECT_FALSE(allocate_subnet(kPool, 31, {}).has_value());   // no room for .1 and .9
  EXPECT_TRUE(allocate_subnet(kPool, 30, {}).has_value());
}

TEST(AllocateSubnet, PoolAtTheTopOfTheAddressSpace) {
  const Cidr top = cidr("255.255.255.0/24");
  std::vector<Cidr> taken;
  for (int i = 0; i < 16; ++i) {
    auto c = allocate_subnet(top, 28, taken);
    ASSERT_TRUE(c) << i;
    taken.push_back(*c);
  }
  EXPECT_EQ(taken.back().str(), "255.255.255.240/28");
  EXPECT_FALSE(allocate_subnet(top, 28, taken).has_value());
}

using Wanted = std::vector<std::pair<std::string, std::optional<Cidr>>>;

TEST(AssignSubnets, NewNamesInOrderThenExhaustion) {
  Wanted wanted;
  for (int i = 0; i < 17; ++i) wanted.emplace_back("c" + std::to_string(i), std::nullopt);
  auto a = assign_subnets(kPool, 24, wanted, {});
  ASSERT_EQ(a.subnets.size(), 16u);
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(a.subnets.at("c" + std::to_string(i)).str(),
              "192.168." + std::to_string(80 + i) + ".0/24");
  }
  EXPECT_EQ(a.exhausted, (std::vector<std::string>{"c16"}));
}

TEST(AssignSubnets, ExplicitSubnetsAreNeverHandedOut) {
  auto a = assign_subnets(kPool, 24,
                          {{"auto1", std::nullopt},
                           {"fixed", cidr("192.168.80.0/24")},
                           {"auto2", std::nullopt},
                           {"elsewhere", cidr("10.9.0.0/16")}},
                          {});
  EXPECT_TRUE(a.exhausted.empty());
  EXPECT_EQ(a.subnets.at("fixed").str(), "192.168.80.0/24");
  EXPECT_EQ(a.subnets.at("auto1").str(), "192.168.81.0/24");
  EXPECT_EQ(a.subnets.at("auto2").str(), "192.168.82.0/24");
  EXPECT_EQ(a.subnets.at("elsewhere").str(), "10.9.0.0/16");
}

TEST(AssignSubnets, PreviousAssignmentsStayStable) {
  // "b" was created first and got .80; "a" is added later in front of it.
  auto a = assign_subnets(kPool, 24, {{"a", std::nullopt}, {"b", std::nullopt}},
                          {{"b", cidr("192.168.80.0/24")}, {"gone", cidr("192.168.81.0/24")}});
  EXPECT_EQ(a.subnets.at("b").str(), "192.168.80.0/24");
  EXPECT_EQ(a.subnets.at("a").str(), "192.168.81.0/24");  // "gone" no longer holds it
  EXPECT_EQ(a.subnets.count("gone"), 0u);
}

TEST(AssignSubnets, PreviousSubnetNowExplicitElsewhereMoves) {
  auto a = assign_subnets(kPool, 24, {{"a", std::nullopt}, {"b", cidr("192.168.80.0/24")}},
                          {{"a", cidr("192.168.80.0/24")}});
  EXPECT_EQ(a.subnets.at("b").str(), "192.168.80.0/24");
  EXPECT_EQ(a.subnets.at("a").str(), "192.168.81.0/24");
}

TEST(AssignSubnets, PreviousOutsidePoolOrOfAnotherSizeIsReplaced) {
  auto a = assign_subnets(kPool, 24, {{"a", std::nullopt}, {"b", std::nullopt}},
                          {{"a", cidr("10.0.0.0/24")}, {"b", cidr("192.168.84.0/23")}});
  EXPECT_EQ(a.subnets.at("a").str(), "192.168.80.0/24");
  EXPECT_EQ(a.subnets.at("b").str(), "192.168.81.0/24");
}

TEST(AssignSubnets, TwoNamesClaimingTheSamePreviousSubnet) {
  auto a = assign_subnets(kPool, 24, {{"a", std::nullopt}, {"b", std::nullopt}},
                          {{"a", cidr("192.168.83.0/24")}, {"b", cidr("192.168.83.0/24")}});
  EXPECT_EQ(a.subnets.at("a").str(), "192.168.83.0/24");
  EXPECT_EQ(a.subnets.at("b").str(), "192.168.80.0/24");
}

TEST(AssignSubnets, PrefixLargerThanThePoolExhaustsEveryAutoName) {
  auto a = assign_subnets(kPool, 16, {{"a", std::nullopt}, {"x", cidr("10.0.0.0/16")}}, {});
  EXPECT_EQ(a.exhausted, (std::vector<std::string>{"a"}));
  EXPECT_EQ(a.subnets.size(), 1u);
  EXPECT_EQ(a.subnets.at("x").str(), "10.0.0.0/16");
}

}  // namespace
}  // namespace farmhand::provisioner
