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

#include "gstivshmemsinkpriv.h"
#include "gstivshmemelements.h"

#include <string.h>

GST_DEBUG_CATEGORY (gst_ivshmem_sink_debug);
#define GST_CAT_DEFAULT gst_ivshmem_sink_debug

#define DEFAULT_DEVICE NULL
#define DEFAULT_SIZE 0

#define DEFAULT_MAX_POLL_INTERVAL GST_IVSHMEM_DEFAULT_MAX_POLL_INTERVAL
#define DEFAULT_POLICY GST_IVSHMEM_SINK_POLICY_LOSSLESS

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

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

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
static gboolean gst_ivshmem_sink_set_caps (GstBaseSink * bsink, GstCaps * caps);
static gboolean gst_ivshmem_sink_event (GstBaseSink * bsink, GstEvent * event);

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
   * at the ring's start, which the readers had released: the cache-hot ring,
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
