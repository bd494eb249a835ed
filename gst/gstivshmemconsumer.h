/* gst-ivshmem: the reading side of ivshmemsrc: consumer and read memory
 * SPDX-License-Identifier: MIT
 */
#ifndef __GST_IVSHMEM_CONSUMER_H__
#define __GST_IVSHMEM_CONSUMER_H__

#include <gst/gst.h>

#include "ivshmem-region.h"
#include "ivshmem-ring.h"

G_BEGIN_DECLS

/* The mapped region and its reader, shared by the source and every buffer
 * it hands out in place (zero-copy): the last reference unmaps, so a
 * buffer downstream still holds stays valid after the source stopped. The
 * reader's heartbeat runs as long as the reader is attached.
 *
 * When the source leaves a session (the producer restarted, went away, or
 * dropped this reader), it retires the consumer: every held record is
 * moved out of the ring into private memory (a record mapped at that
 * moment as soon as it is unmapped), and once none is left in the ring the
 * reader detaches: its heartbeat stops and its slot is given back, even if
 * downstream keeps the (moved) buffers for ever. */
/* Records that were still in the ring when the reader lost its slot (see
 * gst_ivshmem_consumer_new()): called once per consumer, from whatever
 * thread noticed, without the consumer's lock, with a reference to the
 * element. `taken_over`: a new producer's session took the slot; else the
 * producer dropped this reader (its lease expired). */
typedef void (*GstIvshmemConsumerLostFunc) (GstElement * element, guint n,
    gboolean taken_over);

typedef struct
{
  gint refcount;
  IvshmRegion *region;          /* set once */
  GMutex lock;
  /* protected by lock; set once by the streaming thread, cleared when a
   * retired consumer detaches. The streaming thread of the source may use
   * it without the lock while the consumer is its current one. */
  IvshmReader *reader;
  IvshmTicker *heartbeat;       /* protected by lock */
  GList *held;                  /* protected by lock: records in the ring */
  gboolean retired;             /* protected by lock */
  /* protected by lock: the reader lost its slot while records were held
   * (reported once); held records then leave the ring as soon as nobody
   * maps them */
  gboolean lost;
  GWeakRef element;             /* for lost_func */
  GstIvshmemConsumerLostFunc lost_func;
  /* the consumer's thread only: the producer's heartbeat, when it last
   * moved, and whether held records were moved out for its silence */
  guint64 producer_hb;
  guint64 producer_hb_ns;
  gboolean moved_for_silence;
  /* protected by lock: when the consumer's thread last renewed the lease,
   * and the longest time between two renewals (this process stood still) */
  guint64 tick_ns;
  guint64 longest_gap_ns;
} GstIvshmemConsumer;

/* The reader of `element` on `region` (taken). If the reader loses its
 * slot (its lease expired while this process was stopped, or a new
 * producer's session took it) while records handed out in place are still
 * in the ring, the producer may have overwritten them: lost_func says so
 * once, and they are moved out of the ring as they are (they change no
 * more). */
GstIvshmemConsumer *gst_ivshmem_consumer_new (IvshmRegion * region,
    GstElement * element, GstIvshmemConsumerLostFunc lost_func);
GstIvshmemConsumer *gst_ivshmem_consumer_ref (GstIvshmemConsumer * c);
void gst_ivshmem_consumer_unref (GstIvshmemConsumer * c);

/* Takes `reader` and starts its heartbeat thread, which also moves held
 * records out of the ring when the producer waits for their space. FALSE:
 * the thread could not be started (the reader is taken all the same). */
gboolean gst_ivshmem_consumer_attach (GstIvshmemConsumer * c,
    IvshmReader * reader);

/* How long this process stood still, the longest time the lease went
 * unrenewed since attach (0 before attach): the time a frozen reader
 * (SIGSTOP, a paused VM) was frozen. */
guint64 gst_ivshmem_consumer_stood_still (GstIvshmemConsumer * c);

/* Whether any record handed out in place is still in the ring. */
gboolean gst_ivshmem_consumer_holds (GstIvshmemConsumer * c);

/* Whether the reader lost its slot while records were held: reports it
 * (lost_func) and moves them out. The streaming thread calls it before it
 * reads on; the consumer's thread checks every 25 ms. */
void gst_ivshmem_consumer_check_lost (GstIvshmemConsumer * c);

/* If the producer waits for space we hold (ivshm_reader_holding_back()),
 * copies every held record nobody has mapped right now out of the ring and
 * lets it go. Returns how many. The consumer's thread does this too. */
guint gst_ivshmem_consumer_migrate (GstIvshmemConsumer * c);

/* The source leaves this consumer's session: see above. Returns how many
 * records were moved out of the ring now. */
guint gst_ivshmem_consumer_retire (GstIvshmemConsumer * c);

/* Reads the reader's counters under the consumer's lock: FALSE if it has
 * no reader (not attached, or detached). Any argument may be NULL. */
gboolean gst_ivshmem_consumer_get_stats (GstIvshmemConsumer * c,
    IvshmReaderStats * stats, unsigned *held, guint64 * lag,
    guint64 * session);

/* The allocator of read memory: one per source. */
GstAllocator *gst_ivshmem_read_allocator_new (void);

/* Wraps the record that ivshm_reader_next() just returned in a read-only
 * buffer that points into the ring, if the bounds allow: at most
 * IVSHM_MAX_HELD records and half the ring held at once, so that buffers
 * downstream keeps cannot stall the producer. NULL: copy it instead. On
 * success the record is held (not released). */
GstBuffer *gst_ivshmem_consumer_wrap (GstIvshmemConsumer * c,
    GstAllocator * allocator, const IvshmRecord * rec);

G_END_DECLS

#endif /* __GST_IVSHMEM_CONSUMER_H__ */
