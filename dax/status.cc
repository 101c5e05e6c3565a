#include "dax/status.h"

namespace untorn {

const char* code_name(Code c) {
  switch (c) {
    case Code::kOk: return "OK";
    case Code::kCorruption: return "Corruption";
    case Code::kIOError: return "I/O error";
    case Code::kNoSpace: return "No space";
    case Code::kInvalidArgument: return "Invalid argument";
    case Code::kNotFound: return "Not found";
    case Code::kExists: return "Already exists";
    case Code::kNotEmpty: return "Not empty";
    case Code::kNameTooLong: return "Name too long";
    case Code::kNotDir: return "Not a directory";
    case Code::kIsDir: return "Is a directory";
    case Code::kPermission: return "Permission denied";
    case Code::kBusy: return "Busy";
    case Code::kNotSupported: return "Not supported";
    case Code::kTooLarge: return "File too large";
    case Code::kNoData: return "No data";
    case Code::kRange: return "Out of range";
    case Code::kTooManyLinks: return "Too many links";
    case Code::kValueTooLarge: return "Value too large";
    case Code::kNoMemory: return "Out of memory";
    case Code::kAccessDenied: return "Access denied";
    case Code::kStale: return "Stale file handle";
    case Code::kReadOnly: return "Read-only file system";
  }
  return "Unknown";
}

std::string hex(unsigned long long v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", v);
  return buf;
}

std::string Status::to_string() const {
  if (is_ok()) return "OK";
  return std::string(code_name(code_)) + ": " + msg_;
}

}  // namespace untorn
