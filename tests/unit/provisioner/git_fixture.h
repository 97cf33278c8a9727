// Local git repositories for tests, made with the git CLI in a temporary
// directory (real repositories for real libgit2).
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "common/fs.h"
#include "common/process.h"
#include "tests/unit/temp_dir.h"

namespace farmhand::test {

class GitRepos {
 public:
  explicit GitRepos(const fs::path& home) : home_(home) {}

  // Runs a program (git, ssh-keygen) and returns its trimmed stdout.
  std::string run(const std::string& program, std::vector<std::string> args) {
    auto path = find_program(program);
    EXPECT_TRUE(path.ok()) << program;
    if (!path) return "";
    Command c;
    c.path = *path;
    c.args = std::move(args);
    c.env = minimal_env({"HOME=" + home_.string(), "GIT_CONFIG_NOSYSTEM=1", "GIT_AUTHOR_NAME=T",
                         "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=T",
                         "GIT_COMMITTER_EMAIL=t@example.org"});
    auto r = runner_.run(c);
    EXPECT_TRUE(r.ok());
    if (!r) return "";
    EXPECT_TRUE(r->success()) << c.display() << ": " << r->err;
    std::string out = r->out;
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
  }
  std::string git(const fs::path& repo, std::vector<std::string> args) {
    args.insert(args.begin(), {"-C", repo.string()});
    return run("git", std::move(args));
  }
  // A repository at `repo` with a "main" branch and no commits.
  void init(const fs::path& repo) {
    fs::create_directories(repo);
    git(repo, {"init", "-q", "-b", "main"});
  }
  // Writes `file` and commits it; returns the new commit id.
  std::string commit(const fs::path& repo, const std::string& file, const std::string& content) {
    fs::create_directories((repo / file).parent_path());
    std::ofstream(repo / file) << content;
    git(repo, {"add", "-A"});
    git(repo, {"commit", "-q", "-m", "change " + file});
    return git(repo, {"rev-parse", "HEAD"});
  }
  static std::string url(const fs::path& repo) { return "file://" + repo.string(); }

 private:
  fs::path home_;
  PosixProcessRunner runner_;
};

}  // namespace farmhand::test
