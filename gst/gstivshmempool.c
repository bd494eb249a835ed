/* gst-ivshmem: the producer side shared by the sink and its buffer pool
 * SPDX-License-Identifier: MIT
 *
 * Zero-copy writes: ivshmemsink answers the allocation query with a pool
 * whose buffers are reservations (IvshmSpan) in the ring. Upstream writes
 * the payload in place; the sink commits the reservation, which publishes
 * it without a copy. The memory keeps the producer (and so the mapping)
 * alive, and gives its reservation back when it is freed, from whatever
 * thread drops the last reference.
 */
#include "gstivshmempool.h"
#include "gstivshmemmemory.h"
#include "gstivshmemutils.h"

#include <gst/video/video.h>

GST_DEBUG_CATEGORY_STATIC (gst_ivshmem_pool_debug);
#define GST_CAT_DEFAULT gst_ivshmem_pool_debug

/* ---- the shared producer ------------------------------------------------ */

GstIvshmemProducer *
gst_ivshmem_producer_new (IvshmRegion * region, IvshmWriter * writer)
{
  GstIvshmemProducer *p = g_new0 (GstIvshmemProducer, 1);

  p->refcount = 1;
  g_mutex_init (&p->lock);
  p->region = region;
  p->writer = writer;
  return p;
}

GstIvshmemProducer *
gst_ivshmem_producer_ref (GstIvshmemProducer * p)
{
  g_atomic_int_inc (&p->refcount);
  return p;
}

void
gst_ivshmem_producer_close (GstIvshmemProducer * p)
{
  g_mutex_lock (&p->lock);
  if (!p->closed) {
    ivshm_writer_close (p->writer);
    p->closed = TRUE;
  }
  g_mutex_unlock (&p->lock);
}

void
gst_ivshmem_producer_unref (GstIvshmemProducer * p)
{
  if (!g_atomic_int_dec_and_test (&p->refcount))
    return;
  ivshm_writer_free (p->writer);
  ivshm_region_close (p->region);
  g_mutex_clear (&p->lock);
  g_free (p);
}

gboolean
gst_ivshmem_producer_wait (GstIvshmemProducer * p, IvshmWaiter * waiter,
    IvshmBackoff * backoff, gboolean * reset, guint64 max_poll_interval)
{
  guint64 timeout;
  guint32 token;
  gboolean ok;

  timeout = gst_ivshmem_next_wait (backoff, reset,
      ivshm_writer_readers_local (p->writer), waiter, max_poll_interval);
  if (timeout == 0 || !ivshm_writer_wait_prepare (p->writer, &token)) {
    ivshm_cpu_relax ();
    return !ivshm_waiter_is_flushing (waiter);
  }
  g_mutex_unlock (&p->lock);
  ok = ivshm_writer_wait_finish (p->writer, waiter, token, timeout);
  g_mutex_lock (&p->lock);
  return ok;
}

/* ---- memory in the ring ------------------------------------------------- */

#define GST_IVSHMEM_MEMORY_TYPE "IvshmemRing"

/* A reservation in the ring, on the skeleton of gstivshmemmemory.h: its
 * owner is the GstIvshmemProducer, its data the span's payload. */
typedef struct
{
  GstIvshmemRingMemory base;
  IvshmSpan span;
} GstIvshmemMemory;

#define GST_TYPE_IVSHMEM_ALLOCATOR (gst_ivshmem_allocator_get_type ())
G_DECLARE_FINAL_TYPE (GstIvshmemAllocator, gst_ivshmem_allocator, GST,
    IVSHMEM_ALLOCATOR, GstIvshmemRingAllocator);

struct _GstIvshmemAllocator
{
  GstIvshmemRingAllocator parent;
};

G_DEFINE_TYPE (GstIvshmemAllocator, gst_ivshmem_allocator,
    GST_TYPE_IVSHMEM_RING_ALLOCATOR);

static gpointer
gst_ivshmem_allocator_owner_ref (gpointer owner)
{
  return gst_ivshmem_producer_ref (owner);
}

static void
gst_ivshmem_allocator_owner_unref (gpointer owner)
{
  gst_ivshmem_producer_unref (owner);
}

static void
gst_ivshmem_allocator_release (GstIvshmemRingMemory * root)
{
  GstIvshmemMemory *m = (GstIvshmemMemory *) root;
  GstIvshmemProducer *p = root->owner;

  ivshm_writer_release_span (p->writer, &m->span);
}

/* A root memory (sub-memories are made by the skeleton's share()). */
static GstIvshmemMemory *
gst_ivshmem_memory_new (GstAllocator * allocator, GstMemoryFlags flags,
    GstMemory * parent, GstIvshmemProducer * producer, const IvshmSpan * span,
    gsize offset, gsize size)
{
  GstIvshmemMemory *m;

  g_return_val_if_fail (parent == NULL && offset == 0, NULL);
  m = (GstIvshmemMemory *) gst_ivshmem_ring_memory_new (allocator, flags,
      producer, span->payload, span->capacity, size);
  m->span = *span;
  return m;
}

static void
gst_ivshmem_allocator_class_init (GstIvshmemAllocatorClass * klass)
{
  GstIvshmemRingAllocatorClass *ring_class =
      GST_IVSHMEM_RING_ALLOCATOR_CLASS (klass);

  ring_class->memory_size = sizeof (GstIvshmemMemory);
  ring_class->owner_ref = gst_ivshmem_allocator_owner_ref;
  ring_class->owner_unref = gst_ivshmem_allocator_owner_unref;
  ring_class->release = gst_ivshmem_allocator_release;
}

static void
gst_ivshmem_allocator_init (GstIvshmemAllocator * self)
{
  GST_ALLOCATOR_CAST (self)->mem_type = GST_IVSHMEM_MEMORY_TYPE;
}

gboolean
gst_ivshmem_buffer_get_span (GstBuffer * buffer, GstIvshmemProducer * p,
    IvshmSpan * span)
{
  GstMemory *mem;
  GstIvshmemMemory *m;

  if (gst_buffer_n_memory (buffer) != 1)
    return FALSE;
  mem = gst_buffer_peek_memory (buffer, 0);
  if (!GST_IS_IVSHMEM_ALLOCATOR (mem->allocator) || mem->parent ||
      mem->offset != 0)
    return FALSE;
  m = (GstIvshmemMemory *) mem;
  if (m->base.owner != p)
    return FALSE;
  *span = m->span;
  return TRUE;
}

void
gst_ivshmem_buffer_mark_committed (GstBuffer * buffer)
{
  /* readers see it now: nobody may write into it any more */
  GST_MINI_OBJECT_FLAG_SET (gst_buffer_peek_memory (buffer, 0),
      GST_MEMORY_FLAG_READONLY);
}

/* ---- the pool ----------------------------------------------------------- */

struct _GstIvshmemBufferPool
{
  GstBufferPool parent;

  GstIvshmemProducer *producer;
  GstAllocator *allocator;
  IvshmWaiter waiter;           /* set flushing by flush_start() */
  guint64 max_poll_interval;

  /* from the configuration */
  guint size;
  gboolean add_video_meta;
  gboolean have_video_info;
  GstVideoInfo vinfo;
};

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

static gboolean
gst_ivshmem_buffer_pool_set_config (GstBufferPool * pool,
    GstStructure * config)
{
  GstIvshmemBufferPool *self = GST_IVSHMEM_BUFFER_POOL (pool);
  GstCaps *caps = NULL;
  guint size, min, max;

  if (!gst_buffer_pool_config_get_params (config, &caps, &size, &min, &max))
    return FALSE;

  self->have_video_info = caps && gst_video_info_from_caps (&self->vinfo,
      caps);
  self->add_video_meta = self->have_video_info &&
      gst_buffer_pool_config_has_option (config,
      GST_BUFFER_POOL_OPTION_VIDEO_META);
  if (self->have_video_info)
    size = MAX (size, (guint) self->vinfo.size);
  self->size = size;
  gst_buffer_pool_config_set_params (config, caps, size, 0, max);
  GST_DEBUG_OBJECT (self, "%u-byte buffers in the ring, video meta %d",
      size, self->add_video_meta);

  return GST_BUFFER_POOL_CLASS (gst_ivshmem_buffer_pool_parent_class)->
      set_config (pool, config);
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
  ivshm_waiter_set_flushing (&GST_IVSHMEM_BUFFER_POOL (pool)->waiter, TRUE);
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

static GstFlowReturn
gst_ivshmem_buffer_pool_acquire_buffer (GstBufferPool * pool,
    GstBuffer ** buffer, GstBufferPoolAcquireParams * params)
{
  GstIvshmemBufferPool *self = GST_IVSHMEM_BUFFER_POOL (pool);
  GstIvshmemProducer *p = self->producer;
  IvshmBackoff backoff;
  gboolean reset = TRUE;
  IvshmSpan span;
  IvshmStatus st;

  g_mutex_lock (&p->lock);
  for (;;) {
    if (p->closed) {
      g_mutex_unlock (&p->lock);
      return GST_FLOW_FLUSHING;
    }
    st = ivshm_writer_reserve_span (p->writer, self->size, &span);
    if (st != IVSHM_AGAIN)
      break;
    if (params && (params->flags & GST_BUFFER_POOL_ACQUIRE_FLAG_DONTWAIT)) {
      g_mutex_unlock (&p->lock);
      return GST_FLOW_EOS;
    }
    /* the ring is full: wait as the sink does */
    if (!gst_ivshmem_producer_wait (p, &self->waiter, &backoff, &reset,
            self->max_poll_interval)) {
      g_mutex_unlock (&p->lock);
      return GST_FLOW_FLUSHING;
    }
  }
  g_mutex_unlock (&p->lock);

  if (st != IVSHM_OK) {
    GST_WARNING_OBJECT (self, "cannot reserve %u bytes: %s", self->size,
        ivshm_status_string (st));
    return GST_FLOW_ERROR;
  }
  *buffer = gst_ivshmem_buffer_pool_wrap (self, &span);
  GST_LOG_OBJECT (self, "buffer at ring position %" G_GUINT64_FORMAT,
      span.pos);
  return GST_FLOW_OK;
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
  G_OBJECT_CLASS (gst_ivshmem_buffer_pool_parent_class)->finalize (object);
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
