// BttMetaStore: metadata blocks through the BTT. One commit = one
// write_group: every block of the operation (and the data blocks of an
// atomic-file write) out of place, one commit record, one remap.
#include <vector>

#include "fs/meta_store.h"

namespace untorn::fs {

Status BttMetaStore::read(uint64_t lba, std::byte* out) { return btt_.read(lba, out); }

Status BttMetaStore::commit(std::span<const btt::BlockWrite> meta,
                            std::span<const btt::BlockWrite> data) {
  if (data.empty()) return btt_.write_group(meta);
  std::vector<btt::BlockWrite> all;
  all.reserve(meta.size() + data.size());
  all.insert(all.end(), data.begin(), data.end());
  all.insert(all.end(), meta.begin(), meta.end());
  return btt_.write_group(all);
}

}  // namespace untorn::fs
