// The git layer (libgit2): container sources and the config repository.
//
// Everything a remote can make fail is a Result. Host gitconfig files are
// ignored, so what farmhand fetches depends only on its configuration.
// Credentials are read from files by load_git_auth and never appear in logs
// or messages: errors name the file, never its content.
//
// ssh host keys are checked against the configured known_hosts file (libgit2
// 1.5 would accept any host key otherwise); https keeps libgit2's own TLS
// verification.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "provisioner/config.h"

namespace farmhand::provisioner {

// Credential file contents, loaded from GitCredentials; never logged.
struct GitAuth {
  std::string ssh_key;      // private key text (PEM / OpenSSH format)
  std::string known_hosts;  // known_hosts text
  std::string token;        // https token
  std::string username;
  // The files they came from, for messages ("ssh key FILE was not accepted").
  std::string ssh_key_file;
  std::string known_hosts_file;
  std::string token_file;
};

// Reads the files of `c`. Errors name the file and the reason (missing,
// unreadable, empty). The token is the first line, trimmed. The token and
// the key are registered with log::add_secret.
Result<GitAuth> load_git_auth(const GitCredentials& c);

struct SyncResult {
  std::string commit;   // 40 hex, checked out
  bool cloned = false;  // first clone (nothing was checked out before)
  bool changed = false;  // HEAD moved (or cloned)
  size_t received_objects = 0, received_bytes = 0;
  std::chrono::milliseconds fetch_time{0};
  bool cleaned = false;  // untracked and ignored files were removed
  bool operator==(const SyncResult&) const = default;
};

// Clones `spec.url` into `dir` (empty or missing) or fetches and hard-checks-out
// `spec.ref` in an existing checkout: detached HEAD at the commit, local
// changes to tracked files discarded (the source belongs to farmhand);
// untracked files such as build directories are kept. A directory that is
// neither empty nor a git checkout is refused. Submodules are updated
// recursively when spec.submodules is set. Runs as the owner of `dir`.
// With spec.clean and a new commit, or with `force_clean`, untracked and
// ignored files are removed too, like `git clean -ffdx`.
Result<SyncResult> sync_checkout(const std::string& dir, const SourceSpec& spec, const GitAuth& auth,
                                 bool force_clean = false);

// The commit `ref` names on the remote, asked without fetching anything
// (a commit id is returned as it is). For a quick "has it moved?" check.
Result<std::string> remote_commit(const std::string& url, const std::string& ref, const GitAuth& auth);
// Config repo: bare repository at `dir` (created), fetch `ref` (to
// refs/remotes/origin/REF, refs/tags/REF, or a commit), return its commit.
// HEAD is detached at it, so `changed` says whether it moved.
Result<SyncResult> fetch_bare(const std::string& dir, const std::string& url, const std::string& ref,
                              const GitAuth& auth);

// The content of `path` (relative, "/"-separated) in `commit`'s tree;
// nullopt if no such file; an error if it is not a regular file.
Result<std::optional<std::string>> read_blob_at(const std::string& dir, const std::string& commit,
                                                const std::string& path);

// URL with any userinfo password replaced by "***" (for messages).
std::string redact_url(std::string_view url);

// Whether `known_hosts_text` lists `raw_key` (the binary public key blob, as
// the ssh server sends it) for `host` on `port`: plain names, comma lists,
// wildcards, negations, "[host]:port" for ports other than 22 and hashed
// "|1|salt|hash" entries. A key marked @revoked never matches;
// @cert-authority lines are ignored. `key_type` ("ssh-ed25519"...) may be
// empty: it is taken from the blob.
bool known_host_matches(std::string_view known_hosts_text, std::string_view host, int port,
                        std::string_view key_type, std::string_view raw_key);

// The request of the hidden `farmhand git-sync` subcommand (the privilege
// drop): sync `source` into `path` inside the container tree `tree`, as
// uid:gid, through a private bind mount on `mountpoint`.
struct GitSyncRequest {
  std::string tree;        // container root filesystem on the host
  std::string path;        // absolute path inside the container
  uid_t uid = 0;
  gid_t gid = 0;
  std::string mountpoint;  // an empty directory on the host (the caller creates and removes it)
  SourceSpec source;       // credentials are file paths; source.path is ignored
  bool force_clean = false;  // clean the checkout even if its commit does not change
  bool operator==(const GitSyncRequest&) const = default;
};

std::string git_sync_request_json(const GitSyncRequest& request);
Result<GitSyncRequest> parse_git_sync_request(std::string_view json);
// The one line `farmhand git-sync` prints on success (without the newline).
std::string git_sync_result_json(const SyncResult& result);
// Parses the helper's stdout (its last non-empty line).
Result<SyncResult> parse_git_sync_output(std::string_view stdout_text);

}  // namespace farmhand::provisioner
