/* gst-ivshmem: the GstAllocator skeleton of memory that lies in a ring
 * SPDX-License-Identifier: MIT
 */
#include "gstivshmemmemory.h"

#include "ivshmem-protocol.h"
#include "ivshmem-copy.h"

G_DEFINE_ABSTRACT_TYPE (GstIvshmemRingAllocator, gst_ivshmem_ring_allocator,
    GST_TYPE_ALLOCATOR);

#define RING_CLASS(mem) \
  GST_IVSHMEM_RING_ALLOCATOR_GET_CLASS ((mem)->allocator)

GstIvshmemRingMemory *
gst_ivshmem_ring_memory_root (GstMemory * mem)
{
  return (GstIvshmemRingMemory *) (mem->parent ? mem->parent : mem);
}

static GstIvshmemRingMemory *
ring_memory_init (GstAllocator * allocator, GstMemoryFlags flags,
    GstMemory * parent, gpointer owner, gsize maxsize, gsize offset, gsize size)
{
  GstIvshmemRingAllocatorClass *klass =
      GST_IVSHMEM_RING_ALLOCATOR_GET_CLASS (allocator);
  GstIvshmemRingMemory *m;

  g_assert (klass->memory_size >= sizeof (GstIvshmemRingMemory));
  m = g_malloc0 (klass->memory_size);
  gst_memory_init (GST_MEMORY_CAST (m), flags, allocator, parent, maxsize,
      IVSHM_RECORD_ALIGN - 1, offset, size);
  m->owner = klass->owner_ref (owner);
  return m;
}

GstIvshmemRingMemory *
gst_ivshmem_ring_memory_new (GstAllocator * allocator, GstMemoryFlags flags,
    gpointer owner, guint8 * data, gsize maxsize, gsize size)
{
  GstIvshmemRingMemory *m = ring_memory_init (allocator, flags, NULL, owner,
      maxsize, 0, size);

  m->data = data;
  return m;
}

static GstMemory *
ring_allocator_alloc (GstAllocator * allocator, gsize size,
    GstAllocationParams * params)
{
  /* ring memory is made from reservations or records, never on demand */
  return NULL;
}

static void
ring_allocator_free (GstAllocator * allocator, GstMemory * mem)
{
  GstIvshmemRingAllocatorClass *klass = RING_CLASS (mem);
  GstIvshmemRingMemory *m = (GstIvshmemRingMemory *) mem;

  /* a shared sub-memory holds its parent, which gives the space back */
  if (!mem->parent) {
    klass->release (m);
    g_free (m->copy);
  }
  klass->owner_unref (m->owner);
  g_free (m);
}

void
gst_ivshmem_ring_memory_move_out_locked (GstIvshmemRingMemory * root)
{
  gsize size = root->mem.maxsize;

  g_return_if_fail (root->maps == 0 && root->copy == NULL);
  root->copy = g_malloc (size);
  /* at memory speed, as every copy out of or into the ring */
  ivshm_copy (root->copy, root->data, size);
  root->data = root->copy;
}

static gpointer
ring_memory_map (GstMemory * mem, gsize maxsize, GstMapFlags flags)
{
  GstIvshmemRingAllocatorClass *klass = RING_CLASS (mem);
  GstIvshmemRingMemory *root = gst_ivshmem_ring_memory_root (mem);
  GMutex *lock;
  gpointer data;

  if (!klass->lock_of)
    return root->data;
  lock = klass->lock_of (root->owner);
  g_mutex_lock (lock);
  root->maps++;
  data = root->data;
  g_mutex_unlock (lock);
  return data;
}

static void
ring_memory_unmap (GstMemory * mem)
{
  GstIvshmemRingAllocatorClass *klass = RING_CLASS (mem);
  GstIvshmemRingMemory *root = gst_ivshmem_ring_memory_root (mem);
  gboolean last;
  GMutex *lock;

  if (!klass->lock_of)
    return;
  lock = klass->lock_of (root->owner);
  g_mutex_lock (lock);
  last = --root->maps == 0;
  if (last && klass->unmapped_locked)
    klass->unmapped_locked (root);
  g_mutex_unlock (lock);
  if (last && klass->unmapped)
    klass->unmapped (root);
}

static GstMemory *
ring_memory_share (GstMemory * mem, gssize offset, gssize size)
{
  GstIvshmemRingMemory *m = (GstIvshmemRingMemory *) mem;
  GstMemory *parent = mem->parent ? mem->parent : mem;

  if (size == -1)
    size = mem->size - offset;
  return GST_MEMORY_CAST (ring_memory_init (mem->allocator,
          GST_MINI_OBJECT_FLAGS (parent) | GST_MINI_OBJECT_FLAG_LOCK_READONLY,
          parent, m->owner, mem->maxsize, mem->offset + offset, size));
}

static gboolean
ring_memory_is_span (GstMemory * mem1, GstMemory * mem2, gsize * offset)
{
  if (gst_ivshmem_ring_memory_root (mem1) !=
      gst_ivshmem_ring_memory_root (mem2))
    return FALSE;
  if (offset)
    *offset = mem1->offset;
  return mem1->offset + mem1->size == mem2->offset;
}

static void
gst_ivshmem_ring_allocator_class_init (GstIvshmemRingAllocatorClass * klass)
{
  GstAllocatorClass *alloc_class = GST_ALLOCATOR_CLASS (klass);

  alloc_class->alloc = ring_allocator_alloc;
  alloc_class->free = ring_allocator_free;
  klass->memory_size = sizeof (GstIvshmemRingMemory);
}

static void
gst_ivshmem_ring_allocator_init (GstIvshmemRingAllocator * self)
{
  GstAllocator *alloc = GST_ALLOCATOR_CAST (self);

  alloc->mem_map = ring_memory_map;
  alloc->mem_unmap = ring_memory_unmap;
  alloc->mem_share = ring_memory_share;
  alloc->mem_is_span = ring_memory_is_span;
  GST_OBJECT_FLAG_SET (self, GST_ALLOCATOR_FLAG_CUSTOM_ALLOC);
}
