/* gst-ivshmem: the sink's pool never deadlocks
 * SPDX-License-Identifier: MIT
 *
 * Upstream elements that keep the buffers they got from ivshmemsink's
 * zero-copy pool (a decoder's reference frames) must never stop the
 * stream, whatever the region's size.
 */
#include "sinktest.h"

#include <string.h>

static void
check_keeper (const gchar * name, guint keep, guint min)
{
  const guint n = 60;
  GQueue kept = G_QUEUE_INIT;
  GstElement *rd;
  guint i, from_pool = 0;
  Up u = { 0 };

  up_start (&u, name, min, TRUE, &rd);
  for (i = 0; i < n; i++) {
    GstBuffer *buf = up_alloc (&u), *got;

    if (is_pool_memory (buf))
      from_pool++;
    fill (buf, i);
    g_queue_push_tail (&kept, gst_buffer_ref (buf));
    fail_unless_equals_int (gst_app_src_push_buffer (u.appsrc, buf),
        GST_FLOW_OK);
    while (kept.length > (guint) keep)
      gst_buffer_unref (g_queue_pop_head (&kept));

    got = pull (rd, DEADLINE);
    fail_unless (got != NULL, "%s: frame %u did not arrive while upstream "
        "kept %u pool buffers", name, i, keep);
    fail_unless_equals_int (check (got), (gint) i);
    gst_buffer_unref (got);
  }
  /* what upstream still keeps is intact: moved, never overwritten */
  for (i = 0; i < kept.length; i++)
    fail_unless_equals_int (check (g_queue_peek_nth (&kept, i)),
        (gint) (n - kept.length + i));
  g_queue_clear_full (&kept, (GDestroyNotify) gst_buffer_unref);
  GST_INFO ("%s: %u of %u frames from the pool; zero-copy %" G_GUINT64_FORMAT
      ", copied %" G_GUINT64_FORMAT ", pool system buffers %" G_GUINT64_FORMAT
      ", moved out %" G_GUINT64_FORMAT, name, from_pool, n,
      sink_stat (u.prod, "zero-copy-buffers"),
      sink_stat (u.prod, "copied-buffers"),
      sink_stat (u.prod, "pool-system-buffers"),
      sink_stat (u.prod, "pool-buffers-moved"));
  /* the sink counts a buffer just after the reader may have it */
  for (i = 0; i < 100 && sink_stat (u.prod, "zero-copy-buffers") +
      sink_stat (u.prod, "copied-buffers") < n; i++)
    g_usleep (50 * 1000 * time_scale ());
  fail_unless_equals_uint64 (sink_stat (u.prod, "zero-copy-buffers") +
      sink_stat (u.prod, "copied-buffers"), n);
  if (min == 0)
    fail_unless (from_pool > 0, "%s: the pool was never used", name);
  stop (rd);
  up_finish (&u);
}

/* keeps four frames without saying so (min 0) in a ring of five */
GST_START_TEST (test_keeper_undeclared)
{
  check_keeper ("keep4", 4, 0);
}

GST_END_TEST;

/* keeps three, one more than the pool can hold at once */
GST_START_TEST (test_keeper_three)
{
  check_keeper ("keep3", 3, 0);
}

GST_END_TEST;

/* asks for eight buffers in the allocation: the pool refuses the config
 * (the ring cannot keep them), upstream takes memory of its own */
GST_START_TEST (test_keeper_declared_min_refused)
{
  check_keeper ("min8", 8, 8);
}

GST_END_TEST;

/* The one case the sink must wait for upstream: pool buffers that stay
 * *mapped* cannot be moved out of the ring. It says so (a warning that
 * names the cause), and goes on as soon as upstream lets go. */
GST_START_TEST (test_keeper_mapped_warns)
{
  const guint n = 20;
  GstMapInfo maps[2];
  GstBuffer *held[2];
  GstElement *rd;
  GstBus *bus;
  GstMessage *msg = NULL;
  guint i, got = 0, n_held = 0;
  Up u = { 0 };

  up_start (&u, "mapped", 0, TRUE, &rd);
  fail_unless (u.pool != NULL);
  bus = gst_element_get_bus (u.prod);
  for (i = 0; i < n; i++) {
    GstBuffer *buf = up_alloc (&u), *out;

    fill (buf, i);
    if (n_held < 2 && is_pool_memory (buf)) {
      /* kept mapped, as a decoder that reads its references would */
      held[n_held] = gst_buffer_ref (buf);
      fail_unless (gst_buffer_map (held[n_held], &maps[n_held], GST_MAP_READ));
      n_held++;
    }
    fail_unless_equals_int (gst_app_src_push_buffer (u.appsrc, buf),
        GST_FLOW_OK);
    out = pull (rd, 200 * GST_MSECOND);
    if (!out && n_held > 0) {
      /* the sink waits for us: it must say so */
      if (msg)
        gst_message_unref (msg);
      msg = gst_bus_timed_pop_filtered (bus, DEADLINE * time_scale (),
          GST_MESSAGE_WARNING);
      fail_unless (msg != NULL, "frame %u: the sink waits for upstream's "
          "mapped pool buffers without a word", i);
      while (n_held > 0) {
        n_held--;
        gst_buffer_unmap (held[n_held], &maps[n_held]);
        gst_buffer_unref (held[n_held]);
      }
      out = pull (rd, DEADLINE);
    }
    fail_unless (out != NULL, "frame %u did not arrive", i);
    fail_unless_equals_int (check (out), (gint) i);
    gst_buffer_unref (out);
    got++;
  }
  if (msg) {
    GError *err = NULL;

    gst_message_parse_warning (msg, &err, NULL);
    GST_INFO ("the sink said: %s", err->message);
    fail_unless (strstr (err->message, "mapped") != NULL, "%s", err->message);
    g_error_free (err);
    gst_message_unref (msg);
  }
  while (n_held > 0) {
    n_held--;
    gst_buffer_unmap (held[n_held], &maps[n_held]);
    gst_buffer_unref (held[n_held]);
  }
  fail_unless_equals_int (got, n);
  gst_object_unref (bus);
  stop (rd);
  up_finish (&u);
}

GST_END_TEST;

static Suite *
sinkpool_suite (void)
{
  Suite *s = suite_create ("sinkpool");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_keeper_undeclared);
  tcase_add_test (tc, test_keeper_three);
  tcase_add_test (tc, test_keeper_declared_min_refused);
  tcase_add_test (tc, test_keeper_mapped_warns);
  return s;
}

GST_CHECK_MAIN (sinkpool);
