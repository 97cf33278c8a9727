#include "agent/service_watch.h"

#include <set>

namespace farmhand::agent {

namespace {

bool up(const provisioner::UnitState& s) { return s.active == "active" || s.active == "reloading"; }

}  // namespace

std::vector<ServiceTrouble> service_troubles(std::map<std::pair<std::string, std::string>, provisioner::UnitState>& last,
                                             const std::vector<provisioner::Provisioner::ServiceState>& now) {
  std::vector<ServiceTrouble> out;
  std::set<std::pair<std::string, std::string>> seen;
  for (const auto& s : now) {
    const auto key = std::make_pair(s.container, s.unit);
    seen.insert(key);
    auto it = last.find(key);
    if (it == last.end()) {
      if (s.state.active == "failed") out.push_back({s.container, s.unit, s.unit + " is down: " + s.state.describe()});
    } else if (up(it->second) && (s.state.active == "failed" || s.state.active == "inactive")) {
      out.push_back({s.container, s.unit, s.unit + " died: " + s.state.describe()});
    } else if (s.state.restarts > it->second.restarts) {
      const unsigned long n = s.state.restarts - it->second.restarts;
      out.push_back({s.container, s.unit,
                     s.unit + " died and systemd restarted it (" + std::to_string(n) +
                         (n == 1 ? " time" : " times") + " since the last look); now " + s.state.describe()});
    }
    last[key] = s.state;
  }
  // A container that stopped takes its units out of the picture.
  for (auto it = last.begin(); it != last.end();) {
    it = seen.count(it->first) ? std::next(it) : last.erase(it);
  }
  return out;
}

}  // namespace farmhand::agent
