// A cached base tree is trusted only with a manifest naming its own key.
#include "provisioner/base_image.h"

#include <gtest/gtest.h>

#include <fstream>

#include "common/process.h"
#include "tests/unit/temp_dir.h"

namespace farmhand::provisioner {
namespace {

BaseSpec bookworm() {
  BaseSpec b;
  b.distro = "debian";
  b.release = "bookworm";
  b.arch = "amd64";
  b.packages = {"cmake"};
  b.recipe_fingerprint = "fp-1";
  return b;
}

class BaseImagesTest : public testing::Test {
 protected:
  test::TempDir tmp_;
  PosixProcessRunner runner_;
  CommandRunner commands_{runner_};
  BaseImages images_{tmp_.path(), commands_};
  const BaseSpec base_ = bookworm();

  void make_tree() { fs::create_directories(images_.path_of(base_) / "etc"); }
  void write_manifest(const std::string& key) {
    std::ofstream(tmp_.path() / (base_.key() + ".json")) << R"({"key": ")" << key << R"("})";
  }
};

TEST_F(BaseImagesTest, ATreeWithItsManifestIsReady) {
  make_tree();
  write_manifest(base_.key());
  EXPECT_TRUE(images_.ready(base_));
  EXPECT_EQ(images_.path_of(base_), tmp_.path() / base_.key());
}

TEST_F(BaseImagesTest, ATreeWithoutAManifestIsNotTrusted) {
  make_tree();
  EXPECT_FALSE(images_.ready(base_));
}

TEST_F(BaseImagesTest, AManifestNamingAnotherKeyIsNotTrusted) {
  make_tree();
  write_manifest("debian-bookworm-amd64-000000000000");
  EXPECT_FALSE(images_.ready(base_));
}

TEST_F(BaseImagesTest, AnUnreadableManifestIsNotTrusted) {
  make_tree();
  std::ofstream(tmp_.path() / (base_.key() + ".json")) << "{not json";
  EXPECT_FALSE(images_.ready(base_));
}

TEST_F(BaseImagesTest, AManifestWithoutItsTreeIsNotReady) {
  write_manifest(base_.key());
  EXPECT_FALSE(images_.ready(base_));
}

TEST_F(BaseImagesTest, AnyChangeToTheRecipeOrPackagesIsAnotherBase) {
  make_tree();
  write_manifest(base_.key());
  BaseSpec changed = base_;
  changed.recipe_fingerprint = "fp-2";
  EXPECT_FALSE(images_.ready(changed));
  changed = base_;
  changed.packages.push_back("git");
  EXPECT_FALSE(images_.ready(changed));
}

TEST(BuildUser, FoundOnlyWithUid883) {
  test::TempDir tmp;
  fs::create_directories(tmp.path() / "etc");
  std::ofstream(tmp.path() / "etc/passwd") << "root:x:0:0::/root:/bin/sh\nsai:x:1000:65534::/home/sai:/bin/sh\n";
  EXPECT_FALSE(tree_has_build_user(tmp.path()));
  std::ofstream(tmp.path() / "etc/passwd") << "root:x:0:0::/root:/bin/sh\nsai:x:883:65534::/home/sai:/bin/sh\n";
  EXPECT_TRUE(tree_has_build_user(tmp.path()));
  std::ofstream(tmp.path() / "etc/passwd") << "saint:x:883:65534::/home/saint:/bin/sh\n";
  EXPECT_FALSE(tree_has_build_user(tmp.path()));
}

}  // namespace
}  // namespace farmhand::provisioner
