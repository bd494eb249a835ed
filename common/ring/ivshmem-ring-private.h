/* gst-ivshmem: internals of the ring, shared by its files and its tests
 * SPDX-License-Identifier: MIT
 *
 * Not installed and not part of the API. The ring is split by
 * responsibility (PROTOCOL.md names the function that keeps each rule);
 * the writer's four files are layers, listed top first: each calls only
 * those below it, and the slots (tests/ci/check-layers.py fails on a
 * circle of calls between files):
 *
 *   ivshmem-slots.c    the reader slot state machine: claim, wait, adopt,
 *                      evict, reap, let go, and the lease watch
 *   ivshmem-writer.c   the producer: claim and takeover, session format,
 *                      close, heartbeat and tick, waiting for space
 *   ivshmem-spans.c    the producer: reserve, commit, cancel, and the
 *                      write side of the sticky area
 *   ivshmem-reclaim.c  the producer: scanning the slots, the tail, leaky
 *                      eviction, making room
 *   ivshmem-publish.c  the producer: does it still own the region, its
 *                      lock, the table of spans, skip records, publishing
 *                      write_pos
 *   ivshmem-attach.c   a reader: attaching in named steps, adoption
 *   ivshmem-reader.c   a reader: next, release, producer liveness, wait
 *   ivshmem-held.c     a reader: its published position, held records
 *
 * Memory-ordering contract (PROTOCOL.md has the argument in full):
 *  - The writer owns write_pos, tail, the sticky area and the header; it
 *    keeps private copies of them and never reads them back from shared
 *    memory, but for producer_owner, which tells it whether it still owns
 *    the region (and the old values the format swaps from). It publishes
 *    records with a compare-and-swap of write_pos, and tail with one from
 *    its last value.
 *  - A reader owns its slot's read_pos and heartbeat while it owns the slot;
 *    it publishes the end of what it consumed with a compare-and-swap of
 *    read_pos, from the value it last published, both tagged with its
 *    claim's generation (IVSHM_POS_TAG).
 *  - Each side reads the other's counters with acquire loads, once, into a
 *    local, and validates the local. Nothing read is used unchecked.
 *  - Attaching (a reader registers read_pos, then reads tail) and
 *    reclaiming (the writer stores tail, then reads the slots) are a Dekker
 *    pair and use seq_cst.
 */
#ifndef IVSHMEM_RING_PRIVATE_H
#define IVSHMEM_RING_PRIVATE_H

#include "ivshmem-layout.h"
#include "ivshmem-ring.h"
#include "ivshmem-sticky.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define RLX memory_order_relaxed
#define ACQ memory_order_acquire
#define REL memory_order_release
#define SEQ memory_order_seq_cst

#define DEFAULT_LEASE_TIMEOUT_NS   IVSHM_DEFAULT_LEASE_NS
#define DEFAULT_HEARTBEAT_NS       IVSHM_DEFAULT_HEARTBEAT_NS
#define MIN_TAKEOVER_WAIT_NS       (250ull * 1000 * 1000)
#define MAX_TAKEOVER_WAIT_NS       (1000ull * 1000 * 1000)
#define MIN_PRODUCER_TIMEOUT_NS    IVSHM_MIN_PRODUCER_TIMEOUT_NS
#define MAX_PRODUCER_TIMEOUT_NS    IVSHM_MAX_PRODUCER_TIMEOUT_NS
/* SKIP and PAD records one ivshm_reader_next() call walks at most */
#define MAX_SKIPS_PER_CALL         64u

/* sticky kinds, in the order GStreamer sends them */
enum
{
  STICKY_STREAM_START,
  STICKY_CAPS,
  STICKY_SEGMENT,
  STICKY_TIME,                  /* 2.1: the producer's base time */
  STICKY_TAG,
  STICKY_EOS,
  STICKY_N
};

static inline IvshmHeader *
ivshm_header_of (void *base)
{
  return (IvshmHeader *) base;
}

static inline IvshmReaderSlot *
ivshm_slot_of (void *base, unsigned i)
{
  return (IvshmReaderSlot *) ((uint8_t *) base + IVSHM_SLOT_OFFSET +
      (size_t) i * IVSHM_SLOT_SIZE);
}

static inline IvshmStickyHeader *
ivshm_sticky_of (void *base)
{
  return (IvshmStickyHeader *) ((uint8_t *) base + IVSHM_STICKY_OFFSET);
}

static inline uint64_t
ivshm_ring_size_for_region (uint64_t region_size)
{
  return (region_size - IVSHM_RING_OFFSET) &
      ~(uint64_t) (IVSHM_RECORD_ALIGN - 1);
}

/* ---- test points ------------------------------------------------------ */

/* A test may set this hook to play one interleaving of the model's trails
 * step by step (tests/check/core-lifecycle-model.c): the core calls it at
 * the named points, between a check and the store it guards. NULL (one
 * load and a branch) in any real use; set it only while no other thread
 * runs the core. */
typedef void (*IvshmTestHook) (const char *point, void *obj);
extern IvshmTestHook ivshm_test_hook;
#define IVSHM_TEST_POINT(name, obj) do {                                 \
    if (ivshm_test_hook)                                                  \
      ivshm_test_hook ((name), (obj));                                    \
  } while (0)

/* ---- slots (ivshmem-slots.c) ------------------------------------------ */

/* What an observer last saw of one slot, on its own clock. */
typedef struct
{
  uint64_t owner;
  uint64_t heartbeat;
  uint64_t since_ns;            /* when it first saw that (owner, heartbeat) */
} IvshmLeaseWatch;

/* Moves a slot of the claim whose token is owner to `to` by one
 * compare-and-swap of state and generation (ivshmem-slots.c); false once
 * the slot is not that claim's any more. `point` names its test point. */
bool ivshm_slot_move_from (IvshmReaderSlot * s, uint64_t owner, uint32_t to,
    const char *point);

/* FREE -> CLAIMED: CAS(owner, 0, token), generation + 1, read_pos = the
 * new *tag (no position yet), state `to`. Returns the slot index, or -1 if
 * every slot is taken. */
int ivshm_slot_claim (void *base, uint64_t token, uint32_t to,
    uint64_t *tag);
/* CLAIMED (or ACTIVE, after a failed attach) -> WAITING by the owner,
 * session_id 0 first unless the slot keeps the session that adopted it. */
bool ivshm_slot_enter_waiting (IvshmReaderSlot * s, uint32_t from,
    bool clear_session);
/* WAITING stays WAITING, adopted: the producer that formats `session`
 * stores it by CAS(session_id, seen, session), its only store into a
 * WAITING slot. The reader moves to ACTIVE itself. */
bool ivshm_slot_adopt (IvshmReaderSlot * s, uint64_t session);
/* CLAIMED/ACTIVE -> EVICTED by the producer; owner kept. */
bool ivshm_slot_evict (IvshmReaderSlot * s, uint32_t from);
/* any -> FREE by whoever found owner's lease expired: read_pos POISON,
 * state FREE (CAS), its sleeping bit cleared (and data_futex woken if it
 * was set), CAS(owner, owner, 0), space_futex woken if the producer
 * sleeps. */
bool ivshm_slot_reap (IvshmHeader * hdr, IvshmReaderSlot * s, unsigned i,
    uint64_t owner);
/* The owner lets go: state FREE, then CAS(owner, token, 0), then
 * space_futex woken if the producer sleeps. */
void ivshm_slot_let_go (IvshmHeader * hdr, IvshmReaderSlot * s,
    uint64_t token);
/* Updates the watch of slot s; true if its owner's heartbeat has not moved
 * for lease_ns (then *owner is that owner). A free slot never expires. */
bool ivshm_lease_expired (IvshmLeaseWatch * lw, IvshmReaderSlot * s,
    uint64_t now, uint64_t lease_ns, uint64_t *owner);
/* A reader that found no free slot: watches the taken ones for lease_ns,
 * reaps those whose heartbeat did not move, then claims one. Returns the
 * index, or -1 with *live the number of holders seen alive. */
int ivshm_slot_claim_reaping (void *base, uint64_t token, uint32_t to,
    uint64_t lease_ns, unsigned *live, uint64_t *tag);

/* ---- the writer ------------------------------------------------------- */

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

struct IvshmWriter
{
  uint8_t *base;
  IvshmHeader *hdr;
  IvshmStickyHeader *sticky;
  uint8_t *ring;
  uint64_t ring_size;
  uint64_t session;
  uint64_t token;               /* our producer_owner */
  uint64_t lease_timeout_ns;
  _Atomic bool stopped;         /* closed, or taken over: writes nothing */
  _Atomic bool taken_over;      /* another producer owns the region */

  uint64_t kernel_id;           /* ivshm_kernel_id() */
  bool leaky;                   /* never wait for readers */
  bool readers_local;           /* every active reader shares our kernel */

  uint64_t session_base;        /* where this session's positions start */
  uint64_t write_pos;           /* private copy */
  uint64_t published;           /* last value CAS'd into hdr->write_pos */
  uint64_t tail;                /* reclaimed up to here (private) */
  uint64_t tail_published;      /* last value stored in hdr->tail */
  bool had_reader;
  /* before the first reader: where the session's first real record is
   * (retain_fixed), or how far only skips and pads were published */
  uint64_t retain_from;
  bool retain_fixed;

  /* Reserved records, oldest first: spans[i % MAX_SPANS] for i in
   * [span_first, span_end). Those before span_pub are published. */
  Span spans[MAX_SPANS];
  uint64_t span_first;
  uint64_t span_pub;
  uint64_t span_end;
  uint64_t reserve_pos;         /* end of the newest span */
  uint64_t announced;           /* last value CAS'd into hdr->reserve_end */
  uint64_t reserve_off;         /* reserve_pos % ring_size */
  /* the cache-hot ring (writer_early_wrap): wrap early from this offset
   * on; after a look that found the ring not empty, look again only from
   * hot_next_look on (a position) */
  uint64_t hot_window;
  uint64_t hot_next_look;
  uint64_t early_margin;        /* writer_early_margin() adds it */

  /* the one reservation of ivshm_writer_reserve/commit */
  IvshmSpan current;
  uint64_t current_len;         /* the payload length asked for */
  bool current_active;

  /* Readers of the previous session that still held ring space when we
   * formatted (PROTOCOL.md, "Holders of the previous session"): the slot
   * we evicted, its owner then, and the position of its oldest record in
   * our positions. Until the owner lets go of the slot or is reaped, the
   * free space stops there. Private, the writer's thread only. */
  struct
  {
    uint64_t owner;             /* 0: none */
    uint64_t pos;
  } holder[IVSHM_MAX_READERS];
  unsigned n_holders;
  uint64_t holders_pos;         /* the lowest holder[].pos, if n_holders */
  uint64_t holders_until_ns;    /* leaky: forgotten after one lease */
  /* Space that a producer we took over had reserved but not published
   * (from its write_pos to its reserve_end), in our positions: its late
   * payload may still land there, so the free space stops at stale_pos
   * until stale_until_ns (one lease after the format; 0: none). */
  uint64_t stale_pos;
  uint64_t stale_until_ns;

  /* guards lease[] and the slot scans against ivshm_writer_tick() */
  atomic_flag lock;
  IvshmLeaseWatch lease[IVSHM_MAX_READERS];

  /* private copies of the sticky records: header + payload, 64-aligned */
  uint8_t *sticky_rec[STICKY_N];
  uint64_t sticky_len[STICKY_N];
  uint32_t producer_flags;

  /* the clock area's sequence lock (ivshmem-clock.c): taken by the thread
   * that publishes a sample; clock_seq is its last even value */
  atomic_flag clock_busy;
  uint64_t clock_seq;

  IvshmWriterStats stats;
};

/* ivshmem-publish.c: the bottom layer, calls nothing else of the writer */
bool ivshm_writer_owns (IvshmWriter * w);
bool ivshm_writer_cas_owned (IvshmWriter * w, _Atomic uint64_t * field,
    uint64_t seen, uint64_t v);
void ivshm_writer_set_flag (IvshmWriter * w, uint32_t flag);
void ivshm_writer_lock (IvshmWriter * w);
bool ivshm_writer_trylock (IvshmWriter * w);
void ivshm_writer_unlock (IvshmWriter * w);
Span *ivshm_span_at (IvshmWriter * w, uint64_t id);
/* A skip record over len bytes at pos (ring offset off), if we own the
 * region. */
void ivshm_writer_write_skip (IvshmWriter * w, uint64_t pos, uint64_t off,
    uint64_t len);
void ivshm_writer_advance (IvshmWriter * w);
void ivshm_writer_collect (IvshmWriter * w);

/* ivshmem-reclaim.c: above publish.c and the slots */
uint64_t ivshm_writer_reclaim (IvshmWriter * w, bool check_leases);
uint64_t ivshm_writer_make_room (IvshmWriter * w, uint64_t need);
uint64_t ivshm_writer_free_space (IvshmWriter * w);
unsigned ivshm_writer_reap_expired (IvshmWriter * w, uint64_t now);
bool ivshm_writer_reader_came (IvshmWriter * w);

/* ivshmem-spans.c: above reclaim.c; ivshmem-writer.c (the object, on top)
 * calls all three */
void ivshm_writer_clear_sticky (IvshmWriter * w);

/* ---- a reader --------------------------------------------------------- */

struct IvshmReader
{
  uint8_t *base;
  uint64_t size;                /* bytes mapped */
  IvshmHeader *hdr;
  IvshmReaderSlot *slot;
  uint8_t *ring;
  uint64_t ring_size;           /* validated at attach, never re-read */
  uint64_t session;             /* 0 while WAITING */
  uint64_t token;
  unsigned slot_index;
  bool producer_local;          /* the producer shares our kernel */
  bool waiting;                 /* in a WAITING slot, no session yet */
  IvshmReaderConfig cfg;

  uint64_t pos;                 /* next ring position to read */
  uint64_t off;                 /* pos % ring_size, kept incrementally */
  uint64_t published;           /* last position stored in read_pos, tag
                                 * off (under lock) */
  uint64_t tag;                 /* our claim's tag, in every read_pos */
  bool lost;                    /* the slot is no longer ours (under lock) */
  uint64_t cur_len;             /* length of the record handed out, 0: none */
  uint64_t cur_payload_len;
  uint16_t cur_type;

  /* replay of the sticky records after a mid-stream attach: a snapshot
   * (ivshmem-sticky.c, the one parser of the sticky area) walked by an
   * iterator; replay_rec is the record next() handed out, until
   * release */
  void *snap_mem;
  IvshmStickySnapshot *snap;
  IvshmStickyIter replay;
  IvshmStickyRecord replay_rec;
  bool replaying;
  bool replay_checked;
  bool replay_have;
  bool cur_is_replay;

  /* Records handed out in place (zero-copy) and not yet given back,
   * oldest first: held[i % MAX_HELD] for i in [held_first, held_end).
   * `lock` guards them, the slot (every store into it) and the
   * publication of read_pos. */
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
  bool stalled;                 /* PRODUCER_STALLED reported for this stall */

  IvshmReaderStats stats;
};

/* ivshmem-held.c */
void ivshm_reader_lock (IvshmReader * r);
void ivshm_reader_unlock (IvshmReader * r);
bool ivshm_reader_owns_locked (IvshmReader * r);
void ivshm_reader_publish_locked (IvshmReader * r);
bool ivshm_reader_store_pos_locked (IvshmReader * r, uint64_t pos);
void ivshm_reader_set_pos (IvshmReader * r, uint64_t pos);
void ivshm_reader_advance (IvshmReader * r, uint64_t pos);

/* ivshmem-attach.c */
IvshmStatus ivshm_reader_attach_waiting (IvshmReader * r, IvshmError * err);
void ivshm_reader_detach (IvshmReader * r);

/* ivshmem-reader.c */
IvshmStatus ivshm_reader_diagnose (IvshmReader * r, IvshmError * err,
    const char *what, unsigned long long a, unsigned long long b);

#endif /* IVSHMEM_RING_PRIVATE_H */
