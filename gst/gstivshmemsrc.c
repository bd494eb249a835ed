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
 * ## A silent, restarting or vanished producer
 *
 * When the producer's heartbeat stops (a paused, snapshotted or migrating
 * VM, a stopped process), the source posts a warning ("The producer has
 * been silent for N s (paused VM?); still waiting.") and keeps its place:
 * when the producer moves again it reads on, and nothing is lost. When
 * the producer restarts, or closes its session without EOS, the source
 * acts as #GstIvshmemSrc:on-producer-restart says. Errors say what
 * happened and what to do: a reader dropped by a lossless sink because it
 * stalled past its lease, a reader lapped by a leaky sink (a warning, and
 * a GAP over what it missed), every reader slot taken (look with
 * `ivshmem-info`).
 *
 * A reader whose process or VM was frozen for longer than its lease (3 s)
 * loses its slot: no producer can tell it from a dead one. When it runs
 * again it joins the stream at the live edge (#GstIvshmemSrc:on-evicted),
 * with a warning saying how long it was frozen and how many bytes it lost,
 * a DISCONT and a GAP, as a reader that a leaky producer lapped.
 *
 * A region that holds foreign bytes is waited on as a zeroed one, with a
 * warning naming the bytes found. A host file that shrinks or loses its
 * pages while the source reads is an error naming the file, not a SIGBUS.
 *
 * ## Zero copy and trust
 *
 * Raw audio and video go out as read-only buffers that point into the
 * ring; everything else is copied before it leaves the element
 * (#GstIvshmemSrc:zero-copy = auto). The producer can rewrite the ring at
 * any time: for raw media that changes samples or pixels only, for a
 * compressed or structured stream it could change bytes between a
 * parser's check and their use, so that is copied unless zero-copy=on,
 * however large it is. (shmsrc hands everything out in place: it trusts
 * its producer, which this element does not.) A copy costs one pass over
 * memory: from the size of the L2 cache on it is written with
 * non-temporal stores, which do not read the destination into the cache
 * first, into buffers of a pool that the source keeps.
 *
 * ## Slow mappings (guests)
 *
 * In a guest, BAR2 may be mapped uncached or write-combined (the sysfs
 * resource2 files are; on AMD hosts KVM honours the guest's memory
 * types), and then every read goes to memory: reading a frame in place,
 * element after element, would be far slower than copying it out once.
 * At start the source times a read of the first page of the mapping
 * against the same read of ordinary memory; a mapping that reads more than
 * 8 times slower (and 5 us slower) is slow, and zero-copy=auto then copies
 * raw media out too, with streaming loads (MOVNTDQA, where the CPU has
 * SSE4.1), which read whole cache lines from such memory. zero-copy=on
 * still hands buffers out in place. #GstIvshmemSrc:stats says what the
 * probe found (`mapping-slow`, `mapping-read-ns`, `memory-read-ns`), as
 * does the debug log; the environment variable
 * IVSHMEM_FORCE_SLOW_MAPPING=1 makes the source treat any mapping as slow.
 *
 * ## Timestamps
 *
 * The producer's clock (a guest's, or another pipeline's) is not this
 * pipeline's clock. By default (#GstIvshmemSrc:is-live = true) the source
 * is a live source: it stamps each buffer with the moment the producer's
 * pipeline meant it to be presented (its base time plus the buffer's
 * running time, on its clock, which ivshmemsink carries through the
 * region), mapped onto this pipeline's clock: exactly when both run on one
 * kernel, through an estimate of the two kernels' clocks across a VM
 * boundary (#GstIvshmemSrc:stats has it, with its error). A flushing seek,
 * a pause or a new base time of the producer carries over; late buffers
 * are late. It reports #GstIvshmemSrc:latency plus the producer's upstream
 * latency as its latency. The producer's segments are used for that
 * conversion and not forwarded; the output has one TIME segment. A
 * producer of protocol 2.0 (or without a clock) is anchored on the first
 * buffer instead: the first buffer is stamped with the moment it arrived,
 * later ones keep the producer's spacing.
 *
 * A live source that joins a running live stream starts at its live edge
 * (the stream's sticky events, then the next buffer), unless it comes
 * within 2 s of the stream's start or waited for the producer.
 * #GstIvshmemSrc:provide-clock offers a clock that follows the producer's.
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
 *
 * Since: 0.1
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstivshmemsrcpriv.h"
#include "gstivshmemelements.h"
#include "gstivshmemutils.h"

GST_DEBUG_CATEGORY (gst_ivshmem_src_debug);
#define GST_CAT_DEFAULT gst_ivshmem_src_debug

#define DEFAULT_DEVICE NULL
#define DEFAULT_IS_LIVE TRUE
#define DEFAULT_LATENCY (20 * GST_MSECOND)
#define DEFAULT_ZERO_COPY GST_IVSHMEM_SRC_ZERO_COPY_AUTO
#define DEFAULT_ON_PRODUCER_RESTART GST_IVSHMEM_SRC_RESTART_FOLLOW
#define DEFAULT_ON_EVICTED GST_IVSHMEM_SRC_EVICTED_REJOIN

/**
 * GstIvshmemSrcEvicted:
 *
 * What #GstIvshmemSrc does when the producer dropped it
 * (#GstIvshmemSrc:on-evicted).
 *
 * Since: 0.1
 */
#define GST_TYPE_IVSHMEM_SRC_EVICTED (gst_ivshmem_src_evicted_get_type ())
static GType
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

/**
 * GstIvshmemSrcZeroCopy:
 *
 * Which buffers #GstIvshmemSrc outputs in place
 * (#GstIvshmemSrc:zero-copy).
 *
 * Since: 0.1
 */
#define GST_TYPE_IVSHMEM_SRC_ZERO_COPY (gst_ivshmem_src_zero_copy_get_type ())
static GType
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

/* this pipeline's clock, CLOCK_MONOTONIC and base time, for the time
 * mapping */
static gboolean
gst_ivshmem_src_local (gpointer data, GstClockTime * clock_now,
    guint64 * mono_now, GstClockTime * base)
{
  GstElement *element = data;
  GstClock *clock = gst_element_get_clock (element);
  guint64 m1, m2;

  if (!clock)
    return FALSE;
  *base = gst_element_get_base_time (element);
  m1 = ivshm_now_ns ();
  *clock_now = gst_clock_get_time (clock);
  m2 = ivshm_now_ns ();
  gst_object_unref (clock);
  *mono_now = m1 + (m2 - m1) / 2;
  return GST_CLOCK_TIME_IS_VALID (*clock_now);
}

/* this pipeline's running time, for the time mapping */
static GstClockTime
gst_ivshmem_src_now (gpointer data)
{
  GstElement *element = data;
  GstClock *clock = gst_element_get_clock (element);
  GstClockTime base, now;

  if (!clock)
    return GST_CLOCK_TIME_NONE;
  base = gst_element_get_base_time (element);
  now = gst_clock_get_time (clock);
  gst_object_unref (clock);
  return now > base ? now - base : 0;
}

/* how and where the source reads */
static void
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
static void
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

static GstClock *
gst_ivshmem_src_provide_clock (GstElement * element)
{
  GstIvshmemSrc *self = GST_IVSHMEM_SRC (element);

  return gst_object_ref (self->follow_clock);
}

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

  /* the enum types of the properties belong to the documented API */
  gst_type_mark_as_plugin_api (GST_TYPE_IVSHMEM_SRC_RESTART, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_IVSHMEM_SRC_EVICTED, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_IVSHMEM_SRC_ZERO_COPY, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_IVSHMEM_BAR_MAPPING, 0);

  gst_ivshmem_src_install_reading_properties (gobject_class);
  gst_ivshmem_src_install_stream_properties (gobject_class);

  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "IVSHMEM source", "Source",
      "Reads media from IVSHMEM shared memory, written by ivshmemsink on "
      "the host, in a QEMU guest or in another VM", "gst-ivshmem developers");

  element_class->provide_clock =
      GST_DEBUG_FUNCPTR (gst_ivshmem_src_provide_clock);
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
  self->scheduler_slice = DEFAULT_SCHEDULER_SLICE;
  self->zero_copy_mode = DEFAULT_ZERO_COPY;
  self->on_restart = DEFAULT_ON_PRODUCER_RESTART;
  self->on_evicted = DEFAULT_ON_EVICTED;
  ivshm_waiter_init (&self->waiter);
  g_mutex_init (&self->unlock_lock);
  self->allocator = gst_ivshmem_read_allocator_new ();
  gst_ivshmem_time_init (&self->time, gst_ivshmem_src_now,
      gst_ivshmem_src_local, self);
  gst_base_src_set_format (GST_BASE_SRC (self), GST_FORMAT_TIME);
  gst_base_src_set_live (GST_BASE_SRC (self), DEFAULT_IS_LIVE);
  self->follow_clock = g_object_new (GST_TYPE_SYSTEM_CLOCK, "name",
      "GstIvshmemProducerClock", "clock-type", GST_CLOCK_TYPE_MONOTONIC, NULL);
  gst_object_ref_sink (self->follow_clock);
  gst_ivshmem_follow_init (&self->follow);
}

static void
gst_ivshmem_src_finalize (GObject * object)
{
  GstIvshmemSrc *self = GST_IVSHMEM_SRC (object);

  g_free (self->device);
  g_free (self->opened_device);
  g_free (self->stream_id);
  gst_caps_replace (&self->pending_caps, NULL);
  gst_object_unref (self->allocator);
  gst_object_unref (self->follow_clock);
  g_mutex_clear (&self->unlock_lock);

  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
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

/* What the mapping probe found, in the debug log; at INFO level when the
 * mapping is slow, which changes what zero-copy=auto does. */
static void
gst_ivshmem_src_log_probe (GstIvshmemSrc * self, const IvshmMapProbe * p)
{
  if (p->slow)
    GST_INFO_OBJECT (self, "the mapping reads slowly (%u bytes: %"
        G_GUINT64_FORMAT " ns, ordinary memory %" G_GUINT64_FORMAT " ns%s): "
        "uncached or write-combined, as a guest's BAR2 can be. Buffers are "
        "copied out with %s, not handed out in place (zero-copy=auto)",
        p->bytes, p->map_ns, p->ram_ns, p->forced ?
        ", IVSHMEM_FORCE_SLOW_MAPPING=1" : "",
        ivshm_copy_has_stream_loads ()? "streaming loads" : "memcpy");
  else
    GST_DEBUG_OBJECT (self, "the mapping reads at memory speed (%u bytes: %"
        G_GUINT64_FORMAT " ns, ordinary memory %" G_GUINT64_FORMAT " ns)",
        p->bytes, p->map_ns, p->ram_ns);
}

static gboolean
gst_ivshmem_src_start (GstBaseSrc * bsrc)
{
  GstIvshmemSrc *self = GST_IVSHMEM_SRC (bsrc);
  IvshmRegionOptions opts = { 0 };
  IvshmError err = { 0 };
  IvshmRegion *region = NULL;
  IvshmMapProbe probe;
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
  ivshm_mapprobe_run (ivshm_region_data (region), ivshm_region_size (region),
      &probe);
  gst_ivshmem_src_log_probe (self, &probe);

  GST_OBJECT_LOCK (self);
  self->consumer = gst_ivshmem_src_new_consumer (self, region);
  self->region = region;
  self->map_probe = probe;
  GST_OBJECT_UNLOCK (self);

  gst_ivshmem_src_reset_stream (self);
  GST_OBJECT_LOCK (self);
  self->zc_mode = self->zero_copy_mode;
  self->slice_ns = self->scheduler_slice;
  self->invalid_records = 0;
  self->zero_copy = self->copied = self->reconnects = 0;
  self->drops = self->lost_bytes = 0;
  self->held_lost = 0;
  GST_OBJECT_UNLOCK (self);
  g_atomic_int_set (&self->region_lost, 0);
  self->abandoned_session = 0;
  self->discont = FALSE;
  self->lapped = FALSE;
  self->frozen_ns = 0;
  g_clear_pointer (&self->stream_id, g_free);
  gst_caps_replace (&self->pending_caps, NULL);
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

  /* the task's thread is back in its pool: as it was */
  ivshm_thread_slice_restore (&self->slice);
  self->slice_thread = NULL;

  if (consumer) {
    GST_INFO_OBJECT (self, "%" G_GUINT64_FORMAT " buffers handed out in "
        "place, %" G_GUINT64_FORMAT " copied", self->zero_copy, self->copied);
    /* buffers still downstream keep the reader and the mapping; unlock()
     * is done with the region (it runs in this thread, as a rule) */
    g_mutex_lock (&self->unlock_lock);
    g_mutex_unlock (&self->unlock_lock);
    gst_ivshmem_consumer_unref (consumer);
  }
  /* buffers of it still downstream keep it until they are freed */
  if (self->copy_pool) {
    gst_buffer_pool_set_active (self->copy_pool, FALSE);
    gst_clear_object (&self->copy_pool);
    self->copy_pool_size = 0;
  }
  return TRUE;
}

static gboolean
gst_ivshmem_src_unlock (GstBaseSrc * bsrc)
{
  GstIvshmemSrc *self = GST_IVSHMEM_SRC (bsrc);

  /* the waiter may point into the region the streaming thread sleeps on:
   * it does not let that region go while we wake it (unlock_lock) */
  g_mutex_lock (&self->unlock_lock);
  ivshm_waiter_set_flushing (&self->waiter, TRUE);
  g_mutex_unlock (&self->unlock_lock);
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
    /* buffers are stamped with the moment the producer's upstream meant
     * (a capture time): they reach us that much later */
    if (GST_CLOCK_TIME_IS_VALID (self->producer_latency))
      latency += self->producer_latency;
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
