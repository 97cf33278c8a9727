#include "tests/bench/load_common.h"

#include <sys/resource.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include "common/fs.h"
#include "common/log.h"

namespace farmhand::load {

int usage_error(const Error& error) {
  std::cerr << "farmhand-load: " << error.message() << "\n" << kUsage;
  return 2;
}

Result<Args> Args::parse(int argc, char** argv, int first) {
  Args a;
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0 || arg.size() < 3) return fail("unexpected argument \"" + arg + "\"");
    if (i + 1 >= argc) return fail(arg + " needs a value");
    if (!a.values.emplace(arg.substr(2), argv[i + 1]).second) return fail(arg + " is given twice");
    ++i;
  }
  return a;
}

std::string Args::get(const std::string& name, const std::string& fallback) const {
  auto it = values.find(name);
  return it == values.end() ? fallback : it->second;
}

Result<std::string> Args::need(const std::string& name) const {
  auto it = values.find(name);
  if (it == values.end()) return fail("--" + name + " is required");
  return it->second;
}

Result<uint64_t> Args::number(const std::string& name, uint64_t fallback) const {
  auto it = values.find(name);
  if (it == values.end()) return fallback;
  const std::string& v = it->second;
  if (v.empty() || v.size() > 12 || v.find_first_not_of("0123456789") != std::string::npos) {
    return fail("--" + name + ": expected a whole number, got \"" + v + "\"");
  }
  return std::stoull(v);
}

Result<std::vector<std::string>> read_lines(const std::string& path) {
  auto text = read_file(path);
  if (!text) return text.error();
  std::vector<std::string> lines;
  std::istringstream in(*text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

Result<std::vector<HostCredential>> read_credentials(const std::string& path, uint64_t count) {
  auto lines = read_lines(path);
  if (!lines) return lines.error().context("reading the credentials");
  std::vector<HostCredential> out;
  for (const auto& line : *lines) {
    if (count != 0 && out.size() >= count) break;
    auto space = line.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == line.size()) {
      return fail(path + ": expected lines \"host credential\"");
    }
    out.push_back({line.substr(0, space), line.substr(space + 1)});
    log::add_secret(out.back().credential);
  }
  if (count != 0 && out.size() < count) {
    return fail(path + " holds " + std::to_string(out.size()) + " credentials, not " + std::to_string(count));
  }
  return out;
}

uint64_t raise_open_files(uint64_t want) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return 0;
  if (lim.rlim_cur >= want) return lim.rlim_cur;
  rlimit next = lim;
  next.rlim_cur = want;
  if (next.rlim_max < want) next.rlim_max = want;  // root may raise the hard limit
  if (setrlimit(RLIMIT_NOFILE, &next) != 0) {
    next.rlim_max = lim.rlim_max;
    next.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &next) != 0) return lim.rlim_cur;
  }
  return next.rlim_cur;
}

uint64_t rss_kib() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
  }
  return 0;
}

int64_t quantile(const std::vector<int64_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  return sorted[static_cast<size_t>(static_cast<double>(sorted.size() - 1) * q)];
}

}  // namespace farmhand::load
