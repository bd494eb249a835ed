/* gst-ivshmem: a reader reading: next, release, liveness, waiting
 * SPDX-License-Identifier: MIT
 *
 * Every record is validated before it is handed out (PROTOCOL.md, "Rules
 * for untrusted memory"); one next() call skips at most MAX_SKIPS_PER_CALL
 * SKIP/PAD records. A producer whose heartbeat stops is either given up
 * (PRODUCER_GONE) or, with follow_stall, reported once
 * (PRODUCER_STALLED) and followed again when its heartbeat moves.
 */
#include "ivshmem-ring-private.h"

#include "ivshmem-os.h"

#include <string.h>

static bool
reader_owns (IvshmReader * r)
{
  bool owns;

  ivshm_reader_lock (r);
  owns = ivshm_reader_owns_locked (r) &&
      atomic_load_explicit (&r->slot->state, ACQ) == IVSHM_SLOT_ACTIVE;
  ivshm_reader_unlock (r);
  return owns;
}

static void
reader_count_invalid (IvshmReader * r)
{
  ivshm_reader_lock (r);
  r->stats.invalid++;
  ivshm_reader_unlock (r);
}

/* Why did the ring stop making sense? A new session first (its format
 * evicts our slot too, but "the producer restarted" says more), then an
 * eviction, then a foreign magic, else corruption. */
IvshmStatus
ivshm_reader_diagnose (IvshmReader * r, IvshmError * err, const char *what,
    unsigned long long a, unsigned long long b)
{
  uint64_t magic = atomic_load_explicit (&r->hdr->magic, ACQ);

  if (magic == 0 || (magic == IVSHM_MAGIC &&
          atomic_load_explicit (&r->hdr->session_id, ACQ) != r->session))
    return ivshm_error_set (err, IVSHM_ERR_SESSION_CHANGED, 0,
        "the producer restarted (new session)");
  if (!reader_owns (r))
    return ivshm_error_set (err, IVSHM_ERR_EVICTED, 0,
        "the producer dropped this reader (its lease expired or its slot "
        "held invalid values)");
  if (magic != IVSHM_MAGIC)
    return ivshm_error_set (err, IVSHM_ERR_CORRUPT, 0,
        "the region's magic was overwritten (0x%016llx)",
        (unsigned long long) magic);
  reader_count_invalid (r);
  return ivshm_error_set (err, IVSHM_ERR_CORRUPT, 0, "%s (%llu, %llu)", what,
      a, b);
}

/* The heartbeat did not move for the producer timeout. */
static IvshmStatus
reader_producer_silent (IvshmReader * r, uint64_t now, IvshmError * err)
{
  unsigned long long ms = (now - r->last_hb_change_ns) / 1000000;

  if (!r->cfg.follow_stall)
    return ivshm_error_set (err, IVSHM_ERR_PRODUCER_GONE, 0,
        "the producer's heartbeat stopped %llu ms ago (it crashed or hangs)",
        ms);
  if (r->stalled)
    return IVSHM_AGAIN;
  r->stalled = true;
  return ivshm_error_set (err, IVSHM_PRODUCER_STALLED, 0,
      "the producer has been silent for %llu ms (a paused VM or a stopped "
      "process?); this reader keeps its place and waits", ms);
}

/* Nothing new: is the producer still there? */
static IvshmStatus
reader_check_producer (IvshmReader * r, IvshmError * err)
{
  uint64_t hb, now;

  if (!reader_owns (r) ||
      atomic_load_explicit (&r->hdr->magic, ACQ) != IVSHM_MAGIC ||
      atomic_load_explicit (&r->hdr->session_id, ACQ) != r->session)
    return ivshm_reader_diagnose (r, err, "", 0, 0);

  if (atomic_load_explicit (&r->hdr->producer_state, ACQ) ==
      IVSHM_PRODUCER_CLOSED)
    return ivshm_error_set (err, IVSHM_ERR_PRODUCER_GONE, 0,
        "the producer closed its session");

  hb = atomic_load_explicit (&r->hdr->producer_heartbeat, ACQ);
  now = ivshm_now_ns ();
  if (hb != r->last_hb) {
    r->last_hb = hb;
    r->last_hb_change_ns = now;
    r->stalled = false;
  } else if (now - r->last_hb_change_ns > r->producer_timeout_ns) {
    return reader_producer_silent (r, now, err);
  }
  return IVSHM_AGAIN;
}

/* The sticky records of a mid-stream attach, through the one parser of
 * the sticky area (ivshmem-sticky.c). The whole copy is checked before
 * the first record is handed out: a bad area is refused whole, never half
 * replayed. Returns AGAIN at the end of the replay. */
static IvshmStatus
reader_next_replay (IvshmReader * r, IvshmRecord * rec, IvshmError * err)
{
  char reason[IVSHM_STICKY_REASON_LEN];

  if (!r->replay_checked) {
    r->replay_checked = true;
    if (ivshm_sticky_validate (r->snap, reason, sizeof reason) != IVSHM_OK) {
      reader_count_invalid (r);
      r->replaying = false;
      return ivshm_error_set (err, IVSHM_ERR_CORRUPT, 0,
          "the sticky records are invalid: %s", reason);
    }
  }
  if (!r->replay_have) {
    if (!ivshm_sticky_iter_next (&r->replay, &r->replay_rec)) {
      r->replaying = false;
      return IVSHM_AGAIN;
    }
    r->replay_have = true;
  }
  rec->h = r->replay_rec.h;
  rec->payload = r->replay_rec.payload;
  rec->replayed = true;
  r->cur_is_replay = true;
  r->cur_len = r->replay_rec.len;
  r->cur_type = r->replay_rec.h.type;
  r->cur_payload_len = r->replay_rec.h.payload_len;
  return IVSHM_OK;
}

/* Validates the record header h at r->pos, with avail bytes published. */
static IvshmStatus
reader_check_record (IvshmReader * r, const IvshmRecordHeader * h,
    uint64_t avail, uint64_t * len, IvshmError * err)
{
  uint64_t off = r->off;

  if (h->pos != r->pos)
    return ivshm_reader_diagnose (r, err,
        "a record does not carry its own position",
        (unsigned long long) h->pos, (unsigned long long) r->pos);
  if (h->payload_len > r->ring_size - off - sizeof *h)
    return ivshm_reader_diagnose (r, err,
        "a record's payload runs past the end of the ring",
        (unsigned long long) h->payload_len, (unsigned long long) off);
  *len = ivshm_record_len (h->payload_len);
  if (*len > avail)
    return ivshm_reader_diagnose (r, err,
        "a record is longer than what the producer published",
        (unsigned long long) *len, (unsigned long long) avail);
  switch (h->type) {
    case IVSHM_RECORD_PAD:
      if (off + *len != r->ring_size)
        return ivshm_reader_diagnose (r, err,
            "a pad record does not end at the end of the ring",
            (unsigned long long) off, (unsigned long long) *len);
      return IVSHM_OK;
    case IVSHM_RECORD_SKIP:
    case IVSHM_RECORD_BUFFER:
    case IVSHM_RECORD_CAPS:
    case IVSHM_RECORD_EVENT:
      return IVSHM_OK;
    default:
      return ivshm_reader_diagnose (r, err, "a record has an unknown type",
          (unsigned long long) h->type, (unsigned long long) r->pos);
  }
}

IvshmStatus
ivshm_reader_next (IvshmReader * r, IvshmRecord * rec, IvshmError * err)
{
  IvshmRecordHeader h;
  uint64_t w_pos, len = 0;
  unsigned skips;
  IvshmStatus st;

  if (!r->slot)
    return ivshm_error_set (err, IVSHM_ERR_EVICTED, 0, "detached");
  if (r->waiting && (st = ivshm_reader_attach_waiting (r, err)) != IVSHM_OK)
    return st;
  if (r->waiting)
    return IVSHM_AGAIN;
  if (r->replaying && (st = reader_next_replay (r, rec, err)) != IVSHM_AGAIN)
    return st;

  for (skips = 0; skips < MAX_SKIPS_PER_CALL; skips++) {
    w_pos = atomic_load_explicit (&r->hdr->write_pos, ACQ);
    if (w_pos == r->pos)
      return reader_check_producer (r, err);
    /* the session lives in a line the producer writes only every heartbeat
     * period, so this costs little; a stale reader must not take a new
     * session's records for its own */
    if (atomic_load_explicit (&r->hdr->session_id, RLX) != r->session)
      return ivshm_reader_diagnose (r, err, "", 0, 0);
    if (w_pos < r->pos || w_pos - r->pos > r->ring_size ||
        w_pos % IVSHM_RECORD_ALIGN)
      return ivshm_reader_diagnose (r, err,
          "the producer's write position is impossible for this reader",
          (unsigned long long) w_pos, (unsigned long long) r->pos);

    memcpy (&h, r->ring + r->off, sizeof h);
    st = reader_check_record (r, &h, w_pos - r->pos, &len, err);
    if (st != IVSHM_OK)
      return st;
    if (h.type == IVSHM_RECORD_PAD || h.type == IVSHM_RECORD_SKIP) {
      if (!reader_owns (r))
        return ivshm_reader_diagnose (r, err, "", 0, 0);
      ivshm_reader_advance (r, r->pos + len);
      continue;
    }
    rec->h = h;
    rec->payload = r->ring + r->off + sizeof h;
    rec->replayed = false;
    r->cur_is_replay = false;
    r->cur_len = len;
    r->cur_type = h.type;
    r->cur_payload_len = h.payload_len;
    return IVSHM_OK;
  }
  /* bounded work: the caller re-checks whether it is flushing */
  return IVSHM_AGAIN;
}

IvshmStatus
ivshm_reader_release (IvshmReader * r)
{
  bool owns;

  if (r->cur_len == 0)
    return IVSHM_ERR_INVALID_ARG;

  ivshm_reader_lock (r);
  r->stats.records++;
  if (r->cur_type == IVSHM_RECORD_BUFFER) {
    r->stats.buffers++;
    r->stats.bytes += r->cur_payload_len;
  }
  if (r->cur_is_replay) {
    ivshm_reader_unlock (r);
    r->replay_have = false;
    r->cur_len = 0;
    return IVSHM_OK;
  }
  /* Whatever the caller copied out of the record must not have been
   * overwritten: that holds as long as we still owned the slot after the
   * copy (the writer evicts or reaps before it reuses space). */
  atomic_thread_fence (ACQ);
  owns = ivshm_reader_owns_locked (r) &&
      atomic_load_explicit (&r->slot->state, ACQ) == IVSHM_SLOT_ACTIVE;
  if (owns) {
    ivshm_reader_set_pos (r, r->pos + r->cur_len);
    ivshm_reader_publish_locked (r);
    owns = ivshm_reader_owns_locked (r);
    if (owns)
      atomic_store_explicit (&r->slot->records_read, r->stats.records, RLX);
  }
  ivshm_reader_unlock (r);
  r->cur_len = 0;
  return owns ? IVSHM_OK : IVSHM_ERR_EVICTED;
}

bool
ivshm_reader_wait (IvshmReader * r, IvshmWaiter * waiter, uint64_t timeout_ns)
{
  uint32_t v = atomic_load_explicit (&r->hdr->data_futex, SEQ);
  uint32_t bit = UINT32_C (1) << r->slot_index;
  bool ok, sleep;

  if (r->replaying || !r->slot)
    return !ivshm_waiter_is_flushing (waiter);
  IVSHM_TEST_POINT ("reader-sleep", r);
  ivshm_reader_lock (r);
  sleep = ivshm_reader_owns_locked (r);
  if (sleep)
    atomic_fetch_or_explicit (&r->hdr->readers_sleeping, bit, SEQ);
  ivshm_reader_unlock (r);
  if (!sleep)
    return !ivshm_waiter_is_flushing (waiter);
  /* after the bit, look again: at write_pos (the producer publishes, then
   * looks at the bits) and at our slot (a reaper frees it, then clears
   * the bits and wakes; ivshm_slot_reap) */
  sleep = atomic_load_explicit (&r->slot->owner, SEQ) == r->token;
  if (sleep && r->waiting)
    sleep = atomic_load_explicit (&r->slot->state, SEQ) == IVSHM_SLOT_WAITING
        && atomic_load_explicit (&r->slot->session_id, SEQ) == 0;
  else if (sleep)
    sleep = atomic_load_explicit (&r->slot->state, SEQ) == IVSHM_SLOT_ACTIVE
        && atomic_load_explicit (&r->hdr->write_pos, SEQ) == r->pos;
  ok = sleep ? ivshm_wait_on (waiter, &r->hdr->data_futex, v, timeout_ns) :
      !ivshm_waiter_is_flushing (waiter);
  /* only our own bit, and only while the slot still holds our token
   * (also EVICTED): once it is reaped, the reaper cleared the bit and a
   * new owner may have set it again */
  ivshm_reader_lock (r);
  if (atomic_load_explicit (&r->slot->owner, ACQ) == r->token)
    atomic_fetch_and_explicit (&r->hdr->readers_sleeping, ~bit, SEQ);
  ivshm_reader_unlock (r);
  return ok;
}

bool
ivshm_reader_producer_local (const IvshmReader * r)
{
  return r->producer_local;
}

bool
ivshm_reader_waiting (IvshmReader * r)
{
  bool waiting;

  ivshm_reader_lock (r);
  waiting = r->waiting;
  ivshm_reader_unlock (r);
  return waiting;
}

bool
ivshm_reader_producer_leaky (const IvshmReader * r)
{
  return (atomic_load_explicit (&r->hdr->producer_flags, RLX) &
      IVSHM_PRODUCER_FLAG_LEAKY) != 0;
}

uint64_t
ivshm_reader_session (const IvshmReader * r)
{
  return r->session;
}

bool
ivshm_reader_session_replaced (IvshmReader * r)
{
  return atomic_load_explicit (&r->hdr->magic, ACQ) != IVSHM_MAGIC ||
      atomic_load_explicit (&r->hdr->session_id, ACQ) != r->session;
}

void
ivshm_reader_producer_beat (IvshmReader * r, uint64_t * heartbeat,
    uint64_t * period_us)
{
  *heartbeat = atomic_load_explicit (&r->hdr->producer_heartbeat, ACQ);
  *period_us = atomic_load_explicit (&r->hdr->heartbeat_period_us, RLX);
}

uint64_t
ivshm_reader_ring_size (const IvshmReader * r)
{
  return r->ring_size;
}
