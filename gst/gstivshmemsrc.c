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

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

#define gst_ivshmem_src_parent_class parent_class
G_DEFINE_TYPE (GstIvshmemSrc, gst_ivshmem_src, GST_TYPE_PUSH_SRC);
GST_ELEMENT_REGISTER_DEFINE_WITH_CODE (ivshmemsrc, "ivshmemsrc",
    GST_RANK_NONE, GST_TYPE_IVSHMEM_SRC,
    GST_DEBUG_CATEGORY_INIT (gst_ivshmem_src_debug, "ivshmemsrc", 0,
        "IVSHMEM source"));

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
