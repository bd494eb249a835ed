/* gst-ivshmem: ivshmemsrc's time mapping, without a pipeline
 * SPDX-License-Identifier: MIT
 */
#include "gstivshmemtime.h"

void
gst_ivshmem_time_init (GstIvshmemTime * t, GstIvshmemNowFunc now,
    gpointer now_data)
{
  t->now = now;
  t->now_data = now_data;
  gst_ivshmem_time_reset (t);
}

void
gst_ivshmem_time_reset (GstIvshmemTime * t)
{
  gst_segment_init (&t->in_segment, GST_FORMAT_TIME);
  t->have_offset = FALSE;
  t->ts_offset = 0;
  t->last_end = GST_CLOCK_TIME_NONE;
}

void
gst_ivshmem_time_set_segment (GstIvshmemTime * t, const GstSegment * segment)
{
  gst_segment_copy_into (segment, &t->in_segment);
}

GstClockTime
gst_ivshmem_time_restamp (GstIvshmemTime * t, guint64 ts, gboolean anchor)
{
  GstClockTime rt;
  GstClockTimeDiff out;

  if (ts == IVSHM_TIME_NONE || t->in_segment.format != GST_FORMAT_TIME)
    return GST_CLOCK_TIME_NONE;
  rt = gst_segment_to_running_time (&t->in_segment, GST_FORMAT_TIME, ts);
  if (!GST_CLOCK_TIME_IS_VALID (rt))
    return GST_CLOCK_TIME_NONE;

  if (!t->have_offset) {
    GstClockTime now;

    if (!anchor)
      return GST_CLOCK_TIME_NONE;
    now = t->now ? t->now (t->now_data) : GST_CLOCK_TIME_NONE;
    if (!GST_CLOCK_TIME_IS_VALID (now))
      now = 0;
    t->ts_offset = GST_CLOCK_DIFF (rt, now);
    t->have_offset = TRUE;
    GST_DEBUG ("producer running time %" GST_TIME_FORMAT " is local running "
        "time %" GST_TIME_FORMAT, GST_TIME_ARGS (rt), GST_TIME_ARGS (now));
  }
  out = (GstClockTimeDiff) rt + t->ts_offset;
  return out > 0 ? (GstClockTime) out : 0;
}

void
gst_ivshmem_time_stamp_buffer (GstIvshmemTime * t, gboolean live,
    const IvshmRecordHeader * h, GstClockTime * pts, GstClockTime * dts)
{
  if (live) {
    *pts = gst_ivshmem_time_restamp (t, h->pts, TRUE);
    /* a DTS anchors only a buffer that has no PTS */
    *dts = gst_ivshmem_time_restamp (t, h->dts, h->pts == IVSHM_TIME_NONE);
  } else {
    *pts = h->pts;
    *dts = h->dts;
  }
  if (h->pts != IVSHM_TIME_NONE)
    t->last_end = h->duration != IVSHM_TIME_NONE ?
        h->pts + h->duration : h->pts;
}

gboolean
gst_ivshmem_time_loss (GstIvshmemTime * t, gboolean live, guint64 next_pts,
    GstClockTime * start, GstClockTime * duration)
{
  GstClockTime s;

  if (!GST_CLOCK_TIME_IS_VALID (t->last_end) || next_pts == IVSHM_TIME_NONE
      || next_pts <= t->last_end)
    return FALSE;
  s = live ? gst_ivshmem_time_restamp (t, t->last_end, FALSE) : t->last_end;
  if (!GST_CLOCK_TIME_IS_VALID (s))
    return FALSE;
  *start = s;
  *duration = next_pts - t->last_end;
  return TRUE;
}

guint64
gst_ivshmem_lost_bytes (guint64 dropped_at, guint64 joined_at)
{
  return joined_at > dropped_at ? joined_at - dropped_at : 0;
}
