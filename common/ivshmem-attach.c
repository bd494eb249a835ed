/* gst-ivshmem: a reader attaching to a session, in named steps
 * SPDX-License-Identifier: MIT
 *
 * ivshm_reader_new():
 *   1. reader_find_session    validate the header, find an ACTIVE session
 *   2. reader_claim           take a slot (reaping expired ones if full)
 *   3. reader_register        read_pos = tail, ACTIVE (Dekker with the tail)
 *   4. reader_choose_start    first reader: the session's start; later:
 *                             the sticky records, then the next record
 *   5. reader_attach_session  steps 3 and 4, then checks that the session
 *                             did not change meanwhile
 * or, without a producer and with wait_for_producer, a WAITING slot
 * (reader_wait_in_slot) that the next session adopts
 * (ivshm_reader_bind_adopted) or, if its format ran before the slot was
 * WAITING, that the reader attaches itself (ivshm_reader_attach_waiting).
 */
#include "ivshmem-ring-private.h"

#include "ivshmem-os.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static IvshmStatus
reader_validate_header (IvshmHeader * hdr, uint64_t size, uint64_t *ring_size,
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
  int i = ivshm_slot_claim_reaping (r->base, r->token, to, lease, &live);

  if (i < 0)
    return ivshm_error_set (err, IVSHM_ERR_NO_SLOT, 0,
        "all %u reader slots of the region are taken (%u by readers whose "
        "heartbeat moves); look with ivshmem-info", IVSHM_MAX_READERS, live);
  ivshm_reader_lock (r);
  r->slot = ivshm_slot_of (r->base, (unsigned) i);
  r->slot_index = (unsigned) i;
  r->stats.slot = r->slot_index;
  r->lost = false;
  ivshm_reader_unlock (r);
  atomic_store_explicit (&r->slot->pid, ivshm_process_id (), RLX);
  atomic_store_explicit (&r->slot->kernel_id, ivshm_kernel_id (), RLX);
  atomic_store_explicit (&r->slot->records_read, 0, RLX);
  return IVSHM_OK;
}

/* Step 3: registers a position no later than the producer's tail, then
 * makes sure the tail did not pass it meanwhile (the Dekker pair with
 * ivshm_writer_reclaim). From then on the producer keeps everything from
 * *t. *moved: the tail moved while we registered. */
static IvshmStatus
reader_register (IvshmReader * r, uint64_t *t, bool *moved, IvshmError * err)
{
  uint32_t claimed = IVSHM_SLOT_CLAIMED;
  uint64_t tail;
  int tries;

  *moved = false;
  atomic_store_explicit (&r->slot->read_pos, *t, SEQ);
  r->published = *t;
  if (!atomic_compare_exchange_strong_explicit (&r->slot->state, &claimed,
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
  st = reader_register (r, &t, &moved, err);
  if (st != IVSHM_OK)
    return st;
  ivshm_reader_lock (r);
  ivshm_reader_set_pos (r, t);
  ivshm_reader_unlock (r);
  if ((flags & IVSHM_PRODUCER_FLAG_HAD_READER) || company || moved) {
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
  r->published = IVSHM_POS_POISON;
  ivshm_reader_unlock (r);
  if (!ivshm_slot_enter_waiting (r->slot))
    /* a producer formatting right now evicted our CLAIMED slot */
    return ivshm_error_set (err, IVSHM_AGAIN, 0,
        "a producer started while this reader attached; try again");
  return IVSHM_OK;
}

/* The slot went ACTIVE while we waited: a producer adopted it at its
 * session's first position. AGAIN until that session's magic is out. */
IvshmStatus
ivshm_reader_bind_adopted (IvshmReader * r, IvshmError * err)
{
  uint64_t ring_size = 0, session, pos;
  IvshmStatus st;

  st = reader_validate_header (r->hdr, r->size, &ring_size, err);
  if (st == IVSHM_ERR_NO_PRODUCER)
    return IVSHM_AGAIN;
  if (st != IVSHM_OK)
    return st;
  session = atomic_load_explicit (&r->slot->session_id, SEQ);
  if (session != atomic_load_explicit (&r->hdr->session_id, SEQ))
    return IVSHM_AGAIN;         /* a newer format is evicting it */
  pos = atomic_load_explicit (&r->slot->read_pos, SEQ);
  if (pos % IVSHM_RECORD_ALIGN)
    return ivshm_error_set (err, IVSHM_ERR_CORRUPT, 0,
        "the producer adopted this reader at %llu, not a record boundary",
        (unsigned long long) pos);
  reader_set_session (r, ring_size, session);
  ivshm_reader_lock (r);
  r->published = pos;
  r->pos = pos;
  r->off = pos % ring_size;
  ivshm_reader_unlock (r);
  return IVSHM_OK;
}

/* next() while WAITING. */
IvshmStatus
ivshm_reader_attach_waiting (IvshmReader * r, IvshmError * err)
{
  uint32_t state, waiting = IVSHM_SLOT_WAITING;
  IvshmStatus st;

  ivshm_reader_lock (r);
  st = ivshm_reader_owns_locked (r) ? IVSHM_OK : IVSHM_ERR_EVICTED;
  ivshm_reader_unlock (r);
  if (st != IVSHM_OK)
    return ivshm_error_set (err, st, 0, "this reader's slot was reaped "
        "while it waited for a producer (did it heartbeat?)");
  state = atomic_load_explicit (&r->slot->state, SEQ);
  if (state == IVSHM_SLOT_ACTIVE)
    return ivshm_reader_bind_adopted (r, err);
  /* magic first, then the slot: a format publishes magic after its slot
   * scan, so a slot still WAITING after a published magic was missed */
  if (atomic_load_explicit (&r->hdr->magic, SEQ) != IVSHM_MAGIC ||
      atomic_load_explicit (&r->hdr->producer_state, SEQ) !=
      IVSHM_PRODUCER_ACTIVE)
    return IVSHM_AGAIN;
  if (atomic_load_explicit (&r->hdr->session_id, SEQ) == r->cfg.skip_session)
    return IVSHM_AGAIN;
  if (!atomic_compare_exchange_strong_explicit (&r->slot->state, &waiting,
          IVSHM_SLOT_CLAIMED, SEQ, RLX))
    return IVSHM_AGAIN;         /* adopted meanwhile: next call binds */
  st = reader_find_session (r, err);
  if (st == IVSHM_OK)
    st = reader_attach_session (r, err);
  if (st != IVSHM_OK) {
    /* back to waiting, for the next try */
    ivshm_reader_lock (r);
    r->waiting = true;
    r->session = 0;
    ivshm_reader_unlock (r);
    if (!ivshm_slot_enter_waiting (r->slot))
      return ivshm_error_set (err, IVSHM_ERR_EVICTED, 0,
          "a producer restarted while this reader attached");
    ivshm_reader_lock (r);
    r->published = IVSHM_POS_POISON;
    ivshm_reader_unlock (r);
    return st == IVSHM_ERR_NO_PRODUCER ? IVSHM_AGAIN : st;
  }
  return IVSHM_OK;
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
  r->published = IVSHM_POS_POISON;
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
    ivshm_slot_let_go (r->slot, r->token);
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
