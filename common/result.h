// Result<T>: the value of an operation the environment can make fail.
//
// Expected failures (a missing tool, a bad config, a full disk) are values, not
// exceptions. An Error carries one human-readable message that already says
// what failed and why; callers add context with Error::context().
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace farmhand {

class Error {
 public:
  explicit Error(std::string message) : message_(std::move(message)) {}
  const std::string& message() const { return message_; }
  // Prefixes the message with what the caller was doing: "writing x: <reason>".
  Error context(const std::string& what) const { return Error(what + ": " + message_); }

 private:
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<Error>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), failed_(true) {}  // NOLINT

  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return error_; }

 private:
  Error error_{""};
  bool failed_ = false;
};

using Status = Result<void>;

inline Error fail(std::string message) { return Error(std::move(message)); }

// errno as text, for messages: "No such file or directory".
std::string errno_text(int err);

}  // namespace farmhand
