/* gst-ivshmem: a read-only look at a mapped region
 * SPDX-License-Identifier: MIT
 *
 * What ivshmem-info and the device provider show: the header, the 32
 * reader slots, the sticky records (through ivshmem-sticky.h, the one
 * sticky parser) and whether the producer and the readers are alive.
 *
 * Every shared value is read once, with an atomic load, into a private
 * copy; only the copies are checked and returned. The slots and the sticky
 * area are found at the layout's constant offsets, never at offsets the
 * header claims. Nothing here ever stores into shared memory: the region
 * may be mapped read-only (IvshmRegionOptions.read_only).
 *
 * Protocol versions: version 2 (PROTOCOL.md 2.0: the producer
 * owner token at 0x070, the WAITING slot state, readers_sleeping as a
 * bitmask of slots) is read. Version 1 is read too while this build's
 * layout is still version 1 (IVSHM_VERSION_MAJOR == 1); once the layout is
 * version 2, a version 1 region is IVSHM_ERR_VERSION ("version 1, not
 * supported"), like any other version.
 *
 * No GLib, no GStreamer.
 */
#ifndef IVSHMEM_INSPECT_H
#define IVSHMEM_INSPECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ivshmem-protocol.h"
#include "ivshmem-status.h"
#include "ivshmem-sticky.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Version 2 fields, by offset, so that this file does not depend on the
 * version of ivshmem-layout.h it is built with. */
#define IVSHM_INSPECT_V2                    2u
#define IVSHM_INSPECT_PRODUCER_OWNER_OFFSET 0x070u
#define IVSHM_INSPECT_SLOT_WAITING          4u

/* What ivshm_inspect() reads: the first 64 KiB of a region (the header,
 * the reader slots and the sticky area), and the part of it that changes
 * while a region is watched (the header and the slots). */
#define IVSHM_INSPECT_SIZE (64u * 1024u)
#define IVSHM_INSPECT_LIVE_SIZE (8u * 1024u)

/* The header, each field copied once. */
typedef struct
{
  uint64_t magic;
  uint32_t version_major, version_minor;
  uint64_t region_size, ring_offset, ring_size;
  uint32_t slot_offset;
  uint16_t slot_count, slot_size;
  uint32_t sticky_offset, sticky_size, record_align, header_flags;
  uint64_t session_id, producer_heartbeat;
  uint32_t producer_state, producer_flags;
  uint64_t producer_pid, heartbeat_period_us, producer_kernel_id;
  uint64_t producer_owner;      /* version 2; reserved (0) in version 1 */
  uint64_t write_pos;
  uint32_t data_futex, readers_sleeping;
  uint64_t tail;
  uint32_t space_futex, writer_sleeping;
} IvshmHeaderCopy;

/* One reader slot, each field copied once. */
typedef struct
{
  /* read_pos: in version 2 the position with its claim's tag (the low 6
   * bits, read_pos_tag) masked off */
  uint64_t read_pos, owner, heartbeat, session_id;
  uint32_t state, generation, read_pos_tag;
  uint64_t pid, records_read, kernel_id;
} IvshmSlotCopy;

typedef enum
{
  IVSHM_LIVENESS_UNKNOWN = 0,   /* not watched (a window of 0) */
  IVSHM_LIVENESS_ALIVE,         /* its heartbeat moved while watched */
  IVSHM_LIVENESS_DEAD,          /* it did not move for the whole window:
                                 * dead, or stalled (a paused VM) */
  IVSHM_LIVENESS_NONE,          /* nothing to watch: no active producer, or
                                 * a free slot */
} IvshmLiveness;

#define IVSHM_INSPECT_MAX_PROBLEMS 16
#define IVSHM_INSPECT_PROBLEM_LEN  160

typedef struct
{
  /* IVSHM_OK: a region of a version this build reads, with a valid
   * layout. Otherwise NO_PRODUCER (magic 0), BAD_MAGIC (another magic),
   * VERSION (a version this build does not read), CORRUPT (the header
   * describes an impossible layout), TOO_SMALL (the mapping cannot hold
   * the header, slots and sticky area). Only with OK or CORRUPT are the
   * slots and the sticky area read. */
  IvshmStatus status;
  bool layout_ok;

  IvshmHeaderCopy h;
  IvshmSlotCopy slots[IVSHM_MAX_READERS];
  unsigned n_active, n_claimed, n_waiting, n_evicted;

  /* The sticky records: snapshot (malloc'd, NULL if not read) and its
   * status (OK, AGAIN, CORRUPT; the iterator may still find a bad record:
   * walk it with IvshmStickyIter). */
  IvshmStickySnapshot *sticky;
  IvshmStatus sticky_status;

  /* Filled by ivshm_inspect_watch(). */
  uint64_t watched_ns;          /* 0: not watched */
  IvshmLiveness producer_alive;
  IvshmLiveness slot_alive[IVSHM_MAX_READERS];

  /* What does not follow the protocol, in words (the first few). */
  char problems[IVSHM_INSPECT_MAX_PROBLEMS][IVSHM_INSPECT_PROBLEM_LEN];
  unsigned n_problems;
  unsigned more_problems;       /* not kept: the list was full */
} IvshmInspection;

/* True if this build reads regions of protocol major version `major`. */
bool ivshm_inspect_version_supported (uint32_t major);

/* Reads the region mapped at base into *insp, which it initialises; free
 * it with ivshm_inspection_clear(). mapped_size is the region's size: only
 * its first IVSHM_RING_OFFSET bytes (header, slots, sticky area) are ever
 * read, so a caller may map just those. Never writes shared
 * memory and never blocks (the sticky lock is tried a bounded number of
 * times with short pauses). Returns insp->status. Liveness stays UNKNOWN
 * (NONE where nothing is there to watch) until ivshm_inspect_watch(). */
IvshmStatus ivshm_inspect (const void *base, uint64_t mapped_size,
    IvshmInspection * insp);

void ivshm_inspection_clear (IvshmInspection * insp);

/* How long to watch by default: 2.5 of the producer's advertised heartbeat
 * periods, clamped to [250 ms, 1 s] (readers beat every 100 ms). */
uint64_t ivshm_inspect_default_window (const IvshmInspection * insp);

/* Samples the producer's and the taken slots' heartbeats for up to
 * window_ns (stopping early once all of them moved) and sets the liveness
 * fields. window_ns 0: no waiting, everything that could be alive stays
 * UNKNOWN. Only for an inspection whose status is OK or CORRUPT. */
void ivshm_inspect_watch (const void *base, IvshmInspection * insp,
    uint64_t window_ns);

/* The same in pieces, for a caller that watches several regions at
 * once: each step looks once at the heartbeats that are still UNKNOWN
 * (ALIVE when one moved) and returns true when all of them moved; finish
 * turns what is still UNKNOWN into DEAD after elapsed_ns of watching. */
bool ivshm_inspect_watch_step (const void *base, IvshmInspection * insp);
void ivshm_inspect_watch_finish (IvshmInspection * insp,
    uint64_t elapsed_ns);

/* Liveness from two inspections of the same region taken some time apart
 * (at least one heartbeat lease: the caller's clock), for a monitor that
 * polls: the producer (and each slot) is ALIVE if its heartbeat differs,
 * DEAD if it is the same in the same session. Sets now->watched_ns. */
void ivshm_inspect_compare (IvshmInspection * now,
    const IvshmInspection * before, uint64_t elapsed_ns);

#ifndef _WIN32
/* Copies the first IVSHM_INSPECT_SIZE bytes of a host file into buf, for
 * ivshm_inspect(). read(), not mmap(): another process may truncate a file
 * in /dev/shm at any time, and a mapping past the new end raises SIGBUS in
 * the process that looks. The sticky area's sequence number is read again
 * after the copy: the copy is kept once it did not change and is even
 * (16 tries; the snapshot then finds a busy lock in the copy). False: the
 * file is shorter, or a read failed (errno). */
bool ivshm_inspect_read_file (int fd, void *buf);
/* Reads the header and slots again (the first IVSHM_INSPECT_LIVE_SIZE
 * bytes), for watching a copy made by ivshm_inspect_read_file(). */
bool ivshm_inspect_reread_file (int fd, void *buf);
#endif

/* The bytes where the magic should be (the first 8 of the region), read
 * once: what to show a user when a region is IVSHM_ERR_BAD_MAGIC. Never
 * writes shared memory. */
#define IVSHM_INSPECT_MAGIC_LEN 8
void ivshm_inspect_magic_bytes (const void *base,
    uint8_t bytes[IVSHM_INSPECT_MAGIC_LEN]);

/* Names, for text and JSON output. */
const char *ivshm_inspect_producer_state_name (uint32_t state);
const char *ivshm_inspect_slot_state_name (uint32_t state);
const char *ivshm_inspect_liveness_name (IvshmLiveness liveness);

/* The lag of slot i (write_pos - read_pos), or false if its read_pos makes
 * no sense (not a record boundary, past write_pos, more than a ring
 * behind in this session). */
bool ivshm_inspect_slot_lag (const IvshmInspection * insp, unsigned i,
    uint64_t *lag);

/* The last valid sticky record of this type (and, for an EVENT, subtype)
 * in the snapshot, looking no further than a bad record. False if there
 * is none or the sticky area was not read. rec->payload points into
 * insp->sticky. */
bool ivshm_inspect_sticky_find (const IvshmInspection * insp, uint16_t type,
    uint16_t subtype, IvshmStickyRecord * rec);

/* True if the last valid sticky record is an EOS: the stream ended. */
bool ivshm_inspect_sticky_eos (const IvshmInspection * insp);

/* One line describing why insp->status is not OK, for a user. */
void ivshm_inspect_explain (const IvshmInspection * insp, char *buf,
    size_t size);

#ifdef __cplusplus
}
#endif
#endif /* IVSHMEM_INSPECT_H */
