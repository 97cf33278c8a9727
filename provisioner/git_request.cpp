// The JSON between the provisioner and its `farmhand git-sync` helper: one
// format, built and parsed here only.
#include <nlohmann/json.hpp>

#include <set>

#include "provisioner/git.h"

namespace farmhand::provisioner {

namespace {

using nlohmann::json;

// Checks that `object` has only `allowed` keys, all of `required`.
Status check_keys(const json& object, const std::string& where, const std::set<std::string>& allowed,
                  const std::set<std::string>& required) {
  if (!object.is_object()) return fail(where + ": expected an object");
  for (const auto& [key, value] : object.items()) {
    if (!allowed.count(key)) return fail(where + "/" + key + ": unknown key");
  }
  for (const auto& key : required) {
    if (!object.contains(key)) return fail(where + "/" + key + ": missing");
  }
  return {};
}

Result<std::string> get_string(const json& o, const std::string& where, const std::string& key) {
  if (!o.contains(key)) return std::string();
  if (!o[key].is_string()) return fail(where + "/" + key + ": expected a string");
  return o[key].get<std::string>();
}

}  // namespace

std::string git_sync_request_json(const GitSyncRequest& r) {
  const auto& s = r.source;
  json source = {{"name", s.name}, {"url", s.url}, {"ref", s.ref}, {"depth", s.depth},
                 {"submodules", s.submodules}, {"clean", s.clean},
                 {"credentials",
                  {{"ssh_key", s.credentials.ssh_key},
                   {"known_hosts", s.credentials.known_hosts},
                   {"token_file", s.credentials.token_file},
                   {"username", s.credentials.username}}}};
  json j = {{"tree", r.tree}, {"path", r.path}, {"uid", r.uid}, {"gid", r.gid},
            {"mountpoint", r.mountpoint}, {"source", source}, {"force_clean", r.force_clean}};
  return j.dump();
}

Result<GitSyncRequest> parse_git_sync_request(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return fail("request: not valid JSON");
  if (auto s = check_keys(j, "request", {"tree", "path", "uid", "gid", "mountpoint", "source", "force_clean"},
                          {"tree", "path", "uid", "gid", "mountpoint", "source"});
      !s) {
    return s.error();
  }
  GitSyncRequest r;
  for (auto [key, into] : {std::pair{"tree", &r.tree}, {"path", &r.path}, {"mountpoint", &r.mountpoint}}) {
    auto v = get_string(j, "request", key);
    if (!v) return v.error();
    if (v->empty() || (*v)[0] != '/') return fail(std::string("request/") + key + ": expected an absolute path");
    *into = std::move(*v);
  }
  for (auto [key, into] : {std::pair{"uid", &r.uid}, {"gid", &r.gid}}) {
    if (!j[key].is_number_unsigned() || j[key].get<uint64_t>() >= 0xffffffffULL) {
      return fail(std::string("request/") + key + ": expected an id");
    }
    *into = static_cast<uid_t>(j[key].get<uint64_t>());
  }
  if (j.contains("force_clean")) {
    if (!j["force_clean"].is_boolean()) return fail("request/force_clean: expected true or false");
    r.force_clean = j["force_clean"].get<bool>();
  }
  const json& s = j["source"];
  if (auto st = check_keys(s, "request/source", {"name", "url", "ref", "depth", "submodules", "clean", "credentials"},
                           {"url", "ref"});
      !st) {
    return st.error();
  }
  for (auto [key, into] : {std::pair{"name", &r.source.name}, {"url", &r.source.url}, {"ref", &r.source.ref}}) {
    auto v = get_string(s, "request/source", key);
    if (!v) return v.error();
    *into = std::move(*v);
  }
  if (s.contains("depth")) {
    if (!s["depth"].is_number_integer() || s["depth"].get<int64_t>() < 0 || s["depth"].get<int64_t>() > 1 << 30) {
      return fail("request/source/depth: expected an integer >= 0");
    }
    r.source.depth = s["depth"].get<int>();
  }
  if (s.contains("submodules")) {
    if (!s["submodules"].is_boolean()) return fail("request/source/submodules: expected true or false");
    r.source.submodules = s["submodules"].get<bool>();
  }
  if (s.contains("clean")) {
    if (!s["clean"].is_boolean()) return fail("request/source/clean: expected true or false");
    r.source.clean = s["clean"].get<bool>();
  }
  if (s.contains("credentials")) {
    const json& c = s["credentials"];
    if (auto st = check_keys(c, "request/source/credentials", {"ssh_key", "known_hosts", "token_file", "username"}, {});
        !st) {
      return st.error();
    }
    auto& creds = r.source.credentials;
    for (auto [key, into] : {std::pair{"ssh_key", &creds.ssh_key}, {"known_hosts", &creds.known_hosts},
                             {"token_file", &creds.token_file}, {"username", &creds.username}}) {
      auto v = get_string(c, "request/source/credentials", key);
      if (!v) return v.error();
      *into = std::move(*v);
    }
  }
  r.source.path = r.path;
  return r;
}

std::string git_sync_result_json(const SyncResult& r) {
  json j = {{"commit", r.commit},
            {"cloned", r.cloned},
            {"changed", r.changed},
            {"received_objects", r.received_objects},
            {"received_bytes", r.received_bytes},
            {"fetch_ms", r.fetch_time.count()},
            {"cleaned", r.cleaned}};
  return j.dump();
}

Result<SyncResult> parse_git_sync_output(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.remove_suffix(1);
  const size_t nl = text.rfind('\n');
  const std::string_view line = nl == std::string_view::npos ? text : text.substr(nl + 1);
  const std::string where = "git-sync output";
  json j = json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return fail(where + ": expected a JSON object, got \"" + std::string(line.substr(0, 200)) + "\"");
  const std::set<std::string> keys = {"commit", "cloned", "changed", "received_objects", "received_bytes", "fetch_ms"};
  std::set<std::string> allowed = keys;
  allowed.insert("cleaned");
  if (auto s = check_keys(j, where, allowed, keys); !s) return s.error();
  SyncResult r;
  if (!j["commit"].is_string() || j["commit"].get<std::string>().size() != 40) {
    return fail(where + "/commit: expected a commit id");
  }
  r.commit = j["commit"].get<std::string>();
  if (!j["cloned"].is_boolean() || !j["changed"].is_boolean()) return fail(where + ": expected cloned and changed booleans");
  r.cloned = j["cloned"].get<bool>();
  r.changed = j["changed"].get<bool>();
  for (const char* key : {"received_objects", "received_bytes", "fetch_ms"}) {
    if (!j[key].is_number_unsigned()) return fail(where + "/" + key + ": expected a number");
  }
  r.received_objects = j["received_objects"].get<size_t>();
  r.received_bytes = j["received_bytes"].get<size_t>();
  r.fetch_time = std::chrono::milliseconds(j["fetch_ms"].get<int64_t>());
  if (j.contains("cleaned")) {
    if (!j["cleaned"].is_boolean()) return fail(where + "/cleaned: expected true or false");
    r.cleaned = j["cleaned"].get<bool>();
  }
  return r;
}

}  // namespace farmhand::provisioner
