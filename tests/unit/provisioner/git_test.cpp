// The git layer against real libgit2 and local repositories made with the
// git CLI in a temporary directory; known_hosts matching against files made
// by ssh-keygen.
#include "provisioner/git.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "common/fs.h"
#include "common/process.h"
#include "tests/unit/provisioner/git_fixture.h"
#include "tests/unit/temp_dir.h"

namespace farmhand::provisioner {
namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void spit(const fs::path& p, const std::string& content) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << content;
}

class GitTest : public ::testing::Test {
 protected:
  // Runs a program (git, ssh-keygen) and returns its trimmed stdout.
  std::string run(const std::string& program, std::vector<std::string> args) {
    return repos_.run(program, std::move(args));
  }
  std::string git(const fs::path& repo, std::vector<std::string> args) { return repos_.git(repo, std::move(args)); }
  // A repository with a "main" branch holding one commit.
  fs::path make_upstream(const std::string& name, const std::string& readme = "one\n") {
    fs::path repo = tmp_.path() / name;
    repos_.init(repo);
    commit(repo, "README", readme);
    return repo;
  }
  std::string commit(const fs::path& repo, const std::string& file, const std::string& content) {
    return repos_.commit(repo, file, content);
  }
  static std::string url(const fs::path& repo) { return test::GitRepos::url(repo); }
  SourceSpec spec_for(const fs::path& repo, const std::string& ref = "main") {
    SourceSpec s;
    s.name = "src";
    s.url = url(repo);
    s.ref = ref;
    s.path = "/home/sai/src/src";
    return s;
  }

  test::TempDir tmp_;
  test::GitRepos repos_{tmp_.path()};
  GitAuth no_auth_;
};

TEST_F(GitTest, ClonesThenAnUnchangedRemoteSendsNothing) {
  fs::path up = make_upstream("up");
  const std::string head = git(up, {"rev-parse", "HEAD"});
  const std::string dir = (tmp_.path() / "checkout").string();

  auto first = sync_checkout(dir, spec_for(up), no_auth_);
  ASSERT_TRUE(first.ok()) << first.error().message();
  EXPECT_EQ(first->commit, head);
  EXPECT_TRUE(first->cloned);
  EXPECT_TRUE(first->changed);
  EXPECT_GT(first->received_objects, 0u);
  EXPECT_EQ(slurp(fs::path(dir) / "README"), "one\n");
  EXPECT_EQ(git(dir, {"rev-parse", "HEAD"}), head);

  auto second = sync_checkout(dir, spec_for(up), no_auth_);
  ASSERT_TRUE(second.ok()) << second.error().message();
  EXPECT_EQ(second->commit, head);
  EXPECT_FALSE(second->cloned);
  EXPECT_FALSE(second->changed);
  EXPECT_EQ(second->received_objects, 0u);
  EXPECT_EQ(second->received_bytes, 0u);
}

TEST_F(GitTest, ANewCommitIsCheckedOutAndLocalChangesAreDiscardedButBuildDirsKept) {
  fs::path up = make_upstream("up");
  commit(up, "gone.txt", "soon deleted\n");
  const std::string dir = (tmp_.path() / "checkout").string();
  ASSERT_TRUE(sync_checkout(dir, spec_for(up), no_auth_).ok());

  git(up, {"rm", "-q", "gone.txt"});
  const std::string next = commit(up, "README", "two\n");
  spit(fs::path(dir) / "README", "edited locally\n");
  spit(fs::path(dir) / "build" / "out.o", "object\n");

  auto r = sync_checkout(dir, spec_for(up), no_auth_);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->commit, next);
  EXPECT_TRUE(r->changed);
  EXPECT_FALSE(r->cloned);
  EXPECT_GT(r->received_objects, 0u);
  EXPECT_GT(r->received_bytes, 0u);
  EXPECT_EQ(slurp(fs::path(dir) / "README"), "two\n");
  EXPECT_FALSE(fs::exists(fs::path(dir) / "gone.txt"));
  EXPECT_EQ(slurp(fs::path(dir) / "build" / "out.o"), "object\n");
  // Detached at the commit: no local branch to diverge.
  EXPECT_EQ(git(dir, {"rev-parse", "--abbrev-ref", "HEAD"}), "HEAD");
}

// clean: a build directory with a poisoned cache goes when the source moves,
// or at once when a clean rebuild asks; an unmoved source keeps it.
TEST_F(GitTest, CleanRemovesUntrackedAndIgnoredFilesWhenTheCommitMovesOrWhenForced) {
  fs::path up = make_upstream("up");
  commit(up, ".gitignore", "build/\n");
  const std::string dir = (tmp_.path() / "checkout").string();
  SourceSpec spec = spec_for(up);
  spec.clean = true;
  ASSERT_TRUE(sync_checkout(dir, spec, no_auth_).ok());
  spit(fs::path(dir) / "build" / "CMakeCache.txt", "LWS_WITH_GNUTLS:BOOL=ON\n");
  spit(fs::path(dir) / "notes.txt", "untracked\n");

  auto same = sync_checkout(dir, spec, no_auth_);
  ASSERT_TRUE(same.ok()) << same.error().message();
  EXPECT_FALSE(same->cleaned);
  EXPECT_TRUE(fs::exists(fs::path(dir) / "build" / "CMakeCache.txt"));

  commit(up, "README", "moved\n");
  auto moved = sync_checkout(dir, spec, no_auth_);
  ASSERT_TRUE(moved.ok()) << moved.error().message();
  EXPECT_TRUE(moved->cleaned);
  EXPECT_FALSE(fs::exists(fs::path(dir) / "build" / "CMakeCache.txt"));
  EXPECT_FALSE(fs::exists(fs::path(dir) / "notes.txt"));
  EXPECT_EQ(slurp(fs::path(dir) / ".gitignore"), "build/\n");
  EXPECT_EQ(slurp(fs::path(dir) / "README"), "moved\n");

  spit(fs::path(dir) / "build" / "CMakeCache.txt", "again\n");
  spec.clean = false;
  auto forced = sync_checkout(dir, spec, no_auth_, true);
  ASSERT_TRUE(forced.ok()) << forced.error().message();
  EXPECT_TRUE(forced->cleaned);
  EXPECT_FALSE(forced->changed);
  EXPECT_FALSE(fs::exists(fs::path(dir) / "build" / "CMakeCache.txt"));
}

TEST_F(GitTest, BranchTagAndCommitRefs) {
  fs::path up = make_upstream("up");
  const std::string first = git(up, {"rev-parse", "HEAD"});
  git(up, {"tag", "-a", "v1", "-m", "release 1"});
  git(up, {"tag", "light"});
  const std::string second = commit(up, "README", "two\n");
  git(up, {"branch", "stable", first});
  const std::string dir = (tmp_.path() / "checkout").string();

  for (const auto& [ref, want] : std::vector<std::pair<std::string, std::string>>{
           {"main", second}, {"v1", first}, {"main", second}, {"light", first}, {"stable", first},
           {second, second}, {first, first}}) {
    auto r = sync_checkout(dir, spec_for(up, ref), no_auth_);
    ASSERT_TRUE(r.ok()) << ref << ": " << r.error().message();
    EXPECT_EQ(r->commit, want) << ref;
    EXPECT_EQ(git(dir, {"rev-parse", "HEAD"}), want) << ref;
  }
}

TEST_F(GitTest, RemoteCommitAsksWithoutFetching) {
  fs::path up = make_upstream("up");
  const std::string first = git(up, {"rev-parse", "HEAD"});
  git(up, {"tag", "-a", "v1", "-m", "release 1"});
  git(up, {"tag", "light"});
  const std::string second = commit(up, "README", "two\n");
  for (const auto& [ref, want] : std::vector<std::pair<std::string, std::string>>{
           {"main", second}, {"v1", first}, {"light", first}, {first, first}}) {
    auto r = remote_commit(url(up), ref, no_auth_);
    ASSERT_TRUE(r.ok()) << ref << ": " << r.error().message();
    EXPECT_EQ(*r, want) << ref;
  }
  auto missing = remote_commit(url(up), "nope", no_auth_);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message(), "git: ref \"nope\" not found in " + url(up));
}

TEST_F(GitTest, ACommitNotYetFetchedIsFetched) {
  fs::path up = make_upstream("up");
  const std::string dir = (tmp_.path() / "checkout").string();
  ASSERT_TRUE(sync_checkout(dir, spec_for(up), no_auth_).ok());
  const std::string next = commit(up, "README", "two\n");
  auto r = sync_checkout(dir, spec_for(up, next), no_auth_);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->commit, next);
  EXPECT_TRUE(r->changed);
  EXPECT_GT(r->received_objects, 0u);
}

TEST_F(GitTest, AMissingRefIsNamed) {
  fs::path up = make_upstream("up");
  const std::string dir = (tmp_.path() / "checkout").string();
  auto r = sync_checkout(dir, spec_for(up, "nope"), no_auth_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "git: ref \"nope\" not found in " + url(up));

  auto c = sync_checkout(dir, spec_for(up, std::string(40, 'a')), no_auth_);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message(), "git: ref \"" + std::string(40, 'a') + "\" not found in " + url(up));
}

TEST_F(GitTest, AnUnreachableRemoteIsAnError) {
  const std::string dir = (tmp_.path() / "checkout").string();
  SourceSpec s = spec_for(tmp_.path() / "no-such-repo");
  auto r = sync_checkout(dir, s, no_auth_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message().rfind("git: fetching " + s.url + ": ", 0), 0u) << r.error().message();
}

TEST_F(GitTest, RefusesANonEmptyDirectoryThatIsNotACheckout) {
  fs::path up = make_upstream("up");
  const fs::path dir = tmp_.path() / "occupied";
  spit(dir / "precious.txt", "keep me\n");
  auto r = sync_checkout(dir.string(), spec_for(up), no_auth_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(),
            "git: " + dir.string() + " is not empty and is not a git checkout: refusing to clone into it");
  EXPECT_EQ(slurp(dir / "precious.txt"), "keep me\n");
  EXPECT_FALSE(fs::exists(dir / ".git"));

  spit(tmp_.path() / "a-file", "x");
  auto f = sync_checkout((tmp_.path() / "a-file").string(), spec_for(up), no_auth_);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().message(), "git: " + (tmp_.path() / "a-file").string() + " exists and is not a directory");
}

TEST_F(GitTest, AnEmptyExistingDirectoryIsClonedInto) {
  fs::path up = make_upstream("up");
  const fs::path dir = tmp_.path() / "empty";
  fs::create_directories(dir);
  auto r = sync_checkout(dir.string(), spec_for(up), no_auth_);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_TRUE(r->cloned);
  EXPECT_EQ(slurp(dir / "README"), "one\n");
}

TEST_F(GitTest, AChangedUrlIsFollowed) {
  fs::path a = make_upstream("a", "from a\n");
  fs::path b = make_upstream("b", "from b\n");
  const std::string b_head = git(b, {"rev-parse", "HEAD"});
  const std::string dir = (tmp_.path() / "checkout").string();
  ASSERT_TRUE(sync_checkout(dir, spec_for(a), no_auth_).ok());
  auto r = sync_checkout(dir, spec_for(b), no_auth_);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->commit, b_head);
  EXPECT_TRUE(r->changed);
  EXPECT_EQ(slurp(fs::path(dir) / "README"), "from b\n");
  EXPECT_EQ(git(dir, {"remote", "get-url", "origin"}), url(b));
}

TEST_F(GitTest, DepthFetchesTheWholeHistoryOnOldLibgit2) {
  fs::path up = make_upstream("up");
  const std::string head = commit(up, "README", "two\n");
  SourceSpec s = spec_for(up);
  s.depth = 1;
  const std::string dir = (tmp_.path() / "checkout").string();
  auto r = sync_checkout(dir, s, no_auth_);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->commit, head);
  EXPECT_EQ(slurp(fs::path(dir) / "README"), "two\n");
}

TEST_F(GitTest, SubmodulesAreUpdatedRecursivelyOnlyWhenAsked) {
  fs::path inner = make_upstream("inner", "inner one\n");
  fs::path lib = make_upstream("lib", "lib one\n");
  git(lib, {"-c", "protocol.file.allow=always", "submodule", "add", "-q", url(inner), "inner"});
  git(lib, {"commit", "-q", "-m", "add inner"});
  fs::path up = make_upstream("up");
  git(up, {"-c", "protocol.file.allow=always", "submodule", "add", "-q", url(lib), "lib"});
  git(up, {"commit", "-q", "-m", "add lib"});

  const fs::path plain = tmp_.path() / "plain";
  auto p = sync_checkout(plain.string(), spec_for(up), no_auth_);
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_TRUE(fs::is_directory(plain / "lib"));
  EXPECT_FALSE(fs::exists(plain / "lib" / "README"));

  SourceSpec s = spec_for(up);
  s.submodules = true;
  const fs::path dir = tmp_.path() / "checkout";
  auto r = sync_checkout(dir.string(), s, no_auth_);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(slurp(dir / "lib" / "README"), "lib one\n");
  EXPECT_EQ(slurp(dir / "lib" / "inner" / "README"), "inner one\n");

  // A new submodule commit recorded upstream is followed; unchanged fetches nothing.
  commit(lib, "README", "lib two\n");
  git(up / "lib", {"pull", "-q", "origin", "main"});
  git(up, {"commit", "-q", "-am", "bump lib"});
  auto bumped = sync_checkout(dir.string(), s, no_auth_);
  ASSERT_TRUE(bumped.ok()) << bumped.error().message();
  EXPECT_TRUE(bumped->changed);
  EXPECT_EQ(slurp(dir / "lib" / "README"), "lib two\n");
  EXPECT_EQ(slurp(dir / "lib" / "inner" / "README"), "inner one\n");
  auto again = sync_checkout(dir.string(), s, no_auth_);
  ASSERT_TRUE(again.ok()) << again.error().message();
  EXPECT_FALSE(again->changed);
  EXPECT_EQ(again->received_objects, 0u);
  // The submodule's git directory does not name the absolute checkout path
  // (the helper works on a bind mount of it).
  EXPECT_EQ(slurp(dir / ".git" / "modules" / "lib" / "config").find(dir.string()), std::string::npos);
  EXPECT_EQ(slurp(dir / "lib" / ".git").find(dir.string()), std::string::npos);
}

TEST_F(GitTest, BareFetchAndReadBlob) {
  fs::path up = make_upstream("config");
  const std::string head = commit(up, "hosts/builder-01.json", "{\"containers\": []}\n");
  const std::string bare = (tmp_.path() / "state" / "config.git").string();

  auto r = fetch_bare(bare, url(up), "main", no_auth_);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->commit, head);
  EXPECT_TRUE(r->changed);
  EXPECT_EQ(git(bare, {"rev-parse", "refs/remotes/origin/main"}), head);
  EXPECT_EQ(git(bare, {"rev-parse", "--is-bare-repository"}), "true");

  auto again = fetch_bare(bare, url(up), "main", no_auth_);
  ASSERT_TRUE(again.ok()) << again.error().message();
  EXPECT_FALSE(again->changed);
  EXPECT_FALSE(again->cloned);
  EXPECT_EQ(again->received_objects, 0u);

  auto blob = read_blob_at(bare, head, "hosts/builder-01.json");
  ASSERT_TRUE(blob.ok()) << blob.error().message();
  ASSERT_TRUE(blob->has_value());
  EXPECT_EQ(**blob, "{\"containers\": []}\n");

  auto missing = read_blob_at(bare, head, "hosts/builder-02.json");
  ASSERT_TRUE(missing.ok()) << missing.error().message();
  EXPECT_FALSE(missing->has_value());
  auto missing_dir = read_blob_at(bare, head, "nope/x.json");
  ASSERT_TRUE(missing_dir.ok()) << missing_dir.error().message();
  EXPECT_FALSE(missing_dir->has_value());

  auto dir = read_blob_at(bare, head, "hosts");
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.error().message(), "git: hosts in " + head + " is not a regular file");

  const std::string next = commit(up, "hosts/builder-01.json", "{\"containers\": [1]}\n");
  auto moved = fetch_bare(bare, url(up), "main", no_auth_);
  ASSERT_TRUE(moved.ok()) << moved.error().message();
  EXPECT_EQ(moved->commit, next);
  EXPECT_TRUE(moved->changed);
  EXPECT_EQ(**read_blob_at(bare, next, "hosts/builder-01.json"), "{\"containers\": [1]}\n");
  EXPECT_EQ(**read_blob_at(bare, head, "hosts/builder-01.json"), "{\"containers\": []}\n");

  auto bad = fetch_bare(bare, url(up), "nope", no_auth_);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message(), "git: ref \"nope\" not found in " + url(up));
}

TEST(RedactUrl, HidesOnlyThePassword) {
  EXPECT_EQ(redact_url("https://user:pass@host/x"), "https://user:***@host/x");
  EXPECT_EQ(redact_url("https://user:p@ss@host/x"), "https://user:***@host/x");
  EXPECT_EQ(redact_url("https://user@host/x"), "https://user@host/x");
  EXPECT_EQ(redact_url("https://host/x"), "https://host/x");
  EXPECT_EQ(redact_url("https://host/x@y:z"), "https://host/x@y:z");
  EXPECT_EQ(redact_url("ssh://git@host:2222/x"), "ssh://git@host:2222/x");
  EXPECT_EQ(redact_url("git@github.com:org/repo.git"), "git@github.com:org/repo.git");
  EXPECT_EQ(redact_url("/srv/repo.git"), "/srv/repo.git");
}

TEST(LoadGitAuth, ReadsTheFilesAndNamesTheBadOne) {
  test::TempDir tmp;
  const fs::path key = tmp.path() / "key", hosts = tmp.path() / "known_hosts", token = tmp.path() / "token";
  spit(key, "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAsecretsecretsecret\n-----END OPENSSH PRIVATE KEY-----\n");
  spit(hosts, "host ssh-ed25519 AAAA\n");
  spit(token, "  tok3n-value \nsecond line\n");
  GitCredentials c{key.string(), hosts.string(), token.string(), "ci"};
  auto auth = load_git_auth(c);
  ASSERT_TRUE(auth.ok()) << auth.error().message();
  EXPECT_EQ(auth->token, "tok3n-value");
  EXPECT_EQ(auth->username, "ci");
  EXPECT_EQ(auth->ssh_key_file, key.string());
  EXPECT_NE(auth->ssh_key.find("AAAAsecretsecretsecret"), std::string::npos);
  EXPECT_EQ(auth->known_hosts, "host ssh-ed25519 AAAA\n");

  GitCredentials missing = c;
  missing.ssh_key = (tmp.path() / "nope").string();
  EXPECT_EQ(load_git_auth(missing).error().message(), "ssh key file " + missing.ssh_key + ": does not exist");

  spit(tmp.path() / "blank", " \n\n");
  GitCredentials empty = c;
  empty.token_file = (tmp.path() / "blank").string();
  EXPECT_EQ(load_git_auth(empty).error().message(), "token file " + empty.token_file + ": is empty");

  GitCredentials dir = c;
  dir.known_hosts = tmp.path().string();
  EXPECT_EQ(load_git_auth(dir).error().message(), "known_hosts file " + dir.known_hosts + ": is not a regular file");

  EXPECT_TRUE(load_git_auth(GitCredentials{}).ok());
}

class KnownHostsTest : public GitTest {
 protected:
  // A real ed25519 host key from ssh-keygen: its "type base64" public line.
  std::pair<std::string, std::string> make_key(const std::string& name) {
    const fs::path file = tmp_.path() / name;
    run("ssh-keygen", {"-q", "-t", "ed25519", "-N", "", "-C", "", "-f", file.string()});
    std::istringstream pub(slurp(file.string() + ".pub"));
    std::string type, b64;
    pub >> type >> b64;
    return {type, b64};
  }
  static std::string blob(const std::string& b64) {
    // Decoding through known_host_matches' own parser would prove nothing:
    // use OpenSSL-free plain decoding here.
    static const std::string chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    unsigned buf = 0;
    int bits = 0;
    for (char c : b64) {
      if (c == '=') break;
      buf = (buf << 6) | static_cast<unsigned>(chars.find(c));
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out.push_back(static_cast<char>((buf >> bits) & 0xff));
      }
    }
    return out;
  }
};

TEST_F(KnownHostsTest, PlainCommaListsPortsAndWildcards) {
  auto [type, key] = make_key("k1");
  auto [type2, other] = make_key("k2");
  const std::string raw = blob(key);
  const std::string text = "# comment\n\n"
                           "git.example.org,10.0.0.5 " + type + " " + key + " comment\n"
                           "[git.example.org]:2222 " + type + " " + key + "\n"
                           "*.farm.example,!bad.farm.example " + type + " " + key + "\n"
                           "other.example " + type2 + " " + other + "\n";
  EXPECT_TRUE(known_host_matches(text, "git.example.org", 22, "", raw));
  EXPECT_TRUE(known_host_matches(text, "GIT.example.org", 22, type, raw));
  EXPECT_TRUE(known_host_matches(text, "10.0.0.5", 22, "", raw));
  EXPECT_TRUE(known_host_matches(text, "git.example.org", 2222, "", raw));
  EXPECT_FALSE(known_host_matches(text, "10.0.0.5", 2222, "", raw));
  EXPECT_FALSE(known_host_matches(text, "git.example.org", 2200, "", raw));
  EXPECT_TRUE(known_host_matches(text, "b1.farm.example", 22, "", raw));
  EXPECT_FALSE(known_host_matches(text, "bad.farm.example", 22, "", raw));
  // Known host, other key: refused.
  EXPECT_FALSE(known_host_matches(text, "other.example", 22, "", raw));
  EXPECT_TRUE(known_host_matches(text, "other.example", 22, "", blob(other)));
  EXPECT_FALSE(known_host_matches(text, "unknown.example", 22, "", raw));
  EXPECT_FALSE(known_host_matches("", "git.example.org", 22, "", raw));
  // A wrong type name on the line does not match.
  EXPECT_FALSE(known_host_matches("git.example.org ssh-rsa " + key + "\n", "git.example.org", 22, "", raw));
}

TEST_F(KnownHostsTest, HashedEntriesFromSshKeygen) {
  auto [type, key] = make_key("k1");
  const fs::path file = tmp_.path() / "known_hosts";
  spit(file, "git.example.org " + type + " " + key + "\n[git.example.org]:2222 " + type + " " + key + "\n");
  run("ssh-keygen", {"-q", "-H", "-f", file.string()});
  const std::string hashed = slurp(file);
  ASSERT_EQ(hashed.find("git.example.org"), std::string::npos) << hashed;
  ASSERT_NE(hashed.find("|1|"), std::string::npos) << hashed;
  EXPECT_TRUE(known_host_matches(hashed, "git.example.org", 22, "", blob(key)));
  EXPECT_TRUE(known_host_matches(hashed, "git.example.org", 2222, "", blob(key)));
  EXPECT_FALSE(known_host_matches(hashed, "git.example.org", 2200, "", blob(key)));
  EXPECT_FALSE(known_host_matches(hashed, "git2.example.org", 22, "", blob(key)));
}

TEST_F(KnownHostsTest, RevokedAndCertAuthorityLines) {
  auto [type, key] = make_key("k1");
  const std::string line = "git.example.org " + type + " " + key + "\n";
  EXPECT_FALSE(known_host_matches(line + "@revoked * " + type + " " + key + "\n", "git.example.org", 22, "",
                                  blob(key)));
  EXPECT_FALSE(known_host_matches("@cert-authority git.example.org " + type + " " + key + "\n",
                                  "git.example.org", 22, "", blob(key)));
}

TEST(GitSyncRequest, RoundTripsAndRefusesBadInput) {
  GitSyncRequest r;
  r.tree = "/var/lib/machines/a";
  r.path = "/home/sai/src/x";
  r.uid = 883;
  r.gid = 65534;
  r.mountpoint = "/run/farmhand/git/abc";
  r.source.name = "x";
  r.source.url = "ssh://git@h/x.git";
  r.source.ref = "main";
  r.source.depth = 1;
  r.source.submodules = true;
  r.source.credentials = {"/etc/farmhand/keys/deploy", "/etc/farmhand/known_hosts", "", "ci"};
  r.source.path = r.path;
  auto parsed = parse_git_sync_request(git_sync_request_json(r));
  ASSERT_TRUE(parsed.ok()) << parsed.error().message();
  EXPECT_EQ(*parsed, r);

  EXPECT_EQ(parse_git_sync_request("{").error().message(), "request: not valid JSON");
  EXPECT_EQ(parse_git_sync_request(R"({"tree":"/t","path":"p","uid":1,"gid":1,"mountpoint":"/m","source":{"url":"u","ref":"r"}})")
                .error().message(),
            "request/path: expected an absolute path");
  EXPECT_EQ(parse_git_sync_request(R"({"tree":"/t","path":"/p","uid":-1,"gid":1,"mountpoint":"/m","source":{"url":"u","ref":"r"}})")
                .error().message(),
            "request/uid: expected an id");
  EXPECT_EQ(parse_git_sync_request(R"({"tree":"/t","path":"/p","uid":1,"gid":1,"mountpoint":"/m","source":{"url":"u","ref":"r","x":1}})")
                .error().message(),
            "request/source/x: unknown key");
}

TEST(GitSyncOutput, RoundTripsTheLastLine) {
  SyncResult r;
  r.commit = std::string(40, 'c');
  r.cloned = true;
  r.changed = true;
  r.received_objects = 12;
  r.received_bytes = 3456;
  r.fetch_time = std::chrono::milliseconds(78);
  auto parsed = parse_git_sync_output("some noise\n" + git_sync_result_json(r) + "\n");
  ASSERT_TRUE(parsed.ok()) << parsed.error().message();
  EXPECT_EQ(*parsed, r);
  EXPECT_EQ(git_sync_result_json(r),
            R"({"changed":true,"cleaned":false,"cloned":true,"commit":")" + r.commit +
                R"(","fetch_ms":78,"received_bytes":3456,"received_objects":12})");
  EXPECT_FALSE(parse_git_sync_output("").ok());
  EXPECT_EQ(parse_git_sync_output(R"({"commit":"x"})").error().message(), "git-sync output/changed: missing");
}

}  // namespace
}  // namespace farmhand::provisioner
