// Content hashes used for cache keys and change detection.
#pragma once

#include <string>
#include <string_view>

namespace farmhand {

// Lower-case hex SHA-256 of `data`.
std::string sha256_hex(std::string_view data);

// 32 lower-case hex digits from the kernel's CSPRNG: a fresh machine-id.
std::string random_id128_hex();

}  // namespace farmhand
