/* gst-ivshmem: ivshmemsink's state, shared by its files
 * SPDX-License-Identifier: MIT
 *
 * gstivshmemsink.c is the element (properties, stats, caps and events);
 * gstivshmemsinksession.c its session (start, stop, the heartbeat thread,
 * the takeover and the hold watch); gstivshmemsinkwrite.c writes records
 * (render, the lossless wait, unlock, the zero-copy pool);
 * gstivshmemsinktime.c carries its time (clock samples, TIME records).
 */
#ifndef __GST_IVSHMEM_SINK_PRIV_H__
#define __GST_IVSHMEM_SINK_PRIV_H__

#include "gstivshmemsink.h"
#include "gstivshmempool.h"
#include "gstivshmemutils.h"
#include "ivshmem-os.h"

G_BEGIN_DECLS

GST_DEBUG_CATEGORY_EXTERN (gst_ivshmem_sink_debug);

typedef enum
{
  GST_IVSHMEM_SINK_POLICY_LOSSLESS,
  GST_IVSHMEM_SINK_POLICY_LEAKY,
} GstIvshmemSinkPolicy;

struct _GstIvshmemSink
{
  GstBaseSink parent;

  /* properties, protected by the object lock */
  gchar *device;
  guint64 size;
  guint64 max_poll_interval;
  IvshmBarMapping bar_mapping;
  GstIvshmemSinkPolicy policy;

  /* set in start(), cleared in stop(), under the object lock; calls on
   * producer->writer are made under producer->lock */
  GstIvshmemProducer *producer;
  IvshmTicker *heartbeat;
  IvshmWaiter waiter;           /* set flushing by unlock() */
  /* the pool last proposed upstream, set flushing by unlock() with the
   * sink: upstream threads may wait in its acquire (object lock) */
  GstBufferPool *pool;
  gchar *region_name;           /* for messages; set in start() */
  gint taken_over;              /* the takeover error: gst_ivshmem_post_begin() */
  gint region_lost;             /* the region's file shrank (or lost pages):
                                 * gst_ivshmem_post_begin() */

  /* the heartbeat thread's: a lossless sink held back by one reader */
  guint64 hold_pos;             /* the write position when last seen */
  guint64 hold_since_ns;        /* since when it has not moved */
  gint hold_slot;               /* the slot warned about; -1 none, -2 no
                                 * holder was found this time */
  gchar hold_who[96];           /* its pid, for the message when it moves */

  /* the streaming thread's */
  /* counted without a lock (render is the hot path), with GLib's
   * pointer-sized atomics (g_atomic_pointer_add): 64 bits wide on the
   * 64-bit targets, 32 (wrapping) on a 32-bit one */
  gsize zero_copy;              /* buffers published in place */
  gsize copied;                 /* buffers copied into the ring */
  gsize moved;                  /* pool buffers moved out of the ring */

  /* The time the sink publishes (PROTOCOL.md, section 6a), under
   * time_lock: the clock it samples (the heartbeat thread samples it too)
   * and its epoch in this session; what the last TIME record said (the
   * streaming thread's). */
  GMutex time_lock;
  GstClock *time_clock;
  guint64 time_epoch;
  GstClockTime time_base;       /* NONE: no TIME record yet */
  GstClockTime time_latency;
  guint64 time_record_epoch;
  gboolean live_noted;          /* live_since_mono was set */
  guint64 live_since;           /* to it */

  /* The per-buffer time step, kept cheap (issue 20). set_clock() sets
   * has_clock (atomic: the element has a clock) and moves clock_gen
   * (atomic) by one; the streaming thread samples the clock before a
   * buffer (and compares it with time_clock, as above) only when
   * clock_gen moved or its last sample (sampled_ns, CLOCK_MONOTONIC; 0:
   * none) is SAMPLE_INTERVAL_NS old, and keeps the epoch and generation
   * it saw then (render_epoch, render_clock_gen). first_reader_settled:
   * the writer counts a reader (or stopped keeping the stream for one),
   * which never changes back in a session, so the streaming thread
   * stops asking. All but the two atomics: the streaming thread's. */
  gint has_clock;
  gint clock_gen;
  gint render_clock_gen;
  guint64 render_epoch;
  guint64 sampled_ns;
  gboolean first_reader_settled;
};

/* The region's file shrank or lost its pages under the mapping (its
 * guard caught the fault): posts the error once, TRUE: stop. */
#define gst_ivshmem_sink_lost(self) \
  gst_ivshmem_region_lost (GST_ELEMENT (self), (self)->producer->region, \
      &(self)->region_lost)

/* gstivshmemsinksession.c */
gboolean gst_ivshmem_sink_start (GstBaseSink * bsink);
gboolean gst_ivshmem_sink_stop (GstBaseSink * bsink);
/* Another producer owns the region now: posts the error once. */
void gst_ivshmem_sink_post_taken_over (GstIvshmemSink * self);

/* gstivshmemsinkwrite.c */
gboolean gst_ivshmem_sink_unlock (GstBaseSink * bsink);
gboolean gst_ivshmem_sink_unlock_stop (GstBaseSink * bsink);
GstFlowReturn gst_ivshmem_sink_render (GstBaseSink * bsink,
    GstBuffer * buffer);
gboolean gst_ivshmem_sink_propose_allocation (GstBaseSink * bsink,
    GstQuery * query);
/* Copies a record into the ring, waiting for room as the policy says. */
GstFlowReturn gst_ivshmem_sink_write (GstIvshmemSink * self,
    const IvshmRecordHeader * info, const void *payload);
/* At EOS: waits until a first reader attached. */
GstFlowReturn gst_ivshmem_sink_wait_first_reader (GstIvshmemSink * self);

/* gstivshmemsinktime.c */
void gst_ivshmem_sink_sample_clock (IvshmWriter * writer, GstClock * clock,
    guint64 epoch);
GstClock *gst_ivshmem_sink_ref_time_clock (GstIvshmemSink * self,
    guint64 * epoch);
/* Before a buffer: a fresh clock sample, and a TIME record if needed. */
GstFlowReturn gst_ivshmem_sink_publish_time (GstIvshmemSink * self);

G_END_DECLS
#endif /* __GST_IVSHMEM_SINK_PRIV_H__ */
