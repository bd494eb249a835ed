/* gst-ivshmem: ivshmemsink, its session
 * SPDX-License-Identifier: MIT
 *
 * The producer's session: start() opens the region and the writer (waiting
 * out a previous producer's lease), stop() closes them; between the two
 * the heartbeat thread ticks the writer, samples the clock, notices a
 * takeover and watches for a reader that holds a lossless ring back.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstivshmemsinkpriv.h"
#include "ivshmem-inspect.h"

#define GST_CAT_DEFAULT gst_ivshmem_sink_debug

/* Another producer owns the region now: this one must stop. Posted once,
 * from whichever thread notices first (the streaming thread or the
 * heartbeat thread); the other one returns only after the post, so that
 * the streaming thread's GST_FLOW_ERROR never reaches upstream before
 * the error (else upstream's "Internal data stream error" is the first
 * error on the bus: elements-ivshmem, test_sink_taken_over_error_first). */
void
gst_ivshmem_sink_post_taken_over (GstIvshmemSink * self)
{
  if (!gst_ivshmem_post_begin (&self->taken_over))
    return;
  GST_ELEMENT_ERROR (self, RESOURCE, BUSY,
      ("Another producer took over the IVSHMEM region %s while this "
          "pipeline was stalled (a paused VM or a stopped process?).",
          self->region_name),
      ("This sink's heartbeat stopped for longer than the takeover wait, "
          "so the other producer started a new session; this sink wrote "
          "nothing into it. Its readers follow the new producer. Stop one "
          "of the two producers, or give each a region of its own."));
  gst_ivshmem_post_end (&self->taken_over);
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

gboolean
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

gboolean
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
