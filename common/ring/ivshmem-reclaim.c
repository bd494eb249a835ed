/* gst-ivshmem: the producer's view of its readers: the tail, leases
 * SPDX-License-Identifier: MIT
 *
 * The producer reuses ring space only up to the lowest position a live
 * reader of its session still needs (writer_scan_slots, under the writer's
 * lock, which ivshm_writer_tick() takes too). Slots whose lease expired are
 * reaped here, by the tick without any ring pressure and by a scan when
 * the ring is full. The read-only getters (count_readers, had_reader)
 * never store into shared memory.
 */
#include "ivshmem-ring-private.h"

#include "ivshmem-os.h"

/* Reaps every slot whose owner's heartbeat has not moved for a lease,
 * whatever its state. Call with the writer's lock held. */
unsigned
ivshm_writer_reap_expired (IvshmWriter * w, uint64_t now)
{
  unsigned i, n = 0;
  uint64_t owner;

  for (i = 0; i < IVSHM_MAX_READERS; i++) {
    IvshmReaderSlot *s = ivshm_slot_of (w->base, i);

    if (ivshm_lease_expired (&w->lease[i], s, now, w->lease_timeout_ns,
            &owner) && ivshm_slot_reap (w->hdr, s, i, owner)) {
      w->stats.readers_evicted++;
      n++;
    }
  }
  return n;
}

/* Is slot s an ACTIVE reader of this session at a valid position? 1: yes
 * (*pos set), 0: it holds nothing back, -1: it breaks the rules. */
static int
writer_slot_position (IvshmWriter * w, IvshmReaderSlot * s, uint64_t * pos)
{
  uint64_t owner, session, v;
  uint32_t state = atomic_load_explicit (&s->state, SEQ);

  if (state != IVSHM_SLOT_ACTIVE && state != IVSHM_SLOT_WAITING)
    return 0;
  owner = atomic_load_explicit (&s->owner, ACQ);
  session = atomic_load_explicit (&s->session_id, ACQ);
  v = atomic_load_explicit (&s->read_pos, SEQ);
  /* a reader of an older session, or garbage: it holds nothing back */
  if (owner == 0 || session != w->session)
    return 0;
  /* adopted and not yet ACTIVE: its reader registers the tail, which we
   * keep at the session's start for it */
  *pos = state == IVSHM_SLOT_WAITING ? w->session_base :
      v & ~IVSHM_POS_TAG_MASK;
  if (state == IVSHM_SLOT_ACTIVE && (v & IVSHM_POS_TAG_MASK) == 0)
    return -1;                  /* no claim's tag: not a reader's value */
  /* A reader attaching registers the tail it read, and re-reads the tail
   * until it stands no lower: below our tail it is either in that window
   * or lying. Either way it holds nothing back. */
  if (*pos < w->tail)
    return 0;
  if (*pos > w->write_pos)
    return -1;
  return 1;
}

/* Keeps the invariant "a new session never overwrites records that a
 * live reader of the previous session still holds" (PROTOCOL.md, "Holders
 * of the previous session"): forgets the holders whose slot was let go
 * (owner changed, or no longer EVICTED: freed, maybe claimed again) or
 * reaped, and recomputes the lowest position the others still hold. A
 * leaky producer, which never waits for readers, waits for them one lease
 * at most, even if their heartbeat moves. Call with the writer's lock
 * held. */
static void
writer_scan_holders (IvshmWriter * w)
{
  unsigned i, n = 0;
  uint64_t min = UINT64_MAX;
  bool all = w->leaky && ivshm_now_ns () > w->holders_until_ns;

  for (i = 0; i < IVSHM_MAX_READERS && w->n_holders > 0; i++) {
    IvshmReaderSlot *s = ivshm_slot_of (w->base, i);

    if (w->holder[i].owner == 0)
      continue;
    if (all || atomic_load_explicit (&s->state, SEQ) != IVSHM_SLOT_EVICTED ||
        atomic_load_explicit (&s->owner, ACQ) != w->holder[i].owner) {
      w->holder[i].owner = 0;
      continue;
    }
    n++;
    if (w->holder[i].pos < min)
      min = w->holder[i].pos;
  }
  w->n_holders = n;
  w->holders_pos = min;
}

/* The lowest position any live reader of this session still needs, or
 * write_pos if none. Evicts slots that break the rules and, with
 * check_leases, reaps expired ones. */
static uint64_t
writer_scan_slots (IvshmWriter * w, bool check_leases, unsigned *n_active)
{
  uint64_t min = w->write_pos, pos;
  unsigned i, active = 0;
  bool local = w->kernel_id != 0;

  ivshm_writer_lock (w);
  if (check_leases)
    ivshm_writer_reap_expired (w, ivshm_now_ns ());
  if (w->n_holders > 0)
    writer_scan_holders (w);
  for (i = 0; i < IVSHM_MAX_READERS; i++) {
    IvshmReaderSlot *s = ivshm_slot_of (w->base, i);
    int k = writer_slot_position (w, s, &pos);

    if (k < 0) {
      w->stats.invalid_slots++;
      ivshm_slot_evict (s, IVSHM_SLOT_ACTIVE);
      continue;
    }
    if (k == 0)
      continue;
    active++;
    if (pos < min)
      min = pos;
    if (atomic_load_explicit (&s->kernel_id, RLX) != w->kernel_id)
      local = false;
  }
  ivshm_writer_unlock (w);
  w->readers_local = local;
  if (n_active)
    *n_active = active;
  return min;
}

unsigned
ivshm_writer_count_readers (IvshmWriter * w)
{
  unsigned i, n = 0;
  uint64_t pos;

  for (i = 0; i < IVSHM_MAX_READERS; i++)
    if (writer_slot_position (w, ivshm_slot_of (w->base, i), &pos) > 0)
      n++;
  return n;
}

/* Has any reader attached to this session, even one gone again? A reader
 * leaves the session id in the slot it frees. A lying slot can only make
 * us stop keeping the stream for a first reader. */
bool
ivshm_writer_reader_came (IvshmWriter * w)
{
  unsigned i;

  for (i = 0; i < IVSHM_MAX_READERS; i++) {
    IvshmReaderSlot *s = ivshm_slot_of (w->base, i);
    uint32_t state = atomic_load_explicit (&s->state, ACQ);

    /* not CLAIMED: a reader that is still attaching is not here yet (it
     * would lose the stream's start if we stopped keeping it) */
    if ((state == IVSHM_SLOT_FREE || state == IVSHM_SLOT_ACTIVE ||
            state == IVSHM_SLOT_WAITING) &&
        atomic_load_explicit (&s->session_id, ACQ) == w->session)
      return true;
  }
  return false;
}

bool
ivshm_writer_had_reader (IvshmWriter * w)
{
  /* a writer that lost the region keeps nothing for anybody: do not make
   * its element wait for a reader */
  if (atomic_load_explicit (&w->stopped, RLX))
    return true;
  return w->had_reader || ivshm_writer_reader_came (w);
}

uint64_t
ivshm_writer_free_space (IvshmWriter * w)
{
  uint64_t bound = w->tail;

  ivshm_writer_collect (w);
  if (w->span_first < w->span_end &&
      ivshm_span_at (w, w->span_first)->pos < bound)
    bound = ivshm_span_at (w, w->span_first)->pos;
  /* records a reader of the previous session still holds, behind our
   * first position (writer_scan_holders) */
  if (w->n_holders > 0 && w->holders_pos < bound)
    bound = w->holders_pos;
  /* and what a producer we took over had reserved (writer_format) */
  if (w->stale_until_ns != 0) {
    if (ivshm_now_ns () > w->stale_until_ns)
      w->stale_until_ns = 0;
    else if (w->stale_pos < bound)
      bound = w->stale_pos;
  }
  return w->ring_size - (w->reserve_pos - bound);
}

/* Recomputes how far the ring may be reused. Returns the free space. */
uint64_t
ivshm_writer_reclaim (IvshmWriter * w, bool check_leases)
{
  uint64_t m1, m2, bound;
  unsigned active;

  if (!ivshm_writer_owns (w))
    return ivshm_writer_free_space (w);
  m1 = writer_scan_slots (w, check_leases, &active);
  if (!w->had_reader && (active > 0 || ivshm_writer_reader_came (w))) {
    /* the first reader is here (or came and left between two looks):
     * from now on space is reclaimed */
    w->had_reader = true;
    ivshm_writer_set_flag (w, IVSHM_PRODUCER_FLAG_HAD_READER);
  }
  if (!w->had_reader) {
    /* Keep everything for a first reader, but for the skips and pads
     * published before the session's first record: nobody needs them (a
     * first reader starts at the tail). */
    if (w->retain_from == w->tail)
      return ivshm_writer_free_space (w);
    m1 = w->retain_from;
  }

  /* Publish the new tail, then look again: a reader that registered a
   * position below m1 before it could see the new tail is caught by the
   * second scan (PROTOCOL.md, "Attaching"). */
  IVSHM_TEST_POINT ("producer-scanned", w);
  if (m1 > w->tail_published) {
    /* from our last value: a stale producer's store fails */
    if (!ivshm_writer_cas_owned (w, &w->hdr->tail, w->tail_published, m1))
      return ivshm_writer_free_space (w);
    w->tail_published = m1;
  }
  m2 = writer_scan_slots (w, false, NULL);
  bound = m1 < m2 ? m1 : m2;
  if (bound > w->tail)
    w->tail = bound;
  return ivshm_writer_free_space (w);
}

/* The slowest ACTIVE reader of this session at or above the tail. */
static int
writer_slowest (IvshmWriter * w, uint64_t * min)
{
  unsigned i;
  int at = -1;

  *min = w->write_pos;
  for (i = 0; i < IVSHM_MAX_READERS; i++) {
    uint64_t pos;

    if (writer_slot_position (w, ivshm_slot_of (w->base, i), &pos) > 0 &&
        pos < *min) {
      *min = pos;
      at = (int) i;
    }
  }
  return at;
}

/* Reclaims space; a leaky producer also drops the readers that hold back
 * the space it needs, slowest first (they join again at the live edge and
 * report what they lost). It never drops what this process still holds
 * (pool buffers): for that it waits. */
uint64_t
ivshm_writer_make_room (IvshmWriter * w, uint64_t need)
{
  uint64_t free_space = ivshm_writer_reclaim (w, true), min;
  unsigned k;

  for (k = 0; w->leaky && free_space < need && k < IVSHM_MAX_READERS; k++) {
    int at = writer_slowest (w, &min);

    /* dropping readers helps only if they, and not our own references,
     * are what holds the space */
    ivshm_writer_collect (w);
    if (at < 0 || (w->span_first < w->span_end &&
            ivshm_span_at (w, w->span_first)->pos <= min))
      break;
    /* nor if a holder of the previous session is (writer_scan_holders) */
    if (w->n_holders > 0 && w->holders_pos <= min)
      break;
    /* nor if a stale producer's reservation is (writer_format) */
    if (w->stale_until_ns != 0 && w->stale_pos <= min)
      break;
    if (!ivshm_writer_owns (w))
      break;
    w->stats.readers_lapped++;
    /* ACTIVE, or adopted and still WAITING (it holds the base) */
    ivshm_slot_evict (ivshm_slot_of (w->base, (unsigned) at),
        atomic_load_explicit (&ivshm_slot_of (w->base,
                (unsigned) at)->state, SEQ));
    free_space = ivshm_writer_reclaim (w, false);
  }
  return free_space;
}
