// The one Status -> errno mapping of the FUSE adapter (daemon.h to_errno).
#include <cerrno>

#include "fs/fuse/daemon.h"

namespace untorn::fs::fuse {

int to_errno(const Status& st) {
  switch (st.code()) {
    case Code::kOk: return 0;
    case Code::kCorruption: return EIO;
    case Code::kIOError: return EIO;
    case Code::kNoSpace: return ENOSPC;
    case Code::kInvalidArgument: return EINVAL;
    case Code::kNotFound: return ENOENT;
    case Code::kExists: return EEXIST;
    case Code::kNotEmpty: return ENOTEMPTY;
    case Code::kNameTooLong: return ENAMETOOLONG;
    case Code::kNotDir: return ENOTDIR;
    case Code::kIsDir: return EISDIR;
    case Code::kPermission: return EPERM;
    case Code::kBusy: return EBUSY;
    case Code::kNotSupported: return EOPNOTSUPP;
    case Code::kTooLarge: return EFBIG;
    case Code::kNoData: return ENODATA;
    case Code::kRange: return ERANGE;
    case Code::kTooManyLinks: return EMLINK;
    case Code::kValueTooLarge: return E2BIG;
    case Code::kNoMemory: return ENOMEM;
    case Code::kAccessDenied: return EACCES;
    case Code::kStale: return ESTALE;
    case Code::kReadOnly: return EROFS;
  }
  return EIO;
}

}  // namespace untorn::fs::fuse
