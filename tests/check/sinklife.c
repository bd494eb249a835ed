/* gst-ivshmem: the sink across pauses, stalls and a second producer
 * SPDX-License-Identifier: MIT
 *
 * A sink at EOS keeps waiting for its first reader across PLAYING ->
 * PAUSED -> PLAYING. A producer that was stopped (SIGSTOP: a paused VM)
 * while another one took the region over stops with an error that says
 * so when it runs again, and the new producer said that it waited for
 * the old one's lease.
 *
 * The stopped producer is a gst-launch-1.0 process of its own: the signal
 * goes to the element's own process. Every wait has a deadline.
 */
#include "sinktest.h"

#include <gio/gio.h>

#include <signal.h>
#include <sys/prctl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- EOS before the first reader, across PAUSED ------------------------ */

static GstPadProbeReturn
eos_probe (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  if (GST_EVENT_TYPE (GST_PAD_PROBE_INFO_EVENT (info)) == GST_EVENT_EOS)
    g_atomic_int_set ((gint *) data, 1);
  return GST_PAD_PROBE_OK;
}

/* The sink has written EOS and waits for a first reader; the pipeline
 * goes PAUSED and PLAYING again. It must still wait: EOS posted now would
 * let the application stop the pipeline and lose the stream. */
GST_START_TEST (test_eos_wait_survives_pause)
{
  gchar *path = region_path ("eospause");
  gchar *desc = g_strdup_printf ("videotestsrc num-buffers=3 ! %s ! "
      "ivshmemsink name=sink device=%s size=%u", FRAME_CAPS, path,
      SMALL_REGION);
  GstElement *prod = launch (desc), *rd;
  GstPad *pad = gst_element_get_static_pad (by_name (prod, "sink"), "sink");
  GstBus *bus = gst_element_get_bus (prod);
  GstMessage *msg;
  gint eos_seen = 0;
  guint got = 0;
  GstBuffer *buf;

  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, eos_probe,
      &eos_seen, NULL);
  while (!g_atomic_int_get (&eos_seen))
    g_usleep (10 * 1000);
  /* let the sink write EOS and start waiting */
  g_usleep (500 * 1000);

  fail_if (gst_element_set_state (prod, GST_STATE_PAUSED) ==
      GST_STATE_CHANGE_FAILURE);
  fail_if (gst_element_set_state (prod, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_timed_pop_filtered (bus, 2 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (msg == NULL, "the sink finished (%s) before any reader "
      "attached, after PAUSED -> PLAYING", GST_MESSAGE_TYPE_NAME (msg));

  rd = reader (path);
  while ((buf = pull (rd, DEADLINE))) {
    fail_unless_equals_int (gst_buffer_get_size (buf), FRAME_W * FRAME_H);
    gst_buffer_unref (buf);
    got++;
  }
  fail_unless_equals_int (got, 3);
  msg = gst_bus_timed_pop_filtered (bus, DEADLINE * time_scale (),
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (msg != NULL && GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS);
  gst_message_unref (msg);

  stop (rd);
  stop (prod);
  gst_object_unref (bus);
  gst_object_unref (pad);
  unlink (path);
  g_free (path);
  g_free (desc);
}

GST_END_TEST;

/* ---- a producer stopped while another takes over ----------------------- */

/* The region's heartbeat moves (the producer in the child runs) */
static gboolean
heartbeat_moves (const gchar * path)
{
  gchar *data = NULL;
  gsize len = 0;
  guint64 a = 0, b = 0;

  /* producer_heartbeat at 0x048 */
  if (g_file_get_contents (path, &data, &len, NULL) && len >= 0x50)
    memcpy (&a, data + 0x48, sizeof a);
  g_free (data);
  g_usleep (300 * 1000);
  data = NULL;
  if (g_file_get_contents (path, &data, &len, NULL) && len >= 0x50)
    memcpy (&b, data + 0x48, sizeof b);
  g_free (data);
  return a != 0 && a != b;
}

static gboolean
info_says (GstElement * p, const gchar * what)
{
  GstBus *bus = gst_element_get_bus (p);
  GstMessage *msg;
  gboolean found = FALSE;

  while (!found && (msg = gst_bus_pop_filtered (bus, GST_MESSAGE_INFO))) {
    GError *err = NULL;

    gst_message_parse_info (msg, &err, NULL);
    found = strstr (err->message, what) != NULL;
    g_error_free (err);
    gst_message_unref (msg);
  }
  gst_object_unref (bus);
  return found;
}

/* the child dies with the test process, even stopped, even if the test
 * fails before it continues it */
static void
die_with_parent (gpointer data)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

/* Producer A (its own process) is stopped with SIGSTOP, as a paused VM
 * would be. Producer B takes the region over once A's lease expires, and
 * says that it waits. A, continued, must stop with an error that names the
 * takeover, not write into B's session. */
GST_START_TEST (test_takeover_of_a_stopped_producer)
{
  gchar *path = region_path ("takeover");
  gchar *size = g_strdup_printf ("size=%u", SMALL_REGION);
  gchar *dev = g_strdup_printf ("device=%s", path);
  GError *error = NULL;
  GSubprocessLauncher *l;
  GSubprocess *a;
  GstElement *b, *rd;
  gchar *out = NULL, *desc;
  GstBuffer *buf;
  pid_t pid;
  guint i;

  l = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE |
      G_SUBPROCESS_FLAGS_STDERR_MERGE);
  g_subprocess_launcher_set_child_setup (l, die_with_parent, NULL, NULL);
  a = g_subprocess_launcher_spawn (l, &error, "gst-launch-1.0",
      "videotestsrc", "is-live=true", "!", "video/x-raw,width=64,height=48",
      "!", "ivshmemsink", dev, size, NULL);
  g_object_unref (l);
  fail_unless (a != NULL, "gst-launch-1.0: %s", error ? error->message : "");
  pid = atoi (g_subprocess_get_identifier (a));
  for (i = 0; i < 100 && !heartbeat_moves (path); i++);
  fail_unless (i < 100, "producer A never started");
  fail_unless (kill (pid, SIGSTOP) == 0);

  desc = g_strdup_printf ("videotestsrc is-live=true ! %s ! ivshmemsink "
      "name=sink device=%s", FRAME_CAPS, path);
  b = launch (desc);
  fail_unless (info_says (b, "previous producer's lease"), "producer B did "
      "not say that it waited for A's lease");
  rd = reader (path);
  buf = pull (rd, DEADLINE);
  fail_unless (buf != NULL, "producer B's stream does not arrive");
  fail_unless_equals_int (gst_buffer_get_size (buf), FRAME_W * FRAME_H);
  gst_buffer_unref (buf);

  /* A runs again: it must notice and stop with an error */
  fail_unless (kill (pid, SIGCONT) == 0);
  fail_unless (g_subprocess_communicate_utf8 (a, NULL, NULL, &out, NULL,
          &error), "%s", error ? error->message : "");
  fail_unless (g_subprocess_get_if_exited (a));
  fail_if (g_subprocess_get_exit_status (a) == 0);
  fail_unless (strstr (out, "took over") != NULL, "producer A said: %s", out);

  /* B is untouched: its stream goes on */
  buf = pull (rd, DEADLINE);
  fail_unless (buf != NULL);
  fail_unless_equals_int (gst_buffer_get_size (buf), FRAME_W * FRAME_H);
  gst_buffer_unref (buf);

  stop (rd);
  stop (b);
  g_object_unref (a);
  unlink (path);
  g_free (out);
  g_free (desc);
  g_free (dev);
  g_free (size);
  g_free (path);
}

GST_END_TEST;

static Suite *
sinklife_suite (void)
{
  Suite *s = suite_create ("sinklife");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_eos_wait_survives_pause);
  tcase_add_test (tc, test_takeover_of_a_stopped_producer);
  return s;
}

GST_CHECK_MAIN (sinklife);
