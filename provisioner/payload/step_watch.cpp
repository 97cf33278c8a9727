// What is shown of a running step (or fetch): its first lines, heartbeats
// while it is quiet or past the output limit, and the end of its output
// when it fails. Time comes from PayloadOptions::clock.
#include <algorithm>
#include <cstdio>

#include "provisioner/payload/run.h"

namespace farmhand::provisioner {

namespace {

std::string with_thousands(size_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace

std::string format_elapsed(std::chrono::milliseconds elapsed) {
  const long long s = std::max<long long>(0, elapsed.count() / 1000);
  char buf[48];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%lld s", s);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%lld m %02lld s", s / 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%lld h %02lld m", s / 3600, (s % 3600) / 60);
  }
  return buf;
}

std::string format_heartbeat(std::string_view step, std::chrono::milliseconds elapsed, size_t lines,
                             std::string_view last) {
  std::string out = std::string(step) + ": " + format_elapsed(elapsed) + ", ";
  if (lines == 0) return out + "no output yet";
  out += with_thousands(lines) + (lines == 1 ? " line" : " lines") + ", last: ";
  constexpr size_t kMax = 100;
  if (last.size() > kMax) {
    size_t cut = kMax;
    while (cut > 0 && (static_cast<unsigned char>(last[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 sequence
    out.append(last.substr(0, cut));
    out += "\u2026";
  } else {
    out.append(last);
  }
  return out;
}

namespace payload_impl {

bool nspawn_noise(std::string_view line) {
  return line.starts_with("Attempted to remove disk file system under \"/run/systemd/nspawn/propagate/");
}

std::string without_noise(const std::string& text) {
  std::string out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + start, end - start);
    if (!nspawn_noise(line)) {
      out.append(line);
      if (end < text.size()) out += '\n';
    }
    start = end + 1;
  }
  return out;
}

std::string tail(const std::string& text, size_t n) {
  if (text.size() <= n) return text;
  size_t cut = text.size() - n;
  size_t nl = text.find('\n', cut);
  if (nl != std::string::npos && nl + 1 < text.size()) cut = nl + 1;
  return "...\n" + text.substr(cut);
}

StepWatch::StepWatch(const PayloadHooks& hooks, const PayloadOptions& options, std::string label)
    : hooks_(hooks),
      options_(options),
      label_(std::move(label)),
      started_(options.clock->monotonic()),
      shown_(started_) {}

void StepWatch::line(std::string_view text) {
  if (nspawn_noise(text)) return;
  ++lines_;
  last_.assign(text.substr(0, 512));
  if (!hooks_.output) return;
  if (lines_ <= kStepOutputLines) {
    hooks_.output(text);
    shown_ = options_.clock->monotonic();
  } else if (lines_ == kStepOutputLines + 1) {
    hooks_.output("(more output is not logged; a heartbeat counts it, and the end of it is kept if the step fails)");
    shown_ = options_.clock->monotonic();
  }
}

void StepWatch::tick() {
  const auto now = options_.clock->monotonic();
  if (now - shown_ < options_.heartbeat_interval || !hooks_.heartbeat) return;
  shown_ = now;
  hooks_.heartbeat(format_heartbeat(label_, std::chrono::duration_cast<std::chrono::milliseconds>(now - started_),
                                    lines_, last_));
}

void StepWatch::watch(Command& cmd, bool lines) {
  if (lines) cmd.on_line = [this](std::string_view l) { line(l); };
  cmd.on_tick = [this] { tick(); };
  cmd.tick_interval = options_.tick;
}

}  // namespace payload_impl
}  // namespace farmhand::provisioner
