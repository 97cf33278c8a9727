#include "server/config.h"

#include <arpa/inet.h>

#include <functional>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "common/fs.h"
#include "common/json_pointer.h"
#include "common/strict_json.h"

namespace farmhand::server {
namespace {

using Json = nlohmann::ordered_json;

bool is_ip_address(const std::string& s) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// One pass over the document, collecting every problem.
class Validator {
 public:
  Result<ServerConfig> run(const Json& root) {
    config_ = default_server_config();
    if (!root.is_object()) {
      error("/", "expected an object");
    } else {
      walk(root, "/", {"database", "heartbeat_history_days", "heartbeat_s", "limits", "listen", "tls"},
           [&](const std::string& key, const Json& v, const std::string& p) { top_level(key, v, p); });
    }
    if (!errors_.empty()) {
      std::string all;
      for (const auto& e : errors_) all += (all.empty() ? "" : "\n") + e;
      return fail(all);
    }
    return config_;
  }

 private:
  using Handler = std::function<void(const std::string&, const Json&, const std::string&)>;

  void error(const std::string& pointer, const std::string& reason) { errors_.push_back(pointer + ": " + reason); }

  // Visits members in document order; repeated and unknown keys are errors.
  void walk(const Json& obj, const std::string& p, std::initializer_list<const char*> known, const Handler& handle) {
    std::vector<std::string> names(known.begin(), known.end());
    std::set<std::string> seen;
    for (const auto& [key, value] : obj.get_ref<const Json::object_t&>()) {
      std::string kp = json_pointer_child(p, key);
      if (!seen.insert(key).second) {
        error(kp, "duplicate key");
      } else if (std::find(names.begin(), names.end(), key) == names.end()) {
        std::string list;
        for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
        error(kp, "unknown key (expected one of: " + list + ")");
      } else {
        handle(key, value, kp);
      }
    }
  }

  bool object(const Json& v, const std::string& p) {
    if (!v.is_object()) error(p, "expected an object");
    return v.is_object();
  }

  void uint_in(const Json& v, const std::string& p, uint64_t lo, uint64_t hi, auto& out) {
    if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0)) {
      error(p, "expected an unsigned integer");
      return;
    }
    uint64_t n = v.get<uint64_t>();
    if (n < lo || n > hi) {
      error(p, "expected an integer from " + std::to_string(lo) + " to " + std::to_string(hi) + ", got " +
                   std::to_string(n));
      return;
    }
    out = static_cast<std::remove_reference_t<decltype(out)>>(n);
  }

  std::optional<std::string> nonempty_string(const Json& v, const std::string& p) {
    if (!v.is_string()) {
      error(p, "expected a string");
      return std::nullopt;
    }
    auto s = v.get<std::string>();
    if (s.empty()) {
      error(p, "must not be empty");
      return std::nullopt;
    }
    return s;
  }

  void top_level(const std::string& key, const Json& v, const std::string& p) {
    if (key == "database") {
      if (auto s = nonempty_string(v, p)) config_.database = *s;
    } else if (key == "heartbeat_s") {
      uint_in(v, p, 1, 3600, config_.heartbeat_s);
    } else if (key == "heartbeat_history_days") {
      uint_in(v, p, 1, 3650, config_.heartbeat_history_days);
    } else if (key == "listen") {
      if (!object(v, p)) return;
      walk(v, p, {"address", "port"}, [&](const std::string& k, const Json& value, const std::string& kp) {
        if (k == "port") {
          uint_in(value, kp, 0, 65535, config_.listen_port);
        } else if (auto s = nonempty_string(value, kp)) {
          if (is_ip_address(*s)) {
            config_.listen_address = *s;
          } else {
            error(kp, "\"" + *s + "\" is not an IPv4 or IPv6 address");
          }
        }
      });
    } else if (key == "tls") {
      if (!object(v, p)) return;
      walk(v, p, {"cert", "key"}, [&](const std::string& k, const Json& value, const std::string& kp) {
        if (auto s = nonempty_string(value, kp)) (k == "cert" ? config_.tls_cert : config_.tls_key) = *s;
      });
      if (v.contains("cert") != v.contains("key")) {
        error(p, "give both \"cert\" and \"key\", or neither");
      }
    } else if (key == "limits") {
      if (!object(v, p)) return;
      walk(v, p, {"burst", "frames_per_second", "hello_timeout_s", "max_frame_bytes"},
           [&](const std::string& k, const Json& value, const std::string& kp) {
             ServerLimits& l = config_.limits;
             if (k == "burst") uint_in(value, kp, 1, 10000000, l.burst);
             if (k == "frames_per_second") uint_in(value, kp, 1, 1000000, l.frames_per_second);
             if (k == "hello_timeout_s") uint_in(value, kp, 1, 3600, l.hello_timeout_s);
             if (k == "max_frame_bytes") uint_in(value, kp, 1024, 16777216, l.max_frame_bytes);
           });
    }
  }

  ServerConfig config_;
  std::vector<std::string> errors_;
};

}  // namespace

ServerConfig default_server_config() {
  const ServerDefaults& d = kServerDefaults;
  ServerConfig c;
  c.listen_address = d.listen_address;
  c.listen_port = d.listen_port;
  c.database = d.database;
  c.limits = {d.max_frame_bytes, d.frames_per_second, d.burst, d.hello_timeout_s};
  c.heartbeat_s = d.heartbeat_s;
  c.heartbeat_history_days = d.heartbeat_history_days;
  return c;
}

Result<ServerConfig> parse_server_config(std::string_view text) {
  auto doc = parse_json_keeping_duplicates(text);
  if (!doc) return doc.error();
  return Validator().run(*doc);
}

Result<ServerConfig> load_server_config(const std::string& path, bool path_given) {
  auto text = read_file_if_exists(path);
  if (!text) return text.error();
  if (!*text) {
    if (!path_given) return default_server_config();
    return fail("cannot read '" + path + "': no such file");
  }
  auto config = parse_server_config(**text);
  if (!config) return config.error().context(path);
  return config;
}

Status apply_listen_override(ServerConfig& config, std::string_view value) {
  auto colon = value.rfind(':');
  if (colon == std::string_view::npos) return fail("--listen: expected ADDR:PORT, got \"" + std::string(value) + "\"");
  std::string addr(value.substr(0, colon));
  std::string port(value.substr(colon + 1));
  if (addr.size() >= 2 && addr.front() == '[' && addr.back() == ']') addr = addr.substr(1, addr.size() - 2);
  if (!is_ip_address(addr)) return fail("--listen: \"" + addr + "\" is not an IPv4 or IPv6 address");
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(port) > 65535) {
    return fail("--listen: \"" + port + "\" is not a port number");
  }
  config.listen_address = addr;
  config.listen_port = static_cast<uint16_t>(std::stoul(port));
  return {};
}

}  // namespace farmhand::server
