// The checks that span containers, run once every container is read: unique
// names (also as systemd < v245 shortened them), device rules that could
// claim the same device, a parent link carrying both macvlan and ipvlan, and
// overlapping subnets. Each container is compared with those before it.
#include "provisioner/config/checks.h"
#include "provisioner/config/sections.h"

namespace farmhand::provisioner::config_parser {
namespace {

// The pointer of a container's network/link, from that of its network/subnet.
std::string link_pointer(const ContainerFacts& facts) {
  return child(facts.subnet_pointer.substr(0, facts.subnet_pointer.rfind('/')), "link");
}

void check_name(Diagnostics& diag, const std::vector<ContainerFacts>& facts, size_t i) {
  const size_t legacy = kDefaults.legacy_ifname_chars;
  const ContainerFacts& a = facts[i];
  for (size_t j = 0; a.name && j < i; ++j) {
    const ContainerFacts& b = facts[j];
    if (!b.name) continue;
    if (*a.name == *b.name) {
      diag.error(a.name_pointer, "duplicate name " + quote(*a.name) + " (also at " + b.name_pointer + ")");
      return;
    }
    if (a.name->substr(0, legacy) == b.name->substr(0, legacy)) {
      diag.error(a.name_pointer, quote(*a.name) + " collides with " + quote(*b.name) + " (" + b.name_pointer +
                                     "): systemd older than v245 names both host interfaces \"ve-" +
                                     a.name->substr(0, legacy) + "\"");
      return;
    }
  }
}

void check_device_rules(Diagnostics& diag, const std::vector<ContainerFacts>& facts, size_t i) {
  const ContainerFacts& a = facts[i];
  for (const auto& [rule_pointer, rule] : a.device_rules) {
    bool reported = false;
    for (size_t j = 0; j < i && !reported; ++j) {
      const ContainerFacts& b = facts[j];
      if (a.name && b.name && *a.name == *b.name) continue;
      for (const auto& [other_pointer, other] : b.device_rules) {
        if (!udev::rules_may_overlap(rule, other)) continue;
        diag.error(rule_pointer, "can match the same device as " + other_pointer + " (container " +
                                     quote(b.name.value_or("?")) +
                                     "): a device belongs to one container at most; make the rules differ in "
                                     "usb_ids, serial, path, interface, subsystem or by_id");
        reported = true;
        break;
      }
    }
  }
}

void check_link(Diagnostics& diag, const std::vector<ContainerFacts>& facts, size_t i) {
  const ContainerFacts& a = facts[i];
  for (size_t j = 0; !a.link.empty() && j < i; ++j) {
    const ContainerFacts& b = facts[j];
    if (b.link == a.link && b.mode != a.mode) {
      diag.error(link_pointer(a), quote(a.link) + " already carries " + std::string(to_string(b.mode)) +
                                      " links (" + link_pointer(b) + "): the kernel does not allow " +
                                      std::string(to_string(a.mode)) + " links on the same interface");
      return;
    }
  }
}

void check_subnet_overlap(Diagnostics& diag, const std::vector<ContainerFacts>& facts, size_t i) {
  const ContainerFacts& a = facts[i];
  for (size_t j = 0; a.subnet && j < i; ++j) {
    const ContainerFacts& b = facts[j];
    if (b.subnet && a.subnet->overlaps(*b.subnet)) {
      diag.error(a.subnet_pointer, a.subnet->str() + " overlaps " + b.subnet->str() + " (" + b.subnet_pointer + ")");
      return;
    }
  }
}

}  // namespace

void cross_container_checks(Diagnostics& diag, const std::vector<ContainerFacts>& facts) {
  for (size_t i = 0; i < facts.size(); ++i) {
    check_name(diag, facts, i);
    check_device_rules(diag, facts, i);
    check_link(diag, facts, i);
    check_subnet_overlap(diag, facts, i);
  }
}

}  // namespace farmhand::provisioner::config_parser
