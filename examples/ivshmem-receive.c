/* gst-ivshmem example: an application that reads video from a region
 * SPDX-License-Identifier: MIT
 *
 *   ivshmem-receive [--frames N] [--timeout SECONDS] [DEVICE]
 *
 * The pipeline is
 *
 *   ivshmemsrc device=DEVICE is-live=false ! appsink
 *
 * A host file must exist first (QEMU creates it, or `truncate -s 16M
 * /dev/shm/NAME`): for a missing file the source stops with an error that
 * says so. On an existing region the source waits for a producer
 * (ivshmem-send) if none has started yet, then reads its stream from the
 * start: caps, frames with their
 * timestamps, and finally EOS. The application pulls each frame from
 * appsink and draws the frame it expects with the same generator as the
 * sender, to check that every byte made it through. It prints a summary and
 * exits with 0 when N frames arrived intact, in order, followed by EOS.
 */
#include <stdlib.h>

#include <gst/gst.h>
#include <gst/app/gstappsink.h>
#include <gst/video/video.h>

#include "ivshmem-example-pattern.h"

int
main (int argc, char **argv)
{
  gint frames = 300;
  gint timeout_s = 30;
  const GOptionEntry options[] = {
    {"frames", 'n', 0, G_OPTION_ARG_INT, &frames,
        "Number of frames to expect (default 300)", "N"},
    {"timeout", 't', 0, G_OPTION_ARG_INT, &timeout_s,
        "Give up when nothing arrives for this long (default 30)", "SECONDS"},
    {NULL}
  };
  GOptionContext *ctx;
  GError *error = NULL;
  const gchar *device;
  GstElement *pipeline, *src, *appsink;
  GstBus *bus;
  GstMessage *msg;
  gchar *caps_text = NULL;
  guint received = 0, intact = 0, bad_pts = 0;
  gboolean eos, ok;

  ctx = g_option_context_new ("[DEVICE] - receive and check the test video "
      "of ivshmem-send");
  g_option_context_add_main_entries (ctx, options, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
    g_printerr ("ivshmem-receive: %s\n", error->message);
    return 2;
  }
  g_option_context_free (ctx);
  device = argc > 1 ? argv[1] : "";

  /* ---- the pipeline: ivshmemsrc ! appsink ---- */
  pipeline = gst_pipeline_new ("receiver");
  src = gst_element_factory_make ("ivshmemsrc", "source");
  appsink = gst_element_factory_make ("appsink", "sink");
  if (!pipeline || !src || !appsink) {
    g_printerr ("ivshmem-receive: the ivshmem plugin or appsink is missing "
        "(check GST_PLUGIN_PATH and gst-inspect-1.0 ivshmem)\n");
    return 1;
  }

  /* is-live=false: keep the sender's timestamps as they are (frame i at
   * i / fps), and take frames as fast as they come. A player would leave
   * the default, is-live=true, and let its sink keep time. */
  g_object_set (src, "device", device, "is-live", FALSE, NULL);
  /* sync=false: hand each frame over at once, do not wait for its time */
  g_object_set (appsink, "sync", FALSE, NULL);

  gst_bin_add_many (GST_BIN (pipeline), src, appsink, NULL);
  if (!gst_element_link (src, appsink)) {
    g_printerr ("ivshmem-receive: cannot link ivshmemsrc to appsink\n");
    return 1;
  }
  gst_element_set_state (pipeline, GST_STATE_PLAYING);

  /* ---- pull and check the frames ---- */
  for (;;) {
    GstSample *sample;
    GstVideoInfo info;
    GstVideoFrame vframe;
    GstBuffer *buf;
    GstClockTime want_pts;

    /* NULL: EOS, an error, or nothing within the timeout */
    sample = gst_app_sink_try_pull_sample (GST_APP_SINK (appsink),
        (GstClockTime) timeout_s * GST_SECOND);
    if (sample == NULL)
      break;

    /* the caps came through the ring; no capsfilter was needed */
    if (caps_text == NULL)
      caps_text = gst_caps_to_string (gst_sample_get_caps (sample));

    buf = gst_sample_get_buffer (sample);
    if (gst_video_info_from_caps (&info, gst_sample_get_caps (sample))
        && GST_VIDEO_INFO_FORMAT (&info) == EXAMPLE_FORMAT
        && gst_video_frame_map (&vframe, &info, buf, GST_MAP_READ)) {
      if (example_check (&vframe, received))
        intact++;
      else
        g_printerr ("ivshmem-receive: frame %u differs from what was sent\n",
            received);
      gst_video_frame_unmap (&vframe);
    } else {
      g_printerr ("ivshmem-receive: frame %u is not %s video\n", received,
          gst_video_format_to_string (EXAMPLE_FORMAT));
    }

    /* the sender's timestamps arrive unchanged with is-live=false */
    want_pts = gst_util_uint64_scale (received, GST_SECOND * EXAMPLE_FPS_D,
        EXAMPLE_FPS_N);
    if (GST_BUFFER_PTS (buf) != want_pts)
      bad_pts++;

    received++;
    gst_sample_unref (sample);
  }
  eos = gst_app_sink_is_eos (GST_APP_SINK (appsink));

  /* ---- an error on the bus says why the stream stopped early ---- */
  bus = gst_element_get_bus (pipeline);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  if (msg) {
    gchar *debug = NULL;

    gst_message_parse_error (msg, &error, &debug);
    g_printerr ("ivshmem-receive: %s\n(%s)\n", error->message,
        GST_STR_NULL (debug));
    g_clear_error (&error);
    g_free (debug);
    gst_message_unref (msg);
  } else if (!eos) {
    g_printerr ("ivshmem-receive: nothing arrived for %d s\n", timeout_s);
  }
  gst_object_unref (bus);

  ok = eos && received == (guint) frames && intact == received && bad_pts == 0;
  g_print ("ivshmem-receive: caps         %s\n", GST_STR_NULL (caps_text));
  g_print ("ivshmem-receive: frames       %u of %d received\n", received,
      frames);
  g_print ("ivshmem-receive: intact       %u\n", intact);
  g_print ("ivshmem-receive: timestamps   %s\n", bad_pts ? "WRONG" : "as sent");
  g_print ("ivshmem-receive: ended by EOS %s\n", eos ? "yes" : "no");
  g_print ("ivshmem-receive: %s\n", ok ? "OK" : "FAILED");

  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);
  g_free (caps_text);
  gst_deinit ();
  return ok ? 0 : 1;
}
