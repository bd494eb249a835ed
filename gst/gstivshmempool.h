/* gst-ivshmem: the producer side shared by the sink and its buffer pool
 * SPDX-License-Identifier: MIT
 */
#ifndef __GST_IVSHMEM_POOL_H__
#define __GST_IVSHMEM_POOL_H__

#include <gst/gst.h>

#include "ivshmem-region.h"
#include "ivshmem-ring.h"

G_BEGIN_DECLS

/* The mapped region and its writer, shared by the sink, its pool and every
 * pool memory, which point into the ring: the last reference unmaps.
 * Every call on `writer` is made under `lock` (the sink's streaming thread
 * and upstream threads acquiring pool buffers both use it). */
typedef struct
{
  gint refcount;
  GMutex lock;
  IvshmRegion *region;
  IvshmWriter *writer;          /* protected by lock */
  gboolean closed;              /* protected by lock: the sink stopped */

  /* The ring spans that pool memories of this process still point into
   * (GstIvshmemPin), oldest first: what only this process can give back.
   * Protected by pins_lock, which is taken alone, never with `lock`
   * held while waiting. */
  GMutex pins_lock;
  GArray *pins;

  /* When a wait for room (or for a first reader) last went to sleep
   * (ivshm_now_ns(); 0: never), for the sink's watch of a reader that
   * holds it back. Under `lock` (the wait stores it before it lets the
   * lock go to sleep). */
  guint64 waited_ns;
} GstIvshmemProducer;

typedef struct
{
  guint64 id, pos, len;
  gpointer mem;                 /* the pool memory in the ring */
} GstIvshmemPin;

GstIvshmemProducer *gst_ivshmem_producer_new (IvshmRegion * region,
    IvshmWriter * writer);
GstIvshmemProducer *gst_ivshmem_producer_ref (GstIvshmemProducer * p);
void gst_ivshmem_producer_unref (GstIvshmemProducer * p);
/* Closes the session (readers see it end); memories may live on. */
void gst_ivshmem_producer_close (GstIvshmemProducer * p);

/* One step of waiting for room in the ring (or for a reader): a short
 * spin, then sleeps that a reader on this kernel cuts short with a futex
 * wake and that grow up to max_poll_interval otherwise. Call with p->lock
 * held; it is dropped while sleeping. *reset TRUE starts a new back-off.
 * FALSE: the waiter is flushing. Shared by the sink and its pool. */
gboolean gst_ivshmem_producer_wait (GstIvshmemProducer * p,
    IvshmWaiter * waiter, IvshmBackoff * backoff, gboolean * reset,
    guint64 max_poll_interval);

/* How the ring is held by this process right now: the number of pool
 * spans still referenced, where the oldest starts and the newest ends. */
guint gst_ivshmem_producer_pins (GstIvshmemProducer * p, guint64 * oldest,
    guint64 * newest_end);

/* Call with p->lock held, after a reservation returned IVSHM_AGAIN: TRUE
 * when waiting for the readers cannot make room, because every reader is
 * past the oldest pool span that this process still references (or no
 * reservation slot is left): only upstream letting go of its pool
 * buffers can. */
gboolean gst_ivshmem_producer_held_locally (GstIvshmemProducer * p);

/* The ring is held by this process: copy every pool buffer that nobody
 * has mapped right now (a decoder's reference frame, a last sample) into
 * ordinary memory and give its span back. A buffer still pending is then
 * copied by the sink, never published in place. Returns how many. */
guint gst_ivshmem_producer_migrate (GstIvshmemProducer * p);

/* How many `size`-byte pool buffers the ring can have referenced at once
 * and still take the copies, pads and records that must pass them: 0
 * when a zero-copy pool would not be safe in this ring. */
guint gst_ivshmem_producer_pool_capacity (GstIvshmemProducer * p, guint64 size);

/* If `buffer` is one piece of pool memory of this producer, still pending,
 * returns its reservation (and TRUE). */
gboolean gst_ivshmem_buffer_get_span (GstBuffer * buffer,
    GstIvshmemProducer * p, IvshmSpan * span);
/* After a successful commit: the memory is read by readers now. */
void gst_ivshmem_buffer_mark_committed (GstBuffer * buffer);

#define GST_TYPE_IVSHMEM_BUFFER_POOL (gst_ivshmem_buffer_pool_get_type ())
G_DECLARE_FINAL_TYPE (GstIvshmemBufferPool, gst_ivshmem_buffer_pool, GST,
    IVSHMEM_BUFFER_POOL, GstBufferPool);

/* A pool whose buffers are reservations in the ring: upstream writes the
 * payload in place, and the sink publishes it without a copy. */
GstBufferPool *gst_ivshmem_buffer_pool_new (GstIvshmemProducer * producer,
    guint64 max_poll_interval);

/* Buffers the pool handed out in ordinary memory, because the ring was
 * held by this process's own references or the pool's bound was reached */
guint64 gst_ivshmem_buffer_pool_system_buffers (GstBufferPool * pool);

G_END_DECLS

#endif /* __GST_IVSHMEM_POOL_H__ */
