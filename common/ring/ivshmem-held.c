/* gst-ivshmem: a reader's stores into its slot, and its held records
 * SPDX-License-Identifier: MIT
 *
 * Every store a reader makes into its slot happens here, under the
 * reader's lock, after checking that the slot is still its own
 * (ivshm_reader_owns_locked); read_pos is published by compare-and-swap
 * from the value this reader last published, tagged with its claim
 * (IVSHM_POS_TAG), so that a store racing with a reap (read_pos poisoned)
 * fails instead of landing in a slot somebody else owns now, even if the
 * new owner has passed through the same position. Once it fails, the
 * reader treats itself as evicted (r->lost) and never stores again.
 */
#include "ivshmem-ring-private.h"

#include "ivshmem-os.h"

void
ivshm_reader_lock (IvshmReader * r)
{
  while (atomic_flag_test_and_set_explicit (&r->lock, ACQ))
    ivshm_cpu_relax ();
}

void
ivshm_reader_unlock (IvshmReader * r)
{
  atomic_flag_clear_explicit (&r->lock, REL);
}

/* Call with the lock held. */
bool
ivshm_reader_owns_locked (IvshmReader * r)
{
  uint32_t state;

  if (!r->slot || r->lost)
    return false;
  state = atomic_load_explicit (&r->slot->state, ACQ);
  if (atomic_load_explicit (&r->slot->owner, ACQ) != r->token ||
      (state != IVSHM_SLOT_ACTIVE && state != IVSHM_SLOT_CLAIMED &&
          state != IVSHM_SLOT_WAITING)) {
    r->lost = true;
    return false;
  }
  return true;
}

/* CAS(read_pos, published | tag, pos | tag). Call with the lock held,
 * after ivshm_reader_owns_locked(). False (and lost): not ours any more. */
bool
ivshm_reader_store_pos_locked (IvshmReader * r, uint64_t pos)
{
  uint64_t expected = r->published | r->tag;

  IVSHM_TEST_POINT ("reader-publish", r);
  if (!atomic_compare_exchange_strong_explicit (&r->slot->read_pos,
          &expected, pos | r->tag, SEQ, RLX)) {
    r->lost = true;             /* reaped: not ours */
    return false;
  }
  r->published = pos;
  return true;
}

/* Gives the space before r->pos back (but for records still held), and
 * wakes the producer if it is about to sleep for want of space (the
 * mirror of writer_publish). Call with the lock held. */
void
ivshm_reader_publish_locked (IvshmReader * r)
{
  uint64_t pos = r->pos;

  while (r->held_first < r->held_end &&
      r->held[r->held_first % IVSHM_MAX_HELD].released)
    r->held_first++;
  if (r->held_first < r->held_end)
    pos = r->held[r->held_first % IVSHM_MAX_HELD].pos;
  /* nothing new for the producer: spare the store and the fence (a held
   * record in front keeps read_pos where it is while we read on) */
  if (pos == r->published || r->waiting || !ivshm_reader_owns_locked (r))
    return;
  if (!ivshm_reader_store_pos_locked (r, pos))
    return;
  atomic_thread_fence (SEQ);
  if (atomic_load_explicit (&r->hdr->writer_sleeping, RLX) != 0)
    ivshm_wake (&r->hdr->space_futex);
}

/* Moves pos and its ring offset; a step within the ring (the usual case:
 * to the next record) spares a 64-bit division. */
void
ivshm_reader_set_pos (IvshmReader * r, uint64_t pos)
{
  uint64_t delta = pos - r->pos;

  if (pos >= r->pos && delta <= r->ring_size - r->off) {
    r->off += delta;
    if (r->off == r->ring_size)
      r->off = 0;
  } else {
    r->off = pos % r->ring_size;
  }
  r->pos = pos;
}

void
ivshm_reader_advance (IvshmReader * r, uint64_t pos)
{
  ivshm_reader_lock (r);
  ivshm_reader_set_pos (r, pos);
  ivshm_reader_publish_locked (r);
  ivshm_reader_unlock (r);
}

void
ivshm_reader_heartbeat (IvshmReader * r)
{
  ivshm_reader_lock (r);
  if (ivshm_reader_owns_locked (r))
    atomic_fetch_add_explicit (&r->slot->heartbeat, 1, REL);
  ivshm_reader_unlock (r);
}

IvshmStatus
ivshm_reader_hold (IvshmReader * r, IvshmHold * hold)
{
  uint64_t id;
  bool full;

  if (r->cur_len == 0 || r->cur_is_replay)
    return IVSHM_ERR_INVALID_ARG;
  /* a leaky producer may write over a record once it has dropped us: only
   * a copy, checked after it is made, is safe then */
  if (atomic_load_explicit (&r->hdr->producer_flags, RLX) &
      IVSHM_PRODUCER_FLAG_LEAKY)
    return IVSHM_AGAIN;

  ivshm_reader_lock (r);
  if (r->held_end - r->held_first >= IVSHM_MAX_HELD)
    ivshm_reader_publish_locked (r);
  full = r->held_end - r->held_first >= IVSHM_MAX_HELD;
  if (full || !ivshm_reader_owns_locked (r)) {
    ivshm_reader_unlock (r);
    if (full)
      return IVSHM_AGAIN;
    r->cur_len = 0;
    return IVSHM_ERR_EVICTED;
  }
  r->stats.records++;
  if (r->cur_type == IVSHM_RECORD_BUFFER) {
    r->stats.buffers++;
    r->stats.bytes += r->cur_payload_len;
  }
  id = r->held_end++;
  r->held[id % IVSHM_MAX_HELD].pos = r->pos;
  r->held[id % IVSHM_MAX_HELD].len = r->cur_len;
  r->held[id % IVSHM_MAX_HELD].released = false;
  r->held_bytes += r->cur_len;
  ivshm_reader_set_pos (r, r->pos + r->cur_len);
  ivshm_reader_publish_locked (r);
  if (ivshm_reader_owns_locked (r))
    atomic_store_explicit (&r->slot->records_read, r->stats.records, RLX);
  ivshm_reader_unlock (r);

  hold->id = id;
  hold->pos = r->held[id % IVSHM_MAX_HELD].pos;
  r->cur_len = 0;
  return IVSHM_OK;
}

void
ivshm_reader_unhold (IvshmReader * r, const IvshmHold * hold)
{
  ivshm_reader_lock (r);
  if (hold->id >= r->held_first && hold->id < r->held_end &&
      r->held[hold->id % IVSHM_MAX_HELD].pos == hold->pos &&
      !r->held[hold->id % IVSHM_MAX_HELD].released) {
    r->held[hold->id % IVSHM_MAX_HELD].released = true;
    r->held_bytes -= r->held[hold->id % IVSHM_MAX_HELD].len;
    ivshm_reader_publish_locked (r);
  }
  ivshm_reader_unlock (r);
}

/* Never stores into shared memory: released holds are counted out here
 * without publishing (the next release or unhold publishes). */
static uint64_t
reader_oldest_held_locked (IvshmReader * r, unsigned *count)
{
  uint64_t i = r->held_first;

  while (i < r->held_end && r->held[i % IVSHM_MAX_HELD].released)
    i++;
  *count = (unsigned) (r->held_end - i);
  return i < r->held_end ? r->held[i % IVSHM_MAX_HELD].pos : r->pos;
}

void
ivshm_reader_held (IvshmReader * r, unsigned *count, uint64_t * bytes)
{
  unsigned n;

  ivshm_reader_lock (r);
  reader_oldest_held_locked (r, &n);
  if (count)
    *count = n;
  if (bytes)
    *bytes = r->held_bytes;
  ivshm_reader_unlock (r);
}

bool
ivshm_reader_lost (IvshmReader * r)
{
  bool lost;

  atomic_thread_fence (ACQ);
  ivshm_reader_lock (r);
  lost = !ivshm_reader_owns_locked (r);
  ivshm_reader_unlock (r);
  return lost;
}

bool
ivshm_reader_holding_back (IvshmReader * r)
{
  uint64_t w, oldest, pos;
  unsigned n;

  uint64_t ring_size;

  ivshm_reader_lock (r);
  oldest = reader_oldest_held_locked (r, &n);
  pos = r->pos;
  ring_size = r->ring_size;
  if (r->waiting)
    n = 0;
  ivshm_reader_unlock (r);
  if (n == 0)
    return false;
  /* Held records matter when they keep the producer further back than our
   * own reading does (more than half a ring behind us), and the producer
   * is coming round to them (three quarters of a ring ahead of them). A
   * last-sample that holds the frame we just read never qualifies: copying
   * it would not give the producer any room. */
  w = atomic_load_explicit (&r->hdr->write_pos, ACQ);
  return pos - oldest > ring_size / 2 && w >= oldest &&
      w - oldest > ring_size / 4 * 3;
}

uint64_t
ivshm_reader_position (IvshmReader * r)
{
  uint64_t pos;

  ivshm_reader_lock (r);
  pos = r->pos;
  ivshm_reader_unlock (r);
  return pos;
}

uint64_t
ivshm_reader_lag (IvshmReader * r)
{
  uint64_t w = atomic_load_explicit (&r->hdr->write_pos, ACQ), pos, size;

  ivshm_reader_lock (r);
  pos = r->pos;
  size = r->waiting ? 0 : r->ring_size;
  ivshm_reader_unlock (r);
  /* informative; a hostile value only gives a silly number */
  return w >= pos && w - pos <= size ? w - pos : 0;
}

void
ivshm_reader_get_stats (IvshmReader * r, IvshmReaderStats * stats)
{
  ivshm_reader_lock (r);
  *stats = r->stats;
  ivshm_reader_unlock (r);
}
