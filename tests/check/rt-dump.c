/* gst-ivshmem: the reader half of the round-trip tests
 * SPDX-License-Identifier: MIT
 *
 * `test-roundtrip --rt-dump 'PIPELINE ! appsink name=out' [SECONDS]` runs
 * the pipeline in its own process and prints, one line each, what reaches
 * the appsink:
 *
 *   caps CAPS                       (before the first buffer, and whenever
 *                                    the caps change)
 *   buffer N SIZE PTS DTS DURATION OFFSET FLAGS SHA1
 *   eos
 *   error MESSAGE
 *
 * Times are nanoseconds, -1 for none. It exits 0 after EOS, 1 on an error,
 * 2 when SECONDS (default 30) pass without EOS.
 *
 * It lives in the test binary (the test build list makes one executable a
 * test) and runs only in a child process the test spawns.
 */
#include "rt-dump.h"

#include <gst/app/gstappsink.h>
#include <stdio.h>
#include <stdlib.h>

static gint64
ts (GstClockTime t)
{
  return GST_CLOCK_TIME_IS_VALID (t) ? (gint64) t : -1;
}

static void
print_buffer (guint n, GstBuffer * buf)
{
  GstMapInfo map;
  gchar *sha1;

  if (!gst_buffer_map (buf, &map, GST_MAP_READ)) {
    printf ("error could not map buffer %u\n", n);
    return;
  }
  sha1 = g_compute_checksum_for_data (G_CHECKSUM_SHA1, map.data, map.size);
  printf ("buffer %u %" G_GSIZE_FORMAT " %" G_GINT64_FORMAT " %"
      G_GINT64_FORMAT " %" G_GINT64_FORMAT " %" G_GINT64_FORMAT " %u %s\n",
      n, map.size, ts (GST_BUFFER_PTS (buf)), ts (GST_BUFFER_DTS (buf)),
      ts (GST_BUFFER_DURATION (buf)),
      GST_BUFFER_OFFSET_IS_VALID (buf) ? (gint64) GST_BUFFER_OFFSET (buf) :
      -1, GST_BUFFER_FLAGS (buf), sha1);
  g_free (sha1);
  gst_buffer_unmap (buf, &map);
}

int
rt_dump_main (int argc, char **argv)
{
  GstElement *pipeline, *out;
  GstCaps *last_caps = NULL;
  GError *error = NULL;
  GstBus *bus;
  gint64 deadline;
  guint n = 0;
  int status = 2;

  if (argc < 3) {
    fprintf (stderr, "usage: %s --rt-dump PIPELINE [SECONDS]\n", argv[0]);
    return 1;
  }
  gst_init (NULL, NULL);
  deadline = g_get_monotonic_time () +
      (argc > 3 ? atoi (argv[3]) : 30) * G_USEC_PER_SEC;

  pipeline = gst_parse_launch (argv[2], &error);
  if (!pipeline) {
    printf ("error %s\n", error->message);
    return 1;
  }
  out = gst_bin_get_by_name (GST_BIN (pipeline), "out");
  if (!out || !GST_IS_APP_SINK (out)) {
    printf ("error no appsink named out\n");
    return 1;
  }
  bus = gst_element_get_bus (pipeline);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);

  while (g_get_monotonic_time () < deadline) {
    GstSample *sample;
    GstMessage *msg;

    sample = gst_app_sink_try_pull_sample (GST_APP_SINK (out),
        50 * GST_MSECOND);
    if (sample) {
      GstCaps *caps = gst_sample_get_caps (sample);

      if (caps && (!last_caps || !gst_caps_is_equal (caps, last_caps))) {
        gchar *str = gst_caps_to_string (caps);

        printf ("caps %s\n", str);
        g_free (str);
        gst_caps_replace (&last_caps, caps);
      }
      print_buffer (n++, gst_sample_get_buffer (sample));
      gst_sample_unref (sample);
      continue;
    }
    if (gst_app_sink_is_eos (GST_APP_SINK (out))) {
      printf ("eos\n");
      status = 0;
      break;
    }
    msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
    if (msg) {
      GError *err = NULL;
      gchar *debug = NULL;

      gst_message_parse_error (msg, &err, &debug);
      printf ("error %s (%s)\n", err->message, debug ? debug : "");
      g_error_free (err);
      g_free (debug);
      gst_message_unref (msg);
      status = 1;
      break;
    }
  }
  if (status == 2)
    printf ("error no EOS in time\n");
  fflush (stdout);

  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_caps_replace (&last_caps, NULL);
  gst_object_unref (bus);
  gst_object_unref (out);
  gst_object_unref (pipeline);
  return status;
}
