/* gst-ivshmem: the ring of records inside a region
 * SPDX-License-Identifier: MIT
 *
 * One producer (IvshmWriter) writes records into the ring; up to
 * IVSHM_MAX_READERS readers (IvshmReader) read them, each at its own pace.
 * Nothing here blocks: a call that cannot proceed returns IVSHM_AGAIN and
 * the caller decides how to wait (ivshm_*_wait() with an IvshmWaiter that
 * the GStreamer elements' unlock() sets flushing). See PROTOCOL.md for the layout, the memory
 * ordering and the attach/detach rules.
 *
 * Neither object is thread-safe: one thread uses one IvshmWriter or
 * IvshmReader at a time, except the calls marked "Thread-safe" below
 * (ivshm_writer_tick(), ivshm_*_heartbeat(), the reader's hold bookkeeping
 * and the statistics getters), which may be called from any thread.
 *
 * Protocol 2.0 (PROTOCOL.md): a producer owns the region by an atomic
 * claim (IvshmHeader.producer_owner) and stops with IVSHM_ERR_TAKEN_OVER
 * before any write once another producer took over; readers that wait for
 * a producer hold a WAITING slot that the next session adopts; expired
 * slots are reaped by ivshm_writer_tick() and by readers that need a slot.
 */
#ifndef IVSHMEM_RING_H
#define IVSHMEM_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ivshmem-os.h"
#include "ivshmem-protocol.h"
#include "ivshmem-status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A record as the API sees it: the header fields plus where the payload
 * is. For a reader, `payload` points into shared memory (or into the
 * reader's private copy of the sticky records): copy it before you parse
 * it, since a hostile peer may change it under you, and do not use it after
 * ivshm_reader_release(). */
typedef struct
{
  IvshmRecordHeader h;
  const uint8_t *payload;
  /* true for a record replayed from the sticky area after a mid-stream
   * attach, false for a record read from the ring */
  bool replayed;
} IvshmRecord;

/* ---- the lease --------------------------------------------------------- */

/* The one place of the lease policy's figures (PROTOCOL.md section 11).
 * A reader whose heartbeat has not moved for the lease, while the writer
 * waits for space, loses its slot: IVSHM_DEFAULT_LEASE_NS unless
 * IvshmWriterConfig.lease_timeout_ns says otherwise. A reader takes the
 * producer for gone when its heartbeat has not moved for ten of its
 * advertised periods, but never sooner than IVSHM_MIN_PRODUCER_TIMEOUT_NS
 * nor later than IVSHM_MAX_PRODUCER_TIMEOUT_NS. The elements print these
 * in their messages; do not write the figures anywhere else. */
#define IVSHM_DEFAULT_LEASE_NS        (3ull * 1000 * 1000 * 1000)
#define IVSHM_MIN_PRODUCER_TIMEOUT_NS (2ull * 1000 * 1000 * 1000)
#define IVSHM_MAX_PRODUCER_TIMEOUT_NS (60ull * 1000 * 1000 * 1000)

/* ---- the producer ---------------------------------------------------- */

typedef struct IvshmWriter IvshmWriter;

typedef struct
{
  /* A reader whose heartbeat has not moved for this long, while the
   * writer waits for space, loses its slot. 0: IVSHM_DEFAULT_LEASE_NS. */
  uint64_t lease_timeout_ns;
  /* How often the element calls ivshm_writer_heartbeat(); advertised in
   * the header so readers can tell a dead producer. 0: 100 ms. */
  uint64_t heartbeat_period_ns;
  /* When a previous producer left its session ACTIVE (it crashed, or is
   * still alive), watch its heartbeat this long before taking over.
   * 0: 2.5 times its advertised period, at most 1 s. */
  uint64_t takeover_wait_ns;
  /* Leaky: never wait for readers. When the ring is full, the readers
   * that hold back the space are dropped, slowest first; they join again
   * at the live edge and report what they lost. Nothing is kept for a
   * first reader. false (lossless): wait for the slowest live reader. */
  bool leaky;
  /* Called (from ivshm_writer_new(), in the caller's thread) once before
   * it waits for the lease of a previous producer that still owns the
   * region to expire: pid is that producer's (informative), wait_ns how
   * long the wait lasts at most. NULL: say nothing. */
  void (*takeover_wait_cb) (void *data, uint64_t pid, uint64_t wait_ns);
  void *takeover_wait_data;
  /* The cache-hot ring (PROTOCOL.md, "Early wrap"): once the next record
   * would start this many bytes or more into the ring and the ring's start
   * has room for it (the readers released it, no reservation of ours is
   * there), the writer pads to the ring's end and starts again at its
   * start, in memory that is still in the cache. 0:
   * IVSHM_DEFAULT_HOT_WINDOW; UINT64_MAX: never wrap early. A ring no
   * larger than the window never wraps early. */
  uint64_t hot_window;
  /* How much more than the record an early wrap leaves free at the ring's
   * start: the slack of a reader that stalls right after it (0: none
   * beyond room to copy our own pending reservations). See also
   * ivshm_writer_set_early_margin(). */
  uint64_t early_margin;
} IvshmWriterConfig;

/* 4 MiB: more than a core's L2 cache on current x86 and ARM servers. A
 * reader that copies records out keeps the lines it read in its L2, and
 * each line the writer then writes again costs a probe of that core: with
 * a 256 KiB window, 64 KiB records copied out by the reader ran 13 %
 * slower than without early wraps (tests/bench/run.py); from 4 MiB on the
 * reader has let go of them. Records of megabytes, which no L2 holds,
 * still cycle through a few of them (PROTOCOL.md, "Early wrap"). */
#define IVSHM_DEFAULT_HOT_WINDOW (4ull * 1024 * 1024)

typedef struct
{
  uint64_t records;             /* records written, pads excluded */
  uint64_t buffers;             /* BUFFER records */
  uint64_t bytes;               /* payload bytes of BUFFER records */
  uint64_t full_waits;          /* times reserve returned IVSHM_AGAIN */
  uint64_t readers_evicted;     /* slots reaped: leases that expired */
  uint64_t invalid_slots;       /* slots holding invalid values, evicted */
  uint64_t sticky_overflows;    /* sticky records that did not fit */
  uint64_t cancelled;           /* reservations turned into skips */
  uint64_t readers_lapped;      /* readers a leaky producer dropped */
  uint64_t early_wraps;         /* pads written early (the cache-hot ring) */
} IvshmWriterStats;

/* Changes IvshmWriterConfig.early_margin, for instance once the stream
 * turns out to be live (ivshmemsink: half the ring then). */
void ivshm_writer_set_early_margin (IvshmWriter * writer, uint64_t bytes);

/* Claims the region (compare-and-swap of producer_owner), formats the ring
 * and starts a new session: readers waiting in a WAITING slot are adopted
 * and read it from its first record. Fails with TOO_SMALL, PRODUCER_BUSY
 * (another producer owns the region and its heartbeat is moving),
 * TAKEN_OVER (another producer took the region over while this one
 * formatted it), or NO_MEMORY. Blocks up to takeover_wait_ns when an earlier producer still
 * owns the region (takeover_wait_cb says so first). */
IvshmStatus ivshm_writer_new (void *base, uint64_t size,
    const IvshmWriterConfig * config, IvshmWriter ** writer,
    IvshmError * err);

/* Marks the session closed (readers that drained it see PRODUCER_GONE)
 * and frees the writer. Does not unmap the region. */
void ivshm_writer_free (IvshmWriter * writer);

/* Reserves room for a record with payload_len bytes of payload and returns
 * where to write the payload (64-byte aligned, contiguous). AGAIN: the ring
 * is full, wait for the readers and call again. TOO_BIG: it can never fit
 * (ivshm_writer_max_payload()). TAKEN_OVER: another producer owns the
 * region now; this writer writes nothing more (every later call fails the
 * same way). Only one reservation at a time. */
IvshmStatus ivshm_writer_reserve (IvshmWriter * writer, uint64_t payload_len,
    void **payload);

/* Publishes the reserved record. info->payload_len may be smaller than the
 * reservation, never larger; info->pos is ignored. */
IvshmStatus ivshm_writer_commit (IvshmWriter * writer,
    const IvshmRecordHeader * info);

/* Drops a reservation without publishing anything. */
void ivshm_writer_abort (IvshmWriter * writer);

/* Several reservations at once, for memory that upstream elements fill
 * in place (zero-copy). A span is published when it and every span before
 * it are no longer pending; committing a span cancels the pending spans
 * reserved before it (order in the ring is stream order), which then
 * commit with IVSHM_ERR_STALE: write their record anew. Its space stays
 * taken until ivshm_writer_release_span(), which may be called from any
 * thread once no local pointer into the span is left. */
typedef struct
{
  uint64_t id;
  uint64_t pos;                 /* ring position of the record */
  uint8_t *payload;             /* 64-byte aligned */
  uint64_t capacity;            /* payload bytes available */
} IvshmSpan;

IvshmStatus ivshm_writer_reserve_span (IvshmWriter * writer,
    uint64_t payload_len, IvshmSpan * span);
IvshmStatus ivshm_writer_commit_span (IvshmWriter * writer,
    const IvshmSpan * span, const IvshmRecordHeader * info);
void ivshm_writer_cancel_span (IvshmWriter * writer, const IvshmSpan * span);
void ivshm_writer_release_span (IvshmWriter * writer,
    const IvshmSpan * span);

/* Marks the session closed, as ivshm_writer_free() does, for a writer that
 * must live on (spans still referenced). Idempotent. */
void ivshm_writer_close (IvshmWriter * writer);

/* reserve + memcpy + commit */
IvshmStatus ivshm_writer_write (IvshmWriter * writer,
    const IvshmRecordHeader * info, const void *payload);

/* After reserve returned AGAIN: sleeps until a reader may have freed
 * space, at most timeout_ns. A reader on this kernel wakes it at once;
 * one across a VM boundary cannot, so keep timeout_ns short then
 * (ivshm_writer_readers_local()). false: the waiter is flushing. */
bool ivshm_writer_wait (IvshmWriter * writer, IvshmWaiter * waiter,
    uint64_t timeout_ns);
/* ivshm_writer_wait() in two halves, for a writer that several threads
 * share under a lock: prepare under the lock (false: space was freed
 * meanwhile, do not sleep), then sleep outside it; finish touches only
 * shared memory, not the writer's private state. */
bool ivshm_writer_wait_prepare (IvshmWriter * writer, uint32_t * token);
bool ivshm_writer_wait_finish (IvshmWriter * writer, IvshmWaiter * waiter,
    uint32_t token, uint64_t timeout_ns);
/* true if every active reader runs on this kernel (as of the last scan) */
bool ivshm_writer_readers_local (const IvshmWriter * writer);

/* Bumps the producer heartbeat (unless another producer took over).
 * Thread-safe. */
void ivshm_writer_heartbeat (IvshmWriter * writer);

/* The producer's periodic work; call it every heartbeat period from any
 * thread (the sink's heartbeat thread does). It bumps the heartbeat as
 * ivshm_writer_heartbeat() does, and reaps reader slots whose lease
 * expired (a heartbeat that did not move for lease_timeout_ns, whatever
 * the slot's state), without waiting for the ring to fill. Thread-safe:
 * it takes the writer's internal lock, which the calls that scan the slots
 * take too; if another thread holds it, the reaping waits for the next
 * tick. */
void ivshm_writer_tick (IvshmWriter * writer);

/* Another producer took over this region while this one was stalled: the
 * writer has stopped writing (IVSHM_ERR_TAKEN_OVER). Thread-safe. */
bool ivshm_writer_taken_over (IvshmWriter * writer);

uint64_t ivshm_writer_max_payload (const IvshmWriter * writer);
uint64_t ivshm_writer_session (const IvshmWriter * writer);
uint64_t ivshm_writer_position (const IvshmWriter * writer);
/* How far the writer has reclaimed the ring: no reader needs a record
 * before this position. The writer's private copy, never read back from
 * the region (a peer may scribble over the published one). Call it from
 * the thread (or under the lock) that makes the writer's other calls. */
uint64_t ivshm_writer_tail (const IvshmWriter * writer);
/* Whether a reader has attached to this session yet. Until one has, the
 * producer keeps everything it wrote. Also true once the writer closed or
 * was taken over (it keeps nothing for anybody then). Reads shared memory,
 * never writes it. */
bool ivshm_writer_had_reader (IvshmWriter * writer);
/* Number of readers holding an active slot of this session right now.
 * Reads shared memory, never writes it. */
unsigned ivshm_writer_count_readers (IvshmWriter * writer);
/* Never writes shared memory. Call it from the thread (or under the lock)
 * that makes the writer's other calls; it takes the writer's internal lock
 * against ivshm_writer_tick(), which counts reaped slots. */
void ivshm_writer_get_stats (IvshmWriter * writer, IvshmWriterStats * stats);

/* The smallest power-of-two region in which a record with payload_len
 * bytes of payload fits (what to tell a user whose buffer is too big). */
uint64_t ivshm_region_size_for_payload (uint64_t payload_len);

/* ---- a consumer ------------------------------------------------------ */

typedef struct IvshmReader IvshmReader;

typedef struct
{
  /* The producer counts as gone when its heartbeat has not moved for this
   * long. 0: ten times its advertised period, at least
   * IVSHM_MIN_PRODUCER_TIMEOUT_NS. */
  uint64_t producer_timeout_ns;
  /* Attach to a session whose producer has closed it (a reader that fell
   * behind a leaky producer and joins again, to read the end of the
   * stream: the sticky records, EOS among them). */
  bool attach_closed;
  /* When there is no producer (a zeroed region, a session that is being
   * formatted, closed, or whose producer is gone), take a slot anyway and
   * wait in it (WAITING): the next producer adopts it and this reader
   * reads its session from the first record. ivshm_reader_new() then
   * returns OK with a reader whose next() returns AGAIN (and
   * ivshm_reader_waiting() true) until then. The reader must heartbeat
   * while it waits, or its slot is reaped after a lease. false: return
   * NO_PRODUCER as in 1.x. */
  bool wait_for_producer;
  /* When the producer's heartbeat stops for producer_timeout_ns: true:
   * ivshm_reader_next() returns IVSHM_PRODUCER_STALLED once, keeps the
   * slot (a lossless producer keeps everything for it) and returns AGAIN
   * until the heartbeat moves again, then reads on; false:
   * PRODUCER_GONE, as in 1.x. */
  bool follow_stall;
  /* A session not to attach to (0: none): the one a reader left because
   * its producer went away. With wait_for_producer, the reader waits in a
   * WAITING slot for the next session instead. */
  uint64_t skip_session;
  /* How long a reader that finds every slot taken watches their
   * heartbeats before it reaps the ones that did not move. 0: 3 s. */
  uint64_t lease_timeout_ns;
  /* Protocol 2.1: a reader that attaches to a session whose stream is live
   * (the producer says so) and started more than live_edge_grace_ns ago
   * starts at its live edge (the sticky records, then the next record),
   * even when it is the session's first reader: what a live reader wants.
   * A reader that waited in a WAITING slot before the session started, or
   * that comes within the grace, still reads it from its first record.
   * false: the first reader of a session reads everything the producer
   * kept for it. */
  bool live_edge;
  /* 0: 2 s */
  uint64_t live_edge_grace_ns;
} IvshmReaderConfig;

#define IVSHM_LIVE_EDGE_GRACE_NS (2000ull * 1000 * 1000)

typedef struct
{
  uint64_t records;
  uint64_t buffers;
  uint64_t bytes;
  uint64_t invalid;             /* records or indexes that broke the rules */
  unsigned slot;                /* which reader slot this reader holds */
  bool joined_mid_stream;       /* attached after the first reader */
} IvshmReaderStats;

/* Validates the region's header and attaches as a reader. NO_PRODUCER: no
 * producer has initialised the region (magic 0) or its session is closed:
 * wait and call again (or set wait_for_producer). AGAIN: the producer was
 * busy publishing; call again. BAD_MAGIC, VERSION, CORRUPT, TOO_SMALL: the
 * region is not usable. NO_SLOT: every reader slot is held by a live
 * reader. When no slot is free, the call watches the taken slots'
 * heartbeats for one lease (3 s, blocking) and reaps those that did not
 * move before it gives up; the error says how many holders are live.
 *
 * The first reader of a session reads from the session's start. A later
 * reader first gets the sticky records (stream-start, caps, segment, tags)
 * replayed from the sticky area, then the ring from the next record on. */
IvshmStatus ivshm_reader_new (void *base, uint64_t size,
    const IvshmReaderConfig * config, IvshmReader ** reader,
    IvshmError * err);

/* Detaches (frees the slot) and frees the reader. */
void ivshm_reader_free (IvshmReader * reader);

/* The next record, validated, without consuming it. Pads and skips are
 * skipped, at most 64 per call: then AGAIN with the progress kept, so that
 * a caller re-checks whether it is flushing. AGAIN: nothing new yet (or
 * still WAITING for a producer). PRODUCER_STALLED (follow_stall only): the
 * producer's heartbeat stopped; informative, once per stall. Errors:
 * SESSION_CHANGED, PRODUCER_GONE, EVICTED, CORRUPT (with err->detail). */
IvshmStatus ivshm_reader_next (IvshmReader * reader, IvshmRecord * record,
    IvshmError * err);

/* Consumes the record returned by ivshm_reader_next(), giving its space
 * back to the producer. EVICTED: the producer dropped this reader while it
 * held the record, so a copy made of the payload may be torn: discard it. */
IvshmStatus ivshm_reader_release (IvshmReader * reader);

/* After next returned AGAIN: sleeps until the producer may have published
 * something, at most timeout_ns. A producer on this kernel wakes it at
 * once; one across a VM boundary cannot, so keep timeout_ns short then
 * (ivshm_reader_producer_local()). false: the waiter is flushing. */
bool ivshm_reader_wait (IvshmReader * reader, IvshmWaiter * waiter,
    uint64_t timeout_ns);
bool ivshm_reader_producer_local (const IvshmReader * reader);
/* The reader waits in a WAITING slot for a producer to adopt it. */
bool ivshm_reader_waiting (IvshmReader * reader);

/* Zero-copy reads: instead of releasing the record returned by
 * ivshm_reader_next(), hold it. Reading goes on past it, but its space is
 * not given back to the producer until ivshm_reader_unhold(), which may be
 * called from any thread, in any order. At most IVSHM_MAX_HELD records are
 * held at once (AGAIN: copy this one and release it instead). While this
 * reader keeps its slot, the producer never writes into a held record; if
 * the reader is evicted (its lease expired: its process stalled for
 * seconds) that promise ends. */
#define IVSHM_MAX_HELD 64

typedef struct
{
  uint64_t id;
  uint64_t pos;
} IvshmHold;

IvshmStatus ivshm_reader_hold (IvshmReader * reader, IvshmHold * hold);
void ivshm_reader_unhold (IvshmReader * reader, const IvshmHold * hold);
/* The reader no longer owns its slot: it was evicted, reaped, or a new
 * session's format took it. The producer may then have written over every
 * record this reader still holds. Checks after a copy of a held record
 * confirm it (as ivshm_reader_release() does for a copy). Never writes
 * shared memory. Thread-safe. */
bool ivshm_reader_lost (IvshmReader * reader);
/* How many records, and how many bytes of the ring, are held. Never
 * writes shared memory. */
void ivshm_reader_held (IvshmReader * reader, unsigned *count,
    uint64_t * bytes);
uint64_t ivshm_reader_ring_size (const IvshmReader * reader);
/* Records this reader holds keep the producer back: the oldest is more
 * than half a ring behind what this reader has read, and the producer is
 * more than three quarters of a ring ahead of it. Time to copy them out
 * and let them go. Thread-safe. */
bool ivshm_reader_holding_back (IvshmReader * reader);
/* The ring position of the next record this reader reads. Thread-safe. */
uint64_t ivshm_reader_position (IvshmReader * reader);
/* The producer is leaky: being dropped (EVICTED) means falling behind, and
 * the way on is to attach again (at the live edge). */
bool ivshm_reader_producer_leaky (const IvshmReader * reader);
/* Bytes published that this reader has not read yet (0 if the producer's
 * position makes no sense). Thread-safe. */
uint64_t ivshm_reader_lag (IvshmReader * reader);

/* Bumps this reader's lease, if the slot is still its own. Thread-safe. */
void ivshm_reader_heartbeat (IvshmReader * reader);

uint64_t ivshm_reader_session (const IvshmReader * reader);
/* The region no longer carries this reader's session: its magic is gone
 * (or another) or another session started. How a reader that lost its
 * slot tells a restarted producer from an eviction. Reads shared memory,
 * never writes it. Thread-safe. */
bool ivshm_reader_session_replaced (IvshmReader * reader);
/* The producer's heartbeat counter and the period it advertises (in
 * microseconds), each read once from the region. Untrusted values: bound
 * the period before using it. Reads shared memory, never writes it.
 * Thread-safe. */
void ivshm_reader_producer_beat (IvshmReader * reader, uint64_t * heartbeat,
    uint64_t * period_us);
/* Thread-safe; never writes shared memory. */
void ivshm_reader_get_stats (IvshmReader * reader, IvshmReaderStats * stats);

#ifdef __cplusplus
}
#endif
#endif /* IVSHMEM_RING_H */
