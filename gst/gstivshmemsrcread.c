/* gst-ivshmem: ivshmemsrc's streaming thread
 * SPDX-License-Identifier: MIT
 *
 * create() in named steps: wait for a producer and attach to it, wait for
 * data, read a record, dispatch it (gstivshmemsrcrecord.c: a buffer goes
 * out; caps and events are handled there), and handle a read error by the
 * on-producer-restart policy.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstivshmemsrcpriv.h"
#include "gstivshmemutils.h"

#include <string.h>

#define GST_CAT_DEFAULT gst_ivshmem_src_debug

/* waiting for a producer to appear: a look every 10 ms doubling up to
 * 100 ms */
#define WAIT_PRODUCER_MIN_NS (10 * GST_MSECOND)
#define WAIT_PRODUCER_MAX_NS (100 * GST_MSECOND)
/* while downstream holds buffers in the ring: how often to check whether
 * the producer waits for their space */
#define HELD_WAIT_NS (5 * GST_MSECOND)

/* The region's file shrank or lost its pages under the mapping (its guard
 * caught the fault): the error is posted once, TRUE: stop. */
#define gst_ivshmem_src_lost(self) \
  gst_ivshmem_region_lost (GST_ELEMENT (self), (self)->region, \
      &(self)->region_lost)

/* a reader whose lease went unrenewed this long stood still (SIGSTOP, a
 * paused VM), rather than fell behind a leaky producer */
#define FROZEN_NS (1 * GST_SECOND)

/* how often a waiting source looks at the size of the region's file */
#define REGION_CHECK_NS (100 * GST_MSECOND)

/* While waiting, the source may touch nothing past the new end of a file
 * that shrank: look at its size now and then. TRUE: lost, stop. */
static gboolean
gst_ivshmem_src_check_region (GstIvshmemSrc * self)
{
  guint64 now = ivshm_now_ns ();

  if (now - self->region_checked_ns < REGION_CHECK_NS)
    return gst_ivshmem_src_lost (self);
  self->region_checked_ns = now;
  return gst_ivshmem_region_check (GST_ELEMENT (self), self->region,
      &self->region_lost);
}

/* One create()'s waiting state */
typedef struct
{
  IvshmBackoff backoff;
  gboolean reset;               /* start a new back-off at the next wait */
  guint64 max_poll;
  guint64 busy_until;
  guint64 producer_wait;
} GstIvshmemSrcWait;

/* ---- waiting ------------------------------------------------------------ */

/* No reader yet: attach, or wait a little for a producer. GST_FLOW_OK:
 * attached; GST_FLOW_CUSTOM_SUCCESS: waited, look again. */
static GstFlowReturn
gst_ivshmem_src_wait_producer (GstIvshmemSrc * self, GstIvshmemSrcWait * w)
{
  GstFlowReturn ret = gst_ivshmem_src_attach (self);

  if (ret != GST_FLOW_CUSTOM_SUCCESS)
    return ret;
  if (!ivshm_wait_on (&self->waiter, NULL, 0, w->producer_wait))
    return GST_FLOW_FLUSHING;
  w->producer_wait = MIN (w->producer_wait * 2, WAIT_PRODUCER_MAX_NS);
  return GST_FLOW_CUSTOM_SUCCESS;
}

/* Nothing to read: a short spin, then sleeps that the producer cuts short
 * with a futex wake when it shares our kernel, and that grow up to
 * max-poll-interval when it does not. FALSE: unlocked. */
static gboolean
gst_ivshmem_src_wait_data (GstIvshmemSrc * self, GstIvshmemSrcWait * w)
{
  guint64 timeout;

  if (w->reset) {
    guint64 busy;

    GST_OBJECT_LOCK (self);
    w->max_poll = self->max_poll_interval;
    busy = self->busy_poll;
    GST_OBJECT_UNLOCK (self);
    w->busy_until = busy ? ivshm_now_ns () + busy : 0;
  }
  timeout = gst_ivshmem_next_wait (&w->backoff, &w->reset,
      ivshm_reader_producer_local (self->reader), &self->waiter, w->max_poll);
  if (timeout != 0 && w->busy_until && ivshm_now_ns () < w->busy_until)
    timeout = 0;                /* busy-poll: not asleep yet */
  if (timeout == 0) {
    ivshm_cpu_relax ();
    return !ivshm_waiter_is_flushing (&self->waiter);
  }
  /* Downstream keeps buffers that point into the ring and the producer
   * needs their space: move them out of the ring. While we hold any, look
   * again soon. */
  if (gst_ivshmem_consumer_migrate (self->consumer))
    GST_DEBUG_OBJECT (self, "copied held buffers out of the ring for the "
        "producer");
  if (timeout > HELD_WAIT_NS && gst_ivshmem_consumer_holds (self->consumer))
    timeout = HELD_WAIT_NS;
  return ivshm_reader_wait (self->reader, &self->waiter, timeout);
}

/* ---- read errors -------------------------------------------------------- */

static void
gst_ivshmem_src_post_read_error (GstIvshmemSrc * self, const IvshmError * err)
{
  if (err->status == IVSHM_ERR_PRODUCER_GONE)
    GST_ELEMENT_ERROR (self, RESOURCE, READ,
        ("The producer went away without sending EOS."),
        ("%s. Restart the producer; on-producer-restart=follow would "
            "wait for it.", err->detail));
  else if (err->status == IVSHM_ERR_SESSION_CHANGED)
    GST_ELEMENT_ERROR (self, RESOURCE, READ,
        ("The producer restarted in the middle of the stream."),
        ("%s. on-producer-restart=follow would go on with the new "
            "stream.", err->detail));
  else if (err->status == IVSHM_ERR_EVICTED)
    GST_ELEMENT_ERROR (self, RESOURCE, READ,
        ("The producer dropped this reader: it stopped renewing its lease."),
        ("%s. The sink's policy is lossless: it waits for its readers, but "
            "not for one whose lease (%u s) expired because this process "
            "stalled (a paused VM, a debugger, a stopped process, an "
            "overloaded machine). Restart this pipeline to read again, or "
            "set on-evicted=rejoin to join the stream again at the live "
            "edge.", err->detail, GST_IVSHMEM_LEASE_S));
  else
    GST_IVSHMEM_POST_ERROR (self, err, "read the IVSHMEM ring");
}

/* A read failed: follow the producer, end, or fail, by the policy.
 * GST_FLOW_CUSTOM_SUCCESS: attached again (or about to), read on. */
static GstFlowReturn
gst_ivshmem_src_handle_read_error (GstIvshmemSrc * self, const IvshmError * err)
{
  GstIvshmemSrcRestart mode;
  GstFlowReturn ret;

  /* a producer that stopped because the file shrank under it looks gone:
   * say what happened to the file rather than follow */
  self->region_checked_ns = 0;
  if (gst_ivshmem_src_check_region (self))
    return GST_FLOW_ERROR;
  if (err->status == IVSHM_ERR_EVICTED) {
    GstIvshmemSrcEvicted on_evicted;
    guint64 still = gst_ivshmem_consumer_stood_still (self->consumer);

    GST_OBJECT_LOCK (self);
    on_evicted = self->on_evicted;
    GST_OBJECT_UNLOCK (self);
    /* lapped by a leaky producer, or dropped by a lossless one for a
     * lease that expired while this process stood still: the same stream
     * goes on, join it again at the live edge (on-evicted) */
    if (ivshm_reader_producer_leaky (self->reader) ||
        (!ivshm_reader_waiting (self->reader) &&
            on_evicted == GST_IVSHMEM_SRC_EVICTED_REJOIN)) {
      self->frozen_ns = still >= FROZEN_NS ||
          !ivshm_reader_producer_leaky (self->reader) ? still : 0;
      ret = gst_ivshmem_src_reattach (self, err);
      return ret == GST_FLOW_OK ? GST_FLOW_CUSTOM_SUCCESS : ret;
    }
  }
  if (err->status == IVSHM_ERR_PRODUCER_GONE ||
      err->status == IVSHM_ERR_SESSION_CHANGED ||
      (err->status == IVSHM_ERR_EVICTED &&
          ivshm_reader_waiting (self->reader))) {
    /* (a slot lost while waiting for a producer held no stream: a
     * producer adopted it and another one restarted over it) */
    GST_OBJECT_LOCK (self);
    mode = self->on_restart;
    GST_OBJECT_UNLOCK (self);
    if (mode == GST_IVSHMEM_SRC_RESTART_FOLLOW) {
      ret = gst_ivshmem_src_reattach (self, err);
      return ret == GST_FLOW_OK ? GST_FLOW_CUSTOM_SUCCESS : ret;
    }
    if (mode == GST_IVSHMEM_SRC_RESTART_EOS) {
      GST_INFO_OBJECT (self, "ending with EOS: %s", err->detail);
      self->eos = TRUE;
      return GST_FLOW_EOS;
    }
  }
  gst_ivshmem_src_post_read_error (self, err);
  return GST_FLOW_ERROR;
}

/* ---- a silent producer ------------------------------------------------- */

/* The producer's heartbeat stopped (a paused, snapshotted or migrating VM,
 * a stopped process): say so, keep the slot and wait. A lossless producer
 * keeps everything for us, so nothing is lost when it moves again. */
static void
gst_ivshmem_src_producer_stalled (GstIvshmemSrc * self, const IvshmError * err)
{
  gdouble silent = (ivshm_now_ns () - self->last_record_ns) / 1e9;

  self->stalled = TRUE;
  GST_ELEMENT_WARNING (self, RESOURCE, READ,
      ("The producer has been silent for %.1f s (paused VM?); still "
          "waiting.", silent),
      ("%s. Its heartbeat stopped. This reader keeps its slot and goes on "
          "when the producer moves again; on-producer-restart=eos or error "
          "would end the stream instead.", err->detail[0] ? err->detail :
          "producer stalled"));
}

/* A record after a stall: the producer moved again. */
static void
gst_ivshmem_src_producer_resumed (GstIvshmemSrc * self)
{
  gdouble silent = (ivshm_now_ns () - self->last_record_ns) / 1e9;

  self->stalled = FALSE;
  GST_ELEMENT_INFO (self, RESOURCE, READ,
      ("The producer moved again after %.1f s of silence.", silent),
      ("nothing was lost: this reader kept its slot"));
}

/* ---- the streaming thread ---------------------------------------------- */

/* Where the latency tail went (docs/latency.md): the producer's futex
 * wake-up queues this thread behind the producer's on the producer's CPU,
 * and it ran only once that thread blocked (its next buffer and clock
 * wait) or another task there gave way. With a short slice it preempts. */
static void
gst_ivshmem_src_tune_thread (GstIvshmemSrc * self)
{
  GThread *thread = g_thread_self ();

  if (G_LIKELY (self->slice_thread == thread))
    return;
  ivshm_thread_slice_restore (&self->slice);
  self->slice_thread = thread;
  if (self->slice_ns == 0)
    return;
  if (ivshm_thread_slice_set (&self->slice, self->slice_ns))
    GST_DEBUG_OBJECT (self, "streaming thread's time slice: %" G_GUINT64_FORMAT
        " ns", self->slice_ns);
  else
    GST_DEBUG_OBJECT (self, "could not shorten the streaming thread's time "
        "slice (not Linux, or a real-time thread)");
}

/* ---- create ------------------------------------------------------------- */

GstFlowReturn
gst_ivshmem_src_create (GstPushSrc * psrc, GstBuffer ** out)
{
  GstIvshmemSrc *self = GST_IVSHMEM_SRC (psrc);
  GstIvshmemSrcWait wait = { 0 };
  GstFlowReturn ret;

  gst_ivshmem_src_tune_thread (self);
  if (self->eos)
    return GST_FLOW_EOS;
  if (self->pending_caps) {
    ret = gst_ivshmem_src_set_caps (self, gst_caps_ref (self->pending_caps));
    if (ret != GST_FLOW_OK)
      return ret;
  }
  wait.reset = TRUE;
  wait.producer_wait = WAIT_PRODUCER_MIN_NS;

  for (;;) {
    IvshmError err = { 0 };
    IvshmRecord rec;
    IvshmStatus st;

    if (gst_ivshmem_src_lost (self))
      return GST_FLOW_ERROR;
    if (!self->reader) {
      if (gst_ivshmem_src_check_region (self))
        return GST_FLOW_ERROR;
      ret = gst_ivshmem_src_wait_producer (self, &wait);
      if (ret == GST_FLOW_CUSTOM_SUCCESS)
        continue;
      if (ret != GST_FLOW_OK)
        return ret;
    }
    /* after this process was stopped: say that buffers downstream holds
     * may have been overwritten before anything more goes out */
    gst_ivshmem_consumer_check_lost (self->consumer);

    st = ivshm_reader_next (self->reader, &rec, &err);
    if (st == IVSHM_AGAIN) {
      if (gst_ivshmem_src_check_region (self))
        return GST_FLOW_ERROR;
      /* across a VM boundary every poll is an observation of the
       * producer's clock */
      if (!ivshm_reader_producer_local (self->reader))
        gst_ivshmem_src_look_clock (self);
      if (gst_ivshmem_src_wait_data (self, &wait))
        continue;
      GST_DEBUG_OBJECT (self, "unlocked while waiting for data");
      return GST_FLOW_FLUSHING;
    }
    if (st == IVSHM_PRODUCER_STALLED) {
      gst_ivshmem_src_producer_stalled (self, &err);
      continue;
    }
    wait.reset = TRUE;
    if (st == IVSHM_OK) {
      if (self->stalled)
        gst_ivshmem_src_producer_resumed (self);
      self->last_record_ns = ivshm_now_ns ();
      ret = gst_ivshmem_src_dispatch (self, &rec, out, &err);
    } else
      ret = GST_FLOW_ERROR;
    /* what was read may be zeros of a region that shrank; whatever the
     * reader made of them, say what happened to the file */
    if (gst_ivshmem_src_lost (self)) {
      if (ret == GST_FLOW_OK)
        gst_clear_buffer (out);
      return GST_FLOW_ERROR;
    }
    if (ret == GST_FLOW_ERROR && err.status != IVSHM_OK)
      ret = gst_ivshmem_src_handle_read_error (self, &err);
    if (ret != GST_FLOW_CUSTOM_SUCCESS)
      return ret;
  }
}
