/* gst-ivshmem: ivshmemsrc's streaming thread and the Linux scheduler
 * SPDX-License-Identifier: MIT
 *
 * scheduler-slice (docs/latency.md: where the latency tail went):
 * while it streams, the source's streaming thread has the slice it asked
 * for; once the source stops, the thread (back in GStreamer's pool) has
 * the slice it had before; with scheduler-slice=0 it is left alone. The
 * slice is read with sched_getattr() in fakesink's handoff, which runs in
 * the streaming thread. A kernel without per-thread slices (Linux before
 * 6.12, not Linux) skips the cases and says so.
 *
 * Checked by mutation: with the call in create() removed, the first case
 * failed (the thread had the default slice); with the restore in stop()
 * removed, it failed after the stop (the pool thread kept 100 us).
 * Performance is not asserted here: tests/bench/run.py --only latency.
 */
#include <gst/check/gstcheck.h>

#include "ivshmem-os.h"
#include "ivshmem-region.h"
#include "ivshmem-ring.h"

#include <string.h>
#include <unistd.h>

#define MiB (G_GUINT64_CONSTANT (1024) * 1024)
#define SLICE_NS (100 * GST_USECOND)

typedef struct
{
  GMutex lock;
  GCond cond;
  guint handoffs;
  gint64 tid;                   /* the streaming thread */
  guint64 slice;                /* its slice in the first handoff */
} Seen;

/* Does this kernel keep a slice per thread? Asks for one on the calling
 * thread and gives it back. */
static gboolean
kernel_has_slices (guint64 * dflt)
{
  IvshmThreadSlice s = { 0 };
  guint64 got = 0;
  gboolean ok;

  if (!ivshm_thread_slice_get (0, dflt) || *dflt == SLICE_NS)
    return FALSE;
  if (!ivshm_thread_slice_set (&s, SLICE_NS))
    return FALSE;
  ok = ivshm_thread_slice_get (0, &got) && got == SLICE_NS;
  ivshm_thread_slice_restore (&s);
  return ok;
}

static void
on_handoff (GstElement * sink, GstBuffer * buf, GstPad * pad, Seen * seen)
{
  g_mutex_lock (&seen->lock);
  if (seen->handoffs++ == 0) {
    seen->tid = (gint64) gettid ();
    fail_unless (ivshm_thread_slice_get (0, &seen->slice));
  }
  g_cond_broadcast (&seen->cond);
  g_mutex_unlock (&seen->lock);
}

/* Streams one buffer through ivshmemsrc (with `props`) from a writer in
 * this process, stops the source, and returns what the handoff saw. */
static void
stream_one (const gchar * props, Seen * seen)
{
  gchar *path = g_strdup_printf ("/dev/shm/gst-ivshmem-check-%d-sched",
      (int) getpid ());
  gchar *desc = g_strdup_printf ("ivshmemsrc device=%s is-live=false %s ! "
      "fakesink name=sink sync=false async=false signal-handoffs=true", path,
      props);
  IvshmRegionOptions opts = { 0 };
  IvshmError err = { 0 };
  IvshmRecordHeader info = { 0 };
  IvshmRegion *region;
  IvshmWriter *writer;
  GstElement *pipeline, *sink;
  GError *error = NULL;
  guint8 data[64] = { 0 };
  gint64 deadline;

  unlink (path);
  opts.create_size = MiB;
  fail_unless_equals_int (ivshm_region_open (path, &opts, &region, &err),
      IVSHM_OK);
  fail_unless_equals_int (ivshm_writer_new (ivshm_region_data (region),
          ivshm_region_size (region), NULL, &writer, &err), IVSHM_OK);
  /* the reader attaches to a live producer; the record waits in the ring */
  ivshm_writer_heartbeat (writer);
  info.type = IVSHM_RECORD_BUFFER;
  info.pts = info.dts = info.duration = GST_CLOCK_TIME_NONE;
  info.offset = info.offset_end = GST_BUFFER_OFFSET_NONE;
  info.payload_len = sizeof data;

  pipeline = gst_parse_launch (desc, &error);
  fail_unless (pipeline != NULL && error == NULL, "%s", desc);
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  g_signal_connect (sink, "handoff", G_CALLBACK (on_handoff), seen);
  fail_if (gst_element_set_state (pipeline, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE);

  deadline = g_get_monotonic_time () + 10 * G_TIME_SPAN_SECOND;
  g_mutex_lock (&seen->lock);
  while (seen->handoffs == 0 && g_get_monotonic_time () < deadline) {
    g_mutex_unlock (&seen->lock);
    /* until the reader has attached and read it */
    ivshm_writer_heartbeat (writer);
    if (ivshm_writer_write (writer, &info, data) != IVSHM_OK)
      break;
    g_mutex_lock (&seen->lock);
    g_cond_wait_until (&seen->cond, &seen->lock,
        g_get_monotonic_time () + 20 * G_TIME_SPAN_MILLISECOND);
  }
  g_mutex_unlock (&seen->lock);
  fail_unless (seen->handoffs > 0, "no buffer came out of ivshmemsrc");

  fail_unless_equals_int (gst_element_set_state (pipeline, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);
  gst_object_unref (sink);
  gst_object_unref (pipeline);
  ivshm_writer_free (writer);
  ivshm_region_close (region);
  unlink (path);
  g_free (desc);
  g_free (path);
}

static void
seen_init (Seen * seen)
{
  memset (seen, 0, sizeof *seen);
  g_mutex_init (&seen->lock);
  g_cond_init (&seen->cond);
}

static void
seen_clear (Seen * seen)
{
  g_mutex_clear (&seen->lock);
  g_cond_clear (&seen->cond);
}

GST_START_TEST (test_slice_while_streaming)
{
  guint64 dflt = 0, after = 0, prop = 0;
  GstElement *src;
  Seen seen;

  if (!kernel_has_slices (&dflt)) {
    g_print ("SKIP test_slice_while_streaming: this kernel keeps no time "
        "slice per thread (Linux before 6.12, or not Linux)\n");
    return;
  }
  /* the default */
  src = gst_element_factory_make ("ivshmemsrc", NULL);
  g_object_get (src, "scheduler-slice", &prop, NULL);
  gst_object_unref (src);
  fail_unless_equals_uint64 (prop, SLICE_NS);

  seen_init (&seen);
  stream_one ("", &seen);
  fail_unless_equals_uint64 (seen.slice, SLICE_NS);
  /* stopped: the thread is back in the pool, with what it had */
  fail_unless (ivshm_thread_slice_get (seen.tid, &after),
      "the streaming thread %" G_GINT64_FORMAT " is gone", seen.tid);
  fail_unless_equals_uint64 (after, dflt);
  seen_clear (&seen);
}

GST_END_TEST;

GST_START_TEST (test_slice_zero_leaves_thread_alone)
{
  guint64 dflt = 0;
  Seen seen;

  if (!kernel_has_slices (&dflt)) {
    g_print ("SKIP test_slice_zero_leaves_thread_alone: this kernel keeps "
        "no time slice per thread (Linux before 6.12, or not Linux)\n");
    return;
  }
  seen_init (&seen);
  stream_one ("scheduler-slice=0", &seen);
  fail_unless_equals_uint64 (seen.slice, dflt);
  seen_clear (&seen);
}

GST_END_TEST;

static Suite *
srcsched_suite (void)
{
  Suite *s = suite_create ("srcsched");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_slice_while_streaming);
  tcase_add_test (tc, test_slice_zero_leaves_thread_alone);
  return s;
}

GST_CHECK_MAIN (srcsched);
