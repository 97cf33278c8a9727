// The protocol codec against docs/protocol.md, the single source of truth:
// every example there must decode, and encode back to the same JSON.
#include "common/protocol.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace farmhand::protocol {
namespace {

using nlohmann::json;

struct Example {
  std::string section;  // "agent" or "ui"
  std::string text;
};

std::vector<Example> examples_in_protocol_doc() {
  std::ifstream in(std::string(FARMHAND_TEST_DATA_DIR) + "/../docs/protocol.md");
  std::vector<Example> out;
  std::string line;
  std::string section = "intro";
  bool in_block = false;
  std::string block;
  while (std::getline(in, line)) {
    if (line.rfind("## Agent", 0) == 0) section = "agent";
    if (line.rfind("## Dashboard feed", 0) == 0) section = "ui";
    if (line.rfind("## HTTP API", 0) == 0) section = "http";
    if (line == "```json") {
      in_block = true;
      block.clear();
    } else if (line == "```" && in_block) {
      in_block = false;
      out.push_back({section, block});
    } else if (in_block) {
      block += line + "\n";
    }
  }
  return out;
}

TEST(ProtocolDoc, EveryAgentAndServerExampleRoundTrips) {
  const auto examples = examples_in_protocol_doc();
  size_t agent = 0;
  size_t server = 0;
  for (const auto& ex : examples) {
    if (ex.section != "agent") continue;
    const json doc = json::parse(ex.text);
    const std::string type = doc.at("type");
    auto as_agent = decode_agent_frame(ex.text);
    if (auto* frame = std::get_if<AgentFrame>(&as_agent)) {
      EXPECT_EQ(to_json(*frame), doc) << ex.text;
      EXPECT_EQ(json::parse(encode(*frame)), doc);
      ++agent;
      continue;
    }
    EXPECT_EQ(std::get<ProtocolError>(as_agent).code, "unknown_type")
        << ex.text << std::get<ProtocolError>(as_agent).message;
    auto as_server = decode_server_frame(ex.text);
    ASSERT_TRUE(std::holds_alternative<ServerFrame>(as_server))
        << ex.text << std::get<ProtocolError>(as_server).message;
    EXPECT_EQ(to_json(std::get<ServerFrame>(as_server)), doc) << ex.text;
    ++server;
  }
  // enroll, hello, inventory, event, heartbeat, command_result, progress;
  // enrolled, welcome, ack, command, and the error example of the Errors section.
  EXPECT_EQ(agent, 7U);
  EXPECT_EQ(server, 4U);
}

TEST(ProtocolDoc, DashboardCommandExampleDecodes) {
  size_t commands = 0;
  for (const auto& ex : examples_in_protocol_doc()) {
    if (ex.section != "ui") continue;
    const json doc = json::parse(ex.text);
    ASSERT_TRUE(doc.contains("type")) << ex.text;
    if (doc["type"] != "command") continue;
    auto c = decode_ui_command(ex.text);
    ASSERT_TRUE(std::holds_alternative<Command>(c)) << std::get<ProtocolError>(c).message;
    EXPECT_EQ(std::get<Command>(c).host, "builder-01");
    EXPECT_EQ(std::get<Command>(c).action, "restart");
    ++commands;
  }
  EXPECT_EQ(commands, 1U);
}

TEST(ProtocolDoc, ErrorExampleIsWhatTheDecoderSays) {
  auto r = decode_agent_frame(R"({"type":"event","seq":-1,"time":1,"kind":"x","message":""})");
  ASSERT_TRUE(std::holds_alternative<ProtocolError>(r));
  EXPECT_EQ(std::get<ProtocolError>(r), (ProtocolError{"bad_frame", "/seq: expected an unsigned integer"}));
  // The error example of the doc's Errors section decodes as a server frame.
  auto e = decode_server_frame(
      R"({"type": "error", "code": "bad_frame", "message": "/seq: expected an unsigned integer"})");
  ASSERT_TRUE(std::holds_alternative<ServerFrame>(e));
}

struct BadFrame {
  const char* text;
  const char* code;
  const char* message;
};

class BadAgentFrames : public ::testing::TestWithParam<BadFrame> {};

TEST_P(BadAgentFrames, AreRefusedWithTheExactReason) {
  auto r = decode_agent_frame(GetParam().text);
  ASSERT_TRUE(std::holds_alternative<ProtocolError>(r)) << GetParam().text;
  EXPECT_EQ(std::get<ProtocolError>(r).code, GetParam().code);
  EXPECT_EQ(std::get<ProtocolError>(r).message, GetParam().message);
}

INSTANTIATE_TEST_SUITE_P(
    Catalogue, BadAgentFrames,
    ::testing::Values(
        BadFrame{"", "bad_json", "the frame is not valid JSON"},
        BadFrame{"{\"type\":", "bad_json", "the frame is not valid JSON"},
        BadFrame{"[1,2]", "bad_json", "the frame is not a JSON object"},
        BadFrame{"\"hello\"", "bad_json", "the frame is not a JSON object"},
        BadFrame{"{}", "bad_frame", "/type: missing"},
        BadFrame{"{\"type\":7}", "bad_frame", "/type: expected a string"},
        BadFrame{"{\"type\":\"reboot\"}", "unknown_type", "/type: unknown frame type \"reboot\""},
        BadFrame{"{\"type\":\"ack\",\"seq\":1}", "unknown_type", "/type: unknown frame type \"ack\""},
        BadFrame{"{\"type\":\"hello\",\"host\":\"h\",\"version\":\"1\"}", "bad_frame", "/credential: missing"},
        BadFrame{"{\"type\":\"hello\",\"host\":\"\",\"credential\":\"c\",\"version\":\"1\"}", "bad_frame",
                 "/host: must not be empty"},
        BadFrame{"{\"type\":\"enroll\",\"token\":[],\"version\":\"1\"}", "bad_frame", "/token: expected a string"},
        BadFrame{"{\"type\":\"event\",\"seq\":0,\"time\":1,\"kind\":\"x\",\"message\":\"\"}", "bad_frame",
                 "/seq: must be at least 1"},
        BadFrame{"{\"type\":\"event\",\"seq\":1.5,\"time\":1,\"kind\":\"x\",\"message\":\"\"}", "bad_frame",
                 "/seq: expected an unsigned integer"},
        BadFrame{"{\"type\":\"event\",\"seq\":1,\"time\":\"now\",\"kind\":\"x\",\"message\":\"\"}", "bad_frame",
                 "/time: expected an integer (milliseconds since the epoch)"},
        BadFrame{"{\"type\":\"event\",\"seq\":1,\"time\":1,\"kind\":\"Bad Kind\",\"message\":\"\"}", "bad_frame",
                 "/kind: expected at most 64 characters from [a-z0-9_]"},
        BadFrame{"{\"type\":\"event\",\"seq\":1,\"time\":1,\"kind\":\"x\"}", "bad_frame", "/message: missing"},
        BadFrame{"{\"type\":\"heartbeat\",\"time\":1,\"load\":[1,2],\"memory_total_kb\":1,"
                 "\"memory_available_kb\":1,\"disk_total_kb\":1,\"disk_free_kb\":1,\"uptime_s\":1}",
                 "bad_frame", "/load: expected 3 numbers"},
        BadFrame{"{\"type\":\"heartbeat\",\"time\":1,\"load\":[1,2,-3],\"memory_total_kb\":1,"
                 "\"memory_available_kb\":1,\"disk_total_kb\":1,\"disk_free_kb\":1,\"uptime_s\":1}",
                 "bad_frame", "/load/2: expected a number of at least 0"},
        BadFrame{"{\"type\":\"inventory\",\"time\":1,\"host\":{},\"containers\":[{\"name\":\"a\",\"state\":\"on\","
                 "\"network\":\"healthy\"}],\"devices\":[]}",
                 "bad_frame", "/containers/0/state: expected one of running, stopped, failed, unknown"},
        BadFrame{"{\"type\":\"inventory\",\"time\":1,\"host\":{},\"containers\":[{\"name\":\"a\",\"state\":\"running\","
                 "\"network\":\"healthy\",\"payload\":{\"state\":\"broken\"}}],\"devices\":[]}",
                 "bad_frame", "/containers/0/payload/state: expected one of ok, running, failed, interrupted"},
        BadFrame{"{\"type\":\"inventory\",\"time\":1,\"host\":{},\"containers\":[{\"name\":\"a\",\"state\":\"running\","
                 "\"network\":\"healthy\",\"payload\":\"ok\"}],\"devices\":[]}",
                 "bad_frame", "/containers/0/payload: expected an object"},
        BadFrame{"{\"type\":\"inventory\",\"time\":1,\"host\":{\"actions\":\"apply\"},\"containers\":[],"
                 "\"devices\":[]}",
                 "bad_frame", "/host/actions: expected an array"},
        BadFrame{"{\"type\":\"inventory\",\"time\":1,\"host\":{\"actions\":[\"apply\",3]},\"containers\":[],"
                 "\"devices\":[]}",
                 "bad_frame", "/host/actions/1: expected an action name"},
        BadFrame{"{\"type\":\"inventory\",\"time\":1,\"host\":{},\"containers\":[],\"devices\":[7]}", "bad_frame",
                 "/devices/0: expected an object"},
        BadFrame{"{\"type\":\"inventory\",\"time\":1,\"host\":{},\"containers\":[],\"devices\":[{\"id\":\"x\","
                 "\"container\":\"c\",\"state\":\"detaching\"}]}",
                 "bad_frame", "/devices/0/state: expected one of attached, pending, attaching, revoking"},
        BadFrame{"{\"type\":\"command_result\",\"id\":\"c-1\",\"ok\":\"yes\",\"message\":\"\"}", "bad_frame",
                 "/ok: expected true or false"}));

TEST(UiCommand, NeedsWhatItsActionNeeds) {
  auto r = decode_ui_command(R"({"type":"command","host":"h","action":"restart"})");
  ASSERT_TRUE(std::holds_alternative<ProtocolError>(r));
  EXPECT_EQ(std::get<ProtocolError>(r).message, "/container: restart needs a container");
  r = decode_ui_command(R"({"type":"command","host":"h","action":"detach","container":"c"})");
  EXPECT_EQ(std::get<ProtocolError>(r).message, "/device: detach needs a device");
  r = decode_ui_command(R"({"type":"command","host":"h","action":"format"})");
  EXPECT_EQ(std::get<ProtocolError>(r).message,
            "/action: expected one of start, stop, restart, apply, reprovision, detach, rebuild");
  r = decode_ui_command(R"({"type":"command","host":"h","action":"apply"})");
  EXPECT_TRUE(std::holds_alternative<Command>(r));
  r = decode_ui_command(R"({"type":"command","host":"h","action":"rebuild"})");
  EXPECT_EQ(std::get<ProtocolError>(r).message, "/container: rebuild needs a container");
  r = decode_ui_command(R"({"type":"command","host":"h","action":"restart","container":"c","clean":true})");
  EXPECT_EQ(std::get<ProtocolError>(r).message, "/step: only rebuild takes a step or clean");
  r = decode_ui_command(R"({"type":"command","host":"h","action":"rebuild","container":"c","clean":"yes"})");
  EXPECT_EQ(std::get<ProtocolError>(r).message, "/clean: expected true or false");
  r = decode_ui_command(R"({"type":"command","host":"h","action":"rebuild","container":"c","step":"lws-build",)"
                        R"("clean":true})");
  ASSERT_TRUE(std::holds_alternative<Command>(r));
  EXPECT_EQ(std::get<Command>(r).step, "lws-build");
  EXPECT_TRUE(std::get<Command>(r).clean);
  // The server passes them on to the agent.
  Command to_agent = std::get<Command>(r);
  to_agent.host.clear();
  to_agent.id = "c-9";
  EXPECT_EQ(to_json(ServerFrame{to_agent}).dump(),
            R"({"action":"rebuild","clean":true,"container":"c","id":"c-9","step":"lws-build","type":"command"})");
  r = decode_ui_command(R"({"type":"hello"})");
  EXPECT_EQ(std::get<ProtocolError>(r).code, "unknown_type");
}

TEST(Progress, RoundTripsAndNeedsItsKeys) {
  Progress p{"c-17", "sai-deb12", "setup lws-build", "lws-build: 2 m 10 s, 4,312 lines, last: [ 61%]"};
  auto back = decode_agent_frame(encode(AgentFrame{p}));
  ASSERT_TRUE(std::holds_alternative<AgentFrame>(back));
  EXPECT_EQ(std::get<Progress>(std::get<AgentFrame>(back)), p);
  auto bad = decode_agent_frame(R"({"type":"progress","command":"c-1","step":"x","text":""})");
  ASSERT_TRUE(std::holds_alternative<ProtocolError>(bad));
  EXPECT_EQ(std::get<ProtocolError>(bad).message, "/container: missing");
}

TEST(Encode, InvalidUtf8IsReplacedNotThrown) {
  Event e{1, 2, "x", std::nullopt, std::nullopt, std::string("bad \xff byte")};
  const std::string text = encode(AgentFrame{e});
  auto back = decode_agent_frame(text);
  ASSERT_TRUE(std::holds_alternative<AgentFrame>(back));
}

TEST(Decode, DeepNestingIsRefusedOrDecodedWithoutCrashing) {
  std::string deep(30000, '[');
  deep += std::string(30000, ']');
  auto r = decode_agent_frame("{\"type\":\"event\",\"x\":" + deep + "}");
  EXPECT_TRUE(std::holds_alternative<ProtocolError>(r));
}

}  // namespace
}  // namespace farmhand::protocol
