/* gst-ivshmem: the producer's lowest layer: ownership, spans, publication
 * SPDX-License-Identifier: MIT
 *
 * The writer is one object in four files, each calling only those below
 * it (ivshmem-ring-private.h lists them). This one is the bottom: whether
 * the producer still owns the region (ivshm_writer_owns, checked before
 * every store that starts a record, publishes a position or touches the
 * slots), the stores a stale producer must not make, the writer's lock,
 * its table of spans, skip records, and the publication of write_pos
 * (ivshm_writer_advance, by a compare-and-swap from what it last
 * published). It calls nothing else of the writer.
 */
#include "ivshmem-ring-private.h"

#include "ivshmem-os.h"

#include <string.h>

void
ivshm_writer_lock (IvshmWriter * w)
{
  while (atomic_flag_test_and_set_explicit (&w->lock, ACQ))
    ivshm_cpu_relax ();
}

bool
ivshm_writer_trylock (IvshmWriter * w)
{
  return !atomic_flag_test_and_set_explicit (&w->lock, ACQ);
}

void
ivshm_writer_unlock (IvshmWriter * w)
{
  atomic_flag_clear_explicit (&w->lock, REL);
}

/* Do we still own the region? Once we do not, never again. */
bool
ivshm_writer_owns (IvshmWriter * w)
{
  if (atomic_load_explicit (&w->stopped, RLX))
    return false;
  if (atomic_load_explicit (&w->hdr->producer_owner, SEQ) == w->token)
    return true;
  atomic_store_explicit (&w->stopped, true, RLX);
  atomic_store_explicit (&w->taken_over, true, RLX);
  return false;
}

void
ivshm_writer_set_flag (IvshmWriter * w, uint32_t flag)
{
  if (w->producer_flags & flag)
    return;
  w->producer_flags |= flag;
  if (ivshm_writer_owns (w))
    atomic_store_explicit (&w->hdr->producer_flags, w->producer_flags, REL);
}

/* A store that a stale producer must not make: by compare-and-swap from
 * the value we saw (session ids and session bases never repeat), after a
 * check that we still own the region. */
bool
ivshm_writer_cas_owned (IvshmWriter * w, _Atomic uint64_t * field,
    uint64_t seen, uint64_t v)
{
  if (!ivshm_writer_owns (w))
    return false;
  if (atomic_compare_exchange_strong_explicit (field, &seen, v, SEQ, RLX))
    return true;
  /* changed since we saw it: by a producer that took over (we stop), or
   * by a scribbling peer while we still own the region (we overwrite) */
  if (!ivshm_writer_owns (w))
    return false;
  atomic_store_explicit (field, v, SEQ);
  return true;
}

uint64_t
ivshm_writer_max_payload (const IvshmWriter * w)
{
  return w->ring_size - sizeof (IvshmRecordHeader);
}

Span *
ivshm_span_at (IvshmWriter * w, uint64_t id)
{
  return &w->spans[id % MAX_SPANS];
}

/* Publishes w->write_pos: CAS from what we last published, so that a
 * producer that was taken over can never move the new session's
 * write_pos (its base is one this producer never published). */
static bool
writer_publish (IvshmWriter * w)
{
  uint64_t expected = w->published;

  if (!ivshm_writer_owns (w) ||
      !atomic_compare_exchange_strong_explicit (&w->hdr->write_pos,
          &expected, w->write_pos, SEQ, RLX)) {
    atomic_store_explicit (&w->stopped, true, RLX);
    atomic_store_explicit (&w->taken_over, true, RLX);
    return false;
  }
  w->published = w->write_pos;
  /* A reader announces that it is going to sleep, then re-reads write_pos;
   * we publish, then look for sleepers. With a full fence on both sides
   * one of us sees the other (PROTOCOL.md, "Wake-ups"). */
  atomic_thread_fence (SEQ);
  if (atomic_load_explicit (&w->hdr->readers_sleeping, RLX) != 0)
    ivshm_wake (&w->hdr->data_futex);
  return true;
}

void
ivshm_writer_write_skip (IvshmWriter * w, uint64_t pos, uint64_t off,
    uint64_t len)
{
  IvshmRecordHeader h = { 0 };

  /* a skip header is a record header: never into a region we lost */
  if (!ivshm_writer_owns (w))
    return;
  h.type = IVSHM_RECORD_SKIP;
  h.pos = pos;
  h.payload_len = len - sizeof h;
  memcpy (w->ring + off, &h, sizeof h);
}

/* Publishes every span from span_pub on that is no longer pending. */
void
ivshm_writer_advance (IvshmWriter * w)
{
  uint64_t old = w->write_pos;

  while (w->span_pub < w->span_end &&
      ivshm_span_at (w, w->span_pub)->state != SPAN_PENDING) {
    Span *s = ivshm_span_at (w, w->span_pub++);
    w->write_pos = s->pos + s->len;
    /* until the first real record, what is published is only skips and
     * pads: no need to keep it for a first reader */
    if (!w->retain_fixed) {
      if (s->state == SPAN_COMMITTED && !s->pad) {
        w->retain_fixed = true;
        w->retain_from = s->pos;
      } else {
        w->retain_from = w->write_pos;
      }
    }
  }
  if (w->write_pos != old)
    writer_publish (w);
}

/* Forgets the spans that are published and no longer referenced. A span
 * released while still pending (a pool buffer dropped unpushed) will never
 * be committed: it becomes a skip, so that it neither blocks publication
 * nor keeps its space. */
void
ivshm_writer_collect (IvshmWriter * w)
{
  uint64_t i;
  bool cancelled = false;

  for (i = w->span_pub; i < w->span_end; i++) {
    Span *s = ivshm_span_at (w, i);

    if (s->state == SPAN_PENDING && atomic_load_explicit (&s->freed, ACQ)) {
      ivshm_writer_write_skip (w, s->pos, s->off, s->len);
      s->state = SPAN_CANCELLED;
      w->stats.cancelled++;
      cancelled = true;
    }
  }
  if (cancelled)
    ivshm_writer_advance (w);
  while (w->span_first < w->span_pub &&
      atomic_load_explicit (&ivshm_span_at (w, w->span_first)->freed, ACQ))
    w->span_first++;
}
