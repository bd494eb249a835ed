/* gst-ivshmem: the producer's clock, carried through the region
 * SPDX-License-Identifier: MIT
 *
 * Protocol 2.1 (PROTOCOL.md, section 6a). The producer publishes, in the
 * header's clock area, pairs of readings of its pipeline clock and of
 * CLOCK_MONOTONIC of its kernel, refreshed at every buffer and heartbeat;
 * its TIME records (in the ring) carry the base time under which its
 * buffers were rendered. A reader turns a moment on the producer's clock
 * into its own CLOCK_MONOTONIC:
 *
 *  - on the producer's kernel (same clock_kernel_id, a hash of the boot
 *    id): CLOCK_MONOTONIC is one clock, the mapping is exact;
 *  - across a VM boundary: IvshmClockSync estimates the offset (and the
 *    rate) of the producer's CLOCK_MONOTONIC against the reader's from
 *    when it saw each sample appear. Each observation bounds the offset
 *    from both sides (the sample was read before it was published, and
 *    published after the reader's previous look that did not see it), so
 *    the estimate comes with an error that is the width of the best
 *    recent bounds, at the scale of the reader's polling.
 *
 * Nothing here knows GStreamer: values are nanoseconds, the filter is
 * plain arithmetic, unit-tested in tests/check/core-clock.c.
 */
#ifndef IVSHMEM_CLOCK_H
#define IVSHMEM_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "ivshmem-ring.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the producer ------------------------------------------------------ */

/* Publishes one sample of the producer's clock `epoch` (non-zero; a new
 * value whenever the pipeline's clock changes): clock_ns on it was read
 * within mono_ns +- window_ns of CLOCK_MONOTONIC (ivshm_now_ns()).
 * epoch 0 withdraws the clock. Thread-safe: two threads publishing at once
 * is allowed (one of the two samples is dropped). Does nothing once the
 * writer lost the region. */
void ivshm_writer_publish_clock (IvshmWriter * writer, uint64_t epoch,
    uint64_t clock_ns, uint64_t mono_ns, uint64_t window_ns);

/* The first reader of the session has come (an active slot, or a slot that
 * names the session): stop keeping everything for it. The producer's
 * streaming thread calls this, so that HAD_READER is set when a reader
 * registers, not only when the ring first fills. Returns had_reader. */
bool ivshm_writer_note_readers (IvshmWriter * writer);

/* The stream of this session is live: its first buffer was written at
 * mono_ns (ivshm_now_ns()). A live reader that attaches later than the
 * grace after it starts at the live edge (IvshmReaderConfig.live_edge). */
void ivshm_writer_set_live_since (IvshmWriter * writer, uint64_t mono_ns);

/* Stop keeping everything for a first reader that has not come: what a
 * live stream's producer does once the live-edge grace has passed (a live
 * reader would start at the live edge anyway), so that it never blocks a
 * live source for a reader that does not exist. */
void ivshm_writer_forget_first_reader (IvshmWriter * writer);

/* ---- a reader ---------------------------------------------------------- */

/* The producer's stream is live and started at least grace_ns ago, by the
 * producer's clock area (true also when the age cannot be read). */
bool ivshm_reader_session_is_old (IvshmReader * reader, uint64_t grace_ns);

typedef struct
{
  uint64_t seq;                 /* even: the sample's sequence */
  uint64_t epoch;               /* 0: no clock published */
  uint64_t kernel_id;
  uint64_t clock_ns;
  uint64_t mono_ns;
  uint64_t window_ns;
} IvshmClockSample;

/* Reads the clock area once, consistently. AGAIN: the producer was writing
 * it (look again later), or the region has no producer. CORRUPT: values no
 * producer writes (a window over 1 s). */
IvshmStatus ivshm_reader_clock_sample (IvshmReader * reader,
    IvshmClockSample * sample);
/* The CLOCK_MONOTONIC of the producer by which the sample `seq` (or a
 * later one) was visible to every reader; false if not published yet. */
bool ivshm_reader_clock_published (IvshmReader * reader, uint64_t seq,
    uint64_t * pub_mono_ns);

/* ---- following the producer's CLOCK_MONOTONIC ------------------------- */

#define IVSHM_CLOCK_SYNC_BUCKETS 32
/* one bucket of observations per second of the reader's clock */
#define IVSHM_CLOCK_SYNC_BUCKET_NS (1000ull * 1000 * 1000)

typedef struct
{
  uint64_t t;                   /* reader time of the observation */
  int64_t lo, hi;               /* bounds of (reader - producer) mono */
  bool used;
} IvshmClockBound;

typedef struct
{
  bool exact;                   /* one kernel: offset 0, rate 1, error 0 */
  bool valid;                   /* an estimate exists */
  /* reader_mono = producer_mono + offset + (producer_mono - ref) * drift */
  int64_t offset_ns;
  uint64_t ref_ns;
  double drift;                 /* rate - 1 */
  uint64_t error_ns;            /* at at_ns, the truth is within this */
  uint64_t at_ns;               /* reader time of the newest bound */
  uint64_t observations;
  uint64_t rejected;            /* bounds that contradicted the others */

  /* private */
  uint64_t last_seq;            /* the sample seen at the last look */
  uint64_t last_look_ns;
  bool have_look;
  uint64_t pending_seq;         /* a new sample whose publication time */
  uint64_t pending_t;           /* is not known yet: seen at pending_t, */
  uint64_t pending_prev;        /* not seen at pending_prev, */
  uint64_t pending_mono;        /* read at pending_mono + window */
  IvshmClockBound bucket[IVSHM_CLOCK_SYNC_BUCKETS];
} IvshmClockSync;

void ivshm_clock_sync_init (IvshmClockSync * cs);
/* A look at the clock area: the sample `s` was read after reader time
 * t_before and before t_after. same_kernel: the sample's kernel is the
 * reader's (exact mapping, nothing to estimate). pub_ok/pub_mono_ns:
 * ivshm_reader_clock_published() for cs->pending_seq, if set. */
void ivshm_clock_sync_look (IvshmClockSync * cs, const IvshmClockSample * s,
    bool same_kernel, uint64_t t_before, uint64_t t_after, bool pub_ok,
    uint64_t pub_mono_ns);
/* A bounds observation, for tests and for the look above: the producer's
 * mono reading p_mono was published after reader time t_prev (the look
 * that did not see it) and before t_seen (the look that did), and it was
 * visible by the producer's pub_mono. */
void ivshm_clock_sync_observe (IvshmClockSync * cs, uint64_t t_prev,
    uint64_t t_seen, uint64_t p_mono, uint64_t pub_mono);
/* The producer's CLOCK_MONOTONIC p_mono as the reader's; false without an
 * estimate. */
bool ivshm_clock_sync_to_reader (const IvshmClockSync * cs, uint64_t p_mono,
    uint64_t * r_mono);
/* The reader's CLOCK_MONOTONIC r_mono as the producer's; false without an
 * estimate. */
bool ivshm_clock_sync_to_producer (const IvshmClockSync * cs,
    uint64_t r_mono, uint64_t * p_mono);

/* A moment on the producer's clock as its CLOCK_MONOTONIC, by the sample
 * (rate 1 between the two over the sample's age). */
uint64_t ivshm_clock_sample_to_mono (const IvshmClockSample * s,
    uint64_t clock_ns);

#ifdef __cplusplus
}
#endif
#endif /* IVSHMEM_CLOCK_H */
