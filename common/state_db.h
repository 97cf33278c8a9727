// state.db: the host's one SQLite file of farmhand state, and the one owner
// of its schema. The provisioner keeps its containers, subnets, journal and
// payload there, the device manager its leases and device events, the agent
// its outbox; each opens the file through state_db::open, which brings every
// table to the schema this farmhand writes (PRAGMA user_version) before any
// of them reads a row. The stores own their queries; only the tables are here.
#pragma once

#include <cstdint>
#include <string>

#include "common/result.h"
#include "common/sqlite.h"

namespace farmhand::state_db {

// The schema version this farmhand writes. Each earlier one, and the tables
// written before they had a version, migrate (state_db.cpp lists how).
inline constexpr int64_t kVersion = 5;

// Opens (creating) the database at `path` and migrates it to kVersion in one
// transaction: a process killed meanwhile leaves the old schema intact, and
// the next open migrates again. A database already at kVersion is not written
// to, so read-only commands leave it byte for byte as it was. A database
// newer than kVersion is refused.
Result<sql::Database> open(const std::string& path);

}  // namespace farmhand::state_db
