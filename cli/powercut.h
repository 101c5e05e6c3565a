// The control channel of the power-cut simulation (mount -o powercut_sim,
// `untorn powercut MOUNTPOINT`).
//
// Protocol: the daemon listens on an abstract Unix stream socket named
// "untorn-powercut:<16 hex digits>", the FNV-1a hash of the canonical
// mount point (abstract: no file to clean up; it vanishes with the
// process). A client sends one line "cut SEED AT_STAKE\n": cut the instant
// before one of the next 8 fences while at least AT_STAKE bytes are in
// flight (which one: by the seed), or at once for AT_STAKE 0; only a peer with the
// daemon's uid or root (SO_PEERCRED) is served, others get "error ...".
// The daemon cuts (dax::PowerCutSim::cut), answers one line
// "in_flight N kept K dropped D\n" and ends the process at once (_exit,
// no unmount, no flush): the kernel aborts the FUSE connection as when a
// daemon dies.
#pragma once

#include <string>

#include "dax/powercut.h"
#include "dax/status.h"

namespace untorn::cli {

// The socket name (without the leading NUL) for a canonical mount point.
std::string powercut_socket_name(const std::string& canonical_mountpoint);
// Starts the listener thread (detached; lives as long as the process).
Status start_powercut_listener(dax::PowerCutSim& sim, const std::string& canonical_mountpoint);

}  // namespace untorn::cli
