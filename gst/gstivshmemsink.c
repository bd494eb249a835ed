/* gst-ivshmem: ivshmemsink
 * SPDX-License-Identifier: MIT
 */
/**
 * SECTION:element-ivshmemsink
 * @title: ivshmemsink
 * @see_also: #GstIvshmemSrc
 *
 * Writes buffers, caps and serialized events into a ring inside an IVSHMEM
 * region, for one or more #GstIvshmemSrc to read: on the host, or inside a
 * QEMU guest, or in another guest that shares the same region.
 *
 * On the host the region is the file that QEMU's `memory-backend-file`
 * shares, usually `/dev/shm/NAME`. Inside a guest it is BAR2 of the
 * `ivshmem-plain` PCI device, named by its PCI address, or found on its
 * own when #GstIvshmemSink:device is empty.
 *
 * The sink is lossless: when the ring is full it waits for the slowest
 * reader. Until the first reader attaches it keeps everything it wrote
 * (and then waits), so the first reader gets the stream from its start; for
 * the same reason it does not finish at EOS before a first reader has
 * attached, as shmsink with wait-for-connection=true would not start. A
 * reader that stops renewing its lease for 3 seconds while the sink waits
 * for it is dropped, so a dead reader cannot stall the producer. A live
 * reader that does not read (a paused viewer) is waited for; after 3 s a
 * warning names its slot and pid, and an info message says when it moves
 * again.
 *
 * A host file is opened with its pages reserved (fallocate), so a file
 * system too small for it (a container's /dev/shm) is an error at start
 * that gives the free and needed sizes. If the file shrinks or loses its
 * pages while the sink runs (truncate, a full tmpfs), the fault is caught:
 * the sink posts an error naming the file and what happened to it, and
 * stops; the process does not die of SIGBUS.
 *
 * Caps travel with the stream, as do stream-start, segment, tag, gap,
 * stream-group-done, EOS and custom downstream serialized events.
 *
 * Upstream elements that allocate from the sink's pool (videotestsrc,
 * decoders, videoconvert) write straight into the ring, and the sink
 * publishes their buffers without a copy. Whatever upstream keeps of the
 * pool never stops the stream: the pool keeps at most as many buffers in
 * the ring as leave room for the records that pass them, refuses a
 * configuration whose min-buffers the ring cannot hold, hands out ordinary
 * memory (which the sink copies) when only this process holds the space it
 * needs, and the sink moves kept pool buffers that nobody has mapped out
 * of the ring. A flushing seek or a state change also wakes upstream
 * threads that wait in the pool.
 *
 * By default the sink does not synchronise on the clock (sync=false): the
 * receiving #GstIvshmemSrc timestamps and paces the stream. The sink
 * carries its time for it: before a buffer, a TIME record whenever its
 * base time, clock or upstream latency changed, and at every buffer and
 * heartbeat a sample of its pipeline clock against CLOCK_MONOTONIC in the
 * region's header (PROTOCOL.md, section 6a). A live reader that comes
 * more than 2 s into a live stream starts at its live edge rather than
 * with what the sink kept for a first reader.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 videotestsrc ! video/x-raw,format=I420,width=640,height=480 ! \
 *     ivshmemsink device=/dev/shm/ivshmem size=67108864
 * ]| Streams a test video into /dev/shm/ivshmem, creating a 64 MiB region if
 * it does not exist. Give the same file to QEMU with
 * `-object memory-backend-file,id=hm,share=on,mem-path=/dev/shm/ivshmem,size=64M
 * -device ivshmem-plain,memdev=hm` and read it in the guest with ivshmemsrc.
 * |[
 * gst-launch-1.0 audiotestsrc is-live=true ! ivshmemsink
 * ]| Inside a guest: streams audio into the first IVSHMEM device.
 *
 * Since: 0.1
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstivshmemsink.h"
#include "gstivshmemelements.h"
#include "gstivshmempool.h"
#include "gstivshmemutils.h"
#include "ivshmem-clock.h"
#include "ivshmem-copy.h"

#include "ivshmem-inspect.h"
#include "ivshmem-os.h"

#include <gst/video/video.h>

#include <string.h>

GST_DEBUG_CATEGORY_STATIC (gst_ivshmem_sink_debug);
#define GST_CAT_DEFAULT gst_ivshmem_sink_debug

#define DEFAULT_DEVICE NULL
#define DEFAULT_SIZE 0

#define DEFAULT_MAX_POLL_INTERVAL GST_IVSHMEM_DEFAULT_MAX_POLL_INTERVAL
#define DEFAULT_POLICY GST_IVSHMEM_SINK_POLICY_LOSSLESS

typedef enum
{
  GST_IVSHMEM_SINK_POLICY_LOSSLESS,
  GST_IVSHMEM_SINK_POLICY_LEAKY,
} GstIvshmemSinkPolicy;

/**
 * GstIvshmemSinkPolicy:
 *
 * What #GstIvshmemSink:policy does when the ring is full.
 *
 * Since: 0.1
 */
#define GST_TYPE_IVSHMEM_SINK_POLICY (gst_ivshmem_sink_policy_get_type ())
static GType
gst_ivshmem_sink_policy_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_IVSHMEM_SINK_POLICY_LOSSLESS, "Wait for the slowest live reader; "
          "keep everything until a first reader attaches", "lossless"},
    {GST_IVSHMEM_SINK_POLICY_LEAKY, "Never wait: drop readers that fall "
          "behind (they skip ahead and report the loss)", "leaky"},
    {0, NULL, NULL}
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstIvshmemSinkPolicy", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

enum
{
  PROP_0,
  PROP_DEVICE,
  PROP_SIZE,
  PROP_MAX_POLL_INTERVAL,
  PROP_BAR_MAPPING,
  PROP_STATS,
  PROP_POLICY,
};

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
  gint taken_over;              /* atomic: the error was posted */
  gint region_lost;             /* atomic: the region's file shrank (or
                                 * lost pages) and the error was posted */

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

/* Before a buffer the clock area gets a new sample only if its last one is
 * this old (PROTOCOL.md, section 6a): a stream of up to 1000 buffers/s
 * gets one before every buffer, a faster one one per millisecond. */
#define SAMPLE_INTERVAL_NS (1000 * 1000)

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

/* The region's file shrank or lost its pages under the mapping (its
 * guard caught the fault): posts the error once, TRUE: stop. */
#define gst_ivshmem_sink_lost(self) \
  gst_ivshmem_region_lost (GST_ELEMENT (self), (self)->producer->region, \
      &(self)->region_lost)

#define gst_ivshmem_sink_parent_class parent_class
G_DEFINE_TYPE (GstIvshmemSink, gst_ivshmem_sink, GST_TYPE_BASE_SINK);
GST_ELEMENT_REGISTER_DEFINE_WITH_CODE (ivshmemsink, "ivshmemsink",
    GST_RANK_NONE, GST_TYPE_IVSHMEM_SINK,
    GST_DEBUG_CATEGORY_INIT (gst_ivshmem_sink_debug, "ivshmemsink", 0,
        "IVSHMEM sink"));

static void gst_ivshmem_sink_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec);
static void gst_ivshmem_sink_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec);
static void gst_ivshmem_sink_finalize (GObject * object);
static gboolean gst_ivshmem_sink_set_clock (GstElement * element,
    GstClock * clock);
static gboolean gst_ivshmem_sink_start (GstBaseSink * bsink);
static gboolean gst_ivshmem_sink_stop (GstBaseSink * bsink);
static gboolean gst_ivshmem_sink_unlock (GstBaseSink * bsink);
static gboolean gst_ivshmem_sink_unlock_stop (GstBaseSink * bsink);
static gboolean gst_ivshmem_sink_set_caps (GstBaseSink * bsink, GstCaps * caps);
static gboolean gst_ivshmem_sink_event (GstBaseSink * bsink, GstEvent * event);
static GstFlowReturn gst_ivshmem_sink_render (GstBaseSink * bsink,
    GstBuffer * buffer);
static gboolean gst_ivshmem_sink_propose_allocation (GstBaseSink * bsink,
    GstQuery * query);

static void
gst_ivshmem_sink_class_init (GstIvshmemSinkClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseSinkClass *bsink_class = GST_BASE_SINK_CLASS (klass);

  gobject_class->set_property = gst_ivshmem_sink_set_property;
  gobject_class->get_property = gst_ivshmem_sink_get_property;
  gobject_class->finalize = gst_ivshmem_sink_finalize;

  /* the enum types of the properties belong to the documented API */
  gst_type_mark_as_plugin_api (GST_TYPE_IVSHMEM_SINK_POLICY, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_IVSHMEM_BAR_MAPPING, 0);

  /**
   * GstIvshmemSink:device:
   *
   * The region to write to. A path (starting with `/` or `.`) is a host
   * file, usually the `/dev/shm/NAME` that QEMU's memory-backend-file
   * shares. A PCI address such as `0000:00:03.0` is an IVSHMEM device of
   * this guest. Empty: the first IVSHMEM device of this guest.
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_DEVICE,
      g_param_spec_string ("device", "Device",
          "Host file path (/dev/shm/NAME), guest PCI address "
          "(0000:00:03.0), or empty for the guest's first IVSHMEM device",
          DEFAULT_DEVICE, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  /**
   * GstIvshmemSink:size:
   *
   * When #GstIvshmemSink:device is a host path that does not exist, create
   * it with this many bytes. It must be a power of two, since QEMU refuses
   * any other ivshmem size. 0: the file must exist. An existing file keeps
   * its size.
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_SIZE,
      g_param_spec_uint64 ("size", "Size",
          "Create a missing host file with this size in bytes (a power of "
          "two); 0: the file must exist", 0, G_MAXUINT64, DEFAULT_SIZE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  /**
   * GstIvshmemSink:max-poll-interval:
   *
   * How long the sink sleeps at most between looks at the ring while it
   * is full and a reader runs in another VM, which cannot wake it. Readers
   * on the same kernel wake it at once with a futex. Smaller: lower
   * latency, more CPU.
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_MAX_POLL_INTERVAL,
      g_param_spec_uint64 ("max-poll-interval", "Max poll interval",
          "Longest sleep (ns) between looks at a full ring when a reader is "
          "in another VM and cannot wake the sink", 1000, G_MAXUINT64,
          DEFAULT_MAX_POLL_INTERVAL,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstIvshmemSink:policy:
   *
   * `lossless` (the default): when the ring is full the sink waits for the
   * slowest live reader, and it keeps everything until a first reader has
   * attached (also at EOS), so nothing is lost. `leaky`: the sink never
   * waits for readers; when the ring is full it drops the readers that
   * hold back the space, slowest first. A dropped reader joins again at
   * the live edge, pushes a GAP event over what it missed, and posts a
   * warning and a QoS message; it never outputs a torn or overwritten
   * buffer (it copies: no zero-copy reads from a leaky producer). In both
   * policies a reader whose lease expires (its process died or froze for
   * 3 s) is dropped.
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_POLICY,
      g_param_spec_enum ("policy", "Policy",
          "lossless: wait for the slowest reader; leaky: never wait, drop "
          "readers that fall behind", GST_TYPE_IVSHMEM_SINK_POLICY,
          DEFAULT_POLICY, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  /**
   * GstIvshmemSink:stats:
   *
   * A snapshot of the sink's counters: `buffers`, `bytes`, `records` (with
   * caps and events), `zero-copy-buffers` (published in place from the
   * sink's pool), `copied-buffers`, `pool-system-buffers` (buffers the pool
   * handed out in ordinary memory because its own buffers held the ring),
   * `pool-buffers-moved` (pool buffers kept upstream that the sink moved
   * out of the ring), `full-waits` (times the ring was full:
   * overruns of the readers), `readers` (active now), `readers-evicted`
   * (leases that expired), `readers-dropped` (readers a leaky sink dropped
   * because they fell behind), `invalid-slots` (reader slots holding invalid
   * values, evicted), `sticky-overflows`, `early-wraps` (records written
   * at the ring's start because the ring was empty: the cache-hot ring,
   * PROTOCOL.md section 11), `write-position` and `session`.
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "Counters of the sink (buffers, bytes, zero-copy, copied, pool "
          "buffers in ordinary memory or moved out of the ring, full waits, "
          "readers, evictions, invalid reader slots)", GST_TYPE_STRUCTURE,
          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * GstIvshmemSink:bar-mapping:
   *
   * In a guest: how BAR2 is mapped. `resource` (resource2) is uncached:
   * every access goes to memory. `resource-wc` (resource2_wc) combines
   * writes into bursts, which makes a producer much faster; reads stay
   * uncached. `auto` takes resource2_wc where the kernel offers it. No
   * sysfs mapping is cached; under QEMU's TCG the choice makes no
   * difference, under KVM it does. Ignored for host files. In a Windows
   * guest it picks the IVSHMEM driver's cache mode: `auto` maps cached
   * (fast to read and to write on every host), `resource` uncached,
   * `resource-wc` write-combined.
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_BAR_MAPPING,
      g_param_spec_enum ("bar-mapping", "BAR mapping",
          "In a guest: map BAR2 through resource2 (uncached) or resource2_wc "
          "(write-combining); on Windows, the driver's cache mode (auto: "
          "cached)", GST_TYPE_IVSHMEM_BAR_MAPPING,
          IVSHM_BAR_MAPPING_AUTO, G_PARAM_READWRITE |
          G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_set_static_metadata (element_class,
      "IVSHMEM sink", "Sink",
      "Writes media into IVSHMEM shared memory, for a QEMU guest, the host "
      "or another VM to read with ivshmemsrc", "gst-ivshmem developers");

  bsink_class->start = GST_DEBUG_FUNCPTR (gst_ivshmem_sink_start);
  bsink_class->stop = GST_DEBUG_FUNCPTR (gst_ivshmem_sink_stop);
  bsink_class->unlock = GST_DEBUG_FUNCPTR (gst_ivshmem_sink_unlock);
  bsink_class->unlock_stop = GST_DEBUG_FUNCPTR (gst_ivshmem_sink_unlock_stop);
  bsink_class->set_caps = GST_DEBUG_FUNCPTR (gst_ivshmem_sink_set_caps);
  bsink_class->event = GST_DEBUG_FUNCPTR (gst_ivshmem_sink_event);
  bsink_class->render = GST_DEBUG_FUNCPTR (gst_ivshmem_sink_render);
  element_class->set_clock = GST_DEBUG_FUNCPTR (gst_ivshmem_sink_set_clock);
  bsink_class->propose_allocation =
      GST_DEBUG_FUNCPTR (gst_ivshmem_sink_propose_allocation);
}

static void
gst_ivshmem_sink_init (GstIvshmemSink * self)
{
  self->device = g_strdup (DEFAULT_DEVICE);
  self->size = DEFAULT_SIZE;
  self->max_poll_interval = DEFAULT_MAX_POLL_INTERVAL;
  self->policy = DEFAULT_POLICY;
  ivshm_waiter_init (&self->waiter);
  g_mutex_init (&self->time_lock);
  gst_base_sink_set_sync (GST_BASE_SINK (self), FALSE);
}

static void
gst_ivshmem_sink_finalize (GObject * object)
{
  GstIvshmemSink *self = GST_IVSHMEM_SINK (object);

  g_free (self->device);
  g_free (self->region_name);
  gst_clear_object (&self->pool);
  gst_clear_object (&self->time_clock);
  g_mutex_clear (&self->time_lock);

  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static gboolean
gst_ivshmem_sink_is_open (GstIvshmemSink * self)
{
  return self->producer != NULL;
}

static void
gst_ivshmem_sink_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstIvshmemSink *self = GST_IVSHMEM_SINK (object);

  GST_OBJECT_LOCK (self);
  if (gst_ivshmem_sink_is_open (self) &&
      (prop_id == PROP_DEVICE || prop_id == PROP_SIZE ||
          prop_id == PROP_BAR_MAPPING || prop_id == PROP_POLICY)) {
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
    case PROP_SIZE:
      self->size = g_value_get_uint64 (value);
      break;
    case PROP_MAX_POLL_INTERVAL:
      self->max_poll_interval = g_value_get_uint64 (value);
      break;
    case PROP_BAR_MAPPING:
      self->bar_mapping = g_value_get_enum (value);
      break;
    case PROP_POLICY:
      self->policy = g_value_get_enum (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static GstStructure *
gst_ivshmem_sink_get_stats (GstIvshmemSink * self)
{
  GstIvshmemProducer *p = NULL;
  IvshmWriterStats ws = { 0 };
  guint64 pos = 0, session = 0, zero_copy, copied, moved, system = 0;
  guint readers = 0;

  GST_OBJECT_LOCK (self);
  if (self->producer)
    p = gst_ivshmem_producer_ref (self->producer);
  if (self->pool)
    system = gst_ivshmem_buffer_pool_system_buffers (self->pool);
  zero_copy = (gsize) g_atomic_pointer_get (&self->zero_copy);
  copied = (gsize) g_atomic_pointer_get (&self->copied);
  moved = (gsize) g_atomic_pointer_get (&self->moved);
  GST_OBJECT_UNLOCK (self);

  if (p) {
    g_mutex_lock (&p->lock);
    ivshm_writer_get_stats (p->writer, &ws);
    readers = ivshm_writer_count_readers (p->writer);
    pos = ivshm_writer_position (p->writer);
    session = ivshm_writer_session (p->writer);
    g_mutex_unlock (&p->lock);
    gst_ivshmem_producer_unref (p);
  }
  return gst_structure_new ("GstIvshmemSinkStats",
      "buffers", G_TYPE_UINT64, ws.buffers,
      "bytes", G_TYPE_UINT64, ws.bytes,
      "records", G_TYPE_UINT64, ws.records,
      "zero-copy-buffers", G_TYPE_UINT64, zero_copy,
      "copied-buffers", G_TYPE_UINT64, copied,
      "pool-system-buffers", G_TYPE_UINT64, system,
      "pool-buffers-moved", G_TYPE_UINT64, moved,
      "full-waits", G_TYPE_UINT64, ws.full_waits,
      "readers", G_TYPE_UINT, readers,
      "readers-evicted", G_TYPE_UINT64, ws.readers_evicted,
      "readers-dropped", G_TYPE_UINT64, ws.readers_lapped,
      "invalid-slots", G_TYPE_UINT64, ws.invalid_slots,
      "sticky-overflows", G_TYPE_UINT64, ws.sticky_overflows,
      "early-wraps", G_TYPE_UINT64, ws.early_wraps,
      "write-position", G_TYPE_UINT64, pos,
      "session", G_TYPE_UINT64, session, NULL);
}

static void
gst_ivshmem_sink_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstIvshmemSink *self = GST_IVSHMEM_SINK (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_DEVICE:
      g_value_set_string (value, self->device);
      break;
    case PROP_SIZE:
      g_value_set_uint64 (value, self->size);
      break;
    case PROP_MAX_POLL_INTERVAL:
      g_value_set_uint64 (value, self->max_poll_interval);
      break;
    case PROP_BAR_MAPPING:
      g_value_set_enum (value, self->bar_mapping);
      break;
    case PROP_POLICY:
      g_value_set_enum (value, self->policy);
      break;
    case PROP_STATS:
      GST_OBJECT_UNLOCK (self);
      g_value_take_boxed (value, gst_ivshmem_sink_get_stats (self));
      GST_OBJECT_LOCK (self);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

/* Another producer owns the region now: this one must stop. Posted once,
 * from whichever thread notices first. */
static void
gst_ivshmem_sink_post_taken_over (GstIvshmemSink * self)
{
  if (!g_atomic_int_compare_and_exchange (&self->taken_over, 0, 1))
    return;
  GST_ELEMENT_ERROR (self, RESOURCE, BUSY,
      ("Another producer took over the IVSHMEM region %s while this "
          "pipeline was stalled (a paused VM or a stopped process?).",
          self->region_name),
      ("This sink's heartbeat stopped for longer than the takeover wait, "
          "so the other producer started a new session; this sink wrote "
          "nothing into it. Its readers follow the new producer. Stop one "
          "of the two producers, or give each a region of its own."));
}

/* how long a lossless sink waits on one reader before it names it */
#define HOLD_WARN_NS (3 * GST_SECOND)
/* a wait that slept this recently is still going on */
#define HOLD_WAITING_NS (250 * GST_MSECOND)

/* The live reader of this session that lags most: the one the sink waits
 * for. Returns its slot or -1; *pid, *local: its pid field, and whether it
 * runs on this kernel (else the pid is another VM's). */
static gint
gst_ivshmem_sink_find_holder (GstIvshmemSink * self, guint64 session,
    guint64 * pid, gboolean * local)
{
  GstIvshmemProducer *p = self->producer;
  IvshmInspection *insp = g_new0 (IvshmInspection, 1);
  guint64 lag, most = 0;
  gint holder = -1;
  guint i;

  ivshm_inspect (ivshm_region_data (p->region), ivshm_region_size (p->region),
      insp);
  if (insp->status == IVSHM_OK) {
    for (i = 0; i < IVSHM_MAX_READERS; i++) {
      const IvshmSlotCopy *s = &insp->slots[i];

      if (s->state != IVSHM_SLOT_ACTIVE || s->session_id != session ||
          !ivshm_inspect_slot_lag (insp, i, &lag) || lag < most)
        continue;
      most = lag;
      holder = (gint) i;
      *pid = s->pid;
      *local = s->kernel_id != 0 && s->kernel_id == ivshm_kernel_id ();
    }
  }
  ivshm_inspection_clear (insp);
  g_free (insp);
  return holder;
}

/* Heartbeat thread: has the sink waited on one reader for long (a viewer
 * paused, a reader stuck downstream)? Name it once, and say when the
 * stream moves again. A reader that keeps renewing its lease is waited
 * for as long as it takes (lossless); the application may want to know. */
static void
gst_ivshmem_sink_watch_hold (GstIvshmemSink * self)
{
  GstIvshmemProducer *p = self->producer;
  guint64 now = ivshm_now_ns (), pos, session, waited, pid = 0;
  gboolean blocked, local = FALSE;
  gchar *who = self->hold_who;

  if (!g_mutex_trylock (&p->lock))
    return;                     /* busy writing: not held back */
  waited = p->waited_ns;
  pos = ivshm_writer_position (p->writer);
  session = ivshm_writer_session (p->writer);
  g_mutex_unlock (&p->lock);

  blocked = waited != 0 && now - waited < HOLD_WAITING_NS &&
      pos == self->hold_pos;
  if (!blocked) {
    if (self->hold_slot >= 0)
      GST_ELEMENT_INFO (self, RESOURCE, BUSY,
          ("The reader in slot %d moved again: the sink waited %.1f s for "
              "it.", self->hold_slot, (now - self->hold_since_ns) / 1e9),
          ("The reader in slot %d (%s) moved again after %.1f s: the "
              "IVSHMEM ring of %s has room again.", self->hold_slot,
              self->hold_who, (now - self->hold_since_ns) / 1e9,
              self->region_name));
    self->hold_pos = pos;
    self->hold_since_ns = now;
    self->hold_slot = -1;
    return;
  }
  if (self->hold_slot != -1 || now - self->hold_since_ns < HOLD_WARN_NS)
    return;
  self->hold_slot = gst_ivshmem_sink_find_holder (self, session, &pid, &local);
  if (self->hold_slot < 0) {
    self->hold_slot = -2;       /* waiting for a first reader, say */
    return;
  }
  if (local)
    g_snprintf (who, sizeof self->hold_who, "pid %" G_GUINT64_FORMAT " on "
        "this machine", pid);
  else
    g_snprintf (who, sizeof self->hold_who, "in another VM or kernel, pid %"
        G_GUINT64_FORMAT " there", pid);
  GST_ELEMENT_WARNING (self, RESOURCE, BUSY,
      ("The sink has waited %.1f s for the reader in slot %d (%s): it "
          "keeps its lease but does not read.",
          (now - self->hold_since_ns) / 1e9, self->hold_slot, who),
      ("The sink's policy is lossless: it waits for its slowest live "
          "reader, and that reader holds the ring of %s full (a paused "
          "pipeline, a blocked sink, a reader stuck downstream), which "
          "holds back every other reader too. Look at it with ivshmem-info "
          "%s; policy=leaky would drop it instead.", self->region_name,
          self->region_name));
}

/* One sample of the clock `epoch` into the clock area: the pipeline clock
 * read between two readings of CLOCK_MONOTONIC. Thread-safe. */
static void
gst_ivshmem_sink_sample_clock (IvshmWriter * writer, GstClock * clock,
    guint64 epoch)
{
  guint64 m1, m2;
  GstClockTime c;

  m1 = ivshm_now_ns ();
  c = gst_clock_get_time (clock);
  m2 = ivshm_now_ns ();
  if (!GST_CLOCK_TIME_IS_VALID (c) || m2 < m1)
    return;
  ivshm_writer_publish_clock (writer, epoch, c, m1 + (m2 - m1) / 2,
      (m2 - m1 + 1) / 2);
}

/* The clock the sink samples now, or NULL; its epoch in *epoch. */
static GstClock *
gst_ivshmem_sink_ref_time_clock (GstIvshmemSink * self, guint64 * epoch)
{
  GstClock *clock = NULL;

  g_mutex_lock (&self->time_lock);
  if (self->time_clock)
    clock = gst_object_ref (self->time_clock);
  *epoch = self->time_epoch;
  g_mutex_unlock (&self->time_lock);
  return clock;
}

/* The pipeline gives the sink its clock (or takes it, NULL): the next
 * buffer samples it whatever the interval (render compares it with the
 * clock sampled so far, as before every sample). */
static gboolean
gst_ivshmem_sink_set_clock (GstElement * element, GstClock * clock)
{
  GstIvshmemSink *self = GST_IVSHMEM_SINK (element);
  gboolean ret;

  /* first the element's clock, then the signs render looks at */
  ret = GST_ELEMENT_CLASS (parent_class)->set_clock (element, clock);
  g_atomic_int_set (&self->has_clock, clock != NULL);
  g_atomic_int_inc (&self->clock_gen);
  return ret;
}

static void
heartbeat_tick (void *data)
{
  GstIvshmemSink *self = data;
  /* set before the ticker starts, cleared after it stops */
  IvshmWriter *writer = self->producer->writer;
  GstClock *clock;
  guint64 epoch;

  /* a region that shrank under us reads as zeros: no more ticks (and a
   * sink that waits may touch nothing past the new end: look at the
   * file's size) */
  if (gst_ivshmem_region_check (GST_ELEMENT (self), self->producer->region,
          &self->region_lost))
    return;
  /* heartbeat and lease reaping; thread-safe, needs no lock */
  ivshm_writer_tick (writer);
  /* the clock goes on while no buffer flows (a paused producer) */
  clock = gst_ivshmem_sink_ref_time_clock (self, &epoch);
  if (clock) {
    gst_ivshmem_sink_sample_clock (writer, clock, epoch);
    gst_object_unref (clock);
  }
  if (ivshm_writer_taken_over (writer))
    gst_ivshmem_sink_post_taken_over (self);
  else
    gst_ivshmem_sink_watch_hold (self);
}

/* ivshm_writer_new() is about to wait for the lease of a producer that
 * still owns the region */
static void
gst_ivshmem_sink_takeover_wait (void *data, uint64_t pid, uint64_t wait_ns)
{
  GstIvshmemSink *self = data;

  GST_INFO_OBJECT (self, "waiting up to %" GST_TIME_FORMAT " for the "
      "previous producer's lease to expire", GST_TIME_ARGS (wait_ns));
  /* a process id is 32 bits on every system a producer runs on (Linux's
   * are at most 2^22): anything else was not written by a producer */
  if (pid == 0 || pid > G_MAXUINT32) {
    GST_ELEMENT_INFO (self, RESOURCE, BUSY,
        ("The region's owner field does not name a producer; waiting "
            "before taking the region over."),
        ("Its owner field is set, but its producer pid field holds %"
            G_GUINT64_FORMAT " (0x%" G_GINT64_MODIFIER "x), which no "
            "process has: foreign bytes, a damaged region, or a peer that "
            "wrote over it. If its heartbeat does not move within %"
            GST_TIME_FORMAT ", this sink takes over.", pid, pid,
            GST_TIME_ARGS (wait_ns)));
    return;
  }
  GST_ELEMENT_INFO (self, RESOURCE, BUSY,
      ("Waiting for the previous producer's lease to expire."),
      ("Another producer (pid %" G_GUINT64_FORMAT ", maybe in another VM) "
          "still owns the region; if its heartbeat does not move within %"
          GST_TIME_FORMAT ", this sink takes over.", pid,
          GST_TIME_ARGS (wait_ns)));
}

static gboolean
gst_ivshmem_sink_start (GstBaseSink * bsink)
{
  GstIvshmemSink *self = GST_IVSHMEM_SINK (bsink);
  IvshmRegionOptions opts = { 0 };
  IvshmWriterConfig cfg = { 0 };
  IvshmError err = { 0 };
  IvshmRegion *region = NULL;
  IvshmWriter *writer = NULL;
  gchar *device;

  GST_OBJECT_LOCK (self);
  device = g_strdup (self->device);
  opts.bar_mapping = self->bar_mapping;
  cfg.leaky = self->policy == GST_IVSHMEM_SINK_POLICY_LEAKY;
  opts.create_size = self->size;
  GST_OBJECT_UNLOCK (self);
  cfg.takeover_wait_cb = gst_ivshmem_sink_takeover_wait;
  cfg.takeover_wait_data = self;

  if (ivshm_region_open (device, &opts, &region, &err) != IVSHM_OK)
    goto open_failed;
  if (ivshm_writer_new (ivshm_region_data (region),
          ivshm_region_size (region), &cfg, &writer, &err) != IVSHM_OK)
    goto init_failed;

  GST_INFO_OBJECT (self, "writing to %s %s%s(%" G_GUINT64_FORMAT " bytes, "
      "largest buffer %" G_GUINT64_FORMAT " bytes), session %016"
      G_GINT64_MODIFIER "x", ivshm_region_path (region),
      ivshm_region_location (region),
      ivshm_region_created (region) ? " created " : " ",
      ivshm_region_size (region), ivshm_writer_max_payload (writer),
      ivshm_writer_session (writer));

  g_atomic_pointer_set (&self->zero_copy, 0);
  g_atomic_pointer_set (&self->copied, 0);
  g_atomic_pointer_set (&self->moved, 0);
  g_atomic_int_set (&self->taken_over, 0);
  g_atomic_int_set (&self->region_lost, 0);
  self->hold_pos = 0;
  self->hold_since_ns = 0;
  self->hold_slot = -1;
  g_mutex_lock (&self->time_lock);
  gst_clear_object (&self->time_clock);
  self->time_epoch = 0;
  g_mutex_unlock (&self->time_lock);
  self->time_base = GST_CLOCK_TIME_NONE;
  self->time_latency = GST_CLOCK_TIME_NONE;
  self->time_record_epoch = 0;
  self->live_noted = FALSE;
  self->render_clock_gen = g_atomic_int_get (&self->clock_gen) - 1;
  self->render_epoch = 0;
  self->sampled_ns = 0;
  self->first_reader_settled = FALSE;
  GST_OBJECT_LOCK (self);
  g_free (self->region_name);
  self->region_name = g_strdup (ivshm_region_path (region));
  self->producer = gst_ivshmem_producer_new (region, writer);
  GST_OBJECT_UNLOCK (self);

  ivshm_writer_heartbeat (writer);
  self->heartbeat = ivshm_ticker_start (0, heartbeat_tick, self);
  if (!self->heartbeat)
    goto ticker_failed;
  g_free (device);
  return TRUE;

  /* ERRORS */
open_failed:
  {
    GST_IVSHMEM_POST_ERROR (self, &err, "open the IVSHMEM region");
    g_free (device);
    return FALSE;
  }
init_failed:
  {
    GST_IVSHMEM_POST_ERROR (self, &err, "start writing to the IVSHMEM region");
    ivshm_region_close (region);
    g_free (device);
    return FALSE;
  }
ticker_failed:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED,
        ("Could not start the heartbeat thread of the sink."),
        ("Without a heartbeat, readers would take this producer for dead "
            "after %u s and a second producer could take the region over. "
            "The process may have reached its thread limit or run out of "
            "memory: check ulimit -u and free memory.",
            GST_IVSHMEM_PRODUCER_TIMEOUT_MIN_S));
    gst_ivshmem_sink_stop (bsink);
    g_free (device);
    return FALSE;
  }
}

static gboolean
gst_ivshmem_sink_stop (GstBaseSink * bsink)
{
  GstIvshmemSink *self = GST_IVSHMEM_SINK (bsink);
  GstIvshmemProducer *producer;

  ivshm_ticker_stop (self->heartbeat);
  self->heartbeat = NULL;
  g_mutex_lock (&self->time_lock);
  gst_clear_object (&self->time_clock);
  g_mutex_unlock (&self->time_lock);

  GST_OBJECT_LOCK (self);
  producer = self->producer;
  self->producer = NULL;
  gst_clear_object (&self->pool);
  GST_OBJECT_UNLOCK (self);

  if (producer) {
    IvshmWriterStats ws;

    g_mutex_lock (&producer->lock);
    ivshm_writer_get_stats (producer->writer, &ws);
    g_mutex_unlock (&producer->lock);
    GST_INFO_OBJECT (self, "%" G_GUINT64_FORMAT " buffers published in "
        "place, %" G_GUINT64_FORMAT " copied, %" G_GUINT64_FORMAT " early "
        "wraps", (guint64) (gsize) g_atomic_pointer_get (&self->zero_copy),
        (guint64) (gsize) g_atomic_pointer_get (&self->copied), ws.early_wraps);
    /* pool buffers may outlive us; they keep the mapping, not the session */
    gst_ivshmem_producer_close (producer);
    gst_ivshmem_producer_unref (producer);
  }
  return TRUE;
}

/* Wakes the sink's own waits, and on a flush (pool_too) the upstream
 * threads waiting in the acquire of the pool it proposed as well. A pause
 * (PLAYING -> PAUSED also unlocks the sink) must not reach the pool: an
 * upstream streaming thread that gets FLUSHING stops for good. At PAUSED
 * -> READY the sink pad is deactivated: GstPad marks it flushing before
 * basesink calls unlock(), so the pool is woken as on a flush. basesink
 * calls stop(), which closes the producer, only at READY -> NULL (and
 * start() at NULL -> READY), not at READY: GStreamer 1.22's
 * gst_base_sink_change_state(). */
static void
gst_ivshmem_sink_set_flushing (GstIvshmemSink * self, gboolean flushing,
    gboolean pool_too)
{
  GstBufferPool *pool = NULL;

  ivshm_waiter_set_flushing (&self->waiter, flushing);
  GST_OBJECT_LOCK (self);
  if (self->pool && pool_too)
    pool = gst_object_ref (self->pool);
  GST_OBJECT_UNLOCK (self);
  if (pool) {
    /* an inactive pool hands out nothing, so nobody waits in it */
    if (gst_buffer_pool_is_active (pool))
      gst_buffer_pool_set_flushing (pool, flushing);
    gst_object_unref (pool);
  }
}

static gboolean
gst_ivshmem_sink_unlock (GstBaseSink * bsink)
{
  /* FLUSH_START marks the pad flushing before basesink unlocks us */
  gst_ivshmem_sink_set_flushing (GST_IVSHMEM_SINK (bsink), TRUE,
      GST_PAD_IS_FLUSHING (GST_BASE_SINK_PAD (bsink)));
  return TRUE;
}

static gboolean
gst_ivshmem_sink_unlock_stop (GstBaseSink * bsink)
{
  gst_ivshmem_sink_set_flushing (GST_IVSHMEM_SINK (bsink), FALSE, TRUE);
  return TRUE;
}

static guint64
gst_ivshmem_sink_max_poll (GstIvshmemSink * self)
{
  guint64 max_poll;

  GST_OBJECT_LOCK (self);
  max_poll = self->max_poll_interval;
  GST_OBJECT_UNLOCK (self);
  return max_poll;
}

/* Waiting for readers cannot help when the space is held by pool
 * buffers of this process: move those nobody has mapped out of the ring.
 * Call with p->lock held. TRUE: some were moved, try again at once. If
 * none could be moved (upstream keeps them mapped), say so once after a
 * while, and wait for upstream to let go. */
static gboolean
gst_ivshmem_sink_free_local (GstIvshmemSink * self, gint64 * held_since)
{
  GstIvshmemProducer *p = self->producer;
  guint64 oldest = 0, end = 0;
  guint n;

  if (!gst_ivshmem_producer_held_locally (p)) {
    *held_since = 0;
    return FALSE;
  }
  n = gst_ivshmem_producer_migrate (p);
  if (n > 0) {
    GST_DEBUG_OBJECT (self, "moved %u pool buffers out of the ring", n);
    g_atomic_pointer_add (&self->moved, n);
    return TRUE;
  }
  if (*held_since == 0) {
    *held_since = g_get_monotonic_time ();
  } else if (*held_since > 0 &&
      g_get_monotonic_time () - *held_since > 2 * G_USEC_PER_SEC) {
    *held_since = -1;           /* said once */
    n = gst_ivshmem_producer_pins (p, &oldest, &end);
    GST_ELEMENT_WARNING (self, RESOURCE, BUSY,
        ("Upstream keeps %u buffers of the sink's zero-copy pool mapped, "
            "which hold the IVSHMEM ring of %s: the sink waits for it to "
            "let go of one.", n, self->region_name),
        ("%" G_GUINT64_FORMAT " bytes of the ring are held by this "
            "process, not by readers. A larger region avoids the wait; an "
            "element that keeps frames mapped should ask for them in the "
            "allocation query's min-buffers, which makes the sink refuse "
            "its pool when the ring cannot hold them.", end - oldest));
  }
  return FALSE;
}

/* Reserves room for a record, waiting while the ring is full. Returns with
 * the producer lock held on GST_FLOW_OK. */
static GstFlowReturn
gst_ivshmem_sink_reserve (GstIvshmemSink * self, guint64 len, void **dst)
{
  GstIvshmemProducer *p = self->producer;
  guint64 max_poll = 0;
  IvshmBackoff backoff;
  IvshmStatus st;
  gboolean reset = TRUE;
  gint64 held_since = 0;

  g_mutex_lock (&p->lock);
  while ((st = ivshm_writer_reserve (p->writer, len, dst)) == IVSHM_AGAIN) {
    GstFlowReturn ret;

    if (gst_ivshmem_sink_lost (self))
      break;
    if (gst_ivshmem_sink_free_local (self, &held_since))
      continue;
    if (reset)
      max_poll = gst_ivshmem_sink_max_poll (self);

    if (gst_ivshmem_producer_wait (p, &self->waiter, &backoff, &reset,
            max_poll))
      continue;

    GST_DEBUG_OBJECT (self, "unlocked while waiting for room");
    g_mutex_unlock (&p->lock);
    ret = gst_base_sink_wait_preroll (GST_BASE_SINK (self));
    if (ret != GST_FLOW_OK)
      return ret;
    g_mutex_lock (&p->lock);
    reset = TRUE;
  }
  if (st == IVSHM_OK)
    return GST_FLOW_OK;
  g_mutex_unlock (&p->lock);

  /* whatever the writer made of a region that reads as zeros */
  if (gst_ivshmem_sink_lost (self))
    return GST_FLOW_ERROR;
  if (st == IVSHM_ERR_TOO_BIG)
    goto too_big;
  if (st == IVSHM_ERR_TAKEN_OVER)
    goto taken_over;
  goto failed;

  /* ERRORS */
too_big:
  {
    guint64 region_size = ivshm_region_size (p->region);
    guint64 need = ivshm_region_size_for_payload (len);

    GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT,
        ("A record of %" G_GUINT64_FORMAT " bytes can never fit in this "
            "IVSHMEM region of %" G_GUINT64_FORMAT " bytes.", len,
            region_size),
        ("The largest record this region holds is %" G_GUINT64_FORMAT
            " bytes. Use a region of at least %" G_GUINT64_FORMAT " bytes "
            "(%" G_GUINT64_FORMAT " %s, a power of two): the sink's size "
            "property for a new host file, or size= of QEMU's "
            "memory-backend-file.", ivshm_writer_max_payload (p->writer),
            need, need >= (1 << 20) ? need >> 20 : need >> 10,
            need >= (1 << 20) ? "MiB" : "KiB"));
    return GST_FLOW_ERROR;
  }
taken_over:
  {
    gst_ivshmem_sink_post_taken_over (self);
    return GST_FLOW_ERROR;
  }
failed:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE,
        ("Could not write to the IVSHMEM ring of %s: %s.",
            self->region_name, ivshm_status_string (st)),
        ("%s. Run ivshmem-info %s to see the region's state, then restart "
            "the pipeline.", ivshm_status_name (st), self->region_name));
    return GST_FLOW_ERROR;
  }
}

/* Copies a record into the ring. */
static GstFlowReturn
gst_ivshmem_sink_write (GstIvshmemSink * self, const IvshmRecordHeader * info,
    const void *payload)
{
  GstFlowReturn ret;
  void *dst;

  ret = gst_ivshmem_sink_reserve (self, info->payload_len, &dst);
  if (ret != GST_FLOW_OK)
    return ret;
  /* (non-temporal stores for a large payload: the reader is another
   * process, this one does not read it again) */
  if (info->payload_len)
    ivshm_copy (dst, payload, info->payload_len);
  ivshm_writer_commit (self->producer->writer, info);
  g_mutex_unlock (&self->producer->lock);
  if (gst_ivshmem_sink_lost (self))
    return GST_FLOW_ERROR;
  return GST_FLOW_OK;
}

/* At EOS: the stream is in the ring, but if no reader has attached yet,
 * stopping now would close the session and lose it. Wait for one, as the
 * sink waits for one when the ring is full. */
static GstFlowReturn
gst_ivshmem_sink_wait_first_reader (GstIvshmemSink * self)
{
  GstIvshmemProducer *p = self->producer;
  guint64 max_poll = gst_ivshmem_sink_max_poll (self);
  IvshmBackoff backoff;
  gboolean reset = TRUE, logged = FALSE;

  g_mutex_lock (&p->lock);
  while (!ivshm_writer_had_reader (p->writer)) {
    if (gst_ivshmem_sink_lost (self)) {
      g_mutex_unlock (&p->lock);
      return GST_FLOW_ERROR;
    }
    if (!logged) {
      GST_INFO_OBJECT (self, "EOS written; waiting for a first reader "
          "before finishing, so that the stream is not lost");
      logged = TRUE;
    }
    if (gst_ivshmem_producer_wait (p, &self->waiter, &backoff, &reset,
            max_poll))
      continue;
    /* unlocked: flushing, or PLAYING -> PAUSED. Once PLAYING again, the
     * stream still needs its first reader: wait on. */
    g_mutex_unlock (&p->lock);
    if (gst_base_sink_wait_preroll (GST_BASE_SINK (self)) != GST_FLOW_OK)
      return GST_FLOW_FLUSHING;
    g_mutex_lock (&p->lock);
    reset = TRUE;
  }
  g_mutex_unlock (&p->lock);
  return GST_FLOW_OK;
}

static gboolean
gst_ivshmem_sink_set_caps (GstBaseSink * bsink, GstCaps * caps)
{
  GstIvshmemSink *self = GST_IVSHMEM_SINK (bsink);
  IvshmRecordHeader info = { 0 };
  gchar *str;
  GstFlowReturn ret;

  str = gst_caps_to_string (caps);
  GST_DEBUG_OBJECT (self, "caps %s", str);
  info.type = IVSHM_RECORD_CAPS;
  info.pts = info.dts = info.duration = IVSHM_TIME_NONE;
  info.offset = info.offset_end = IVSHM_TIME_NONE;
  info.payload_len = strlen (str) + 1;
  ret = gst_ivshmem_sink_write (self, &info, str);
  g_free (str);

  return ret == GST_FLOW_OK;
}

static gboolean
gst_ivshmem_sink_event (GstBaseSink * bsink, GstEvent * event)
{
  GstIvshmemSink *self = GST_IVSHMEM_SINK (bsink);
  IvshmRecordHeader info;
  gchar *payload = NULL;

  if (self->producer && GST_EVENT_IS_SERIALIZED (event) &&
      gst_ivshmem_event_to_record (event, &info, &payload)) {
    GstFlowReturn ret;

    GST_DEBUG_OBJECT (self, "writing %" GST_PTR_FORMAT, event);
    info.payload_len = strlen (payload) + 1;
    ret = gst_ivshmem_sink_write (self, &info, payload);
    g_free (payload);
    if (ret == GST_FLOW_OK && GST_EVENT_TYPE (event) == GST_EVENT_EOS)
      ret = gst_ivshmem_sink_wait_first_reader (self);
    if (ret != GST_FLOW_OK) {
      GST_DEBUG_OBJECT (self, "could not write %s: %s",
          GST_EVENT_TYPE_NAME (event), gst_flow_get_name (ret));
      gst_event_unref (event);
      return FALSE;
    }
  }

  return GST_BASE_SINK_CLASS (parent_class)->event (bsink, event);
}

static void
gst_ivshmem_sink_buffer_info (GstBuffer * buffer, IvshmRecordHeader * info)
{
  memset (info, 0, sizeof *info);
  info->type = IVSHM_RECORD_BUFFER;
  info->flags = GST_BUFFER_FLAGS (buffer) & GST_IVSHMEM_BUFFER_FLAGS_MASK;
  info->payload_len = gst_buffer_get_size (buffer);
  info->pts = GST_BUFFER_PTS (buffer);
  info->dts = GST_BUFFER_DTS (buffer);
  info->duration = GST_BUFFER_DURATION (buffer);
  info->offset = GST_BUFFER_OFFSET (buffer);
  info->offset_end = GST_BUFFER_OFFSET_END (buffer);
}

/* How late, after its running time, a buffer reaches this sink at the
 * earliest: upstream's latency (a live source's capture time is the start
 * of what it captured), or the pipeline's when the sink syncs. */
static GstClockTime
gst_ivshmem_sink_upstream_latency (GstIvshmemSink * self, gboolean * is_live)
{
  GstBaseSink *bsink = GST_BASE_SINK (self);
  GstQuery *q = gst_query_new_latency ();
  GstClockTime min = 0, max, lat = 0;
  gboolean live = FALSE;

  if (gst_pad_peer_query (GST_BASE_SINK_PAD (bsink), q)) {
    gst_query_parse_latency (q, &live, &min, &max);
    if (live && GST_CLOCK_TIME_IS_VALID (min))
      lat = min;
  }
  *is_live = live;
  gst_query_unref (q);
  if (gst_base_sink_get_sync (bsink)) {
    GstClockTime pl = gst_base_sink_get_latency (bsink);

    if (GST_CLOCK_TIME_IS_VALID (pl) && pl > lat)
      lat = pl;
  }
  return lat;
}

/* Before a buffer: the clock area gets a fresh sample, and a TIME record
 * goes into the ring when the base time, the clock or the latency under
 * which this buffer is rendered differ from what the last one said. */
static GstFlowReturn
gst_ivshmem_sink_publish_time (GstIvshmemSink * self)
{
  GstElement *element = GST_ELEMENT_CAST (self);
  GstIvshmemProducer *p = self->producer;
  GstClockTime base, latency;
  IvshmRecordHeader info;
  guint64 epoch, now;
  const gchar *payload = "time;";
  GstFlowReturn ret;
  gboolean live;
  gint gen;

  /* once the writer counts a reader (or stopped keeping the stream for
   * one), it does for the rest of the session: no more asking */
  if (G_UNLIKELY (!self->first_reader_settled)) {
    g_mutex_lock (&p->lock);
    if (ivshm_writer_note_readers (p->writer)) {
      self->first_reader_settled = TRUE;
    } else if (self->live_noted &&
        ivshm_now_ns () - self->live_since >= IVSHM_LIVE_EDGE_GRACE_NS) {
      /* a live stream and no reader within the grace: one that comes now
       * starts at the live edge, so keep nothing for it (a full ring would
       * stall the live source upstream for a reader that may never come) */
      GST_INFO_OBJECT (self, "no reader in the first %" GST_TIME_FORMAT
          " of a live stream: not keeping it for a first reader",
          GST_TIME_ARGS (IVSHM_LIVE_EDGE_GRACE_NS));
      ivshm_writer_forget_first_reader (p->writer);
      self->first_reader_settled = TRUE;
    }
    g_mutex_unlock (&p->lock);
  }
  if (!g_atomic_int_get (&self->has_clock))
    return GST_FLOW_OK;         /* no clock: readers anchor on arrival */

  /* a new clock, or the last sample is SAMPLE_INTERVAL_NS old: sample */
  gen = g_atomic_int_get (&self->clock_gen);
  now = ivshm_now_ns ();
  if (gen != self->render_clock_gen || self->sampled_ns == 0 ||
      now - self->sampled_ns >= SAMPLE_INTERVAL_NS) {
    GstClock *clock = gst_element_get_clock (element);

    if (!clock)
      return GST_FLOW_OK;
    g_mutex_lock (&self->time_lock);
    if (clock != self->time_clock) {
      gst_object_replace ((GstObject **) & self->time_clock,
          GST_OBJECT (clock));
      self->time_epoch++;
    }
    epoch = self->time_epoch;
    g_mutex_unlock (&self->time_lock);
    gst_ivshmem_sink_sample_clock (p->writer, clock, epoch);
    gst_object_unref (clock);
    self->render_clock_gen = gen;
    self->render_epoch = epoch;
    self->sampled_ns = now;
  }
  epoch = self->render_epoch;

  base = gst_element_get_base_time (element);
  if (base == self->time_base && epoch == self->time_record_epoch)
    return GST_FLOW_OK;
  latency = gst_ivshmem_sink_upstream_latency (self, &live);
  if (live && !self->live_noted) {
    /* a live reader that comes later than a grace starts at the live
     * edge, not with what we keep for a first reader */
    self->live_since = ivshm_now_ns ();
    g_mutex_lock (&p->lock);
    ivshm_writer_set_live_since (p->writer, self->live_since);
    g_mutex_unlock (&p->lock);
    self->live_noted = TRUE;
  }
  GST_DEBUG_OBJECT (self, "base time %" GST_TIME_FORMAT ", clock epoch %"
      G_GUINT64_FORMAT ", upstream latency %" GST_TIME_FORMAT,
      GST_TIME_ARGS (base), epoch, GST_TIME_ARGS (latency));
  memset (&info, 0, sizeof info);
  info.type = IVSHM_RECORD_EVENT;
  info.subtype = IVSHM_EVENT_TIME;
  info.pts = base;
  info.dts = IVSHM_TIME_NONE;
  info.duration = latency;
  info.offset = epoch;
  info.offset_end = live ? 1 : 0;
  info.payload_len = strlen (payload) + 1;
  ret = gst_ivshmem_sink_write (self, &info, payload);
  if (ret == GST_FLOW_OK) {
    self->time_base = base;
    self->time_latency = latency;
    self->time_record_epoch = epoch;
  }
  return ret;
}

static GstFlowReturn
gst_ivshmem_sink_render (GstBaseSink * bsink, GstBuffer * buffer)
{
  GstIvshmemSink *self = GST_IVSHMEM_SINK (bsink);
  GstIvshmemProducer *p = self->producer;
  IvshmRecordHeader info;
  IvshmSpan span;
  GstMapInfo map;
  GstFlowReturn ret;

  ret = gst_ivshmem_sink_publish_time (self);
  if (ret != GST_FLOW_OK)
    return ret;
  gst_ivshmem_sink_buffer_info (buffer, &info);

  /* A buffer from our pool is already in the ring: publish it in place.
   * If a record was written after it was reserved, it is stale (ring
   * order is stream order) and is copied like any other buffer. */
  if (gst_ivshmem_buffer_get_span (buffer, p, &span)) {
    IvshmStatus st;

    g_mutex_lock (&p->lock);
    st = ivshm_writer_commit_span (p->writer, &span, &info);
    g_mutex_unlock (&p->lock);
    if (gst_ivshmem_sink_lost (self))
      return GST_FLOW_ERROR;
    if (st == IVSHM_ERR_TAKEN_OVER) {
      gst_ivshmem_sink_post_taken_over (self);
      return GST_FLOW_ERROR;
    }
    if (st == IVSHM_OK) {
      gst_ivshmem_buffer_mark_committed (buffer);
      g_atomic_pointer_add (&self->zero_copy, 1);
      GST_LOG_OBJECT (self, "published in place %" GST_PTR_FORMAT, buffer);
      return GST_FLOW_OK;
    }
    GST_DEBUG_OBJECT (self, "pool buffer at %" G_GUINT64_FORMAT " is %s; "
        "copying it", span.pos, ivshm_status_name (st));
  }

  if (!gst_buffer_map (buffer, &map, GST_MAP_READ))
    goto map_failed;
  GST_LOG_OBJECT (self, "copying %" GST_PTR_FORMAT, buffer);
  ret = gst_ivshmem_sink_write (self, &info, map.data);
  gst_buffer_unmap (buffer, &map);
  if (ret == GST_FLOW_OK)
    g_atomic_pointer_add (&self->copied, 1);
  return ret;

  /* ERRORS */
map_failed:
  {
    GST_ELEMENT_ERROR (self, RESOURCE, READ,
        ("Could not read a buffer from upstream to copy it into the ring."),
        ("Mapping %" GST_PTR_FORMAT " for reading failed: its memory "
            "cannot be read from the CPU (a bug, or memory of a device "
            "upstream). Put videoconvert or a download element before "
            "ivshmemsink.", buffer));
    return GST_FLOW_ERROR;
  }
}

/* Offers upstream a pool whose buffers lie in the ring, so that it writes
 * straight into shared memory. */
static gboolean
gst_ivshmem_sink_propose_allocation (GstBaseSink * bsink, GstQuery * query)
{
  GstIvshmemSink *self = GST_IVSHMEM_SINK (bsink);
  GstIvshmemProducer *producer = NULL;
  GstBufferPool *pool;
  GstStructure *config;
  GstCaps *caps;
  GstVideoInfo vinfo;
  gboolean need_pool;
  guint64 max_poll;
  guint size, capacity;

  gst_query_parse_allocation (query, &caps, &need_pool);
  gst_query_add_allocation_meta (query, GST_VIDEO_META_API_TYPE, NULL);
  if (!caps || !gst_video_info_from_caps (&vinfo, caps))
    return TRUE;                /* no fixed size to reserve */
  size = vinfo.size;

  GST_OBJECT_LOCK (self);
  if (self->producer)
    producer = gst_ivshmem_producer_ref (self->producer);
  max_poll = self->max_poll_interval;
  GST_OBJECT_UNLOCK (self);
  if (!producer)
    return TRUE;

  /* what upstream keeps must leave room for the records that pass it */
  capacity = gst_ivshmem_producer_pool_capacity (producer, size);
  if (capacity == 0) {
    GST_INFO_OBJECT (self, "%u-byte frames are too big for a zero-copy "
        "pool in this ring: they are copied", size);
    gst_ivshmem_producer_unref (producer);
    return TRUE;
  }

  pool = gst_ivshmem_buffer_pool_new (producer, max_poll);
  gst_ivshmem_producer_unref (producer);
  config = gst_buffer_pool_get_config (pool);
  gst_buffer_pool_config_set_params (config, caps, size, 0, capacity);
  gst_buffer_pool_config_add_option (config, GST_BUFFER_POOL_OPTION_VIDEO_META);
  if (!gst_buffer_pool_set_config (pool, config)) {
    gst_object_unref (pool);
    return TRUE;
  }
  gst_query_add_allocation_pool (query, pool, size, 0, capacity);
  GST_OBJECT_LOCK (self);
  gst_object_replace ((GstObject **) & self->pool, GST_OBJECT (pool));
  GST_OBJECT_UNLOCK (self);
  gst_object_unref (pool);
  GST_DEBUG_OBJECT (self, "proposed a pool of %u-byte buffers in the ring, "
      "at most %u at once", size, capacity);
  return TRUE;
}
