/* gst-ivshmem: what the sink's pool shares with the producer
 * SPDX-License-Identifier: MIT
 *
 * gstivshmemproducer.c is the producer, its pins and the memory in the
 * ring; gstivshmempool.c the pool that hands that memory out.
 */
#ifndef __GST_IVSHMEM_POOL_PRIV_H__
#define __GST_IVSHMEM_POOL_PRIV_H__

#include "gstivshmempool.h"
#include "gstivshmemmemory.h"

G_BEGIN_DECLS

/* A reservation in the ring, on the skeleton of gstivshmemmemory.h: its
 * owner is the GstIvshmemProducer, its data the span's payload. */
typedef struct
{
  GstIvshmemRingMemory base;
  /* base.data is in the ring (span.payload), or base.copy once migrated;
   * base.data, base.copy and base.maps are protected by producer->pins_lock
   * (the skeleton's lock_of) */
  IvshmSpan span;
} GstIvshmemMemory;

#define GST_TYPE_IVSHMEM_ALLOCATOR (gst_ivshmem_allocator_get_type ())
G_DECLARE_FINAL_TYPE (GstIvshmemAllocator, gst_ivshmem_allocator, GST,
    IVSHMEM_ALLOCATOR, GstIvshmemRingAllocator);

/* Pins a new pool memory (kept sorted by ring position). */
void gst_ivshmem_producer_pin (GstIvshmemProducer * p, GstIvshmemMemory * m);
/* The most a record's payload and header take in the ring. */
guint64 gst_ivshmem_producer_ring_size (GstIvshmemProducer * p);
/* A root memory (sub-memories are made by the skeleton's share()). */
GstIvshmemMemory *gst_ivshmem_memory_new (GstAllocator * allocator,
    GstMemoryFlags flags, GstMemory * parent, GstIvshmemProducer * producer,
    const IvshmSpan * span, gsize offset, gsize size);

G_END_DECLS
#endif /* __GST_IVSHMEM_POOL_PRIV_H__ */
