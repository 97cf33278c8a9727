// The keyword-table walker (provisioner/config/keywords.h) on a small table of
// its own: what it does with unknown, repeated, wrongly typed and missing keys,
// and with defaults, independent of any section of agent.json.
#include "provisioner/config/keywords.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/strict_json.h"

namespace farmhand::provisioner::config_parser {
namespace {

// A section with one key of each kind: required, defaulted, typed, untyped.
struct Probe {
  std::string name;
  int count = 0;
  bool verbose = false;
  std::string any_type;
  std::vector<std::string> calls;  // "key@pointer", in the order the handlers ran

  void on_name(const Json& v, const std::string& p) {
    name = v.get<std::string>();
    calls.push_back("name@" + p);
  }
  void on_count(const Json& v, const std::string& p) {
    count = v.get<int>();
    calls.push_back("count@" + p);
  }
  void on_verbose(const Json& v, const std::string& p) {
    verbose = v.get<bool>();
    calls.push_back("verbose@" + p);
  }
  void on_anything(const Json& v, const std::string& p) {
    any_type = type_name(v);
    calls.push_back("anything@" + p);
  }
};

// Deliberately not in alphabetical order: the unknown-key message sorts the
// names, the required-key messages keep the table's order.
const Keyword<Probe> kProbeKeys[] = {
    {"name", JsonType::kString, Presence::kRequired, nullptr, &Probe::on_name},
    {"count", JsonType::kInteger, Presence::kOptional, [](Probe& p) { p.count = 7; }, &Probe::on_count},
    {"verbose", JsonType::kBoolean, Presence::kOptional, nullptr, &Probe::on_verbose},
    {"anything", JsonType::kAny, Presence::kRequired, nullptr, &Probe::on_anything},
};

struct Walked {
  Probe probe;
  std::vector<std::string> errors;
};

Walked walk(const std::string& text, const std::string& pointer = "/section") {
  auto doc = parse_json_keeping_duplicates(text);
  EXPECT_TRUE(doc.ok()) << text;
  Walked out;
  if (!doc.ok()) return out;
  Diagnostics diag;
  walk_keywords(diag, *doc, pointer, kProbeKeys, out.probe);
  out.errors = diag.take_errors();
  return out;
}

TEST(ConfigKeywords, KnownKeysGoToTheirHandlersInDocumentOrder) {
  Walked w = walk(R"({"verbose": true, "anything": [1], "name": "n", "count": 3})");
  EXPECT_TRUE(w.errors.empty());
  EXPECT_EQ(w.probe.calls, (std::vector<std::string>{"verbose@/section/verbose", "anything@/section/anything",
                                                     "name@/section/name", "count@/section/count"}));
  EXPECT_EQ(w.probe.name, "n");
  EXPECT_EQ(w.probe.count, 3);
  EXPECT_TRUE(w.probe.verbose);
  EXPECT_EQ(w.probe.any_type, "an array");
}

TEST(ConfigKeywords, UnknownKeyIsAnErrorListingTheSortedKeysAndIsNotHandled) {
  Walked w = walk(R"({"name": "n", "colour": 1, "anything": null})");
  EXPECT_EQ(w.errors, (std::vector<std::string>{
                          "/section/colour: unknown key (expected one of: anything, count, name, verbose)"}));
  EXPECT_EQ(w.probe.calls, (std::vector<std::string>{"name@/section/name", "anything@/section/anything"}));
}

TEST(ConfigKeywords, UnknownKeyNameIsEscapedInThePointer) {
  Walked w = walk(R"({"name": "n", "anything": 1, "a/b~c": 1})", "/");
  EXPECT_EQ(w.errors,
            (std::vector<std::string>{"/a~1b~0c: unknown key (expected one of: anything, count, name, verbose)"}));
}

TEST(ConfigKeywords, WrongTypeIsAnErrorAndKeepsTheDefault) {
  Walked w = walk(R"({"name": 5, "count": "3", "verbose": 1, "anything": {}})");
  EXPECT_EQ(w.errors, (std::vector<std::string>{"/section/name: expected a string, got a number",
                                                "/section/count: expected an integer, got a string",
                                                "/section/verbose: expected a boolean, got a number"}));
  EXPECT_EQ(w.probe.calls, (std::vector<std::string>{"anything@/section/anything"}));
  EXPECT_EQ(w.probe.count, 7);
  EXPECT_FALSE(w.probe.verbose);
  EXPECT_EQ(w.probe.any_type, "an object");
}

TEST(ConfigKeywords, AFractionIsNotAnInteger) {
  Walked w = walk(R"({"name": "n", "anything": 0, "count": 2.5})");
  EXPECT_EQ(w.errors, (std::vector<std::string>{"/section/count: expected an integer, got a number"}));
  EXPECT_EQ(w.probe.count, 7);
}

TEST(ConfigKeywords, DefaultIsAppliedWhenTheKeyIsAbsentAndReplacedWhenGiven) {
  Walked absent = walk(R"({"name": "n", "anything": 0})");
  EXPECT_TRUE(absent.errors.empty());
  EXPECT_EQ(absent.probe.count, 7);
  EXPECT_EQ(absent.probe.calls, (std::vector<std::string>{"name@/section/name", "anything@/section/anything"}));

  Walked given = walk(R"({"count": 0, "name": "n", "anything": 0})");
  EXPECT_TRUE(given.errors.empty());
  EXPECT_EQ(given.probe.count, 0);
}

TEST(ConfigKeywords, ApplyDefaultsAloneWritesEveryDefault) {
  Probe probe;
  probe.count = -1;
  apply_defaults<Probe>(probe, kProbeKeys);
  EXPECT_EQ(probe.count, 7);
  EXPECT_TRUE(probe.calls.empty());
}

TEST(ConfigKeywords, MissingRequiredKeysComeLastInTableOrder) {
  Walked w = walk(R"({"verbose": "no", "colour": 1})");
  EXPECT_EQ(w.errors,
            (std::vector<std::string>{"/section/verbose: expected a boolean, got a string",
                                      "/section/colour: unknown key (expected one of: anything, count, name, verbose)",
                                      "/section/name: required key is missing",
                                      "/section/anything: required key is missing"}));
  EXPECT_TRUE(w.probe.calls.empty());
}

TEST(ConfigKeywords, ARequiredKeyOfTheWrongTypeIsNotAlsoMissing) {
  Walked w = walk(R"({"name": [], "anything": 1})");
  EXPECT_EQ(w.errors, (std::vector<std::string>{"/section/name: expected a string, got an array"}));
}

TEST(ConfigKeywords, RepeatedKeyIsAnErrorAtItsPlaceAndOnlyTheFirstIsHandled) {
  Walked w = walk(R"({"name": "first", "anything": 1, "name": "second", "name": 3})");
  EXPECT_EQ(w.errors, (std::vector<std::string>{"/section/name: duplicate key", "/section/name: duplicate key"}));
  EXPECT_EQ(w.probe.name, "first");
  EXPECT_EQ(w.probe.calls, (std::vector<std::string>{"name@/section/name", "anything@/section/anything"}));
}

TEST(ConfigKeywords, RootPointerHasNoDoubleSlash) {
  Walked w = walk(R"({"anything": 1})", "/");
  EXPECT_EQ(w.errors, (std::vector<std::string>{"/name: required key is missing"}));
}

TEST(ConfigKeywords, DiagnosticsPrefixStartsEveryLaterMessage) {
  Diagnostics diag;
  diag.error("/a", "first");
  diag.set_prefix("repo.json@1234: ");
  diag.error("/b", "second");
  diag.warn("/c", "advice");
  EXPECT_EQ(diag.error_count(), 2u);
  EXPECT_EQ(diag.take_errors(), (std::vector<std::string>{"/a: first", "repo.json@1234: /b: second"}));
  EXPECT_EQ(diag.take_warnings(), (std::vector<std::string>{"repo.json@1234: /c: advice"}));
}

TEST(ConfigKeywords, ExpectTypeNamesBothTypes) {
  Diagnostics diag;
  EXPECT_TRUE(expect_type(diag, Json("x"), "/s", JsonType::kString));
  EXPECT_TRUE(expect_type(diag, Json(nullptr), "/any", JsonType::kAny));
  EXPECT_FALSE(expect_type(diag, Json(nullptr), "/o", JsonType::kObject));
  EXPECT_FALSE(expect_type(diag, Json(true), "/a", JsonType::kArray));
  EXPECT_EQ(diag.errors(), (std::vector<std::string>{"/o: expected an object, got null",
                                                     "/a: expected an array, got a boolean"}));
}

}  // namespace
}  // namespace farmhand::provisioner::config_parser
