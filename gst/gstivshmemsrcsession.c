/* gst-ivshmem: ivshmemsrc's sessions: attaching, following, counters
 * SPDX-License-Identifier: MIT
 *
 * Attaching to a producer (or waiting in a slot for one), letting go of a
 * session when the producer restarts, goes away or drops this reader, and
 * the counters of the stats property.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstivshmemsrcpriv.h"
#include "gstivshmemutils.h"
#include "ivshmem-inspect.h"

#define GST_CAT_DEFAULT gst_ivshmem_src_debug

void
gst_ivshmem_src_reset_stream (GstIvshmemSrc * self)
{
  gst_ivshmem_time_reset (&self->time);
  GST_OBJECT_LOCK (self);
  self->producer_latency = GST_CLOCK_TIME_NONE;
  self->time_mode = GST_IVSHMEM_TIME_NONE;
  ivshm_clock_sync_init (&self->time_sync);
  self->producer_base = GST_CLOCK_TIME_NONE;
  GST_OBJECT_UNLOCK (self);
  /* a new producer's clock is followed from where ours is */
  gst_ivshmem_follow_init (&self->follow);
  self->segment_sent = FALSE;
  self->eos = FALSE;
  self->waiting_logged = FALSE;
  self->stalled = FALSE;
  self->caps_raw = FALSE;
  gst_caps_replace (&self->pending_caps, NULL);
}

/* ---- attaching ---------------------------------------------------------- */

static void
gst_ivshmem_src_post_attach_error (GstIvshmemSrc * self, const IvshmError * err)
{
  if (err->status == IVSHM_ERR_NO_SLOT)
    GST_ELEMENT_ERROR (self, RESOURCE, BUSY,
        ("Every reader slot of the IVSHMEM region is taken."),
        ("%s. Run `ivshmem-info %s` to see who holds them; the slot of a "
            "reader that died is given back once its lease (%u s) expires.",
            err->detail[0] ? err->detail : "no free slot",
            self->opened_device ? self->opened_device : "DEVICE",
            GST_IVSHMEM_LEASE_S));
  else
    GST_IVSHMEM_POST_ERROR (self, err, "attach to the IVSHMEM ring");
}

/* After attaching again to a producer that dropped us (a leaky one lapped
 * us, or this process was frozen past its lease): say what was lost (the
 * GAP follows with the next buffer). */
static void
gst_ivshmem_src_warn_lapped (GstIvshmemSrc * self)
{
  guint64 at = ivshm_reader_position (self->reader);
  guint64 lost = gst_ivshmem_lost_bytes (self->lapped_from, at);
  guint64 drops;

  GST_OBJECT_LOCK (self);
  drops = ++self->drops;
  self->lost_bytes += lost;
  GST_OBJECT_UNLOCK (self);
  if (self->frozen_ns) {
    gdouble frozen = self->frozen_ns / 1e9;

    self->frozen_ns = 0;
    GST_ELEMENT_WARNING (self, STREAM, FAILED,
        ("This reader was frozen for %.1f s, longer than its lease: the "
            "producer dropped it and went on. Joined the stream again at "
            "the live edge; lost %" G_GUINT64_FORMAT " bytes of it.",
            frozen, lost),
        ("This process (or its VM) stood still: SIGSTOP, a paused or "
            "snapshotted VM, a debugger. A producer cannot tell a frozen "
            "reader from a dead one, so it gave the slot up after the "
            "lease (%u s). Dropped at ring position %" G_GUINT64_FORMAT
            ", joined again at %" G_GUINT64_FORMAT "; %" G_GUINT64_FORMAT
            " times so far (stats: drops, lost-bytes). The next buffer is "
            "marked DISCONT. on-evicted=error ends the pipeline instead.",
            GST_IVSHMEM_LEASE_S, self->lapped_from, at, drops));
    return;
  }
  GST_ELEMENT_WARNING (self, STREAM, FAILED,
      ("Fell behind the producer, which does not wait (leaky): skipped "
          "%" G_GUINT64_FORMAT " bytes of the stream.", lost),
      ("The sink's policy is leaky: it lapped this reader, which was too "
          "slow. Dropped at ring position %" G_GUINT64_FORMAT ", joined again "
          "at %" G_GUINT64_FORMAT "; %" G_GUINT64_FORMAT " times so far. A "
          "lossless sink would wait instead.", self->lapped_from, at, drops));
}

/* Tries to attach to the producer. GST_FLOW_OK: attached. GST_FLOW_CUSTOM_
 * SUCCESS: no producer yet, wait. */
GstFlowReturn
gst_ivshmem_src_attach (GstIvshmemSrc * self)
{
  IvshmError err = { 0 };
  IvshmReaderConfig cfg = { 0 };
  IvshmReaderStats stats;
  IvshmStatus st;

  /* after falling behind a leaky producer, the end of its stream is still
   * ours to read, even once it has closed the session */
  cfg.attach_closed = self->lapped;
  /* otherwise wait in a slot for the next producer, which adopts it: we
   * get its session from the first record */
  cfg.wait_for_producer = !self->lapped;
  /* not the session we left because its producer went away */
  cfg.skip_session = self->abandoned_session;
  GST_OBJECT_LOCK (self);
  /* a producer that stops moving is waited for, not given up on */
  cfg.follow_stall = self->on_restart == GST_IVSHMEM_SRC_RESTART_FOLLOW;
  GST_OBJECT_UNLOCK (self);
  /* a live reader joins a running stream at its live edge, even as its
   * first reader; one that waits for the producer still gets it all */
  cfg.live_edge = GST_BASE_SRC (self)->is_live;
  st = ivshm_reader_new (ivshm_region_data (self->region),
      ivshm_region_size (self->region), &cfg, &self->reader, &err);
  if (st == IVSHM_ERR_NO_PRODUCER || st == IVSHM_AGAIN) {
    if (!self->waiting_logged) {
      GST_INFO_OBJECT (self, "waiting for a producer: %s", err.detail);
      self->waiting_logged = TRUE;
    }
    return GST_FLOW_CUSTOM_SUCCESS;
  }
  if (st == IVSHM_ERR_BAD_MAGIC && cfg.wait_for_producer) {
    /* foreign bytes (another program's, a hostile peer's, leftovers): not
     * a ring yet, which the next producer's format makes of it. Waited
     * for as zeros are, but outside a slot: the slots hold foreign bytes
     * too. The first reader after the format gets the stream from its
     * start all the same (PROTOCOL.md section 10, step 5). */
    if (!self->waiting_logged) {
      guint8 b[IVSHM_INSPECT_MAGIC_LEN];

      ivshm_inspect_magic_bytes (ivshm_region_data (self->region), b);

      GST_ELEMENT_WARNING (self, RESOURCE, READ,
          ("The region %s is not a gst-ivshmem ring yet: waiting for a "
              "producer.", ivshm_region_path (self->region)),
          ("It starts with the bytes %02x %02x %02x %02x %02x %02x %02x "
              "%02x, not the magic \"IVSHMGST\" (%s): another program's "
              "data, leftovers, or a peer that wrote over it. The next "
              "ivshmemsink on this region formats it, and this reader then "
              "reads its stream; if something else uses the region, give "
              "gst-ivshmem one of its own.", b[0], b[1], b[2], b[3], b[4],
              b[5], b[6], b[7], err.detail));
      self->waiting_logged = TRUE;
    }
    return GST_FLOW_CUSTOM_SUCCESS;
  }
  if (st != IVSHM_OK) {
    gst_ivshmem_src_post_attach_error (self, &err);
    return GST_FLOW_ERROR;
  }
  ivshm_reader_get_stats (self->reader, &stats);
  self->joined_mid_stream = stats.joined_mid_stream;
  if (ivshm_reader_waiting (self->reader))
    GST_INFO_OBJECT (self, "waiting for a producer in slot %u", stats.slot);
  else
    GST_INFO_OBJECT (self, "attached to session %016" G_GINT64_MODIFIER
        "x in slot %u%s", ivshm_reader_session (self->reader), stats.slot,
        stats.joined_mid_stream ? ", mid-stream" : "");
  self->last_record_ns = ivshm_now_ns ();
  if (!gst_ivshmem_consumer_attach (self->consumer, self->reader)) {
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED,
        ("Could not start the thread that renews this reader's lease."),
        ("Without it the producer would drop this reader after %u s. The "
            "system is out of threads or memory: look at `ulimit -u` and "
            "the memory of this process.", GST_IVSHMEM_LEASE_S));
    return GST_FLOW_ERROR;
  }
  if (self->lapped)
    gst_ivshmem_src_warn_lapped (self);
  return GST_FLOW_OK;
}

/* The streaming thread lets go of `old` (a region, a reader): every held
 * record leaves the ring first, and unlock() must be done with the
 * region. */
static void
gst_ivshmem_src_drop_consumer (GstIvshmemSrc * self, GstIvshmemConsumer * old)
{
  guint n = gst_ivshmem_consumer_retire (old);

  if (n)
    GST_DEBUG_OBJECT (self, "moved %u held buffers out of the old ring", n);
  g_mutex_lock (&self->unlock_lock);
  g_mutex_unlock (&self->unlock_lock);
  gst_ivshmem_consumer_unref (old);
}

/* The producer restarted, went away, or dropped us: let go of its session
 * and wait for the next producer (or join again, after a leaky producer
 * dropped us), with a fresh mapping (buffers still downstream keep the old
 * one).
 *
 * The whole reattach, in order (the streaming thread, no lock held unless
 * named):
 *  1. create() (gstivshmemsrcread.c): ivshm_reader_next() or a release
 *     fails (SESSION_CHANGED, PRODUCER_GONE, EVICTED);
 *     gst_ivshmem_src_handle_read_error() applies on-evicted and
 *     on-producer-restart, and for follow or rejoin calls this function.
 *  2. Here: the region is opened again (a fresh mapping).
 *  3. Here: why we leave. EVICTED: the same stream goes on, join it again
 *     at the live edge (lapped); else warn, and skip the session of a
 *     producer that went away.
 *  4. Here, under the object lock: a new consumer replaces the old one and
 *     self->reader is cleared; the old reader is the old consumer's alone.
 *  5. gst_ivshmem_src_drop_consumer() -> gst_ivshmem_consumer_retire()
 *     (gstivshmemconsumer.c), under the consumer's lock: held records that
 *     nobody maps are copied out of the ring and let go
 *     (ivshm_reader_unhold(), common/ring/ivshmem-held.c, which takes the
 *     reader's own lock inside the consumer's: the order is always
 *     consumer, then reader); the slot is checked to be still ours after
 *     the copies (a loss is reported outside the lock, through
 *     gst_ivshmem_src_held_lost() below). With nothing held the reader
 *     detaches at once (lease thread stopped, slot given back); else the
 *     last held memory to be unmapped or freed detaches it, from whatever
 *     thread. Then the unlock_lock barrier: unlock() is done with the old
 *     region.
 *  6. Here: after a restart the next stream is anchored anew.
 *  7. The next create() (gst_ivshmem_src_wait_producer()) calls
 *     gst_ivshmem_src_attach() above: ivshm_reader_new() on the fresh
 *     region, and gst_ivshmem_consumer_attach() starts the new lease. */
GstFlowReturn
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

  fresh = gst_ivshmem_src_new_consumer (self, region);
  GST_OBJECT_LOCK (self);
  old = self->consumer;
  self->consumer = fresh;
  self->region = region;
  self->reader = NULL;
  if (!lapped)
    self->reconnects++;
  GST_OBJECT_UNLOCK (self);
  gst_ivshmem_src_drop_consumer (self, old);

  if (!lapped) {
    /* the next stream is anchored anew */
    gst_ivshmem_src_reset_stream (self);
    g_clear_pointer (&self->stream_id, g_free);
  }
  self->discont = TRUE;
  return GST_FLOW_OK;
}

/* The consumer found that the reader lost its slot while downstream held
 * `n` buffers in place: say so at once (any thread). */
static void
gst_ivshmem_src_held_lost (GstElement * element, guint n, gboolean taken_over)
{
  GstIvshmemSrc *self = GST_IVSHMEM_SRC (element);
  guint64 total;

  GST_OBJECT_LOCK (self);
  total = self->held_lost += n;
  GST_OBJECT_UNLOCK (self);
  if (taken_over)
    GST_ELEMENT_WARNING (self, STREAM, FAILED,
        ("Downstream held %u buffers that point into the IVSHMEM ring when "
            "a new producer took the region over: it may have overwritten "
            "them.", n),
        ("The new producer's session took this reader's slot before the "
            "reader moved them out of the ring (it does so when the "
            "producer's heartbeat stops, unless this process is stopped, as "
            "a paused VM is, or starved); a producer cannot tell a frozen "
            "reader from a dead one. They were moved out as they are (%"
            G_GUINT64_FORMAT " such buffers so far). Set zero-copy=off "
            "where a reader can be frozen (a paused VM): copies are checked "
            "and never change.", total));
  else
    GST_ELEMENT_WARNING (self, STREAM, FAILED,
        ("Downstream held %u buffers that point into the IVSHMEM ring when "
            "this reader lost its slot: the producer may have overwritten "
            "them.", n),
        ("This process was stopped for longer than the reader lease (%u s: "
            "a paused VM, SIGSTOP, a debugger) while downstream held %u "
            "buffers that point into the ring; the producer cannot tell a "
            "frozen reader from a dead one and dropped it. They were moved "
            "out as they are (%" G_GUINT64_FORMAT " such buffers so far). "
            "Set zero-copy=off where a reader can be frozen (a paused VM): "
            "copies are checked and never change.", GST_IVSHMEM_LEASE_S, n,
            total));
}

GstIvshmemConsumer *
gst_ivshmem_src_new_consumer (GstIvshmemSrc * self, IvshmRegion * region)
{
  return gst_ivshmem_consumer_new (region, GST_ELEMENT (self),
      gst_ivshmem_src_held_lost);
}

GstStructure *
gst_ivshmem_src_get_stats (GstIvshmemSrc * self)
{
  GstIvshmemConsumer *consumer = NULL;
  IvshmReaderStats rs = { 0 };
  unsigned held = 0;
  guint64 lag = 0, session = 0, reconnects, zero_copy, copied, invalid;
  guint64 drops, lost_bytes, held_lost;
  gint slot = -1;
  GstIvshmemTimeMode mode;
  IvshmClockSync sync;
  GstClockTime p_base, p_latency;
  guint64 before_start;
  IvshmMapProbe probe;
  static const gchar *const mode_names[] = { "none", "anchored", "exact",
    "estimated"
  };
  GstStructure *st;

  /* the consumer keeps the mapping alive while we look at it */
  GST_OBJECT_LOCK (self);
  if (self->consumer)
    consumer = gst_ivshmem_consumer_ref (self->consumer);
  reconnects = self->reconnects;
  drops = self->drops;
  lost_bytes = self->lost_bytes;
  held_lost = self->held_lost;
  zero_copy = self->zero_copy;
  copied = self->copied;
  invalid = self->invalid_records;
  mode = self->time_mode;
  sync = self->time_sync;
  p_base = self->producer_base;
  p_latency = self->producer_latency;
  before_start = self->before_start;
  probe = self->map_probe;
  GST_OBJECT_UNLOCK (self);

  if (consumer) {
    if (gst_ivshmem_consumer_get_stats (consumer, &rs, &held, &lag, &session))
      slot = (gint) rs.slot;
    gst_ivshmem_consumer_unref (consumer);
  }
  st = gst_structure_new ("GstIvshmemSrcStats",
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
      "held-buffers-lost", G_TYPE_UINT64, held_lost,
      "slot", G_TYPE_INT, slot, "session", G_TYPE_UINT64, session, NULL);
  /* the producer's clock (PROTOCOL.md, section 6a): how buffers are
   * stamped, and across a VM boundary the estimate of the producer's
   * CLOCK_MONOTONIC against ours (reader - producer), with its error */
  gst_structure_set (st,
      "clock-mapping", G_TYPE_STRING, mode_names[mode],
      "clock-offset", G_TYPE_INT64, (gint64) sync.offset_ns,
      "clock-rate-ppm", G_TYPE_DOUBLE, sync.drift * 1e6,
      "clock-error", G_TYPE_UINT64, sync.valid ? sync.error_ns :
      GST_CLOCK_TIME_NONE,
      "clock-observations", G_TYPE_UINT64, sync.observations,
      "producer-base-time", G_TYPE_UINT64, p_base,
      "producer-latency", G_TYPE_UINT64, p_latency,
      "dropped-before-start", G_TYPE_UINT64, before_start, NULL);
  /* the mapping probe at start(): how long a read of the mapping took
   * against ordinary memory, and whether that made it slow */
  gst_structure_set (st,
      "mapping-slow", G_TYPE_BOOLEAN, (gboolean) probe.slow,
      "mapping-read-ns", G_TYPE_UINT64, probe.map_ns,
      "memory-read-ns", G_TYPE_UINT64, probe.ram_ns, NULL);
  return st;
}
