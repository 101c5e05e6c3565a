// Status and Result: the error currency of dax/, btt/ and fs/.
//
// Contract: functions that can fail return [[nodiscard]] Status or Result<T>.
// A damaged pool is Code::kCorruption with a message naming the structure
// and the offset; a broken in-memory invariant is an abort (UNTORN_ASSERT),
// never a Status. errno is produced in exactly one place, at the FUSE
// boundary (fs/fuse/errno.cc), from Code.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

namespace untorn {

enum class Code : unsigned char {
  kOk = 0,
  kCorruption,       // on-media structure is damaged or foreign
  kIOError,          // media error (E flag) or host I/O failure
  kNoSpace,          // out of blocks, inodes or group slots
  kInvalidArgument,  // caller error: bad value, bad offset, bad name
  kNotFound,         // no such entry
  kExists,           // entry already exists
  kNotEmpty,         // directory not empty
  kNameTooLong,      // name > 255 bytes, path too long
  kNotDir,           // a path component is not a directory
  kIsDir,            // operation not valid on a directory
  kPermission,       // not allowed
  kBusy,             // in use (locked pool, mounted)
  kNotSupported,     // unsupported feature or operation
  kTooLarge,         // file too large (EFBIG)
  kNoData,           // no such attribute (ENODATA)
  kRange,            // buffer too small (ERANGE)
  kTooManyLinks,     // EMLINK
  kValueTooLarge,    // attribute value or list too large (E2BIG)
  kNoMemory,         // an allocation failed (ENOMEM)
  kAccessDenied,     // not permitted for this object (EACCES)
  kStale,            // a file handle names an inode that is gone (ESTALE)
  kReadOnly,         // no more changes (EROFS): mounted or remounted read-only, or the pool failed
};

const char* code_name(Code c);

// "0x1f00": offsets in messages about damaged structures.
std::string hex(unsigned long long v);

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status ok() { return Status(); }
  Status(Code code, std::string msg) : code_(code), msg_(std::move(msg)) {}

  bool is_ok() const { return code_ == Code::kOk; }
  explicit operator bool() const { return is_ok(); }
  Code code() const { return code_; }
  const std::string& message() const { return msg_; }
  std::string to_string() const;

  // Adds context in front of the message ("arena 0: " + msg).
  Status with_context(const std::string& ctx) const {
    return is_ok() ? *this : Status(code_, ctx + ": " + msg_);
  }
  // Explicitly ignore a status (for best-effort cleanup paths).
  void ignore() const {}

 private:
  Code code_ = Code::kOk;
  std::string msg_;
};

// One helper per code: Code::kX is X("message").
inline Status Corruption(std::string m) { return {Code::kCorruption, std::move(m)}; }
inline Status IOError(std::string m) { return {Code::kIOError, std::move(m)}; }
inline Status NoSpace(std::string m) { return {Code::kNoSpace, std::move(m)}; }
inline Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
inline Status Exists(std::string m) { return {Code::kExists, std::move(m)}; }
inline Status NotEmpty(std::string m) { return {Code::kNotEmpty, std::move(m)}; }
inline Status NameTooLong(std::string m) { return {Code::kNameTooLong, std::move(m)}; }
inline Status NotDir(std::string m) { return {Code::kNotDir, std::move(m)}; }
inline Status IsDir(std::string m) { return {Code::kIsDir, std::move(m)}; }
inline Status Permission(std::string m) { return {Code::kPermission, std::move(m)}; }
inline Status Busy(std::string m) { return {Code::kBusy, std::move(m)}; }
inline Status NotSupported(std::string m) { return {Code::kNotSupported, std::move(m)}; }
inline Status TooLarge(std::string m) { return {Code::kTooLarge, std::move(m)}; }
inline Status NoData(std::string m) { return {Code::kNoData, std::move(m)}; }
inline Status Range(std::string m) { return {Code::kRange, std::move(m)}; }
inline Status TooManyLinks(std::string m) { return {Code::kTooManyLinks, std::move(m)}; }
inline Status ValueTooLarge(std::string m) { return {Code::kValueTooLarge, std::move(m)}; }
inline Status NoMemory(std::string m) { return {Code::kNoMemory, std::move(m)}; }
inline Status AccessDenied(std::string m) { return {Code::kAccessDenied, std::move(m)}; }
inline Status Stale(std::string m) { return {Code::kStale, std::move(m)}; }
inline Status ReadOnly(std::string m) { return {Code::kReadOnly, std::move(m)}; }

// Result<T>: a T or a non-ok Status.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status s) : v_(std::move(s)) {      // NOLINT(google-explicit-constructor)
    if (std::get<Status>(v_).is_ok()) {
      std::fprintf(stderr, "untorn: Result constructed from an ok Status\n");
      std::abort();
    }
  }
  bool is_ok() const { return v_.index() == 0; }
  explicit operator bool() const { return is_ok(); }
  T& value() & { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  const T& value() const& { return std::get<T>(v_); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &std::get<T>(v_); }
  const T* operator->() const { return &std::get<T>(v_); }
  Status status() const { return is_ok() ? Status() : std::get<Status>(v_); }
  Code code() const { return is_ok() ? Code::kOk : std::get<Status>(v_).code(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace untorn

// Broken in-memory invariants abort with a message (TigerBeetle style);
// damaged media never reaches an assert, it is a kCorruption Status.
#define UNTORN_ASSERT(cond)                                                  \
  do {                                                                       \
    if (!(cond)) {                                                           \
      std::fprintf(stderr, "untorn: assertion failed: %s at %s:%d\n", #cond, \
                   __FILE__, __LINE__);                                      \
      std::abort();                                                          \
    }                                                                        \
  } while (0)

#define UNTORN_CONCAT_INNER(a, b) a##b
#define UNTORN_CONCAT(a, b) UNTORN_CONCAT_INNER(a, b)

// Propagate a non-ok Status.
#define RETURN_IF_ERROR(expr)              \
  do {                                     \
    ::untorn::Status _st = (expr);         \
    if (!_st.is_ok()) return _st;          \
  } while (0)

// Assign the value of a Result<T> or propagate its Status. One statement
// (`lhs = value`, the value from a GNU statement expression, which gcc and
// clang both have), so it is safe under an unbraced if and twice on a line.
#define ASSIGN_OR_RETURN(lhs, expr)                        \
  lhs = ({                                                 \
    auto _untorn_res = (expr);                             \
    if (!_untorn_res.is_ok()) return _untorn_res.status(); \
    std::move(_untorn_res).value();                        \
  })
