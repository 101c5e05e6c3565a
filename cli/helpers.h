// The helpers that mkfs(8), fsck(8) and mount(8) run: mkfs.untorn,
// fsck.untorn (also fsck.fuse.untorn, the name fsck -A derives from an fstab
// type of fuse.untorn) and mount.fuse.untorn. Each is the untorn binary
// under another name (installed as a link to it).
#pragma once

#include <string>
#include <vector>

namespace untorn::cli {

using HelperFn = int (*)(const std::vector<std::string>& args);
// The helper called `name` (argv[0]'s base name), or nullptr.
HelperFn helper_for(const std::string& name);

// The untorn command line (args without argv[0]).
int run_cli(std::vector<std::string> args);

}  // namespace untorn::cli
