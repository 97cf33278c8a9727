// compute_plan: desired layouts against observed host state, no I/O.
#include "provisioner/plan.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace farmhand::provisioner {
namespace {

using Reasons = std::vector<std::string>;

AgentConfig config() {
  AgentConfig c;
  c.paths = {"/var/lib/machines", "/var/lib/farmhand", "/var/cache/farmhand",
             "/etc/systemd/nspawn", "/etc/systemd/system"};
  return c;
}

ReleaseRecipe recipe() {
  ReleaseRecipe r;
  r.distro = "debian";
  r.build_packages = {"gcc"};
  r.network_method = "networkd";
  r.fingerprint = "fp";
  return r;
}

ContainerSpec spec(const std::string& name, const std::string& release = "bookworm") {
  ContainerSpec s;
  s.name = name;
  s.distro = "debian";
  s.release = release;
  s.arch = "amd64";
  return s;
}

ContainerLayout layout(const ContainerSpec& s, CloneMethod method = CloneMethod::kCopy) {
  return make_layout(config(), s, recipe(), Cidr{0xC0A85000u, 24}, method, "host");
}

ContainerRecord record(const ContainerLayout& l, Phase phase = Phase::kReady) {
  return {l.spec.name, spec_json(l.spec), l.base.key(), std::string(to_string(l.clone_method)),
          phase, 100, 200};
}

// What the host looks like when `l` was applied completely.
ObservedContainer applied(const ContainerLayout& l) {
  ObservedContainer o;
  o.record = record(l);
  o.machine_dir_exists = true;
  o.overlay_mounted = l.clone_method == CloneMethod::kOverlay;
  for (const auto& [p, c] : l.host_files) o.host_files[p] = c;
  for (const auto& [p, c] : l.container_files) o.container_files[p] = c;
  for (const auto& [link, target] : l.links) o.links[link] = target;
  return o;
}

// The plan's single change, by value (the plan is usually a temporary).
Change only_change(const Plan& p) {
  EXPECT_TRUE(p.conflicts.empty());
  EXPECT_EQ(p.changes.size(), 1u);
  return p.changes.empty() ? Change{} : p.changes.front();
}

TEST(SpecJson, IsCanonical) {
  ContainerSpec s = spec("a");
  s.packages = {"zlib1g-dev", "ccache"};
  s.network.subnet = Cidr{0x0A000000u, 24};
  s.binds = {{"/srv/src", "/home/sai/src", true}};
  EXPECT_EQ(spec_json(s),
            R"({"name":"a","distro":"debian","release":"bookworm","arch":"amd64",)"
            R"("packages":["zlib1g-dev","ccache"],"build_packages":true,"subnet":"10.0.0.0/24",)"
            R"("boot":true,"private_users":false,)"
            R"("binds":[{"source":"/srv/src","target":"/home/sai/src","read_only":true}]})");
}

TEST(ComputePlan, CreatesWhenThereIsNoRecord) {
  const auto l = layout(spec("a"));
  const Plan p = compute_plan({l}, {});
  const Change c = only_change(p);
  EXPECT_EQ(c.action, Action::kCreate);
  EXPECT_EQ(c.name, "a");
  EXPECT_EQ(c.reasons, Reasons{"new container"});
  ASSERT_TRUE(c.layout.has_value());
  EXPECT_EQ(c.layout->machine_dir, "/var/lib/machines/a");
  EXPECT_FALSE(c.record.has_value());
  EXPECT_TRUE(p.has_work());
  EXPECT_EQ(p.count(Action::kCreate), 1u);
  // Leftover host files without a record or a root are simply overwritten.
  ObservedContainer leftovers;
  leftovers.host_files["/etc/systemd/nspawn/a.nspawn"] = "old";
  const Change c2 = only_change(compute_plan({l}, {{"a", leftovers}}));
  EXPECT_EQ(c2.action, Action::kCreate);
  EXPECT_EQ(c2.reasons, Reasons{"new container"});
}

TEST(ComputePlan, ResumesAnInterruptedCreate) {
  const auto l = layout(spec("a"));
  ObservedContainer o = applied(l);
  o.record->phase = Phase::kCreating;
  const Change c = only_change(compute_plan({l}, {{"a", o}}));
  EXPECT_EQ(c.action, Action::kCreate);
  EXPECT_EQ(c.reasons, Reasons{"resuming an interrupted create"});
  ASSERT_TRUE(c.record.has_value());
  EXPECT_EQ(c.record->phase, Phase::kCreating);
}

TEST(ComputePlan, UnchangedWhenEverythingMatches) {
  const auto copy = layout(spec("a"));
  const auto overlay = layout(spec("b"), CloneMethod::kOverlay);
  const Plan p = compute_plan({copy, overlay}, {{"a", applied(copy)}, {"b", applied(overlay)}});
  ASSERT_EQ(p.changes.size(), 2u);
  for (const auto& c : p.changes) {
    EXPECT_EQ(c.action, Action::kUnchanged) << c.name;
    EXPECT_TRUE(c.reasons.empty()) << c.name << ": " << c.reasons.at(0);
  }
  EXPECT_FALSE(p.has_work());
  EXPECT_EQ(p.count(Action::kUnchanged), 2u);
  EXPECT_TRUE(p.conflicts.empty());
}

TEST(ComputePlan, UpdatesWhenAHostFileDiffers) {
  const auto l = layout(spec("a"));
  ObservedContainer o = applied(l);
  o.host_files["/etc/systemd/nspawn/a.nspawn"] = "edited by hand\n";
  const Change c = only_change(compute_plan({l}, {{"a", o}}));
  EXPECT_EQ(c.action, Action::kUpdate);
  EXPECT_EQ(c.reasons, Reasons{"/etc/systemd/nspawn/a.nspawn differs"});
}

TEST(ComputePlan, UpdatesWhenAContainerFileIsMissing) {
  const auto l = layout(spec("a"));
  ObservedContainer o = applied(l);
  o.container_files["etc/hostname"] = std::nullopt;
  o.container_files.erase("etc/hosts");
  const Change c = only_change(compute_plan({l}, {{"a", o}}));
  EXPECT_EQ(c.action, Action::kUpdate);
  EXPECT_EQ(c.reasons, (Reasons{"container /etc/hostname is missing", "container /etc/hosts is missing"}));
}

TEST(ComputePlan, UpdatesWhenTheBootLinkIsMissingOrWrong) {
  const auto l = layout(spec("a"));
  ObservedContainer o = applied(l);
  o.links[l.boot_link].reset();
  EXPECT_EQ(only_change(compute_plan({l}, {{"a", o}})).reasons, Reasons{"not enabled at boot"});
  o.links[l.boot_link] = "/dev/null";
  const Change c = only_change(compute_plan({l}, {{"a", o}}));
  EXPECT_EQ(c.action, Action::kUpdate);
  EXPECT_EQ(c.reasons, Reasons{"not enabled at boot"});
}

TEST(ComputePlan, UpdatesWhenTheOverlayMountIsNotEnabled) {
  ContainerSpec s = spec("a");
  s.boot = false;
  const auto l = layout(s, CloneMethod::kOverlay);
  ObservedContainer o = applied(l);
  ASSERT_EQ(l.links.size(), 1u);
  const auto& [link, target] = *l.links.begin();
  o.links[link].reset();
  const Change c = only_change(compute_plan({l}, {{"a", o}}));
  EXPECT_EQ(c.action, Action::kUpdate);
  EXPECT_EQ(c.reasons, Reasons{link + " does not point to " + target});
}

TEST(ComputePlan, UpdatesWhenABootLinkIsStray) {
  ContainerSpec s = spec("a");
  s.boot = false;
  const auto l = layout(s);
  ObservedContainer o = applied(l);
  o.stray_boot_link = true;
  const Change c = only_change(compute_plan({l}, {{"a", o}}));
  EXPECT_EQ(c.action, Action::kUpdate);
  EXPECT_EQ(c.reasons, Reasons{"enabled at boot, but boot is off"});
}

TEST(ComputePlan, UpdatesWhenTheOverlayIsNotMounted) {
  const auto l = layout(spec("a"), CloneMethod::kOverlay);
  ObservedContainer o = applied(l);
  o.overlay_mounted = false;
  const Change c = only_change(compute_plan({l}, {{"a", o}}));
  EXPECT_EQ(c.action, Action::kUpdate);
  EXPECT_EQ(c.reasons, Reasons{"overlay root is not mounted"});
}

TEST(ComputePlan, UpdateReasonsComeInAFixedOrder) {
  const auto old_layout = layout(spec("a"), CloneMethod::kOverlay);
  ContainerSpec s = spec("a");
  s.boot = false;
  s.private_users = true;
  const auto l = layout(s, CloneMethod::kOverlay);
  ObservedContainer o = applied(old_layout);
  o.overlay_mounted = false;
  o.stray_boot_link = true;
  o.container_files["etc/resolv.conf"] = "nameserver 8.8.8.8\n";
  const Change c = only_change(compute_plan({l}, {{"a", o}}));
  EXPECT_EQ(c.action, Action::kUpdate);
  EXPECT_EQ(c.reasons, (Reasons{"boot: true -> false", "private_users: false -> true",
                                "overlay root is not mounted",
                                "/etc/systemd/nspawn/a.nspawn differs",
                                "container /etc/resolv.conf differs",
                                "enabled at boot, but boot is off"}));
}

TEST(ComputePlan, RecreatesAMissingRootFilesystem) {
  const auto l = layout(spec("a"));
  ObservedContainer o = applied(l);
  o.machine_dir_exists = false;
  const Change c = only_change(compute_plan({l}, {{"a", o}}));
  EXPECT_EQ(c.action, Action::kCreate);
  EXPECT_EQ(c.reasons, Reasons{"root filesystem /var/lib/machines/a is missing"});
}

TEST(ComputePlan, ReplacesWhenTheBaseChanges) {
  const auto old_layout = layout(spec("a", "bookworm"));
  const auto l = layout(spec("a", "trixie"));
  ASSERT_NE(old_layout.base.key(), l.base.key());
  const Change c = only_change(compute_plan({l}, {{"a", applied(old_layout)}}));
  EXPECT_EQ(c.action, Action::kReplace);
  EXPECT_EQ(c.reasons,
            (Reasons{"base tree changed: " + old_layout.base.key() + " -> " + l.base.key(),
                     "release: \"bookworm\" -> \"trixie\""}));
  ASSERT_TRUE(c.layout.has_value());
  EXPECT_EQ(c.layout->base.release, "trixie");
  ASSERT_TRUE(c.record.has_value());
  EXPECT_EQ(c.record->base_key, old_layout.base.key());
}

TEST(ComputePlan, ReplaceWithAnUnreadablePreviousSpec) {
  const auto l = layout(spec("a"));
  ObservedContainer o = applied(l);
  o.record->base_key = "debian-bookworm-amd64-000000000000";
  o.record->spec_json = "not json";
  const Change c = only_change(compute_plan({l}, {{"a", o}}));
  EXPECT_EQ(c.action, Action::kReplace);
  EXPECT_EQ(c.reasons, (Reasons{"base tree changed: debian-bookworm-amd64-000000000000 -> " +
                                    l.base.key(),
                                "previous specification unreadable"}));
}

TEST(ComputePlan, NewSpecFieldsAreReportedAsSet) {
  const auto l = layout(spec("a"));
  ObservedContainer o = applied(l);
  auto j = spec_json(l.spec);
  o.record->spec_json = j.substr(0, j.find(",\"binds\"")) + "}";
  const Change c = only_change(compute_plan({l}, {{"a", o}}));
  EXPECT_EQ(c.action, Action::kUpdate);
  EXPECT_EQ(c.reasons, Reasons{"binds: set to []"});
}

TEST(ComputePlan, DesiredContainerBeingDestroyedIsReplaced) {
  const auto l = layout(spec("a"));
  ObservedContainer o = applied(l);
  o.record->phase = Phase::kDestroying;
  const Change c = only_change(compute_plan({l}, {{"a", o}}));
  EXPECT_EQ(c.action, Action::kReplace);
  EXPECT_EQ(c.reasons, Reasons{"an interrupted destroy is finished first"});
}

TEST(ComputePlan, DestroysRecordsNoLongerDesired) {
  const auto gone = layout(spec("gone"));
  ObservedContainer half = applied(layout(spec("half")));
  half.record->phase = Phase::kDestroying;
  half.machine_dir_exists = false;
  ObservedContainer unmanaged;  // no record: not farmhand's, never destroyed
  unmanaged.machine_dir_exists = true;
  const Plan p = compute_plan({}, {{"gone", applied(gone)}, {"half", half}, {"other", unmanaged}});
  EXPECT_TRUE(p.conflicts.empty());
  ASSERT_EQ(p.changes.size(), 2u);
  EXPECT_EQ(p.changes[0].action, Action::kDestroy);
  EXPECT_EQ(p.changes[0].name, "gone");
  EXPECT_EQ(p.changes[0].reasons, Reasons{"no longer in the configuration"});
  EXPECT_FALSE(p.changes[0].layout.has_value());
  ASSERT_TRUE(p.changes[0].record.has_value());
  EXPECT_EQ(p.changes[0].record->name, "gone");
  EXPECT_EQ(p.changes[1].action, Action::kDestroy);
  EXPECT_EQ(p.changes[1].name, "half");
  EXPECT_EQ(p.changes[1].reasons, Reasons{"finishing an interrupted destroy"});
  EXPECT_EQ(p.count(Action::kDestroy), 2u);
  EXPECT_TRUE(p.has_work());
}

TEST(ComputePlan, UnmanagedMachineDirectoryIsAConflict) {
  const auto a = layout(spec("a"));
  const auto b = layout(spec("b"));
  ObservedContainer foreign;
  foreign.machine_dir_exists = true;
  const Plan p = compute_plan({a, b}, {{"a", foreign}});
  EXPECT_EQ(p.conflicts,
            Reasons{"container \"a\": /var/lib/machines/a already exists and is not managed by "
                    "farmhand; remove it or choose another name"});
  ASSERT_EQ(p.changes.size(), 1u);
  EXPECT_EQ(p.changes[0].name, "b");
  EXPECT_EQ(p.changes[0].action, Action::kCreate);
}

TEST(ComputePlan, ChangesFollowConfigOrderThenDestroys) {
  const auto z = layout(spec("zeta"));
  const auto a = layout(spec("alpha"));
  const auto m = layout(spec("mid"));
  const auto old = layout(spec("aaa-old"));
  ObservedContainer m_edit = applied(m);
  m_edit.host_files.begin()->second = "x";
  const Plan p = compute_plan(
      {z, a, m}, {{"alpha", applied(a)}, {"aaa-old", applied(old)}, {"mid", m_edit}});
  ASSERT_EQ(p.changes.size(), 4u);
  const std::pair<const char*, Action> want[] = {{"zeta", Action::kCreate},
                                                 {"alpha", Action::kUnchanged},
                                                 {"mid", Action::kUpdate},
                                                 {"aaa-old", Action::kDestroy}};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(p.changes[i].name, want[i].first) << i;
    EXPECT_EQ(p.changes[i].action, want[i].second) << i;
  }
  EXPECT_EQ(p.count(Action::kCreate), 1u);
  EXPECT_EQ(p.count(Action::kUpdate), 1u);
  EXPECT_EQ(p.count(Action::kReplace), 0u);
}

TEST(ActionNames, AreStable) {
  EXPECT_EQ(to_string(Action::kCreate), "create");
  EXPECT_EQ(to_string(Action::kUpdate), "update");
  EXPECT_EQ(to_string(Action::kReplace), "replace");
  EXPECT_EQ(to_string(Action::kDestroy), "destroy");
  EXPECT_EQ(to_string(Action::kUnchanged), "unchanged");
}

}  // namespace
}  // namespace farmhand::provisioner
