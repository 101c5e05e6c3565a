// The direct-access lease protocol between libuntorn-direct and the daemon.
//
// Header only, no dependencies beyond Linux headers: both fs/fuse (the
// daemon side) and direct/ (the library) include it; it includes neither.
//
// Trust model: a process that may open the pool file read-write could write
// any byte of the pool anyway, so direct access is offered only to such
// processes (root, or whoever the pool file's permission bits let write it;
// the library must map the pool itself). Leases protect cooperating clients
// from using blocks that changed owner, not the pool from a hostile one.
//
// Channel (all on the untorn mount, no extra files):
//   1. kDirectInfoIoctl on an open regular file: the daemon answers with the
//      pool's uuid and size and the name of its recall socket (an abstract
//      unix SOCK_SEQPACKET socket, so it vanishes with the daemon).
//   2. The client connects to the socket and sends Msg{kHello}; the daemon
//      learns its pid and uid (SO_PEERCRED), opens a pidfd, and answers
//      Msg{kWelcome, client = id}. One connection per process.
//   3. kDirectLeaseIoctl on the file (with client id): the daemon grants a
//      lease on the file's extent map as it is now: runs of file blocks and
//      their pool offsets, the file size, and a lease id and generation.
//      Write leases need a file descriptor open for writing. Atomic files,
//      set-id files, other users and simulated power-cut mounts are refused
//      (EOPNOTSUPP/EPERM/EACCES): the client then uses the mount as usual.
//      Asking again on the same fd replaces the lease (a refresh).
//   4. Before anything changes the file's map or mode (truncate, punch hole,
//      fallocate, collapse/insert range, mode switch to atomic, unlink of the
//      last link, rename over the file, freeing of the inode) the daemon sends
//      Msg{kRecall, lease, generation} and waits up to its recall timeout for
//      Msg{kAck, lease, generation}. A client acks only once no thread of it
//      accesses the lease's blocks any more (stores finished, mappings of
//      them replaced). Unanswered: the lease is fenced (its generation
//      revoked: syncs of it are ESTALE) and its blocks stay quarantined (not
//      reused for anything) until the holder acks or its process ends
//      (pidfd); a mode switch is refused (EBUSY) while a fenced lease remains.
//   5. kDirectSyncIoctl (fsync/fdatasync through the library) and
//      kDirectReleaseIoctl (close) report the time of the client's last
//      direct write: the daemon sets mtime and ctime, and drops the kernel's
//      page cache of the file so that readers through the mount see the
//      bytes written directly. Release ends the lease.
//   6. Msg{kBye} before the client closes its connection: all its leases are
//      released. A connection that ends without kBye leaves its leases
//      fenced until the process ends.
//   7. While it holds leases, a client holds an OFD read lock on byte 0 of
//      the pool file (kPoolLockOffset). `untorn mount` refuses a pool that a
//      client of a dead daemon still holds (no stale writes after remount).
#pragma once

#include <sys/ioctl.h>

#include <cstdint>

namespace untorn::direct {

inline constexpr uint32_t kProtocolVersion = 1;
inline constexpr uint64_t kPoolLockOffset = 0;  // OFD read lock held by clients with leases

struct InfoIoctl {
  uint32_t version = 0;       // in: kProtocolVersion; out: the daemon's
  uint32_t reserved = 0;
  uint8_t uuid[16] = {};      // out: file-system uuid (superblock), to match the client's mapping
  uint64_t pool_size = 0;     // out: bytes
  char socket_name[108] = {}; // out: abstract socket name (without the leading NUL)
};

struct Run {
  uint64_t file_block = 0;  // first 4 KiB block of the file
  uint64_t pool_off = 0;    // byte offset of that block in the pool file
  uint64_t blocks = 0;      // physically contiguous blocks
};

inline constexpr uint32_t kLeaseWrite = 1u << 0;  // in: the client wants to store

struct LeaseRequest {
  uint32_t version = kProtocolVersion;
  uint32_t flags = 0;   // kLeaseWrite
  uint64_t client = 0;  // id from kWelcome
  char path[256] = {};  // informational (shown by `untorn stats`)
};
struct LeaseReply {
  uint64_t lease = 0;       // lease id
  uint64_t generation = 0;  // revoked by a fence
  uint64_t ino = 0;
  uint64_t size = 0;        // file size at grant
  uint32_t flags = 0;       // granted kLeaseWrite (or not)
  uint32_t runs = 0;        // entries of run[] used; blocks not listed are not leased
  uint64_t complete = 0;    // 1: every mapped block below size is in run[]
};
// One buffer both ways: the request in, the reply and runs out. The FUSE
// restricted-ioctl limit is 16383 bytes each way.
struct LeaseIoctlBuf {
  LeaseRequest req;
  LeaseReply rep;
  Run run[(16000 - sizeof(LeaseRequest) - sizeof(LeaseReply)) / sizeof(Run)];
};
inline constexpr size_t kMaxRuns = sizeof(LeaseIoctlBuf::run) / sizeof(Run);
static_assert(sizeof(LeaseIoctlBuf) <= 16000);

struct SyncIoctl {
  uint64_t client = 0;
  uint64_t lease = 0;
  uint64_t generation = 0;
  int64_t mtime_sec = -1;  // time of the last direct write, -1: none since the last sync
  int64_t mtime_nsec = 0;
};

inline constexpr unsigned long kDirectInfoIoctl = _IOWR('U', 0x60, InfoIoctl);
inline constexpr unsigned long kDirectLeaseIoctl = _IOWR('U', 0x61, LeaseIoctlBuf);
inline constexpr unsigned long kDirectSyncIoctl = _IOW('U', 0x62, SyncIoctl);
inline constexpr unsigned long kDirectReleaseIoctl = _IOW('U', 0x63, SyncIoctl);

// Messages on the recall socket (one per SOCK_SEQPACKET datagram).
enum MsgType : uint32_t {
  kHello = 1,    // client -> daemon: version
  kWelcome = 2,  // daemon -> client: client id
  kRecall = 3,   // daemon -> client: stop using lease (id, generation)
  kAck = 4,      // client -> daemon: lease no longer used
  kBye = 5,      // client -> daemon: every lease released, closing
};
struct Msg {
  uint32_t type = 0;
  uint32_t version = kProtocolVersion;
  uint64_t client = 0;
  uint64_t lease = 0;
  uint64_t generation = 0;
};

}  // namespace untorn::direct
