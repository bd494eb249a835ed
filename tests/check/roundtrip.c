/* gst-ivshmem: round trips between processes
 * SPDX-License-Identifier: MIT
 *
 * The sink and the source run in different processes over a /dev/shm
 * file, as they do between the host and a guest. Producers and readers are
 * gst-launch-1.0, or this binary re-executed as a reader (`--rt-dump`, see
 * rt-dump.c) where the test needs every buffer's caps, size, timestamps
 * and checksum. Children inherit the test environment (plugin paths) and
 * are killed when they miss their deadline.
 *
 * Under valgrind only this process is checked (--trace-children=no): the
 * children run natively.
 */
#include <gst/check/gstcheck.h>
#include <gst/app/gstappsrc.h>

#include "ivshmem-layout.h"
#include "ivshmem-region.h"
#include "fixture.h"
#include "rt-dump.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* the regions of this test: /dev/shm/gst-ivshmem-rt-PID-NAME */
#define shm_path(name) fixture_shm_path ("rt", name)

#define MiB (G_GUINT64_CONSTANT (1024) * 1024)

/* ---- child processes ---------------------------------------------------- */

typedef struct
{
  pid_t pid;
  gchar *out_path;
  gchar *err_path;
  gint status;                  /* waitpid() status once it ended */
  gboolean ended;
} Child;

static gchar *
self_path (void)
{
  const gchar *builddir = g_getenv ("IVSHMEM_TEST_BUILDDIR");
  gchar *path;

  if (builddir) {
    path = g_build_filename (builddir, "tests", "check", "test-roundtrip",
        NULL);
    if (g_file_test (path, G_FILE_TEST_IS_EXECUTABLE))
      return path;
    g_free (path);
  }
  path = g_file_read_link ("/proc/self/exe", NULL);
  fail_unless (path != NULL);
  return path;
}

static Child *
child_spawn (const gchar * const *argv)
{
  static gint counter;
  Child *c = g_new0 (Child, 1);
  gint n = g_atomic_int_add (&counter, 1);
  int out_fd, err_fd;
  gchar *cmd = g_strjoinv ("' '", (gchar **) argv);

  c->out_path = g_strdup_printf ("%s/gst-ivshmem-rt-%d-%d.out",
      g_get_tmp_dir (), (int) getpid (), n);
  c->err_path = g_strdup_printf ("%s/gst-ivshmem-rt-%d-%d.err",
      g_get_tmp_dir (), (int) getpid (), n);
  out_fd = open (c->out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  err_fd = open (c->err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  fail_unless (out_fd >= 0 && err_fd >= 0);
  GST_INFO ("spawning '%s'", cmd);
  g_free (cmd);

  c->pid = fork ();
  fail_unless (c->pid >= 0, "fork: %s", g_strerror (errno));
  if (c->pid == 0) {
    /* only async-signal-safe calls until exec */
    dup2 (out_fd, 1);
    dup2 (err_fd, 2);
    execvp (argv[0], (char **) argv);
    _exit (127);
  }
  close (out_fd);
  close (err_fd);
  return c;
}

static Child *
spawn_launch (const gchar * desc)
{
  gchar **args = NULL, **argv;
  GError *error = NULL;
  Child *c;
  guint i, n;

  fail_unless (g_shell_parse_argv (desc, NULL, &args, &error));
  n = g_strv_length (args);
  argv = g_new0 (gchar *, n + 2);
  argv[0] = g_strdup ("gst-launch-1.0");
  for (i = 0; i < n; i++)
    argv[i + 1] = args[i];
  g_free (args);
  c = child_spawn ((const gchar * const *) argv);
  g_strfreev (argv);
  return c;
}

static Child *
spawn_dump (const gchar * desc)
{
  gchar *self = self_path ();
  const gchar *argv[] = { self, "--rt-dump", desc, "40", NULL };
  Child *c = child_spawn (argv);

  g_free (self);
  return c;
}

/* Waits until the child ends, up to the deadline (monotonic us); kills it
 * when the deadline passes. TRUE if it ended on its own. */
static gboolean
child_wait (Child * c, gint64 deadline)
{
  while (!c->ended) {
    pid_t r = waitpid (c->pid, &c->status, WNOHANG);

    if (r == c->pid) {
      c->ended = TRUE;
      break;
    }
    fail_unless (r == 0, "waitpid: %s", g_strerror (errno));
    if (g_get_monotonic_time () >= deadline) {
      kill (c->pid, SIGKILL);
      waitpid (c->pid, &c->status, 0);
      return FALSE;
    }
    g_usleep (10 * 1000);
  }
  return TRUE;
}

static gchar *
child_read (const gchar * path)
{
  gchar *text = NULL;

  fail_unless (g_file_get_contents (path, &text, NULL, NULL));
  return text;
}

static gchar *
child_stdout (Child * c)
{
  return child_read (c->out_path);
}

/* Fails with the child's output unless it ended with exit status 0. */
static void
child_assert_ok (Child * c, const gchar * what)
{
  if (!c->ended || !WIFEXITED (c->status) || WEXITSTATUS (c->status) != 0) {
    gchar *out = child_read (c->out_path), *err = child_read (c->err_path);

    fail ("%s: %s (status 0x%x)\n--- stdout:\n%s\n--- stderr:\n%s", what,
        c->ended ? "failed" : "timed out and was killed", c->status, out, err);
    g_free (out);
    g_free (err);
  }
}

static void
child_free (Child * c)
{
  if (!c->ended) {
    kill (c->pid, SIGKILL);
    waitpid (c->pid, &c->status, 0);
  }
  unlink (c->out_path);
  unlink (c->err_path);
  g_free (c->out_path);
  g_free (c->err_path);
  g_free (c);
}

/* ---- regions ---------------------------------------------------------- */

/* Waits until a producer has created the file at its full size. */
static void
wait_for_region (const gchar * path, guint64 size)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  struct stat st;

  while (g_get_monotonic_time () < deadline) {
    if (stat (path, &st) == 0 && (guint64) st.st_size == size)
      return;
    g_usleep (5 * 1000);
  }
  fail ("%s did not appear with %" G_GUINT64_FORMAT " bytes", path, size);
}

/* ---- parsing a reader's output ---------------------------------------- */

typedef struct
{
  gsize size;
  gint64 pts, dts, duration, offset;
  guint flags;
  gchar sha1[41];
  guint caps_index;             /* which caps line it follows */
} DumpBuffer;

typedef struct
{
  GPtrArray *caps;              /* gchar *, in order */
  GArray *buffers;              /* DumpBuffer */
  gboolean eos;
  gboolean eos_last;            /* nothing came after the eos line */
  gchar *error;
} Dump;

static Dump *
dump_parse (const gchar * text)
{
  Dump *d = g_new0 (Dump, 1);
  gchar **lines = g_strsplit (text, "\n", -1);
  guint i;

  d->caps = g_ptr_array_new_with_free_func (g_free);
  d->buffers = g_array_new (FALSE, TRUE, sizeof (DumpBuffer));
  for (i = 0; lines[i]; i++) {
    const gchar *l = lines[i];

    if (!*l)
      continue;
    d->eos_last = FALSE;
    if (g_str_has_prefix (l, "caps ")) {
      g_ptr_array_add (d->caps, g_strdup (l + 5));
    } else if (g_str_has_prefix (l, "buffer ")) {
      DumpBuffer b = { 0 };
      guint n;

      fail_unless (sscanf (l, "buffer %u %" G_GSIZE_FORMAT " %" G_GINT64_FORMAT
              " %" G_GINT64_FORMAT " %" G_GINT64_FORMAT " %" G_GINT64_FORMAT
              " %u %40s", &n, &b.size, &b.pts, &b.dts, &b.duration,
              &b.offset, &b.flags, b.sha1) == 8, "bad line '%s'", l);
      fail_unless_equals_int (n, d->buffers->len);
      b.caps_index = d->caps->len;
      g_array_append_val (d->buffers, b);
    } else if (strcmp (l, "eos") == 0) {
      d->eos = TRUE;
      d->eos_last = TRUE;
    } else if (g_str_has_prefix (l, "error ")) {
      g_free (d->error);
      d->error = g_strdup (l + 6);
    }
  }
  g_strfreev (lines);
  return d;
}

static Dump *
dump_of (Child * c)
{
  gchar *text = child_stdout (c);
  Dump *d = dump_parse (text);

  g_free (text);
  return d;
}

static void
dump_free (Dump * d)
{
  g_ptr_array_unref (d->caps);
  g_array_unref (d->buffers);
  g_free (d->error);
  g_free (d);
}

static DumpBuffer *
dump_buffer (Dump * d, guint i)
{
  return &g_array_index (d->buffers, DumpBuffer, i);
}

/* The checksum column of checksumsink's "H:MM:SS.NNNNNNNNN HASH" lines. */
static GPtrArray *
checksumsink_hashes (const gchar * text)
{
  GPtrArray *hashes = g_ptr_array_new_with_free_func (g_free);
  GRegex *re = g_regex_new ("^\\d+:\\d\\d:\\d\\d\\.\\d{9} ([0-9a-f]{40})$",
      G_REGEX_MULTILINE, 0, NULL);
  GMatchInfo *m = NULL;

  g_regex_match (re, text, 0, &m);
  while (g_match_info_matches (m)) {
    g_ptr_array_add (hashes, g_match_info_fetch (m, 1));
    g_match_info_next (m, NULL);
  }
  g_match_info_free (m);
  g_regex_unref (re);
  return hashes;
}

/* ---- 8. video, process to process ------------------------------------- */

#define VIDEO_CAPS "video/x-raw,format=I420,width=640,height=480"
#define N_FRAMES 300

GST_START_TEST (test_video_roundtrip)
{
  gchar *path = shm_path ("video");
  gchar *desc, *text;
  Child *producer, *reader, *reference;
  GPtrArray *got, *want;
  gint64 deadline = g_get_monotonic_time () + 50 * G_USEC_PER_SEC;
  guint i;

  desc = g_strdup_printf ("videotestsrc num-buffers=%d pattern=ball ! "
      VIDEO_CAPS " ! ivshmemsink device=%s size=67108864", N_FRAMES, path);
  producer = spawn_launch (desc);
  g_free (desc);
  wait_for_region (path, 64 * MiB);

  desc = g_strdup_printf ("ivshmemsrc device=%s ! checksumsink sync=false",
      path);
  reader = spawn_launch (desc);
  g_free (desc);
  reference = spawn_launch ("videotestsrc num-buffers=300 pattern=ball ! "
      VIDEO_CAPS " ! checksumsink sync=false");

  fail_unless (child_wait (producer, deadline));
  fail_unless (child_wait (reader, deadline));
  fail_unless (child_wait (reference, deadline));
  child_assert_ok (producer, "the producer");
  child_assert_ok (reader, "the reader");
  child_assert_ok (reference, "the reference");

  text = child_stdout (reader);
  fail_unless (strstr (text, "Got EOS") != NULL, "no EOS: %s", text);
  got = checksumsink_hashes (text);
  g_free (text);
  text = child_stdout (reference);
  want = checksumsink_hashes (text);
  g_free (text);

  fail_unless_equals_int (want->len, N_FRAMES);
  fail_unless_equals_int (got->len, N_FRAMES);
  for (i = 0; i < N_FRAMES; i++)
    fail_unless_equals_string (g_ptr_array_index (got, i),
        g_ptr_array_index (want, i));

  g_ptr_array_unref (got);
  g_ptr_array_unref (want);
  child_free (producer);
  child_free (reader);
  child_free (reference);
  unlink (path);
  g_free (path);
}

GST_END_TEST;

/* ---- 9. a caps change in the middle of the stream --------------------- */

#define CAPS_A "video/x-raw,format=I420,width=320,height=240,framerate=30/1"
#define CAPS_B "video/x-raw,format=I420,width=640,height=480,framerate=30/1"

static GstBuffer *
frame (guint i, gsize size)
{
  GstBuffer *b = gst_buffer_new_allocate (NULL, size, NULL);

  gst_buffer_memset (b, 0, (guint8) (i * 7 + 1), size);
  gst_buffer_memset (b, 0, (guint8) i, 1);
  GST_BUFFER_PTS (b) = i * GST_SECOND / 30;
  GST_BUFFER_DURATION (b) = GST_SECOND / 30;
  return b;
}

static gchar *
sha1_of (GstBuffer * b)
{
  GstMapInfo map;
  gchar *sha1;

  fail_unless (gst_buffer_map (b, &map, GST_MAP_READ));
  sha1 = g_compute_checksum_for_data (G_CHECKSUM_SHA1, map.data, map.size);
  gst_buffer_unmap (b, &map);
  return sha1;
}

GST_START_TEST (test_caps_change_roundtrip)
{
  gchar *path = shm_path ("caps-change");
  gchar *desc;
  GstElement *pipeline, *appsrc;
  GstBus *bus;
  GstMessage *msg;
  GstCaps *caps_a = gst_caps_from_string (CAPS_A);
  GstCaps *caps_b = gst_caps_from_string (CAPS_B);
  gsize size_a = 320 * 240 * 3 / 2, size_b = 640 * 480 * 3 / 2;
  gchar *sha1[20];
  Child *reader;
  Dump *d;
  gint64 deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;
  gboolean producer_eos;
  guint i;

  desc = g_strdup_printf ("appsrc name=in format=time ! ivshmemsink "
      "device=%s size=16777216", path);
  pipeline = gst_parse_launch (desc, NULL);
  g_free (desc);
  fail_unless (pipeline != NULL);
  appsrc = gst_bin_get_by_name (GST_BIN (pipeline), "in");
  bus = gst_element_get_bus (pipeline);
  fail_if (gst_element_set_state (pipeline, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE);
  wait_for_region (path, 16 * MiB);

  desc = g_strdup_printf ("ivshmemsrc device=%s is-live=false ! appsink "
      "name=out sync=false", path);
  reader = spawn_dump (desc);
  g_free (desc);

  for (i = 0; i < 20; i++) {
    GstBuffer *b = frame (i, i < 10 ? size_a : size_b);

    if (i == 0)
      g_object_set (appsrc, "caps", caps_a, NULL);
    if (i == 10)
      g_object_set (appsrc, "caps", caps_b, NULL);
    sha1[i] = sha1_of (b);
    fail_unless_equals_int (gst_app_src_push_buffer (GST_APP_SRC (appsrc),
            b), GST_FLOW_OK);
  }
  fail_unless_equals_int (gst_app_src_end_of_stream (GST_APP_SRC (appsrc)),
      GST_FLOW_OK);
  msg = gst_bus_timed_pop_filtered (bus, 20 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  producer_eos = msg && GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS;
  if (msg)
    gst_message_unref (msg);
  /* stop the producer before any check, so that a failure cannot leave
   * its streaming thread blocked (it would hang a CK_FORK=no run) */
  gst_element_set_state (pipeline, GST_STATE_NULL);

  fail_unless (child_wait (reader, deadline));
  child_assert_ok (reader, "the reader");
  d = dump_of (reader);
  fail_unless (d->eos && d->eos_last && d->error == NULL);
  fail_unless_equals_int (d->caps->len, 2);
  {
    GstCaps *got_a = gst_caps_from_string (g_ptr_array_index (d->caps, 0));
    GstCaps *got_b = gst_caps_from_string (g_ptr_array_index (d->caps, 1));

    fail_unless (gst_caps_is_equal (got_a, caps_a), "first caps %s",
        (gchar *) g_ptr_array_index (d->caps, 0));
    fail_unless (gst_caps_is_equal (got_b, caps_b), "second caps %s",
        (gchar *) g_ptr_array_index (d->caps, 1));
    gst_caps_unref (got_a);
    gst_caps_unref (got_b);
  }
  fail_unless_equals_int (d->buffers->len, 20);
  for (i = 0; i < 20; i++) {
    DumpBuffer *b = dump_buffer (d, i);

    /* buffers 1-10 under caps A, 11-20 under caps B */
    fail_unless_equals_int (b->caps_index, i < 10 ? 1 : 2);
    fail_unless_equals_uint64 (b->size, i < 10 ? size_a : size_b);
    fail_unless_equals_int64 (b->pts, (gint64) (i * GST_SECOND / 30));
    fail_unless_equals_string (b->sha1, sha1[i]);
    g_free (sha1[i]);
  }

  /* after the reader's checks: a producer that hangs at EOS although the
   * reader got everything is ivshmemsink's bug, not the transport's */
  fail_unless (producer_eos, "the producer did not reach EOS");

  dump_free (d);
  child_free (reader);
  gst_caps_unref (caps_a);
  gst_caps_unref (caps_b);
  gst_object_unref (appsrc);
  gst_object_unref (bus);
  gst_object_unref (pipeline);
  unlink (path);
  g_free (path);
}

GST_END_TEST;

/* ---- 10. audio -------------------------------------------------------- */

#define AUDIO_CAPS "audio/x-raw,format=S16LE,rate=48000,channels=2"

/* 100 buffers of audio through the ring, compared with the same source run
 * alone: content, size, timestamps, offsets, continuity, caps and EOS.
 * producer_extra: elements before the sink; reader_extra: more ivshmemsrc
 * properties. */
static void
audio_roundtrip (const gchar * name, const gchar * producer_extra,
    const gchar * reader_extra)
{
  gchar *path = shm_path (name);
  gchar *desc;
  Child *producer, *reader, *reference;
  Dump *got, *want;
  gint64 deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;
  guint i;

  desc = g_strdup_printf ("audiotestsrc num-buffers=100 ! " AUDIO_CAPS
      " %s ! ivshmemsink device=%s size=4194304", producer_extra, path);
  producer = spawn_launch (desc);
  g_free (desc);
  wait_for_region (path, 4 * MiB);

  desc = g_strdup_printf ("ivshmemsrc device=%s is-live=false %s ! appsink "
      "name=out sync=false", path, reader_extra);
  reader = spawn_dump (desc);
  g_free (desc);
  reference = spawn_dump ("audiotestsrc num-buffers=100 ! " AUDIO_CAPS
      " ! appsink name=out sync=false");

  fail_unless (child_wait (producer, deadline));
  fail_unless (child_wait (reader, deadline));
  fail_unless (child_wait (reference, deadline));
  child_assert_ok (producer, "the producer");
  child_assert_ok (reader, "the reader");
  child_assert_ok (reference, "the reference");

  got = dump_of (reader);
  want = dump_of (reference);
  fail_unless (got->eos && got->eos_last && got->error == NULL);
  fail_unless_equals_int (want->buffers->len, 100);
  fail_unless_equals_int (got->buffers->len, 100);
  fail_unless_equals_int (got->caps->len, 1);
  fail_unless_equals_string (g_ptr_array_index (got->caps, 0),
      g_ptr_array_index (want->caps, 0));
  for (i = 0; i < 100; i++) {
    DumpBuffer *g = dump_buffer (got, i), *w = dump_buffer (want, i);

    fail_unless_equals_string (g->sha1, w->sha1);
    fail_unless_equals_uint64 (g->size, w->size);
    fail_unless_equals_int64 (g->pts, w->pts);
    fail_unless_equals_int64 (g->duration, w->duration);
    fail_unless_equals_int64 (g->offset, w->offset);
    fail_unless (g->pts >= 0 && g->duration > 0);
    if (i > 0) {
      DumpBuffer *prev = dump_buffer (got, i - 1);
      gint64 gap = g->pts - (prev->pts + prev->duration);

      fail_unless (gap >= -1 && gap <= 1, "buffer %u: pts %" G_GINT64_FORMAT
          " but previous ends at %" G_GINT64_FORMAT, i, g->pts,
          prev->pts + prev->duration);
    }
  }

  dump_free (got);
  dump_free (want);
  child_free (producer);
  child_free (reader);
  child_free (reference);
  unlink (path);
  g_free (path);
}

GST_START_TEST (test_audio_roundtrip)
{
  audio_roundtrip ("audio", "", "");
}

GST_END_TEST;

/* busy-poll: the source polls 3 ms after each buffer, then sleeps until the
 * next one (the producer sends one every 10 ms of its clock): both ways of
 * waiting take turns, and nothing may be lost or changed. */
GST_START_TEST (test_audio_roundtrip_busy_poll)
{
  audio_roundtrip ("audio-busy", "! identity sync=true", "busy-poll=3000000");
}

GST_END_TEST;

/* ---- 11. a second reader joins mid-stream ----------------------------- */

/* TRUE once a reader holds an active slot and has consumed something */
static gboolean
reader_progressed (const gchar * path)
{
  IvshmRegionOptions opts = { 0 };
  IvshmRegion *region = NULL;
  gboolean found = FALSE;
  guint i;

  if (ivshm_region_open (path, &opts, &region, NULL) != IVSHM_OK)
    return FALSE;
  for (i = 0; i < IVSHM_MAX_READERS; i++) {
    IvshmReaderSlot *s = (IvshmReaderSlot *) ((guint8 *)
        ivshm_region_data (region) + IVSHM_SLOT_OFFSET + i * IVSHM_SLOT_SIZE);

    if (atomic_load (&s->state) == IVSHM_SLOT_ACTIVE &&
        atomic_load (&s->records_read) > 5)
      found = TRUE;
  }
  ivshm_region_close (region);
  return found;
}

/* Runs a two-second live stream with a reader from the start and a second
 * one that attaches a third of a second after the first began reading.
 * Returns how many buffers the second reader got. */
static guint
run_second_reader (const gchar * name, guint64 size)
{
  gchar *path = shm_path (name);
  gchar *desc;
  Child *producer, *first, *second;
  Dump *d1, *d2;
  gint64 deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;
  guint i, n2, skip;

  desc = g_strdup_printf ("videotestsrc is-live=true num-buffers=60 "
      "pattern=ball ! video/x-raw,format=I420,width=320,height=240,"
      "framerate=30/1 ! ivshmemsink device=%s size=%" G_GUINT64_FORMAT, path,
      size);
  producer = spawn_launch (desc);
  g_free (desc);
  wait_for_region (path, size);

  desc = g_strdup_printf ("ivshmemsrc device=%s ! appsink name=out "
      "sync=false", path);
  first = spawn_dump (desc);
  while (!reader_progressed (path) && g_get_monotonic_time () < deadline)
    g_usleep (10 * 1000);
  fail_unless (reader_progressed (path), "the first reader never started");
  /* a third of a second later: well into the two-second stream */
  g_usleep (300 * 1000);
  second = spawn_dump (desc);
  g_free (desc);

  fail_unless (child_wait (producer, deadline));
  fail_unless (child_wait (first, deadline));
  fail_unless (child_wait (second, deadline));
  child_assert_ok (producer, "the producer");
  child_assert_ok (first, "the first reader");
  child_assert_ok (second, "the second reader");

  d1 = dump_of (first);
  d2 = dump_of (second);
  fail_unless (d1->eos && d1->eos_last && d1->error == NULL);
  fail_unless (d2->eos && d2->eos_last && d2->error == NULL);
  fail_unless_equals_int (d1->buffers->len, 60);
  n2 = d2->buffers->len;
  GST_INFO ("the second reader got %u buffers", n2);
  fail_unless (n2 > 0 && n2 <= 60, "the second reader got %u buffers", n2);

  /* the same caps, learnt from the sticky records, before any buffer */
  fail_unless_equals_int (d2->caps->len, 1);
  fail_unless_equals_int (dump_buffer (d2, 0)->caps_index, 1);
  fail_unless_equals_string (g_ptr_array_index (d2->caps, 0),
      g_ptr_array_index (d1->caps, 0));

  /* and exactly the tail of the stream */
  skip = 60 - n2;
  for (i = 0; i < n2; i++)
    fail_unless_equals_string (dump_buffer (d2, i)->sha1,
        dump_buffer (d1, skip + i)->sha1);

  dump_free (d1);
  dump_free (d2);
  child_free (producer);
  child_free (first);
  child_free (second);
  unlink (path);
  g_free (path);
  return n2;
}

GST_START_TEST (test_second_reader_mid_stream)
{
  run_second_reader ("two-readers", 16 * MiB);
}

GST_END_TEST;

/* A reader that attaches mid-stream starts at the live edge, after a
 * replay of the sticky records (ivshmem-ring.h, ivshm_reader_new()), not
 * at the start of the session: it must not get the buffers that were
 * written before it attached.
 *
 * The trap it guards against: the producer notices readers (and sets
 * IVSHM_PRODUCER_FLAG_HAD_READER) only when it needs space, so while the
 * ring has not wrapped yet, tail == 0 and the flag is clear for a second
 * reader too; unless that reader also looks at the other slots it takes
 * the first-reader path and replays the whole session. A 16 MiB region
 * (145 frames of 320x240) does not wrap during this 60-frame stream. */
GST_START_TEST (test_second_reader_starts_at_live_edge)
{
  guint n2 = run_second_reader ("live-edge", 16 * MiB);

  fail_unless (n2 < 60, "the reader that attached mid-stream got all %u "
      "buffers, from the start of the session", n2);
}

GST_END_TEST;

static Suite *
roundtrip_suite (void)
{
  Suite *s = suite_create ("ivshmem-roundtrip");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_video_roundtrip);
  tcase_add_test (tc, test_caps_change_roundtrip);
  tcase_add_test (tc, test_audio_roundtrip);
  tcase_add_test (tc, test_audio_roundtrip_busy_poll);
  tcase_add_test (tc, test_second_reader_mid_stream);
  tcase_add_test (tc, test_second_reader_starts_at_live_edge);
  return s;
}

/* GST_CHECK_MAIN, plus the reader mode the tests re-execute this binary
 * in */
int
main (int argc, char **argv)
{
  Suite *s;

  if (argc > 1 && strcmp (argv[1], "--rt-dump") == 0)
    return rt_dump_main (argc, argv);

  gst_check_init (&argc, &argv);
  fixture_remove_stale_regions ("rt");
  s = roundtrip_suite ();
  return gst_check_run_suite (s, "roundtrip", __FILE__);
}
