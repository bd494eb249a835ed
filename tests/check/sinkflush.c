/* gst-ivshmem: flushing wakes every thread that waits on the sink
 * SPDX-License-Identifier: MIT
 *
 * A flushing seek or a state change to NULL must wake every thread that
 * waits on a full ring, upstream threads blocked in the acquire of the
 * sink's pool included, with no reader or with a reader that stopped
 * reading; a pause must not flush upstream.
 */
#include "sinktest.h"

#include <unistd.h>

/* ---- flushing wakes an upstream thread blocked in acquire -------------- */

typedef struct
{
  GstBufferPool *pool;
  GstAppSrc *appsrc;
  GMutex lock;
  GCond cond;
  gboolean done;
  GstFlowReturn ret;
  guint pushed;
  gint in_acquire;              /* atomic */
  gint stop;                    /* atomic: the test gave up */
} Filler;

/* Waits until the sink has taken every buffer pushed so far, so that no
 * pool buffer waits in appsrc's queue when the next one is acquired. A
 * pool buffer that is queued, not yet committed, holds its place in the
 * ring: with the ring full, the pool then hands out ordinary memory
 * instead of waiting (it cannot tell such buffers from a decoder's
 * reference frames, which waiting would deadlock), and a filler that ran
 * ahead of the streaming thread (a loaded machine) would never wait in
 * acquire at all. FALSE: the test gave up. */
static gboolean
filler_drain (Filler * f)
{
  while (gst_app_src_get_current_level_buffers (f->appsrc) > 0) {
    if (g_atomic_int_get (&f->stop))
      return FALSE;
    g_usleep (1000);
  }
  return TRUE;
}

/* acquire, fill, push, until acquire fails */
static gpointer
filler_thread (gpointer data)
{
  Filler *f = data;
  GstFlowReturn ret = GST_FLOW_ERROR;

  while (filler_drain (f)) {
    GstBuffer *buf = NULL;

    g_atomic_int_set (&f->in_acquire, 1);
    ret = gst_buffer_pool_acquire_buffer (f->pool, &buf, NULL);
    g_atomic_int_set (&f->in_acquire, 0);
    if (ret != GST_FLOW_OK)
      break;
    fill (buf, f->pushed++);
    gst_app_src_push_buffer (f->appsrc, buf);
  }
  g_mutex_lock (&f->lock);
  f->ret = ret;
  f->done = TRUE;
  g_cond_broadcast (&f->cond);
  g_mutex_unlock (&f->lock);
  return NULL;
}

static gboolean
filler_wait (Filler * f, GstClockTime timeout)
{
  gint64 end = g_get_monotonic_time () +
      GST_TIME_AS_USECONDS (timeout) * time_scale ();
  gboolean done;

  g_mutex_lock (&f->lock);
  while (!f->done && g_cond_wait_until (&f->cond, &f->lock, end));
  done = f->done;
  g_mutex_unlock (&f->lock);
  return done;
}

/* what a flushing seek delivers to the sink */
static void
flush_sink (Up * u, gboolean start)
{
  GstPad *pad = gst_element_get_static_pad (by_name (u->prod, "sink"),
      "sink");

  fail_unless (gst_pad_send_event (pad, start ?
          gst_event_new_flush_start () : gst_event_new_flush_stop (TRUE)));
  gst_object_unref (pad);
}

/* The ring fills (no reader: the sink keeps everything for a first one;
 * or a reader that stopped reading) and the filler thread blocks in the
 * pool's acquire. A flushing seek, or a state change to NULL, must wake
 * it. The flush is sent to the sink's pad, as a flushing seek from an
 * element upstream of the test's thread would. */
static void
check_flush_wakes_acquire (const gchar * name, gboolean stalled_reader,
    gboolean to_null)
{
  GstElement *rd = NULL;
  Filler f = { 0 };
  GThread *t;
  guint before;
  Up u = { 0 };
  gint64 end;

  /* 4 KiB frames: the pool may keep twelve, so the ring fills with
   * published ones and the acquire waits for the readers */
  up_start_full (&u, name, "video/x-raw,format=GRAY8,width=64,height=64,"
      "framerate=30/1", 0, stalled_reader, &rd);
  fail_unless (u.pool != NULL);
  /* pushes never wait, and the filler acquires only once the sink took
   * what it pushed (filler_drain): it can only wait in acquire, where the
   * flush must reach it (appsrc itself is not flushed by the test) */
  g_object_set (u.appsrc, "block", FALSE, "max-buffers", (guint64) 0, NULL);
  g_mutex_init (&f.lock);
  g_cond_init (&f.cond);
  f.pool = u.pool;
  f.appsrc = u.appsrc;
  t = g_thread_new ("filler", filler_thread, &f);

  /* the ring is full when the filler waits in acquire and nothing more
   * is pushed for a while */
  end = g_get_monotonic_time () + 3 * GST_TIME_AS_USECONDS (DEADLINE) *
      time_scale ();
  do {
    before = g_atomic_int_get (&f.pushed);
    g_usleep (300 * 1000);
    if (g_get_monotonic_time () > end) {
      g_atomic_int_set (&f.stop, 1);
      fail ("%s: the filler never waited in the pool's acquire (%u "
          "buffers pushed, %" G_GUINT64_FORMAT " in ordinary memory)", name,
          g_atomic_int_get (&f.pushed),
          sink_stat (u.prod, "pool-system-buffers"));
    }
  } while ((guint) g_atomic_int_get (&f.pushed) != before ||
      !g_atomic_int_get (&f.in_acquire));
  fail_if (filler_wait (&f, 0), "acquire failed: %s",
      gst_flow_get_name (f.ret));

  if (to_null) {
    fail_unless (gst_element_set_state (u.prod, GST_STATE_NULL) ==
        GST_STATE_CHANGE_SUCCESS);
  } else {
    flush_sink (&u, TRUE);
  }
  fail_unless (filler_wait (&f, DEADLINE), "%s: an upstream thread is "
      "still blocked in the pool's acquire after %s", name,
      to_null ? "the state change to NULL" : "a flush");
  fail_unless_equals_int (f.ret, GST_FLOW_FLUSHING);
  g_thread_join (t);

  if (!to_null) {
    /* a seek sends FLUSH_STOP once the upstream threads have stopped */
    flush_sink (&u, FALSE);
  }
  if (!to_null) {
    GstBufferPoolAcquireParams params = {
      .flags = GST_BUFFER_POOL_ACQUIRE_FLAG_DONTWAIT
    };
    GstBuffer *buf = NULL;
    GstFlowReturn ret;

    /* after the flush the pool works again: full (EOS, DONTWAIT), or a
     * buffer, not FLUSHING */
    ret = gst_buffer_pool_acquire_buffer (u.pool, &buf, &params);
    fail_if (ret == GST_FLOW_FLUSHING, "the pool stays flushing");
    gst_clear_buffer (&buf);
  }
  if (rd)
    stop (rd);
  up_finish (&u);
  g_mutex_clear (&f.lock);
  g_cond_clear (&f.cond);
}

GST_START_TEST (test_flush_seek_wakes_acquire_no_reader)
{
  check_flush_wakes_acquire ("seek-noreader", FALSE, FALSE);
}

GST_END_TEST;

GST_START_TEST (test_flush_seek_wakes_acquire_stalled_reader)
{
  check_flush_wakes_acquire ("seek-stalled", TRUE, FALSE);
}

GST_END_TEST;

GST_START_TEST (test_null_wakes_acquire_no_reader)
{
  check_flush_wakes_acquire ("null-noreader", FALSE, TRUE);
}

GST_END_TEST;

GST_START_TEST (test_null_wakes_acquire_stalled_reader)
{
  check_flush_wakes_acquire ("null-stalled", TRUE, TRUE);
}

GST_END_TEST;

/* ---- the streaming thread blocked, flushing seek and NULL -------------- */

typedef struct
{
  GstElement *p;
  GstStateChangeReturn ret;
  gboolean seek, done;
  GMutex lock;
  GCond cond;
} Changer;

static gpointer
changer_thread (gpointer data)
{
  Changer *c = data;
  GstStateChangeReturn ret;

  if (c->seek)
    ret = gst_element_seek_simple (c->p, GST_FORMAT_TIME,
        GST_SEEK_FLAG_FLUSH, 0) ? GST_STATE_CHANGE_SUCCESS :
        GST_STATE_CHANGE_FAILURE;
  else
    ret = gst_element_set_state (c->p, GST_STATE_NULL);
  g_mutex_lock (&c->lock);
  c->ret = ret;
  c->done = TRUE;
  g_cond_broadcast (&c->cond);
  g_mutex_unlock (&c->lock);
  return NULL;
}

/* videotestsrc fills the ring (through the pool, or copied) and blocks:
 * the seek or the state change returns, from a thread of its own so that
 * a hang fails the test instead of stopping it. */
static void
check_streaming_blocked (const gchar * name, const gchar * caps,
    gboolean stalled_reader, gboolean seek)
{
  gchar *path = region_path (name);
  gchar *desc = g_strdup_printf ("videotestsrc ! %s ! ivshmemsink "
      "name=sink device=%s size=%u", caps, path, SMALL_REGION);
  GstElement *prod = launch (desc), *rd = NULL;
  Changer c = {.p = prod,.seek = seek };
  guint64 before;
  gint64 end;
  GThread *t;

  if (stalled_reader)
    rd = reader (path);
  do {
    before = sink_stat (prod, "records");
    g_usleep (300 * 1000);
  } while (sink_stat (prod, "records") != before || before == 0);

  g_mutex_init (&c.lock);
  g_cond_init (&c.cond);
  t = g_thread_new ("changer", changer_thread, &c);
  end = g_get_monotonic_time () + GST_TIME_AS_USECONDS (DEADLINE) *
      time_scale ();
  g_mutex_lock (&c.lock);
  while (!c.done && g_cond_wait_until (&c.cond, &c.lock, end));
  g_mutex_unlock (&c.lock);
  fail_unless (c.done, "%s: %s did not return with a full ring", name,
      seek ? "a flushing seek" : "the state change to NULL");
  g_thread_join (t);
  fail_unless (c.ret != GST_STATE_CHANGE_FAILURE);

  if (rd)
    stop (rd);
  stop (prod);
  unlink (path);
  g_free (path);
  g_free (desc);
  g_mutex_clear (&c.lock);
  g_cond_clear (&c.cond);
}

GST_START_TEST (test_streaming_blocked_seek_and_null)
{
  const gchar *pool_caps = FRAME_CAPS;
  /* 48 KiB frames: too big for a pool in this ring, copied */
  const gchar *copy_caps = "video/x-raw,format=GRAY8,width=256,height=192";

  check_streaming_blocked ("sb1", pool_caps, FALSE, TRUE);
  check_streaming_blocked ("sb2", pool_caps, TRUE, TRUE);
  check_streaming_blocked ("sb3", pool_caps, FALSE, FALSE);
  check_streaming_blocked ("sb4", pool_caps, TRUE, FALSE);
  check_streaming_blocked ("sb5", copy_caps, FALSE, TRUE);
  check_streaming_blocked ("sb6", copy_caps, TRUE, FALSE);
}

GST_END_TEST;

/* ---- a pause is not a flush ------------------------------------------- */

/* videotestsrc waits in the pool's acquire (the ring is full: no reader
 * yet). PLAYING -> PAUSED -> PLAYING unlocks the sink, but is no flush:
 * upstream must not get FLUSHING from the pool (its streaming thread would
 * stop for good). Once a reader comes, every frame arrives, then EOS. */
GST_START_TEST (test_pause_does_not_stop_upstream)
{
  const guint n = 40;
  gchar *path = region_path ("pause");
  gchar *desc = g_strdup_printf ("videotestsrc num-buffers=%u ! "
      "video/x-raw,format=GRAY8,width=64,height=64,framerate=30/1 ! "
      "ivshmemsink name=sink device=%s size=%u", n, path, SMALL_REGION);
  GstElement *prod = launch (desc), *rd;
  GstBuffer *buf;
  guint64 before;
  guint got = 0;

  do {
    before = sink_stat (prod, "records");
    g_usleep (300 * 1000);
  } while (sink_stat (prod, "records") != before || before == 0);
  fail_unless (sink_stat (prod, "buffers") < n, "the ring took everything");

  fail_if (gst_element_set_state (prod, GST_STATE_PAUSED) ==
      GST_STATE_CHANGE_FAILURE);
  fail_if (gst_element_set_state (prod, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE);

  rd = reader (path);
  while ((buf = pull (rd, DEADLINE))) {
    gst_buffer_unref (buf);
    got++;
  }
  fail_unless_equals_int (got, n);
  fail_unless (gst_app_sink_is_eos (GST_APP_SINK (by_name (rd, "sink"))));
  stop (rd);
  stop (prod);
  unlink (path);
  g_free (path);
  g_free (desc);
}

GST_END_TEST;
static Suite *
sinkflush_suite (void)
{
  Suite *s = suite_create ("sinkflush");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_flush_seek_wakes_acquire_no_reader);
  tcase_add_test (tc, test_flush_seek_wakes_acquire_stalled_reader);
  tcase_add_test (tc, test_null_wakes_acquire_no_reader);
  tcase_add_test (tc, test_null_wakes_acquire_stalled_reader);
  tcase_add_test (tc, test_streaming_blocked_seek_and_null);
  tcase_add_test (tc, test_pause_does_not_stop_upstream);
  return s;
}

GST_CHECK_MAIN (sinkflush);
