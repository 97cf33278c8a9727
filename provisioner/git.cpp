// Fetching and checking out with libgit2.
//
// A checkout is made like `git init` + fetch of exactly the wanted ref +
// forced checkout of its commit on a detached HEAD, so the first clone and
// every later update take the same path and a half-done clone is simply
// finished by the next sync.
#include "provisioner/git.h"

#include <git2.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "common/clock.h"
#include "common/fs.h"
#include "common/log.h"

namespace farmhand::provisioner {

namespace {

void init_libgit2() {
  static std::once_flag once;
  std::call_once(once, [] {
    git_libgit2_init();
    // No /etc/gitconfig, ~/.gitconfig or XDG config: only farmhand's settings count.
    for (int level : {GIT_CONFIG_LEVEL_SYSTEM, GIT_CONFIG_LEVEL_GLOBAL, GIT_CONFIG_LEVEL_XDG,
                      GIT_CONFIG_LEVEL_PROGRAMDATA}) {
      git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, level, "");
    }
  });
}

template <typename T, void (*Free)(T*)>
struct Freer {
  void operator()(T* p) const { Free(p); }
};
using Repo = std::unique_ptr<git_repository, Freer<git_repository, git_repository_free>>;
using Remote = std::unique_ptr<git_remote, Freer<git_remote, git_remote_free>>;
using Object = std::unique_ptr<git_object, Freer<git_object, git_object_free>>;
using Tree = std::unique_ptr<git_tree, Freer<git_tree, git_tree_free>>;
using TreeEntry = std::unique_ptr<git_tree_entry, Freer<git_tree_entry, git_tree_entry_free>>;
using Submodule = std::unique_ptr<git_submodule, Freer<git_submodule, git_submodule_free>>;

std::string libgit2_message() {
  const git_error* e = git_error_last();
  return log::redact(e && e->message ? e->message : "unknown error");
}

std::string oid_hex(const git_oid& oid) {
  char buf[GIT_OID_HEXSZ + 1] = {};
  git_oid_tostr(buf, sizeof buf, &oid);
  return buf;
}

bool is_commit_id(std::string_view ref) {
  return ref.size() == GIT_OID_HEXSZ &&
         std::all_of(ref.begin(), ref.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// The port of an ssh URL ("ssh://host:2222/x"); scp-like URLs use 22.
int ssh_port(std::string_view url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return 22;
  std::string_view authority = url.substr(scheme + 3);
  authority = authority.substr(0, authority.find('/'));
  if (size_t at = authority.rfind('@'); at != std::string_view::npos) authority.remove_prefix(at + 1);
  size_t colon = authority.rfind(':');
  if (colon == std::string_view::npos || authority.find(']', colon) != std::string_view::npos) return 22;
  int port = 0;
  for (char c : authority.substr(colon + 1)) {
    if (c < '0' || c > '9' || port > 65535) return 22;
    port = port * 10 + (c - '0');
  }
  return port > 0 ? port : 22;
}

const char* raw_key_type(git_cert_ssh_raw_type_t type) {
  switch (type) {
    case GIT_CERT_SSH_RAW_TYPE_RSA: return "ssh-rsa";
    case GIT_CERT_SSH_RAW_TYPE_DSS: return "ssh-dss";
    case GIT_CERT_SSH_RAW_TYPE_KEY_ECDSA_256: return "ecdsa-sha2-nistp256";
    case GIT_CERT_SSH_RAW_TYPE_KEY_ECDSA_384: return "ecdsa-sha2-nistp384";
    case GIT_CERT_SSH_RAW_TYPE_KEY_ECDSA_521: return "ecdsa-sha2-nistp521";
    case GIT_CERT_SSH_RAW_TYPE_KEY_ED25519: return "ssh-ed25519";
    default: return "";
  }
}

bool is_local_url(std::string_view url) {
  return url.rfind("file://", 0) == 0 || (!url.empty() && url[0] == '/');
}

// libgit2's local transport opens a file:// remote like a checkout, with the
// owner check (safe.directory) that refuses a repository another user owns;
// the git-sync helper reads root's repositories as the build user, the agent
// a repository of a "git" user as root. The check is kept for everything
// else: only while fetching from a local path is it off. (libgit2 runs no
// hooks, fsmonitor or filter programs from a repository's config, which is
// what the check protects git against.)
class LocalRemoteOwnerCheck {
 public:
  explicit LocalRemoteOwnerCheck(std::string_view url) : relaxed_(is_local_url(url)) {
    if (!relaxed_) return;
    git_libgit2_opts(GIT_OPT_GET_OWNER_VALIDATION, &previous_);
    git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, 0);
  }
  ~LocalRemoteOwnerCheck() {
    if (relaxed_) git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, previous_);
  }
  LocalRemoteOwnerCheck(const LocalRemoteOwnerCheck&) = delete;
  LocalRemoteOwnerCheck& operator=(const LocalRemoteOwnerCheck&) = delete;

 private:
  bool relaxed_;
  int previous_ = 1;
};

// What the libgit2 callbacks of one remote need, and what they report.
struct RemoteContext {
  RemoteContext(std::string u, const GitAuth& a) : url(std::move(u)), auth(a), port(ssh_port(url)) {}
  std::string url;
  const GitAuth& auth;
  int port;
  int key_tries = 0;
  int token_tries = 0;
  std::string failure;  // a callback's reason; replaces libgit2's message
  git_indexer_progress progress{};
};

int credentials_cb(git_credential** out, const char* url, const char* username_from_url, unsigned int allowed,
                   void* payload) {
  auto& ctx = *static_cast<RemoteContext*>(payload);
  const GitAuth& auth = ctx.auth;
  const std::string shown = redact_url(url ? url : ctx.url);
  const std::string user = username_from_url && *username_from_url ? username_from_url
                           : !auth.username.empty()                ? auth.username
                                                                   : "git";
  if (allowed & (GIT_CREDENTIAL_SSH_MEMORY | GIT_CREDENTIAL_SSH_KEY)) {
    if (auth.ssh_key.empty()) {
      ctx.failure = "ssh: " + shown + " asks for a key and credentials.ssh_key is not set";
      return GIT_EUSER;
    }
    if (!(allowed & GIT_CREDENTIAL_SSH_MEMORY)) {
      ctx.failure = "ssh: this libgit2 cannot use a key held in memory";
      return GIT_EUSER;
    }
    // libgit2 asks again when the server refused the key: one try only.
    if (ctx.key_tries++ > 0) {
      ctx.failure = "ssh key " + auth.ssh_key_file + " was not accepted by " + shown;
      return GIT_EUSER;
    }
    return git_credential_ssh_key_memory_new(out, user.c_str(), nullptr, auth.ssh_key.c_str(), nullptr);
  }
  if (allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) {
    if (auth.token.empty()) {
      ctx.failure = shown + " asks for credentials and credentials.token_file is not set";
      return GIT_EUSER;
    }
    if (ctx.token_tries++ > 0) {
      ctx.failure = "the token in " + auth.token_file + " was not accepted by " + shown;
      return GIT_EUSER;
    }
    return git_credential_userpass_plaintext_new(out, user.c_str(), auth.token.c_str());
  }
  if (allowed & GIT_CREDENTIAL_USERNAME) return git_credential_username_new(out, user.c_str());
  ctx.failure = shown + " asks for a kind of authentication farmhand does not offer";
  return GIT_EUSER;
}

int certificate_cb(git_cert* cert, int /*valid*/, const char* host, void* payload) {
  // TLS: libgit2's own verification against the system's CAs stays in charge.
  if (cert->cert_type != GIT_CERT_HOSTKEY_LIBSSH2) return GIT_PASSTHROUGH;
  auto& ctx = *static_cast<RemoteContext*>(payload);
  const std::string name = host ? host : "";
  const std::string shown = ctx.port == 22 ? name : "[" + name + "]:" + std::to_string(ctx.port);
  if (ctx.auth.known_hosts_file.empty()) {
    ctx.failure = "ssh: the host key of " + shown + " cannot be checked: credentials.known_hosts is not set";
    return GIT_ECERTIFICATE;
  }
  const auto* key = reinterpret_cast<const git_cert_hostkey*>(cert);
  if (!(key->type & GIT_CERT_SSH_RAW)) {
    ctx.failure = "ssh: libgit2 did not hand over the host key of " + shown;
    return GIT_ECERTIFICATE;
  }
  if (!known_host_matches(ctx.auth.known_hosts, name, ctx.port, raw_key_type(key->raw_type),
                          std::string_view(key->hostkey, key->hostkey_len))) {
    ctx.failure = "ssh: the host key of " + shown + " is not in " + ctx.auth.known_hosts_file;
    return GIT_ECERTIFICATE;
  }
  return 0;
}

int progress_cb(const git_indexer_progress* stats, void* payload) {
  static_cast<RemoteContext*>(payload)->progress = *stats;
  return 0;
}

git_remote_callbacks callbacks_for(RemoteContext& ctx) {
  git_remote_callbacks cb = GIT_REMOTE_CALLBACKS_INIT;
  cb.credentials = credentials_cb;
  cb.certificate_check = certificate_cb;
  cb.transfer_progress = progress_cb;
  cb.payload = &ctx;
  return cb;
}

git_fetch_options fetch_options_for(RemoteContext& ctx, int depth) {
  git_fetch_options fo = GIT_FETCH_OPTIONS_INIT;
  fo.callbacks = callbacks_for(ctx);
  fo.proxy_opts.type = GIT_PROXY_AUTO;  // http(s)_proxy from the environment the caller chose
#if LIBGIT2_VER_MAJOR > 1 || (LIBGIT2_VER_MAJOR == 1 && LIBGIT2_VER_MINOR >= 7)
  fo.depth = depth;
#else
  if (depth > 0) {
    static std::atomic<bool> warned{false};
    if (!warned.exchange(true)) {
      log::warning("depth is not supported by libgit2 ", LIBGIT2_VER_MAJOR, ".", LIBGIT2_VER_MINOR,
                   ": fetching the whole history");
    }
  }
#endif
  return fo;
}

// "git: WHAT: REASON", the reason a callback gave or libgit2's message.
Error git_error(const std::string& what, const RemoteContext* ctx = nullptr) {
  if (ctx && !ctx->failure.empty()) return fail("git: " + what + ": " + ctx->failure);
  return fail("git: " + what + ": " + libgit2_message());
}

// The remote "origin" of `repo`, pointing at `url` (changed if the
// configuration changed).
Result<Remote> origin_for(git_repository* repo, const std::string& url) {
  git_remote* raw = nullptr;
  int err = git_remote_lookup(&raw, repo, "origin");
  if (err == GIT_ENOTFOUND) {
    if (git_remote_create(&raw, repo, "origin", url.c_str()) < 0) {
      return git_error("adding remote " + redact_url(url));
    }
    return Remote(raw);
  }
  if (err < 0) return git_error("reading remote origin");
  Remote remote(raw);
  const char* current = git_remote_url(remote.get());
  if (current && url == current) return remote;
  if (git_remote_set_url(repo, "origin", url.c_str()) < 0) return git_error("setting the URL to " + redact_url(url));
  remote.reset();
  if (git_remote_lookup(&raw, repo, "origin") < 0) return git_error("reading remote origin");
  return Remote(raw);
}

// The commit `oid` names (peeling annotated tags).
Result<git_oid> peel_to_commit(git_repository* repo, const git_oid& oid, const std::string& ref) {
  git_object* raw = nullptr;
  if (git_object_lookup(&raw, repo, &oid, GIT_OBJECT_ANY) < 0) return git_error("looking up " + ref);
  Object obj(raw);
  git_object* peeled = nullptr;
  if (git_object_peel(&peeled, obj.get(), GIT_OBJECT_COMMIT) < 0) {
    return fail("git: ref \"" + ref + "\" does not name a commit");
  }
  git_oid out = *git_object_id(peeled);
  git_object_free(peeled);
  return out;
}

bool has_commit(git_repository* repo, const git_oid& oid) {
  git_object* raw = nullptr;
  if (git_object_lookup(&raw, repo, &oid, GIT_OBJECT_COMMIT) < 0) return false;
  git_object_free(raw);
  return true;
}

// Fetches `ref` (branch, tag or commit id) from `url` into `repo` and
// returns its commit; fills the transfer fields of `result`.
Result<git_oid> fetch_ref(git_repository* repo, const std::string& url, const std::string& ref, int depth,
                          const GitAuth& auth, SyncResult& result) {
  auto remote = origin_for(repo, url);
  if (!remote) return remote.error();
  RemoteContext ctx(url, auth);
  const std::string what = "fetching " + redact_url(url);
  const std::string not_found = "git: ref \"" + ref + "\" not found in " + redact_url(url);
  git_fetch_options fo = fetch_options_for(ctx, depth);
  LocalRemoteOwnerCheck owner_check(url);
  const auto start = monotonic_now();
  auto finish = [&] {
    const git_indexer_progress* stats = git_remote_stats(remote->get());
    result.received_objects = stats->received_objects;
    result.received_bytes = stats->received_bytes;
    result.fetch_time =
        std::chrono::duration_cast<std::chrono::milliseconds>(monotonic_now() - start);
  };

  if (is_commit_id(ref)) {
    git_oid oid;
    git_oid_fromstr(&oid, ref.c_str());
    if (has_commit(repo, oid)) return oid;  // a commit never changes: nothing to fetch
    if (git_remote_fetch(remote->get(), nullptr, &fo, nullptr) < 0) return git_error(what, &ctx);
    finish();
    if (!has_commit(repo, oid)) return fail(not_found);
    return oid;
  }

  // Which of refs/heads/REF and refs/tags/REF the remote has (a branch wins,
  // as with `git clone --branch`).
  git_remote_callbacks cb = callbacks_for(ctx);
  if (git_remote_connect(remote->get(), GIT_DIRECTION_FETCH, &cb, &fo.proxy_opts, nullptr) < 0) {
    return git_error(what, &ctx);
  }
  const git_remote_head** heads = nullptr;
  size_t count = 0;
  if (git_remote_ls(&heads, &count, remote->get()) < 0) return git_error(what, &ctx);
  const std::string branch = "refs/heads/" + ref, tag = "refs/tags/" + ref;
  std::string refspec;
  git_oid target{};
  for (const std::string& wanted : {branch, tag}) {
    for (size_t i = 0; i < count && refspec.empty(); ++i) {
      if (wanted == heads[i]->name) {
        target = heads[i]->oid;
        refspec = wanted == branch ? "+" + branch + ":refs/remotes/origin/" + ref : "+" + tag + ":" + tag;
      }
    }
  }
  if (refspec.empty()) {
    git_remote_disconnect(remote->get());
    return fail(not_found);
  }
  char* spec = refspec.data();
  const git_strarray refspecs = {&spec, 1};
  if (git_remote_fetch(remote->get(), &refspecs, &fo, nullptr) < 0) return git_error(what, &ctx);
  finish();
  return peel_to_commit(repo, target, ref);
}

// The commit HEAD points at; "" when HEAD is unborn (nothing checked out yet).
std::string head_commit(git_repository* repo) {
  git_oid oid;
  if (git_reference_name_to_id(&oid, repo, "HEAD") < 0) return "";
  return oid_hex(oid);
}

// Opens the repository at `dir` or creates it there if `dir` is missing or
// empty. Refuses anything else.
Result<Repo> open_or_init(const std::string& dir, bool bare) {
  git_repository* raw = nullptr;
  int err = git_repository_open_ext(&raw, dir.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH, nullptr);
  if (err == 0) {
    Repo repo(raw);
    if (!bare && git_repository_is_bare(repo.get())) return fail("git: " + dir + " is a bare repository, not a checkout");
    return repo;
  }
  if (err != GIT_ENOTFOUND) return git_error("opening " + dir);
  std::error_code ec;
  const auto status = fs::symlink_status(dir, ec);
  if (fs::exists(status)) {
    if (!fs::is_directory(status)) return fail("git: " + dir + " exists and is not a directory");
    if (!fs::is_empty(dir, ec) || ec) {
      return fail("git: " + dir + " is not empty and is not a git " + (bare ? "repository" : "checkout") +
                  ": refusing to " + (bare ? "fetch" : "clone") + " into it");
    }
  }
  if (git_repository_init(&raw, dir.c_str(), bare ? 1 : 0) < 0) return git_error("creating a repository in " + dir);
  return Repo(raw);
}

Status update_submodules(git_repository* repo, const GitAuth& auth, int level, SyncResult& result) {
  if (level > 8) return fail("git: submodules are nested more than 8 levels deep");
  std::vector<std::string> names;
  auto collect = [](git_submodule*, const char* name, void* payload) {
    static_cast<std::vector<std::string>*>(payload)->push_back(name);
    return 0;
  };
  if (git_submodule_foreach(repo, collect, &names) < 0) return git_error("listing submodules");
  for (const auto& name : names) {
    git_submodule* raw = nullptr;
    if (git_submodule_lookup(&raw, repo, name.c_str()) < 0) return git_error("submodule \"" + name + "\"");
    Submodule sm(raw);
    git_buf resolved = GIT_BUF_INIT;
    std::string url = git_submodule_url(sm.get()) ? git_submodule_url(sm.get()) : "";
    if (git_submodule_resolve_url(&resolved, repo, url.c_str()) == 0) url = resolved.ptr;
    git_buf_dispose(&resolved);
    const std::string what = "submodule \"" + name + "\" from " + redact_url(url);
    // .gitmodules decides the URL, also when it changed since the last sync.
    if (git_submodule_init(sm.get(), 1) < 0 || git_submodule_sync(sm.get()) < 0) return git_error(what);
    RemoteContext ctx(url, auth);
    git_submodule_update_options uo = GIT_SUBMODULE_UPDATE_OPTIONS_INIT;
    uo.checkout_opts.checkout_strategy = GIT_CHECKOUT_FORCE;
    uo.fetch_opts = fetch_options_for(ctx, 0);
    uo.allow_fetch = 1;
    LocalRemoteOwnerCheck owner_check(url);
    if (git_submodule_update(sm.get(), 1, &uo) < 0) return git_error(what, &ctx);
    result.received_objects += ctx.progress.received_objects;
    result.received_bytes += ctx.progress.received_bytes;
    git_repository* sub = nullptr;
    if (git_submodule_open(&sub, sm.get()) < 0) return git_error(what);
    Repo subrepo(sub);
    if (auto s = update_submodules(subrepo.get(), auth, level + 1, result); !s) return s;
  }
  return {};
}

}  // namespace

Result<SyncResult> sync_checkout(const std::string& dir, const SourceSpec& spec, const GitAuth& auth,
                                 bool force_clean) {
  init_libgit2();
  auto repo = open_or_init(dir, false);
  if (!repo) return repo.error();
  SyncResult result;
  const std::string before = head_commit(repo->get());
  result.cloned = before.empty();
  auto oid = fetch_ref(repo->get(), spec.url, spec.ref, spec.depth, auth, result);
  if (!oid) return oid.error();
  git_object* raw = nullptr;
  if (git_object_lookup(&raw, repo->get(), &*oid, GIT_OBJECT_COMMIT) < 0) return git_error("looking up " + spec.ref);
  Object commit(raw);
  git_checkout_options co = GIT_CHECKOUT_OPTIONS_INIT;
  // FORCE discards changes to tracked files; untracked files (build/) stay.
  co.checkout_strategy = GIT_CHECKOUT_FORCE;
  result.commit = oid_hex(*oid);
  // A clean rebuild: untracked and ignored files go too (a build directory
  // with a poisoned CMake cache, say).
  if (force_clean || (spec.clean && before != result.commit && !before.empty())) {
    co.checkout_strategy |= GIT_CHECKOUT_REMOVE_UNTRACKED | GIT_CHECKOUT_REMOVE_IGNORED;
    result.cleaned = true;
  }
  if (git_checkout_tree(repo->get(), commit.get(), &co) < 0) return git_error("checking out " + result.commit + " in " + dir);
  if (git_repository_set_head_detached(repo->get(), &*oid) < 0) return git_error("setting HEAD in " + dir);
  result.changed = before != result.commit;
  if (spec.submodules) {
    if (auto s = update_submodules(repo->get(), auth, 1, result); !s) return s.error();
  }
  return result;
}

Result<std::string> remote_commit(const std::string& url, const std::string& ref, const GitAuth& auth) {
  if (is_commit_id(ref)) return ref;
  init_libgit2();
  git_remote* raw = nullptr;
  if (git_remote_create_detached(&raw, url.c_str()) < 0) return git_error("reading the URL " + redact_url(url));
  Remote remote(raw);
  RemoteContext ctx(url, auth);
  git_remote_callbacks cb = callbacks_for(ctx);
  git_proxy_options proxy = GIT_PROXY_OPTIONS_INIT;
  proxy.type = GIT_PROXY_AUTO;
  LocalRemoteOwnerCheck owner_check(url);
  if (git_remote_connect(remote.get(), GIT_DIRECTION_FETCH, &cb, &proxy, nullptr) < 0) {
    return git_error("connecting to " + redact_url(url), &ctx);
  }
  const git_remote_head** heads = nullptr;
  size_t count = 0;
  if (git_remote_ls(&heads, &count, remote.get()) < 0) return git_error("listing " + redact_url(url), &ctx);
  // A branch wins over a tag, as in sync_checkout; an annotated tag is
  // taken peeled ("^{}"), as the commit it names.
  for (const std::string& name : {"refs/heads/" + ref, "refs/tags/" + ref + "^{}", "refs/tags/" + ref}) {
    for (size_t i = 0; i < count; ++i) {
      if (name == heads[i]->name) return oid_hex(heads[i]->oid);
    }
  }
  return fail("git: ref \"" + ref + "\" not found in " + redact_url(url));
}

Result<SyncResult> fetch_bare(const std::string& dir, const std::string& url, const std::string& ref,
                              const GitAuth& auth) {
  init_libgit2();
  auto repo = open_or_init(dir, true);
  if (!repo) return repo.error();
  SyncResult result;
  const std::string before = head_commit(repo->get());
  result.cloned = before.empty();
  auto oid = fetch_ref(repo->get(), url, ref, 0, auth, result);
  if (!oid) return oid.error();
  if (git_repository_set_head_detached(repo->get(), &*oid) < 0) return git_error("setting HEAD in " + dir);
  result.commit = oid_hex(*oid);
  result.changed = before != result.commit;
  return result;
}

Result<std::optional<std::string>> read_blob_at(const std::string& dir, const std::string& commit,
                                                const std::string& path) {
  init_libgit2();
  if (!is_commit_id(commit)) return fail("git: \"" + commit + "\" is not a commit id");
  git_repository* raw_repo = nullptr;
  if (git_repository_open(&raw_repo, dir.c_str()) < 0) return git_error("opening " + dir);
  Repo repo(raw_repo);
  git_oid oid;
  git_oid_fromstr(&oid, commit.c_str());
  git_object* raw_tree = nullptr;
  git_object* raw_commit = nullptr;
  if (git_object_lookup(&raw_commit, repo.get(), &oid, GIT_OBJECT_COMMIT) < 0) return git_error("looking up " + commit);
  Object commit_obj(raw_commit);
  if (git_object_peel(&raw_tree, commit_obj.get(), GIT_OBJECT_TREE) < 0) return git_error("reading the tree of " + commit);
  Tree tree(reinterpret_cast<git_tree*>(raw_tree));
  git_tree_entry* raw_entry = nullptr;
  int err = git_tree_entry_bypath(&raw_entry, tree.get(), path.c_str());
  if (err == GIT_ENOTFOUND) return std::optional<std::string>{};
  if (err < 0) return git_error("reading " + path + " in " + commit);
  TreeEntry entry(raw_entry);
  if (git_tree_entry_type(entry.get()) != GIT_OBJECT_BLOB || git_tree_entry_filemode(entry.get()) == GIT_FILEMODE_LINK) {
    return fail("git: " + path + " in " + commit + " is not a regular file");
  }
  git_object* raw_blob = nullptr;
  if (git_tree_entry_to_object(&raw_blob, repo.get(), entry.get()) < 0) return git_error("reading " + path + " in " + commit);
  Object blob(raw_blob);
  const auto* b = reinterpret_cast<const git_blob*>(blob.get());
  return std::optional<std::string>(
      std::string(static_cast<const char*>(git_blob_rawcontent(b)), static_cast<size_t>(git_blob_rawsize(b))));
}

}  // namespace farmhand::provisioner

#if defined(__SANITIZE_ADDRESS__)
// libgit2 1.5 leaks: git_regexp_match (PCRE2 build) never frees its match
// data when a pattern does not match, which every remote lookup does while
// it looks for url.*.insteadOf (fixed upstream in 1.6), and
// git_submodule_init loses some config entries. Not ours to fix. Debian's
// libgit2 has no frame pointers, so LeakSanitizer's stacks end in the
// library and only the module can be named. farmhand frees every libgit2
// object through the unique_ptr wrappers above.
extern "C" const char* __lsan_default_suppressions() {  // NOLINT: sanitizer hook
  return "leak:libpcre2-8.so\nleak:libgit2.so\n";
}
#endif
