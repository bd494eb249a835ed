/* gst-ivshmem: ivshmemsrc's time mapping, without a pipeline
 * SPDX-License-Identifier: MIT
 *
 * The producer's clock is not the reader's. In live mode the source turns
 * each timestamp into the producer's running time (with the producer's
 * segment), adds the base time under which the producer rendered it (its
 * TIME records, protocol 2.1) to get the moment on the producer's clock,
 * and maps that moment onto its own pipeline clock through CLOCK_MONOTONIC:
 * the producer's samples of its clock (the clock area), then the mapping
 * of the producer's CLOCK_MONOTONIC onto the reader's (exact on one
 * kernel, estimated across a VM boundary: IvshmClockSync), then a reading
 * of the reader's own pipeline clock and CLOCK_MONOTONIC. A flushing seek,
 * a pause or a new base time of the producer is carried exactly.
 *
 * Without a producer's time (a 2.0 producer, a producer without a clock,
 * or an estimate not made yet) the mapping falls back to an anchor on the
 * first buffer: the first one is stamped with the moment it arrived, later
 * ones keep the producer's spacing. Otherwise (is-live=false) timestamps
 * pass unchanged.
 *
 * The loss maths: after a leaky producer dropped this reader, the time
 * between the end of the last buffer it got and the next one's start is a
 * GAP; the bytes between its old and new ring positions are what it lost.
 *
 * Nothing here touches a pipeline: the caller says what time it is
 * through `now` (the element's running time), so it is unit-tested with a
 * fake clock (tests/check/srctime.c).
 */
#ifndef __GST_IVSHMEM_TIME_H__
#define __GST_IVSHMEM_TIME_H__

#include <gst/gst.h>

#include "ivshmem-protocol.h"
#include "ivshmem-clock.h"

G_BEGIN_DECLS
/* The running time of this pipeline now (GST_CLOCK_TIME_NONE: no clock) */
typedef GstClockTime (*GstIvshmemNowFunc) (gpointer data);
/* This pipeline's clock now, CLOCK_MONOTONIC (ivshm_now_ns()) read at the
 * same moment, and the base time. FALSE: no clock. */
typedef gboolean (*GstIvshmemLocalFunc) (gpointer data,
    GstClockTime * clock_now, guint64 * mono_now, GstClockTime * base);

typedef enum
{
  GST_IVSHMEM_TIME_NONE,        /* nothing stamped yet */
  GST_IVSHMEM_TIME_ANCHORED,    /* on the first buffer's arrival */
  GST_IVSHMEM_TIME_EXACT,       /* one kernel: the producer's clock, exactly */
  GST_IVSHMEM_TIME_ESTIMATED,   /* across kernels: with IvshmClockSync */
} GstIvshmemTimeMode;

typedef struct
{
  GstIvshmemNowFunc now;
  gpointer now_data;
  GstIvshmemLocalFunc local;
  GstSegment in_segment;        /* the producer's segment */
  gboolean have_offset;
  GstClockTimeDiff ts_offset;   /* local running time - producer's */
  GstClockTime last_end;        /* producer time where the last buffer ended */

  /* protocol 2.1: the producer's time */
  gboolean have_ptime;          /* a TIME record was read */
  GstClockTime p_base;          /* the producer's base time */
  GstClockTime p_latency;       /* its upstream latency */
  guint64 p_epoch;              /* the clock its base time is on */
  gboolean p_live;              /* its upstream is live */
  gboolean have_sample;
  IvshmClockSample sample;      /* the newest sample of clock p_epoch */
  gboolean have_next;
  IvshmClockSample next;        /* a sample of another epoch */
  IvshmClockSync sync;
  GstIvshmemTimeMode mode;      /* how the last buffer was stamped */
  gboolean before_start;        /* its moment was before this pipeline's
                                 * start: clipped to 0 */
} GstIvshmemTime;

void gst_ivshmem_time_init (GstIvshmemTime * t, GstIvshmemNowFunc now,
    GstIvshmemLocalFunc local, gpointer now_data);
/* A new stream: no segment, no anchor, no last buffer. */
void gst_ivshmem_time_reset (GstIvshmemTime * t);
void gst_ivshmem_time_set_segment (GstIvshmemTime * t,
    const GstSegment * segment);

/* ---- a clock that follows the producer's (provide-clock) ----------------
 *
 * The element's clock is a GstSystemClock (CLOCK_MONOTONIC) whose
 * calibration this steers, every half second, so that it runs at the
 * producer's clock's rate and keeps its phase: a loop that sets the rate to
 * the producer's rate measured since the first update, corrected by the
 * phase error spread over 2 s. The clock does not jump: each new
 * calibration starts from the clock's time now. */
typedef struct
{
  gboolean have_ref;
  guint64 m_ref;                /* reader CLOCK_MONOTONIC at the first update */
  GstClockTime cp_ref;          /* the producer's clock then */
  GstClockTime ext_ref;         /* our clock then */
  guint64 last_m;
  gdouble rate;                 /* the last rate set */
} GstIvshmemFollow;

void gst_ivshmem_follow_init (GstIvshmemFollow * f);
/* At our CLOCK_MONOTONIC m_now (the clock's internal time), the producer's
 * clock says cp_now and ours clk_now. TRUE: calibrate the clock with
 * (m_now, clk_now, *num, *denom). */
gboolean gst_ivshmem_follow_update (GstIvshmemFollow * f, guint64 m_now,
    GstClockTime cp_now, GstClockTime clk_now, guint64 * num, guint64 * denom);
/* The producer's clock at our CLOCK_MONOTONIC m_now, by the mapping; FALSE
 * without one. */
gboolean gst_ivshmem_time_producer_clock_at (GstIvshmemTime * t,
    guint64 m_now, GstClockTime * cp);

/* A TIME record: the producer's base time, latency and clock epoch.
 * Returns TRUE if the latency changed (the element then posts a latency
 * message). */
gboolean gst_ivshmem_time_set_producer_time (GstIvshmemTime * t,
    GstClockTime base, GstClockTime latency, guint64 epoch, gboolean live);
/* A look at the producer's clock area (ivshmem-clock.h): the sample read
 * between t_before and t_after; same_kernel: the sample's kernel is ours.
 * pub_ok/pub_mono: ivshm_reader_clock_published() for
 * t->sync.pending_seq. */
void gst_ivshmem_time_observe (GstIvshmemTime * t,
    const IvshmClockSample * sample, gboolean same_kernel, guint64 t_before,
    guint64 t_after, gboolean pub_ok, guint64 pub_mono);

/* Producer timestamp -> this pipeline's running time. With the producer's
 * time (a TIME record, a sample of its clock, a mapping of CLOCK_MONOTONIC)
 * the moment it meant, on this pipeline's clock, whatever `anchor` says. The first call with
 * `anchor` ties the producer's running time to now; before that, calls
 * without `anchor` return NONE. NONE for NONE, outside the segment, or
 * with a segment that is not in TIME. Never negative: clipped at 0. */
GstClockTime gst_ivshmem_time_restamp (GstIvshmemTime * t, guint64 ts,
    gboolean anchor);

/* A BUFFER record's PTS and DTS as the source stamps them. Remembers where
 * the buffer ends, for gst_ivshmem_time_loss(). */
void gst_ivshmem_time_stamp_buffer (GstIvshmemTime * t, gboolean live,
    const IvshmRecordHeader * h, GstClockTime * pts, GstClockTime * dts);

/* After being dropped by a leaky producer, the next buffer starts at
 * `next_pts` (producer time): the hole as a GAP in output time. FALSE:
 * nothing to say (no timestamps, or no hole). */
gboolean gst_ivshmem_time_loss (GstIvshmemTime * t, gboolean live,
    guint64 next_pts, GstClockTime * start, GstClockTime * duration);

/* Bytes skipped between the ring position where a dropped reader stopped
 * and the one where it joined again. */
guint64 gst_ivshmem_lost_bytes (guint64 dropped_at, guint64 joined_at);

G_END_DECLS
#endif /* __GST_IVSHMEM_TIME_H__ */
