/* gst-ivshmem: the read side of the sticky area
 * SPDX-License-Identifier: MIT
 *
 * The ONE parser of the sticky area (PROTOCOL.md section 6). The reader
 * (replay after a mid-stream attach), ivshmem-info and the device provider
 * all use it; nothing else reads the sticky records.
 *
 * Two steps, both on memory a peer may have filled with anything:
 *
 *  1. ivshm_sticky_snapshot() copies the area under its sequence lock into
 *     a private IvshmStickySnapshot. It never writes shared memory, tries a
 *     bounded number of times, and checks the lengths it copies.
 *  2. An IvshmStickyIter walks the PRIVATE copy and yields one record at a
 *     time: a copy of its header and a pointer to its payload inside the
 *     snapshot. Each record is checked before it is yielded; the first bad
 *     one ends the walk with IVSHM_ERR_CORRUPT and a reason.
 *
 * Accepted records: what the producer stores there (CAPS, and EVENTs with
 * the subtypes stream-start, segment, tag, custom sticky and EOS) and,
 * for forward compatibility, EVENTs with a subtype above IVSHM_EVENT_MAX
 * (a later minor version; callers skip what they do not know). EOS is
 * stored by design at the end of a stream: it may only be the last
 * record. Anything else (BUFFER, PAD, SKIP, an unknown type, a gap or
 * another non-sticky event) is corruption.
 *
 * No GLib, no GStreamer: this is part of the core.
 */
#ifndef IVSHMEM_STICKY_H
#define IVSHMEM_STICKY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ivshmem-protocol.h"
#include "ivshmem-status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of records the sticky area can hold after its 64-byte header. */
#define IVSHM_STICKY_DATA_MAX (56u * 1024u - 64u)

/* How many times ivshm_sticky_snapshot() tries by default (the reader's
 * bound, PROTOCOL.md section 8 rule 6). */
#define IVSHM_STICKY_DEFAULT_TRIES 64u

#define IVSHM_STICKY_REASON_LEN 160

/* A private, consistent copy of the sticky area. About 56 KiB: allocate it
 * (malloc) or embed it in a heap object, do not put it on a small stack. */
typedef struct
{
  uint64_t seq;               /* the (even) sequence number copied */
  uint64_t applies_from;      /* ring position the records apply from */
  uint32_t len;               /* bytes of records in data; a multiple of 64 */
  uint32_t count;             /* records the producer says it stored */
  /* why the snapshot failed (empty on success) */
  char reason[IVSHM_STICKY_REASON_LEN];
  _Alignas (64) uint8_t data[IVSHM_STICKY_DATA_MAX];
} IvshmStickySnapshot;

/* Copies the sticky area of the region mapped at `region` (its start: the
 * area is at the constant IVSHM_STICKY_OFFSET; the mapping must be at least
 * IVSHM_RING_OFFSET bytes) into *snap.
 *
 * max_tries: how often to read the sequence lock (0: the default, 64).
 * pause_ns: how long to sleep after a try that found the producer writing
 *   (0: retry at once; the reader spins, tools can afford to sleep).
 *
 * Returns
 *  - IVSHM_OK: *snap is a consistent copy; iterate it.
 *  - IVSHM_AGAIN: the producer was writing during every try; snap->len is
 *    0. Try again later.
 *  - IVSHM_ERR_CORRUPT: the area claims an impossible length (more than it
 *    holds, or not a multiple of 64) in a consistent read; snap->len is 0
 *    and snap->reason says what was found.
 * Never writes shared memory. */
IvshmStatus ivshm_sticky_snapshot (const void *region, unsigned max_tries,
    uint64_t pause_ns, IvshmStickySnapshot * snap);

/* One record of a snapshot. */
typedef struct
{
  IvshmRecordHeader h;        /* a copy of the record's header */
  const uint8_t *payload;     /* h.payload_len bytes inside the snapshot */
  uint32_t offset;            /* where the record starts in the records */
  uint32_t len;               /* its length: ivshm_record_len (payload_len) */
  uint32_t index;             /* 0 for the first record */
} IvshmStickyRecord;

typedef struct
{
  /* private */
  const IvshmStickySnapshot *snap;
  uint32_t off;
  uint32_t index;
  bool seen_eos;
  IvshmStatus status;
  char reason[IVSHM_STICKY_REASON_LEN];
} IvshmStickyIter;

void ivshm_sticky_iter_init (IvshmStickyIter * it,
    const IvshmStickySnapshot * snap);

/* Yields the next record into *rec and returns true; returns false at the
 * end of the records or at the first bad one (see
 * ivshm_sticky_iter_status()). Once it returned false it keeps doing so. */
bool ivshm_sticky_iter_next (IvshmStickyIter * it, IvshmStickyRecord * rec);

/* IVSHM_OK while walking and after a clean end, IVSHM_ERR_CORRUPT after a
 * bad record (or a record count that does not match the header's). */
IvshmStatus ivshm_sticky_iter_status (const IvshmStickyIter * it);

/* Why the walk stopped early ("" when it did not). */
const char *ivshm_sticky_iter_reason (const IvshmStickyIter * it);

/* Walks the whole snapshot. IVSHM_OK if every record is valid, otherwise
 * IVSHM_ERR_CORRUPT with the reason copied into reason (may be NULL).
 * The reader calls it before it replays anything, so that a bad area is
 * refused whole rather than half replayed. */
IvshmStatus ivshm_sticky_validate (const IvshmStickySnapshot * snap,
    char *reason, size_t reason_size);

/* The payload as text: its bytes up to the first NUL, or all of them when
 * there is none (a hostile peer may leave it out). *len receives the
 * length. The bytes are NOT NUL-terminated when has_nul is false: copy
 * them before treating them as a C string. Returns the payload pointer. */
const char *ivshm_sticky_record_text (const IvshmStickyRecord * rec,
    size_t *len, bool *has_nul);

/* True for an EVENT subtype that belongs in the sticky area (stream-start,
 * segment, tag, custom sticky, EOS). */
bool ivshm_sticky_event_subtype_known (uint16_t subtype);

#ifdef __cplusplus
}
#endif
#endif /* IVSHMEM_STICKY_H */
