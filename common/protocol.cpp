#include "common/protocol.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>

namespace farmhand::protocol {

using nlohmann::json;

namespace {

constexpr size_t kMaxIdBytes = 256;  // names, ids, tokens, versions

// Thrown only inside this file, to unwind a decoder to its one catch.
struct Refusal {
  ProtocolError error;
};

[[noreturn]] void refuse(const std::string& code, const std::string& message) { throw Refusal{{code, message}}; }

// Reads the members of one JSON object, each check naming its pointer.
class Reader {
 public:
  Reader(const json& object, std::string pointer) : j_(object), pointer_(std::move(pointer)) {}

  std::string at(std::string_view key) const { return pointer_ + "/" + std::string(key); }

  const json* find(std::string_view key) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return nullptr;
    return &*it;
  }
  const json& need(std::string_view key) const {
    const json* v = find(key);
    if (v == nullptr) refuse("bad_frame", at(key) + ": missing");
    return *v;
  }

  std::string string(std::string_view key, size_t max = kMaxIdBytes, bool allow_empty = false) const {
    return checked_string(need(key), key, max, allow_empty);
  }
  std::optional<std::string> optional_string(std::string_view key, size_t max = kMaxIdBytes,
                                             bool allow_empty = false) const {
    const json* v = find(key);
    if (v == nullptr) return std::nullopt;
    return checked_string(*v, key, max, allow_empty);
  }
  uint64_t unsigned_integer(std::string_view key) const {
    const json& v = need(key);
    if (!v.is_number_unsigned()) refuse("bad_frame", at(key) + ": expected an unsigned integer");
    return v.get<uint64_t>();
  }
  int64_t time(std::string_view key) const {
    const json& v = need(key);
    if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > INT64_MAX)) {
      refuse("bad_frame", at(key) + ": expected an integer (milliseconds since the epoch)");
    }
    const int64_t t = v.get<int64_t>();
    if (t < 0) refuse("bad_frame", at(key) + ": expected a time after 1970");
    return t;
  }
  bool boolean(std::string_view key) const {
    const json& v = need(key);
    if (!v.is_boolean()) refuse("bad_frame", at(key) + ": expected true or false");
    return v.get<bool>();
  }
  const json& object(std::string_view key) const {
    const json& v = need(key);
    if (!v.is_object()) refuse("bad_frame", at(key) + ": expected an object");
    return v;
  }
  const json& array(std::string_view key) const {
    const json& v = need(key);
    if (!v.is_array()) refuse("bad_frame", at(key) + ": expected an array");
    return v;
  }
  std::string one_of(std::string_view key, std::initializer_list<std::string_view> allowed) const {
    std::string s = string(key);
    if (std::find(allowed.begin(), allowed.end(), s) == allowed.end()) {
      std::string list;
      for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      refuse("bad_frame", at(key) + ": expected one of " + list);
    }
    return s;
  }

 private:
  std::string checked_string(const json& v, std::string_view key, size_t max, bool allow_empty) const {
    if (!v.is_string()) refuse("bad_frame", at(key) + ": expected a string");
    const auto& s = v.get_ref<const std::string&>();
    if (s.empty() && !allow_empty) refuse("bad_frame", at(key) + ": must not be empty");
    if (s.size() > max) refuse("bad_frame", at(key) + ": longer than " + std::to_string(max) + " bytes");
    return s;
  }

  const json& j_;
  std::string pointer_;
};

json parse_object(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) refuse("bad_json", "the frame is not valid JSON");
  if (!j.is_object()) refuse("bad_json", "the frame is not a JSON object");
  return j;
}

std::string frame_type(const json& j) {
  auto it = j.find("type");
  if (it == j.end()) refuse("bad_frame", "/type: missing");
  if (!it->is_string()) refuse("bad_frame", "/type: expected a string");
  return it->get<std::string>();
}

void check_kind(const std::string& kind, const std::string& pointer) {
  const bool ok = !kind.empty() && kind.size() <= kMaxKindBytes &&
                  std::all_of(kind.begin(), kind.end(), [](char c) {
                    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
                  });
  if (!ok) refuse("bad_frame", pointer + ": expected at most 64 characters from [a-z0-9_]");
}

Event read_event(const Reader& r) {
  Event e;
  e.seq = r.unsigned_integer("seq");
  if (e.seq == 0) refuse("bad_frame", "/seq: must be at least 1");
  e.time = r.time("time");
  e.kind = r.string("kind", kMaxKindBytes);
  check_kind(e.kind, "/kind");
  e.container = r.optional_string("container");
  e.device = r.optional_string("device");
  e.message = r.string("message", kMaxMessageBytes, true);
  return e;
}

uint64_t kilobytes(const Reader& r, std::string_view key) { return r.unsigned_integer(key); }

Heartbeat read_heartbeat(const Reader& r) {
  Heartbeat h;
  h.time = r.time("time");
  const json& load = r.array("load");
  if (load.size() != 3) refuse("bad_frame", "/load: expected 3 numbers");
  for (size_t i = 0; i < 3; ++i) {
    if (!load[i].is_number() || !std::isfinite(load[i].get<double>()) || load[i].get<double>() < 0) {
      refuse("bad_frame", "/load/" + std::to_string(i) + ": expected a number of at least 0");
    }
    h.load[i] = load[i].get<double>();
  }
  h.memory_total_kb = kilobytes(r, "memory_total_kb");
  h.memory_available_kb = kilobytes(r, "memory_available_kb");
  h.disk_total_kb = kilobytes(r, "disk_total_kb");
  h.disk_free_kb = kilobytes(r, "disk_free_kb");
  h.uptime_s = r.unsigned_integer("uptime_s");
  return h;
}

// The inventory is stored and shown as sent; its shape is still checked,
// so the dashboard never meets a container without a name.
Inventory read_inventory(const json& j) {
  Reader r(j, "");
  (void)r.time("time");
  const json& host = r.object("host");
  Reader hr(host, "/host");
  for (const char* key : {"hostname", "os", "kernel", "arch", "farmhand_version", "network_backend", "firewall",
                          "config_commit"}) {
    (void)hr.optional_string(key, kMaxIdBytes, true);
  }
  if (hr.find("actions") != nullptr) {
    const json& actions = hr.array("actions");
    for (size_t i = 0; i < actions.size(); ++i) {
      if (!actions[i].is_string() || actions[i].get_ref<const std::string&>().size() > kMaxIdBytes) {
        refuse("bad_frame", "/host/actions/" + std::to_string(i) + ": expected an action name");
      }
    }
  }
  const json& containers = r.array("containers");
  for (size_t i = 0; i < containers.size(); ++i) {
    const std::string p = "/containers/" + std::to_string(i);
    if (!containers[i].is_object()) refuse("bad_frame", p + ": expected an object");
    Reader c(containers[i], p);
    (void)c.string("name");
    (void)c.one_of("state", {"running", "stopped", "failed", "unknown"});
    (void)c.one_of("network", {"healthy", "unhealthy", "unknown"});
    for (const char* key : {"distro", "release", "address"}) (void)c.optional_string(key, kMaxIdBytes, true);
    (void)c.optional_string("network_reason", kMaxMessageBytes, true);
    if (c.find("since") != nullptr) (void)c.time("since");
    if (c.find("sources") != nullptr) {
      const json& sources = c.array("sources");
      for (size_t k = 0; k < sources.size(); ++k) {
        const std::string sp = p + "/sources/" + std::to_string(k);
        if (!sources[k].is_object()) refuse("bad_frame", sp + ": expected an object");
        Reader src(sources[k], sp);
        (void)src.string("name");
        (void)src.optional_string("commit", kMaxIdBytes, true);
      }
    }
    if (c.find("payload") != nullptr) {
      const json& payload = c.object("payload");
      Reader pl(payload, p + "/payload");
      (void)pl.one_of("state", {"ok", "running", "failed", "interrupted"});
      (void)pl.optional_string("item", kMaxIdBytes, true);
      (void)pl.optional_string("message", kMaxMessageBytes, true);
      if (pl.find("time") != nullptr) (void)pl.time("time");
    }
  }
  const json& devices = r.array("devices");
  for (size_t i = 0; i < devices.size(); ++i) {
    const std::string p = "/devices/" + std::to_string(i);
    if (!devices[i].is_object()) refuse("bad_frame", p + ": expected an object");
    Reader d(devices[i], p);
    (void)d.string("id");
    (void)d.string("container");
    (void)d.one_of("state", {"attached", "pending", "attaching", "revoking"});
    (void)d.optional_string("node");
    if (d.find("since") != nullptr) (void)d.time("since");
  }
  Inventory inv;
  inv.body = j;
  inv.body.erase("type");
  return inv;
}

Command read_command(const Reader& r, bool from_ui) {
  Command c;
  if (from_ui) {
    c.host = r.string("host");
  } else {
    c.id = r.string("id");
  }
  c.action = r.string("action");
  c.container = r.optional_string("container");
  c.device = r.optional_string("device");
  c.step = r.optional_string("step");
  if (r.find("clean") != nullptr) c.clean = r.boolean("clean");
  if (auto problem = command_problem(c)) refuse("bad_frame", *problem);
  return c;
}

template <typename Fn>
auto guarded(Fn&& body) -> std::variant<decltype(body()), ProtocolError> {
  try {
    return body();
  } catch (const Refusal& r) {
    return r.error;
  } catch (const std::exception& e) {  // a nlohmann type error the checks missed
    return ProtocolError{"bad_frame", e.what()};
  }
}

std::vector<std::string> read_capabilities(const Reader& r) {
  std::vector<std::string> out;
  const json* caps = r.find("capabilities");
  if (caps == nullptr) return out;
  if (!caps->is_array() || caps->size() > 64) refuse("bad_frame", "/capabilities: expected an array of strings");
  for (const auto& c : *caps) {
    if (!c.is_string() || c.get_ref<const std::string&>().size() > kMaxIdBytes) {
      refuse("bad_frame", "/capabilities: expected an array of strings");
    }
    out.push_back(c.get<std::string>());
  }
  return out;
}

}  // namespace

bool known_action(std::string_view action) {
  for (std::string_view a : {"start", "stop", "restart", "apply", "reprovision", "detach", "rebuild"}) {
    if (a == action) return true;
  }
  return false;
}

std::optional<std::string> command_problem(const Command& c) {
  if (!known_action(c.action)) {
    return "/action: expected one of start, stop, restart, apply, reprovision, detach, rebuild";
  }
  if (c.action != "rebuild" && (c.step || c.clean)) return "/step: only rebuild takes a step or clean";
  if (c.action == "detach") {
    if (!c.device) return "/device: detach needs a device";
  } else if (c.action != "apply" && !c.container) {
    return "/container: " + c.action + " needs a container";
  }
  return std::nullopt;
}

std::variant<AgentFrame, ProtocolError> decode_agent_frame(std::string_view text) {
  return guarded([&]() -> AgentFrame {
    const json j = parse_object(text);
    const std::string type = frame_type(j);
    Reader r(j, "");
    if (type == "enroll") return Enroll{r.string("token"), r.string("version")};
    if (type == "hello") {
      return Hello{r.string("host"), r.string("credential"), r.string("version"), read_capabilities(r)};
    }
    if (type == "inventory") return read_inventory(j);
    if (type == "event") return read_event(r);
    if (type == "heartbeat") return read_heartbeat(r);
    if (type == "command_result") {
      return CommandResult{r.string("id"), r.boolean("ok"), r.string("message", kMaxMessageBytes, true)};
    }
    if (type == "progress") {
      return Progress{r.string("command"), r.string("container"), r.string("step"),
                      r.string("text", kMaxMessageBytes, true)};
    }
    refuse("unknown_type", "/type: unknown frame type \"" + type.substr(0, 64) + "\"");
  });
}

std::variant<ServerFrame, ProtocolError> decode_server_frame(std::string_view text) {
  return guarded([&]() -> ServerFrame {
    const json j = parse_object(text);
    const std::string type = frame_type(j);
    Reader r(j, "");
    if (type == "enrolled") return Enrolled{r.string("host"), r.string("credential")};
    if (type == "welcome") {
      Welcome w;
      w.server_version = r.string("server_version");
      w.acked_seq = r.unsigned_integer("acked_seq");
      const uint64_t hb = r.unsigned_integer("heartbeat_s");
      if (hb < 1 || hb > 3600) refuse("bad_frame", "/heartbeat_s: expected 1 to 3600");
      w.heartbeat_s = static_cast<uint32_t>(hb);
      return w;
    }
    if (type == "ack") return Ack{r.unsigned_integer("seq")};
    if (type == "command") return read_command(r, false);
    if (type == "error") return ErrorFrame{{r.string("code"), r.string("message", kMaxMessageBytes, true)}};
    refuse("unknown_type", "/type: unknown frame type \"" + type.substr(0, 64) + "\"");
  });
}

std::variant<Command, ProtocolError> decode_ui_command(std::string_view text) {
  return guarded([&]() -> Command {
    const json j = parse_object(text);
    const std::string type = frame_type(j);
    if (type != "command") refuse("unknown_type", "/type: unknown frame type \"" + type.substr(0, 64) + "\"");
    return read_command(Reader(j, ""), true);
  });
}

json to_json(const Heartbeat& h) {
  return json{{"time", h.time},
              {"load", {h.load[0], h.load[1], h.load[2]}},
              {"memory_total_kb", h.memory_total_kb},
              {"memory_available_kb", h.memory_available_kb},
              {"disk_total_kb", h.disk_total_kb},
              {"disk_free_kb", h.disk_free_kb},
              {"uptime_s", h.uptime_s}};
}

namespace {

json command_json(const Command& c) {
  json j{{"type", "command"}};
  if (!c.id.empty()) j["id"] = c.id;
  if (!c.host.empty()) j["host"] = c.host;
  j["action"] = c.action;
  if (c.container) j["container"] = *c.container;
  if (c.device) j["device"] = *c.device;
  if (c.step) j["step"] = *c.step;
  if (c.clean) j["clean"] = true;
  return j;
}

struct AgentEncoder {
  json operator()(const Enroll& f) const { return {{"type", "enroll"}, {"token", f.token}, {"version", f.version}}; }
  json operator()(const Hello& f) const {
    return {{"type", "hello"}, {"host", f.host}, {"credential", f.credential}, {"version", f.version},
            {"capabilities", f.capabilities}};
  }
  json operator()(const Inventory& f) const {
    json j{{"type", "inventory"}};
    if (f.body.is_object()) j.update(f.body);
    return j;
  }
  json operator()(const Event& e) const {
    json j{{"type", "event"}, {"seq", e.seq}, {"time", e.time}, {"kind", e.kind}};
    if (e.container) j["container"] = *e.container;
    if (e.device) j["device"] = *e.device;
    j["message"] = e.message;
    return j;
  }
  json operator()(const Heartbeat& h) const {
    json j{{"type", "heartbeat"}};
    j.update(to_json(h));
    return j;
  }
  json operator()(const CommandResult& r) const {
    return {{"type", "command_result"}, {"id", r.id}, {"ok", r.ok}, {"message", r.message}};
  }
  json operator()(const Progress& p) const {
    return {{"type", "progress"}, {"command", p.command}, {"container", p.container}, {"step", p.step},
            {"text", p.text}};
  }
};

struct ServerEncoder {
  json operator()(const Enrolled& f) const {
    return {{"type", "enrolled"}, {"host", f.host}, {"credential", f.credential}};
  }
  json operator()(const Welcome& w) const {
    return {{"type", "welcome"}, {"server_version", w.server_version}, {"acked_seq", w.acked_seq},
            {"heartbeat_s", w.heartbeat_s}};
  }
  json operator()(const Ack& a) const { return {{"type", "ack"}, {"seq", a.seq}}; }
  json operator()(const Command& c) const { return command_json(c); }
  json operator()(const ErrorFrame& e) const {
    return {{"type", "error"}, {"code", e.error.code}, {"message", e.error.message}};
  }
};

}  // namespace

json to_json(const AgentFrame& frame) { return std::visit(AgentEncoder{}, frame); }
json to_json(const ServerFrame& frame) { return std::visit(ServerEncoder{}, frame); }

// Invalid UTF-8 from a peer must not throw while re-encoding: replace it.
std::string encode(const AgentFrame& frame) {
  return to_json(frame).dump(-1, ' ', false, json::error_handler_t::replace);
}
std::string encode(const ServerFrame& frame) {
  return to_json(frame).dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace farmhand::protocol
