/* gst-ivshmem: ivshmemsrc when its own process lets it down
 * SPDX-License-Identifier: MIT
 *
 * - The heartbeat thread cannot start: pthread_create() is interposed
 *   here and fails for calls made from the plugin (found with dladdr() on
 *   the caller), so only the source's lease thread fails; the producer in
 *   this test and GStreamer's own threads start as usual.
 * - unlock() racing with the streaming thread leaving a region: flushes
 *   sent to the source while a producer restarts again and again, so that
 *   the source reattaches (and unmaps the old region) all the time.
 *   munmap() is interposed so that a region the plugin lets go stays
 *   reserved and inaccessible: a late access faults at once instead of
 *   landing in whatever is mapped there next.
 *
 * - The producer stalls (its heartbeat stops) and goes on: the source
 *   warns, waits, and reads on.
 * - Every reader slot is held by a live reader: the error says so.
 * - A reader process stopped past its lease is dropped by a lossless
 *   producer: the error says so (a real gst-launch-1.0 process).
 *
 * The producer is the core's IvshmWriter, driven by the test.
 */
#include <gst/check/gstcheck.h>

#include "ivshmem-region.h"
#include "ivshmem-ring.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define REGION_SIZE (256 * 1024)

/* ---- interposers -------------------------------------------------------- */

static volatile gint fail_plugin_threads;
static volatile gint keep_unmapped_regions;

static gboolean
called_from_plugin (const void *caller)
{
  Dl_info info;

  return dladdr (caller, &info) && info.dli_fname &&
      strstr (info.dli_fname, "libgstivshmem") != NULL;
}

int
pthread_create (pthread_t * thread, const pthread_attr_t * attr,
    void *(*fn) (void *), void *arg)
{
  static int (*real) (pthread_t *, const pthread_attr_t *,
      void *(*)(void *), void *);

  if (!real)
    real = dlsym (RTLD_NEXT, "pthread_create");
  if (g_atomic_int_get (&fail_plugin_threads) &&
      called_from_plugin (__builtin_return_address (0)))
    return EAGAIN;
  return real (thread, attr, fn, arg);
}

int
munmap (void *addr, size_t len)
{
  static int (*real) (void *, size_t);

  if (!real)
    real = dlsym (RTLD_NEXT, "munmap");
  if (g_atomic_int_get (&keep_unmapped_regions) && len == REGION_SIZE &&
      called_from_plugin (__builtin_return_address (0)))
    return mmap (addr, len, PROT_NONE, MAP_FIXED | MAP_PRIVATE |
        MAP_ANONYMOUS, -1, 0) == MAP_FAILED ? -1 : 0;
  return real (addr, len);
}

/* ---- a producer --------------------------------------------------------- */

static gchar *
shm_path (const gchar * name)
{
  gchar *path = g_strdup_printf ("/dev/shm/gst-ivshmem-srcfaults-%d-%s",
      (int) getpid (), name);

  unlink (path);
  return path;
}

static IvshmRegion *
region_create (const gchar * path)
{
  IvshmRegionOptions opts = { 0 };
  IvshmError err = { 0 };
  IvshmRegion *region = NULL;

  opts.create_size = REGION_SIZE;
  fail_unless_equals_int (ivshm_region_open (path, &opts, &region, &err),
      IVSHM_OK);
  return region;
}

static IvshmWriter *
writer_new (IvshmRegion * region)
{
  IvshmError err = { 0 };
  IvshmWriter *w = NULL;

  IvshmStatus st = ivshm_writer_new (ivshm_region_data (region),
      ivshm_region_size (region), NULL, &w, &err);

  fail_unless (st == IVSHM_OK, "%s", err.detail);
  return w;
}

static void
write_caps_and_buffer (IvshmWriter * w)
{
  static const gchar caps[] = "application/x-srcfaults";
  IvshmRecordHeader info;
  guint8 payload[256] = { 0 };

  memset (&info, 0, sizeof info);
  info.type = IVSHM_RECORD_CAPS;
  info.pts = info.dts = info.duration = IVSHM_TIME_NONE;
  info.offset = info.offset_end = IVSHM_TIME_NONE;
  info.payload_len = sizeof caps;
  ivshm_writer_write (w, &info, caps);
  info.type = IVSHM_RECORD_BUFFER;
  info.payload_len = sizeof payload;
  ivshm_writer_write (w, &info, payload);
}

/* An error on the bus within `timeout`, or NULL. */
static GstMessage *
wait_error (GstElement * pipeline, GstClockTime timeout)
{
  GstBus *bus = gst_element_get_bus (pipeline);
  GstMessage *msg = gst_bus_timed_pop_filtered (bus, timeout,
      GST_MESSAGE_ERROR);

  gst_object_unref (bus);
  return msg;
}

/* ---- tests -------------------------------------------------------------- */

/* Old code: the source ignored the failure and read on without renewing
 * its lease, so a lossless producer would drop it after 3 s. Now it is an
 * element error that says why. */
GST_START_TEST (test_heartbeat_thread_fails)
{
  gchar *path = shm_path ("heartbeat");
  IvshmRegion *region = region_create (path);
  IvshmWriter *w = writer_new (region);
  gchar *desc = g_strdup_printf ("ivshmemsrc device=%s ! fakesink", path);
  GstElement *pipeline = gst_parse_launch (desc, NULL);
  GstMessage *msg;
  GError *gerr = NULL;
  gchar *dbg = NULL;

  fail_unless (pipeline != NULL);
  write_caps_and_buffer (w);
  g_atomic_int_set (&fail_plugin_threads, 1);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  msg = wait_error (pipeline, 20 * GST_SECOND);
  g_atomic_int_set (&fail_plugin_threads, 0);
  fail_unless (msg != NULL, "no error although the source's heartbeat "
      "thread could not start");
  gst_message_parse_error (msg, &gerr, &dbg);
  GST_INFO ("error: %s (%s)", gerr->message, dbg);
  fail_unless (strstr (gerr->message, "lease") != NULL, "%s", gerr->message);
  g_clear_error (&gerr);
  g_free (dbg);
  gst_message_unref (msg);

  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);
  g_free (desc);
  ivshm_writer_free (w);
  ivshm_region_close (region);
  unlink (path);
  g_free (path);
}

GST_END_TEST;

typedef struct
{
  GstElement *src;
  volatile gint stop;
  guint flushes;
} Flusher;

static gpointer
flusher_main (gpointer data)
{
  Flusher *f = data;

  while (!g_atomic_int_get (&f->stop)) {
    gst_element_send_event (f->src, gst_event_new_flush_start ());
    gst_element_send_event (f->src, gst_event_new_flush_stop (FALSE));
    f->flushes++;
    g_usleep (50);
  }
  return NULL;
}

/* unlock() must not touch a region the streaming thread just let go. */
GST_START_TEST (test_unlock_during_reattach)
{
  gchar *path = shm_path ("unlock");
  IvshmRegion *region = region_create (path);
  gchar *desc = g_strdup_printf ("ivshmemsrc name=src device=%s "
      "is-live=false ! fakesink sync=false", path);
  GstElement *pipeline = gst_parse_launch (desc, NULL);
  Flusher f = { 0 };
  GThread *thread;
  GstStructure *stats = NULL;
  guint64 reconnects = 0;
  gint64 deadline;
  guint sessions = 0;
  GstMessage *msg;

  fail_unless (pipeline != NULL);
  f.src = gst_bin_get_by_name (GST_BIN (pipeline), "src");
  g_atomic_int_set (&keep_unmapped_regions, 1);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  thread = g_thread_new ("flusher", flusher_main, &f);

  deadline = g_get_monotonic_time () + 3 * G_USEC_PER_SEC;
  while (g_get_monotonic_time () < deadline) {
    IvshmWriter *w = writer_new (region);

    write_caps_and_buffer (w);
    g_usleep (1000);
    ivshm_writer_free (w);      /* closed: the reader follows the next */
    sessions++;
    g_usleep (1000);
  }
  g_atomic_int_set (&f.stop, 1);
  g_thread_join (thread);

  g_object_get (f.src, "stats", &stats, NULL);
  gst_structure_get_uint64 (stats, "reconnects", &reconnects);
  gst_structure_free (stats);
  GST_INFO ("%u sessions, %" G_GUINT64_FORMAT " followed, %u flushes",
      sessions, reconnects, f.flushes);
  msg = wait_error (pipeline, 0);
  if (msg) {
    GError *gerr = NULL;
    gchar *dbg = NULL;

    gst_message_parse_error (msg, &gerr, &dbg);
    fail ("an error from the source: %s (%s)", gerr->message, dbg);
  }
  gst_element_set_state (pipeline, GST_STATE_NULL);
  g_atomic_int_set (&keep_unmapped_regions, 0);
  gst_object_unref (f.src);
  gst_object_unref (pipeline);
  g_free (desc);
  ivshm_region_close (region);
  unlink (path);
  g_free (path);
}

GST_END_TEST;

static void
producer_tick (void *data)
{
  ivshm_writer_heartbeat (data);
}

static void
write_buffer (IvshmWriter * w, guint8 seq)
{
  IvshmRecordHeader info;
  guint8 payload[64];

  memset (payload, seq, sizeof payload);
  memset (&info, 0, sizeof info);
  info.type = IVSHM_RECORD_BUFFER;
  info.pts = info.dts = info.duration = IVSHM_TIME_NONE;
  info.offset = info.offset_end = IVSHM_TIME_NONE;
  info.payload_len = sizeof payload;
  fail_unless_equals_int (ivshm_writer_write (w, &info, payload), IVSHM_OK);
}

static void
on_handoff (GstElement * sink, GstBuffer * buf, GstPad * pad, gpointer data)
{
  g_atomic_int_inc ((gint *) data);
}

static gboolean
wait_count (volatile gint * count, gint n, gint64 timeout_us)
{
  gint64 deadline = g_get_monotonic_time () + timeout_us;

  while (g_atomic_int_get (count) < n && g_get_monotonic_time () < deadline)
    g_usleep (10 * 1000);
  return g_atomic_int_get (count) >= n;
}

/* A message of `type` whose text contains `text`, within `timeout`. */
static gboolean
wait_message (GstElement * pipeline, GstMessageType type, const gchar * text,
    GstClockTime timeout)
{
  GstBus *bus = gst_element_get_bus (pipeline);
  gint64 deadline = g_get_monotonic_time () + timeout / 1000;
  gboolean found = FALSE;

  while (!found && g_get_monotonic_time () < deadline) {
    GstMessage *msg = gst_bus_timed_pop_filtered (bus, 100 * GST_MSECOND,
        type | GST_MESSAGE_ERROR);
    GError *gerr = NULL;
    gchar *dbg = NULL;

    if (!msg)
      continue;
    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
      gst_message_parse_error (msg, &gerr, &dbg);
      fail ("error: %s (%s)", gerr->message, dbg);
    }
    if (type == GST_MESSAGE_WARNING)
      gst_message_parse_warning (msg, &gerr, &dbg);
    else
      gst_message_parse_info (msg, &gerr, &dbg);
    GST_INFO ("%s: %s (%s)", GST_MESSAGE_TYPE_NAME (msg), gerr->message, dbg);
    found = strstr (gerr->message, text) != NULL;
    g_clear_error (&gerr);
    g_free (dbg);
    gst_message_unref (msg);
  }
  gst_object_unref (bus);
  return found;
}

/* The producer's heartbeat stops for longer than the producer timeout (a
 * paused VM; here its heartbeat thread stops), then goes on. The source
 * warns, keeps its place and reads the rest: nothing lost. On the old
 * code it gave up on the session after 2 s and never read again. */
GST_START_TEST (test_stalled_producer_followed)
{
  gchar *path = shm_path ("stall");
  IvshmRegion *region = region_create (path);
  IvshmWriter *w = writer_new (region);
  IvshmTicker *ticker = ivshm_ticker_start (0, producer_tick, w);
  gchar *desc = g_strdup_printf ("ivshmemsrc device=%s is-live=false ! "
      "fakesink name=sink sync=false signal-handoffs=true", path);
  GstElement *pipeline = gst_parse_launch (desc, NULL);
  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  volatile gint count = 0;
  gboolean warned;
  guint i;

  fail_unless (ticker != NULL);
  g_signal_connect (sink, "handoff", G_CALLBACK (on_handoff), (gpointer) &
      count);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  write_caps_and_buffer (w);
  for (i = 1; i < 5; i++)
    write_buffer (w, i);
  fail_unless (wait_count (&count, 5, 20 * G_USEC_PER_SEC));

  /* silence: the heartbeat stops for good until we start it again */
  ivshm_ticker_stop (ticker);
  warned = wait_message (pipeline, GST_MESSAGE_WARNING, "still waiting",
      15 * GST_SECOND);
  /* it moves again */
  ticker = ivshm_ticker_start (0, producer_tick, w);
  for (i = 5; i < 10; i++)
    write_buffer (w, i);
  fail_unless (wait_count (&count, 10, 20 * G_USEC_PER_SEC),
      "%d of 10 buffers after the producer moved again", count);
  fail_unless (warned, "no warning about the silent producer");
  fail_unless (wait_message (pipeline, GST_MESSAGE_INFO, "moved again",
          5 * GST_SECOND));

  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (sink);
  gst_object_unref (pipeline);
  g_free (desc);
  ivshm_ticker_stop (ticker);
  ivshm_writer_free (w);
  ivshm_region_close (region);
  unlink (path);
  g_free (path);
}

GST_END_TEST;

static void
readers_tick (void *data)
{
  GPtrArray *readers = data;
  guint i;

  for (i = 0; i < readers->len; i++)
    ivshm_reader_heartbeat (g_ptr_array_index (readers, i));
}

/* 32 live readers hold every slot: the source fails with an error that
 * says so, how many are live, and how to look. */
GST_START_TEST (test_no_free_slot)
{
  gchar *path = shm_path ("noslot");
  IvshmRegion *region = region_create (path);
  IvshmWriter *w = writer_new (region);
  GPtrArray *readers = g_ptr_array_new ();
  IvshmTicker *ticker;
  gchar *desc = g_strdup_printf ("ivshmemsrc device=%s ! fakesink", path);
  GstElement *pipeline = gst_parse_launch (desc, NULL);
  GstMessage *msg;
  GError *gerr = NULL;
  gchar *dbg = NULL;
  guint i;

  write_caps_and_buffer (w);
  for (i = 0; i < IVSHM_MAX_READERS; i++) {
    IvshmError err = { 0 };
    IvshmReader *r = NULL;

    fail_unless_equals_int (ivshm_reader_new (ivshm_region_data (region),
            ivshm_region_size (region), NULL, &r, &err), IVSHM_OK);
    g_ptr_array_add (readers, r);
  }
  ticker = ivshm_ticker_start (0, readers_tick, readers);
  fail_unless (ticker != NULL);

  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  msg = wait_error (pipeline, 30 * GST_SECOND);
  fail_unless (msg != NULL, "no error with every slot taken");
  gst_message_parse_error (msg, &gerr, &dbg);
  GST_INFO ("error: %s (%s)", gerr->message, dbg);
  fail_unless (g_error_matches (gerr, GST_RESOURCE_ERROR,
          GST_RESOURCE_ERROR_BUSY));
  fail_unless (strstr (gerr->message, "reader slot") != NULL);
  fail_unless (strstr (dbg, "32 by readers whose heartbeat moves") != NULL,
      "%s", dbg);
  fail_unless (strstr (dbg, "ivshmem-info") != NULL, "%s", dbg);
  g_clear_error (&gerr);
  g_free (dbg);
  gst_message_unref (msg);

  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);
  g_free (desc);
  ivshm_ticker_stop (ticker);
  for (i = 0; i < readers->len; i++)
    ivshm_reader_free (g_ptr_array_index (readers, i));
  g_ptr_array_free (readers, TRUE);
  ivshm_writer_free (w);
  ivshm_region_close (region);
  unlink (path);
  g_free (path);
}

GST_END_TEST;

/* A reader process stopped (SIGSTOP, as a paused guest's reader would
 * be) for longer than its lease: the lossless producer's periodic work
 * reaps its slot. When the process goes on, a source with
 * on-evicted=error fails with an error that says why and that the policy
 * is lossless (by default it joins again: tests/lifecycle/frozen.py). */
GST_START_TEST (test_evicted_reader_says_why)
{
  gchar *path = shm_path ("evicted");
  IvshmRegion *region = region_create (path);
  IvshmWriter *w = writer_new (region);
  gchar *out_path = g_strdup_printf ("%s.out", path);
  gchar *device = g_strdup_printf ("device=%s", path);
  const gchar *argv[] = { "gst-launch-1.0", "ivshmemsrc", device,
    "on-evicted=error", "!", "fakesink", "sync=false", NULL
  };
  gint64 deadline;
  gchar *out = NULL;
  pid_t pid;
  int status = 0, fd;
  guint i;

  write_caps_and_buffer (w);
  fd = open (out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  fail_unless (fd >= 0);
  pid = fork ();
  fail_unless (pid >= 0);
  if (pid == 0) {
    dup2 (fd, 1);
    dup2 (fd, 2);
    execvp (argv[0], (char **) argv);
    _exit (127);
  }
  close (fd);

  /* let it attach and read (a slow start under the sanitizers), then
   * stop it for two leases */
  deadline = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;
  while (ivshm_writer_count_readers (w) == 0 &&
      g_get_monotonic_time () < deadline) {
    ivshm_writer_tick (w);
    g_usleep (100 * 1000);
  }
  fail_unless (ivshm_writer_count_readers (w) > 0, "the reader never came");
  for (i = 0; i < 5; i++) {
    ivshm_writer_tick (w);
    g_usleep (100 * 1000);
  }
  kill (pid, SIGSTOP);
  for (i = 0; i < 70; i++) {
    ivshm_writer_tick (w);
    g_usleep (100 * 1000);
  }
  kill (pid, SIGCONT);
  write_buffer (w, 1);

  deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;
  while (waitpid (pid, &status, WNOHANG) == 0) {
    if (g_get_monotonic_time () > deadline) {
      kill (pid, SIGKILL);
      waitpid (pid, &status, 0);
      fail ("the stopped reader did not notice that it was dropped");
    }
    ivshm_writer_tick (w);
    g_usleep (100 * 1000);
  }
  fail_unless (g_file_get_contents (out_path, &out, NULL, NULL));
  GST_INFO ("reader output:\n%s", out);
  fail_unless (WIFEXITED (status) && WEXITSTATUS (status) != 0, "%s", out);
  fail_unless (strstr (out, "stopped renewing its lease") != NULL, "%s", out);
  fail_unless (strstr (out, "policy is lossless") != NULL, "%s", out);

  g_free (out);
  unlink (out_path);
  g_free (out_path);
  g_free (device);
  ivshm_writer_free (w);
  ivshm_region_close (region);
  unlink (path);
  g_free (path);
}

GST_END_TEST;

static Suite *
srcfaults_suite (void)
{
  Suite *s = suite_create ("ivshmem-srcfaults");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_heartbeat_thread_fails);
  tcase_add_test (tc, test_unlock_during_reattach);
  tcase_add_test (tc, test_stalled_producer_followed);
  tcase_add_test (tc, test_no_free_slot);
  tcase_add_test (tc, test_evicted_reader_says_why);
  return s;
}

GST_CHECK_MAIN (srcfaults);
