// A small RAII wrapper over SQLite: one Database per file, WAL, busy timeout,
// prepared statements and transactions. Errors are values.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace farmhand::sql {

class Statement {
 public:
  Statement(Statement&&) noexcept = default;
  Statement& operator=(Statement&&) noexcept = default;

  Statement& bind(int index, std::string_view value);
  Statement& bind(int index, int64_t value);
  Statement& bind_null(int index);
  // Binds a value or NULL.
  Statement& bind_optional(int index, const std::optional<std::string>& value);

  // true: a row is ready; false: done. Errors are returned.
  Result<bool> step();
  // Runs to completion, for statements that return no rows.
  Status run();
  Status reset();

  std::string text(int column) const;
  int64_t integer(int column) const;
  bool is_null(int column) const;
  int column_count() const;

 private:
  friend class Database;
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt, &sqlite3_finalize) {}
  sqlite3* db_;
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> stmt_;
};

class Database {
 public:
  // Opens (creating if needed) with WAL journaling and synchronous=FULL: the
  // state must survive a power cut as well as a killed process.
  static Result<Database> open(const std::string& path);

  Status exec(std::string_view sql);
  Result<Statement> prepare(std::string_view sql);
  int64_t changes() const;
  int64_t last_insert_rowid() const;

  // Runs `body` in BEGIN IMMEDIATE ... COMMIT; rolls back if it fails.
  template <typename Fn>
  Status transaction(Fn&& body) {
    if (auto s = exec("BEGIN IMMEDIATE"); !s) return s;
    Status s = body();
    if (!s) {
      (void)exec("ROLLBACK");
      return s;
    }
    return exec("COMMIT");
  }

 private:
  explicit Database(sqlite3* db) : db_(db, &sqlite3_close_v2) {}
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> db_;
};

}  // namespace farmhand::sql
