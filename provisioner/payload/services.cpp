// A payload's services: unit files and their [Install] links written into
// the tree; in a running container, systemd reloaded, the enabled services
// (re)started and watched until they stay up, with their journal when not.
#include <algorithm>
#include <sstream>
#include <thread>

#include "common/hash.h"
#include "provisioner/payload/run.h"
#include "provisioner/template.h"

namespace farmhand::provisioner {

namespace {

constexpr const char* kUnitDir = "etc/systemd/system";

}  // namespace

std::string UnitState::describe() const {
  std::string out = active.empty() ? "unknown" : active;
  if (!sub.empty() && sub != active) out += " (" + sub + ")";
  if (!result.empty() && result != "success") out += ", result " + result;
  return out;
}

UnitState parse_unit_state(std::string_view text) {
  UnitState st;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    const std::string_view key = line.substr(0, eq);
    const std::string value(line.substr(eq + 1));
    if (key == "ActiveState") st.active = value;
    else if (key == "SubState") st.sub = value;
    else if (key == "Result") st.result = value;
    else if (key == "NRestarts") st.restarts = payload_impl::numeric_id(value).value_or(0);
  }
  return st;
}

std::vector<std::string> unit_install_dirs(std::string_view unit_text) {
  std::vector<std::string> out;
  std::istringstream in{std::string(unit_text)};
  std::string line;
  bool install = false;
  auto trim = [](std::string s) {
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.pop_back();
    size_t b = s.find_first_not_of(" \t");
    return b == std::string::npos ? std::string() : s.substr(b);
  };
  while (std::getline(in, line)) {
    line = trim(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line[0] == '[') {
      install = line == "[Install]";
      continue;
    }
    if (!install) continue;
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = trim(line.substr(0, eq));
    const char* suffix = key == "WantedBy" ? ".wants" : key == "RequiredBy" ? ".requires" : nullptr;
    if (suffix == nullptr) continue;
    std::istringstream values(line.substr(eq + 1));
    std::string v;
    while (values >> v) {
      std::string dir = v + suffix;
      if (std::find(out.begin(), out.end(), dir) == out.end()) out.push_back(dir);
    }
  }
  if (out.empty()) out.push_back("multi-user.target.wants");
  return out;
}

Result<UnitState> container_unit_state(ProcessRunner& runner, const PayloadTarget& t, const std::string& helper,
                                       const std::string& unit) {
  Command shown;
  auto r = run_as_root_in(runner, t, helper,
                          {"systemctl", "show", "--property=ActiveState,SubState,Result,NRestarts", "--", unit}, &shown);
  if (!r) return r.error();
  if (!r->success()) return command_error(shown, *r);
  return parse_unit_state(r->out);
}

std::string container_unit_journal(ProcessRunner& runner, const PayloadTarget& t, const std::string& helper,
                                   const std::string& unit) {
  auto r = run_as_root_in(runner, t, helper,
                          {"journalctl", "--no-pager", "--quiet", "-o", "short-iso", "-n",
                           std::to_string(kServiceJournalLines), "-u", unit},
                          nullptr);
  if (!r || !r->success()) return "";
  std::string text = payload_impl::without_noise(r->out);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return payload_impl::tail(text, kErrorTail);
}

namespace payload_impl {

Status PayloadRun::services() {
  std::set<std::string> wanted;
  std::vector<std::string> enabled;
  for (const auto& svc : spec_.services) {
    wanted.insert(svc.name);
    if (auto s = install_service(svc, enabled); !s) return s;
  }
  if (auto s = forget_removed(PayloadKind::kService, wanted,
                              [&](const PayloadRecord& rec) { return remove_service(rec); });
      !s) {
    return s;
  }
  if (!t_.leader) return {};
  return start_services(enabled);
}

// Writes the unit file and its links where they differ; `enabled` gets the
// service if it is to be enabled.
Status PayloadRun::install_service(const ServiceSpec& svc, std::vector<std::string>& enabled) {
  const std::string unit_dir = kUnitDir;
  auto content = render_template(svc.content, vars_);
  if (!content) return content.error().context("service " + svc.name);
  const std::string unit_path = unit_dir + "/" + svc.name;
  const std::string target = "/" + unit_path;
  auto have = read_file_in_root(t_.tree, unit_path);
  if (!have) return have.error();
  const auto t0 = options_.clock->monotonic();
  bool touched = false;
  Status s;
  if (!*have || **have != *content) {
    s = write_file_in_root(t_.tree, unit_path, *content, 0644, shifted(t_.tree, 0, 0));
    touched = true;
  }
  for (const auto& dir : unit_install_dirs(*content)) {
    if (!s) break;
    const std::string link = unit_dir + "/" + dir + "/" + svc.name;
    auto current = readlink_in_root(t_.tree, link);
    if (!current) {
      s = current.error();
    } else if (svc.enable && *current != target) {
      s = symlink_in_root(t_.tree, link, target);
      touched = true;
    } else if (!svc.enable && *current) {
      s = remove_in_root(t_.tree, link);
      touched = true;
    }
  }
  if (touched) report(std::string(svc.enable ? "install and enable " : "install ") + svc.name, t0, s);
  if (!s) return s.error();
  if (svc.enable) enabled.push_back(svc.name);
  if (touched) {
    units_changed_ = true;
    out.changed = true;
    if (auto p = state_.put_payload({name_, PayloadKind::kService, svc.name, sha256_hex(*content), "", 0}); !p) {
      return p.error();
    }
  }
  return {};
}

// A service no longer declared: disabled and stopped in a running
// container, its links and unit file removed.
Status PayloadRun::remove_service(const PayloadRecord& rec) {
  const std::string unit_dir = kUnitDir;
  (void)in_container({"systemctl", "disable", "--now", rec.name});
  const std::string unit_path = unit_dir + "/" + rec.name;
  auto text = read_file_in_root(t_.tree, unit_path);
  if (text && *text) {
    for (const auto& dir : unit_install_dirs(**text)) {
      if (auto r = remove_in_root(t_.tree, unit_dir + "/" + dir + "/" + rec.name); !r) {
        return r;
      }
    }
  }
  units_changed_ = true;
  return remove_in_root(t_.tree, unit_path);
}

// Runs a command as root in the running container; nothing when it does
// not run.
Status PayloadRun::in_container(std::vector<std::string> argv) {
  if (!t_.leader) return {};
  Command shown;
  auto r = run_as_root_in(runner_, t_, helper_, std::move(argv), &shown);
  if (!r) return r.error();
  if (!r->success()) return command_error(shown, *r);
  return {};
}

// A running container takes the change now: its enabled services restart
// when anything they may use (units, files, sources, builds) changed, and
// an enabled service that is not running (it failed, at the last apply or
// since) is started. Each must then stay up, or the payload fails with
// the unit's journal, and the next apply tries again.
Status PayloadRun::start_services(const std::vector<std::string>& enabled) {
  if (units_changed_) {
    const auto t0 = begin("reload systemd");
    Status s = in_container({"systemctl", "daemon-reload"});
    if (!s || enabled.empty()) report("reload systemd", t0, s);
    if (!s) return s.error();
  }
  for (const auto& svc : enabled) {
    std::string verb = "restart";
    if (!out.changed) {
      auto st = container_unit_state(runner_, t_, helper_, svc);
      if (!st) return st.error();
      if (st->active == "active" || st->active == "reloading" || st->active == "activating") continue;
      verb = "start";
    }
    const std::string what = verb + " " + svc;
    const auto t0 = begin(what);
    Status s = in_container({"systemctl", verb, "--", svc});
    if (!s) {
      const std::string journal = container_unit_journal(runner_, t_, helper_, svc);
      s = fail(s.error().message() + (journal.empty() ? "" : "\nIts journal:\n" + journal));
    } else {
      s = verify_active(svc, verb);
    }
    report(what, t0, s);
    if (!s) return s.error();
    out.changed = true;
  }
  return {};
}

// Waits until a unit that was just started stays up: active (for
// Type=notify, systemctl waited for it to be ready) through the settle
// time, or failed, stopped, or restarted by its Restart= policy meanwhile.
Status PayloadRun::verify_active(const std::string& unit, const std::string& verb) {
  auto first = container_unit_state(runner_, t_, helper_, unit);
  if (!first) return first.error();
  const auto t_start = options_.clock->monotonic();
  auto settled = t_start + options_.service_settle;
  UnitState st = *first;
  for (;;) {
    const bool up = st.active == "active" || st.active == "reloading";
    const bool starting = st.active == "activating" && st.sub != "auto-restart";
    if (!up && !starting) break;
    if (st.restarts > first->restarts) break;
    const auto now = options_.clock->monotonic();
    if (up && now >= settled) return {};
    if (starting && now - t_start >= options_.service_start_timeout) break;
    std::this_thread::sleep_for(options_.service_poll);
    auto next = container_unit_state(runner_, t_, helper_, unit);
    if (!next) return next.error();
    st = *next;
  }
  std::string why = "service " + unit + " did not stay up after " + verb + ": " + st.describe();
  if (st.restarts > first->restarts && st.active != "failed") {
    why += ", restarted " + std::to_string(st.restarts - first->restarts) + " time(s) by its Restart= policy";
  }
  const std::string journal = container_unit_journal(runner_, t_, helper_, unit);
  return fail(why + (journal.empty() ? std::string(" (its journal is empty)") : ". Its journal:\n" + journal));
}

}  // namespace payload_impl
}  // namespace farmhand::provisioner
