/* gst-ivshmem: ivshmemsrc's state, shared by its two files
 * SPDX-License-Identifier: MIT
 *
 * gstivshmemsrc.c is the element (states, queries);
 * gstivshmemsrcprops.c its properties (enum types, specs, get and set);
 * gstivshmemsrcread.c is its streaming thread (create(): waits, reads,
 * read errors), gstivshmemsrcrecord.c what a record becomes (buffers,
 * caps, events, the time mapping's records and the producer's clock).
 */
#ifndef __GST_IVSHMEM_SRC_PRIV_H__
#define __GST_IVSHMEM_SRC_PRIV_H__

#include "gstivshmemsrc.h"
#include "gstivshmemconsumer.h"
#include "gstivshmemtime.h"
#include "ivshmem-copy.h"

G_BEGIN_DECLS GST_DEBUG_CATEGORY_EXTERN (gst_ivshmem_src_debug);

typedef enum
{
  GST_IVSHMEM_SRC_RESTART_FOLLOW,
  GST_IVSHMEM_SRC_RESTART_EOS,
  GST_IVSHMEM_SRC_RESTART_ERROR,
} GstIvshmemSrcRestart;

/* What a reader does when a lossless producer dropped it (its lease
 * expired: this process or VM was frozen) */
typedef enum
{
  GST_IVSHMEM_SRC_EVICTED_REJOIN,
  GST_IVSHMEM_SRC_EVICTED_ERROR,
} GstIvshmemSrcEvicted;

/* The values of off and on are FALSE and TRUE, so that code that set the
 * old boolean property with g_object_set() keeps its meaning. */
typedef enum
{
  GST_IVSHMEM_SRC_ZERO_COPY_OFF = 0,
  GST_IVSHMEM_SRC_ZERO_COPY_ON = 1,
  GST_IVSHMEM_SRC_ZERO_COPY_AUTO = 2,
} GstIvshmemSrcZeroCopy;

/* the properties' defaults and ids (gstivshmemsrcprops.c) */
#define DEFAULT_DEVICE NULL
#define DEFAULT_IS_LIVE TRUE
#define DEFAULT_LATENCY (20 * GST_MSECOND)
#define DEFAULT_ZERO_COPY GST_IVSHMEM_SRC_ZERO_COPY_AUTO
#define DEFAULT_ON_PRODUCER_RESTART GST_IVSHMEM_SRC_RESTART_FOLLOW
#define DEFAULT_ON_EVICTED GST_IVSHMEM_SRC_EVICTED_REJOIN
#define DEFAULT_MAX_POLL_INTERVAL GST_IVSHMEM_DEFAULT_MAX_POLL_INTERVAL
#define DEFAULT_BUSY_POLL 0
/* the shortest slice Linux grants (0.1 ms) */
#define DEFAULT_SCHEDULER_SLICE (100 * GST_USECOND)

enum
{
  PROP_0,
  PROP_DEVICE,
  PROP_IS_LIVE,
  PROP_LATENCY,
  PROP_MAX_POLL_INTERVAL,
  PROP_BUSY_POLL,
  PROP_SCHEDULER_SLICE,
  PROP_BAR_MAPPING,
  PROP_ZERO_COPY,
  PROP_ON_PRODUCER_RESTART,
  PROP_ON_EVICTED,
  PROP_STATS,
  PROP_PROVIDE_CLOCK,
};


#define GST_TYPE_IVSHMEM_SRC_EVICTED (gst_ivshmem_src_evicted_get_type ())
#define GST_TYPE_IVSHMEM_SRC_RESTART (gst_ivshmem_src_restart_get_type ())
#define GST_TYPE_IVSHMEM_SRC_ZERO_COPY (gst_ivshmem_src_zero_copy_get_type ())

struct _GstIvshmemSrc
{
  GstPushSrc parent;

  /* properties, protected by the object lock */
  gchar *device;
  gboolean is_live;
  GstClockTime latency;
  guint64 max_poll_interval;
  guint64 busy_poll;
  guint64 scheduler_slice;
  IvshmBarMapping bar_mapping;
  GstIvshmemSrcZeroCopy zero_copy_mode;
  GstIvshmemSrcRestart on_restart;
  GstIvshmemSrcEvicted on_evicted;
  gboolean provide_clock;

  /* set in start(), swapped on reattach, cleared in stop(), under the
   * object lock; region and reader are borrowed from consumer */
  GstIvshmemConsumer *consumer;
  IvshmRegion *region;
  IvshmWaiter waiter;           /* set flushing by unlock() */
  /* Held by unlock() while it wakes the waiter, which may still point into
   * the region the streaming thread slept on. The streaming thread takes
   * it before it lets a region go (reattach, stop). */
  GMutex unlock_lock;
  GstAllocator *allocator;
  gint region_lost;             /* the region's file shrank (or lost pages):
                                 * gst_ivshmem_post_begin() */
  guint64 region_checked_ns;    /* the streaming thread's: when it last
                                 * looked at the file's size */

  /* the streaming thread's, reset in start() */
  IvshmReader *reader;
  GstIvshmemSrcZeroCopy zc_mode;        /* zero_copy_mode, as of start() */
  guint64 slice_ns;             /* scheduler_slice, as of start() */
  /* the streaming thread whose slice create() set (restored in stop()
   * or when another thread calls create()) */
  GThread *slice_thread;
  IvshmThreadSlice slice;
  gboolean caps_raw;            /* the caps are raw audio or video */
  /* how fast the mapping reads (start(); the stats read it under the
   * object lock): a slow one is copied out with streaming loads */
  IvshmMapProbe map_probe;
  /* copies of large records come from here (sizes rounded up to a power
   * of two), not from malloc, which maps and unmaps them one by one */
  GstBufferPool *copy_pool;
  gsize copy_pool_size;
  GstCaps *pending_caps;        /* could not be set while flushing */
  guint64 reconnects;           /* producer restarts followed */
  guint64 abandoned_session;    /* a dead session not to attach to again */
  gboolean discont;             /* mark the next buffer DISCONT */
  gchar *stream_id;             /* of the last stream-start forwarded */
  /* a leaky producer dropped us: what we had read */
  gboolean lapped;
  guint64 lapped_from;
  guint64 frozen_ns;            /* how long this process stood still before
                                 * it lost its slot (0: it was lapped) */
  gchar *opened_device;         /* what start() opened, for reopening */
  IvshmRegionOptions opened_opts;
  gboolean waiting_logged;
  gboolean stalled;             /* warned about a silent producer */
  guint64 last_record_ns;       /* when we last read a record (or attached) */
  gboolean eos;
  gboolean segment_sent;        /* the output segment was pushed */
  GstIvshmemTime time;

  /* counters, written by the streaming thread under the object lock */
  guint64 zero_copy;            /* buffers handed out in place */
  guint64 copied;
  guint64 drops;                /* times we fell behind a leaky producer */
  guint64 lost_bytes;
  guint64 invalid_records;
  /* buffers handed out in place that were still in the ring when this
   * reader lost its slot: maybe overwritten (any thread) */
  guint64 held_lost;
  /* the producer's upstream latency (its TIME records), added to ours */
  GstClockTime producer_latency;
  /* a copy of self->time's mapping, for the stats */
  GstIvshmemTimeMode time_mode;
  IvshmClockSync time_sync;
  GstClockTime producer_base;
  gboolean joined_mid_stream;   /* at the live edge, not as a first reader */
  guint64 before_start;         /* buffers dropped: their moment came
                                 * before this pipeline started */
  /* provide-clock: the clock offered, and the loop that steers it (the
   * streaming thread's) */
  GstClock *follow_clock;
  GstIvshmemFollow follow;
};

/* gstivshmemsrcprops.c */
GType gst_ivshmem_src_evicted_get_type (void);
GType gst_ivshmem_src_restart_get_type (void);
GType gst_ivshmem_src_zero_copy_get_type (void);
/* how and where the source reads */
void gst_ivshmem_src_install_reading_properties (GObjectClass * gobject_class);
/* what it does with the stream, and what it reports */
void gst_ivshmem_src_install_stream_properties (GObjectClass * gobject_class);
void gst_ivshmem_src_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec);
void gst_ivshmem_src_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec);

/* gstivshmemsrcread.c */
GstFlowReturn gst_ivshmem_src_create (GstPushSrc * psrc, GstBuffer ** buf);

/* gstivshmemsrcrecord.c */
/* One look at the producer's clock area (and the clock that follows it). */
void gst_ivshmem_src_look_clock (GstIvshmemSrc * self);
/* Sets (and takes) the caps. */
GstFlowReturn gst_ivshmem_src_set_caps (GstIvshmemSrc * self, GstCaps * caps);
/* One record: a buffer goes out (GST_FLOW_OK, *out set); caps and events
 * are handled (GST_FLOW_CUSTOM_SUCCESS: read on); a read error is
 * GST_FLOW_ERROR with err->status set. */
GstFlowReturn gst_ivshmem_src_dispatch (GstIvshmemSrc * self,
    const IvshmRecord * rec, GstBuffer ** out, IvshmError * err);

/* gstivshmemsrcsession.c */
/* A new stream (start, or the next producer): nothing anchored yet. */
void gst_ivshmem_src_reset_stream (GstIvshmemSrc * self);
/* Tries to attach to the producer (or to wait in a slot for one).
 * GST_FLOW_OK: attached; GST_FLOW_CUSTOM_SUCCESS: no producer yet, wait. */
GstFlowReturn gst_ivshmem_src_attach (GstIvshmemSrc * self);
/* Lets go of the session after `why` (the producer restarted, went away,
 * or dropped this reader) and prepares to attach again. */
GstFlowReturn gst_ivshmem_src_reattach (GstIvshmemSrc * self,
    const IvshmError * why);
/* the stats property */
GstStructure *gst_ivshmem_src_get_stats (GstIvshmemSrc * self);
/* A consumer for `region` whose lost buffers this source reports. */
GstIvshmemConsumer *gst_ivshmem_src_new_consumer (GstIvshmemSrc * self,
    IvshmRegion * region);

G_END_DECLS
#endif /* __GST_IVSHMEM_SRC_PRIV_H__ */
