/* gst-ivshmem: ivshmemsink, writing records
 * SPDX-License-Identifier: MIT
 *
 * Writing records into the ring: render() (in place for a buffer of the
 * sink's pool, else a copy), the lossless wait for room and for a first
 * reader at EOS, unlock(), and the zero-copy pool proposed upstream.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstivshmemsinkpriv.h"
#include "ivshmem-copy.h"

#include <gst/video/video.h>

#include <string.h>

#define GST_CAT_DEFAULT gst_ivshmem_sink_debug

/* Wakes the sink's own waits, and on a flush (pool_too) the upstream
 * threads waiting in the acquire of the pool it proposed as well. A pause
 * (PLAYING -> PAUSED also unlocks the sink) must not reach the pool: an
 * upstream streaming thread that gets FLUSHING stops for good. At PAUSED
 * -> READY the sink pad is deactivated: GstPad marks it flushing before
 * basesink calls unlock(), so the pool is woken as on a flush. basesink
 * calls stop(), which closes the producer, only at READY -> NULL (and
 * start() at NULL -> READY), not at READY: GStreamer 1.22's
 * gst_base_sink_change_state(). */
static void
gst_ivshmem_sink_set_flushing (GstIvshmemSink * self, gboolean flushing,
    gboolean pool_too)
{
  GstBufferPool *pool = NULL;

  ivshm_waiter_set_flushing (&self->waiter, flushing);
  GST_OBJECT_LOCK (self);
  if (self->pool && pool_too)
    pool = gst_object_ref (self->pool);
  GST_OBJECT_UNLOCK (self);
  if (pool) {
    /* an inactive pool hands out nothing, so nobody waits in it */
    if (gst_buffer_pool_is_active (pool))
      gst_buffer_pool_set_flushing (pool, flushing);
    gst_object_unref (pool);
  }
}

gboolean
gst_ivshmem_sink_unlock (GstBaseSink * bsink)
{
  /* FLUSH_START marks the pad flushing before basesink unlocks us */
  gst_ivshmem_sink_set_flushing (GST_IVSHMEM_SINK (bsink), TRUE,
      GST_PAD_IS_FLUSHING (GST_BASE_SINK_PAD (bsink)));
  return TRUE;
}

gboolean
gst_ivshmem_sink_unlock_stop (GstBaseSink * bsink)
{
  gst_ivshmem_sink_set_flushing (GST_IVSHMEM_SINK (bsink), FALSE, TRUE);
  return TRUE;
}

static guint64
gst_ivshmem_sink_max_poll (GstIvshmemSink * self)
{
  guint64 max_poll;

  GST_OBJECT_LOCK (self);
  max_poll = self->max_poll_interval;
  GST_OBJECT_UNLOCK (self);
  return max_poll;
}

/* Waiting for readers cannot help when the space is held by pool
 * buffers of this process: move those nobody has mapped out of the ring.
 * Call with p->lock held. TRUE: some were moved, try again at once. If
 * none could be moved (upstream keeps them mapped), say so once after a
 * while, and wait for upstream to let go. */
static gboolean
gst_ivshmem_sink_free_local (GstIvshmemSink * self, gint64 * held_since)
{
  GstIvshmemProducer *p = self->producer;
  guint64 oldest = 0, end = 0;
  guint n;

  if (!gst_ivshmem_producer_held_locally (p)) {
    *held_since = 0;
    return FALSE;
  }
  n = gst_ivshmem_producer_migrate (p);
  if (n > 0) {
    GST_DEBUG_OBJECT (self, "moved %u pool buffers out of the ring", n);
    g_atomic_pointer_add (&self->moved, n);
    return TRUE;
  }
  if (*held_since == 0) {
    *held_since = g_get_monotonic_time ();
  } else if (*held_since > 0 &&
      g_get_monotonic_time () - *held_since > 2 * G_USEC_PER_SEC) {
    *held_since = -1;           /* said once */
    n = gst_ivshmem_producer_pins (p, &oldest, &end);
    GST_ELEMENT_WARNING (self, RESOURCE, BUSY,
        ("Upstream keeps %u buffers of the sink's zero-copy pool mapped, "
            "which hold the IVSHMEM ring of %s: the sink waits for it to "
            "let go of one.", n, self->region_name),
        ("%" G_GUINT64_FORMAT " bytes of the ring are held by this "
            "process, not by readers. A larger region avoids the wait; an "
            "element that keeps frames mapped should ask for them in the "
            "allocation query's min-buffers, which makes the sink refuse "
            "its pool when the ring cannot hold them.", end - oldest));
  }
  return FALSE;
}

/* Reserves room for a record, waiting while the ring is full. Returns with
 * the producer lock held on GST_FLOW_OK. */
static GstFlowReturn
gst_ivshmem_sink_reserve (GstIvshmemSink * self, guint64 len, void **dst)
{
  GstIvshmemProducer *p = self->producer;
  guint64 max_poll = 0;
  IvshmBackoff backoff;
  IvshmStatus st;
  gboolean reset = TRUE;
  gint64 held_since = 0;

  g_mutex_lock (&p->lock);
  while ((st = ivshm_writer_reserve (p->writer, len, dst)) == IVSHM_AGAIN) {
    GstFlowReturn ret;

    if (gst_ivshmem_sink_lost (self))
      break;
    if (gst_ivshmem_sink_free_local (self, &held_since))
      continue;
    if (reset)
      max_poll = gst_ivshmem_sink_max_poll (self);

    if (gst_ivshmem_producer_wait (p, &self->waiter, &backoff, &reset,
            max_poll))
      continue;

    GST_DEBUG_OBJECT (self, "unlocked while waiting for room");
    g_mutex_unlock (&p->lock);
    ret = gst_base_sink_wait_preroll (GST_BASE_SINK (self));
    if (ret != GST_FLOW_OK)
      return ret;
    g_mutex_lock (&p->lock);
    reset = TRUE;
  }
  if (st == IVSHM_OK)
    return GST_FLOW_OK;
  g_mutex_unlock (&p->lock);

  /* whatever the writer made of a region that reads as zeros */
  if (gst_ivshmem_sink_lost (self))
    return GST_FLOW_ERROR;
  if (st == IVSHM_ERR_TOO_BIG)
    goto too_big;
  if (st == IVSHM_ERR_TAKEN_OVER)
    goto taken_over;
  goto failed;

  /* ERRORS */
too_big:
  {
    guint64 region_size = ivshm_region_size (p->region);
    guint64 need = ivshm_region_size_for_payload (len);

    GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT,
        ("A record of %" G_GUINT64_FORMAT " bytes can never fit in this "
            "IVSHMEM region of %" G_GUINT64_FORMAT " bytes.", len,
            region_size),
        ("The largest record this region holds is %" G_GUINT64_FORMAT
            " bytes. Use a region of at least %" G_GUINT64_FORMAT " bytes "
            "(%" G_GUINT64_FORMAT " %s, a power of two): the sink's size "
            "property for a new host file, or size= of QEMU's "
            "memory-backend-file.", ivshm_writer_max_payload (p->writer),
            need, need >= (1 << 20) ? need >> 20 : need >> 10,
            need >= (1 << 20) ? "MiB" : "KiB"));
    return GST_FLOW_ERROR;
  }
taken_over:
  {
    gst_ivshmem_sink_post_taken_over (self);
    return GST_FLOW_ERROR;
  }
failed:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE,
        ("Could not write to the IVSHMEM ring of %s: %s.",
            self->region_name, ivshm_status_string (st)),
        ("%s. Run ivshmem-info %s to see the region's state, then restart "
            "the pipeline.", ivshm_status_name (st), self->region_name));
    return GST_FLOW_ERROR;
  }
}

/* Copies a record into the ring. */
GstFlowReturn
gst_ivshmem_sink_write (GstIvshmemSink * self, const IvshmRecordHeader * info,
    const void *payload)
{
  GstFlowReturn ret;
  void *dst;

  ret = gst_ivshmem_sink_reserve (self, info->payload_len, &dst);
  if (ret != GST_FLOW_OK)
    return ret;
  /* (non-temporal stores for a large payload: the reader is another
   * process, this one does not read it again) */
  if (info->payload_len)
    ivshm_copy (dst, payload, info->payload_len);
  ivshm_writer_commit (self->producer->writer, info);
  g_mutex_unlock (&self->producer->lock);
  if (gst_ivshmem_sink_lost (self))
    return GST_FLOW_ERROR;
  return GST_FLOW_OK;
}

/* At EOS: the stream is in the ring, but if no reader has attached yet,
 * stopping now would close the session and lose it. Wait for one, as the
 * sink waits for one when the ring is full. */
GstFlowReturn
gst_ivshmem_sink_wait_first_reader (GstIvshmemSink * self)
{
  GstIvshmemProducer *p = self->producer;
  guint64 max_poll = gst_ivshmem_sink_max_poll (self);
  IvshmBackoff backoff;
  gboolean reset = TRUE, logged = FALSE;

  g_mutex_lock (&p->lock);
  while (!ivshm_writer_had_reader (p->writer)) {
    if (gst_ivshmem_sink_lost (self)) {
      g_mutex_unlock (&p->lock);
      return GST_FLOW_ERROR;
    }
    if (!logged) {
      GST_INFO_OBJECT (self, "EOS written; waiting for a first reader "
          "before finishing, so that the stream is not lost");
      logged = TRUE;
    }
    if (gst_ivshmem_producer_wait (p, &self->waiter, &backoff, &reset,
            max_poll))
      continue;
    /* unlocked: flushing, or PLAYING -> PAUSED. Once PLAYING again, the
     * stream still needs its first reader: wait on. */
    g_mutex_unlock (&p->lock);
    if (gst_base_sink_wait_preroll (GST_BASE_SINK (self)) != GST_FLOW_OK)
      return GST_FLOW_FLUSHING;
    g_mutex_lock (&p->lock);
    reset = TRUE;
  }
  g_mutex_unlock (&p->lock);
  return GST_FLOW_OK;
}

static void
gst_ivshmem_sink_buffer_info (GstBuffer * buffer, IvshmRecordHeader * info)
{
  memset (info, 0, sizeof *info);
  info->type = IVSHM_RECORD_BUFFER;
  info->flags = GST_BUFFER_FLAGS (buffer) & GST_IVSHMEM_BUFFER_FLAGS_MASK;
  info->payload_len = gst_buffer_get_size (buffer);
  info->pts = GST_BUFFER_PTS (buffer);
  info->dts = GST_BUFFER_DTS (buffer);
  info->duration = GST_BUFFER_DURATION (buffer);
  info->offset = GST_BUFFER_OFFSET (buffer);
  info->offset_end = GST_BUFFER_OFFSET_END (buffer);
}

GstFlowReturn
gst_ivshmem_sink_render (GstBaseSink * bsink, GstBuffer * buffer)
{
  GstIvshmemSink *self = GST_IVSHMEM_SINK (bsink);
  GstIvshmemProducer *p = self->producer;
  IvshmRecordHeader info;
  IvshmSpan span;
  GstMapInfo map;
  GstFlowReturn ret;

  ret = gst_ivshmem_sink_publish_time (self);
  if (ret != GST_FLOW_OK)
    return ret;
  gst_ivshmem_sink_buffer_info (buffer, &info);

  /* A buffer from our pool is already in the ring: publish it in place.
   * If a record was written after it was reserved, it is stale (ring
   * order is stream order) and is copied like any other buffer. */
  if (gst_ivshmem_buffer_get_span (buffer, p, &span)) {
    IvshmStatus st;

    g_mutex_lock (&p->lock);
    st = ivshm_writer_commit_span (p->writer, &span, &info);
    g_mutex_unlock (&p->lock);
    if (gst_ivshmem_sink_lost (self))
      return GST_FLOW_ERROR;
    if (st == IVSHM_ERR_TAKEN_OVER) {
      gst_ivshmem_sink_post_taken_over (self);
      return GST_FLOW_ERROR;
    }
    if (st == IVSHM_OK) {
      gst_ivshmem_buffer_mark_committed (buffer);
      g_atomic_pointer_add (&self->zero_copy, 1);
      GST_LOG_OBJECT (self, "published in place %" GST_PTR_FORMAT, buffer);
      return GST_FLOW_OK;
    }
    GST_DEBUG_OBJECT (self, "pool buffer at %" G_GUINT64_FORMAT " is %s; "
        "copying it", span.pos, ivshm_status_name (st));
  }

  if (!gst_buffer_map (buffer, &map, GST_MAP_READ))
    goto map_failed;
  GST_LOG_OBJECT (self, "copying %" GST_PTR_FORMAT, buffer);
  ret = gst_ivshmem_sink_write (self, &info, map.data);
  gst_buffer_unmap (buffer, &map);
  if (ret == GST_FLOW_OK)
    g_atomic_pointer_add (&self->copied, 1);
  return ret;

  /* ERRORS */
map_failed:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, READ,
        ("Could not read a buffer from upstream to copy it into the ring."),
        ("Mapping %" GST_PTR_FORMAT " for reading failed: its memory "
            "cannot be read from the CPU (a bug, or memory of a device "
            "upstream). Put videoconvert or a download element before "
            "ivshmemsink.", buffer));
    return GST_FLOW_ERROR;
  }
}

/* Offers upstream a pool whose buffers lie in the ring, so that it writes
 * straight into shared memory. */
gboolean
gst_ivshmem_sink_propose_allocation (GstBaseSink * bsink, GstQuery * query)
{
  GstIvshmemSink *self = GST_IVSHMEM_SINK (bsink);
  GstIvshmemProducer *producer = NULL;
  GstBufferPool *pool;
  GstStructure *config;
  GstCaps *caps;
  GstVideoInfo vinfo;
  gboolean need_pool;
  guint64 max_poll;
  guint size, capacity;

  gst_query_parse_allocation (query, &caps, &need_pool);
  gst_query_add_allocation_meta (query, GST_VIDEO_META_API_TYPE, NULL);
  if (!caps || !gst_video_info_from_caps (&vinfo, caps))
    return TRUE;                /* no fixed size to reserve */
  size = vinfo.size;

  GST_OBJECT_LOCK (self);
  if (self->producer)
    producer = gst_ivshmem_producer_ref (self->producer);
  max_poll = self->max_poll_interval;
  GST_OBJECT_UNLOCK (self);
  if (!producer)
    return TRUE;

  /* what upstream keeps must leave room for the records that pass it */
  capacity = gst_ivshmem_producer_pool_capacity (producer, size);
  if (capacity == 0) {
    GST_INFO_OBJECT (self, "%u-byte frames are too big for a zero-copy "
        "pool in this ring: they are copied", size);
    gst_ivshmem_producer_unref (producer);
    return TRUE;
  }

  pool = gst_ivshmem_buffer_pool_new (producer, max_poll);
  gst_ivshmem_producer_unref (producer);
  config = gst_buffer_pool_get_config (pool);
  gst_buffer_pool_config_set_params (config, caps, size, 0, capacity);
  gst_buffer_pool_config_add_option (config, GST_BUFFER_POOL_OPTION_VIDEO_META);
  if (!gst_buffer_pool_set_config (pool, config)) {
    gst_object_unref (pool);
    return TRUE;
  }
  gst_query_add_allocation_pool (query, pool, size, 0, capacity);
  GST_OBJECT_LOCK (self);
  gst_object_replace ((GstObject **) & self->pool, GST_OBJECT (pool));
  GST_OBJECT_UNLOCK (self);
  gst_object_unref (pool);
  GST_DEBUG_OBJECT (self, "proposed a pool of %u-byte buffers in the ring, "
      "at most %u at once", size, capacity);
  return TRUE;
}
