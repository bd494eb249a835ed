/* gst-ivshmem: the producer's records: reserve, commit, cancel
 * SPDX-License-Identifier: MIT
 *
 * Reservations (spans) are kept in ring order and published in that
 * order (PROTOCOL.md, "Zero-copy writes"); write_pos is published with a
 * compare-and-swap from the value this producer last published, which
 * fails once another producer took the region over (ivshmem-publish.c,
 * the layer below; room comes from ivshmem-reclaim.c). The write side of
 * the sticky area lives here too: it is updated before the write_pos that
 * covers it is published.
 */
#include "ivshmem-ring-private.h"

#include "ivshmem-os.h"
#include "ivshmem-copy.h"

#include <stdlib.h>
#include <string.h>

/* Before it writes into ring space it has not published, the producer
 * announces how far it may write: CAS(reserve_end, its last value, end),
 * then a check that it still owns the region. With the format's
 * compare-and-swap of reserve_end (writer_format) this is a Dekker pair:
 * either the producer that takes the region over sees our reservation
 * and starts its session behind it, or our compare-and-swap fails, or
 * our check sees the new owner; a stale producer then writes nothing
 * (PROTOCOL.md, "Session format"). */
static bool
writer_announce (IvshmWriter * w, uint64_t end)
{
  uint64_t seen = w->announced;

  if (end > seen) {
    IVSHM_TEST_POINT ("producer-announce", w);
    if (!atomic_compare_exchange_strong_explicit (&w->hdr->reserve_end,
            &seen, end, SEQ, SEQ)) {
      /* another producer's format, or a scribbling peer while we still
       * own the region (then ours again) */
      if (!ivshm_writer_owns (w))
        return false;
      atomic_store_explicit (&w->hdr->reserve_end, end, SEQ);
    }
    w->announced = end;
  }
  return ivshm_writer_owns (w);
}

static Span *
writer_push_span (IvshmWriter * w, uint64_t len, uint8_t state, bool freed)
{
  Span *s = ivshm_span_at (w, w->span_end++);

  s->pos = w->reserve_pos;
  s->off = w->reserve_off;
  s->len = len;
  s->state = state;
  s->pad = freed && state == SPAN_COMMITTED;
  atomic_store_explicit (&s->freed, freed, RLX);
  w->reserve_pos += len;
  w->reserve_off += len;
  if (w->reserve_off == w->ring_size)
    w->reserve_off = 0;
  return s;
}

/* What an early wrap must leave free after the record it places at the
 * ring's start (PROTOCOL.md, "Early wrap"): room to copy each reservation
 * of ours that may still be copied, pending or cancelled but still
 * referenced (a pool buffer that was not published in place is copied
 * when it is rendered, and that copy must not wait for the space the
 * buffer itself holds), plus the configured margin: the slack left to a
 * reader that stalls right after the wrap. */
static uint64_t
writer_early_margin (IvshmWriter * w)
{
  uint64_t pending = 0, id;

  for (id = w->span_first; id < w->span_end; id++) {
    Span *s = ivshm_span_at (w, id);

    if (s->state == SPAN_PENDING || (s->state == SPAN_CANCELLED &&
            !atomic_load_explicit (&s->freed, ACQ)))
      pending += s->len;
  }
  return pending + w->early_margin;
}

/* The cache-hot ring (PROTOCOL.md, "Early wrap"): should the record of
 * rec_len bytes that would start at ring offset off start at offset 0
 * instead, behind a pad to the ring's end? When it would start at least
 * hot_window bytes into the ring, fits before off, and the space at the
 * ring's start that no reader and no reservation of ours still needs
 * holds it and the margin. The free space is the ring less what lies
 * between the bound (the tail after a reclaim, our oldest reservation)
 * and reserve_pos; when that used part does not itself wrap, the free
 * space less the pad is exactly the free space at the ring's start, and
 * when it does, it is smaller than the pad. So the test is that of any
 * wrap (free space >= pad + record), with the margin on top: an early
 * wrap never writes where a wrap at the end would not. It is left out
 * while a holder of the previous session or a stale producer's
 * reservation bounds the space (section 10). A look that fails is
 * repeated only a quarter of a window later. */
static bool
writer_early_wrap (IvshmWriter * w, uint64_t off, uint64_t rec_len,
    uint64_t * free_space)
{
  uint64_t need, margin;

  if (off < w->hot_window || rec_len > off || w->reserve_pos < w->hot_next_look)
    return false;
  if (w->n_holders == 0 && w->stale_until_ns == 0 &&
      (margin = writer_early_margin (w)) < w->ring_size) {
    need = (w->ring_size - off) + rec_len + margin;
    if (*free_space < need)
      *free_space = ivshm_writer_reclaim (w, false);
    if (*free_space >= need)
      return true;
  }
  w->hot_next_look = w->reserve_pos + w->hot_window / 4;
  return false;
}

void
ivshm_writer_set_early_margin (IvshmWriter * w, uint64_t bytes)
{
  w->early_margin = bytes;
}

IvshmStatus
ivshm_writer_reserve_span (IvshmWriter * w, uint64_t payload_len,
    IvshmSpan * span)
{
  uint64_t rec_len, off, free_space;
  bool early;
  Span *s;

  memset (span, 0, sizeof *span);
  if (!ivshm_writer_owns (w))
    return IVSHM_ERR_TAKEN_OVER;
  if (payload_len > ivshm_writer_max_payload (w))
    return IVSHM_ERR_TOO_BIG;
  rec_len = ivshm_record_len (payload_len);

  if (w->span_end - w->span_first > MAX_SPANS - 2) {
    ivshm_writer_collect (w);
    if (w->span_end - w->span_first > MAX_SPANS - 2) {
      w->stats.full_waits++;
      return IVSHM_AGAIN;
    }
  }

  free_space = ivshm_writer_free_space (w);
  off = w->reserve_off;
  early = off + rec_len <= w->ring_size &&
      writer_early_wrap (w, off, rec_len, &free_space);

  if (off + rec_len > w->ring_size || early) {
    /* The record would wrap: pad to the end of the ring first. The pad is
     * published as soon as the spans before it are, so that once readers
     * pass it the record needs only rec_len of space, and any record up to
     * the ring's size fits. An early pad needs no such thing (the space
     * at the ring's start is free already): it is published with the
     * record, so that a sleeping reader is woken once, not twice. */
    uint64_t pad_len = w->ring_size - off;
    IvshmRecordHeader pad = { 0 };

    if (free_space < pad_len)
      free_space = ivshm_writer_make_room (w, pad_len);
    if (free_space < pad_len) {
      w->stats.full_waits++;
      return IVSHM_AGAIN;
    }
    if (!writer_announce (w, w->reserve_pos + pad_len))
      return IVSHM_ERR_TAKEN_OVER;
    pad.type = IVSHM_RECORD_PAD;
    pad.pos = w->reserve_pos;
    pad.payload_len = pad_len - sizeof pad;
    memcpy (w->ring + off, &pad, sizeof pad);
    writer_push_span (w, pad_len, SPAN_COMMITTED, true);
    if (early)
      w->stats.early_wraps++;
    else
      ivshm_writer_advance (w);
    free_space -= pad_len;
    off = 0;
  }

  if (free_space < rec_len)
    free_space = ivshm_writer_make_room (w, rec_len);
  if (free_space < rec_len) {
    w->stats.full_waits++;
    return ivshm_writer_owns (w) ? IVSHM_AGAIN : IVSHM_ERR_TAKEN_OVER;
  }
  if (!writer_announce (w, w->reserve_pos + rec_len))
    return IVSHM_ERR_TAKEN_OVER;

  s = writer_push_span (w, rec_len, SPAN_PENDING, false);
  span->id = w->span_end - 1;
  span->pos = s->pos;
  span->payload = w->ring + off + sizeof (IvshmRecordHeader);
  span->capacity = rec_len - sizeof (IvshmRecordHeader);
  return IVSHM_OK;
}

static Span *
writer_pending_span (IvshmWriter * w, const IvshmSpan * span)
{
  Span *s;

  if (span->id < w->span_first || span->id >= w->span_end)
    return NULL;
  s = ivshm_span_at (w, span->id);
  if (s->pos != span->pos || s->state != SPAN_PENDING)
    return NULL;
  return s;
}

void
ivshm_writer_cancel_span (IvshmWriter * w, const IvshmSpan * span)
{
  Span *s = writer_pending_span (w, span);

  if (!s)
    return;
  ivshm_writer_write_skip (w, s->pos, s->off, s->len);
  s->state = SPAN_CANCELLED;
  w->stats.cancelled++;
  ivshm_writer_advance (w);
}

void
ivshm_writer_release_span (IvshmWriter * w, const IvshmSpan * span)
{
  /* The entry cannot be reused before this store, so no check is needed
   * (and none would be thread-safe). */
  atomic_store_explicit (&ivshm_span_at (w, span->id)->freed, 1, REL);
}

IvshmStatus
ivshm_writer_reserve (IvshmWriter * w, uint64_t payload_len, void **payload)
{
  IvshmStatus st;

  *payload = NULL;
  if (w->current_active)
    return IVSHM_ERR_INVALID_ARG;
  st = ivshm_writer_reserve_span (w, payload_len, &w->current);
  if (st != IVSHM_OK)
    return st;
  w->current_active = true;
  w->current_len = payload_len;
  *payload = w->current.payload;
  return IVSHM_OK;
}

void
ivshm_writer_abort (IvshmWriter * w)
{
  if (!w->current_active)
    return;
  ivshm_writer_cancel_span (w, &w->current);
  ivshm_writer_release_span (w, &w->current);
  w->current_active = false;
}

static int
sticky_kind (const IvshmRecordHeader * h)
{
  if (h->type == IVSHM_RECORD_CAPS)
    return STICKY_CAPS;
  if (h->type != IVSHM_RECORD_EVENT)
    return -1;
  switch (h->subtype) {
    case IVSHM_EVENT_STREAM_START:
      return STICKY_STREAM_START;
    case IVSHM_EVENT_SEGMENT:
      return STICKY_SEGMENT;
    case IVSHM_EVENT_TIME:
      return STICKY_TIME;
    case IVSHM_EVENT_TAG:
      return STICKY_TAG;
    case IVSHM_EVENT_EOS:
      return STICKY_EOS;
    default:
      return -1;
  }
}

/* Rewrites the sticky area from the private copies, under its seqlock. */
static void
writer_write_sticky (IvshmWriter * w, uint64_t applies_from)
{
  IvshmStickyHeader *sh = w->sticky;
  uint8_t *dst = (uint8_t *) sh + sizeof (IvshmStickyHeader);
  uint64_t cap = IVSHM_STICKY_SIZE - sizeof (IvshmStickyHeader);
  uint64_t seq = atomic_load_explicit (&sh->seq, RLX);
  uint32_t len = 0, count = 0;
  int k;

  if (!ivshm_writer_owns (w))
    return;
  atomic_store_explicit (&sh->seq, seq + 1, RLX);
  atomic_thread_fence (REL);
  for (k = 0; k < STICKY_N; k++) {
    if (!w->sticky_rec[k])
      continue;
    if (len + w->sticky_len[k] > cap) {
      w->stats.sticky_overflows++;
      ivshm_writer_set_flag (w, IVSHM_PRODUCER_FLAG_STICKY_OVERFLOW);
      continue;
    }
    memcpy (dst + len, w->sticky_rec[k], w->sticky_len[k]);
    len += (uint32_t) w->sticky_len[k];
    count++;
  }
  atomic_store_explicit (&sh->applies_from, applies_from, RLX);
  atomic_store_explicit (&sh->len, len, RLX);
  atomic_store_explicit (&sh->count, count, RLX);
  atomic_store_explicit (&sh->seq, seq + 2, REL);
}

static void
writer_keep_sticky (IvshmWriter * w, int kind, const IvshmRecordHeader * h,
    const uint8_t * payload)
{
  uint64_t len = ivshm_record_len (h->payload_len);
  uint8_t *copy;

  if (len > IVSHM_STICKY_SIZE) {
    /* can never fit; drop the old copy so no stale record is replayed */
    free (w->sticky_rec[kind]);
    w->sticky_rec[kind] = NULL;
    w->stats.sticky_overflows++;
    ivshm_writer_set_flag (w, IVSHM_PRODUCER_FLAG_STICKY_OVERFLOW);
    return;
  }
  copy = calloc (1, len);
  if (!copy) {
    free (w->sticky_rec[kind]);
    w->sticky_rec[kind] = NULL;
    return;
  }
  memcpy (copy, h, sizeof *h);
  memcpy (copy + sizeof *h, payload, h->payload_len);
  free (w->sticky_rec[kind]);
  w->sticky_rec[kind] = copy;
  w->sticky_len[kind] = len;

  if (kind == STICKY_STREAM_START) {
    /* a new stream: the old stream's tags and end no longer apply */
    free (w->sticky_rec[STICKY_TAG]);
    w->sticky_rec[STICKY_TAG] = NULL;
    free (w->sticky_rec[STICKY_EOS]);
    w->sticky_rec[STICKY_EOS] = NULL;
  }
}

IvshmStatus
ivshm_writer_commit_span (IvshmWriter * w, const IvshmSpan * span,
    const IvshmRecordHeader * info)
{
  IvshmRecordHeader h;
  uint64_t used, i;
  uint8_t *rec;
  Span *s;
  int kind;

  if (info->type != IVSHM_RECORD_BUFFER && info->type != IVSHM_RECORD_CAPS &&
      info->type != IVSHM_RECORD_EVENT)
    return IVSHM_ERR_INVALID_ARG;
  s = writer_pending_span (w, span);
  if (!s)
    return IVSHM_ERR_STALE;
  if (info->payload_len > s->len - sizeof h)
    return IVSHM_ERR_INVALID_ARG;
  if (!ivshm_writer_owns (w))
    return IVSHM_ERR_TAKEN_OVER;

  rec = w->ring + s->off;
  h = *info;
  h.pos = s->pos;
  memcpy (rec, &h, sizeof h);
  used = ivshm_record_len (h.payload_len);
  if (used < s->len)
    ivshm_writer_write_skip (w, s->pos + used, s->off + used, s->len - used);
  s->state = SPAN_COMMITTED;

  /* Records reach readers in ring order, which must be stream order: a
   * span reserved before this one and still pending can no longer be
   * published as it is (it would come before this record). It becomes a
   * skip; its owner finds it stale at commit and copies instead. */
  for (i = w->span_pub; i < span->id; i++) {
    Span *o = ivshm_span_at (w, i);
    if (o->state == SPAN_PENDING) {
      ivshm_writer_write_skip (w, o->pos, o->off, o->len);
      o->state = SPAN_CANCELLED;
      w->stats.cancelled++;
    }
  }

  w->stats.records++;
  if (h.type == IVSHM_RECORD_BUFFER) {
    w->stats.buffers++;
    w->stats.bytes += h.payload_len;
  }

  /* The sticky area describes everything before write_pos, so it is
   * updated before write_pos is published (PROTOCOL.md, "Sticky area"). */
  kind = sticky_kind (&h);
  if (kind >= 0) {
    writer_keep_sticky (w, kind, &h, rec + sizeof h);
    writer_write_sticky (w, s->pos + s->len);
  }
  ivshm_writer_advance (w);
  return atomic_load_explicit (&w->taken_over, RLX) ?
      IVSHM_ERR_TAKEN_OVER : IVSHM_OK;
}

IvshmStatus
ivshm_writer_commit (IvshmWriter * w, const IvshmRecordHeader * info)
{
  IvshmStatus st;

  if (!w->current_active)
    return IVSHM_ERR_INVALID_ARG;
  if (info->payload_len > w->current_len)
    return IVSHM_ERR_INVALID_ARG;
  st = ivshm_writer_commit_span (w, &w->current, info);
  if (st == IVSHM_ERR_INVALID_ARG)
    return st;
  ivshm_writer_release_span (w, &w->current);
  w->current_active = false;
  return st;
}

IvshmStatus
ivshm_writer_write (IvshmWriter * w, const IvshmRecordHeader * info,
    const void *payload)
{
  void *dst;
  IvshmStatus st = ivshm_writer_reserve (w, info->payload_len, &dst);

  if (st != IVSHM_OK)
    return st;
  if (info->payload_len)
    ivshm_copy (dst, payload, info->payload_len);
  return ivshm_writer_commit (w, info);
}

/* Session format: no sticky records yet (seq stays even). */
void
ivshm_writer_clear_sticky (IvshmWriter * w)
{
  IvshmStickyHeader *sh = w->sticky;
  uint64_t seq = atomic_load_explicit (&sh->seq, RLX) & ~(uint64_t) 1;

  atomic_store_explicit (&sh->seq, seq + 2, RLX);
  atomic_store_explicit (&sh->applies_from, w->session_base, RLX);
  atomic_store_explicit (&sh->len, 0, RLX);
  atomic_store_explicit (&sh->count, 0, RLX);
}
