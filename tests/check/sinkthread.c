/* gst-ivshmem: a heartbeat thread that cannot start is an error
 * SPDX-License-Identifier: MIT
 *
 * Without its heartbeat, readers take a producer for dead and a second
 * producer may take its region over. When the thread cannot be started
 * (the process reached its thread limit), ivshmemsink must fail with an
 * error that says so, not stream on without one. The failure is made by a
 * preload library (failthread.c) in a gst-launch-1.0 of its own; under
 * AddressSanitizer, whose own pthread_create comes first, the test is
 * skipped.
 */
#include <gst/check/gstcheck.h>
#include <gio/gio.h>

#include <string.h>
#include <unistd.h>

GST_START_TEST (test_sink_heartbeat_thread_fails)
{
  gchar *path = g_strdup_printf ("/dev/shm/gst-ivshmem-st-%d",
      (int) getpid ());
  gchar *dev = g_strdup_printf ("device=%s", path);
  gchar *shim = g_build_filename (g_getenv ("IVSHMEM_TEST_BUILDDIR"),
      "tests", "check", "libfailthread.so", NULL);
  GSubprocessLauncher *l;
  GSubprocess *p;
  GError *error = NULL;
  gchar *out = NULL;

  unlink (path);
  l = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE |
      G_SUBPROCESS_FLAGS_STDERR_MERGE);
  g_subprocess_launcher_setenv (l, "LD_PRELOAD", shim, TRUE);
  /* the old sink streamed on without a heartbeat and waited for ever
   * for a first reader: the time limit turns that into a failure */
  p = g_subprocess_launcher_spawn (l, &error, "timeout", "20",
      "gst-launch-1.0", "videotestsrc", "num-buffers=5", "!",
      "video/x-raw,width=64,height=48", "!", "ivshmemsink",
      dev, "size=131072", NULL);
  fail_unless (p != NULL, "%s", error ? error->message : "");
  fail_unless (g_subprocess_communicate_utf8 (p, NULL, NULL, &out, NULL,
          &error), "%s", error ? error->message : "");
  fail_unless (g_subprocess_get_if_exited (p));
  fail_unless (g_subprocess_get_exit_status (p) != 124, "the sink ran "
      "without a heartbeat thread: %s", out);
  fail_unless (g_subprocess_get_exit_status (p) != 0, "%s", out);
  fail_unless (strstr (out, "heartbeat thread") != NULL, "the error does "
      "not name the heartbeat thread: %s", out);

  unlink (path);
  g_object_unref (p);
  g_object_unref (l);
  g_free (out);
  g_free (shim);
  g_free (dev);
  g_free (path);
}

GST_END_TEST;

static Suite *
sinkthread_suite (void)
{
  Suite *s = suite_create ("sinkthread");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_sink_heartbeat_thread_fails);
  return s;
}

int
main (int argc, char **argv)
{
  const gchar *preload = g_getenv ("LD_PRELOAD");

  gst_check_init (&argc, &argv);
  if (preload && strstr (preload, "asan")) {
    g_print ("SKIP: AddressSanitizer's pthread_create comes before the "
        "test's preload library\n");
    return 77;
  }
  return gst_check_run_suite (sinkthread_suite (), "sinkthread", __FILE__);
}
