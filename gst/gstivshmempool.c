/* gst-ivshmem: the sink's zero-copy buffer pool
 * SPDX-License-Identifier: MIT
 *
 * Zero-copy writes: ivshmemsink answers the allocation query with a pool
 * whose buffers are reservations (IvshmSpan) in the ring. Upstream writes
 * the payload in place; the sink commits the reservation, which publishes
 * it without a copy. The memory keeps the producer (and so the mapping)
 * alive, and gives its reservation back when it is freed, from whatever
 * thread drops the last reference (gstivshmemproducer.c: the producer, its
 * pins and the memory in the ring).
 */
#include "gstivshmempool.h"
#include "gstivshmempoolpriv.h"
#include "gstivshmemmemory.h"
#include "gstivshmemutils.h"

#include <gst/video/video.h>

#include <string.h>

GST_DEBUG_CATEGORY_STATIC (gst_ivshmem_pool_debug);
#define GST_CAT_DEFAULT gst_ivshmem_pool_debug

/* ---- the pool ----------------------------------------------------------- */

struct _GstIvshmemBufferPool
{
  GstBufferPool parent;

  GstIvshmemProducer *producer;
  GstAllocator *allocator;
  IvshmWaiter waiter;           /* set flushing by flush_start() */
  guint64 max_poll_interval;
  gsize system_buffers;         /* atomic (g_atomic_pointer_*): handed out
                                 * in ordinary memory */
  gint flush_epoch;             /* atomic: bumped by each flush_start() */
  gint in_system;               /* atomic: the last one was; log changes */

  /* from the configuration */
  guint size;
  guint max_in_ring;            /* ring buffers referenced at once, at most */
  gboolean add_video_meta;
  gboolean have_video_info;
  GstVideoInfo vinfo;
};

#define gst_ivshmem_buffer_pool_parent_class parent_class
G_DEFINE_TYPE_WITH_CODE (GstIvshmemBufferPool, gst_ivshmem_buffer_pool,
    GST_TYPE_BUFFER_POOL,
    GST_DEBUG_CATEGORY_INIT (gst_ivshmem_pool_debug, "ivshmempool", 0,
        "IVSHMEM zero-copy buffer pool"));

static const gchar **
gst_ivshmem_buffer_pool_get_options (GstBufferPool * pool)
{
  /* No GST_BUFFER_POOL_OPTION_VIDEO_ALIGNMENT: a reader lays a frame out
   * from the caps alone, so the strides must be the caps' default ones. */
  static const gchar *options[] = { GST_BUFFER_POOL_OPTION_VIDEO_META, NULL };
  return options;
}

/* Upstream says in `min` how many buffers it keeps at once (a decoder's
 * reference frames). If the ring cannot hold them and still take what
 * must pass them, the configuration is refused with a smaller `min`, so
 * that upstream takes a pool of its own (and the sink copies). The pool
 * then keeps at most `max_in_ring` buffers in the ring at once. */
static gboolean
gst_ivshmem_buffer_pool_set_config (GstBufferPool * pool, GstStructure * config)
{
  GstIvshmemBufferPool *self = GST_IVSHMEM_BUFFER_POOL (pool);
  GstCaps *caps = NULL;
  guint size, min, max, capacity;
  gboolean ok = TRUE;

  if (!gst_buffer_pool_config_get_params (config, &caps, &size, &min, &max))
    return FALSE;

  self->have_video_info = caps && gst_video_info_from_caps (&self->vinfo, caps);
  self->add_video_meta = self->have_video_info &&
      gst_buffer_pool_config_has_option (config,
      GST_BUFFER_POOL_OPTION_VIDEO_META);
  if (self->have_video_info)
    size = MAX (size, (guint) self->vinfo.size);
  self->size = size;
  capacity = gst_ivshmem_producer_pool_capacity (self->producer, size);
  if (min > capacity) {
    GST_INFO_OBJECT (self, "upstream keeps up to %u buffers of %u bytes; "
        "the ring can keep %u: refusing", min, size, capacity);
    min = capacity;
    ok = FALSE;
  }
  self->max_in_ring = max ? MIN (max, capacity) : capacity;
  gst_buffer_pool_config_set_params (config, caps, size, min,
      self->max_in_ring);
  GST_DEBUG_OBJECT (self, "%u-byte buffers in the ring, at most %u at "
      "once, video meta %d", size, self->max_in_ring, self->add_video_meta);

  return GST_BUFFER_POOL_CLASS (parent_class)->set_config (pool, config) && ok;
}

static gboolean
gst_ivshmem_buffer_pool_start (GstBufferPool * pool)
{
  /* nothing to preallocate: each buffer is a new reservation */
  return TRUE;
}

static gboolean
gst_ivshmem_buffer_pool_stop (GstBufferPool * pool)
{
  return TRUE;
}

static void
gst_ivshmem_buffer_pool_flush_start (GstBufferPool * pool)
{
  GstIvshmemBufferPool *self = GST_IVSHMEM_BUFFER_POOL (pool);

  /* a waiter that wakes after flush_stop() still sees that it was
   * flushed */
  g_atomic_int_inc (&self->flush_epoch);
  ivshm_waiter_set_flushing (&self->waiter, TRUE);
}

static void
gst_ivshmem_buffer_pool_flush_stop (GstBufferPool * pool)
{
  ivshm_waiter_set_flushing (&GST_IVSHMEM_BUFFER_POOL (pool)->waiter, FALSE);
}

static GstBuffer *
gst_ivshmem_buffer_pool_wrap (GstIvshmemBufferPool * self,
    const IvshmSpan * span)
{
  GstIvshmemMemory *m;
  GstBuffer *buf;

  m = gst_ivshmem_memory_new (self->allocator, 0, NULL, self->producer, span,
      0, self->size);
  gst_ivshmem_producer_pin (self->producer, m);
  buf = gst_buffer_new ();
  gst_buffer_append_memory (buf, GST_MEMORY_CAST (m));
  GST_BUFFER_FLAG_UNSET (buf, GST_BUFFER_FLAG_TAG_MEMORY);
  if (self->add_video_meta) {
    GstVideoInfo *vi = &self->vinfo;

    gst_buffer_add_video_meta_full (buf, GST_VIDEO_FRAME_FLAG_NONE,
        GST_VIDEO_INFO_FORMAT (vi), GST_VIDEO_INFO_WIDTH (vi),
        GST_VIDEO_INFO_HEIGHT (vi), GST_VIDEO_INFO_N_PLANES (vi),
        vi->offset, vi->stride);
  }
  return buf;
}

/* A buffer in ordinary memory, laid out as a ring buffer would be: the
 * sink copies it. */
static GstBuffer *
gst_ivshmem_buffer_pool_system (GstIvshmemBufferPool * self)
{
  GstAllocationParams params;
  GstBuffer *buf;

  gst_allocation_params_init (&params);
  params.align = IVSHM_RECORD_ALIGN - 1;
  buf = gst_buffer_new_allocate (NULL, self->size, &params);
  if (buf && self->add_video_meta) {
    GstVideoInfo *vi = &self->vinfo;

    gst_buffer_add_video_meta_full (buf, GST_VIDEO_FRAME_FLAG_NONE,
        GST_VIDEO_INFO_FORMAT (vi), GST_VIDEO_INFO_WIDTH (vi),
        GST_VIDEO_INFO_HEIGHT (vi), GST_VIDEO_INFO_N_PLANES (vi),
        vi->offset, vi->stride);
  }
  g_atomic_pointer_add (&self->system_buffers, 1);
  return buf;
}

/* Call with p->lock held. Whether a new buffer may go into the ring: the
 * pool's bound, and room left past everything this process holds for a
 * copy and a pad, so that the sink can always write the next record
 * without waiting for upstream to let go of a pool buffer. */
static gboolean
gst_ivshmem_buffer_pool_ring_ok (GstIvshmemBufferPool * self)
{
  GstIvshmemProducer *p = self->producer;
  guint64 oldest = 0, end = 0, rec, reserve_end;
  guint n = gst_ivshmem_producer_pins (p, &oldest, &end);

  if (n >= self->max_in_ring)
    return FALSE;
  if (n == 0)
    return TRUE;
  rec = ivshm_record_len (self->size);
  reserve_end = MAX (ivshm_writer_position (p->writer), end);
  return reserve_end + 3 * rec - oldest <= gst_ivshmem_producer_ring_size (p);
}

/* Reserves a span in the ring, waiting while readers hold the space.
 * FALSE (and GST_FLOW_OK): the space is held by this process's own
 * references, or the pool's bound is reached: hand out ordinary memory. */
static gboolean
gst_ivshmem_buffer_pool_reserve (GstIvshmemBufferPool * self,
    GstBufferPoolAcquireParams * params, IvshmSpan * span, GstFlowReturn * ret)
{
  GstIvshmemProducer *p = self->producer;
  IvshmBackoff backoff;
  gboolean reset = TRUE, in_ring = FALSE;
  gint epoch = g_atomic_int_get (&self->flush_epoch);
  IvshmStatus st;

  *ret = GST_FLOW_OK;
  g_mutex_lock (&p->lock);
  for (;;) {
    if (p->closed || g_atomic_int_get (&self->flush_epoch) != epoch) {
      *ret = GST_FLOW_FLUSHING;
      break;
    }
    if (!gst_ivshmem_buffer_pool_ring_ok (self))
      break;
    st = ivshm_writer_reserve_span (p->writer, self->size, span);
    if (st == IVSHM_OK) {
      in_ring = TRUE;
      break;
    }
    if (st != IVSHM_AGAIN) {
      GST_WARNING_OBJECT (self, "cannot reserve %u bytes: %s", self->size,
          ivshm_status_string (st));
      break;                    /* the sink reports it when it copies */
    }
    /* waiting helps only if readers, not we, hold the space */
    if (gst_ivshmem_producer_held_locally (p))
      break;
    if (params && (params->flags & GST_BUFFER_POOL_ACQUIRE_FLAG_DONTWAIT)) {
      *ret = GST_FLOW_EOS;
      break;
    }
    if (!gst_ivshmem_producer_wait (p, &self->waiter, &backoff, &reset,
            self->max_poll_interval)) {
      *ret = GST_FLOW_FLUSHING;
      break;
    }
  }
  g_mutex_unlock (&p->lock);
  return in_ring;
}

static GstFlowReturn
gst_ivshmem_buffer_pool_acquire_buffer (GstBufferPool * pool,
    GstBuffer ** buffer, GstBufferPoolAcquireParams * params)
{
  GstIvshmemBufferPool *self = GST_IVSHMEM_BUFFER_POOL (pool);
  GstFlowReturn ret;
  IvshmSpan span;

  if (gst_ivshmem_buffer_pool_reserve (self, params, &span, &ret)) {
    if (g_atomic_int_compare_and_exchange (&self->in_system, TRUE, FALSE))
      GST_INFO_OBJECT (self, "buffers in the ring again");
    *buffer = gst_ivshmem_buffer_pool_wrap (self, &span);
    GST_LOG_OBJECT (self, "buffer at ring position %" G_GUINT64_FORMAT,
        span.pos);
    return GST_FLOW_OK;
  }
  if (ret != GST_FLOW_OK)
    return ret;
  if (g_atomic_int_compare_and_exchange (&self->in_system, FALSE, TRUE)) {
    guint64 oldest = 0, end = 0;
    guint n = gst_ivshmem_producer_pins (self->producer, &oldest, &end);

    GST_INFO_OBJECT (self, "%u pool buffers of this process hold the ring "
        "from position %" G_GUINT64_FORMAT ": handing out ordinary memory, "
        "which the sink copies", n, oldest);
  }
  *buffer = gst_ivshmem_buffer_pool_system (self);
  return *buffer ? GST_FLOW_OK : GST_FLOW_ERROR;
}

static void
gst_ivshmem_buffer_pool_release_buffer (GstBufferPool * pool,
    GstBuffer * buffer)
{
  /* Not kept: the ring has moved on. Freeing the memory gives the
   * reservation back. */
  gst_buffer_unref (buffer);
}

static void
gst_ivshmem_buffer_pool_finalize (GObject * object)
{
  GstIvshmemBufferPool *self = GST_IVSHMEM_BUFFER_POOL (object);

  gst_ivshmem_producer_unref (self->producer);
  gst_object_unref (self->allocator);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_ivshmem_buffer_pool_class_init (GstIvshmemBufferPoolClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstBufferPoolClass *pool_class = GST_BUFFER_POOL_CLASS (klass);

  gobject_class->finalize = gst_ivshmem_buffer_pool_finalize;
  pool_class->get_options = gst_ivshmem_buffer_pool_get_options;
  pool_class->set_config = gst_ivshmem_buffer_pool_set_config;
  pool_class->start = gst_ivshmem_buffer_pool_start;
  pool_class->stop = gst_ivshmem_buffer_pool_stop;
  pool_class->flush_start = gst_ivshmem_buffer_pool_flush_start;
  pool_class->flush_stop = gst_ivshmem_buffer_pool_flush_stop;
  pool_class->acquire_buffer = gst_ivshmem_buffer_pool_acquire_buffer;
  pool_class->release_buffer = gst_ivshmem_buffer_pool_release_buffer;
}

static void
gst_ivshmem_buffer_pool_init (GstIvshmemBufferPool * self)
{
  ivshm_waiter_init (&self->waiter);
}

GstBufferPool *
gst_ivshmem_buffer_pool_new (GstIvshmemProducer * producer,
    guint64 max_poll_interval)
{
  GstIvshmemBufferPool *self;

  self = g_object_new (GST_TYPE_IVSHMEM_BUFFER_POOL, NULL);
  gst_object_ref_sink (self);
  self->producer = gst_ivshmem_producer_ref (producer);
  self->allocator = g_object_new (GST_TYPE_IVSHMEM_ALLOCATOR, NULL);
  gst_object_ref_sink (self->allocator);
  self->max_poll_interval = max_poll_interval;
  return GST_BUFFER_POOL_CAST (self);
}

guint64
gst_ivshmem_buffer_pool_system_buffers (GstBufferPool * pool)
{
  return (gsize)
      g_atomic_pointer_get (&GST_IVSHMEM_BUFFER_POOL (pool)->system_buffers);
}
