/* gst-ivshmem: ivshmemsink, its time
 * SPDX-License-Identifier: MIT
 *
 * The time the sink carries for its readers (PROTOCOL.md, section 6a):
 * samples of its pipeline clock against CLOCK_MONOTONIC, and the TIME
 * record before a buffer whose base time, clock or latency changed.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstivshmemsinkpriv.h"
#include "ivshmem-clock.h"

#include <string.h>

#define GST_CAT_DEFAULT gst_ivshmem_sink_debug

/* Before a buffer the clock area gets a new sample only if its last one is
 * this old (PROTOCOL.md, section 6a): a stream of up to 1000 buffers/s
 * gets one before every buffer, a faster one one per millisecond. */
#define SAMPLE_INTERVAL_NS (1000 * 1000)

/* One sample of the clock `epoch` into the clock area: the pipeline clock
 * read between two readings of CLOCK_MONOTONIC. Thread-safe. */
void
gst_ivshmem_sink_sample_clock (IvshmWriter * writer, GstClock * clock,
    guint64 epoch)
{
  guint64 m1, m2;
  GstClockTime c;

  m1 = ivshm_now_ns ();
  c = gst_clock_get_time (clock);
  m2 = ivshm_now_ns ();
  if (!GST_CLOCK_TIME_IS_VALID (c) || m2 < m1)
    return;
  ivshm_writer_publish_clock (writer, epoch, c, m1 + (m2 - m1) / 2,
      (m2 - m1 + 1) / 2);
}

/* The clock the sink samples now, or NULL; its epoch in *epoch. */
GstClock *
gst_ivshmem_sink_ref_time_clock (GstIvshmemSink * self, guint64 * epoch)
{
  GstClock *clock = NULL;

  g_mutex_lock (&self->time_lock);
  if (self->time_clock)
    clock = gst_object_ref (self->time_clock);
  *epoch = self->time_epoch;
  g_mutex_unlock (&self->time_lock);
  return clock;
}

/* How late, after its running time, a buffer reaches this sink at the
 * earliest: upstream's latency (a live source's capture time is the start
 * of what it captured), or the pipeline's when the sink syncs. */
static GstClockTime
gst_ivshmem_sink_upstream_latency (GstIvshmemSink * self, gboolean * is_live)
{
  GstBaseSink *bsink = GST_BASE_SINK (self);
  GstQuery *q = gst_query_new_latency ();
  GstClockTime min = 0, max, lat = 0;
  gboolean live = FALSE;

  if (gst_pad_peer_query (GST_BASE_SINK_PAD (bsink), q)) {
    gst_query_parse_latency (q, &live, &min, &max);
    if (live && GST_CLOCK_TIME_IS_VALID (min))
      lat = min;
  }
  *is_live = live;
  gst_query_unref (q);
  if (gst_base_sink_get_sync (bsink)) {
    GstClockTime pl = gst_base_sink_get_latency (bsink);

    if (GST_CLOCK_TIME_IS_VALID (pl) && pl > lat)
      lat = pl;
  }
  return lat;
}

/* Before a buffer: the clock area gets a fresh sample, and a TIME record
 * goes into the ring when the base time, the clock or the latency under
 * which this buffer is rendered differ from what the last one said. */
GstFlowReturn
gst_ivshmem_sink_publish_time (GstIvshmemSink * self)
{
  GstElement *element = GST_ELEMENT_CAST (self);
  GstIvshmemProducer *p = self->producer;
  GstClockTime base, latency;
  IvshmRecordHeader info;
  guint64 epoch, now;
  const gchar *payload = "time;";
  GstFlowReturn ret;
  gboolean live;
  gint gen;

  /* once the writer counts a reader (or stopped keeping the stream for
   * one), it does for the rest of the session: no more asking */
  if (G_UNLIKELY (!self->first_reader_settled)) {
    g_mutex_lock (&p->lock);
    if (ivshm_writer_note_readers (p->writer)) {
      self->first_reader_settled = TRUE;
    } else if (self->live_noted &&
        ivshm_now_ns () - self->live_since >= IVSHM_LIVE_EDGE_GRACE_NS) {
      /* a live stream and no reader within the grace: one that comes now
       * starts at the live edge, so keep nothing for it (a full ring would
       * stall the live source upstream for a reader that may never come) */
      GST_INFO_OBJECT (self, "no reader in the first %" GST_TIME_FORMAT
          " of a live stream: not keeping it for a first reader",
          GST_TIME_ARGS (IVSHM_LIVE_EDGE_GRACE_NS));
      ivshm_writer_forget_first_reader (p->writer);
      self->first_reader_settled = TRUE;
    }
    g_mutex_unlock (&p->lock);
  }
  if (!g_atomic_int_get (&self->has_clock))
    return GST_FLOW_OK;         /* no clock: readers anchor on arrival */

  /* a new clock, or the last sample is SAMPLE_INTERVAL_NS old: sample */
  gen = g_atomic_int_get (&self->clock_gen);
  now = ivshm_now_ns ();
  if (gen != self->render_clock_gen || self->sampled_ns == 0 ||
      now - self->sampled_ns >= SAMPLE_INTERVAL_NS) {
    GstClock *clock = gst_element_get_clock (element);

    if (!clock)
      return GST_FLOW_OK;
    g_mutex_lock (&self->time_lock);
    if (clock != self->time_clock) {
      gst_object_replace ((GstObject **) & self->time_clock,
          GST_OBJECT (clock));
      self->time_epoch++;
    }
    epoch = self->time_epoch;
    g_mutex_unlock (&self->time_lock);
    gst_ivshmem_sink_sample_clock (p->writer, clock, epoch);
    gst_object_unref (clock);
    self->render_clock_gen = gen;
    self->render_epoch = epoch;
    self->sampled_ns = now;
  }
  epoch = self->render_epoch;

  base = gst_element_get_base_time (element);
  if (base == self->time_base && epoch == self->time_record_epoch)
    return GST_FLOW_OK;
  latency = gst_ivshmem_sink_upstream_latency (self, &live);
  if (live && !self->live_noted) {
    /* a live reader that comes later than a grace starts at the live
     * edge, not with what we keep for a first reader */
    self->live_since = ivshm_now_ns ();
    g_mutex_lock (&p->lock);
    ivshm_writer_set_live_since (p->writer, self->live_since);
    /* a live stream gains little from a cache-hot ring (it does not run
     * at memory speed) and needs the slack: wrap early only while half
     * the ring stays free (PROTOCOL.md, "Early wrap") */
    ivshm_writer_set_early_margin (p->writer,
        ivshm_writer_max_payload (p->writer) / 2);
    g_mutex_unlock (&p->lock);
    self->live_noted = TRUE;
  }
  GST_DEBUG_OBJECT (self, "base time %" GST_TIME_FORMAT ", clock epoch %"
      G_GUINT64_FORMAT ", upstream latency %" GST_TIME_FORMAT,
      GST_TIME_ARGS (base), epoch, GST_TIME_ARGS (latency));
  memset (&info, 0, sizeof info);
  info.type = IVSHM_RECORD_EVENT;
  info.subtype = IVSHM_EVENT_TIME;
  info.pts = base;
  info.dts = IVSHM_TIME_NONE;
  info.duration = latency;
  info.offset = epoch;
  info.offset_end = live ? 1 : 0;
  info.payload_len = strlen (payload) + 1;
  ret = gst_ivshmem_sink_write (self, &info, payload);
  if (ret == GST_FLOW_OK) {
    self->time_base = base;
    self->time_latency = latency;
    self->time_record_epoch = epoch;
  }
  return ret;
}
