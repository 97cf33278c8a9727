// A container's "devices": rules that hand matching USB serial devices to it
// while it runs (see udev/rule.h).
#include <cctype>
#include <regex>

#include "provisioner/config/checks.h"
#include "provisioner/config/sections.h"

namespace farmhand::provisioner::config_parser {
namespace {

// "match": which devices a rule takes.
struct MatchSection {
  Diagnostics& diag;
  udev::DeviceMatch& out;

  void usb_ids(const Json& value, const std::string& p) {
    if (value.empty()) diag.error(p, "expected at least one \"vendor:product\" pair");
    static const std::regex kId("([0-9a-fA-F]{4}):([0-9a-fA-F]{4})");
    for (size_t i = 0; i < value.size(); ++i) {
      auto s = as_string(diag, value[i], child(p, i));
      std::smatch parts;
      if (!s) continue;
      if (!std::regex_match(*s, parts, kId)) {
        diag.error(child(p, i),
                   quote(*s) + " is not a USB id pair: write \"vendor:product\" in hex, like \"0403:6001\"");
        continue;
      }
      udev::UsbId id;
      id.vendor = parts[1];
      id.product = parts[2];
      for (auto* part : {&id.vendor, &id.product}) {
        for (auto& c : *part) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      }
      out.usb_ids.push_back(id);
    }
  }

  // The text every other match key has: it ends up in a udev rule.
  std::optional<std::string> plain(const Json& value, const std::string& p) {
    auto s = value.get<std::string>();
    if (s.empty() || has_control(s) || s.find_first_of(" \"\\") != std::string::npos) {
      diag.error(p, quote(s) + " must be non-empty, without spaces, quotes, backslashes or control characters");
      return std::nullopt;
    }
    return s;
  }

  void serial(const Json& value, const std::string& p) {
    if (auto s = plain(value, p)) out.serial = *s;
  }

  void path(const Json& value, const std::string& p) {
    if (auto s = plain(value, p)) out.path = *s;
  }

  void interface(const Json& value, const std::string& p) {
    auto s = plain(value, p);
    if (!s) return;
    static const std::regex kIf("[0-9a-fA-F]{2}");
    if (std::regex_match(*s, kIf)) {
      out.interface = *s;
    } else {
      diag.error(p, quote(*s) + " is not a USB interface number: two hex digits, like \"00\"");
    }
  }

  void subsystem(const Json& value, const std::string& p) {
    auto s = plain(value, p);
    if (!s) return;
    if (*s == "tty" || *s == "usb" || *s == "hidraw") {
      out.subsystem = *s;
    } else {
      diag.error(p, "unknown subsystem " + quote(*s) + " (expected one of: hidraw, tty, usb)");
    }
  }

  void by_id(const Json& value, const std::string& p) {
    auto s = plain(value, p);
    if (!s) return;
    if (s->find('/') != std::string::npos) {
      diag.error(p, quote(*s) + " must be a name in /dev/serial/by-id/, without '/'");
    } else {
      out.by_id = *s;
    }
  }
};

const Keyword<MatchSection> kMatchKeys[] = {
    {"by_id", JsonType::kString, Presence::kOptional, nullptr, &MatchSection::by_id},
    {"interface", JsonType::kString, Presence::kOptional, nullptr, &MatchSection::interface},
    {"path", JsonType::kString, Presence::kOptional, nullptr, &MatchSection::path},
    {"serial", JsonType::kString, Presence::kOptional, nullptr, &MatchSection::serial},
    {"subsystem", JsonType::kString, Presence::kOptional, nullptr, &MatchSection::subsystem},
    {"usb_ids", JsonType::kArray, Presence::kOptional, nullptr, &MatchSection::usb_ids},
};

// One item of "devices".
struct RuleSection {
  Diagnostics& diag;
  udev::DeviceRule& out;

  void match(const Json& value, const std::string& p) {
    MatchSection section{diag, out.match};
    walk_keywords(diag, value, p, kMatchKeys, section);
  }

  void group(const Json& value, const std::string& p) {
    const auto s = value.get<std::string>();
    static const std::regex kGroup("[a-z_][a-z0-9_-]{0,31}");
    if (std::regex_match(s, kGroup)) {
      out.group = s;
    } else {
      diag.error(p, quote(s) + " is not a valid group name");
    }
  }

  void mode(const Json& value, const std::string& p) {
    const auto s = value.get<std::string>();
    static const std::regex kMode("0?[0-7]{3}");
    if (!std::regex_match(s, kMode)) {
      diag.error(p, quote(s) + " is not a file mode: write it in octal, like \"0660\"");
    } else if (unsigned mode = static_cast<unsigned>(std::stoul(s, nullptr, 8)); (mode & 07) != 0) {
      diag.error(p, quote(s) + " gives other users access: a device node is never world-accessible (use \"0660\")");
    } else if ((mode & 0600) != 0600) {
      diag.error(p, quote(s) + " does not let the owner read and write the device");
    } else {
      out.mode = mode;
    }
  }
};

// The default group and mode are udev::DeviceRule's own.
const Keyword<RuleSection> kRuleKeys[] = {
    {"match", JsonType::kObject, Presence::kRequired, nullptr, &RuleSection::match},
    {"group", JsonType::kString, Presence::kOptional, nullptr, &RuleSection::group},
    {"mode", JsonType::kString, Presence::kOptional, nullptr, &RuleSection::mode},
};

}  // namespace

void parse_devices(Diagnostics& diag, const Json& value, const std::string& pointer, ContainerSpec& spec,
                   ContainerFacts& facts) {
  for (size_t i = 0; i < value.size(); ++i) {
    const std::string rp = child(pointer, i);
    if (!expect_type(diag, value[i], rp, JsonType::kObject)) continue;
    udev::DeviceRule rule;
    const size_t errors_before = diag.error_count();
    RuleSection section{diag, rule};
    walk_keywords(diag, value[i], rp, kRuleKeys, section);
    const Json* match = first_member(value[i], "match");
    if (match != nullptr && match->is_object() && rule.match.empty() && diag.error_count() == errors_before) {
      diag.error(child(rp, "match"),
                 "a rule must match on at least one of: by_id, interface, path, serial, subsystem, usb_ids");
    }
    if (diag.error_count() == errors_before) {
      facts.device_rules.emplace_back(rp, rule.match);
      spec.devices.push_back(std::move(rule));
    }
  }
}

}  // namespace farmhand::provisioner::config_parser
