/* gst-ivshmem: status codes of the core
 * SPDX-License-Identifier: MIT
 *
 * The core never includes a GStreamer header. Every function that can fail
 * returns an IvshmStatus, and those that can say more fill an IvshmError
 * (the status, the errno and a sentence for a user); the GStreamer layer
 * turns them into an element error.
 */
#ifndef IVSHMEM_STATUS_H
#define IVSHMEM_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum
{
  IVSHM_OK = 0,
  /* Not an error: the operation would block (ring full for a writer, empty
   * for a reader). Wait and try again. */
  IVSHM_AGAIN,
  /* The region (file or PCI device) does not exist. */
  IVSHM_ERR_NOT_FOUND,
  /* open() or mmap() refused with EACCES/EPERM. For a host file: its
   * owner, group or mode; in a guest, BAR access needs root or the udev
   * rule that grants a group access to resource2 and resource2_wc. The
   * error's detail says which. */
  IVSHM_ERR_PERMISSION,
  /* The kernel is in lockdown mode, which forbids mapping PCI BARs from
   * user space whatever the permissions. */
  IVSHM_ERR_LOCKDOWN,
  /* The region is smaller than the protocol needs. */
  IVSHM_ERR_TOO_SMALL,
  /* A size asked for is not a power of two (QEMU refuses such an ivshmem
   * region). */
  IVSHM_ERR_NOT_POW2,
  /* The region does not start with this protocol's magic. */
  IVSHM_ERR_BAD_MAGIC,
  /* The region carries this protocol, but an ABI version we cannot read. */
  IVSHM_ERR_VERSION,
  /* The handle is already mapped (or, on Windows, another element holds
   * the device's guest-wide lock, or the driver has another program's
   * mapping of it). */
  IVSHM_ERR_ALREADY_MAPPED,
  /* The handle is not mapped. */
  IVSHM_ERR_NOT_MAPPED,
  /* An operating system call failed; the errno is kept beside the status. */
  IVSHM_ERR_IO,
  /* A caller passed an argument that can never work. */
  IVSHM_ERR_INVALID_ARG,
  /* Shared memory holds values that break the protocol (a peer is buggy or
   * hostile, or the region was overwritten). */
  IVSHM_ERR_CORRUPT,
  /* A record can never fit in this ring, whatever the readers do. */
  IVSHM_ERR_TOO_BIG,
  /* No producer has initialised the region yet. */
  IVSHM_ERR_NO_PRODUCER,
  /* The producer restarted: the session id changed under a reader. */
  IVSHM_ERR_SESSION_CHANGED,
  /* The producer stopped (closed the session) or its heartbeat stopped. */
  IVSHM_ERR_PRODUCER_GONE,
  /* Every reader slot of the region is taken. */
  IVSHM_ERR_NO_SLOT,
  /* The producer dropped this reader (its lease expired or its slot held
   * invalid values). */
  IVSHM_ERR_EVICTED,
  /* Another producer is alive on this region. */
  IVSHM_ERR_PRODUCER_BUSY,
  /* Not supported on this platform or in this build. */
  IVSHM_ERR_UNSUPPORTED,
  /* Out of memory in the local process. */
  IVSHM_ERR_NO_MEMORY,
  /* A reservation is no longer pending (committed, or cancelled because a
   * later record was committed first): write the record anew. */
  IVSHM_ERR_STALE,
  /* Another producer took this region over while this one was stalled
   * (its heartbeat stopped for longer than the takeover wait). This
   * producer stopped before its next write to shared memory. */
  IVSHM_ERR_TAKEN_OVER,
  /* Informative, not an error: the producer's heartbeat has not moved for
   * the producer timeout (a paused or migrating VM, a stopped process).
   * The reader keeps its slot and goes on waiting; ivshm_reader_next()
   * returns this at most once per stall, then IVSHM_AGAIN until the
   * heartbeat moves again (IvshmReaderConfig.follow_stall). */
  IVSHM_PRODUCER_STALLED,
  IVSHM_STATUS_COUNT
} IvshmStatus;

/* A short, stable, human-readable description ("region not found"). Never
 * returns NULL, also for values outside the enum. */
const char *ivshm_status_string (IvshmStatus status);

/* A short machine name ("not-found"), for logs and JSON. */
const char *ivshm_status_name (IvshmStatus status);

/* Details of a failure, filled by the functions below that take one.
 * `detail` is a complete sentence fragment for a user: what failed, on
 * which path, and (where one exists) what to do about it. */
typedef struct
{
  IvshmStatus status;
  int sys_errno;                /* errno of the failing call, or 0 */
  char detail[1024];
} IvshmError;

/* Sets err (may be NULL) and returns status. printf-style detail. */
IvshmStatus ivshm_error_set (IvshmError * err, IvshmStatus status,
    int sys_errno, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format (printf, 4, 5)))
#endif
    ;

#ifdef __cplusplus
}
#endif
#endif /* IVSHMEM_STATUS_H */
