// The agent ⇄ server wire protocol (docs/protocol.md): one value type per
// frame, one decoder that validates an untrusted frame completely, one
// encoder. The server, the agent's link and the fuzzer all use these.
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace farmhand::protocol {

inline constexpr const char* kAgentSubprotocol = "farmhand.v1";
inline constexpr const char* kUiSubprotocol = "farmhand.ui.v1";
inline constexpr size_t kMaxMessageBytes = 4096;
inline constexpr size_t kMaxKindBytes = 64;

// Why a frame was refused: an `error` frame's code and message.
struct ProtocolError {
  std::string code;     // bad_json, bad_frame, unknown_type, ...
  std::string message;  // "/seq: expected an unsigned integer"
  bool operator==(const ProtocolError&) const = default;
};

struct Enroll {
  std::string token;
  std::string version;
  bool operator==(const Enroll&) const = default;
};
struct Enrolled {
  std::string host;
  std::string credential;
  bool operator==(const Enrolled&) const = default;
};
struct Hello {
  std::string host;
  std::string credential;
  std::string version;
  std::vector<std::string> capabilities;
  bool operator==(const Hello&) const = default;
};
struct Welcome {
  std::string server_version;
  uint64_t acked_seq = 0;
  uint32_t heartbeat_s = 10;
  bool operator==(const Welcome&) const = default;
};
// The inventory is a snapshot the server keeps as it is and shows; the
// decoder checks its shape (docs/protocol.md) and keeps the JSON.
struct Inventory {
  nlohmann::json body;  // the whole frame without "type"
  bool operator==(const Inventory&) const = default;
};
struct Event {
  uint64_t seq = 0;
  int64_t time = 0;
  std::string kind;
  std::optional<std::string> container;
  std::optional<std::string> device;
  std::string message;
  bool operator==(const Event&) const = default;
};
struct Ack {
  uint64_t seq = 0;
  bool operator==(const Ack&) const = default;
};
struct Heartbeat {
  int64_t time = 0;
  std::array<double, 3> load{};
  uint64_t memory_total_kb = 0;
  uint64_t memory_available_kb = 0;
  uint64_t disk_total_kb = 0;
  uint64_t disk_free_kb = 0;
  uint64_t uptime_s = 0;
  bool operator==(const Heartbeat&) const = default;
};
struct Command {
  std::string id;  // empty in a dashboard's request; the server assigns it
  std::string host;  // only in the dashboard's frame
  std::string action;  // start, stop, restart, apply, reprovision, detach
  std::optional<std::string> container;
  std::optional<std::string> device;
  std::optional<std::string> step;  // rebuild: this step and those after it (else all)
  bool clean = false;               // rebuild: clean the steps' sources first
  bool operator==(const Command&) const = default;
};
// Where a command's apply is: its running step, and a heartbeat line
// while the step is long. Not stored; the server passes it to dashboards.
struct Progress {
  std::string command;    // the command's id
  std::string container;
  std::string step;       // "setup lws-build"
  std::string text;       // "lws-build: 2 m 10 s, 4,312 lines, last: ..." ("" when the step starts)
  bool operator==(const Progress&) const = default;
};
struct CommandResult {
  std::string id;
  bool ok = false;
  std::string message;
  bool operator==(const CommandResult&) const = default;
};
struct ErrorFrame {
  ProtocolError error;
  bool operator==(const ErrorFrame&) const = default;
};

// Frames an agent sends.
using AgentFrame = std::variant<Enroll, Hello, Inventory, Event, Heartbeat, CommandResult, Progress>;
// Frames the server sends to an agent.
using ServerFrame = std::variant<Enrolled, Welcome, Ack, Command, ErrorFrame>;

// Decodes one frame from an agent. Never throws; any refusal is a
// ProtocolError ready to send back.
std::variant<AgentFrame, ProtocolError> decode_agent_frame(std::string_view text);
// Decodes one frame from the server, as the agent does.
std::variant<ServerFrame, ProtocolError> decode_server_frame(std::string_view text);
// Decodes a dashboard's `command` frame (the only frame a browser sends).
std::variant<Command, ProtocolError> decode_ui_command(std::string_view text);

// Whether `action` is one of the command actions, and what it needs.
bool known_action(std::string_view action);
std::optional<std::string> command_problem(const Command& c);  // "restart needs a container"

nlohmann::json to_json(const AgentFrame& frame);
nlohmann::json to_json(const ServerFrame& frame);
nlohmann::json to_json(const Heartbeat& hb);  // without "type"
std::string encode(const AgentFrame& frame);
std::string encode(const ServerFrame& frame);

}  // namespace farmhand::protocol
