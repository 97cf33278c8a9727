#include "server/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/random.h>

#include <cstdlib>
#include <vector>

#include "common/hash.h"

namespace farmhand::server {
namespace {

void random_bytes(unsigned char* out, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = getrandom(out + got, n - got, 0);
    if (r > 0) {
      got += static_cast<size_t>(r);
    } else if (RAND_bytes(out + got, static_cast<int>(n - got)) == 1) {
      return;
    } else if (errno != EINTR) {
      std::abort();  // no randomness at all: never hand out a guessable secret
    }
  }
}

std::string to_hex(const unsigned char* data, size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 15];
  }
  return out;
}

std::string pbkdf2_hex(std::string_view password, std::string_view salt_hex, int iterations) {
  unsigned char out[32];
  PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                    reinterpret_cast<const unsigned char*>(salt_hex.data()), static_cast<int>(salt_hex.size()),
                    iterations, EVP_sha256(), sizeof(out), out);
  return to_hex(out, sizeof(out));
}

}  // namespace

std::string random_secret(std::string_view prefix) {
  unsigned char bytes[24];
  random_bytes(bytes, sizeof(bytes));
  return std::string(prefix) + to_hex(bytes, sizeof(bytes));
}

bool looks_like_secret(std::string_view s, std::string_view prefix) {
  if (s.size() != prefix.size() + 48 || s.substr(0, prefix.size()) != prefix) return false;
  for (char c : s.substr(prefix.size())) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string hash_secret(std::string_view secret) { return sha256_hex(secret); }

bool hashes_equal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

PasswordHash hash_password(std::string_view password, int iterations) {
  unsigned char salt[16];
  random_bytes(salt, sizeof(salt));
  PasswordHash h;
  h.salt_hex = to_hex(salt, sizeof(salt));
  h.iterations = iterations;
  h.hash_hex = pbkdf2_hex(password, h.salt_hex, iterations);
  return h;
}

bool verify_password(std::string_view password, const PasswordHash& stored) {
  if (stored.iterations < 1) return false;
  return hashes_equal(pbkdf2_hex(password, stored.salt_hex, stored.iterations), stored.hash_hex);
}

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
  if (!alnum(name[0])) return false;
  for (char c : name) {
    if (!alnum(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

Status check_name(std::string_view name, std::string_view what) {
  if (valid_name(name)) return {};
  std::string shown;
  for (char c : name.substr(0, 80)) shown += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  return fail("\"" + shown + "\" is not a valid " + std::string(what) +
              " name: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit");
}

}  // namespace farmhand::server
