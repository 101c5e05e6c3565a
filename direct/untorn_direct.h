/* libuntorn-direct: direct access to dax files of an untorn mount.
 *
 * Under LD_PRELOAD=libuntorn-direct.so (or linked into a program) the
 * library serves, for dax files on untorn mounts, read/pread/readv,
 * overwrites with write/pwrite inside blocks the file already owns and
 * below its size, and shared mmap of such ranges straight from the mapped
 * pool (non-temporal stores, one fence per write call). Everything else goes
 * through the mount unchanged. See README ("Direct access") and
 * direct/protocol.h for the leases and the trust model (a process must be
 * able to open the pool file read-write).
 *
 * The C API below is optional: programs that link the library get the same
 * interposition and may query or steer it per file descriptor.
 * Environment: UNTORN_DIRECT=0 turns the library off (everything goes
 * through the mount); UNTORN_DIRECT_DEBUG=1 prints why a file is not
 * served directly to stderr.
 */
#ifndef UNTORN_DIRECT_H
#define UNTORN_DIRECT_H

#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when fd is served from the pool now (it holds a live lease), else 0. */
int untorn_direct_active(int fd);

/* Returns fd's lease (later I/O goes through the mount; the next I/O that
 * finds no lease does not ask for a new one). 0, or -1 with errno EBADF. */
int untorn_direct_release(int fd);

/* Reports the time of the last direct write to the daemon (mtime, ctime)
 * and drops the mount's page cache of the file; fsync/fdatasync do this. */
int untorn_direct_sync(int fd);

struct untorn_direct_stats {
  uint64_t files;          /* opens served directly */
  uint64_t reads;          /* read calls served from the pool */
  uint64_t writes;         /* write calls served in place */
  uint64_t fallbacks;      /* calls on direct files that went through the mount */
  uint64_t recalls;        /* leases recalled by the daemon */
  uint64_t maps;           /* mmaps served from the pool */
};
void untorn_direct_get_stats(struct untorn_direct_stats* out);

#ifdef __cplusplus
}
#endif

#endif /* UNTORN_DIRECT_H */
