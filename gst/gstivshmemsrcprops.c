/* gst-ivshmem: ivshmemsrc, its properties
 * SPDX-License-Identifier: MIT
 *
 * The properties of ivshmemsrc: their enum types, their specs (how and
 * where the source reads; what it does with the stream and reports) and
 * their get and set.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstivshmemsrcpriv.h"
#include "gstivshmemutils.h"

#define GST_CAT_DEFAULT gst_ivshmem_src_debug

/**
 * GstIvshmemSrcEvicted:
 *
 * What #GstIvshmemSrc does when the producer dropped it
 * (#GstIvshmemSrc:on-evicted).
 *
 * Since: 0.1
 */
GType
gst_ivshmem_src_evicted_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_IVSHMEM_SRC_EVICTED_REJOIN, "Join the stream again at the live "
          "edge, with a warning, a DISCONT and the loss counted", "rejoin"},
    {GST_IVSHMEM_SRC_EVICTED_ERROR, "Post an error", "error"},
    {0, NULL, NULL}
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstIvshmemSrcEvicted", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

/**
 * GstIvshmemSrcRestart:
 *
 * What #GstIvshmemSrc does when the producer restarts
 * (#GstIvshmemSrc:on-producer-restart).
 *
 * Since: 0.1
 */
GType
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

/**
 * GstIvshmemSrcZeroCopy:
 *
 * Which buffers #GstIvshmemSrc outputs in place
 * (#GstIvshmemSrc:zero-copy).
 *
 * Since: 0.1
 */
GType
gst_ivshmem_src_zero_copy_get_type (void)
{
  static GType type = 0;
  /* "true" and "false", the values of the old boolean property, are kept
   * as aliases of on and off (gst-launch and gst_util_set_object_arg()
   * look enum values up by nick) */
  static const GEnumValue values[] = {
    {GST_IVSHMEM_SRC_ZERO_COPY_AUTO, "Raw audio and video (audio/x-raw, "
          "video/x-raw) in place, everything else copied", "auto"},
    {GST_IVSHMEM_SRC_ZERO_COPY_ON, "Every buffer in place (trusted "
          "producers only)", "on"},
    {GST_IVSHMEM_SRC_ZERO_COPY_OFF, "Every buffer copied", "off"},
    {GST_IVSHMEM_SRC_ZERO_COPY_ON, "Old name of on", "true"},
    {GST_IVSHMEM_SRC_ZERO_COPY_OFF, "Old name of off", "false"},
    {0, NULL, NULL}
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstIvshmemSrcZeroCopy", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

/* how and where the source reads */
void
gst_ivshmem_src_install_reading_properties (GObjectClass * gobject_class)
{
  /**
   * GstIvshmemSrc:device:
   *
   * The region to read from. A path (starting with `/` or `.`) is a host
   * file, usually the `/dev/shm/NAME` that QEMU's memory-backend-file
   * shares; it must exist. A PCI address such as `0000:00:03.0` is an
   * IVSHMEM device of this guest. Empty: the first IVSHMEM device of this
   * guest.
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
   * GstIvshmemSrc:is-live:
   *
   * Act as a live source that maps the producer's running time onto this
   * pipeline's (true), or forward the producer's segments and timestamps
   * unchanged (false).
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_IS_LIVE,
      g_param_spec_boolean ("is-live", "Is live",
          "Act as a live source, stamping buffers with the producer's "
          "presentation moments on this pipeline's clock (true), or forward "
          "the producer's segments and timestamps (false)", DEFAULT_IS_LIVE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  /**
   * GstIvshmemSrc:latency:
   *
   * The latency reported in live mode, in nanoseconds, on top of the
   * producer's upstream latency: how much later than the producer's
   * pipeline this one presents a buffer, for the transport and this
   * pipeline's scheduling.
   *
   * Since: 0.1
   */
  /**
   * GstIvshmemSrc:provide-clock:
   *
   * Offer the pipeline a clock that follows the producer's clock (live
   * mode): it runs at the producer's rate, steered every half second. A
   * pipeline picks a source's clock over its sinks', so an audio sink then
   * follows the producer (it resamples or skews to it) instead of its own
   * device: for hours of a guest's audio without the delay creeping. Set
   * it on one source of a pipeline.
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_PROVIDE_CLOCK,
      g_param_spec_boolean ("provide-clock", "Provide clock",
          "Offer a clock that follows the producer's clock (live mode)",
          FALSE, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

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
   *
   * Since: 0.1
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
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_BUSY_POLL,
      g_param_spec_uint64 ("busy-poll", "Busy poll",
          "After each record, poll the ring this long (ns) before sleeping: "
          "lower latency for a CPU core's worth of polling (0: sleep after "
          "a short spin)", 0, G_MAXUINT64, DEFAULT_BUSY_POLL,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstIvshmemSrc:scheduler-slice:
   *
   * The time slice (ns) the streaming thread asks the Linux scheduler for
   * (sched_setattr(), Linux 6.12 and later; the kernel grants 100000 to
   * 100000000). A thread with a short slice that a record wakes preempts
   * the task on its CPU, often the producer that woke it, instead of
   * waiting for that task to block: the wake-up's latency, not polling.
   * The thread gets no more CPU time, only shorter turns when it competes
   * for a CPU. The thread gets its slice back when the source stops;
   * threads started from it meanwhile (a decoder's workers) inherit it. 0:
   * leave the thread as it is (also where there is no such slice: older
   * kernels, real-time threads, Windows).
   */
  g_object_class_install_property (gobject_class, PROP_SCHEDULER_SLICE,
      g_param_spec_uint64 ("scheduler-slice", "Scheduler slice",
          "Time slice (ns) the streaming thread asks the Linux scheduler for: "
          "short lets it run as soon as a record wakes it (0: leave the "
          "thread's scheduling alone)", 0, 100 * GST_MSECOND,
          DEFAULT_SCHEDULER_SLICE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
}

/* what it does with the stream, and what it reports */
void
gst_ivshmem_src_install_stream_properties (GObjectClass * gobject_class)
{
  /**
   * GstIvshmemSrc:on-producer-restart:
   *
   * What to do when the producer restarts (a new session) or goes away
   * without EOS (it closed its session): follow the next producer in the
   * same pipeline (stream-start, caps and segment are sent again and the
   * next buffer is marked DISCONT), end with EOS, or post an error. With
   * follow, a producer whose heartbeat stops is waited for (a warning says
   * so) and followed again when it moves; with eos or error, its silence
   * ends the stream.
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_ON_PRODUCER_RESTART,
      g_param_spec_enum ("on-producer-restart", "On producer restart",
          "What to do when the producer restarts or goes away without EOS",
          GST_TYPE_IVSHMEM_SRC_RESTART, DEFAULT_ON_PRODUCER_RESTART,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstIvshmemSrc:on-evicted:
   *
   * What to do when a lossless producer dropped this reader because its
   * lease (3 s) expired: this process or its VM stood still (SIGSTOP, a
   * paused or snapshotted VM, a debugger). A producer cannot tell a frozen
   * reader from a dead one, so it goes on without it, and what it wrote
   * meanwhile is lost to this reader either way. `rejoin` (the default)
   * joins the stream again at the live edge in the same pipeline: a
   * warning says how long the reader was frozen and how many bytes it
   * lost, the next buffer is marked DISCONT, a GAP covers the lost time,
   * and #GstIvshmemSrc:stats counts it in `drops` and `lost-bytes`, as
   * for a reader a leaky producer lapped. `error` ends the pipeline with
   * an error instead, for applications that must never see a hole in a
   * lossless stream. A reader of a leaky producer always joins again.
   * Buffers handed out in place that were still in the ring are reported
   * as before (`held-buffers-lost`).
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_ON_EVICTED,
      g_param_spec_enum ("on-evicted", "On evicted",
          "What to do when a lossless producer dropped this reader (frozen "
          "past its lease): join again at the live edge, or post an error",
          GST_TYPE_IVSHMEM_SRC_EVICTED, DEFAULT_ON_EVICTED,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstIvshmemSrc:stats:
   *
   * A snapshot of the source's counters: `buffers`, `bytes`,
   * `zero-copy-buffers`, `copied-buffers`, `invalid-records` (records from
   * the producer that broke the protocol and were skipped), `reconnects`
   * (producer restarts followed), `drops` and `lost-bytes` (times this
   * reader fell behind a leaky producer or joined again after it was
   * frozen past its lease, and what it skipped), `lag-bytes`
   * (how far behind the producer
   * this reader is), `held-buffers` (zero-copy buffers still downstream),
   * `held-buffers-lost` (zero-copy buffers that were still in the ring
   * when this reader lost its slot, so that the producer may have
   * overwritten them: see the zero-copy property), `slot` and `session`;
   * what the mapping probe found at start: `mapping-slow`,
   * `mapping-read-ns` and `memory-read-ns` (a read of the mapping's first
   * page, and of as much ordinary memory, the best of 5).
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "Counters of the source (buffers, bytes, zero-copy, invalid "
          "records, reconnects, lag)", GST_TYPE_STRUCTURE,
          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * GstIvshmemSrc:zero-copy:
   *
   * Which buffers point into the ring instead of being copied. `auto` (the
   * default) hands out raw audio and video (`audio/x-raw`, `video/x-raw`)
   * in place and copies everything else before it leaves the element: a
   * hostile producer can rewrite a buffer in the ring while downstream
   * reads it, which only changes samples or pixels of raw media, but can
   * turn a compressed or structured stream into an attack on the parser
   * or decoder that checked it a moment before. `on` hands out everything
   * in place (for a producer you trust), `off` copies everything. On a
   * mapping that reads much slower than memory (see "Slow mappings"),
   * `auto` copies raw media too.
   *
   * A buffer in place is read-only; its space stays reserved until the
   * last reference to it is dropped. At most 64 such buffers, and half the
   * ring, are outstanding at once; beyond that, buffers are copied, and
   * held buffers are moved into private memory when the producer waits
   * for their space, so a downstream element that keeps buffers cannot
   * stall the producer. The `stats` property counts both kinds
   * (`zero-copy-buffers`, `copied-buffers`).
   *
   * The ring keeps a buffer in place only while this reader owns its
   * slot. A process stopped for longer than the reader lease (3 s: a
   * paused VM, SIGSTOP, a debugger) loses it, and the producer, which
   * cannot tell a frozen reader from a dead one, may write over buffers
   * downstream still holds. The source then posts a warning at once and
   * counts them (`held-buffers-lost` in `stats`). Use `off` where a
   * reader can be frozen.
   *
   * In 0.1 this property was a boolean: `true` and `false` are still
   * accepted and mean `on` and `off`.
   *
   * Since: 0.1
   */
  g_object_class_install_property (gobject_class, PROP_ZERO_COPY,
      g_param_spec_enum ("zero-copy", "Zero copy",
          "Hand out read-only buffers that point into the ring: auto for "
          "raw audio and video only, on for everything (trusted producers), "
          "off to copy everything", GST_TYPE_IVSHMEM_SRC_ZERO_COPY,
          DEFAULT_ZERO_COPY, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  /**
   * GstIvshmemSrc:bar-mapping:
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
}

void
gst_ivshmem_src_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstIvshmemSrc *self = GST_IVSHMEM_SRC (object);

  GST_OBJECT_LOCK (self);
  if (self->region != NULL && prop_id != PROP_MAX_POLL_INTERVAL &&
      prop_id != PROP_BUSY_POLL && prop_id != PROP_ON_PRODUCER_RESTART &&
      prop_id != PROP_ON_EVICTED) {
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
    case PROP_SCHEDULER_SLICE:
      self->scheduler_slice = g_value_get_uint64 (value);
      break;
    case PROP_BAR_MAPPING:
      self->bar_mapping = g_value_get_enum (value);
      break;
    case PROP_ZERO_COPY:
      self->zero_copy_mode = g_value_get_enum (value);
      break;
    case PROP_ON_PRODUCER_RESTART:
      self->on_restart = g_value_get_enum (value);
      break;
    case PROP_ON_EVICTED:
      self->on_evicted = g_value_get_enum (value);
      break;
    case PROP_PROVIDE_CLOCK:
      self->provide_clock = g_value_get_boolean (value);
      if (self->provide_clock)
        GST_OBJECT_FLAG_SET (self, GST_ELEMENT_FLAG_PROVIDE_CLOCK);
      else
        GST_OBJECT_FLAG_UNSET (self, GST_ELEMENT_FLAG_PROVIDE_CLOCK);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);

  if (prop_id == PROP_IS_LIVE)
    gst_base_src_set_live (GST_BASE_SRC (self), g_value_get_boolean (value));
}

void
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
    case PROP_SCHEDULER_SLICE:
      g_value_set_uint64 (value, self->scheduler_slice);
      break;
    case PROP_BAR_MAPPING:
      g_value_set_enum (value, self->bar_mapping);
      break;
    case PROP_ZERO_COPY:
      g_value_set_enum (value, self->zero_copy_mode);
      break;
    case PROP_ON_PRODUCER_RESTART:
      g_value_set_enum (value, self->on_restart);
      break;
    case PROP_ON_EVICTED:
      g_value_set_enum (value, self->on_evicted);
      break;
    case PROP_PROVIDE_CLOCK:
      g_value_set_boolean (value, self->provide_clock);
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
