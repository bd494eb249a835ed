/* gst-ivshmem: ivshmemsrc, what a record becomes
 * SPDX-License-Identifier: MIT
 *
 * The streaming thread's steps for one record (gstivshmemsrcread.c reads
 * it): a BUFFER becomes a buffer (in place or a copy), CAPS and events go
 * downstream, a TIME record and the producer's clock area feed the time
 * mapping (and the clock that follows the producer's).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstivshmemsrcpriv.h"
#include "gstivshmemutils.h"

#include <string.h>

#define GST_CAT_DEFAULT gst_ivshmem_src_debug

/* ---- the producer's clock ---------------------------------------------- */

/* provide-clock: our clock follows the producer's */
static void
gst_ivshmem_src_steer_clock (GstIvshmemSrc * self)
{
  GstClock *clock = self->follow_clock;
  GstClockTime internal, now, cp;
  guint64 num, denom;

  internal = gst_clock_get_internal_time (clock);
  now = gst_clock_get_time (clock);
  if (!gst_ivshmem_time_producer_clock_at (&self->time, internal, &cp))
    return;
  if (gst_ivshmem_follow_update (&self->follow, internal, cp, now, &num,
          &denom)) {
    GST_LOG_OBJECT (self, "following the producer's clock: rate %.9f",
        self->follow.rate);
    gst_clock_set_calibration (clock, internal, now, num, denom);
  }
}

/* One look at the producer's clock area: the newest sample for the time
 * mapping and, across a VM boundary, an observation for the estimate. */
void
gst_ivshmem_src_look_clock (GstIvshmemSrc * self)
{
  IvshmClockSample s;
  guint64 t0, t1, pub = 0;
  gboolean pub_ok = FALSE;
  IvshmStatus st;

  if (!self->reader || !GST_BASE_SRC (self)->is_live)
    return;
  t0 = ivshm_now_ns ();
  st = ivshm_reader_clock_sample (self->reader, &s);
  t1 = ivshm_now_ns ();
  if (st != IVSHM_OK)
    return;
  if (self->time.sync.pending_seq)
    pub_ok = ivshm_reader_clock_published (self->reader,
        self->time.sync.pending_seq, &pub);
  gst_ivshmem_time_observe (&self->time, &s, s.kernel_id != 0 &&
      s.kernel_id == ivshm_kernel_id (), t0, t1, pub_ok, pub);
  if (self->provide_clock)
    gst_ivshmem_src_steer_clock (self);
}

/* Across a VM boundary the first estimate of the producer's clock needs a
 * sample to appear while we look: look closely for a moment (a heartbeat
 * at most) rather than stamp the first buffers by an anchor and jump
 * when the estimate comes. */
#define AWAIT_ESTIMATE_NS (500 * GST_MSECOND)

static void
gst_ivshmem_src_await_estimate (GstIvshmemSrc * self)
{
  guint64 until;

  if (!GST_BASE_SRC (self)->is_live || !self->time.have_ptime ||
      self->time.sync.valid)
    return;
  until = ivshm_now_ns () + AWAIT_ESTIMATE_NS;
  while (!self->time.sync.valid && ivshm_now_ns () < until &&
      !ivshm_waiter_is_flushing (&self->waiter)) {
    ivshm_sleep_ns (50 * 1000);
    gst_ivshmem_src_look_clock (self);
  }
  GST_INFO_OBJECT (self, "the producer's clock: %s, offset %" G_GINT64_FORMAT
      " ns, error %" G_GUINT64_FORMAT " ns", self->time.sync.valid ?
      (self->time.sync.exact ? "exact" : "estimated") : "no estimate yet",
      self->time.sync.offset_ns, self->time.sync.error_ns);
}

/* Copies the mapping's state for the stats. */
static void
gst_ivshmem_src_note_time (GstIvshmemSrc * self)
{
  GST_OBJECT_LOCK (self);
  self->time_mode = self->time.mode;
  self->time_sync = self->time.sync;
  self->producer_base = self->time.p_base;
  GST_OBJECT_UNLOCK (self);
}

/* A TIME record: the base time, latency and clock under which the
 * producer rendered the buffers that follow. */
static void
gst_ivshmem_src_handle_time (GstIvshmemSrc * self, const IvshmRecordHeader * h)
{
  gboolean changed;

  changed = gst_ivshmem_time_set_producer_time (&self->time, h->pts,
      h->duration, h->offset, h->offset_end == 1);
  GST_OBJECT_LOCK (self);
  self->producer_latency = h->duration > 10 * GST_SECOND ?
      GST_CLOCK_TIME_NONE : h->duration;
  GST_OBJECT_UNLOCK (self);
  gst_ivshmem_src_look_clock (self);
  gst_ivshmem_src_note_time (self);
  if (changed && GST_BASE_SRC (self)->is_live) {
    GST_INFO_OBJECT (self, "the producer's latency is %" GST_TIME_FORMAT
        ", base time %" GST_TIME_FORMAT, GST_TIME_ARGS (h->duration),
        GST_TIME_ARGS (h->pts));
    gst_element_post_message (GST_ELEMENT (self),
        gst_message_new_latency (GST_OBJECT (self)));
  }
}

/* ---- records ------------------------------------------------------------ */

/* Pushes the output segment if it has not gone out yet, so that events
 * that must follow a segment (tags, gaps, custom events) can. */
static void
gst_ivshmem_src_ensure_segment (GstIvshmemSrc * self)
{
  GstBaseSrc *bsrc = GST_BASE_SRC (self);
  GstEvent *ev;

  if (self->segment_sent)
    return;
  GST_OBJECT_LOCK (self);
  ev = gst_event_new_segment (&bsrc->segment);
  GST_OBJECT_UNLOCK (self);
  gst_pad_push_event (GST_BASE_SRC_PAD (bsrc), ev);
  self->segment_sent = TRUE;
}

static void
gst_ivshmem_src_invalid (GstIvshmemSrc * self, const gchar * what,
    const gchar * why)
{
  guint64 n;

  GST_OBJECT_LOCK (self);
  n = ++self->invalid_records;
  GST_OBJECT_UNLOCK (self);
  GST_ELEMENT_WARNING (self, STREAM, DECODE,
      ("Skipped an invalid %s record from the producer.", what),
      ("%s (%" G_GUINT64_FORMAT " invalid records so far)", why, n));
}

static gboolean
caps_are_raw (const GstCaps * caps)
{
  const GstStructure *s = gst_caps_get_structure (caps, 0);

  return gst_structure_has_name (s, "video/x-raw") ||
      gst_structure_has_name (s, "audio/x-raw");
}

static GstFlowReturn
gst_ivshmem_src_handle_caps (GstIvshmemSrc * self, const gchar * str)
{
  GstCaps *caps = gst_caps_from_string (str);

  if (!caps || !gst_caps_is_fixed (caps)) {
    gst_ivshmem_src_invalid (self, "caps", caps ? "the caps are not fixed" :
        "the caps do not parse");
    if (caps)
      gst_caps_unref (caps);
    return GST_FLOW_OK;
  }
  GST_DEBUG_OBJECT (self, "caps from the producer: %" GST_PTR_FORMAT, caps);
  self->caps_raw = caps_are_raw (caps);
  return gst_ivshmem_src_set_caps (self, caps);
}

/* Sets (and takes) the caps. While flushing, the caps event cannot go
 * out: it is kept and set again at the next create(). */
GstFlowReturn
gst_ivshmem_src_set_caps (GstIvshmemSrc * self, GstCaps * caps)
{
  gst_caps_replace (&self->pending_caps, NULL);
  if (!gst_base_src_set_caps (GST_BASE_SRC (self), caps)) {
    if (GST_PAD_IS_FLUSHING (GST_BASE_SRC_PAD (self))) {
      self->pending_caps = caps;
      return GST_FLOW_FLUSHING;
    }
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("Downstream does not accept the producer's caps."),
        ("caps %" GST_PTR_FORMAT, caps));
    gst_caps_unref (caps);
    return GST_FLOW_NOT_NEGOTIATED;
  }
  gst_caps_unref (caps);
  return GST_FLOW_OK;
}

/* An event of the producer's that the source turns into something else
 * (or nothing): returns the event to push, or NULL (*ret says why). */
static GstEvent *
gst_ivshmem_src_convert_event (GstIvshmemSrc * self, GstEvent * ev,
    gboolean replayed, GstFlowReturn * ret)
{
  GstBaseSrc *bsrc = GST_BASE_SRC (self);

  *ret = GST_FLOW_OK;
  switch (GST_EVENT_TYPE (ev)) {
    case GST_EVENT_STREAM_START:{
      const gchar *id = NULL;

      gst_event_parse_stream_start (ev, &id);
      if (replayed && g_strcmp0 (id, self->stream_id) == 0)
        break;                  /* joining the same stream again */
      g_free (self->stream_id);
      self->stream_id = g_strdup (id);
      return ev;
    }
    case GST_EVENT_EOS:
      self->eos = TRUE;
      *ret = GST_FLOW_EOS;
      break;
    case GST_EVENT_SEGMENT:{
      const GstSegment *seg;

      gst_event_parse_segment (ev, &seg);
      gst_ivshmem_time_set_segment (&self->time, seg);
      if (!bsrc->is_live && seg->format == GST_FORMAT_TIME) {
        /* basesrc pushes it before the next buffer */
        gst_base_src_new_segment (bsrc, seg);
        self->segment_sent = FALSE;
      }
      break;
    }
    case GST_EVENT_GAP:{
      GstClockTime ts, dur;
      GstGapFlags flags = 0;
      GstEvent *gap = NULL;

      if (!bsrc->is_live)
        return ev;
      gst_event_parse_gap (ev, &ts, &dur);
      gst_event_parse_gap_flags (ev, &flags);
      ts = gst_ivshmem_time_restamp (&self->time, ts, TRUE);
      if (GST_CLOCK_TIME_IS_VALID (ts)) {
        gap = gst_event_new_gap (ts, dur);
        gst_event_set_gap_flags (gap, flags);
      }
      gst_event_unref (ev);
      return gap;
    }
    default:
      return ev;
  }
  gst_event_unref (ev);
  return NULL;
}

static GstFlowReturn
gst_ivshmem_src_handle_event (GstIvshmemSrc * self,
    const IvshmRecordHeader * h, const gchar * payload, gboolean replayed)
{
  const gchar *why = NULL;
  GstEvent *ev = gst_ivshmem_event_from_record (h, payload, &why);
  GstFlowReturn ret;

  if (!ev) {
    gst_ivshmem_src_invalid (self, "event", why);
    return GST_FLOW_OK;
  }
  GST_DEBUG_OBJECT (self, "event from the producer: %" GST_PTR_FORMAT, ev);
  ev = gst_ivshmem_src_convert_event (self, ev, replayed, &ret);
  if (!ev)
    return ret;
  if (GST_EVENT_TYPE (ev) != GST_EVENT_STREAM_START)
    gst_ivshmem_src_ensure_segment (self);
  gst_pad_push_event (GST_BASE_SRC_PAD (self), ev);
  return GST_FLOW_OK;
}

/* The copy of a record may be torn: the producer dropped this reader
 * meanwhile. release() only says EVICTED, but a new session's format
 * evicts every reader of the old one too; next() names a new session
 * first, so ask it: "the producer restarted" is followed by the policy,
 * an eviction is not. */
static void
gst_ivshmem_src_release_failed (GstIvshmemSrc * self, IvshmStatus st,
    IvshmError * err)
{
  IvshmError why = { 0 };
  IvshmRecord rec;

  if (st == IVSHM_ERR_EVICTED &&
      ivshm_reader_next (self->reader, &rec, &why) ==
      IVSHM_ERR_SESSION_CHANGED) {
    *err = why;
    return;
  }
  ivshm_error_set (err, st, 0, "the producer dropped this reader while it "
      "was copying a record");
}

/* zero-copy=auto hands out in place only what a rewrite cannot turn into
 * an attack on downstream: raw samples and pixels; and nothing from a
 * mapping that reads far slower than memory (a guest's uncached BAR),
 * where one copy with streaming loads costs less than every element
 * downstream reading it in place. */
static gboolean
gst_ivshmem_src_in_place (GstIvshmemSrc * self, const IvshmRecord * rec)
{
  if (rec->replayed)
    return FALSE;
  switch (self->zc_mode) {
    case GST_IVSHMEM_SRC_ZERO_COPY_ON:
      return TRUE;
    case GST_IVSHMEM_SRC_ZERO_COPY_AUTO:
      return self->caps_raw && !self->map_probe.slow;
    default:
      return FALSE;
  }
}

/* From this size on, copies come from a pool: glibc's malloc() serves
 * blocks this large (from 128 KiB, up to a limit it moves) with mmap() and
 * gives them back with munmap(), so that each copy would first fault in
 * and zero its pages (a second pass over memory); here 8 MB copies did,
 * 141 munmap() calls for 200 buffers. */
#define COPY_POOL_MIN (256 * 1024)
/* at most this many buffers in the pool: beyond, while downstream holds
 * that many, copies come from malloc() again, so that a burst held
 * downstream does not stay allocated after it */
#define COPY_POOL_MAX 8

/* A buffer of `len` bytes to copy a record into: from the copy pool for a
 * large one, whose size is `len` rounded up to a power of two (a new pool
 * when `len` needs a larger one or would fit in a quarter of it), unless
 * all its buffers are downstream; from malloc() otherwise. NULL: out of
 * memory. */
static GstBuffer *
gst_ivshmem_src_copy_buffer (GstIvshmemSrc * self, gsize len)
{
  GstBufferPoolAcquireParams params = {
    .flags = GST_BUFFER_POOL_ACQUIRE_FLAG_DONTWAIT
  };
  GstBuffer *buf = NULL;
  GstStructure *config;
  gsize size;

  if (len < COPY_POOL_MIN || len > G_MAXUINT / 2)
    return gst_buffer_new_allocate (NULL, len, NULL);
  size = COPY_POOL_MIN;
  while (size < len)
    size *= 2;
  if (self->copy_pool && (len > self->copy_pool_size ||
          len <= self->copy_pool_size / 4)) {
    gst_buffer_pool_set_active (self->copy_pool, FALSE);
    gst_clear_object (&self->copy_pool);
  }
  if (!self->copy_pool) {
    GST_DEBUG_OBJECT (self, "a pool of %" G_GSIZE_FORMAT "-byte buffers for "
        "copies", size);
    self->copy_pool = gst_buffer_pool_new ();
    self->copy_pool_size = size;
    config = gst_buffer_pool_get_config (self->copy_pool);
    gst_buffer_pool_config_set_params (config, NULL, (guint) size, 0,
        COPY_POOL_MAX);
    if (!gst_buffer_pool_set_config (self->copy_pool, config) ||
        !gst_buffer_pool_set_active (self->copy_pool, TRUE)) {
      gst_clear_object (&self->copy_pool);
      return gst_buffer_new_allocate (NULL, len, NULL);
    }
  }
  if (gst_buffer_pool_acquire_buffer (self->copy_pool, &buf, &params) !=
      GST_FLOW_OK)
    return gst_buffer_new_allocate (NULL, len, NULL);
  gst_buffer_set_size (buf, len);
  return buf;
}

/* A private copy of a BUFFER record, confirmed not overwritten meanwhile. */
static GstBuffer *
gst_ivshmem_src_copy_record (GstIvshmemSrc * self, const IvshmRecord * rec,
    IvshmError * err)
{
  guint64 len = rec->h.payload_len;
  GstBuffer *buf = gst_ivshmem_src_copy_buffer (self, len);
  GstMapInfo map;
  IvshmStatus st;

  if (!buf || !gst_buffer_map (buf, &map, GST_MAP_WRITE)) {
    GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT,
        ("Could not allocate a buffer of %" G_GUINT64_FORMAT " bytes.", len),
        (NULL));
    if (buf)
      gst_buffer_unref (buf);
    return NULL;
  }
  /* at memory speed: streaming loads from a slow mapping, non-temporal
   * stores for a copy larger than the cache would keep */
  if (self->map_probe.slow)
    ivshm_copy_from_uncached (map.data, rec->payload, len);
  else
    ivshm_copy (map.data, rec->payload, len);
  gst_buffer_unmap (buf, &map);
  st = ivshm_reader_release (self->reader);
  if (st != IVSHM_OK) {
    gst_buffer_unref (buf);
    gst_ivshmem_src_release_failed (self, st, err);
    return NULL;
  }
  return buf;
}

/* Makes a buffer of a BUFFER record, in place or as a copy; consumes the
 * record either way. */
static GstFlowReturn
gst_ivshmem_src_make_buffer (GstIvshmemSrc * self, const IvshmRecord * rec,
    GstBuffer ** out, IvshmError * err)
{
  const IvshmRecordHeader *h = &rec->h;
  GstBuffer *buf = NULL;
  gboolean in_place = FALSE;

  if (gst_ivshmem_src_in_place (self, rec))
    buf = gst_ivshmem_consumer_wrap (self->consumer, self->allocator, rec);
  if (buf)
    in_place = TRUE;
  else if (!(buf = gst_ivshmem_src_copy_record (self, rec, err)))
    return GST_FLOW_ERROR;
  GST_OBJECT_LOCK (self);
  if (in_place)
    self->zero_copy++;
  else
    self->copied++;
  GST_OBJECT_UNLOCK (self);

  GST_BUFFER_FLAGS (buf) |= h->flags & GST_IVSHMEM_BUFFER_FLAGS_MASK;
  GST_BUFFER_OFFSET (buf) = h->offset;
  GST_BUFFER_OFFSET_END (buf) = h->offset_end;
  GST_BUFFER_DURATION (buf) = h->duration;
  gst_ivshmem_src_look_clock (self);
  gst_ivshmem_src_await_estimate (self);
  gst_ivshmem_time_stamp_buffer (&self->time, GST_BASE_SRC (self)->is_live,
      h, &GST_BUFFER_PTS (buf), &GST_BUFFER_DTS (buf));
  if (self->discont) {
    GST_BUFFER_FLAG_SET (buf, GST_BUFFER_FLAG_DISCONT);
    self->discont = FALSE;
  }
  gst_ivshmem_src_note_time (self);
  *out = buf;
  return GST_FLOW_OK;
}

/* After falling behind a leaky producer: the next buffer is here. Tell
 * downstream the stream has a hole (a GAP event over the lost time) and
 * the application what was dropped (a QoS message, in bytes: the producer
 * does not count its records for us). */
static void
gst_ivshmem_src_report_loss (GstIvshmemSrc * self, const IvshmRecordHeader * h)
{
  GstBaseSrc *bsrc = GST_BASE_SRC (self);
  GstClockTime start = GST_CLOCK_TIME_NONE, dur = GST_CLOCK_TIME_NONE;
  GstMessage *qos;
  guint64 lost;

  self->lapped = FALSE;
  if (gst_ivshmem_time_loss (&self->time, bsrc->is_live, h->pts, &start, &dur)) {
    gst_ivshmem_src_ensure_segment (self);
    gst_pad_push_event (GST_BASE_SRC_PAD (bsrc), gst_event_new_gap (start,
            dur));
  }
  GST_OBJECT_LOCK (self);
  lost = self->lost_bytes;
  GST_OBJECT_UNLOCK (self);
  qos = gst_message_new_qos (GST_OBJECT (self), bsrc->is_live, start,
      GST_CLOCK_TIME_NONE, start, dur);
  gst_message_set_qos_stats (qos, GST_FORMAT_BYTES, 0, lost);
  gst_element_post_message (GST_ELEMENT (self), qos);
}

/* One record: a buffer goes out (GST_FLOW_OK, *out set); caps and events
 * are handled here (GST_FLOW_CUSTOM_SUCCESS: read on). Copies out of
 * shared memory first, then releases, which confirms the copy was not
 * overwritten; only then parses the private copy. A read error is
 * GST_FLOW_ERROR with err->status set. */
GstFlowReturn
gst_ivshmem_src_dispatch (GstIvshmemSrc * self, const IvshmRecord * rec,
    GstBuffer ** out, IvshmError * err)
{
  GstFlowReturn ret;
  IvshmStatus st;
  gchar *str;

  if (rec->h.type == IVSHM_RECORD_BUFFER) {
    if (self->lapped)
      gst_ivshmem_src_report_loss (self, &rec->h);
    ret = gst_ivshmem_src_make_buffer (self, rec, out, err);
    if (ret == GST_FLOW_OK && self->time.before_start &&
        self->joined_mid_stream) {
      /* meant for a moment before this pipeline started: no running time
       * can say when, and it is late whatever it would say. (A first
       * reader gets what the producer kept for it, stamped 0, as in 2.0.) */
      GST_LOG_OBJECT (self, "dropping %" GST_PTR_FORMAT ": its moment on "
          "the producer's clock is before this pipeline started", *out);
      gst_buffer_unref (*out);
      *out = NULL;
      GST_OBJECT_LOCK (self);
      self->before_start++;
      GST_OBJECT_UNLOCK (self);
      self->discont = TRUE;
      return GST_FLOW_CUSTOM_SUCCESS;
    }
    if (ret == GST_FLOW_OK) {
      GST_LOG_OBJECT (self, "buffer %" GST_PTR_FORMAT, *out);
      self->segment_sent = TRUE;        /* basesrc sends it with the buffer */
    }
    return ret;
  }

  str = g_strndup ((const gchar *) rec->payload, rec->h.payload_len);
  st = ivshm_reader_release (self->reader);
  if (st != IVSHM_OK) {
    g_free (str);
    gst_ivshmem_src_release_failed (self, st, err);
    return GST_FLOW_ERROR;
  }
  if (rec->h.type == IVSHM_RECORD_CAPS)
    ret = gst_ivshmem_src_handle_caps (self, str);
  else if (rec->h.subtype == IVSHM_EVENT_TIME) {
    gst_ivshmem_src_handle_time (self, &rec->h);
    ret = GST_FLOW_OK;
  } else
    ret = gst_ivshmem_src_handle_event (self, &rec->h, str, rec->replayed);
  g_free (str);
  return ret == GST_FLOW_OK ? GST_FLOW_CUSTOM_SUCCESS : ret;
}
