/* gst-ivshmem: ivshmemsrc's time mapping, without a pipeline
 * SPDX-License-Identifier: MIT
 *
 * The producer's clock is not the reader's. In live mode the source turns
 * each timestamp into the producer's running time (with the producer's
 * segment) and maps that onto its own running time, anchored on the first
 * buffer: the first one is stamped with the moment it arrived, later ones
 * keep the producer's spacing. Otherwise timestamps pass unchanged.
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

#include "ivshmem-layout.h"

G_BEGIN_DECLS

/* The running time of this pipeline now (GST_CLOCK_TIME_NONE: no clock) */
typedef GstClockTime (*GstIvshmemNowFunc) (gpointer data);

typedef struct
{
  GstIvshmemNowFunc now;
  gpointer now_data;
  GstSegment in_segment;        /* the producer's segment */
  gboolean have_offset;
  GstClockTimeDiff ts_offset;   /* local running time - producer's */
  GstClockTime last_end;        /* producer time where the last buffer ended */
} GstIvshmemTime;

void gst_ivshmem_time_init (GstIvshmemTime * t, GstIvshmemNowFunc now,
    gpointer now_data);
/* A new stream: no segment, no anchor, no last buffer. */
void gst_ivshmem_time_reset (GstIvshmemTime * t);
void gst_ivshmem_time_set_segment (GstIvshmemTime * t,
    const GstSegment * segment);

/* Producer timestamp -> this pipeline's running time. The first call with
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
