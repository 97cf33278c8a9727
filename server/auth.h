// Secrets of farmhand-server: enrollment tokens, host credentials, dashboard
// session ids and user passwords. Only hashes are ever stored; comparisons
// are constant-time.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace farmhand::server {

inline constexpr const char* kTokenPrefix = "fht_";
inline constexpr const char* kCredentialPrefix = "fhc_";
inline constexpr const char* kSessionPrefix = "fhs_";
inline constexpr int kPasswordIterations = 100000;

// prefix + 48 lower-case hex digits from 24 bytes of the kernel's CSPRNG.
std::string random_secret(std::string_view prefix);
// Whether `s` has the shape random_secret(prefix) gives.
bool looks_like_secret(std::string_view s, std::string_view prefix);

// The stored form of a token, credential or session id: its SHA-256, hex.
std::string hash_secret(std::string_view secret);
// Constant-time equality of two hashes (CRYPTO_memcmp); unequal lengths differ.
bool hashes_equal(std::string_view a, std::string_view b);

// A password as stored: PBKDF2-HMAC-SHA256 with a random salt.
struct PasswordHash {
  std::string salt_hex;
  int iterations = kPasswordIterations;
  std::string hash_hex;
};
PasswordHash hash_password(std::string_view password, int iterations = kPasswordIterations);
bool verify_password(std::string_view password, const PasswordHash& stored);

// Host and user names: [A-Za-z0-9][A-Za-z0-9._-]{0,63}.
bool valid_name(std::string_view name);
// "... is not a valid NAME: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
Status check_name(std::string_view name, std::string_view what);

}  // namespace farmhand::server
