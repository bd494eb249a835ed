/* gst-ivshmem: the GstAllocator skeleton of memory that lies in a ring
 * SPDX-License-Identifier: MIT
 *
 * Both elements hand out GstMemory that points into a mapped region: the
 * sink's pool (reservations that upstream fills in place) and the source
 * (records read in place). The two share this skeleton: a memory keeps a
 * refcounted owner (what keeps the mapping alive), points at its bytes
 * through its root memory, shares sub-memories that map through that root
 * and keep the owner too, and gives its ring space back when the last
 * reference to the root goes. A subclass only says how to give the space
 * back, how to ref and unref its owner, and, if it must, how to map.
 */
#ifndef __GST_IVSHMEM_MEMORY_H__
#define __GST_IVSHMEM_MEMORY_H__

#include <gst/gst.h>

G_BEGIN_DECLS

/* The first member of every ring memory struct. A sub-memory made by
 * share() is a GstIvshmemRingMemory whose `data` is unused: it maps
 * through its root (mem.parent). */
typedef struct
{
  GstMemory mem;
  gpointer owner;               /* a reference, dropped when freed */
  guint8 *data;                 /* of a root memory */
} GstIvshmemRingMemory;

#define GST_TYPE_IVSHMEM_RING_ALLOCATOR \
  (gst_ivshmem_ring_allocator_get_type ())
G_DECLARE_DERIVABLE_TYPE (GstIvshmemRingAllocator,
    gst_ivshmem_ring_allocator, GST, IVSHMEM_RING_ALLOCATOR, GstAllocator);

struct _GstIvshmemRingAllocatorClass
{
  GstAllocatorClass parent_class;

  /* size of the subclass's memory struct (at least
   * sizeof (GstIvshmemRingMemory)) */
  gsize memory_size;
  gpointer (*owner_ref) (gpointer owner);
  void (*owner_unref) (gpointer owner);
  /* The last reference to a root memory is gone: give its space back.
   * Called before the owner is unreffed. */
  void (*release) (GstIvshmemRingMemory * root);
  /* Optional: where the root's bytes are now (default: root->data), and
   * the end of that map. For memory that may move while unmapped. */
  gpointer (*map) (GstIvshmemRingMemory * root, GstMapFlags flags);
  void (*unmap) (GstIvshmemRingMemory * root);
};

/* A root memory of `size` bytes (`maxsize` available) at `data`, owned by
 * a new reference to `owner`. The rest of the subclass's struct is zeroed
 * for the caller to fill. */
GstIvshmemRingMemory *gst_ivshmem_ring_memory_new (GstAllocator * allocator,
    GstMemoryFlags flags, gpointer owner, guint8 * data, gsize maxsize,
    gsize size);

/* The root of a memory (itself, or the parent of a shared sub-memory). */
GstIvshmemRingMemory *gst_ivshmem_ring_memory_root (GstMemory * mem);

G_END_DECLS

#endif /* __GST_IVSHMEM_MEMORY_H__ */
