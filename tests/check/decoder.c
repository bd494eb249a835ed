/* gst-ivshmem: a real decoder that keeps reference frames, into small regions
 * SPDX-License-Identifier: MIT
 *
 * avdec_h264 keeps the output buffers of its reference frames (they
 * belong to the frames libav still references). Decoding straight into
 * ivshmemsink's zero-copy pool on a region that holds only a few 1080p
 * frames used to stop both pipelines for good after a few frames (issue
 * 11). The clip is encoded here with x264enc (two B-frames, three
 * reference frames); every decoded frame must reach the reader, byte for
 * byte what the same decoder gives into ordinary memory.
 *
 * Needs x264enc (gstreamer1.0-plugins-ugly) and avdec_h264
 * (gstreamer1.0-libav); without them the test is skipped (exit 77).
 */
#include <gst/check/gstcheck.h>
#include <gst/app/gstappsink.h>

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#define N_FRAMES 24
#define MiB (1024u * 1024u)
#define DEADLINE (20 * GST_SECOND)

static gchar *clip_path;

static guint
time_scale (void)
{
  const gchar *v = g_getenv ("IVSHMEM_TEST_TIME_SCALE");
  guint n = v ? (guint) g_ascii_strtoull (v, NULL, 10) : 1;

  return n ? n : 1;
}

static GstElement *
launch (const gchar * desc)
{
  GError *error = NULL;
  GstElement *p = gst_parse_launch (desc, &error);

  fail_unless (p != NULL, "%s: %s", desc, error ? error->message : "?");
  g_clear_error (&error);
  fail_if (gst_element_set_state (p, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE, "%s: cannot start", desc);
  return p;
}

static void
run_to_eos (GstElement * p)
{
  GstBus *bus = gst_element_get_bus (p);
  GstMessage *msg = gst_bus_timed_pop_filtered (bus, 60 * GST_SECOND *
      time_scale (), GST_MESSAGE_EOS | GST_MESSAGE_ERROR);

  fail_unless (msg != NULL, "no EOS within 60 s");
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    GError *err = NULL;

    gst_message_parse_error (msg, &err, NULL);
    fail ("%s: %s", GST_OBJECT_NAME (msg->src), err->message);
  }
  gst_message_unref (msg);
  gst_object_unref (bus);
}

static GstElement *
by_name (GstElement * p, const gchar * name)
{
  GstElement *e = gst_bin_get_by_name (GST_BIN (p), name);

  fail_unless (e != NULL);
  gst_object_unref (e);
  return e;
}

static gchar *
checksum (GstBuffer * buf)
{
  GstMapInfo map;
  gchar *sum;

  fail_unless (gst_buffer_map (buf, &map, GST_MAP_READ));
  sum = g_compute_checksum_for_data (G_CHECKSUM_SHA1, map.data, map.size);
  gst_buffer_unmap (buf, &map);
  return sum;
}

/* Every buffer of appsink `sink` of `p`, as checksums, until EOS or
 * `deadline` without a buffer. */
static GPtrArray *
pull_all (GstElement * p, GstClockTime deadline)
{
  GstAppSink *sink = GST_APP_SINK (by_name (p, "sink"));
  GPtrArray *sums = g_ptr_array_new_with_free_func (g_free);
  GstSample *s;

  while ((s = gst_app_sink_try_pull_sample (sink, deadline * time_scale ()))) {
    g_ptr_array_add (sums, checksum (gst_sample_get_buffer (s)));
    gst_sample_unref (s);
  }
  return sums;
}

static GPtrArray *
reference_decode (void)
{
  gchar *desc = g_strdup_printf ("filesrc location=%s ! h264parse ! "
      "avdec_h264 ! video/x-raw,format=I420 ! appsink name=sink sync=false",
      clip_path);
  GstElement *p = launch (desc);
  GPtrArray *sums = pull_all (p, DEADLINE);

  fail_unless_equals_int (sums->len, N_FRAMES);
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (p);
  g_free (desc);
  return sums;
}

static gboolean encode_clip (void);

static void
check_decode_into (guint region_mib)
{
  gchar *path = g_strdup_printf ("/dev/shm/gst-ivshmem-dec-%d-%u",
      (int) getpid (), region_mib);
  gchar *prod_desc, *rd_desc;
  GPtrArray *ref, *got;
  GstElement *prod, *rd;
  GstStructure *stats = NULL;
  guint64 in_place = 0, copied = 0;
  guint i;
  int fd;

  /* here, not in main(): a process that ran a pipeline before it forked
   * cannot start streaming threads in the child (GstTaskPool) */
  fail_unless (encode_clip (), "could not encode the test clip");
  ref = reference_decode ();

  /* a zeroed region, as QEMU creates it; the reader waits on it first */
  unlink (path);
  fd = open (path, O_RDWR | O_CREAT | O_EXCL, 0600);
  fail_unless (fd >= 0);
  fail_unless (ftruncate (fd, (off_t) region_mib * MiB) == 0);
  close (fd);

  rd_desc = g_strdup_printf ("ivshmemsrc device=%s is-live=false "
      "zero-copy=false ! appsink name=sink sync=false max-buffers=2", path);
  rd = launch (rd_desc);
  prod_desc = g_strdup_printf ("filesrc location=%s ! h264parse ! "
      "avdec_h264 ! ivshmemsink name=sink device=%s", clip_path, path);
  prod = launch (prod_desc);

  got = pull_all (rd, DEADLINE);
  fail_unless (got->len == N_FRAMES,
      "%u MiB: %u of %d frames arrived (the decoder into the sink's pool "
      "stalled)", region_mib, got->len, N_FRAMES);
  for (i = 0; i < N_FRAMES; i++)
    fail_unless_equals_string (g_ptr_array_index (got, i),
        g_ptr_array_index (ref, i));
  run_to_eos (prod);

  g_object_get (by_name (prod, "sink"), "stats", &stats, NULL);
  gst_structure_get_uint64 (stats, "zero-copy-buffers", &in_place);
  gst_structure_get_uint64 (stats, "copied-buffers", &copied);
  GST_INFO ("%u MiB: %" G_GUINT64_FORMAT " frames in place, %"
      G_GUINT64_FORMAT " copied: %" GST_PTR_FORMAT, region_mib, in_place,
      copied, stats);
  fail_unless_equals_uint64 (in_place + copied, N_FRAMES);
  gst_structure_free (stats);

  gst_element_set_state (prod, GST_STATE_NULL);
  gst_element_set_state (rd, GST_STATE_NULL);
  gst_object_unref (prod);
  gst_object_unref (rd);
  unlink (path);
  g_ptr_array_unref (ref);
  g_ptr_array_unref (got);
  g_free (prod_desc);
  g_free (rd_desc);
  g_free (path);
  unlink (clip_path);
}

GST_START_TEST (test_avdec_h264_16mib)
{
  check_decode_into (16);
}

GST_END_TEST;

GST_START_TEST (test_avdec_h264_8mib)
{
  check_decode_into (8);
}

GST_END_TEST;

static gboolean
have (const gchar * factory)
{
  GstElementFactory *f = gst_element_factory_find (factory);

  if (!f)
    return FALSE;
  gst_object_unref (f);
  return TRUE;
}

/* 1080p, I-frame then P and B frames, three references */
static gboolean
encode_clip (void)
{
  gchar *desc;
  GstElement *p;
  GstBus *bus;
  GstMessage *msg;
  gboolean ok;

  desc = g_strdup_printf ("videotestsrc num-buffers=%d pattern=ball ! "
      "video/x-raw,format=I420,width=1920,height=1080,framerate=30/1 ! "
      "x264enc speed-preset=ultrafast key-int-max=60 bframes=2 ref=3 ! "
      "video/x-h264,stream-format=byte-stream ! filesink location=%s",
      N_FRAMES, clip_path);
  p = gst_parse_launch (desc, NULL);
  g_free (desc);
  if (!p)
    return FALSE;
  gst_element_set_state (p, GST_STATE_PLAYING);
  bus = gst_element_get_bus (p);
  msg = gst_bus_timed_pop_filtered (bus, 120 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  ok = msg && GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS;
  if (msg)
    gst_message_unref (msg);
  gst_object_unref (bus);
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (p);
  return ok;
}

static Suite *
decoder_suite (void)
{
  Suite *s = suite_create ("decoder");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_avdec_h264_16mib);
  tcase_add_test (tc, test_avdec_h264_8mib);
  return s;
}

int
main (int argc, char **argv)
{
  int failed;

  gst_check_init (&argc, &argv);
  if (!have ("x264enc") || !have ("avdec_h264") || !have ("h264parse")) {
    g_print ("SKIP: needs x264enc (gstreamer1.0-plugins-ugly), avdec_h264 "
        "(gstreamer1.0-libav) and h264parse (gstreamer1.0-plugins-bad)\n");
    return 77;
  }
  clip_path = g_strdup_printf ("/tmp/gst-ivshmem-dec-%d.h264", (int) getpid ());
  failed = gst_check_run_suite (decoder_suite (), "decoder", __FILE__);
  /* also when a case failed before its clean-up (the regions: shm-sweep.c) */
  unlink (clip_path);
  g_free (clip_path);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
