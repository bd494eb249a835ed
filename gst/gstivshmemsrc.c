/* gst-ivshmem: ivshmemsrc
 * SPDX-License-Identifier: MIT
 */
/**
 * SECTION:element-ivshmemsrc
 * @title: ivshmemsrc
 * @see_also: #GstIvshmemSink
 *
 * Reads what an #GstIvshmemSink writes into an IVSHMEM region: buffers
 * with their timestamps, offsets and flags, the caps, and the serialized
 * events (stream-start, segment, tags, gap, stream-group-done, custom
 * downstream events and EOS). No capsfilter is needed: the caps come from
 * the ring. The stream ends with EOS when the producer sends EOS.
 *
 * On the host the region is the file that QEMU's `memory-backend-file`
 * shares, usually `/dev/shm/NAME`. Inside a guest it is BAR2 of the
 * `ivshmem-plain` PCI device, named by its PCI address, or found on its own
 * when #GstIvshmemSrc:device is empty.
 *
 * If no producer has started yet, the source waits for one. The first
 * reader of a stream gets it from its start; a reader that attaches later
 * gets the current stream-start, caps, segment and tags, then the next
 * buffer.
 *
 * ## Timestamps
 *
 * The producer's clock (a guest's, or another pipeline's) is not this
 * pipeline's clock. By default (#GstIvshmemSrc:is-live = true) the source
 * is a live source: it turns each buffer's timestamp into the producer's
 * running time, and maps the producer's running time onto this pipeline's
 * running time so that the first buffer is stamped with the moment it
 * arrived. Later buffers keep the producer's spacing. It reports
 * #GstIvshmemSrc:latency as its latency, to absorb the jitter of the
 * transport. The producer's segments are used for that conversion and not
 * forwarded; the output has one TIME segment.
 *
 * With is-live=false the source forwards the producer's TIME segments and
 * timestamps unchanged, as a file source would: use this to process a
 * stream as fast as it comes, not to play it in real time.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 ivshmemsrc device=/dev/shm/ivshmem ! videoconvert ! autovideosink
 * ]| On the host: shows the video that a producer (the host or a guest)
 * writes into /dev/shm/ivshmem.
 * |[
 * gst-launch-1.0 ivshmemsrc ! videoconvert ! fakesink
 * ]| Inside a guest: reads from the first IVSHMEM device.
 * |[
 * gst-launch-1.0 ivshmemsrc device=0000:00:04.0 ! audioconvert ! autoaudiosink
 * ]| Inside a guest with several IVSHMEM devices: picks one by PCI address.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstivshmemsrc.h"
#include "gstivshmemelements.h"
#include "gstivshmemutils.h"

#include <string.h>

GST_DEBUG_CATEGORY_STATIC (gst_ivshmem_src_debug);
#define GST_CAT_DEFAULT gst_ivshmem_src_debug

#define DEFAULT_DEVICE NULL
#define DEFAULT_IS_LIVE TRUE
#define DEFAULT_LATENCY (20 * GST_MSECOND)
#define DEFAULT_ZERO_COPY TRUE
#define DEFAULT_ON_PRODUCER_RESTART GST_IVSHMEM_SRC_RESTART_FOLLOW

typedef enum
{
  GST_IVSHMEM_SRC_RESTART_FOLLOW,
  GST_IVSHMEM_SRC_RESTART_EOS,
  GST_IVSHMEM_SRC_RESTART_ERROR,
} GstIvshmemSrcRestart;

#define GST_TYPE_IVSHMEM_SRC_RESTART (gst_ivshmem_src_restart_get_type ())
static GType
gst_ivshmem_src_restart_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_IVSHMEM_SRC_RESTART_FOLLOW, "Wait for the next producer and go on "
          "with its stream (stream-start, caps and segment again)", "follow"},
    {GST_IVSHMEM_SRC_RESTART_EOS, "End the stream with EOS", "eos"},
    {GST_IVSHMEM_SRC_RESTART_ERROR, "Post an error", "error"},
    {0, NULL, NULL}
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstIvshmemSrcRestart", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

#define DEFAULT_MAX_POLL_INTERVAL GST_IVSHMEM_DEFAULT_MAX_POLL_INTERVAL
#define DEFAULT_BUSY_POLL 0

/* waiting for a producer to appear: a look every 10 ms doubling up to
 * 100 ms */
#define WAIT_PRODUCER_MIN_NS (10 * GST_MSECOND)
#define WAIT_PRODUCER_MAX_NS (100 * GST_MSECOND)
/* while downstream holds buffers in the ring: how often to check whether
 * the producer waits for their space */
#define HELD_WAIT_NS (5 * GST_MSECOND)
/* the consumer's thread: lease renewal, and the same check from outside
 * the streaming thread */
#define CONSUMER_TICK_NS (50 * GST_MSECOND)

enum
{
  PROP_0,
  PROP_DEVICE,
  PROP_IS_LIVE,
  PROP_LATENCY,
  PROP_MAX_POLL_INTERVAL,
  PROP_BUSY_POLL,
  PROP_BAR_MAPPING,
  PROP_ZERO_COPY,
  PROP_ON_PRODUCER_RESTART,
  PROP_STATS,
};

/* The mapped region and its reader, shared by the source and every buffer
 * it hands out in place (zero-copy): the last reference detaches and
 * unmaps, so a buffer downstream still holds stays valid and protected
 * from the producer after the source stopped. The reader's heartbeat
 * runs as long as the reader lives. */
typedef struct
{
  gint refcount;
  IvshmRegion *region;
  IvshmReader *reader;          /* set once, by the streaming thread */
  IvshmTicker *heartbeat;
  GMutex lock;                  /* guards `held` and each memory's map state */
  GList *held;                  /* GstIvshmemReadMemory still in the ring */
} GstIvshmemConsumer;

static GstIvshmemConsumer *
gst_ivshmem_consumer_new (IvshmRegion * region)
{
  GstIvshmemConsumer *c = g_new0 (GstIvshmemConsumer, 1);

  c->refcount = 1;
  c->region = region;
  g_mutex_init (&c->lock);
  return c;
}

static GstIvshmemConsumer *
gst_ivshmem_consumer_ref (GstIvshmemConsumer * c)
{
  g_atomic_int_inc (&c->refcount);
  return c;
}

static void
gst_ivshmem_consumer_unref (GstIvshmemConsumer * c)
{
  if (!g_atomic_int_dec_and_test (&c->refcount))
    return;
  ivshm_ticker_stop (c->heartbeat);
  ivshm_reader_free (c->reader);
  ivshm_region_close (c->region);
  g_mutex_clear (&c->lock);
  g_free (c);
}

/* ---- memory in the ring, read in place ---------------------------------- */

/* A record handed out in place. While it is held, the producer cannot
 * reuse its space; if the producer waits for that space (downstream keeps
 * the buffer: a last-sample, a queue, an application), the source moves
 * the bytes into a private copy as soon as nobody has the memory mapped,
 * and lets the record go (gst_ivshmem_consumer_migrate). Sub-memories made
 * by share() map through their root, so they follow. */
typedef struct
{
  GstMemory mem;
  GstIvshmemConsumer *consumer;
  IvshmHold hold;
  guint8 *data;                 /* in the ring, or `copy` once migrated */
  guint8 *copy;
  gint maps;                    /* protected by consumer->lock */
} GstIvshmemReadMemory;

#define GST_TYPE_IVSHMEM_READ_ALLOCATOR (gst_ivshmem_read_allocator_get_type ())
G_DECLARE_FINAL_TYPE (GstIvshmemReadAllocator, gst_ivshmem_read_allocator,
    GST, IVSHMEM_READ_ALLOCATOR, GstAllocator);

struct _GstIvshmemReadAllocator
{
  GstAllocator parent;
};

G_DEFINE_TYPE (GstIvshmemReadAllocator, gst_ivshmem_read_allocator,
    GST_TYPE_ALLOCATOR);

static GstIvshmemReadMemory *
gst_ivshmem_read_memory_root (GstMemory * mem)
{
  return (GstIvshmemReadMemory *) (mem->parent ? mem->parent : mem);
}

static GstMemory *
gst_ivshmem_read_allocator_alloc (GstAllocator * allocator, gsize size,
    GstAllocationParams * params)
{
  return NULL;
}

static void
gst_ivshmem_read_allocator_free (GstAllocator * allocator, GstMemory * mem)
{
  GstIvshmemReadMemory *m = (GstIvshmemReadMemory *) mem;
  GstIvshmemConsumer *c = m->consumer;

  if (!mem->parent) {
    gboolean in_ring;

    g_mutex_lock (&c->lock);
    in_ring = m->copy == NULL;
    if (in_ring)
      c->held = g_list_remove (c->held, m);
    g_mutex_unlock (&c->lock);
    /* the last reference: the producer may reuse the space */
    if (in_ring)
      ivshm_reader_unhold (c->reader, &m->hold);
    g_free (m->copy);
  }
  gst_ivshmem_consumer_unref (c);
  g_free (m);
}

static gpointer
gst_ivshmem_read_memory_map (GstMemory * mem, gsize maxsize,
    GstMapFlags flags)
{
  GstIvshmemReadMemory *root = gst_ivshmem_read_memory_root (mem);
  gpointer data;

  /* the memory is read-only (GstMemory refuses write maps) */
  g_mutex_lock (&root->consumer->lock);
  root->maps++;
  data = root->data;
  g_mutex_unlock (&root->consumer->lock);
  return data;
}

static void
gst_ivshmem_read_memory_unmap (GstMemory * mem)
{
  GstIvshmemReadMemory *root = gst_ivshmem_read_memory_root (mem);

  g_mutex_lock (&root->consumer->lock);
  root->maps--;
  g_mutex_unlock (&root->consumer->lock);
}

static GstIvshmemReadMemory *
gst_ivshmem_read_memory_new (GstAllocator * allocator, GstMemory * parent,
    GstIvshmemConsumer * consumer, const IvshmHold * hold, guint8 * data,
    gsize maxsize, gsize offset, gsize size)
{
  GstIvshmemReadMemory *m = g_new0 (GstIvshmemReadMemory, 1);

  gst_memory_init (GST_MEMORY_CAST (m), GST_MEMORY_FLAG_READONLY |
      GST_MINI_OBJECT_FLAG_LOCK_READONLY, allocator, parent, maxsize,
      IVSHM_RECORD_ALIGN - 1, offset, size);
  m->consumer = gst_ivshmem_consumer_ref (consumer);
  if (hold)
    m->hold = *hold;
  m->data = data;
  if (!parent) {
    g_mutex_lock (&consumer->lock);
    consumer->held = g_list_prepend (consumer->held, m);
    g_mutex_unlock (&consumer->lock);
  }
  return m;
}

static GstMemory *
gst_ivshmem_read_memory_share (GstMemory * mem, gssize offset, gssize size)
{
  GstIvshmemReadMemory *m = (GstIvshmemReadMemory *) mem;
  GstMemory *parent = mem->parent ? mem->parent : mem;

  if (size == -1)
    size = mem->size - offset;
  return GST_MEMORY_CAST (gst_ivshmem_read_memory_new (mem->allocator,
          parent, m->consumer, NULL, NULL, mem->maxsize,
          mem->offset + offset, size));
}

static gboolean
gst_ivshmem_consumer_holds (GstIvshmemConsumer * c)
{
  gboolean holds;

  g_mutex_lock (&c->lock);
  holds = c->held != NULL;
  g_mutex_unlock (&c->lock);
  return holds;
}

/* The producer waits for space we hold: copy every held record nobody has
 * mapped right now out of the ring and let it go. Returns how many. */
static guint
gst_ivshmem_consumer_migrate (GstIvshmemConsumer * c)
{
  GArray *moved = g_array_new (FALSE, FALSE, sizeof (IvshmHold));
  GList *l, *next;
  guint i, n;

  g_mutex_lock (&c->lock);
  for (l = c->held; l; l = next) {
    GstIvshmemReadMemory *m = l->data;

    next = l->next;
    if (m->maps > 0)
      continue;
    m->copy = g_malloc (m->mem.maxsize);
    memcpy (m->copy, m->data, m->mem.maxsize);
    m->data = m->copy;
    c->held = g_list_delete_link (c->held, l);
    /* the hold is copied now: once we unlock, the memory may be freed */
    g_array_append_val (moved, m->hold);
  }
  g_mutex_unlock (&c->lock);

  for (i = 0; i < moved->len; i++)
    ivshm_reader_unhold (c->reader, &g_array_index (moved, IvshmHold, i));
  n = moved->len;
  g_array_free (moved, TRUE);
  return n;
}

static void
gst_ivshmem_read_allocator_class_init (GstIvshmemReadAllocatorClass * klass)
{
  GstAllocatorClass *alloc_class = GST_ALLOCATOR_CLASS (klass);

  alloc_class->alloc = gst_ivshmem_read_allocator_alloc;
  alloc_class->free = gst_ivshmem_read_allocator_free;
}

static void
gst_ivshmem_read_allocator_init (GstIvshmemReadAllocator * self)
{
  GstAllocator *alloc = GST_ALLOCATOR_CAST (self);

  alloc->mem_type = "IvshmemRingRead";
  alloc->mem_map = gst_ivshmem_read_memory_map;
  alloc->mem_unmap = gst_ivshmem_read_memory_unmap;
  alloc->mem_share = gst_ivshmem_read_memory_share;
  GST_OBJECT_FLAG_SET (self, GST_ALLOCATOR_FLAG_CUSTOM_ALLOC);
}

struct _GstIvshmemSrc
{
  GstPushSrc parent;

  /* properties, protected by the object lock */
  gchar *device;
  gboolean is_live;
  GstClockTime latency;
  guint64 max_poll_interval;
  guint64 busy_poll;
  IvshmBarMapping bar_mapping;
  gboolean zero_copy_enabled;
  GstIvshmemSrcRestart on_restart;

  /* set in start(), cleared in stop(); region and reader are borrowed
   * from consumer */
  GstIvshmemConsumer *consumer;
  IvshmRegion *region;
  IvshmWaiter waiter;           /* set flushing by unlock() */
  GstAllocator *allocator;

  /* the streaming thread's, reset in start() */
  IvshmReader *reader;
  guint64 zero_copy;            /* buffers handed out in place */
  guint64 copied;
  guint64 reconnects;           /* producer restarts followed */
  guint64 abandoned_session;    /* a dead session not to attach to again */
  gboolean discont;             /* mark the next buffer DISCONT */
  gchar *stream_id;             /* of the last stream-start forwarded */
  /* a leaky producer dropped us: what we had read, and the producer's
   * running time where our last buffer ended */
  gboolean lapped;
  guint64 lapped_from;
  GstClockTime last_end;        /* producer timestamps */
  guint64 drops;                /* times we fell behind a leaky producer */
  guint64 lost_bytes;
  gchar *opened_device;         /* what start() opened, for reopening */
  IvshmRegionOptions opened_opts;
  gboolean waiting_logged;
  gboolean eos;
  GstSegment in_segment;        /* the producer's segment */
  gboolean segment_sent;        /* the output segment was pushed */
  gboolean have_offset;
  GstClockTimeDiff ts_offset;   /* local running time - producer's */
  guint64 invalid_records;
};

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

#define gst_ivshmem_src_parent_class parent_class
G_DEFINE_TYPE (GstIvshmemSrc, gst_ivshmem_src, GST_TYPE_PUSH_SRC);
GST_ELEMENT_REGISTER_DEFINE_WITH_CODE (ivshmemsrc, "ivshmemsrc",
    GST_RANK_NONE, GST_TYPE_IVSHMEM_SRC,
    GST_DEBUG_CATEGORY_INIT (gst_ivshmem_src_debug, "ivshmemsrc", 0,
        "IVSHMEM source"));

static void gst_ivshmem_src_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec);
static void gst_ivshmem_src_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec);
static void gst_ivshmem_src_finalize (GObject * object);
static gboolean gst_ivshmem_src_start (GstBaseSrc * bsrc);
static gboolean gst_ivshmem_src_stop (GstBaseSrc * bsrc);
static gboolean gst_ivshmem_src_unlock (GstBaseSrc * bsrc);
static gboolean gst_ivshmem_src_unlock_stop (GstBaseSrc * bsrc);
static gboolean gst_ivshmem_src_negotiate (GstBaseSrc * bsrc);
static gboolean gst_ivshmem_src_query (GstBaseSrc * bsrc, GstQuery * query);
static GstFlowReturn gst_ivshmem_src_create (GstPushSrc * psrc,
    GstBuffer ** buf);

static void
gst_ivshmem_src_class_init (GstIvshmemSrcClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseSrcClass *bsrc_class = GST_BASE_SRC_CLASS (klass);
  GstPushSrcClass *psrc_class = GST_PUSH_SRC_CLASS (klass);

  gobject_class->set_property = gst_ivshmem_src_set_property;
  gobject_class->get_property = gst_ivshmem_src_get_property;
  gobject_class->finalize = gst_ivshmem_src_finalize;

  /**
   * GstIvshmemSrc:device:
   *
   * The region to read from. A path (starting with `/` or `.`) is a host
   * file, usually the `/dev/shm/NAME` that QEMU's memory-backend-file
   * shares; it must exist. A PCI address such as `0000:00:03.0` is an
   * IVSHMEM device of this guest. Empty: the first IVSHMEM device of this
   * guest.
   */
  g_object_class_install_property (gobject_class, PROP_DEVICE,
      g_param_spec_string ("device", "Device",
          "Host file path (/dev/shm/NAME), guest PCI address "
          "(0000:00:03.0), or empty for the guest's first IVSHMEM device",
          DEFAULT_DEVICE, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  /**
   * GstIvshmemSrc:is-live:
   *
   * Act as a live source that maps the producer's running time onto this
   * pipeline's (true), or forward the producer's segments and timestamps
   * unchanged (false).
   */
  g_object_class_install_property (gobject_class, PROP_IS_LIVE,
      g_param_spec_boolean ("is-live", "Is live",
          "Act as a live source, restamping buffers in this pipeline's "
          "running time (true), or forward the producer's segments and "
          "timestamps (false)", DEFAULT_IS_LIVE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  /**
   * GstIvshmemSrc:latency:
   *
   * The latency reported in live mode, in nanoseconds: how late a buffer
   * may arrive, compared with the first one, and still be on time.
   */
  g_object_class_install_property (gobject_class, PROP_LATENCY,
      g_param_spec_uint64 ("latency", "Latency",
          "Latency reported in live mode (ns), to absorb transport jitter",
          0, G_MAXUINT64, DEFAULT_LATENCY,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  /**
   * GstIvshmemSrc:max-poll-interval:
   *
   * How long the source sleeps at most between looks at the ring while it
   * waits for data from a producer in another VM, which cannot wake it. A
   * producer on the same kernel wakes it at once with a futex. Smaller:
   * lower latency, more CPU.
   */
  g_object_class_install_property (gobject_class, PROP_MAX_POLL_INTERVAL,
      g_param_spec_uint64 ("max-poll-interval", "Max poll interval",
          "Longest sleep (ns) between looks at the ring when the producer is "
          "in another VM and cannot wake the source", 1000, G_MAXUINT64,
          DEFAULT_MAX_POLL_INTERVAL,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstIvshmemSrc:busy-poll:
   *
   * After each record, keep looking at the ring this long (ns) before
   * going to sleep. A sleeping thread takes microseconds to wake on bare
   * metal and tens of microseconds on a VM; a polling one sees a record
   * within about a microsecond. It costs a CPU core while it polls: set it
   * somewhat above the interval between buffers for the lowest latency
   * (2000000 for 1000 buffers/s), or leave it 0 (a short spin, then sleep).
   * The polling thread needs a core of its own: where it has to share one
   * with the producer, the producer waits for it and latency gets worse.
   */
  g_object_class_install_property (gobject_class, PROP_BUSY_POLL,
      g_param_spec_uint64 ("busy-poll", "Busy poll",
          "After each record, poll the ring this long (ns) before sleeping: "
          "lower latency for a CPU core's worth of polling (0: sleep after "
          "a short spin)", 0, G_MAXUINT64, DEFAULT_BUSY_POLL,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstIvshmemSrc:on-producer-restart:
   *
   * What to do when the producer restarts (a new session) or goes away
   * without EOS (it closed its session, or its heartbeat stopped): follow
   * the next producer in the same pipeline (stream-start, caps and segment
   * are sent again and the next buffer is marked DISCONT), end with EOS, or
   * post an error.
   */
  g_object_class_install_property (gobject_class, PROP_ON_PRODUCER_RESTART,
      g_param_spec_enum ("on-producer-restart", "On producer restart",
          "What to do when the producer restarts or goes away without EOS",
          GST_TYPE_IVSHMEM_SRC_RESTART, DEFAULT_ON_PRODUCER_RESTART,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstIvshmemSrc:stats:
   *
   * A snapshot of the source's counters: `buffers`, `bytes`,
   * `zero-copy-buffers`, `copied-buffers`, `invalid-records` (records from
   * the producer that broke the protocol and were skipped), `reconnects`
   * (producer restarts followed), `drops` and `lost-bytes` (times this
   * reader fell behind a leaky producer, and what it skipped), `lag-bytes`
   * (how far behind the producer
   * this reader is), `held-buffers` (zero-copy buffers still downstream),
   * `slot` and `session`.
   */
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "Counters of the source (buffers, bytes, zero-copy, invalid "
          "records, reconnects, lag)", GST_TYPE_STRUCTURE,
          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * GstIvshmemSrc:zero-copy:
   *
   * Hand out buffers that point into the ring instead of copies. Their
   * space stays reserved until the last reference to them is dropped. At
   * most 64 such buffers, and half the ring, are outstanding at once;
   * beyond that, buffers are copied, so a downstream element that keeps
   * buffers cannot stall the producer. false: always copy.
   */
  g_object_class_install_property (gobject_class, PROP_ZERO_COPY,
      g_param_spec_boolean ("zero-copy", "Zero copy",
          "Hand out read-only buffers that point into the ring (bounded; "
          "falls back to copying when downstream keeps too many); false: "
          "always copy", DEFAULT_ZERO_COPY,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  /**
   * GstIvshmemSrc:bar-mapping:
   *
   * In a guest: how BAR2 is mapped. `resource` (resource2) is uncached:
   * every access goes to memory. `resource-wc` (resource2_wc) combines
   * writes into bursts, which makes a producer much faster; reads stay
   * uncached. `auto` takes resource2_wc where the kernel offers it. No
   * sysfs mapping is cached; under QEMU's TCG the choice makes no
   * difference, under KVM it does. Ignored for host files.
   */
  g_object_class_install_property (gobject_class, PROP_BAR_MAPPING,
      g_param_spec_enum ("bar-mapping", "BAR mapping",
          "In a guest: map BAR2 through resource2 (uncached) or resource2_wc "
          "(write-combining)", GST_TYPE_IVSHMEM_BAR_MAPPING,
          IVSHM_BAR_MAPPING_AUTO, G_PARAM_READWRITE |
          G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));

  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "IVSHMEM source", "Source",
      "Reads media from IVSHMEM shared memory, written by ivshmemsink on "
      "the host, in a QEMU guest or in another VM",
      "gst-ivshmem developers");

  bsrc_class->start = GST_DEBUG_FUNCPTR (gst_ivshmem_src_start);
  bsrc_class->stop = GST_DEBUG_FUNCPTR (gst_ivshmem_src_stop);
  bsrc_class->unlock = GST_DEBUG_FUNCPTR (gst_ivshmem_src_unlock);
  bsrc_class->unlock_stop = GST_DEBUG_FUNCPTR (gst_ivshmem_src_unlock_stop);
  bsrc_class->negotiate = GST_DEBUG_FUNCPTR (gst_ivshmem_src_negotiate);
  bsrc_class->query = GST_DEBUG_FUNCPTR (gst_ivshmem_src_query);
  psrc_class->create = GST_DEBUG_FUNCPTR (gst_ivshmem_src_create);
}

static void
gst_ivshmem_src_init (GstIvshmemSrc * self)
{
  self->device = g_strdup (DEFAULT_DEVICE);
  self->is_live = DEFAULT_IS_LIVE;
  self->latency = DEFAULT_LATENCY;
  self->max_poll_interval = DEFAULT_MAX_POLL_INTERVAL;
  self->busy_poll = DEFAULT_BUSY_POLL;
  self->zero_copy_enabled = DEFAULT_ZERO_COPY;
  self->on_restart = DEFAULT_ON_PRODUCER_RESTART;
  ivshm_waiter_init (&self->waiter);
  self->allocator = g_object_new (GST_TYPE_IVSHMEM_READ_ALLOCATOR, NULL);
  gst_object_ref_sink (self->allocator);
  gst_base_src_set_format (GST_BASE_SRC (self), GST_FORMAT_TIME);
  gst_base_src_set_live (GST_BASE_SRC (self), DEFAULT_IS_LIVE);
}

static void
gst_ivshmem_src_finalize (GObject * object)
{
  GstIvshmemSrc *self = GST_IVSHMEM_SRC (object);

  g_free (self->device);
  g_free (self->opened_device);
  g_free (self->stream_id);
  gst_object_unref (self->allocator);

  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_ivshmem_src_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstIvshmemSrc *self = GST_IVSHMEM_SRC (object);

  GST_OBJECT_LOCK (self);
  if (self->region != NULL && prop_id != PROP_MAX_POLL_INTERVAL &&
      prop_id != PROP_BUSY_POLL && prop_id != PROP_ON_PRODUCER_RESTART) {
    GST_OBJECT_UNLOCK (self);
    g_warning ("%s: the %s property can only be changed in the NULL or "
        "READY state", GST_OBJECT_NAME (self), pspec->name);
    return;
  }
  switch (prop_id) {
    case PROP_DEVICE:
      g_free (self->device);
      self->device = g_value_dup_string (value);
      break;
    case PROP_IS_LIVE:
      self->is_live = g_value_get_boolean (value);
      break;
    case PROP_LATENCY:
      self->latency = g_value_get_uint64 (value);
      break;
    case PROP_MAX_POLL_INTERVAL:
      self->max_poll_interval = g_value_get_uint64 (value);
      break;
    case PROP_BUSY_POLL:
      self->busy_poll = g_value_get_uint64 (value);
      break;
    case PROP_BAR_MAPPING:
      self->bar_mapping = g_value_get_enum (value);
      break;
    case PROP_ZERO_COPY:
      self->zero_copy_enabled = g_value_get_boolean (value);
      break;
    case PROP_ON_PRODUCER_RESTART:
      self->on_restart = g_value_get_enum (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);

  if (prop_id == PROP_IS_LIVE)
    gst_base_src_set_live (GST_BASE_SRC (self), g_value_get_boolean (value));
}

static GstStructure *
gst_ivshmem_src_get_stats (GstIvshmemSrc * self)
{
  GstIvshmemConsumer *consumer = NULL;
  IvshmReaderStats rs = { 0 };
  unsigned held = 0;
  guint64 lag = 0, session = 0, reconnects, zero_copy, copied, invalid;
  guint64 drops, lost_bytes;
  gint slot = -1;

  /* the consumer keeps the reader alive while we look at it */
  GST_OBJECT_LOCK (self);
  if (self->consumer && self->consumer->reader)
    consumer = gst_ivshmem_consumer_ref (self->consumer);
  reconnects = self->reconnects;
  drops = self->drops;
  lost_bytes = self->lost_bytes;
  zero_copy = self->zero_copy;
  copied = self->copied;
  invalid = self->invalid_records;
  GST_OBJECT_UNLOCK (self);

  if (consumer) {
    ivshm_reader_get_stats (consumer->reader, &rs);
    ivshm_reader_held (consumer->reader, &held, NULL);
    lag = ivshm_reader_lag (consumer->reader);
    session = ivshm_reader_session (consumer->reader);
    slot = (gint) rs.slot;
    gst_ivshmem_consumer_unref (consumer);
  }
  return gst_structure_new ("GstIvshmemSrcStats",
      "buffers", G_TYPE_UINT64, rs.buffers,
      "bytes", G_TYPE_UINT64, rs.bytes,
      "zero-copy-buffers", G_TYPE_UINT64, zero_copy,
      "copied-buffers", G_TYPE_UINT64, copied,
      "invalid-records", G_TYPE_UINT64, invalid + rs.invalid,
      "reconnects", G_TYPE_UINT64, reconnects,
      "drops", G_TYPE_UINT64, drops,
      "lost-bytes", G_TYPE_UINT64, lost_bytes,
      "lag-bytes", G_TYPE_UINT64, lag,
      "held-buffers", G_TYPE_UINT, held,
      "slot", G_TYPE_INT, slot,
      "session", G_TYPE_UINT64, session, NULL);
}

static void
gst_ivshmem_src_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstIvshmemSrc *self = GST_IVSHMEM_SRC (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_DEVICE:
      g_value_set_string (value, self->device);
      break;
    case PROP_IS_LIVE:
      g_value_set_boolean (value, self->is_live);
      break;
    case PROP_LATENCY:
      g_value_set_uint64 (value, self->latency);
      break;
    case PROP_MAX_POLL_INTERVAL:
      g_value_set_uint64 (value, self->max_poll_interval);
      break;
    case PROP_BUSY_POLL:
      g_value_set_uint64 (value, self->busy_poll);
      break;
    case PROP_BAR_MAPPING:
      g_value_set_enum (value, self->bar_mapping);
      break;
    case PROP_ZERO_COPY:
      g_value_set_boolean (value, self->zero_copy_enabled);
      break;
    case PROP_ON_PRODUCER_RESTART:
      g_value_set_enum (value, self->on_restart);
      break;
    case PROP_STATS:
      GST_OBJECT_UNLOCK (self);
      g_value_take_boxed (value, gst_ivshmem_src_get_stats (self));
      GST_OBJECT_LOCK (self);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_ivshmem_src_reset_stream (GstIvshmemSrc * self)
{
  gst_segment_init (&self->in_segment, GST_FORMAT_TIME);
  self->segment_sent = FALSE;
  self->have_offset = FALSE;
  self->ts_offset = 0;
  self->eos = FALSE;
  self->waiting_logged = FALSE;
}

static gboolean
gst_ivshmem_src_start (GstBaseSrc * bsrc)
{
  GstIvshmemSrc *self = GST_IVSHMEM_SRC (bsrc);
  IvshmRegionOptions opts = { 0 };
  IvshmError err = { 0 };
  IvshmRegion *region = NULL;
  gchar *device;

  GST_OBJECT_LOCK (self);
  device = g_strdup (self->device);
  opts.bar_mapping = self->bar_mapping;
  GST_OBJECT_UNLOCK (self);

  if (ivshm_region_open (device, &opts, &region, &err) != IVSHM_OK)
    goto open_failed;

  GST_INFO_OBJECT (self, "reading from %s %s(%" G_GUINT64_FORMAT " bytes)",
      ivshm_region_path (region), ivshm_region_location (region),
      ivshm_region_size (region));

  GST_OBJECT_LOCK (self);
  self->consumer = gst_ivshmem_consumer_new (region);
  self->region = region;
  GST_OBJECT_UNLOCK (self);

  gst_ivshmem_src_reset_stream (self);
  self->invalid_records = 0;
  self->zero_copy = self->copied = self->reconnects = 0;
  self->abandoned_session = 0;
  self->discont = FALSE;
  self->lapped = FALSE;
  self->drops = self->lost_bytes = 0;
  self->last_end = GST_CLOCK_TIME_NONE;
  g_clear_pointer (&self->stream_id, g_free);
  g_free (self->opened_device);
  self->opened_device = device;
  self->opened_opts = opts;
  return TRUE;

  /* ERRORS */
open_failed:
  {
    GST_IVSHMEM_POST_ERROR (self, &err, "open the IVSHMEM region");
    g_free (device);
    return FALSE;
  }
}

static gboolean
gst_ivshmem_src_stop (GstBaseSrc * bsrc)
{
  GstIvshmemSrc *self = GST_IVSHMEM_SRC (bsrc);
  GstIvshmemConsumer *consumer;

  GST_OBJECT_LOCK (self);
  consumer = self->consumer;
  self->consumer = NULL;
  self->region = NULL;
  self->reader = NULL;
  GST_OBJECT_UNLOCK (self);

  if (consumer) {
    GST_INFO_OBJECT (self, "%" G_GUINT64_FORMAT " buffers handed out in "
        "place, %" G_GUINT64_FORMAT " copied", self->zero_copy, self->copied);
    /* buffers still downstream keep the reader and the mapping */
    gst_ivshmem_consumer_unref (consumer);
  }
  return TRUE;
}

static gboolean
gst_ivshmem_src_unlock (GstBaseSrc * bsrc)
{
  GstIvshmemSrc *self = GST_IVSHMEM_SRC (bsrc);

  ivshm_waiter_set_flushing (&self->waiter, TRUE);
  return TRUE;
}

static gboolean
gst_ivshmem_src_unlock_stop (GstBaseSrc * bsrc)
{
  GstIvshmemSrc *self = GST_IVSHMEM_SRC (bsrc);

  ivshm_waiter_set_flushing (&self->waiter, FALSE);
  return TRUE;
}

static gboolean
gst_ivshmem_src_negotiate (GstBaseSrc * bsrc)
{
  /* The caps come from the ring, in create(); there is nothing to choose. */
  return TRUE;
}

static gboolean
gst_ivshmem_src_query (GstBaseSrc * bsrc, GstQuery * query)
{
  GstIvshmemSrc *self = GST_IVSHMEM_SRC (bsrc);

  if (GST_QUERY_TYPE (query) == GST_QUERY_LATENCY) {
    gboolean live;
    GstClockTime latency;

    GST_OBJECT_LOCK (self);
    live = self->is_live;
    latency = self->latency;
    GST_OBJECT_UNLOCK (self);

    if (live) {
      /* The producer blocks while the ring is full, so there is no upper
       * bound on what can be buffered. */
      gst_query_set_latency (query, TRUE, latency, GST_CLOCK_TIME_NONE);
      GST_DEBUG_OBJECT (self, "latency %" GST_TIME_FORMAT,
          GST_TIME_ARGS (latency));
      return TRUE;
    }
  }
  return GST_BASE_SRC_CLASS (parent_class)->query (bsrc, query);
}

/* The consumer's own thread: renews the lease, and moves held buffers out
 * of the ring when the producer needs their space, also while the
 * streaming thread is blocked downstream (a full appsink, a queue). */
static void
consumer_tick (void *data)
{
  GstIvshmemConsumer *c = data;

  ivshm_reader_heartbeat (c->reader);
  if (ivshm_reader_holding_back (c->reader))
    gst_ivshmem_consumer_migrate (c);
}

/* Tries to attach to the producer. GST_FLOW_OK: attached. GST_FLOW_CUSTOM_
 * SUCCESS: no producer yet, wait. */
static GstFlowReturn
gst_ivshmem_src_attach (GstIvshmemSrc * self)
{
  IvshmError err = { 0 };
  IvshmReaderConfig cfg = { 0 };
  IvshmStatus st;

  /* after falling behind a leaky producer, the end of its stream is still
   * ours to read, even once it has closed the session */
  cfg.attach_closed = self->lapped;
  st = ivshm_reader_new (ivshm_region_data (self->region),
      ivshm_region_size (self->region), &cfg, &self->reader, &err);
  if (st == IVSHM_ERR_NO_PRODUCER || st == IVSHM_AGAIN) {
    if (!self->waiting_logged) {
      GST_INFO_OBJECT (self, "waiting for a producer: %s", err.detail);
      self->waiting_logged = TRUE;
    }
    return GST_FLOW_CUSTOM_SUCCESS;
  }
  if (st != IVSHM_OK) {
    GST_IVSHMEM_POST_ERROR (self, &err, "attach to the IVSHMEM ring");
    return GST_FLOW_ERROR;
  }
  if (self->abandoned_session &&
      ivshm_reader_session (self->reader) == self->abandoned_session) {
    /* the session we left because its producer died: wait for a new one */
    ivshm_reader_free (self->reader);
    self->reader = NULL;
    return GST_FLOW_CUSTOM_SUCCESS;
  }

  {
    IvshmReaderStats stats;
    ivshm_reader_get_stats (self->reader, &stats);
    GST_INFO_OBJECT (self, "attached to session %016" G_GINT64_MODIFIER
        "x in slot %u%s", ivshm_reader_session (self->reader), stats.slot,
        stats.joined_mid_stream ? ", mid-stream" : "");
  }
  GST_OBJECT_LOCK (self);
  self->consumer->reader = self->reader;
  GST_OBJECT_UNLOCK (self);
  /* the consumer outlives neither its ticker nor its reader */
  self->consumer->heartbeat = ivshm_ticker_start (CONSUMER_TICK_NS,
      consumer_tick, self->consumer);
  ivshm_reader_heartbeat (self->reader);
  if (self->lapped) {
    guint64 at = ivshm_reader_position (self->reader);
    guint64 lost = at > self->lapped_from ? at - self->lapped_from : 0;

    GST_OBJECT_LOCK (self);
    self->drops++;
    self->lost_bytes += lost;
    GST_OBJECT_UNLOCK (self);
    GST_ELEMENT_WARNING (self, STREAM, FAILED,
        ("Fell behind the producer, which does not wait (leaky): skipped "
            "%" G_GUINT64_FORMAT " bytes of the stream.", lost),
        ("dropped at ring position %" G_GUINT64_FORMAT ", joined again at %"
            G_GUINT64_FORMAT "; %" G_GUINT64_FORMAT " times so far",
            self->lapped_from, at, self->drops));
  }
  return GST_FLOW_OK;
}

/* The producer restarted or went away: let go of its session and wait for
 * the next producer, with a fresh mapping (buffers still downstream keep
 * the old one). */
static GstFlowReturn
gst_ivshmem_src_reattach (GstIvshmemSrc * self, const IvshmError * why)
{
  GstIvshmemConsumer *old, *fresh;
  IvshmRegion *region = NULL;
  IvshmError err = { 0 };
  gboolean lapped = why->status == IVSHM_ERR_EVICTED;

  if (ivshm_region_open (self->opened_device, &self->opened_opts, &region,
          &err) != IVSHM_OK) {
    GST_IVSHMEM_POST_ERROR (self, &err, "open the IVSHMEM region again");
    return GST_FLOW_ERROR;
  }
  if (lapped) {
    /* the same stream goes on: join it again at the live edge and say
     * what was lost once we know (gst_ivshmem_src_report_loss) */
    self->lapped = TRUE;
    self->lapped_from = ivshm_reader_position (self->reader);
    GST_DEBUG_OBJECT (self, "dropped by the leaky producer at %"
        G_GUINT64_FORMAT, self->lapped_from);
  } else {
    GST_ELEMENT_WARNING (self, RESOURCE, READ,
        ("The producer restarted or went away; waiting for the next one."),
        ("%s", why->detail));
    if (why->status == IVSHM_ERR_PRODUCER_GONE)
      self->abandoned_session = ivshm_reader_session (self->reader);
  }

  fresh = gst_ivshmem_consumer_new (region);
  GST_OBJECT_LOCK (self);
  old = self->consumer;
  self->consumer = fresh;
  self->region = region;
  self->reader = NULL;
  if (!lapped)
    self->reconnects++;
  GST_OBJECT_UNLOCK (self);
  gst_ivshmem_consumer_unref (old);

  if (!lapped) {
    /* the next stream is anchored anew */
    gst_ivshmem_src_reset_stream (self);
    g_clear_pointer (&self->stream_id, g_free);
    self->last_end = GST_CLOCK_TIME_NONE;
  }
  self->discont = TRUE;
  return GST_FLOW_OK;
}

static GstClockTime
gst_ivshmem_src_restamp (GstIvshmemSrc * self, guint64 ts, gboolean anchor)
{
  GstClockTime rt;
  GstClockTimeDiff out;

  if (ts == IVSHM_TIME_NONE || self->in_segment.format != GST_FORMAT_TIME)
    return GST_CLOCK_TIME_NONE;
  rt = gst_segment_to_running_time (&self->in_segment, GST_FORMAT_TIME, ts);
  if (!GST_CLOCK_TIME_IS_VALID (rt))
    return GST_CLOCK_TIME_NONE;

  if (!self->have_offset) {
    GstClock *clock;
    GstClockTime now = 0;

    if (!anchor)
      return GST_CLOCK_TIME_NONE;
    clock = gst_element_get_clock (GST_ELEMENT (self));
    if (clock) {
      GstClockTime base = gst_element_get_base_time (GST_ELEMENT (self));
      GstClockTime t = gst_clock_get_time (clock);
      now = t > base ? t - base : 0;
      gst_object_unref (clock);
    }
    self->ts_offset = GST_CLOCK_DIFF (rt, now);
    self->have_offset = TRUE;
    GST_DEBUG_OBJECT (self, "producer running time %" GST_TIME_FORMAT
        " is local running time %" GST_TIME_FORMAT, GST_TIME_ARGS (rt),
        GST_TIME_ARGS (now));
  }
  out = (GstClockTimeDiff) rt + self->ts_offset;
  return out > 0 ? (GstClockTime) out : 0;
}

/* Pushes the output segment if it has not gone out yet, so that events
 * that must follow a segment (tags, gaps, custom events) can. */
static void
gst_ivshmem_src_ensure_segment (GstIvshmemSrc * self)
{
  GstBaseSrc *bsrc = GST_BASE_SRC (self);
  GstEvent *ev;

  if (self->segment_sent)
    return;
  GST_OBJECT_LOCK (self);
  ev = gst_event_new_segment (&bsrc->segment);
  GST_OBJECT_UNLOCK (self);
  gst_pad_push_event (GST_BASE_SRC_PAD (bsrc), ev);
  self->segment_sent = TRUE;
}

static void
gst_ivshmem_src_invalid (GstIvshmemSrc * self, const gchar * what,
    const gchar * why)
{
  GST_OBJECT_LOCK (self);
  self->invalid_records++;
  GST_OBJECT_UNLOCK (self);
  GST_ELEMENT_WARNING (self, STREAM, DECODE,
      ("Skipped an invalid %s record from the producer.", what),
      ("%s (%" G_GUINT64_FORMAT " invalid records so far)", why,
          self->invalid_records));
}

static GstFlowReturn
gst_ivshmem_src_handle_caps (GstIvshmemSrc * self, const gchar * str)
{
  GstCaps *caps = gst_caps_from_string (str);

  if (!caps || !gst_caps_is_fixed (caps)) {
    gst_ivshmem_src_invalid (self, "caps", caps ? "the caps are not fixed" :
        "the caps do not parse");
    if (caps)
      gst_caps_unref (caps);
    return GST_FLOW_OK;
  }
  GST_DEBUG_OBJECT (self, "caps from the producer: %" GST_PTR_FORMAT, caps);
  if (!gst_base_src_set_caps (GST_BASE_SRC (self), caps)) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("Downstream does not accept the producer's caps."),
        ("caps %" GST_PTR_FORMAT, caps));
    gst_caps_unref (caps);
    return GST_FLOW_NOT_NEGOTIATED;
  }
  gst_caps_unref (caps);
  return GST_FLOW_OK;
}

static GstFlowReturn
gst_ivshmem_src_handle_event (GstIvshmemSrc * self,
    const IvshmRecordHeader * h, const gchar * payload, gboolean replayed)
{
  GstBaseSrc *bsrc = GST_BASE_SRC (self);
  const gchar *why = NULL;
  GstEvent *ev = gst_ivshmem_event_from_record (h, payload, &why);

  if (!ev) {
    gst_ivshmem_src_invalid (self, "event", why);
    return GST_FLOW_OK;
  }
  GST_DEBUG_OBJECT (self, "event from the producer: %" GST_PTR_FORMAT, ev);

  switch (GST_EVENT_TYPE (ev)) {
    case GST_EVENT_STREAM_START:{
      const gchar *id = NULL;

      gst_event_parse_stream_start (ev, &id);
      if (replayed && g_strcmp0 (id, self->stream_id) == 0) {
        /* joining the same stream again (after falling behind) */
        gst_event_unref (ev);
        return GST_FLOW_OK;
      }
      g_free (self->stream_id);
      self->stream_id = g_strdup (id);
      break;
    }
    case GST_EVENT_EOS:
      gst_event_unref (ev);
      self->eos = TRUE;
      return GST_FLOW_EOS;
    case GST_EVENT_SEGMENT:{
      const GstSegment *seg;

      gst_event_parse_segment (ev, &seg);
      gst_segment_copy_into (seg, &self->in_segment);
      if (!bsrc->is_live && seg->format == GST_FORMAT_TIME) {
        /* basesrc pushes it before the next buffer */
        gst_base_src_new_segment (bsrc, seg);
        self->segment_sent = FALSE;
      }
      gst_event_unref (ev);
      return GST_FLOW_OK;
    }
    case GST_EVENT_GAP:{
      GstClockTime ts, dur;
      GstGapFlags flags = 0;

      if (!bsrc->is_live)
        break;
      gst_event_parse_gap (ev, &ts, &dur);
      gst_event_parse_gap_flags (ev, &flags);
      ts = gst_ivshmem_src_restamp (self, ts, TRUE);
      gst_event_unref (ev);
      if (!GST_CLOCK_TIME_IS_VALID (ts))
        return GST_FLOW_OK;
      ev = gst_event_new_gap (ts, dur);
      gst_event_set_gap_flags (ev, flags);
      break;
    }
    default:
      break;
  }

  if (GST_EVENT_TYPE (ev) != GST_EVENT_STREAM_START)
    gst_ivshmem_src_ensure_segment (self);
  gst_pad_push_event (GST_BASE_SRC_PAD (bsrc), ev);
  return GST_FLOW_OK;
}

/* Wraps a BUFFER record in place, if the bounds allow: at most
 * IVSHM_MAX_HELD records and half the ring held at once, so that buffers
 * downstream keeps cannot stall the producer. */
static GstBuffer *
gst_ivshmem_src_wrap (GstIvshmemSrc * self, const IvshmRecord * rec)
{
  GstIvshmemReadMemory *m;
  GstBuffer *buf;
  IvshmHold hold;
  unsigned count;
  guint64 bytes;

  if (!self->zero_copy_enabled || rec->replayed)
    return NULL;
  ivshm_reader_held (self->reader, &count, &bytes);
  if (count >= IVSHM_MAX_HELD ||
      bytes + ivshm_record_len (rec->h.payload_len) >
      ivshm_reader_ring_size (self->reader) / 2)
    return NULL;
  if (ivshm_reader_hold (self->reader, &hold) != IVSHM_OK)
    return NULL;

  m = gst_ivshmem_read_memory_new (self->allocator, NULL, self->consumer,
      &hold, (guint8 *) rec->payload, rec->h.payload_len, 0,
      rec->h.payload_len);
  buf = gst_buffer_new ();
  gst_buffer_append_memory (buf, GST_MEMORY_CAST (m));
  /* not a memory that downstream must treat specially */
  GST_BUFFER_FLAG_UNSET (buf, GST_BUFFER_FLAG_TAG_MEMORY);
  return buf;
}

/* Makes a buffer of a BUFFER record, in place or as a copy; consumes the
 * record either way. */
static GstFlowReturn
gst_ivshmem_src_make_buffer (GstIvshmemSrc * self, const IvshmRecord * rec,
    GstBuffer ** out, IvshmError * err)
{
  GstBuffer *buf;
  GstMapInfo map;
  const IvshmRecordHeader *h = &rec->h;
  IvshmStatus st;

  buf = gst_ivshmem_src_wrap (self, rec);
  if (buf) {
    GST_OBJECT_LOCK (self);
    self->zero_copy++;
    GST_OBJECT_UNLOCK (self);
  } else {
    buf = gst_buffer_new_allocate (NULL, h->payload_len, NULL);
    if (!buf || !gst_buffer_map (buf, &map, GST_MAP_WRITE)) {
      if (buf)
        gst_buffer_unref (buf);
      GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT,
          ("Could not allocate a buffer of %" G_GUINT64_FORMAT " bytes.",
              h->payload_len), (NULL));
      return GST_FLOW_ERROR;
    }
    memcpy (map.data, rec->payload, h->payload_len);
    gst_buffer_unmap (buf, &map);
    /* confirms the copy was not overwritten meanwhile */
    st = ivshm_reader_release (self->reader);
    if (st != IVSHM_OK) {
      gst_buffer_unref (buf);
      ivshm_error_set (err, st, 0, "the producer dropped this reader while "
          "it was copying a record");
      return GST_FLOW_ERROR;
    }
    GST_OBJECT_LOCK (self);
    self->copied++;
    GST_OBJECT_UNLOCK (self);
  }

  GST_BUFFER_FLAGS (buf) |= h->flags & GST_IVSHMEM_BUFFER_FLAGS_MASK;
  GST_BUFFER_OFFSET (buf) = h->offset;
  GST_BUFFER_OFFSET_END (buf) = h->offset_end;
  GST_BUFFER_DURATION (buf) = h->duration;
  if (GST_BASE_SRC (self)->is_live) {
    GST_BUFFER_PTS (buf) = gst_ivshmem_src_restamp (self, h->pts, TRUE);
    GST_BUFFER_DTS (buf) = gst_ivshmem_src_restamp (self, h->dts,
        h->pts == IVSHM_TIME_NONE);
  } else {
    GST_BUFFER_PTS (buf) = h->pts;
    GST_BUFFER_DTS (buf) = h->dts;
  }
  *out = buf;
  return GST_FLOW_OK;
}

/* After falling behind a leaky producer: the next buffer is here. Tell
 * downstream the stream has a hole (a GAP event over the lost time) and
 * the application what was dropped (a QoS message, in bytes: the producer
 * does not count its records for us). */
static void
gst_ivshmem_src_report_loss (GstIvshmemSrc * self,
    const IvshmRecordHeader * h)
{
  GstBaseSrc *bsrc = GST_BASE_SRC (self);
  GstClockTime start = GST_CLOCK_TIME_NONE, dur = GST_CLOCK_TIME_NONE;
  GstMessage *qos;
  guint64 lost;

  self->lapped = FALSE;
  if (GST_CLOCK_TIME_IS_VALID (self->last_end) && h->pts != IVSHM_TIME_NONE
      && h->pts > self->last_end) {
    dur = h->pts - self->last_end;
    start = bsrc->is_live ? gst_ivshmem_src_restamp (self, self->last_end,
        FALSE) : self->last_end;
  }
  if (GST_CLOCK_TIME_IS_VALID (start)) {
    gst_ivshmem_src_ensure_segment (self);
    gst_pad_push_event (GST_BASE_SRC_PAD (bsrc), gst_event_new_gap (start,
            dur));
  }
  GST_OBJECT_LOCK (self);
  lost = self->lost_bytes;
  GST_OBJECT_UNLOCK (self);
  qos = gst_message_new_qos (GST_OBJECT (self), bsrc->is_live, start,
      GST_CLOCK_TIME_NONE, start, dur);
  gst_message_set_qos_stats (qos, GST_FORMAT_BYTES, 0, lost);
  gst_element_post_message (GST_ELEMENT (self), qos);
}

static GstFlowReturn
gst_ivshmem_src_create (GstPushSrc * psrc, GstBuffer ** out)
{
  GstIvshmemSrc *self = GST_IVSHMEM_SRC (psrc);
  IvshmBackoff backoff;
  gboolean reset = TRUE;
  guint64 producer_wait = WAIT_PRODUCER_MIN_NS;
  guint64 max_poll = 0, busy_until = 0;
  IvshmError err = { 0 };
  GstFlowReturn ret;

  if (self->eos)
    return GST_FLOW_EOS;

again:
  for (;;) {
    IvshmRecord rec;
    IvshmStatus st;
    GstBuffer *buf = NULL;
    gchar *str = NULL;
    guint64 timeout;

    if (!self->reader) {
      ret = gst_ivshmem_src_attach (self);
      if (ret == GST_FLOW_CUSTOM_SUCCESS) {
        if (!ivshm_wait_on (&self->waiter, NULL, 0, producer_wait))
          return GST_FLOW_FLUSHING;
        producer_wait = MIN (producer_wait * 2, WAIT_PRODUCER_MAX_NS);
        continue;
      }
      if (ret != GST_FLOW_OK)
        return ret;
    }

    st = ivshm_reader_next (self->reader, &rec, &err);
    if (st == IVSHM_AGAIN) {
      /* a short spin, then sleeps that the producer cuts short with a
       * futex wake when it shares our kernel, and that grow up to
       * max-poll-interval when it does not */
      if (reset) {
        guint64 busy;

        GST_OBJECT_LOCK (self);
        max_poll = self->max_poll_interval;
        busy = self->busy_poll;
        GST_OBJECT_UNLOCK (self);
        busy_until = busy ? ivshm_now_ns () + busy : 0;
      }
      timeout = gst_ivshmem_next_wait (&backoff, &reset,
          ivshm_reader_producer_local (self->reader), &self->waiter, max_poll);
      if (timeout != 0 && busy_until && ivshm_now_ns () < busy_until)
        timeout = 0;            /* busy-poll: not asleep yet */
      if (timeout == 0) {
        ivshm_cpu_relax ();
        if (!ivshm_waiter_is_flushing (&self->waiter))
          continue;
      } else {
        /* Downstream keeps buffers that point into the ring and the
         * producer needs their space: move them out of the ring. While
         * we hold any, look again soon. */
        if (ivshm_reader_holding_back (self->reader)) {
          guint n = gst_ivshmem_consumer_migrate (self->consumer);
          if (n)
            GST_DEBUG_OBJECT (self, "copied %u held buffers out of the ring "
                "for the producer", n);
        }
        if (timeout > HELD_WAIT_NS && gst_ivshmem_consumer_holds (self->consumer))
          timeout = HELD_WAIT_NS;
        if (ivshm_reader_wait (self->reader, &self->waiter, timeout))
          continue;
      }
      GST_DEBUG_OBJECT (self, "unlocked while waiting for data");
      return GST_FLOW_FLUSHING;
    }
    if (st != IVSHM_OK)
      goto read_failed;
    reset = TRUE;

    /* Copy out of shared memory first, then release, which confirms the
     * copy was not overwritten; only then parse the private copy. */
    if (rec.h.type == IVSHM_RECORD_BUFFER) {
      ret = gst_ivshmem_src_make_buffer (self, &rec, &buf, &err);
      if (ret != GST_FLOW_OK) {
        if (err.status != IVSHM_OK)
          goto read_failed;
        return ret;
      }
    } else {
      str = g_strndup ((const gchar *) rec.payload, rec.h.payload_len);
      st = ivshm_reader_release (self->reader);
      if (st != IVSHM_OK) {
        g_free (str);
        ivshm_error_set (&err, st, 0, "the producer dropped this reader "
            "while it was copying a record");
        goto read_failed;
      }
    }

    if (buf) {
      if (self->lapped)
        gst_ivshmem_src_report_loss (self, &rec.h);
      if (rec.h.pts != IVSHM_TIME_NONE)
        self->last_end = rec.h.duration != IVSHM_TIME_NONE ?
            rec.h.pts + rec.h.duration : rec.h.pts;
      if (self->discont) {
        GST_BUFFER_FLAG_SET (buf, GST_BUFFER_FLAG_DISCONT);
        self->discont = FALSE;
      }
      GST_LOG_OBJECT (self, "buffer %" GST_PTR_FORMAT, buf);
      self->segment_sent = TRUE;        /* basesrc sends it with the buffer */
      *out = buf;
      return GST_FLOW_OK;
    }

    if (rec.h.type == IVSHM_RECORD_CAPS)
      ret = gst_ivshmem_src_handle_caps (self, str);
    else
      ret = gst_ivshmem_src_handle_event (self, &rec.h, str, rec.replayed);
    g_free (str);
    if (ret != GST_FLOW_OK)
      return ret;
  }

  /* ERRORS */
read_failed:
  {
    if (err.status == IVSHM_ERR_EVICTED && self->reader &&
        ivshm_reader_producer_leaky (self->reader)) {
      ret = gst_ivshmem_src_reattach (self, &err);
      if (ret != GST_FLOW_OK)
        return ret;
      err.status = IVSHM_OK;
      goto again;
    }
    if (err.status == IVSHM_ERR_PRODUCER_GONE ||
        err.status == IVSHM_ERR_SESSION_CHANGED) {
      GstIvshmemSrcRestart mode;

      GST_OBJECT_LOCK (self);
      mode = self->on_restart;
      GST_OBJECT_UNLOCK (self);
      if (mode == GST_IVSHMEM_SRC_RESTART_FOLLOW) {
        ret = gst_ivshmem_src_reattach (self, &err);
        if (ret != GST_FLOW_OK)
          return ret;
        err.status = IVSHM_OK;
        goto again;
      }
      if (mode == GST_IVSHMEM_SRC_RESTART_EOS) {
        GST_INFO_OBJECT (self, "ending with EOS: %s", err.detail);
        self->eos = TRUE;
        return GST_FLOW_EOS;
      }
    }
    if (err.status == IVSHM_ERR_PRODUCER_GONE)
      GST_ELEMENT_ERROR (self, RESOURCE, READ,
          ("The producer went away without sending EOS."),
          ("%s. Restart the producer; on-producer-restart=follow would "
              "wait for it.", err.detail));
    else if (err.status == IVSHM_ERR_SESSION_CHANGED)
      GST_ELEMENT_ERROR (self, RESOURCE, READ,
          ("The producer restarted in the middle of the stream."),
          ("%s. on-producer-restart=follow would go on with the new "
              "stream.", err.detail));
    else
      GST_IVSHMEM_POST_ERROR (self, &err, "read the IVSHMEM ring");
    return GST_FLOW_ERROR;
  }
}
