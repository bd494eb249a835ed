/* gst-ivshmem: the producer side shared by the sink and its buffer pool
 * SPDX-License-Identifier: MIT
 *
 * The producer (the mapped region and its writer, shared by the sink, its
 * pool and every pool memory), what this process holds of the ring (the
 * pins), and the memory in the ring that the pool hands out
 * (gstivshmempool.c). See gstivshmempool.c for zero-copy writes.
 */
#include "gstivshmempool.h"
#include "gstivshmempoolpriv.h"
#include "gstivshmemutils.h"

#include <string.h>

/* ---- the shared producer ------------------------------------------------ */

GstIvshmemProducer *
gst_ivshmem_producer_new (IvshmRegion * region, IvshmWriter * writer)
{
  GstIvshmemProducer *p = g_new0 (GstIvshmemProducer, 1);

  p->refcount = 1;
  g_mutex_init (&p->lock);
  p->region = region;
  p->writer = writer;
  g_mutex_init (&p->pins_lock);
  p->pins = g_array_new (FALSE, FALSE, sizeof (GstIvshmemPin));
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
  g_mutex_clear (&p->pins_lock);
  g_array_unref (p->pins);
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
  p->waited_ns = ivshm_now_ns ();
  if (timeout == 0 || !ivshm_writer_wait_prepare (p->writer, &token)) {
    ivshm_cpu_relax ();
    return !ivshm_waiter_is_flushing (waiter);
  }
  g_mutex_unlock (&p->lock);
  ok = ivshm_writer_wait_finish (p->writer, waiter, token, timeout);
  g_mutex_lock (&p->lock);
  return ok;
}

/* ---- what this process holds of the ring -------------------------------- */

/* Kept sorted by ring position: spans are reserved in ring order, but two
 * threads may wrap theirs in the other order. */
void
gst_ivshmem_producer_pin (GstIvshmemProducer * p, GstIvshmemMemory * m)
{
  GstIvshmemPin pin = { m->span.id, m->span.pos,
    m->span.capacity + sizeof (IvshmRecordHeader), m
  };
  guint i;

  g_mutex_lock (&p->pins_lock);
  for (i = p->pins->len; i > 0; i--)
    if (g_array_index (p->pins, GstIvshmemPin, i - 1).pos < pin.pos)
      break;
  g_array_insert_val (p->pins, i, pin);
  g_mutex_unlock (&p->pins_lock);
}

/* Call with pins_lock held. FALSE: not pinned (migrated). */
static gboolean
gst_ivshmem_producer_unpin_locked (GstIvshmemProducer * p,
    const IvshmSpan * span)
{
  guint i;

  for (i = 0; i < p->pins->len; i++) {
    if (g_array_index (p->pins, GstIvshmemPin, i).id == span->id) {
      g_array_remove_index (p->pins, i);
      return TRUE;
    }
  }
  return FALSE;
}

guint
gst_ivshmem_producer_migrate (GstIvshmemProducer * p)
{
  GArray *moved = g_array_new (FALSE, FALSE, sizeof (IvshmSpan));
  guint i, n;

  g_mutex_lock (&p->pins_lock);
  for (i = 0; i < p->pins->len;) {
    GstIvshmemMemory *m = g_array_index (p->pins, GstIvshmemPin, i).mem;

    if (m->base.maps > 0) {
      i++;
      continue;
    }
    gst_ivshmem_ring_memory_move_out_locked (&m->base);
    g_array_append_val (moved, m->span);
    g_array_remove_index (p->pins, i);
  }
  g_mutex_unlock (&p->pins_lock);

  /* a pending span given back becomes a skip */
  for (i = 0; i < moved->len; i++)
    ivshm_writer_release_span (p->writer, &g_array_index (moved, IvshmSpan, i));
  n = moved->len;
  g_array_free (moved, TRUE);
  return n;
}

guint
gst_ivshmem_producer_pins (GstIvshmemProducer * p, guint64 * oldest,
    guint64 * newest_end)
{
  guint n;

  g_mutex_lock (&p->pins_lock);
  n = p->pins->len;
  if (n) {
    GstIvshmemPin *first = &g_array_index (p->pins, GstIvshmemPin, 0);
    GstIvshmemPin *last = &g_array_index (p->pins, GstIvshmemPin, n - 1);

    *oldest = first->pos;
    *newest_end = last->pos + last->len;
  }
  g_mutex_unlock (&p->pins_lock);
  return n;
}

/* The core keeps at most 256 reservations; leave it room for copies */
#define GST_IVSHMEM_MAX_PINS 192

gboolean
gst_ivshmem_producer_held_locally (GstIvshmemProducer * p)
{
  guint64 oldest = 0, end = 0;
  guint n = gst_ivshmem_producer_pins (p, &oldest, &end);

  if (n == 0)
    return FALSE;
  if (n >= GST_IVSHMEM_MAX_PINS)
    return TRUE;
  /* how far the writer reclaimed before saying AGAIN: its own copy, never
   * the one in the region, which a peer can write (tests/check/producerpool.c) */
  return ivshm_writer_tail (p->writer) >= oldest;
}

guint64
gst_ivshmem_producer_ring_size (GstIvshmemProducer * p)
{
  return ivshm_writer_max_payload (p->writer) + sizeof (IvshmRecordHeader);
}

guint
gst_ivshmem_producer_pool_capacity (GstIvshmemProducer * p, guint64 size)
{
  guint64 fit;

  g_mutex_lock (&p->lock);
  fit = gst_ivshmem_producer_ring_size (p) / ivshm_record_len (size);
  g_mutex_unlock (&p->lock);
  /* room for one buffer in render (or the sink's last sample), one copy,
   * and the pad before a record that would wrap */
  if (fit <= 3)
    return 0;
  return MIN (fit - 3, 64);
}

/* ---- memory in the ring ------------------------------------------------- */

#define GST_IVSHMEM_MEMORY_TYPE "IvshmemRing"

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
  gboolean in_ring;

  /* a migrated memory gave its span back when it moved out of the ring */
  g_mutex_lock (&p->pins_lock);
  in_ring = gst_ivshmem_producer_unpin_locked (p, &m->span)
      || root->copy == NULL;
  g_mutex_unlock (&p->pins_lock);
  if (in_ring)
    ivshm_writer_release_span (p->writer, &m->span);
}

static GMutex *
gst_ivshmem_allocator_lock_of (gpointer owner)
{
  return &((GstIvshmemProducer *) owner)->pins_lock;
}

/* A root memory (sub-memories are made by the skeleton's share()). */
GstIvshmemMemory *
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
  ring_class->lock_of = gst_ivshmem_allocator_lock_of;
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
  gboolean in_ring;

  if (gst_buffer_n_memory (buffer) != 1)
    return FALSE;
  mem = gst_buffer_peek_memory (buffer, 0);
  if (!GST_IS_IVSHMEM_ALLOCATOR (mem->allocator) || mem->parent ||
      mem->offset != 0)
    return FALSE;
  m = (GstIvshmemMemory *) mem;
  if (m->base.owner != p)
    return FALSE;
  /* a migrated memory is no longer in the ring: it is copied */
  g_mutex_lock (&p->pins_lock);
  in_ring = m->base.copy == NULL;
  g_mutex_unlock (&p->pins_lock);
  *span = m->span;
  return in_ring;
}

void
gst_ivshmem_buffer_mark_committed (GstBuffer * buffer)
{
  /* readers see it now: nobody may write into it any more */
  GST_MINI_OBJECT_FLAG_SET (gst_buffer_peek_memory (buffer, 0),
      GST_MEMORY_FLAG_READONLY);
}
