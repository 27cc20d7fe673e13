// Status and Result: how every layer of etgpu reports failure. Nothing in the runtime aborts;
// every error carries a message meant for the user (what was wrong, expected vs actual).
#pragma once

#include <sstream>
#include <string>
#include <utility>

namespace etgpu {

class Status {
 public:
  Status() = default;
  static Status ok() { return Status(); }
  static Status error(std::string message) { return Status(std::move(message), true); }
  bool is_ok() const { return !failed_; }
  const std::string& message() const { return message_; }

 private:
  Status(std::string message, bool failed) : message_(std::move(message)), failed_(failed) {}
  std::string message_;
  bool failed_ = false;
};

// Builds an error message from any streamable parts: err("input ", i, " has rank ", r).
template <typename... Parts>
Status err(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return Status::error(out.str());
}

template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT
  bool is_ok() const { return status_.is_ok(); }
  const Status& status() const { return status_; }
  T& value() { return value_; }
  T&& take() { return std::move(value_); }

 private:
  T value_{};
  Status status_;
};

}  // namespace etgpu

#define ETGPU_CONCAT_INNER(a, b) a##b
#define ETGPU_CONCAT(a, b) ETGPU_CONCAT_INNER(a, b)

#define ETGPU_RETURN_IF_ERROR(expr)                 \
  do {                                              \
    ::etgpu::Status etgpu_status_ = (expr);         \
    if (!etgpu_status_.is_ok()) return etgpu_status_; \
  } while (0)

#define ETGPU_CHECK(cond, ...)                                  \
  do {                                                          \
    if (!(cond)) return ::etgpu::err(__VA_ARGS__);              \
  } while (0)
