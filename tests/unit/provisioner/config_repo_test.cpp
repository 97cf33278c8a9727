// Desired state from a config repository: real libgit2 on local
// repositories; what is accepted, what is refused and what stays in force.
#include "provisioner/config_repo.h"

#include <gtest/gtest.h>

#include "provisioner/recipe.h"
#include "tests/unit/provisioner/git_fixture.h"

namespace farmhand::provisioner {
namespace {

constexpr const char* kContainer =
    R"({"containers": [{"name": "deb12", "distro": "debian", "release": "bookworm", "arch": "amd64"}]})";

class ConfigRepoTest : public testing::Test {
 protected:
  void SetUp() override {
    repos_.init(repo());
    first_ = repos_.commit(repo(), "hosts/b1.json", kContainer);
    local_text_ = R"({"paths": {"state": ")" + (tmp_.path() / "state").string() +
                  R"("}, "config_repo": {"url": ")" + test::GitRepos::url(repo()) +
                  R"(", "path": "hosts/b1.json"}})";
    auto book = RecipeBook::builtin();
    ASSERT_TRUE(book.ok());
    book_.emplace(std::move(*book));
    ConfigLoad local = parse_config(local_text_, *book_);
    ASSERT_TRUE(local.config) << (local.errors.empty() ? "" : local.errors[0]);
    local_ = *local.config;
  }

  fs::path repo() const { return tmp_.path() / "farm"; }
  Result<RepoSync> sync() { return sync_config_repo(local_text_, local_, HostRoot("/"), *book_); }
  ConfigLoad load(std::string* commit) {
    return load_config_with_repo(local_text_, local_, HostRoot("/"), *book_, commit);
  }

  test::TempDir tmp_;
  test::GitRepos repos_{tmp_.path()};
  std::optional<RecipeBook> book_;
  std::string local_text_;
  AgentConfig local_;
  std::string first_;
};

TEST_F(ConfigRepoTest, NothingIsConfiguredBeforeTheFirstFetch) {
  std::string commit = "x";
  ConfigLoad l = load(&commit);
  ASSERT_TRUE(l.config);
  EXPECT_TRUE(l.config->containers.empty());
  EXPECT_EQ(commit, "");
  ASSERT_EQ(l.warnings.size(), 1u);
  EXPECT_NE(l.warnings[0].find("not fetched yet"), std::string::npos);
}

TEST_F(ConfigRepoTest, AValidCommitIsAcceptedAndThenCurrent) {
  auto s = sync();
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_TRUE(s->changed);
  EXPECT_EQ(s->commit, first_);
  EXPECT_EQ(s->label, "hosts/b1.json@" + first_.substr(0, 12));
  EXPECT_FALSE(s->rejected);
  std::string commit;
  ConfigLoad l = load(&commit);
  ASSERT_TRUE(l.config);
  ASSERT_EQ(l.config->containers.size(), 1u);
  EXPECT_EQ(l.config->containers[0].name, "deb12");
  EXPECT_EQ(commit, first_);

  auto again = sync();
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->changed);
  EXPECT_EQ(again->commit, first_);
}

TEST_F(ConfigRepoTest, AnInvalidCommitIsRefusedAndTheLastGoodStays) {
  ASSERT_TRUE(sync().ok());
  const std::string bad = repos_.commit(repo(), "hosts/b1.json", R"({"containers": [], "bogus": 1})");
  auto s = sync();
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_FALSE(s->changed);
  EXPECT_EQ(s->commit, first_);
  ASSERT_TRUE(s->rejected);
  EXPECT_EQ(*s->rejected, "hosts/b1.json@" + bad.substr(0, 12) +
                              ": /bogus: unknown key (expected one of: containers, mirrors)");
  std::string commit;
  ConfigLoad l = load(&commit);
  ASSERT_TRUE(l.config);
  EXPECT_EQ(l.config->containers.size(), 1u);
  EXPECT_EQ(commit, first_);

  // A fixed commit is accepted again.
  const std::string fixed = repos_.commit(repo(), "hosts/b1.json", R"({"containers": []})");
  auto f = sync();
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->changed);
  EXPECT_EQ(f->commit, fixed);
  EXPECT_EQ(f->previous, first_);
  EXPECT_TRUE(load(&commit).config->containers.empty());
}

TEST_F(ConfigRepoTest, ACommitWithoutTheHostFileIsRefused) {
  repos_.git(repo(), {"rm", "-q", "hosts/b1.json"});
  repos_.commit(repo(), "hosts/other.json", kContainer);
  auto s = sync();
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(s->rejected);
  EXPECT_NE(s->rejected->find("the repository has no file \"hosts/b1.json\" at this commit"), std::string::npos);
  EXPECT_EQ(s->commit, "");
}

TEST_F(ConfigRepoTest, AnUnreachableRepositoryIsAnErrorAndTheLastGoodStays) {
  ASSERT_TRUE(sync().ok());
  fs::rename(repo(), tmp_.path() / "gone");
  auto s = sync();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("config repository " + test::GitRepos::url(repo())), std::string::npos)
      << s.error().message();
  std::string commit;
  EXPECT_EQ(load(&commit).config->containers.size(), 1u);
  EXPECT_EQ(commit, first_);
}

}  // namespace
}  // namespace farmhand::provisioner
