// What a consistency check found: btt::Btt::check (btt::CheckReport) and
// fs::FileSystem::fsck (fs::FsckReport), which includes the former's.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace untorn::util {

struct CheckReport {
  std::vector<std::string> errors;    // inconsistencies left
  std::vector<std::string> repaired;  // inconsistencies fixed
  // Not errors, but what the user should know (fsck: file data lost to
  // bad blocks, whose reads fail with EIO, and what to do).
  std::vector<std::string> warnings;
  uint64_t inodes_checked = 0;  // fsck only
  uint64_t blocks_checked = 0;
  bool clean() const { return errors.empty(); }
  // The findings of a check of a part (its counts are its own), each
  // prefixed with `prefix` (e.g. "BTT: ").
  void add_findings(const CheckReport& part, std::string_view prefix) {
    for (const auto& e : part.errors) errors.push_back(std::string(prefix) + e);
    for (const auto& e : part.repaired) repaired.push_back(std::string(prefix) + e);
    for (const auto& e : part.warnings) warnings.push_back(std::string(prefix) + e);
  }
};

}  // namespace untorn::util
