/* gst-ivshmem: ivshmemsrc's time mapping, without a pipeline
 * SPDX-License-Identifier: MIT
 */
#include "gstivshmemtime.h"

#include <string.h>

void
gst_ivshmem_time_init (GstIvshmemTime * t, GstIvshmemNowFunc now,
    GstIvshmemLocalFunc local, gpointer now_data)
{
  t->now = now;
  t->local = local;
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
  t->have_ptime = FALSE;
  t->p_base = GST_CLOCK_TIME_NONE;
  t->p_latency = GST_CLOCK_TIME_NONE;
  t->p_epoch = 0;
  t->have_sample = FALSE;
  t->have_next = FALSE;
  ivshm_clock_sync_init (&t->sync);
  t->mode = GST_IVSHMEM_TIME_NONE;
}

gboolean
gst_ivshmem_time_set_producer_time (GstIvshmemTime * t, GstClockTime base,
    GstClockTime latency, guint64 epoch, gboolean live)
{
  gboolean changed = latency != t->p_latency;

  GST_DEBUG ("producer's base time %" GST_TIME_FORMAT " on its clock %"
      G_GUINT64_FORMAT ", latency %" GST_TIME_FORMAT, GST_TIME_ARGS (base),
      epoch, GST_TIME_ARGS (latency));
  t->have_ptime = GST_CLOCK_TIME_IS_VALID (base) && epoch != 0;
  t->p_base = base;
  t->p_latency = latency;
  t->p_live = live;
  if (epoch != t->p_epoch) {
    t->p_epoch = epoch;
    t->have_sample = t->have_next && t->next.epoch == epoch;
    if (t->have_sample)
      t->sample = t->next;
    t->have_next = FALSE;
  }
  return changed;
}

void
gst_ivshmem_time_observe (GstIvshmemTime * t, const IvshmClockSample * s,
    gboolean same_kernel, guint64 t_before, guint64 t_after,
    gboolean pub_ok, guint64 pub_mono)
{
  ivshm_clock_sync_look (&t->sync, s, same_kernel, t_before, t_after, pub_ok,
      pub_mono);
  if (s->epoch == t->p_epoch) {
    t->sample = *s;
    t->have_sample = TRUE;
  } else {
    /* its TIME record may still be on its way */
    t->next = *s;
    t->have_next = TRUE;
  }
}

/* The producer's running time rt as this pipeline's running time, through
 * the producer's clock. FALSE: not possible (yet). */
static gboolean
gst_ivshmem_time_map (GstIvshmemTime * t, GstClockTime rt, GstClockTime * out)
{
  GstClockTime c_now, base;
  guint64 m_now, p_mono, r_mono;
  GstClockTimeDiff c;

  if (!t->have_ptime || !t->have_sample || !t->sync.valid || !t->local)
    return FALSE;
  if (!t->local (t->now_data, &c_now, &m_now, &base))
    return FALSE;
  if (rt > G_MAXUINT64 / 4 || t->p_base > G_MAXUINT64 / 4)
    return FALSE;               /* nonsense from the producer */
  p_mono = ivshm_clock_sample_to_mono (&t->sample, t->p_base + rt);
  if (!ivshm_clock_sync_to_reader (&t->sync, p_mono, &r_mono))
    return FALSE;
  c = (GstClockTimeDiff) c_now + (gint64) (r_mono - m_now)
      - (GstClockTimeDiff) base;
  *out = c > 0 ? (GstClockTime) c : 0;
  /* a live stream's buffer meant for before this pipeline started is
   * late; a stream that is not live runs ahead of its clock at the
   * producer, and its first buffers are clipped to 0 */
  t->before_start = c < 0 && t->p_live;
  t->mode = t->sync.exact ? GST_IVSHMEM_TIME_EXACT : GST_IVSHMEM_TIME_ESTIMATED;
  return TRUE;
}

void
gst_ivshmem_time_set_segment (GstIvshmemTime * t, const GstSegment * segment)
{
  gst_segment_copy_into (segment, &t->in_segment);
}

GstClockTime
gst_ivshmem_time_restamp (GstIvshmemTime * t, guint64 ts, gboolean anchor)
{
  GstClockTime rt, mapped;
  GstClockTimeDiff out;

  t->before_start = FALSE;
  if (ts == IVSHM_TIME_NONE || t->in_segment.format != GST_FORMAT_TIME)
    return GST_CLOCK_TIME_NONE;
  rt = gst_segment_to_running_time (&t->in_segment, GST_FORMAT_TIME, ts);
  if (!GST_CLOCK_TIME_IS_VALID (rt))
    return GST_CLOCK_TIME_NONE;
  if (gst_ivshmem_time_map (t, rt, &mapped))
    return mapped;

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
  t->mode = GST_IVSHMEM_TIME_ANCHORED;
  out = (GstClockTimeDiff) rt + t->ts_offset;
  return out > 0 ? (GstClockTime) out : 0;
}

void
gst_ivshmem_time_stamp_buffer (GstIvshmemTime * t, gboolean live,
    const IvshmRecordHeader * h, GstClockTime * pts, GstClockTime * dts)
{
  if (live) {
    gboolean early;

    *pts = gst_ivshmem_time_restamp (t, h->pts, TRUE);
    early = t->before_start;
    /* a DTS anchors only a buffer that has no PTS */
    *dts = gst_ivshmem_time_restamp (t, h->dts, h->pts == IVSHM_TIME_NONE);
    if (h->pts != IVSHM_TIME_NONE)
      t->before_start = early;
  } else {
    t->before_start = FALSE;
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

void
gst_ivshmem_follow_init (GstIvshmemFollow * f)
{
  memset (f, 0, sizeof *f);
  f->rate = 1.0;
}

#define FOLLOW_PERIOD (500 * GST_MSECOND)
#define FOLLOW_HORIZON 2e9      /* ns over which a phase error is undone */
#define FOLLOW_DENOM (G_GUINT64_CONSTANT (1) << 30)

gboolean
gst_ivshmem_follow_update (GstIvshmemFollow * f, guint64 m_now,
    GstClockTime cp_now, GstClockTime clk_now, guint64 * num, guint64 * denom)
{
  gdouble rate, err;

  if (!f->have_ref || m_now < f->m_ref || cp_now < f->cp_ref) {
    f->have_ref = TRUE;
    f->m_ref = f->last_m = m_now;
    f->cp_ref = cp_now;
    f->ext_ref = clk_now;
    return FALSE;
  }
  if (m_now - f->last_m < FOLLOW_PERIOD)
    return FALSE;
  f->last_m = m_now;
  rate = (gdouble) (cp_now - f->cp_ref) / (gdouble) (m_now - f->m_ref);
  err = (gdouble) (gint64) (clk_now - f->ext_ref) -
      (gdouble) (gint64) (cp_now - f->cp_ref);
  rate -= err / FOLLOW_HORIZON;
  rate = CLAMP (rate, 0.9, 1.1);
  f->rate = rate;
  *num = (guint64) (rate * FOLLOW_DENOM + 0.5);
  *denom = FOLLOW_DENOM;
  return TRUE;
}

gboolean
gst_ivshmem_time_producer_clock_at (GstIvshmemTime * t, guint64 m_now,
    GstClockTime * cp)
{
  guint64 p_mono;

  if (!t->have_sample || !t->sync.valid ||
      !ivshm_clock_sync_to_producer (&t->sync, m_now, &p_mono))
    return FALSE;
  *cp = t->sample.clock_ns + (p_mono - t->sample.mono_ns);
  return TRUE;
}

guint64
gst_ivshmem_lost_bytes (guint64 dropped_at, guint64 joined_at)
{
  return joined_at > dropped_at ? joined_at - dropped_at : 0;
}
