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
  /* Of a root memory. With a `lock_of` lock, data, copy and maps are
   * protected by it: data is in the ring, or `copy` once moved out of it
   * (gst_ivshmem_ring_memory_move_out_locked()); maps counts the maps of
   * the root and of its sub-memories. */
  guint8 *data;
  guint8 *copy;
  gint maps;
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
  /* The last reference to a root memory is gone: give its space back
   * (if root->copy is set, the memory was moved out of the ring and gave
   * it back then). Called before the owner is unreffed; the skeleton
   * frees the copy afterwards. */
  void (*release) (GstIvshmemRingMemory * root);
  /* Optional, for memory that may move out of the ring while nobody maps
   * it: the owner's lock that protects data, copy and maps. NULL: the
   * memory never moves and maps are not counted. */
  GMutex *(*lock_of) (gpointer owner);
  /* Optional: the last map of a root ended, called with that lock held
   * (to move it out of the ring now, for example) ... */
  void (*unmapped_locked) (GstIvshmemRingMemory * root);
  /* ... and after the lock was dropped. */
  void (*unmapped) (GstIvshmemRingMemory * root);
};

/* A root memory of `size` bytes (`maxsize` available) at `data`, owned by
 * a new reference to `owner`. The rest of the subclass's struct is zeroed
 * for the caller to fill. */
GstIvshmemRingMemory *gst_ivshmem_ring_memory_new (GstAllocator * allocator,
    GstMemoryFlags flags, gpointer owner, guint8 * data, gsize maxsize,
    gsize size);

/* The root of a memory (itself, or the parent of a shared sub-memory). */
GstIvshmemRingMemory *gst_ivshmem_ring_memory_root (GstMemory * mem);

/* Moves a root memory that nobody maps out of the ring: its bytes are
 * copied into private memory, which it points to from now on. The caller
 * then gives its ring space back. Call with the `lock_of` lock held. */
void gst_ivshmem_ring_memory_move_out_locked (GstIvshmemRingMemory * root);

G_END_DECLS

#endif /* __GST_IVSHMEM_MEMORY_H__ */
