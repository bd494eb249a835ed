/* gst-ivshmem: a reader attaching to a session, in named steps
 * SPDX-License-Identifier: MIT
 *
 * ivshm_reader_new():
 *   1. reader_find_session    validate the header, find an ACTIVE session
 *   2. reader_claim           take a slot (reaping expired ones if full)
 *   3. reader_register        CAS(read_pos, tag, tail | tag), ACTIVE
 *                             (Dekker with the tail)
 *   4. reader_choose_start    first reader: the session's start; later:
 *                             the sticky records, then the next record
 *   5. reader_attach_session  steps 3 and 4, then checks that the session
 *                             did not change meanwhile
 * or, without a producer and with wait_for_producer, a WAITING slot
 * (reader_wait_in_slot) that the next session adopts (the producer stores
 * its session id in the slot; the reader then registers the session's
 * first position itself and goes ACTIVE: reader_bind_adopted) or, if its
 * format did not adopt the slot, that the reader leaves for CLAIMED and
 * attaches as a later reader (ivshm_reader_attach_waiting).
 */
#include "ivshmem-ring-private.h"
#include "ivshmem-clock.h"

#include "ivshmem-os.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static IvshmStatus
reader_validate_header (IvshmHeader * hdr, uint64_t size, uint64_t * ring_size,
    IvshmError * err)
{
  uint64_t magic, rsize, roff, ringsz;
  uint32_t major;

  magic = atomic_load_explicit (&hdr->magic, ACQ);
  if (magic == 0)
    return ivshm_error_set (err, IVSHM_ERR_NO_PRODUCER, 0,
        "no producer has initialised this region yet");
  if (magic != IVSHM_MAGIC)
    return ivshm_error_set (err, IVSHM_ERR_BAD_MAGIC, 0,
        "the region does not start with the gst-ivshmem magic "
        "(found 0x%016llx); is another program using it?",
        (unsigned long long) magic);
  major = atomic_load_explicit (&hdr->version_major, RLX);
  if (major != IVSHM_VERSION_MAJOR)
    return ivshm_error_set (err, IVSHM_ERR_VERSION, 0,
        "the producer speaks protocol version %u, this reader version %u; "
        "use the same gst-ivshmem major version on both sides",
        major, IVSHM_VERSION_MAJOR);

  rsize = atomic_load_explicit (&hdr->region_size, RLX);
  roff = atomic_load_explicit (&hdr->ring_offset, RLX);
  ringsz = atomic_load_explicit (&hdr->ring_size, RLX);
  if (rsize > size)
    return ivshm_error_set (err, IVSHM_ERR_TOO_SMALL, 0,
        "the producer mapped %llu bytes but this side sees only %llu; both "
        "sides must map the same region",
        (unsigned long long) rsize, (unsigned long long) size);
  if (rsize < IVSHM_REGION_MIN || roff != IVSHM_RING_OFFSET ||
      ringsz != ivshm_ring_size_for_region (rsize) ||
      atomic_load_explicit (&hdr->slot_offset, RLX) != IVSHM_SLOT_OFFSET ||
      atomic_load_explicit (&hdr->slot_count, RLX) != IVSHM_MAX_READERS ||
      atomic_load_explicit (&hdr->slot_size, RLX) != IVSHM_SLOT_SIZE ||
      atomic_load_explicit (&hdr->sticky_offset, RLX) != IVSHM_STICKY_OFFSET ||
      atomic_load_explicit (&hdr->sticky_size, RLX) != IVSHM_STICKY_SIZE ||
      atomic_load_explicit (&hdr->record_align, RLX) != IVSHM_RECORD_ALIGN)
    return ivshm_error_set (err, IVSHM_ERR_CORRUPT, 0,
        "the region header describes an impossible layout (region %llu, "
        "ring at %llu of %llu bytes)", (unsigned long long) rsize,
        (unsigned long long) roff, (unsigned long long) ringsz);
  *ring_size = ringsz;
  return IVSHM_OK;
}

/* What the reader keeps of a session it attaches to. Under the lock: the
 * statistics getters of other threads read ring_size and waiting. */
static void
reader_set_session (IvshmReader * r, uint64_t ring_size, uint64_t session)
{
  uint64_t period_us = atomic_load_explicit (&r->hdr->heartbeat_period_us,
      RLX);

  ivshm_reader_lock (r);
  r->ring_size = ring_size;
  r->session = session;
  r->waiting = false;
  ivshm_reader_unlock (r);
  if (r->cfg.producer_timeout_ns)
    r->producer_timeout_ns = r->cfg.producer_timeout_ns;
  else if (period_us > MAX_PRODUCER_TIMEOUT_NS / 10000)
    r->producer_timeout_ns = MAX_PRODUCER_TIMEOUT_NS;
  else if (period_us * 10000 < MIN_PRODUCER_TIMEOUT_NS)
    r->producer_timeout_ns = MIN_PRODUCER_TIMEOUT_NS;
  else
    r->producer_timeout_ns = period_us * 10000;
  r->last_hb = atomic_load_explicit (&r->hdr->producer_heartbeat, ACQ);
  r->last_hb_change_ns = ivshm_now_ns ();
  r->stalled = false;
  r->producer_local = ivshm_kernel_id () != 0 &&
      atomic_load_explicit (&r->hdr->producer_kernel_id, RLX) ==
      ivshm_kernel_id ();
}

/* Step 1: a valid header and an ACTIVE session (or a CLOSED one, with
 * attach_closed) that is not the one to skip. */
static IvshmStatus
reader_find_session (IvshmReader * r, IvshmError * err)
{
  uint64_t ring_size = 0, session;
  uint32_t state;
  IvshmStatus st;

  st = reader_validate_header (r->hdr, r->size, &ring_size, err);
  if (st != IVSHM_OK)
    return st;
  session = atomic_load_explicit (&r->hdr->session_id, ACQ);
  state = atomic_load_explicit (&r->hdr->producer_state, ACQ);
  if (state != IVSHM_PRODUCER_ACTIVE &&
      !(state == IVSHM_PRODUCER_CLOSED && r->cfg.attach_closed))
    return ivshm_error_set (err, IVSHM_ERR_NO_PRODUCER, 0,
        "the region's last producer has stopped; waiting for a new one");
  if (session == r->cfg.skip_session && session != 0)
    return ivshm_error_set (err, IVSHM_ERR_NO_PRODUCER, 0,
        "the region still holds the session this reader left; waiting for "
        "a new one");
  reader_set_session (r, ring_size, session);
  return IVSHM_OK;
}

/* Step 2. */
static IvshmStatus
reader_claim (IvshmReader * r, uint32_t to, IvshmError * err)
{
  uint64_t lease = r->cfg.lease_timeout_ns ? r->cfg.lease_timeout_ns :
      DEFAULT_LEASE_TIMEOUT_NS;
  unsigned live = 0;
  uint64_t tag = 0;
  int i = ivshm_slot_claim_reaping (r->base, r->token, to, lease, &live,
      &tag);

  if (i < 0)
    return ivshm_error_set (err, IVSHM_ERR_NO_SLOT, 0,
        "all %u reader slots of the region are taken (%u by readers whose "
        "heartbeat moves); look with ivshmem-info", IVSHM_MAX_READERS, live);
  ivshm_reader_lock (r);
  r->slot = ivshm_slot_of (r->base, (unsigned) i);
  r->slot_index = (unsigned) i;
  r->stats.slot = r->slot_index;
  r->lost = false;
  r->tag = tag;
  r->published = 0;             /* read_pos = tag: no position yet */
  ivshm_reader_unlock (r);
  atomic_store_explicit (&r->slot->pid, ivshm_process_id (), RLX);
  atomic_store_explicit (&r->slot->kernel_id, ivshm_kernel_id (), RLX);
  atomic_store_explicit (&r->slot->records_read, 0, RLX);
  return IVSHM_OK;
}

/* Step 3: registers a position no later than the producer's tail, then
 * goes ACTIVE from `from` (CLAIMED, or WAITING once adopted) and makes
 * sure the tail did not pass it meanwhile (the Dekker pair with
 * ivshm_writer_reclaim). From then on the producer keeps everything from
 * *t. *moved: the tail moved while we registered. */
static IvshmStatus
reader_register (IvshmReader * r, uint32_t from, uint64_t * t, bool *moved,
    IvshmError * err)
{
  uint64_t tail;
  bool ok;
  int tries;

  *moved = false;
  IVSHM_TEST_POINT ("reader-register", r);
  ivshm_reader_lock (r);
  ok = ivshm_reader_owns_locked (r) && ivshm_reader_store_pos_locked (r, *t);
  ivshm_reader_unlock (r);
  if (!ok)
    return ivshm_error_set (err, IVSHM_ERR_EVICTED, 0,
        "this reader's slot was reaped while it attached (did it "
        "heartbeat?)");
  if (!atomic_compare_exchange_strong_explicit (&r->slot->state, &from,
          IVSHM_SLOT_ACTIVE, SEQ, RLX))
    return ivshm_error_set (err, IVSHM_AGAIN, 0,
        "the producer restarted while this reader attached; try again");
  for (tries = 0;; tries++) {
    tail = atomic_load_explicit (&r->hdr->tail, SEQ);
    if (tail <= *t)
      break;
    if (tries > 1000)
      return ivshm_error_set (err, IVSHM_ERR_CORRUPT, 0,
          "the producer's tail keeps moving past this reader");
    *moved = true;
    *t = tail;
    ivshm_reader_advance (r, tail);
  }
  if (*t % IVSHM_RECORD_ALIGN)
    /* every position a reader reads from starts a record; the ring's
     * offsets are taken from it */
    return ivshm_error_set (err, IVSHM_ERR_CORRUPT, 0,
        "the producer's tail %llu is not a record boundary",
        (unsigned long long) *t);
  return IVSHM_OK;
}

/* Step 4, later reader: replay the sticky records, then start with the
 * next record after the later of write_pos and the records they cover. */
static IvshmStatus
reader_start_mid_stream (IvshmReader * r, uint64_t t, IvshmError * err)
{
  uint64_t w_pos = atomic_load_explicit (&r->hdr->write_pos, ACQ), from;
  IvshmStatus st = ivshm_sticky_snapshot (r->base, 0, 0, r->snap);

  if (st == IVSHM_AGAIN)
    return ivshm_error_set (err, st, 0,
        "the producer is rewriting its sticky records; try again");
  if (st != IVSHM_OK)
    return ivshm_error_set (err, st, 0, "the sticky area is unusable: %s",
        r->snap->reason);
  /* replayed by next(), which checks the whole copy first */
  IVSHM_TEST_POINT ("reader-start", r);
  ivshm_sticky_iter_init (&r->replay, r->snap);
  r->replaying = true;
  r->replay_checked = false;
  r->replay_have = false;
  from = r->snap->applies_from;
  if (from > w_pos) {
    /* the producer is between updating the sticky area and publishing the
     * record it describes; wait for it */
    if (from > atomic_load_explicit (&r->hdr->write_pos, ACQ))
      return ivshm_error_set (err, IVSHM_AGAIN, 0,
          "the producer is publishing; try again");
    w_pos = from;
  }
  if (w_pos < t || w_pos - t > r->ring_size || w_pos % IVSHM_RECORD_ALIGN)
    return ivshm_error_set (err, IVSHM_ERR_CORRUPT, 0,
        "the producer's write position %llu is impossible (tail %llu)",
        (unsigned long long) w_pos, (unsigned long long) t);
  ivshm_reader_lock (r);
  ivshm_reader_set_pos (r, w_pos);
  r->stats.joined_mid_stream = true;
  ivshm_reader_unlock (r);
  return IVSHM_OK;
}

/* Another reader of this session is already active: we are not the first
 * (the producer may not have noticed it yet, as it looks only when it
 * needs space). */
static bool
reader_has_company (IvshmReader * r)
{
  unsigned i;

  for (i = 0; i < IVSHM_MAX_READERS; i++) {
    IvshmReaderSlot *s = ivshm_slot_of (r->base, i);
    if (s != r->slot &&
        atomic_load_explicit (&s->state, ACQ) == IVSHM_SLOT_ACTIVE &&
        atomic_load_explicit (&s->session_id, RLX) == r->session)
      return true;
  }
  return false;
}

/* Steps 3 to 5 on a CLAIMED slot. First reader: the tail was loaded before
 * the flags (HAD_READER is never cleared within a session), so a clear
 * flag means the producer had kept everything from that tail on, and the
 * registration kept it from then on unless the tail moved. */
static IvshmStatus
reader_attach_session (IvshmReader * r, IvshmError * err)
{
  uint64_t t;
  uint32_t flags;
  bool company, moved;
  IvshmStatus st;

  atomic_store_explicit (&r->slot->session_id, r->session, SEQ);
  t = atomic_load_explicit (&r->hdr->tail, SEQ);
  flags = atomic_load_explicit (&r->hdr->producer_flags, SEQ);
  company = reader_has_company (r);
  st = reader_register (r, IVSHM_SLOT_CLAIMED, &t, &moved, err);
  if (st != IVSHM_OK)
    return st;
  ivshm_reader_lock (r);
  ivshm_reader_set_pos (r, t);
  ivshm_reader_unlock (r);
  if ((flags & IVSHM_PRODUCER_FLAG_HAD_READER) || company || moved ||
      (r->cfg.live_edge && ivshm_reader_session_is_old (r,
              r->cfg.live_edge_grace_ns ? r->cfg.live_edge_grace_ns :
              IVSHM_LIVE_EDGE_GRACE_NS))) {
    st = reader_start_mid_stream (r, t, err);
    if (st != IVSHM_OK)
      return st;
  }
  ivshm_reader_advance (r, r->pos);

  /* the session must not have changed under us */
  if (atomic_load_explicit (&r->hdr->magic, SEQ) != IVSHM_MAGIC ||
      atomic_load_explicit (&r->hdr->session_id, SEQ) != r->session)
    return ivshm_error_set (err, IVSHM_AGAIN, 0,
        "the producer restarted while this reader attached; try again");
  /* producer liveness is measured from here: claiming a slot may have
   * taken a lease */
  r->last_hb = atomic_load_explicit (&r->hdr->producer_heartbeat, ACQ);
  r->last_hb_change_ns = ivshm_now_ns ();
  return IVSHM_OK;
}

/* No producer: a WAITING slot, which the next session adopts. */
static IvshmStatus
reader_wait_in_slot (IvshmReader * r, IvshmError * err)
{
  IvshmStatus st = reader_claim (r, IVSHM_SLOT_CLAIMED, err);

  if (st != IVSHM_OK)
    return st;
  ivshm_reader_lock (r);
  r->waiting = true;
  r->session = 0;
  ivshm_reader_unlock (r);
  if (!ivshm_slot_enter_waiting (r->slot, IVSHM_SLOT_CLAIMED, true))
    /* a producer formatting right now evicted our CLAIMED slot */
    return ivshm_error_set (err, IVSHM_AGAIN, 0,
        "a producer started while this reader attached; try again");
  return IVSHM_OK;
}

/* Back to waiting after a failed attach, from `state`; the slot keeps
 * the session id a format adopted it for, or goes back to 0. */
static IvshmStatus
reader_wait_again (IvshmReader * r, uint32_t state, bool adopted,
    IvshmStatus st, IvshmError * err)
{
  ivshm_reader_lock (r);
  r->waiting = true;
  r->session = 0;
  ivshm_reader_unlock (r);
  if (!ivshm_slot_enter_waiting (r->slot, state, !adopted))
    return ivshm_error_set (err, IVSHM_ERR_EVICTED, 0,
        "a producer restarted while this reader attached");
  return st == IVSHM_ERR_NO_PRODUCER ? IVSHM_AGAIN : st;
}

/* The format of `session` adopted our WAITING slot (its id is in the
 * slot): we register the tail, which is the session's first position
 * (the producer keeps it for an adopted slot), and go ACTIVE. AGAIN if
 * a newer format adopted the slot meanwhile: the next call looks again. */
static IvshmStatus
reader_bind_adopted (IvshmReader * r, uint64_t session, IvshmError * err)
{
  uint64_t ring_size = 0, t;
  bool moved;
  IvshmStatus st;

  st = reader_validate_header (r->hdr, r->size, &ring_size, err);
  if (st != IVSHM_OK)
    return st == IVSHM_ERR_NO_PRODUCER ? IVSHM_AGAIN : st;
  reader_set_session (r, ring_size, session);
  t = atomic_load_explicit (&r->hdr->tail, SEQ);
  st = reader_register (r, IVSHM_SLOT_WAITING, &t, &moved, err);
  if (st == IVSHM_ERR_EVICTED)
    return st;
  if (st == IVSHM_OK && (atomic_load_explicit (&r->slot->session_id,
              SEQ) != session ||
          atomic_load_explicit (&r->hdr->session_id, SEQ) != session))
    st = IVSHM_AGAIN;           /* adopted again, by a newer session */
  if (st != IVSHM_OK)
    return reader_wait_again (r, IVSHM_SLOT_ACTIVE, true, IVSHM_AGAIN, err);
  ivshm_reader_lock (r);
  ivshm_reader_set_pos (r, t);
  ivshm_reader_unlock (r);
  /* the producer reclaimed past the session's start: not the whole
   * stream any more, so the sticky records first */
  if (moved && (st = reader_start_mid_stream (r, t, err)) != IVSHM_OK)
    return reader_wait_again (r, IVSHM_SLOT_ACTIVE, true, st, err);
  ivshm_reader_advance (r, r->pos);
  return IVSHM_OK;
}

/* next() while WAITING. */
IvshmStatus
ivshm_reader_attach_waiting (IvshmReader * r, IvshmError * err)
{
  uint32_t waiting = IVSHM_SLOT_WAITING;
  uint64_t session;
  IvshmStatus st;

  ivshm_reader_lock (r);
  st = ivshm_reader_owns_locked (r) ? IVSHM_OK : IVSHM_ERR_EVICTED;
  ivshm_reader_unlock (r);
  if (st != IVSHM_OK)
    return ivshm_error_set (err, st, 0, "this reader's slot was reaped "
        "while it waited for a producer (did it heartbeat?)");
  /* magic first, then the slot: a format publishes magic after its slot
   * scan, so a slot that does not name the session then was not adopted */
  if (atomic_load_explicit (&r->hdr->magic, SEQ) != IVSHM_MAGIC ||
      atomic_load_explicit (&r->hdr->producer_state, SEQ) !=
      IVSHM_PRODUCER_ACTIVE)
    return IVSHM_AGAIN;
  session = atomic_load_explicit (&r->hdr->session_id, SEQ);
  if (session == r->cfg.skip_session)
    return IVSHM_AGAIN;
  if (session != 0 &&
      atomic_load_explicit (&r->slot->session_id, SEQ) == session)
    return reader_bind_adopted (r, session, err);
  /* not adopted: a later reader (WAITING -> CLAIMED, by CAS) */
  if (!atomic_compare_exchange_strong_explicit (&r->slot->state, &waiting,
          IVSHM_SLOT_CLAIMED, SEQ, RLX))
    return IVSHM_AGAIN;         /* next call finds out why */
  st = reader_find_session (r, err);
  if (st == IVSHM_OK)
    st = reader_attach_session (r, err);
  if (st != IVSHM_OK && st != IVSHM_ERR_EVICTED)
    return reader_wait_again (r, atomic_load_explicit (&r->slot->state,
            SEQ), false, st, err);
  return st;
}

static IvshmReader *
reader_alloc (void *base, uint64_t size, const IvshmReaderConfig * cfg)
{
  IvshmReader *r = calloc (1, sizeof *r);

  if (r)
    r->snap_mem = malloc (sizeof (IvshmStickySnapshot) + IVSHM_RECORD_ALIGN);
  if (!r || !r->snap_mem) {
    free (r);
    return NULL;
  }
  /* the snapshot wants 64-byte alignment (its records are aligned as ring
   * ones are), which malloc does not promise; portably: mingw has no
   * aligned_alloc */
  r->snap = (IvshmStickySnapshot *) (((uintptr_t) r->snap_mem +
          IVSHM_RECORD_ALIGN - 1) & ~(uintptr_t) (IVSHM_RECORD_ALIGN - 1));
  r->base = base;
  r->size = size;
  r->hdr = ivshm_header_of (base);
  r->ring = (uint8_t *) base + IVSHM_RING_OFFSET;
  r->ring_size = ivshm_ring_size_for_region (size);
  if (cfg)
    r->cfg = *cfg;
  r->token = ivshm_random_u64 ();
  atomic_flag_clear (&r->lock);
  return r;
}

IvshmStatus
ivshm_reader_new (void *base, uint64_t size, const IvshmReaderConfig * cfg,
    IvshmReader ** out, IvshmError * err)
{
  IvshmReader *r;
  IvshmStatus st;

  *out = NULL;
  if (!base || size < IVSHM_REGION_MIN)
    return ivshm_error_set (err, IVSHM_ERR_TOO_SMALL, 0,
        "the region has %llu bytes; the ring needs at least %llu",
        (unsigned long long) size, (unsigned long long) IVSHM_REGION_MIN);
  r = reader_alloc (base, size, cfg);
  if (!r)
    return ivshm_error_set (err, IVSHM_ERR_NO_MEMORY, ENOMEM, "out of memory");

  st = reader_find_session (r, err);
  if (st == IVSHM_ERR_NO_PRODUCER && r->cfg.wait_for_producer)
    st = reader_wait_in_slot (r, err);
  else if (st == IVSHM_OK) {
    st = reader_claim (r, IVSHM_SLOT_CLAIMED, err);
    if (st == IVSHM_OK)
      st = reader_attach_session (r, err);
  }
  if (st != IVSHM_OK) {
    ivshm_reader_free (r);
    return st;
  }
  *out = r;
  return IVSHM_OK;
}

void
ivshm_reader_detach (IvshmReader * r)
{
  ivshm_reader_lock (r);
  /* also from EVICTED: the slot is free at once rather than after a
   * lease (ivshm_slot_let_go checks that it is still ours) */
  if (r->slot)
    ivshm_slot_let_go (r->hdr, r->slot, r->token);
  r->slot = NULL;
  ivshm_reader_unlock (r);
}

void
ivshm_reader_free (IvshmReader * r)
{
  if (!r)
    return;
  ivshm_reader_detach (r);
  free (r->snap_mem);
  free (r);
}
