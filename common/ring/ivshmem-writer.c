/* gst-ivshmem: the producer's claim, session, heartbeat and waits
 * SPDX-License-Identifier: MIT
 *
 * A producer owns a region by a compare-and-swap of producer_owner
 * (writer_claim), takes it over from a producer whose heartbeat stopped
 * (previous_producer_alive), and only then formats a session
 * (writer_format), adopting the readers that wait for it. Before each
 * store that starts a record, publishes a position or touches the slots,
 * it checks that it still owns the region (ivshm_writer_owns).
 *
 * The writer object, on top of the writer's other files: it calls
 * ivshmem-spans.c, ivshmem-reclaim.c and ivshmem-publish.c, none of which
 * calls it.
 */
#include "ivshmem-ring-private.h"

#include "ivshmem-os.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint64_t
takeover_wait_ns (IvshmHeader * hdr, const IvshmWriterConfig * cfg)
{
  uint64_t period_us = atomic_load_explicit (&hdr->heartbeat_period_us, RLX);

  if (cfg && cfg->takeover_wait_ns)
    return cfg->takeover_wait_ns;
  if (period_us == 0 || period_us > MAX_TAKEOVER_WAIT_NS / 2500)
    return MAX_TAKEOVER_WAIT_NS;
  if (period_us * 2500 < MIN_TAKEOVER_WAIT_NS)
    return MIN_TAKEOVER_WAIT_NS;
  return period_us * 2500;
}

/* The region is owned by `other`: is that producer alive? Watches its
 * heartbeat for the takeover wait. An owner that changes while we watch
 * ends the watch (false: try the claim again): a producer that closes
 * cleanly stores CLOSED, then gives the region back (owner 0) at once.
 * CLOSED alone proves nothing: a new owner that has just claimed the
 * region has not formatted it yet. */
static bool
previous_producer_alive (IvshmHeader * hdr, uint64_t other,
    const IvshmWriterConfig * cfg)
{
  uint64_t wait_ns = takeover_wait_ns (hdr, cfg), start, hb0;

  hb0 = atomic_load_explicit (&hdr->producer_heartbeat, ACQ);
  start = ivshm_now_ns ();
  if (cfg && cfg->takeover_wait_cb)
    cfg->takeover_wait_cb (cfg->takeover_wait_data,
        atomic_load_explicit (&hdr->producer_pid, RLX), wait_ns);
  while (ivshm_now_ns () - start < wait_ns) {
    ivshm_sleep_ns (5 * 1000 * 1000);
    if (atomic_load_explicit (&hdr->producer_owner, ACQ) != other)
      return false;
    if (atomic_load_explicit (&hdr->producer_heartbeat, ACQ) != hb0)
      return true;
  }
  return false;
}

/* CAS(producer_owner, 0, token); or, from an owner T whose heartbeat does
 * not move for the takeover wait, CAS(producer_owner, T, token). Only one
 * contender wins a CAS from the same value. */
static IvshmStatus
writer_claim (IvshmHeader * hdr, uint64_t token,
    const IvshmWriterConfig * cfg, IvshmError * err)
{
  int tries;

  for (tries = 0; tries < 8; tries++) {
    uint64_t other = 0;

    if (atomic_compare_exchange_strong_explicit (&hdr->producer_owner,
            &other, token, SEQ, SEQ))
      return IVSHM_OK;
    if (previous_producer_alive (hdr, other, cfg))
      break;
    if (atomic_compare_exchange_strong_explicit (&hdr->producer_owner,
            &other, token, SEQ, SEQ))
      return IVSHM_OK;
  }
  return ivshm_error_set (err, IVSHM_ERR_PRODUCER_BUSY, 0,
      "another producer (pid %llu) owns this region and its heartbeat is "
      "moving; stop it first",
      (unsigned long long) atomic_load_explicit (&hdr->producer_pid, RLX));
}

/* Positions of the new session start where no earlier session can have
 * published one: a stale CAS of write_pos can never succeed, and a stale
 * record header's pos never matches. They start at the old reserve_end
 * (the old write_pos when nothing was reserved beyond it) plus the
 * smallest multiple of the ring size that is at least 2^40, so that the
 * new session writes right after the old session's last reservation: the
 * records readers of the old session may still hold, and the space a
 * stalled old producer may still write into, lie behind it (PROTOCOL.md,
 * "Session format"). *congruent says whether it is so. */
static uint64_t
session_base_after (uint64_t old_write_pos, uint64_t ring_size, bool *congruent)
{
  uint64_t step = (IVSHM_SESSION_BASE_STEP + ring_size - 1) / ring_size *
      ring_size;

  /* 2^22 restarts away, or a hostile value: start again low */
  *congruent = old_write_pos <= (UINT64_MAX >> 2) &&
      old_write_pos % IVSHM_RECORD_ALIGN == 0;
  if (!*congruent)
    return step;
  return old_write_pos + step;
}

/* An old-session slot we evict at format: if its owner is set and its
 * read_pos is a record position of the old session that the ring still
 * holds (within one ring before old_end, the end of the old producer's
 * reservations), remember it (translated by delta into our positions) until its
 * owner lets go of it (PROTOCOL.md, "Holders of the previous session"). */
static void
writer_remember_holder (IvshmWriter * w, unsigned i, uint64_t old_end,
    uint64_t delta)
{
  IvshmReaderSlot *s = ivshm_slot_of (w->base, i);
  uint64_t owner = atomic_load_explicit (&s->owner, ACQ);
  /* read_pos carries the slot's claim tag in its low bits */
  uint64_t pos = atomic_load_explicit (&s->read_pos, SEQ) & ~IVSHM_POS_TAG_MASK;

  if (owner == 0 || pos > old_end || old_end - pos > w->ring_size)
    return;
  if (w->n_holders == 0)
    w->holders_until_ns = ivshm_now_ns () + w->lease_timeout_ns;
  w->holder[i].owner = owner;
  w->holder[i].pos = pos + delta;
  if (w->n_holders++ == 0 || w->holder[i].pos < w->holders_pos)
    w->holders_pos = w->holder[i].pos;
}

static void
writer_write_identity (IvshmWriter * w, uint64_t size, uint64_t hb_ns)
{
  IvshmHeader *hdr = w->hdr;

  atomic_store_explicit (&hdr->version_major, IVSHM_VERSION_MAJOR, RLX);
  atomic_store_explicit (&hdr->version_minor, IVSHM_VERSION_MINOR, RLX);
  atomic_store_explicit (&hdr->region_size, size, RLX);
  atomic_store_explicit (&hdr->ring_offset, IVSHM_RING_OFFSET, RLX);
  atomic_store_explicit (&hdr->ring_size, w->ring_size, RLX);
  atomic_store_explicit (&hdr->slot_offset, IVSHM_SLOT_OFFSET, RLX);
  atomic_store_explicit (&hdr->slot_count, IVSHM_MAX_READERS, RLX);
  atomic_store_explicit (&hdr->slot_size, IVSHM_SLOT_SIZE, RLX);
  atomic_store_explicit (&hdr->sticky_offset, IVSHM_STICKY_OFFSET, RLX);
  atomic_store_explicit (&hdr->sticky_size, IVSHM_STICKY_SIZE, RLX);
  atomic_store_explicit (&hdr->record_align, IVSHM_RECORD_ALIGN, RLX);
  atomic_store_explicit (&hdr->header_flags, 0, RLX);
  atomic_store_explicit (&hdr->producer_pid, ivshm_process_id (), RLX);
  atomic_store_explicit (&hdr->heartbeat_period_us, hb_ns / 1000, RLX);
  atomic_store_explicit (&hdr->producer_kernel_id, w->kernel_id, RLX);
  /* 2.1: no clock published yet in this session; the sequence goes on
   * from where the last producer left it (even: not being written) */
  w->clock_seq = (atomic_load_explicit (&hdr->clock_seq, RLX) | 1) + 1;
  atomic_store_explicit (&hdr->clock_epoch, 0, RLX);
  atomic_store_explicit (&hdr->live_since_mono, 0, RLX);
  atomic_store_explicit (&hdr->clock_seq, w->clock_seq, RLX);
}

/* Session format step 2: WAITING slots are adopted (their session_id
 * set to the new session by compare-and-swap, retried while we own the
 * region; the reader registers the session's first position itself);
 * CLAIMED/ACTIVE slots of older sessions are EVICTED (owner kept), and
 * remembered as holders if the new session is congruent to the old one's
 * end (old_end: its reserve_end, or its write_pos); FREE and EVICTED slots are left alone. Returns
 * how many readers were adopted. */
static unsigned
writer_format_slots (IvshmWriter * w, uint64_t old_end, bool congruent)
{
  unsigned i, adopted = 0;
  int k;

  for (i = 0; i < IVSHM_MAX_READERS; i++) {
    IvshmReaderSlot *s = ivshm_slot_of (w->base, i);
    uint32_t state = atomic_load_explicit (&s->state, SEQ);

    if (state == IVSHM_SLOT_WAITING) {
      for (k = 0; k < 8 && ivshm_writer_owns (w); k++)
        if (ivshm_slot_adopt (s, w->session)) {
          adopted++;
          break;
        }
    } else if (state == IVSHM_SLOT_CLAIMED || state == IVSHM_SLOT_ACTIVE) {
      /* evicted first: from now on its read_pos only moves forward */
      if (ivshm_slot_evict (s, state) && congruent)
        writer_remember_holder (w, i, old_end, w->session_base - old_end);
    }
  }
  return adopted;
}

/* The end of the old producer's reservations: its reserve_end if that is
 * a record boundary within one ring after its write_pos, else (a 2.0
 * producer wrote 0 there, or garbage) its write_pos. */
static uint64_t
writer_pending_end (uint64_t old_wp, uint64_t old_re, uint64_t ring_size)
{
  if (old_re < old_wp || old_re - old_wp > ring_size ||
      old_re % IVSHM_RECORD_ALIGN)
    return old_wp;
  return old_re;
}

/* Only the owner formats (PROTOCOL.md, "Session format"). False: another
 * producer took the region over meanwhile; we stored nothing of the new
 * session in the header. */
static bool
writer_format (IvshmWriter * w, uint64_t size, uint64_t hb_ns)
{
  IvshmHeader *hdr = w->hdr;
  uint64_t old_session, old_wp, old_tail, old_re, pending;
  bool congruent;
  int k;

  /* 1. Take the region away from readers: with magic 0 nobody trusts
   * anything else in it. */
  if (!ivshm_writer_owns (w))
    return false;
  atomic_store_explicit (&hdr->magic, 0, SEQ);
  atomic_store_explicit (&hdr->producer_state, IVSHM_PRODUCER_NONE, SEQ);

  old_session = atomic_load_explicit (&hdr->session_id, SEQ);
  old_wp = atomic_load_explicit (&hdr->write_pos, SEQ);
  old_tail = atomic_load_explicit (&hdr->tail, SEQ);
  do
    w->session = ivshm_random_u64 ();
  while (w->session == old_session || w->session == 0);
  /* Start behind the old producer's reservations, and fence them: from
   * our compare-and-swap on, its announcements fail (writer_announce);
   * one that came between our load and it makes us look again. */
  for (k = 0;; k++) {
    old_re = atomic_load_explicit (&hdr->reserve_end, SEQ);
    pending = writer_pending_end (old_wp, old_re, w->ring_size);
    w->session_base = session_base_after (pending, w->ring_size, &congruent);
    IVSHM_TEST_POINT ("producer-fence", w);
    if (!ivshm_writer_owns (w))
      return false;
    if (atomic_compare_exchange_strong_explicit (&hdr->reserve_end, &old_re,
            w->session_base, SEQ, SEQ))
      break;
    if (k == 8) {
      /* a scribbling peer: ours anyway */
      atomic_store_explicit (&hdr->reserve_end, w->session_base, SEQ);
      break;
    }
  }
  w->announced = w->session_base;
  /* an old session of another ring size holds nothing we could place */
  if (atomic_load_explicit (&hdr->ring_size, RLX) != w->ring_size)
    congruent = false;
  /* what the old producer reserved and did not publish: its payload may
   * still land there; kept for one lease (PROTOCOL.md, section 14a) */
  w->stale_until_ns = 0;
  if (congruent && pending > old_wp) {
    w->stale_pos = w->session_base - (pending - old_wp);
    w->stale_until_ns = ivshm_now_ns () + w->lease_timeout_ns;
  }
  w->write_pos = w->published = w->tail = w->tail_published =
      w->retain_from = w->reserve_pos = w->session_base;
  w->reserve_off = w->session_base % w->ring_size;

  /* 2. The slots. */
  if (writer_format_slots (w, pending, congruent) > 0 && !w->had_reader) {
    w->had_reader = true;
    w->producer_flags |= IVSHM_PRODUCER_FLAG_HAD_READER;
  }
  IVSHM_TEST_POINT ("producer-slots-done", w);

  /* 3. Sticky area, identity, positions, then ACTIVE and magic. */
  if (!ivshm_writer_owns (w))
    return false;
  ivshm_writer_clear_sticky (w);
  writer_write_identity (w, size, hb_ns);
  if (!ivshm_writer_cas_owned (w, &hdr->session_id, old_session, w->session) ||
      !ivshm_writer_cas_owned (w, &hdr->write_pos, old_wp, w->session_base) ||
      !ivshm_writer_cas_owned (w, &hdr->tail, old_tail, w->session_base))
    return false;
  atomic_store_explicit (&hdr->producer_flags, w->producer_flags, RLX);
  atomic_store_explicit (&hdr->writer_sleeping, 0, RLX);
  /* readers_sleeping is a bitmask that its readers own: left alone */
  if (!ivshm_writer_owns (w))
    return false;
  atomic_store_explicit (&hdr->producer_state, IVSHM_PRODUCER_ACTIVE, SEQ);
  atomic_store_explicit (&hdr->magic, IVSHM_MAGIC, SEQ);
  return true;
}

IvshmStatus
ivshm_writer_new (void *base, uint64_t size, const IvshmWriterConfig * cfg,
    IvshmWriter ** out, IvshmError * err)
{
  IvshmWriter *w;
  IvshmStatus st;
  uint64_t hb_ns;

  *out = NULL;
  if (!base || size < IVSHM_REGION_MIN)
    return ivshm_error_set (err, IVSHM_ERR_TOO_SMALL, 0,
        "the region has %llu bytes; the ring needs at least %llu",
        (unsigned long long) size, (unsigned long long) IVSHM_REGION_MIN);

  w = calloc (1, sizeof *w);
  if (!w)
    return ivshm_error_set (err, IVSHM_ERR_NO_MEMORY, ENOMEM, "out of memory");
  w->token = ivshm_random_u64 ();
  st = writer_claim (ivshm_header_of (base), w->token, cfg, err);
  if (st != IVSHM_OK) {
    free (w);
    return st;
  }

  w->base = base;
  w->hdr = ivshm_header_of (base);
  w->sticky = ivshm_sticky_of (base);
  w->ring = (uint8_t *) base + IVSHM_RING_OFFSET;
  w->ring_size = ivshm_ring_size_for_region (size);
  atomic_flag_clear (&w->lock);
  atomic_flag_clear (&w->clock_busy);
  w->lease_timeout_ns = cfg && cfg->lease_timeout_ns ?
      cfg->lease_timeout_ns : DEFAULT_LEASE_TIMEOUT_NS;
  hb_ns = cfg && cfg->heartbeat_period_ns ?
      cfg->heartbeat_period_ns : DEFAULT_HEARTBEAT_NS;
  w->kernel_id = ivshm_kernel_id ();
  w->leaky = cfg && cfg->leaky;
  w->hot_window = cfg && cfg->hot_window ?
      cfg->hot_window : IVSHM_DEFAULT_HOT_WINDOW;
  w->early_margin = cfg ? cfg->early_margin : 0;
  if (w->leaky) {
    /* a leaky producer keeps nothing for a first reader: everybody joins
     * at the live edge */
    w->had_reader = true;
    w->producer_flags = IVSHM_PRODUCER_FLAG_LEAKY |
        IVSHM_PRODUCER_FLAG_HAD_READER;
  }
  if (!writer_format (w, size, hb_ns)) {
    free (w);
    return ivshm_error_set (err, IVSHM_ERR_TAKEN_OVER, 0,
        "another producer took this region over while this one formatted "
        "it (was this process stopped for longer than the takeover wait?)");
  }
  *out = w;
  return IVSHM_OK;
}

void
ivshm_writer_close (IvshmWriter * w)
{
  uint64_t token = w->token;

  /* Only close the session if it is still ours: a producer that took over
   * after we were presumed dead owns the header now. */
  if (!ivshm_writer_owns (w))
    return;
  atomic_store_explicit (&w->hdr->producer_state, IVSHM_PRODUCER_CLOSED, SEQ);
  atomic_compare_exchange_strong_explicit (&w->hdr->producer_owner, &token, 0,
      SEQ, RLX);
  /* closed: this writer writes nothing more */
  atomic_store_explicit (&w->stopped, true, RLX);
}

void
ivshm_writer_free (IvshmWriter * w)
{
  unsigned i;

  if (!w)
    return;
  ivshm_writer_close (w);
  for (i = 0; i < STICKY_N; i++)
    free (w->sticky_rec[i]);
  free (w);
}

void
ivshm_writer_heartbeat (IvshmWriter * w)
{
  /* a stale producer's late increment only adds one to the new owner's
   * counter, which moves anyway */
  if (ivshm_writer_owns (w))
    atomic_fetch_add_explicit (&w->hdr->producer_heartbeat, 1, REL);
}

void
ivshm_writer_tick (IvshmWriter * w)
{
  ivshm_writer_heartbeat (w);
  if (!ivshm_writer_owns (w) || !ivshm_writer_trylock (w))
    return;
  ivshm_writer_reap_expired (w, ivshm_now_ns ());
  ivshm_writer_unlock (w);
}

bool
ivshm_writer_taken_over (IvshmWriter * w)
{
  ivshm_writer_owns (w);
  return atomic_load_explicit (&w->taken_over, RLX);
}

uint64_t
ivshm_writer_session (const IvshmWriter * w)
{
  return w->session;
}

uint64_t
ivshm_writer_position (const IvshmWriter * w)
{
  return w->write_pos;
}

uint64_t
ivshm_writer_tail (const IvshmWriter * w)
{
  return w->tail;
}

void
ivshm_writer_get_stats (IvshmWriter * w, IvshmWriterStats * stats)
{
  ivshm_writer_lock (w);
  *stats = w->stats;
  ivshm_writer_unlock (w);
}

/* writer_sleeping holds the low 32 bits of our token (never 0): a stale
 * producer's clear, a CAS from its own mark, cannot clear a new owner's. */
static uint32_t
writer_sleep_mark (IvshmWriter * w)
{
  uint32_t mark = (uint32_t) w->token;

  return mark ? mark : 1;
}

static void
writer_sleep_done (IvshmWriter * w)
{
  uint32_t mark = writer_sleep_mark (w);

  atomic_compare_exchange_strong_explicit (&w->hdr->writer_sleeping, &mark,
      0, SEQ, RLX);
}

bool
ivshm_writer_wait_prepare (IvshmWriter * w, uint32_t * token)
{
  uint64_t tail = w->tail;
  unsigned holders = w->n_holders;

  if (!ivshm_writer_owns (w))
    return false;
  *token = atomic_load_explicit (&w->hdr->space_futex, SEQ);
  atomic_store_explicit (&w->hdr->writer_sleeping, writer_sleep_mark (w), SEQ);
  ivshm_writer_reclaim (w, false);
  /* (a holder of the previous session that let go wakes nobody) */
  if (w->tail != tail || w->n_holders != holders) {
    writer_sleep_done (w);
    return false;
  }
  return true;
}

bool
ivshm_writer_wait_finish (IvshmWriter * w, IvshmWaiter * waiter,
    uint32_t token, uint64_t timeout_ns)
{
  bool ok = ivshm_wait_on (waiter, &w->hdr->space_futex, token, timeout_ns);

  writer_sleep_done (w);
  return ok;
}

bool
ivshm_writer_wait (IvshmWriter * w, IvshmWaiter * waiter, uint64_t timeout_ns)
{
  uint32_t token;

  if (!ivshm_writer_wait_prepare (w, &token))
    return !ivshm_waiter_is_flushing (waiter);
  return ivshm_writer_wait_finish (w, waiter, token, timeout_ns);
}

bool
ivshm_writer_readers_local (const IvshmWriter * w)
{
  return w->readers_local;
}
