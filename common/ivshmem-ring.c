/* gst-ivshmem: the ring of records inside a region
 * SPDX-License-Identifier: MIT
 *
 * Memory-ordering contract (PROTOCOL.md has the argument in full):
 *  - The writer owns write_pos, tail, the sticky area and the header; it
 *    keeps private copies of them and never reads them back from shared
 *    memory. It publishes records with a release store of write_pos.
 *  - A reader owns its slot's read_pos and heartbeat; it publishes the end of
 *    what it consumed with a release store of read_pos.
 *  - Each side reads the other's counters with acquire loads, once, into a
 *    local, and validates the local against what it cached privately at
 *    attach time. Nothing read from shared memory is used unchecked.
 *  - Attaching (a reader registers read_pos, then reads tail) and
 *    reclaiming (the writer stores tail, then reads the slots) are a Dekker
 *    pair and use seq_cst.
 */
#include "ivshmem-ring.h"

#include "ivshmem-os.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

_Static_assert (IVSHM_REGION_MIN == IVSHM_REGION_MIN_SIZE,
    "the region's minimum size and the ring layout's disagree");

#define RLX memory_order_relaxed
#define ACQ memory_order_acquire
#define REL memory_order_release
#define SEQ memory_order_seq_cst

#define DEFAULT_LEASE_TIMEOUT_NS   (3ull * 1000 * 1000 * 1000)
#define DEFAULT_HEARTBEAT_NS       IVSHM_DEFAULT_HEARTBEAT_NS
#define MAX_TAKEOVER_WAIT_NS       (1000ull * 1000 * 1000)
#define MIN_PRODUCER_TIMEOUT_NS    (2ull * 1000 * 1000 * 1000)
#define MAX_PRODUCER_TIMEOUT_NS    (60ull * 1000 * 1000 * 1000)

/* sticky kinds, in the order GStreamer sends them */
enum
{
  STICKY_STREAM_START,
  STICKY_CAPS,
  STICKY_SEGMENT,
  STICKY_TAG,
  STICKY_EOS,
  STICKY_N
};

static IvshmHeader *
header_of (void *base)
{
  return (IvshmHeader *) base;
}

static IvshmReaderSlot *
slot_of (void *base, unsigned i)
{
  return (IvshmReaderSlot *) ((uint8_t *) base + IVSHM_SLOT_OFFSET +
      (size_t) i * IVSHM_SLOT_SIZE);
}

static IvshmStickyHeader *
sticky_of (void *base)
{
  return (IvshmStickyHeader *) ((uint8_t *) base + IVSHM_STICKY_OFFSET);
}

static uint64_t
ring_size_for_region (uint64_t region_size)
{
  return (region_size - IVSHM_RING_OFFSET) & ~(uint64_t) (IVSHM_RECORD_ALIGN -
      1);
}

uint64_t
ivshm_region_size_for_payload (uint64_t payload_len)
{
  uint64_t need, size = IVSHM_REGION_MIN;

  if (payload_len > (UINT64_MAX >> 2))
    return 0;
  need = IVSHM_RING_OFFSET + ivshm_record_len (payload_len);
  while (size < need)
    size <<= 1;
  return size;
}

/* ---- the writer -------------------------------------------------------- */

enum
{
  SPAN_PENDING,                 /* reserved, its owner writes the payload */
  SPAN_COMMITTED,               /* a record (or a pad) is there */
  SPAN_CANCELLED,               /* a skip record covers it */
};

#define MAX_SPANS 256u

typedef struct
{
  uint64_t pos;                 /* ring position of the record */
  uint64_t off;                 /* pos % ring_size, kept to spare a division */
  uint64_t len;                 /* its whole length, header included */
  uint8_t state;                /* SPAN_*, the writer's thread only */
  bool pad;                     /* a PAD record, not one of the stream */
  _Atomic uint8_t freed;        /* no local pointer into it is left; set
                                 * from any thread */
} Span;

typedef struct
{
  uint64_t owner;               /* the owner we last saw in the slot */
  uint64_t heartbeat;           /* its heartbeat then */
  uint64_t since_ns;            /* when we first saw that heartbeat */
  uint64_t evicted_ns;          /* when we evicted that owner */
} LeaseWatch;

struct IvshmWriter
{
  uint8_t *base;
  IvshmHeader *hdr;
  IvshmStickyHeader *sticky;
  uint8_t *ring;
  uint64_t ring_size;
  uint64_t session;
  uint64_t lease_timeout_ns;

  uint64_t kernel_id;           /* ivshm_kernel_id() */
  bool leaky;                   /* never wait for readers */
  bool readers_local;           /* every active reader shares our kernel */

  uint64_t write_pos;           /* private copy; published with release */
  uint64_t tail;                /* reclaimed up to here (private) */
  uint64_t tail_published;      /* last value stored in hdr->tail */
  bool had_reader;
  /* before the first reader: where the session's first real record is
   * (retain_fixed), or how far only skips and pads were published */
  uint64_t retain_from;
  bool retain_fixed;

  /* Reserved records, oldest first: spans[i % MAX_SPANS] for i in
   * [span_first, span_end). Those before span_pub are published. A span
   * keeps its space from reuse until it is published and released
   * (freed), which a pool buffer that still points into it has not. */
  Span spans[MAX_SPANS];
  uint64_t span_first;
  uint64_t span_pub;
  uint64_t span_end;
  uint64_t reserve_pos;         /* end of the newest span */
  uint64_t reserve_off;         /* reserve_pos % ring_size, kept
                                 * incrementally: records never wrap */

  /* the one reservation of ivshm_writer_reserve/commit */
  IvshmSpan current;
  uint64_t current_len;         /* the payload length asked for */
  bool current_active;

  LeaseWatch lease[IVSHM_MAX_READERS];

  /* private copies of the sticky records: header + payload, 64-aligned */
  uint8_t *sticky_rec[STICKY_N];
  uint64_t sticky_len[STICKY_N];
  uint32_t producer_flags;

  IvshmWriterStats stats;
};

static void
writer_set_flag (IvshmWriter * w, uint32_t flag)
{
  if (w->producer_flags & flag)
    return;
  w->producer_flags |= flag;
  atomic_store_explicit (&w->hdr->producer_flags, w->producer_flags, REL);
}

/* A previous producer's session is still marked ACTIVE: is it alive? */
static bool
previous_producer_alive (IvshmHeader * hdr, const IvshmWriterConfig * cfg)
{
  uint64_t period_us, wait_ns, start, hb0;

  if (atomic_load_explicit (&hdr->magic, ACQ) != IVSHM_MAGIC ||
      atomic_load_explicit (&hdr->producer_state, ACQ) !=
      IVSHM_PRODUCER_ACTIVE)
    return false;

  period_us = atomic_load_explicit (&hdr->heartbeat_period_us, RLX);
  if (cfg && cfg->takeover_wait_ns)
    wait_ns = cfg->takeover_wait_ns;
  else if (period_us == 0 || period_us > MAX_TAKEOVER_WAIT_NS / 2500)
    wait_ns = MAX_TAKEOVER_WAIT_NS;
  else
    wait_ns = period_us * 2500;

  hb0 = atomic_load_explicit (&hdr->producer_heartbeat, ACQ);
  start = ivshm_now_ns ();
  while (ivshm_now_ns () - start < wait_ns) {
    ivshm_sleep_ns (5 * 1000 * 1000);
    if (atomic_load_explicit (&hdr->producer_heartbeat, ACQ) != hb0)
      return true;
    if (atomic_load_explicit (&hdr->producer_state, ACQ) !=
        IVSHM_PRODUCER_ACTIVE)
      return false;
  }
  return false;
}

IvshmStatus
ivshm_writer_new (void *base, uint64_t size, const IvshmWriterConfig * cfg,
    IvshmWriter ** out, IvshmError * err)
{
  IvshmHeader *hdr = header_of (base);
  IvshmWriter *w;
  uint64_t old_session, hb_ns;
  unsigned i;

  *out = NULL;
  if (!base || size < IVSHM_REGION_MIN)
    return ivshm_error_set (err, IVSHM_ERR_TOO_SMALL, 0,
        "the region has %llu bytes; the ring needs at least %llu",
        (unsigned long long) size, (unsigned long long) IVSHM_REGION_MIN);

  if (previous_producer_alive (hdr, cfg))
    return ivshm_error_set (err, IVSHM_ERR_PRODUCER_BUSY, 0,
        "another producer (pid %llu) is writing to this region and its "
        "heartbeat is moving; stop it first",
        (unsigned long long) atomic_load_explicit (&hdr->producer_pid, RLX));

  w = calloc (1, sizeof *w);
  if (!w)
    return ivshm_error_set (err, IVSHM_ERR_NO_MEMORY, ENOMEM, "out of memory");

  w->base = base;
  w->hdr = hdr;
  w->sticky = sticky_of (base);
  w->ring = (uint8_t *) base + IVSHM_RING_OFFSET;
  w->ring_size = ring_size_for_region (size);
  w->lease_timeout_ns = cfg && cfg->lease_timeout_ns ?
      cfg->lease_timeout_ns : DEFAULT_LEASE_TIMEOUT_NS;
  hb_ns = cfg && cfg->heartbeat_period_ns ?
      cfg->heartbeat_period_ns : DEFAULT_HEARTBEAT_NS;

  old_session = atomic_load_explicit (&hdr->session_id, RLX);
  do
    w->session = ivshm_random_u64 ();
  while (w->session == old_session);

  /* Take the region away from readers first: with magic 0 nobody trusts
   * anything else in it. Then lay out the new session and publish magic
   * last. */
  atomic_store_explicit (&hdr->magic, 0, SEQ);
  atomic_store_explicit (&hdr->producer_state, IVSHM_PRODUCER_NONE, SEQ);

  for (i = 0; i < IVSHM_MAX_READERS; i++) {
    IvshmReaderSlot *s = slot_of (base, i);
    atomic_store_explicit (&s->state, IVSHM_SLOT_FREE, RLX);
    atomic_store_explicit (&s->owner, 0, RLX);
    atomic_store_explicit (&s->read_pos, 0, RLX);
    atomic_store_explicit (&s->heartbeat, 0, RLX);
    atomic_store_explicit (&s->session_id, 0, RLX);
    atomic_store_explicit (&s->sleeping, 0, RLX);
    atomic_store_explicit (&s->pid, 0, RLX);
    atomic_store_explicit (&s->records_read, 0, RLX);
  }
  atomic_store_explicit (&w->sticky->seq, 0, RLX);
  atomic_store_explicit (&w->sticky->applies_from, 0, RLX);
  atomic_store_explicit (&w->sticky->len, 0, RLX);
  atomic_store_explicit (&w->sticky->count, 0, RLX);

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
  atomic_store_explicit (&hdr->session_id, w->session, RLX);
  atomic_store_explicit (&hdr->producer_heartbeat, 0, RLX);
  atomic_store_explicit (&hdr->producer_flags, 0, RLX);
  /* (the leaky flags are stored below, once the writer knows them) */
  atomic_store_explicit (&hdr->producer_pid, ivshm_process_id (), RLX);
  atomic_store_explicit (&hdr->heartbeat_period_us, hb_ns / 1000, RLX);
  w->kernel_id = ivshm_kernel_id ();
  w->leaky = cfg && cfg->leaky;
  if (w->leaky) {
    /* a leaky producer keeps nothing for a first reader: everybody joins
     * at the live edge */
    w->had_reader = true;
    w->producer_flags = IVSHM_PRODUCER_FLAG_LEAKY |
        IVSHM_PRODUCER_FLAG_HAD_READER;
  }
  atomic_store_explicit (&hdr->producer_kernel_id, w->kernel_id, RLX);
  atomic_store_explicit (&hdr->producer_flags, w->producer_flags, RLX);
  atomic_store_explicit (&hdr->write_pos, 0, RLX);
  atomic_store_explicit (&hdr->data_futex, 0, RLX);
  atomic_store_explicit (&hdr->readers_sleeping, 0, RLX);
  atomic_store_explicit (&hdr->tail, 0, RLX);
  atomic_store_explicit (&hdr->space_futex, 0, RLX);
  atomic_store_explicit (&hdr->writer_sleeping, 0, RLX);
  atomic_store_explicit (&hdr->producer_state, IVSHM_PRODUCER_ACTIVE, RLX);
  atomic_store_explicit (&hdr->magic, IVSHM_MAGIC, SEQ);

  *out = w;
  return IVSHM_OK;
}

void
ivshm_writer_close (IvshmWriter * w)
{
  /* Only close the session if it is still ours: a producer that took over
   * after we were presumed dead owns the header now. */
  if (atomic_load_explicit (&w->hdr->session_id, ACQ) == w->session)
    atomic_store_explicit (&w->hdr->producer_state, IVSHM_PRODUCER_CLOSED,
        SEQ);
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
  atomic_fetch_add_explicit (&w->hdr->producer_heartbeat, 1, REL);
}

uint64_t
ivshm_writer_max_payload (const IvshmWriter * w)
{
  return w->ring_size - sizeof (IvshmRecordHeader);
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

void
ivshm_writer_get_stats (IvshmWriter * w, IvshmWriterStats * stats)
{
  *stats = w->stats;
}

void
ivshm_writer_tick (IvshmWriter * w)
{
  ivshm_writer_heartbeat (w);
}

bool
ivshm_writer_taken_over (IvshmWriter * w)
{
  return false;
}

/* Drops a reader from its slot. The state changes before we reuse its
 * space, so a reader validating a copy (state, then owner) sees the
 * eviction. The owner stays: the slot is not free until the reader lets go
 * (reader_detach) or a lease has passed (writer_scan_slots), so a store
 * the old reader makes just before it notices cannot hit a new owner. */
static void
writer_evict (IvshmWriter * w, IvshmReaderSlot * s, uint64_t owner,
    LeaseWatch * lw)
{
  atomic_store_explicit (&s->state, IVSHM_SLOT_EVICTED, SEQ);
  lw->owner = owner;
  lw->evicted_ns = ivshm_now_ns ();
}

/* The lowest position any live reader of this session still needs, or
 * write_pos if none. Validates and evicts broken or expired slots. */
static uint64_t
writer_scan_slots (IvshmWriter * w, bool check_leases, unsigned *n_active)
{
  uint64_t min = w->write_pos, now = 0;
  unsigned i, active = 0;
  bool local = w->kernel_id != 0;

  if (check_leases)
    now = ivshm_now_ns ();

  for (i = 0; i < IVSHM_MAX_READERS; i++) {
    IvshmReaderSlot *s = slot_of (w->base, i);
    LeaseWatch *lw = &w->lease[i];
    uint32_t state = atomic_load_explicit (&s->state, SEQ);
    uint64_t owner, session, pos, hb;

    if (state == IVSHM_SLOT_EVICTED && check_leases) {
      uint64_t expected = atomic_load_explicit (&s->owner, ACQ);
      if (lw->owner != expected || lw->evicted_ns == 0) {
        lw->owner = expected;   /* evicted by an earlier producer */
        lw->evicted_ns = now;
      } else if (now - lw->evicted_ns > w->lease_timeout_ns) {
        /* the evicted reader never let go: it is dead */
        atomic_store_explicit (&s->state, IVSHM_SLOT_FREE, SEQ);
        atomic_compare_exchange_strong_explicit (&s->owner, &expected, 0,
            SEQ, RLX);
        lw->evicted_ns = 0;
      }
      continue;
    }
    if (state != IVSHM_SLOT_ACTIVE)
      continue;
    owner = atomic_load_explicit (&s->owner, ACQ);
    session = atomic_load_explicit (&s->session_id, ACQ);
    pos = atomic_load_explicit (&s->read_pos, SEQ);
    if (owner == 0 || session != w->session) {
      /* a reader of an older session, or garbage: it holds nothing back.
       * Its owner notices the new session and lets go. */
      continue;
    }
    if (pos < w->tail) {
      /* A reader attaching registers the tail it read, and re-reads the
       * tail until it stands no lower: below our tail it is either in that
       * window or lying. Either way it holds nothing back. */
      continue;
    }
    if (pos > w->write_pos || pos % IVSHM_RECORD_ALIGN) {
      w->stats.invalid_slots++;
      writer_evict (w, s, owner, lw);
      continue;
    }
    if (check_leases) {
      hb = atomic_load_explicit (&s->heartbeat, ACQ);
      if (lw->owner != owner || lw->heartbeat != hb) {
        lw->owner = owner;
        lw->heartbeat = hb;
        lw->since_ns = now;
      } else if (pos < w->write_pos && now - lw->since_ns > w->lease_timeout_ns) {
        w->stats.readers_evicted++;
        writer_evict (w, s, owner, lw);
        continue;
      }
    }
    active++;
    if (pos < min)
      min = pos;
    if (atomic_load_explicit (&s->kernel_id, RLX) != w->kernel_id)
      local = false;
  }
  w->readers_local = local;
  if (n_active)
    *n_active = active;
  return min;
}

unsigned
ivshm_writer_count_readers (IvshmWriter * w)
{
  unsigned n;
  writer_scan_slots (w, false, &n);
  return n;
}

static Span *
span_at (IvshmWriter * w, uint64_t id)
{
  return &w->spans[id % MAX_SPANS];
}

static void writer_write_skip (IvshmWriter * w, uint64_t pos, uint64_t off,
    uint64_t len);
static void writer_advance (IvshmWriter * w);

/* Forgets the spans that are published and no longer referenced. A span
 * released while still pending (a pool buffer dropped unpushed) will never
 * be committed: it becomes a skip, so that it neither blocks publication
 * nor keeps its space. */
static void
writer_collect (IvshmWriter * w)
{
  uint64_t i;
  bool cancelled = false;

  for (i = w->span_pub; i < w->span_end; i++) {
    Span *s = span_at (w, i);

    if (s->state == SPAN_PENDING &&
        atomic_load_explicit (&s->freed, ACQ)) {
      writer_write_skip (w, s->pos, s->off, s->len);
      s->state = SPAN_CANCELLED;
      w->stats.cancelled++;
      cancelled = true;
    }
  }
  if (cancelled)
    writer_advance (w);
  while (w->span_first < w->span_pub &&
      atomic_load_explicit (&span_at (w, w->span_first)->freed, ACQ))
    w->span_first++;
}

/* Room left for new records: everything from the lowest position that a
 * reader or a local reference still needs, up to reserve_pos, is taken. */
static uint64_t
writer_free_space (IvshmWriter * w)
{
  uint64_t bound = w->tail;

  writer_collect (w);
  if (w->span_first < w->span_end && span_at (w, w->span_first)->pos < bound)
    bound = span_at (w, w->span_first)->pos;
  return w->ring_size - (w->reserve_pos - bound);
}

/* Has any reader attached to this session, even one gone again? A reader
 * leaves the session id in the slot it frees (and the slots are wiped at
 * each new session). A lying slot can only make us stop keeping the stream
 * for a first reader. */
static bool
writer_reader_came (IvshmWriter * w)
{
  unsigned i;

  for (i = 0; i < IVSHM_MAX_READERS; i++) {
    IvshmReaderSlot *s = slot_of (w->base, i);

    /* FREE, not CLAIMED: a reader that is still attaching is not here
     * yet (it would lose the stream's start if we stopped keeping it) */
    if (atomic_load_explicit (&s->state, ACQ) == IVSHM_SLOT_FREE &&
        atomic_load_explicit (&s->session_id, ACQ) == w->session)
      return true;
  }
  return false;
}

/* Recomputes how far the ring may be reused. Returns the free space. */
static uint64_t
writer_reclaim (IvshmWriter * w, bool check_leases)
{
  uint64_t m1, m2, bound;
  unsigned active;

  m1 = writer_scan_slots (w, check_leases, &active);
  if (!w->had_reader && active == 0 && writer_reader_came (w)) {
    /* a reader attached and left again between two of our looks */
    w->had_reader = true;
    writer_set_flag (w, IVSHM_PRODUCER_FLAG_HAD_READER);
  }
  if (!w->had_reader) {
    if (active == 0) {
      /* Keep everything for a first reader, but for the skips and pads
       * published before the session's first record: nobody needs them
       * (a first reader starts at the tail). */
      if (w->retain_from == w->tail)
        return writer_free_space (w);
      m1 = w->retain_from;
    } else {
      /* The first reader is here: from now on space is reclaimed. */
      w->had_reader = true;
      writer_set_flag (w, IVSHM_PRODUCER_FLAG_HAD_READER);
    }
  }

  /* Publish the new tail, then look again: a reader that registered a
   * position below m1 before it could see the new tail is caught by the
   * second scan (see PROTOCOL.md, "Attaching"). */
  if (m1 > w->tail_published) {
    atomic_store_explicit (&w->hdr->tail, m1, SEQ);
    w->tail_published = m1;
  }
  m2 = writer_scan_slots (w, false, NULL);
  bound = m1 < m2 ? m1 : m2;
  if (bound > w->tail)
    w->tail = bound;
  return writer_free_space (w);
}

bool
ivshm_writer_had_reader (IvshmWriter * w)
{
  if (!w->had_reader)
    writer_reclaim (w, false);
  return w->had_reader;
}

/* Reclaims space; a leaky producer also drops the readers that hold back
 * the space it needs, slowest first (they join again at the live edge and
 * report what they lost). It never drops what this process still holds
 * (pool buffers): for that it waits. */
static uint64_t
writer_make_room (IvshmWriter * w, uint64_t need)
{
  uint64_t free_space = writer_reclaim (w, true);
  unsigned k;

  for (k = 0; w->leaky && free_space < need && k < IVSHM_MAX_READERS; k++) {
    IvshmReaderSlot *slowest = NULL;
    uint64_t min = w->write_pos, owner = 0;
    unsigned i, at = 0;

    for (i = 0; i < IVSHM_MAX_READERS; i++) {
      IvshmReaderSlot *s = slot_of (w->base, i);
      uint64_t pos;

      if (atomic_load_explicit (&s->state, SEQ) != IVSHM_SLOT_ACTIVE ||
          atomic_load_explicit (&s->session_id, ACQ) != w->session)
        continue;
      pos = atomic_load_explicit (&s->read_pos, SEQ);
      if (pos >= w->tail && pos < min) {
        min = pos;
        slowest = s;
        at = i;
        owner = atomic_load_explicit (&s->owner, ACQ);
      }
    }
    /* dropping readers helps only if they, and not our own references,
     * are what holds the space */
    writer_collect (w);
    if (!slowest || (w->span_first < w->span_end &&
            span_at (w, w->span_first)->pos <= min))
      break;
    w->stats.readers_lapped++;
    writer_evict (w, slowest, owner, &w->lease[at]);
    free_space = writer_reclaim (w, false);
  }
  return free_space;
}

static void
writer_publish (IvshmWriter * w)
{
  atomic_store_explicit (&w->hdr->write_pos, w->write_pos, REL);
  /* A reader announces that it is going to sleep, then re-reads write_pos;
   * we publish, then look for sleepers. With a full fence on both sides
   * one of us sees the other (PROTOCOL.md, "Wake-ups"). */
  atomic_thread_fence (SEQ);
  if (atomic_load_explicit (&w->hdr->readers_sleeping, RLX) != 0)
    ivshm_wake (&w->hdr->data_futex);
}

bool
ivshm_writer_wait_prepare (IvshmWriter * w, uint32_t *token)
{
  uint64_t tail = w->tail;

  *token = atomic_load_explicit (&w->hdr->space_futex, SEQ);
  atomic_store_explicit (&w->hdr->writer_sleeping, 1, SEQ);
  writer_reclaim (w, false);
  if (w->tail != tail) {
    atomic_store_explicit (&w->hdr->writer_sleeping, 0, RLX);
    return false;
  }
  return true;
}

bool
ivshm_writer_wait_finish (IvshmWriter * w, IvshmWaiter * waiter,
    uint32_t token, uint64_t timeout_ns)
{
  bool ok = ivshm_wait_on (waiter, &w->hdr->space_futex, token, timeout_ns);

  atomic_store_explicit (&w->hdr->writer_sleeping, 0, RLX);
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

static void
writer_write_skip (IvshmWriter * w, uint64_t pos, uint64_t off, uint64_t len)
{
  IvshmRecordHeader h = { 0 };

  h.type = IVSHM_RECORD_SKIP;
  h.pos = pos;
  h.payload_len = len - sizeof h;
  memcpy (w->ring + off, &h, sizeof h);
}

static Span *
writer_push_span (IvshmWriter * w, uint64_t len, uint8_t state, bool freed)
{
  Span *s = span_at (w, w->span_end++);

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

/* Publishes every span from span_pub on that is no longer pending. */
static void
writer_advance (IvshmWriter * w)
{
  uint64_t old = w->write_pos;

  while (w->span_pub < w->span_end &&
      span_at (w, w->span_pub)->state != SPAN_PENDING) {
    Span *s = span_at (w, w->span_pub++);
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

IvshmStatus
ivshm_writer_reserve_span (IvshmWriter * w, uint64_t payload_len,
    IvshmSpan * span)
{
  uint64_t rec_len, off, free_space;
  Span *s;

  memset (span, 0, sizeof *span);
  if (payload_len > ivshm_writer_max_payload (w))
    return IVSHM_ERR_TOO_BIG;
  rec_len = ivshm_record_len (payload_len);

  if (w->span_end - w->span_first > MAX_SPANS - 2) {
    writer_collect (w);
    if (w->span_end - w->span_first > MAX_SPANS - 2) {
      w->stats.full_waits++;
      return IVSHM_AGAIN;
    }
  }

  free_space = writer_free_space (w);
  off = w->reserve_off;

  if (off + rec_len > w->ring_size) {
    /* The record would wrap: pad to the end of the ring first. The pad is
     * published as soon as the spans before it are, so that once readers
     * pass it the record needs only rec_len of space, and any record up to
     * the ring's size fits. */
    uint64_t pad_len = w->ring_size - off;
    IvshmRecordHeader pad = { 0 };

    if (free_space < pad_len)
      free_space = writer_make_room (w, pad_len);
    if (free_space < pad_len) {
      w->stats.full_waits++;
      return IVSHM_AGAIN;
    }
    pad.type = IVSHM_RECORD_PAD;
    pad.pos = w->reserve_pos;
    pad.payload_len = pad_len - sizeof pad;
    memcpy (w->ring + off, &pad, sizeof pad);
    writer_push_span (w, pad_len, SPAN_COMMITTED, true);
    writer_advance (w);
    free_space -= pad_len;
    off = 0;
  }

  if (free_space < rec_len)
    free_space = writer_make_room (w, rec_len);
  if (free_space < rec_len) {
    w->stats.full_waits++;
    return IVSHM_AGAIN;
  }

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
  s = span_at (w, span->id);
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
  writer_write_skip (w, s->pos, s->off, s->len);
  s->state = SPAN_CANCELLED;
  w->stats.cancelled++;
  writer_advance (w);
}

void
ivshm_writer_release_span (IvshmWriter * w, const IvshmSpan * span)
{
  /* The entry cannot be reused before this store, so no check is needed
   * (and none would be thread-safe). */
  atomic_store_explicit (&span_at (w, span->id)->freed, 1, REL);
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

  atomic_store_explicit (&sh->seq, seq + 1, RLX);
  atomic_thread_fence (REL);
  for (k = 0; k < STICKY_N; k++) {
    if (!w->sticky_rec[k])
      continue;
    if (len + w->sticky_len[k] > cap) {
      w->stats.sticky_overflows++;
      writer_set_flag (w, IVSHM_PRODUCER_FLAG_STICKY_OVERFLOW);
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
    writer_set_flag (w, IVSHM_PRODUCER_FLAG_STICKY_OVERFLOW);
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

  rec = w->ring + s->off;
  h = *info;
  h.pos = s->pos;
  memcpy (rec, &h, sizeof h);
  used = ivshm_record_len (h.payload_len);
  if (used < s->len)
    writer_write_skip (w, s->pos + used, s->off + used, s->len - used);
  s->state = SPAN_COMMITTED;

  /* Records reach readers in ring order, which must be stream order: a
   * span reserved before this one and still pending can no longer be
   * published as it is (it would come before this record). It becomes a
   * skip; its owner finds it stale at commit and copies instead. */
  for (i = w->span_pub; i < span->id; i++) {
    Span *o = span_at (w, i);
    if (o->state == SPAN_PENDING) {
      writer_write_skip (w, o->pos, o->off, o->len);
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
  writer_advance (w);
  return IVSHM_OK;
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
    memcpy (dst, payload, info->payload_len);
  return ivshm_writer_commit (w, info);
}

/* ---- the reader -------------------------------------------------------- */

struct IvshmReader
{
  uint8_t *base;
  IvshmHeader *hdr;
  IvshmReaderSlot *slot;
  uint8_t *ring;
  uint64_t ring_size;           /* validated at attach, never re-read */
  uint64_t session;
  uint64_t token;
  unsigned slot_index;
  bool producer_local;          /* the producer shares our kernel */

  uint64_t pos;                 /* next ring position to read */
  uint64_t off;                 /* pos % ring_size, kept incrementally */
  uint64_t published;           /* last read_pos stored (under lock) */
  uint64_t cur_len;             /* length of the record handed out, 0: none */
  uint64_t cur_payload_len;
  uint16_t cur_type;

  /* replay of the sticky records after a mid-stream attach: replay is
   * replay_mem aligned up to 64 bytes, so replayed payloads are aligned as
   * ring ones are (portably: mingw has no aligned_alloc) */
  void *replay_mem;
  uint8_t *replay;
  uint32_t replay_len;
  uint32_t replay_off;
  bool cur_is_replay;

  /* Records handed out in place (zero-copy) and not yet given back,
   * oldest first: held[i % MAX_HELD] for i in [held_first, held_end).
   * The published read_pos stops at the oldest of them. `lock` guards
   * them and the publication of read_pos, since ivshm_reader_unhold() runs
   * in whatever thread frees the last reference. */
  struct
  {
    uint64_t pos;
    uint64_t len;
    bool released;
  } held[IVSHM_MAX_HELD];
  uint64_t held_first;
  uint64_t held_end;
  uint64_t held_bytes;
  atomic_flag lock;

  /* producer liveness, measured with our own clock */
  uint64_t producer_timeout_ns;
  uint64_t last_hb;
  uint64_t last_hb_change_ns;

  IvshmReaderStats stats;
};

/* Gives the space before r->pos back, and wakes the producer if it is
 * about to sleep for want of space (the mirror of writer_publish). */
static void
reader_lock (IvshmReader * r)
{
  while (atomic_flag_test_and_set_explicit (&r->lock, ACQ))
    ivshm_cpu_relax ();
}

static void
reader_unlock (IvshmReader * r)
{
  atomic_flag_clear_explicit (&r->lock, REL);
}

/* Call with the lock held. */
static void
reader_publish_pos_locked (IvshmReader * r)
{
  uint64_t pos = r->pos;

  while (r->held_first < r->held_end &&
      r->held[r->held_first % IVSHM_MAX_HELD].released)
    r->held_first++;
  if (r->held_first < r->held_end)
    pos = r->held[r->held_first % IVSHM_MAX_HELD].pos;
  /* nothing new for the producer: spare the store and the fence (a held
   * record in front keeps read_pos where it is while we read on) */
  if (pos == r->published)
    return;
  r->published = pos;
  atomic_store_explicit (&r->slot->read_pos, pos, REL);
  atomic_thread_fence (SEQ);
  if (atomic_load_explicit (&r->hdr->writer_sleeping, RLX) != 0)
    ivshm_wake (&r->hdr->space_futex);
}

/* Counts the record handed out; under the lock, as the stats may be read
 * from another thread. */
static void
reader_count (IvshmReader * r)
{
  reader_lock (r);
  r->stats.records++;
  if (r->cur_type == IVSHM_RECORD_BUFFER) {
    r->stats.buffers++;
    r->stats.bytes += r->cur_payload_len;
  }
  reader_unlock (r);
}

/* Moves the reader to pos and gives the space before it back (but for
 * records still held). */
/* Moves pos and its ring offset; a step within the ring (the usual case:
 * to the next record) spares a 64-bit division. */
static void
reader_set_pos (IvshmReader * r, uint64_t pos)
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

static void
reader_advance (IvshmReader * r, uint64_t pos)
{
  reader_lock (r);
  reader_set_pos (r, pos);
  reader_publish_pos_locked (r);
  reader_unlock (r);
}

static IvshmStatus
reader_validate_header (IvshmHeader * hdr, uint64_t size, uint64_t *ring_size,
    uint64_t *session, IvshmError * err)
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
      ringsz != ring_size_for_region (rsize) ||
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
  *session = atomic_load_explicit (&hdr->session_id, ACQ);
  return IVSHM_OK;
}

/* Takes a consistent copy of the sticky area. AGAIN if the producer kept
 * rewriting it. */
static IvshmStatus
reader_snapshot_sticky (IvshmReader * r, uint64_t *applies_from,
    uint64_t *seq_out)
{
  IvshmStickyHeader *sh = sticky_of (r->base);
  const uint8_t *src = (const uint8_t *) sh + sizeof (IvshmStickyHeader);
  uint64_t cap = IVSHM_STICKY_SIZE - sizeof (IvshmStickyHeader);
  int tries;

  for (tries = 0; tries < 64; tries++) {
    uint64_t s1 = atomic_load_explicit (&sh->seq, ACQ), s2;
    uint64_t from = atomic_load_explicit (&sh->applies_from, RLX);
    uint32_t len = atomic_load_explicit (&sh->len, RLX);

    if (s1 & 1)
      continue;
    if (len > cap || len % IVSHM_RECORD_ALIGN)
      return IVSHM_ERR_CORRUPT;
    memcpy (r->replay, src, len);
    atomic_thread_fence (ACQ);
    s2 = atomic_load_explicit (&sh->seq, RLX);
    if (s1 != s2)
      continue;
    r->replay_len = len;
    r->replay_off = 0;
    *applies_from = from;
    *seq_out = s1;
    return IVSHM_OK;
  }
  return IVSHM_AGAIN;
}

static void
reader_detach (IvshmReader * r)
{
  uint64_t expected = r->token;

  if (!r->slot)
    return;
  /* Only let go of the slot if it is still ours. */
  if (atomic_load_explicit (&r->slot->owner, ACQ) == r->token) {
    atomic_store_explicit (&r->slot->state, IVSHM_SLOT_FREE, SEQ);
    atomic_compare_exchange_strong_explicit (&r->slot->owner, &expected, 0,
        SEQ, RLX);
  }
  r->slot = NULL;
}

void
ivshm_reader_free (IvshmReader * r)
{
  if (!r)
    return;
  reader_detach (r);
  free (r->replay_mem);
  free (r);
}

/* Another reader of this session is already active: we are not the first
 * (the producer may not have noticed it yet, as it looks only when it
 * needs space). */
static bool
reader_has_company (IvshmReader * r)
{
  unsigned i;

  for (i = 0; i < IVSHM_MAX_READERS; i++) {
    IvshmReaderSlot *s = slot_of (r->base, i);
    if (s != r->slot &&
        atomic_load_explicit (&s->state, ACQ) == IVSHM_SLOT_ACTIVE &&
        atomic_load_explicit (&s->session_id, RLX) == r->session)
      return true;
  }
  return false;
}

IvshmStatus
ivshm_reader_new (void *base, uint64_t size, const IvshmReaderConfig * cfg,
    IvshmReader ** out, IvshmError * err)
{
  IvshmHeader *hdr = header_of (base);
  IvshmReader *r;
  IvshmStatus st;
  uint64_t ring_size = 0, session = 0, period_us, tail, t, w_pos, applies_from,
      seq;
  uint32_t state, flags;
  unsigned i;
  int tries;

  *out = NULL;
  if (!base || size < IVSHM_REGION_MIN)
    return ivshm_error_set (err, IVSHM_ERR_TOO_SMALL, 0,
        "the region has %llu bytes; the ring needs at least %llu",
        (unsigned long long) size, (unsigned long long) IVSHM_REGION_MIN);

  st = reader_validate_header (hdr, size, &ring_size, &session, err);
  if (st != IVSHM_OK)
    return st;
  state = atomic_load_explicit (&hdr->producer_state, ACQ);
  if (state != IVSHM_PRODUCER_ACTIVE &&
      !(state == IVSHM_PRODUCER_CLOSED && cfg && cfg->attach_closed))
    return ivshm_error_set (err, IVSHM_ERR_NO_PRODUCER, 0,
        "the region's last producer has stopped; waiting for a new one");

  r = calloc (1, sizeof *r);
  if (r)
    r->replay_mem = malloc (IVSHM_STICKY_SIZE + IVSHM_RECORD_ALIGN);
  if (!r || !r->replay_mem) {
    free (r);
    return ivshm_error_set (err, IVSHM_ERR_NO_MEMORY, ENOMEM, "out of memory");
  }
  r->replay = (uint8_t *) (((uintptr_t) r->replay_mem + IVSHM_RECORD_ALIGN -
          1) & ~(uintptr_t) (IVSHM_RECORD_ALIGN - 1));
  r->base = base;
  r->hdr = hdr;
  r->ring = (uint8_t *) base + IVSHM_RING_OFFSET;
  r->ring_size = ring_size;
  r->session = session;
  r->token = ivshm_random_u64 ();
  r->published = UINT64_MAX;
  atomic_flag_clear (&r->lock);

  period_us = atomic_load_explicit (&hdr->heartbeat_period_us, RLX);
  if (cfg && cfg->producer_timeout_ns)
    r->producer_timeout_ns = cfg->producer_timeout_ns;
  else if (period_us > MAX_PRODUCER_TIMEOUT_NS / 10000)
    r->producer_timeout_ns = MAX_PRODUCER_TIMEOUT_NS;
  else
    r->producer_timeout_ns = period_us * 10000;
  if (!(cfg && cfg->producer_timeout_ns) &&
      r->producer_timeout_ns < MIN_PRODUCER_TIMEOUT_NS)
    r->producer_timeout_ns = MIN_PRODUCER_TIMEOUT_NS;
  r->last_hb = atomic_load_explicit (&hdr->producer_heartbeat, ACQ);
  r->last_hb_change_ns = ivshm_now_ns ();

  /* Claim a slot. */
  for (i = 0; i < IVSHM_MAX_READERS; i++) {
    uint64_t expected = 0;
    IvshmReaderSlot *s = slot_of (base, i);
    if (atomic_compare_exchange_strong_explicit (&s->owner, &expected,
            r->token, SEQ, RLX)) {
      r->slot = s;
      r->slot_index = i;
      break;
    }
  }
  if (!r->slot) {
    ivshm_reader_free (r);
    return ivshm_error_set (err, IVSHM_ERR_NO_SLOT, 0,
        "all %u reader slots of the region are taken", IVSHM_MAX_READERS);
  }
  r->stats.slot = r->slot_index;
  atomic_store_explicit (&r->slot->state, IVSHM_SLOT_CLAIMED, SEQ);
  atomic_store_explicit (&r->slot->session_id, session, RLX);
  atomic_store_explicit (&r->slot->pid, ivshm_process_id (), RLX);
  atomic_store_explicit (&r->slot->kernel_id, ivshm_kernel_id (), RLX);
  r->producer_local = ivshm_kernel_id () != 0 &&
      atomic_load_explicit (&hdr->producer_kernel_id, RLX) ==
      ivshm_kernel_id ();
  atomic_store_explicit (&r->slot->heartbeat, 0, RLX);
  atomic_store_explicit (&r->slot->records_read, 0, RLX);

  /* Register a position no later than the producer's tail, then make sure
   * the tail did not pass it meanwhile (the Dekker pair with
   * writer_reclaim). From then on the producer keeps everything from t. */
  t = atomic_load_explicit (&hdr->tail, SEQ);
  atomic_store_explicit (&r->slot->read_pos, t, SEQ);
  atomic_store_explicit (&r->slot->state, IVSHM_SLOT_ACTIVE, SEQ);
  for (tries = 0;; tries++) {
    tail = atomic_load_explicit (&hdr->tail, SEQ);
    if (tail <= t)
      break;
    if (tries > 1000) {
      ivshm_reader_free (r);
      return ivshm_error_set (err, IVSHM_ERR_CORRUPT, 0,
          "the producer's tail keeps moving past this reader");
    }
    t = tail;
    atomic_store_explicit (&r->slot->read_pos, t, SEQ);
  }
  if (t % IVSHM_RECORD_ALIGN) {
    /* every position a reader reads from starts a record; the ring's
     * offsets are taken from it */
    ivshm_reader_free (r);
    return ivshm_error_set (err, IVSHM_ERR_CORRUPT, 0,
        "the producer's tail %llu is not a record boundary",
        (unsigned long long) t);
  }

  flags = atomic_load_explicit (&hdr->producer_flags, ACQ);
  if (!(flags & IVSHM_PRODUCER_FLAG_HAD_READER) && !reader_has_company (r)) {
    /* The first reader of the session: the producer kept everything from
     * the tail on (before it, at most skips and pads). */
    reader_set_pos (r, t);
  } else {
    /* Mid-stream: replay the sticky records, then start with the next
     * record after the later of write_pos and the records they cover. */
    w_pos = atomic_load_explicit (&hdr->write_pos, ACQ);
    st = reader_snapshot_sticky (r, &applies_from, &seq);
    if (st != IVSHM_OK) {
      ivshm_reader_free (r);
      return ivshm_error_set (err, st, 0, st == IVSHM_AGAIN ?
          "the producer is rewriting its sticky records; try again" :
          "the sticky area holds an impossible length");
    }
    if (applies_from > w_pos) {
      /* the producer is between updating the sticky area and publishing
       * the record it describes; wait for it */
      uint64_t w2 = atomic_load_explicit (&hdr->write_pos, ACQ);
      if (applies_from > w2) {
        ivshm_reader_free (r);
        return ivshm_error_set (err, IVSHM_AGAIN, 0,
            "the producer is publishing; try again");
      }
      w_pos = applies_from;
    }
    if (w_pos < t || w_pos - t > ring_size || w_pos % IVSHM_RECORD_ALIGN) {
      ivshm_reader_free (r);
      return ivshm_error_set (err, IVSHM_ERR_CORRUPT, 0,
          "the producer's write position %llu is impossible (tail %llu)",
          (unsigned long long) w_pos, (unsigned long long) t);
    }
    reader_set_pos (r, w_pos);
    r->stats.joined_mid_stream = true;
  }
  reader_advance (r, r->pos);

  /* The session must not have changed under us. */
  if (atomic_load_explicit (&hdr->magic, SEQ) != IVSHM_MAGIC ||
      atomic_load_explicit (&hdr->session_id, SEQ) != session) {
    ivshm_reader_free (r);
    return ivshm_error_set (err, IVSHM_AGAIN, 0,
        "the producer restarted while this reader attached; try again");
  }

  *out = r;
  return IVSHM_OK;
}

void
ivshm_reader_heartbeat (IvshmReader * r)
{
  if (r->slot)
    atomic_fetch_add_explicit (&r->slot->heartbeat, 1, REL);
}

uint64_t
ivshm_reader_session (const IvshmReader * r)
{
  return r->session;
}

void
ivshm_reader_get_stats (IvshmReader * r, IvshmReaderStats * stats)
{
  reader_lock (r);
  *stats = r->stats;
  reader_unlock (r);
}

bool
ivshm_reader_wait (IvshmReader * r, IvshmWaiter * waiter, uint64_t timeout_ns)
{
  uint32_t v = atomic_load_explicit (&r->hdr->data_futex, SEQ);
  bool ok;

  if (r->replay_off < r->replay_len)
    return !ivshm_waiter_is_flushing (waiter);
  atomic_fetch_add_explicit (&r->hdr->readers_sleeping, 1, SEQ);
  if (atomic_load_explicit (&r->hdr->write_pos, SEQ) != r->pos) {
    atomic_fetch_sub_explicit (&r->hdr->readers_sleeping, 1, RLX);
    return !ivshm_waiter_is_flushing (waiter);
  }
  ok = ivshm_wait_on (waiter, &r->hdr->data_futex, v, timeout_ns);
  atomic_fetch_sub_explicit (&r->hdr->readers_sleeping, 1, RLX);
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
  return false;
}

static bool
reader_still_owner (IvshmReader * r)
{
  return r->slot &&
      atomic_load_explicit (&r->slot->state, ACQ) == IVSHM_SLOT_ACTIVE &&
      atomic_load_explicit (&r->slot->owner, ACQ) == r->token;
}

/* Why did the ring stop making sense? Tells a producer restart from a
 * producer that went away from garbage. */
static IvshmStatus
reader_diagnose (IvshmReader * r, IvshmError * err, const char *what,
    unsigned long long a, unsigned long long b)
{
  uint64_t magic = atomic_load_explicit (&r->hdr->magic, ACQ);

  /* a new session wipes every slot, so ask about the session first */
  if (magic == 0 || (magic == IVSHM_MAGIC &&
          atomic_load_explicit (&r->hdr->session_id, ACQ) != r->session))
    return ivshm_error_set (err, IVSHM_ERR_SESSION_CHANGED, 0,
        "the producer restarted (new session)");
  if (!reader_still_owner (r))
    return ivshm_error_set (err, IVSHM_ERR_EVICTED, 0,
        "the producer dropped this reader (its lease expired or its slot "
        "held invalid values)");
  if (magic != IVSHM_MAGIC)
    return ivshm_error_set (err, IVSHM_ERR_CORRUPT, 0,
        "the region's magic was overwritten (0x%016llx)",
        (unsigned long long) magic);
  reader_lock (r);
  r->stats.invalid++;
  reader_unlock (r);
  return ivshm_error_set (err, IVSHM_ERR_CORRUPT, 0, "%s (%llu, %llu)", what,
      a, b);
}

/* Nothing new: is the producer still there? */
static IvshmStatus
reader_check_producer (IvshmReader * r, IvshmError * err)
{
  uint64_t hb, now;
  uint32_t state;

  if (!reader_still_owner (r))
    return reader_diagnose (r, err, "", 0, 0);
  if (atomic_load_explicit (&r->hdr->magic, ACQ) != IVSHM_MAGIC ||
      atomic_load_explicit (&r->hdr->session_id, ACQ) != r->session)
    return reader_diagnose (r, err, "", 0, 0);

  state = atomic_load_explicit (&r->hdr->producer_state, ACQ);
  if (state == IVSHM_PRODUCER_CLOSED)
    return ivshm_error_set (err, IVSHM_ERR_PRODUCER_GONE, 0,
        "the producer closed its session");

  hb = atomic_load_explicit (&r->hdr->producer_heartbeat, ACQ);
  now = ivshm_now_ns ();
  if (hb != r->last_hb) {
    r->last_hb = hb;
    r->last_hb_change_ns = now;
  } else if (now - r->last_hb_change_ns > r->producer_timeout_ns) {
    return ivshm_error_set (err, IVSHM_ERR_PRODUCER_GONE, 0,
        "the producer's heartbeat stopped %llu ms ago (it crashed or hangs)",
        (unsigned long long) ((now - r->last_hb_change_ns) / 1000000));
  }
  return IVSHM_AGAIN;
}

static IvshmStatus
reader_next_replay (IvshmReader * r, IvshmRecord * rec, IvshmError * err)
{
  IvshmRecordHeader h;
  uint64_t left = r->replay_len - r->replay_off, len;

  memcpy (&h, r->replay + r->replay_off, sizeof h);
  if (h.payload_len > left - sizeof h ||
      (h.type != IVSHM_RECORD_CAPS && h.type != IVSHM_RECORD_EVENT)) {
    reader_lock (r);
    r->stats.invalid++;
    reader_unlock (r);
    r->replay_len = 0;
    return ivshm_error_set (err, IVSHM_ERR_CORRUPT, 0,
        "a sticky record has type %u and %llu bytes of payload in %llu",
        h.type, (unsigned long long) h.payload_len, (unsigned long long) left);
  }
  len = ivshm_record_len (h.payload_len);
  rec->h = h;
  rec->payload = r->replay + r->replay_off + sizeof h;
  rec->replayed = true;
  r->cur_is_replay = true;
  r->cur_len = len;
  r->cur_type = h.type;
  r->cur_payload_len = h.payload_len;
  return IVSHM_OK;
}

IvshmStatus
ivshm_reader_next (IvshmReader * r, IvshmRecord * rec, IvshmError * err)
{
  IvshmRecordHeader h;
  uint64_t w_pos, off, avail, len, skips = 0;
  int pads = 0;

  if (!r->slot)
    return ivshm_error_set (err, IVSHM_ERR_EVICTED, 0, "detached");
  if (r->replay_off < r->replay_len)
    return reader_next_replay (r, rec, err);

  for (;;) {
    w_pos = atomic_load_explicit (&r->hdr->write_pos, ACQ);
    if (w_pos == r->pos)
      return reader_check_producer (r, err);
    /* the session lives in a line the producer writes only every heartbeat
     * period, so this costs little; a stale reader must not take a new
     * session's records for its own */
    if (atomic_load_explicit (&r->hdr->session_id, RLX) != r->session)
      return reader_diagnose (r, err, "", 0, 0);
    if (w_pos < r->pos || w_pos - r->pos > r->ring_size ||
        w_pos % IVSHM_RECORD_ALIGN)
      return reader_diagnose (r, err,
          "the producer's write position is impossible for this reader",
          (unsigned long long) w_pos, (unsigned long long) r->pos);

    avail = w_pos - r->pos;
    off = r->off;
    memcpy (&h, r->ring + off, sizeof h);

    if (h.pos != r->pos)
      return reader_diagnose (r, err,
          "a record does not carry its own position",
          (unsigned long long) h.pos, (unsigned long long) r->pos);
    if (h.payload_len > r->ring_size - off - sizeof h)
      return reader_diagnose (r, err,
          "a record's payload runs past the end of the ring",
          (unsigned long long) h.payload_len, (unsigned long long) off);
    len = ivshm_record_len (h.payload_len);
    if (len > avail)
      return reader_diagnose (r, err,
          "a record is longer than what the producer published",
          (unsigned long long) len, (unsigned long long) avail);

    switch (h.type) {
      case IVSHM_RECORD_PAD:
        if (off + len != r->ring_size || ++pads > 1)
          return reader_diagnose (r, err,
              "a pad record does not end at the end of the ring",
              (unsigned long long) off, (unsigned long long) len);
        /* fall through */
      case IVSHM_RECORD_SKIP:
        if (!reader_still_owner (r))
          return reader_diagnose (r, err, "", 0, 0);
        reader_advance (r, r->pos + len);
        /* each skip moves on by at least 64 bytes; a producer writing
         * nothing but skips still cannot keep us here */
        if (++skips > r->ring_size / IVSHM_RECORD_ALIGN)
          return IVSHM_AGAIN;
        continue;
      case IVSHM_RECORD_BUFFER:
      case IVSHM_RECORD_CAPS:
      case IVSHM_RECORD_EVENT:
        break;
      default:
        return reader_diagnose (r, err, "a record has an unknown type",
            (unsigned long long) h.type, (unsigned long long) r->pos);
    }

    rec->h = h;
    rec->payload = r->ring + off + sizeof h;
    rec->replayed = false;
    r->cur_is_replay = false;
    r->cur_len = len;
    r->cur_type = h.type;
    r->cur_payload_len = h.payload_len;
    return IVSHM_OK;
  }
}

IvshmStatus
ivshm_reader_release (IvshmReader * r)
{
  if (r->cur_len == 0)
    return IVSHM_ERR_INVALID_ARG;

  reader_count (r);
  if (r->cur_is_replay) {
    r->replay_off += (uint32_t) r->cur_len;
    r->cur_len = 0;
    return IVSHM_OK;
  }

  /* Whatever the caller copied out of the record must not have been
   * overwritten: that holds as long as we still owned the slot after the
   * copy (the writer evicts before it reuses space). */
  atomic_thread_fence (ACQ);
  if (!reader_still_owner (r)) {
    r->cur_len = 0;
    return IVSHM_ERR_EVICTED;
  }
  reader_advance (r, r->pos + r->cur_len);
  r->cur_len = 0;
  atomic_store_explicit (&r->slot->records_read, r->stats.records, RLX);
  return IVSHM_OK;
}

IvshmStatus
ivshm_reader_hold (IvshmReader * r, IvshmHold * hold)
{
  uint64_t id;

  if (r->cur_len == 0 || r->cur_is_replay)
    return IVSHM_ERR_INVALID_ARG;
  /* a leaky producer may write over a record once it has dropped us: only
   * a copy, checked after it is made, is safe then */
  if (atomic_load_explicit (&r->hdr->producer_flags, RLX) &
      IVSHM_PRODUCER_FLAG_LEAKY)
    return IVSHM_AGAIN;
  {
    bool full;

    /* unhold() moves held_first from other threads: look under the lock */
    reader_lock (r);
    if (r->held_end - r->held_first >= IVSHM_MAX_HELD)
      reader_publish_pos_locked (r);
    full = r->held_end - r->held_first >= IVSHM_MAX_HELD;
    reader_unlock (r);
    if (full)
      return IVSHM_AGAIN;
  }
  if (!reader_still_owner (r)) {
    r->cur_len = 0;
    return IVSHM_ERR_EVICTED;
  }

  reader_count (r);
  reader_lock (r);
  id = r->held_end++;
  r->held[id % IVSHM_MAX_HELD].pos = r->pos;
  r->held[id % IVSHM_MAX_HELD].len = r->cur_len;
  r->held[id % IVSHM_MAX_HELD].released = false;
  r->held_bytes += r->cur_len;
  reader_set_pos (r, r->pos + r->cur_len);
  reader_publish_pos_locked (r);
  reader_unlock (r);

  hold->id = id;
  hold->pos = r->held[id % IVSHM_MAX_HELD].pos;
  r->cur_len = 0;
  atomic_store_explicit (&r->slot->records_read, r->stats.records, RLX);
  return IVSHM_OK;
}

void
ivshm_reader_unhold (IvshmReader * r, const IvshmHold * hold)
{
  reader_lock (r);
  if (hold->id >= r->held_first && hold->id < r->held_end &&
      r->held[hold->id % IVSHM_MAX_HELD].pos == hold->pos &&
      !r->held[hold->id % IVSHM_MAX_HELD].released) {
    r->held[hold->id % IVSHM_MAX_HELD].released = true;
    r->held_bytes -= r->held[hold->id % IVSHM_MAX_HELD].len;
    reader_publish_pos_locked (r);
  }
  reader_unlock (r);
}

void
ivshm_reader_held (IvshmReader * r, unsigned *count, uint64_t *bytes)
{
  reader_lock (r);
  reader_publish_pos_locked (r);
  if (count)
    *count = (unsigned) (r->held_end - r->held_first);
  if (bytes)
    *bytes = r->held_bytes;
  reader_unlock (r);
}

bool
ivshm_reader_holding_back (IvshmReader * r)
{
  uint64_t w, oldest, pos;
  bool any;

  reader_lock (r);
  reader_publish_pos_locked (r);
  any = r->held_first < r->held_end;
  oldest = any ? r->held[r->held_first % IVSHM_MAX_HELD].pos : r->pos;
  pos = r->pos;
  reader_unlock (r);
  if (!any)
    return false;
  /* Held records matter when they keep the producer further back than our
   * own reading does (more than half a ring behind us), and the producer
   * is coming round to them (three quarters of a ring ahead of them). A
   * last-sample that holds the frame we just read never qualifies: copying
   * it would not give the producer any room. */
  w = atomic_load_explicit (&r->hdr->write_pos, ACQ);
  return pos - oldest > r->ring_size / 2 && w >= oldest &&
      w - oldest > r->ring_size / 4 * 3;
}

uint64_t
ivshm_reader_position (IvshmReader * r)
{
  uint64_t pos;

  reader_lock (r);
  pos = r->pos;
  reader_unlock (r);
  return pos;
}

bool
ivshm_reader_producer_leaky (const IvshmReader * r)
{
  return (atomic_load_explicit (&r->hdr->producer_flags, RLX) &
      IVSHM_PRODUCER_FLAG_LEAKY) != 0;
}

uint64_t
ivshm_reader_lag (IvshmReader * r)
{
  uint64_t w = atomic_load_explicit (&r->hdr->write_pos, ACQ), pos;

  reader_lock (r);
  pos = r->pos;
  reader_unlock (r);
  /* informative; a hostile value only gives a silly number */
  return w >= pos && w - pos <= r->ring_size ? w - pos : 0;
}

uint64_t
ivshm_reader_ring_size (const IvshmReader * r)
{
  return r->ring_size;
}
