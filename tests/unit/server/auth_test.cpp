#include "server/auth.h"

#include <gtest/gtest.h>

#include <set>

namespace farmhand::server {
namespace {

TEST(ServerAuth, SecretsHaveTheirPrefixAnd48HexDigitsAndDiffer) {
  std::set<std::string> seen;
  for (int i = 0; i < 50; ++i) {
    std::string t = random_secret(kTokenPrefix);
    EXPECT_TRUE(looks_like_secret(t, kTokenPrefix)) << t;
    EXPECT_FALSE(looks_like_secret(t, kCredentialPrefix));
    EXPECT_EQ(t.size(), 52u);
    seen.insert(t);
  }
  EXPECT_EQ(seen.size(), 50u);
  EXPECT_FALSE(looks_like_secret("fht_" + std::string(48, 'G'), kTokenPrefix));
  EXPECT_FALSE(looks_like_secret("fht_" + std::string(47, 'a'), kTokenPrefix));
}

TEST(ServerAuth, HashIsSha256HexAndComparisonIsExact) {
  EXPECT_EQ(hash_secret("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_TRUE(hashes_equal(hash_secret("x"), hash_secret("x")));
  EXPECT_FALSE(hashes_equal(hash_secret("x"), hash_secret("y")));
  EXPECT_FALSE(hashes_equal("ab", "abc"));
}

TEST(ServerAuth, PasswordsVerifyOnlyWithTheRightPasswordAndUseASalt) {
  PasswordHash a = hash_password("correct horse", 1000);
  PasswordHash b = hash_password("correct horse", 1000);
  EXPECT_NE(a.salt_hex, b.salt_hex);
  EXPECT_NE(a.hash_hex, b.hash_hex);
  EXPECT_EQ(a.iterations, 1000);
  EXPECT_TRUE(verify_password("correct horse", a));
  EXPECT_FALSE(verify_password("correct horsf", a));
  EXPECT_FALSE(verify_password("", a));
  PasswordHash wrong_count = a;
  wrong_count.iterations = 999;
  EXPECT_FALSE(verify_password("correct horse", wrong_count));
  EXPECT_EQ(hash_password("x").iterations, kPasswordIterations);
}

TEST(ServerAuth, Names) {
  EXPECT_TRUE(valid_name("builder-01"));
  EXPECT_TRUE(valid_name("a"));
  EXPECT_TRUE(valid_name("A.b_c-9"));
  EXPECT_TRUE(valid_name(std::string(64, 'a')));
  EXPECT_FALSE(valid_name(std::string(65, 'a')));
  EXPECT_FALSE(valid_name(""));
  EXPECT_FALSE(valid_name("-x"));
  EXPECT_FALSE(valid_name(".x"));
  EXPECT_FALSE(valid_name("a b"));
  EXPECT_FALSE(valid_name("a/b"));
  EXPECT_EQ(check_name("a b", "host").error().message(),
            "\"a b\" is not a valid host name: use 1 to 64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit");
}

}  // namespace
}  // namespace farmhand::server
