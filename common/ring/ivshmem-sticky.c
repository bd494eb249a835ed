/* gst-ivshmem: the read side of the sticky area
 * SPDX-License-Identifier: MIT
 *
 * See ivshmem-sticky.h. Memory ordering (PROTOCOL.md section 9, "Sticky
 * area"): the producer stores seq + 1 (odd), a release fence, the records
 * and lengths, then seq + 2 with release. We load seq with acquire, retry
 * while it is odd, copy, issue an acquire fence and reload seq: the copy
 * is kept only if seq did not change. Every value used afterwards comes
 * from the private copy.
 */
#include "ivshmem-sticky.h"
#include "ivshmem-layout.h"
#include "ivshmem-os.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

_Static_assert (IVSHM_STICKY_DATA_MAX ==
    IVSHM_STICKY_SIZE - sizeof (IvshmStickyHeader),
    "ivshmem-sticky.h's IVSHM_STICKY_DATA_MAX disagrees with the layout");

#define RLX memory_order_relaxed
#define ACQ memory_order_acquire

/* *INDENT-OFF* */
static void
set_reason (char *buf, size_t size, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format (printf, 3, 4)))
#endif
    ;
/* *INDENT-ON* */

static void
set_reason (char *buf, size_t size, const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (buf, size, fmt, ap);
  va_end (ap);
}

IvshmStatus
ivshm_sticky_snapshot (const void *region, unsigned max_tries,
    uint64_t pause_ns, IvshmStickySnapshot * snap)
{
  /* C11 atomic loads take a non-const pointer; nothing here stores */
  IvshmStickyHeader *sh = (IvshmStickyHeader *) ((uint8_t *) region +
      IVSHM_STICKY_OFFSET);
  const uint8_t *src = (const uint8_t *) sh + sizeof (IvshmStickyHeader);
  unsigned tries;

  if (max_tries == 0)
    max_tries = IVSHM_STICKY_DEFAULT_TRIES;
  snap->seq = 0;
  snap->applies_from = 0;
  snap->len = 0;
  snap->count = 0;
  snap->reason[0] = '\0';

  for (tries = 0; tries < max_tries; tries++) {
    uint64_t s1 = atomic_load_explicit (&sh->seq, ACQ), s2, from;
    uint32_t len, count;

    if (s1 & 1) {
      if (pause_ns)
        ivshm_sleep_ns (pause_ns);
      continue;
    }
    from = atomic_load_explicit (&sh->applies_from, RLX);
    len = atomic_load_explicit (&sh->len, RLX);
    count = atomic_load_explicit (&sh->count, RLX);
    if (len > IVSHM_STICKY_DATA_MAX || len % IVSHM_RECORD_ALIGN != 0) {
      /* only a consistent read of an impossible length is corruption; a
       * torn one is the producer at work */
      atomic_thread_fence (ACQ);
      if (atomic_load_explicit (&sh->seq, RLX) != s1)
        continue;
      set_reason (snap->reason, sizeof snap->reason, "the sticky area "
          "claims an impossible length: %" PRIu32 " bytes of records (it "
          "holds at most %u, in multiples of 64)", len,
          (unsigned) IVSHM_STICKY_DATA_MAX);
      return IVSHM_ERR_CORRUPT;
    }
    memcpy (snap->data, src, len);
    atomic_thread_fence (ACQ);
    s2 = atomic_load_explicit (&sh->seq, RLX);
    if (s1 != s2)
      continue;
    snap->seq = s1;
    snap->applies_from = from;
    snap->len = len;
    snap->count = count;
    return IVSHM_OK;
  }
  set_reason (snap->reason, sizeof snap->reason, "the producer kept "
      "rewriting the sticky area (%u tries)", max_tries);
  return IVSHM_AGAIN;
}

bool
ivshm_sticky_event_subtype_known (uint16_t subtype)
{
  switch (subtype) {
    case IVSHM_EVENT_STREAM_START:
    case IVSHM_EVENT_SEGMENT:
    case IVSHM_EVENT_TIME:
    case IVSHM_EVENT_TAG:
    case IVSHM_EVENT_EOS:
    case IVSHM_EVENT_CUSTOM_STICKY:
      return true;
    default:
      return false;
  }
}

/* May a record of this type and subtype stand in the sticky area? */
static bool
belongs_in_sticky (const IvshmRecordHeader * h)
{
  if (h->type == IVSHM_RECORD_CAPS)
    return true;
  if (h->type != IVSHM_RECORD_EVENT)
    return false;
  /* a later minor version may add sticky event subtypes */
  return ivshm_sticky_event_subtype_known (h->subtype)
      || h->subtype > IVSHM_EVENT_MAX;
}

void
ivshm_sticky_iter_init (IvshmStickyIter * it, const IvshmStickySnapshot * snap)
{
  it->snap = snap;
  it->off = 0;
  it->index = 0;
  it->seen_eos = false;
  it->status = IVSHM_OK;
  it->reason[0] = '\0';
}

/* *INDENT-OFF* */
static bool
iter_fail (IvshmStickyIter * it, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format (printf, 2, 3)))
#endif
    ;
/* *INDENT-ON* */

static bool
iter_fail (IvshmStickyIter * it, const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (it->reason, sizeof it->reason, fmt, ap);
  va_end (ap);
  it->status = IVSHM_ERR_CORRUPT;
  return false;
}

/* The end of the records: the count in the header must match. */
static bool
iter_end (IvshmStickyIter * it)
{
  const IvshmStickySnapshot *snap = it->snap;

  if (it->index != snap->count)
    return iter_fail (it, "the sticky area says %" PRIu32 " records, %"
        PRIu32 " were found", snap->count, it->index);
  return false;
}

bool
ivshm_sticky_iter_next (IvshmStickyIter * it, IvshmStickyRecord * rec)
{
  const IvshmStickySnapshot *snap = it->snap;
  IvshmRecordHeader h;
  uint32_t left;

  if (it->status != IVSHM_OK || it->off == UINT32_MAX)
    return false;
  /* snap->len is <= IVSHM_STICKY_DATA_MAX (checked by the snapshot); a
   * caller-built snapshot is checked here too */
  if (snap->len > IVSHM_STICKY_DATA_MAX || snap->len % IVSHM_RECORD_ALIGN)
    return iter_fail (it, "the sticky area claims %" PRIu32 " bytes of "
        "records", snap->len);
  if (it->off >= snap->len) {
    it->off = UINT32_MAX;       /* ended: stay ended */
    return iter_end (it);
  }
  left = snap->len - it->off;   /* a multiple of 64, at least 64 */
  memcpy (&h, snap->data + it->off, sizeof h);
  if (h.payload_len > left - sizeof h)
    return iter_fail (it, "sticky record %" PRIu32 " at +%" PRIu32
        " claims %" PRIu64 " bytes of payload, only %" PRIu32 " are there",
        it->index, it->off, h.payload_len, left - (uint32_t) sizeof h);
  if (!belongs_in_sticky (&h))
    return iter_fail (it, "sticky record %" PRIu32 " at +%" PRIu32
        " has type %u subtype %u, which does not belong there",
        it->index, it->off, (unsigned) h.type, (unsigned) h.subtype);
  if (it->seen_eos)
    return iter_fail (it, "sticky record %" PRIu32 " at +%" PRIu32
        " follows EOS, which must be the last", it->index, it->off);

  rec->h = h;
  rec->payload = snap->data + it->off + sizeof h;
  rec->offset = it->off;
  /* payload_len <= left - 64 < 56 KiB: no overflow */
  rec->len = (uint32_t) ivshm_record_len (h.payload_len);
  rec->index = it->index;
  if (h.type == IVSHM_RECORD_EVENT && h.subtype == IVSHM_EVENT_EOS)
    it->seen_eos = true;
  it->off += rec->len;
  it->index++;
  return true;
}

IvshmStatus
ivshm_sticky_iter_status (const IvshmStickyIter * it)
{
  return it->status;
}

const char *
ivshm_sticky_iter_reason (const IvshmStickyIter * it)
{
  return it->reason;
}

IvshmStatus
ivshm_sticky_validate (const IvshmStickySnapshot * snap, char *reason,
    size_t reason_size)
{
  IvshmStickyIter it;
  IvshmStickyRecord rec;

  ivshm_sticky_iter_init (&it, snap);
  while (ivshm_sticky_iter_next (&it, &rec));
  if (it.status != IVSHM_OK && reason != NULL && reason_size > 0)
    snprintf (reason, reason_size, "%s", it.reason);
  return it.status;
}

const char *
ivshm_sticky_record_text (const IvshmStickyRecord * rec, size_t *len,
    bool *has_nul)
{
  const char *p = (const char *) rec->payload;
  const char *nul = memchr (p, '\0', (size_t) rec->h.payload_len);

  if (has_nul)
    *has_nul = nul != NULL;
  if (len)
    *len = nul ? (size_t) (nul - p) : (size_t) rec->h.payload_len;
  return p;
}
