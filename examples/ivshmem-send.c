/* gst-ivshmem example: an application that writes video into a region
 * SPDX-License-Identifier: MIT
 *
 *   ivshmem-send [--frames N] [--size BYTES] [DEVICE]
 *
 * The pipeline is
 *
 *   appsrc ! ivshmemsink device=DEVICE
 *
 * The application makes the frames itself (a moving grey gradient, see
 * ivshmem-example-pattern.h), stamps them and pushes them into appsrc; the
 * sink writes them, with their caps and timestamps, into the ring in the
 * region. After the last frame it sends EOS, which travels through the
 * ring too, and exits once the sink has written it.
 *
 * DEVICE is a host file such as /dev/shm/NAME, or inside a guest a PCI
 * address such as 0000:00:04.0; empty (the default) means the guest's first
 * IVSHMEM device. Run ivshmem-receive on the other side.
 */
#include <stdlib.h>

#include <gst/gst.h>
#include <gst/app/gstappsrc.h>
#include <gst/video/video.h>

#include "ivshmem-example-pattern.h"

int
main (int argc, char **argv)
{
  gint frames = 300;
  gint64 size = 4 * 1024 * 1024;
  const GOptionEntry options[] = {
    {"frames", 'n', 0, G_OPTION_ARG_INT, &frames,
        "Number of frames to send (default 300)", "N"},
    {"size", 's', 0, G_OPTION_ARG_INT64, &size,
        "Size of the host file to create if it does not exist, a power of "
          "two (default 4 MiB)", "BYTES"},
    {NULL}
  };
  GOptionContext *ctx;
  GError *error = NULL;
  const gchar *device;
  GstElement *pipeline, *appsrc, *sink;
  GstVideoInfo info;
  GstCaps *caps;
  GstBus *bus;
  GstMessage *msg;
  gboolean ok;
  gint i;

  /* ---- command line; gst_init() takes GStreamer's own options ---- */
  ctx = g_option_context_new ("[DEVICE] - send test video into an IVSHMEM "
      "region");
  g_option_context_add_main_entries (ctx, options, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
    g_printerr ("ivshmem-send: %s\n", error->message);
    return 2;
  }
  g_option_context_free (ctx);
  device = argc > 1 ? argv[1] : "";

  /* ---- the pipeline: appsrc ! ivshmemsink ---- */
  pipeline = gst_pipeline_new ("sender");
  appsrc = gst_element_factory_make ("appsrc", "source");
  sink = gst_element_factory_make ("ivshmemsink", "sink");
  if (!pipeline || !appsrc || !sink) {
    g_printerr ("ivshmem-send: the ivshmem plugin or appsrc is missing "
        "(check GST_PLUGIN_PATH and gst-inspect-1.0 ivshmem)\n");
    return 1;
  }

  /* The caps describe every frame we push. They are written into the ring,
   * so the receiver needs no capsfilter. */
  gst_video_info_set_format (&info, EXAMPLE_FORMAT, EXAMPLE_WIDTH,
      EXAMPLE_HEIGHT);
  GST_VIDEO_INFO_FPS_N (&info) = EXAMPLE_FPS_N;
  GST_VIDEO_INFO_FPS_D (&info) = EXAMPLE_FPS_D;
  caps = gst_video_info_to_caps (&info);

  /* format=time: our buffers carry timestamps in nanoseconds.
   * block=true with max-bytes: push_buffer() waits instead of queueing the
   * whole stream in memory while the sink waits for room in the ring. */
  g_object_set (appsrc, "caps", caps, "format", GST_FORMAT_TIME,
      "block", TRUE, "max-bytes", (guint64) 4 * info.size, NULL);
  gst_caps_unref (caps);

  /* `size` only matters when the host file does not exist yet: the sink
   * creates it. QEMU's file, or a PCI device, keeps its own size. */
  g_object_set (sink, "device", device, "size", (guint64) size, NULL);

  gst_bin_add_many (GST_BIN (pipeline), appsrc, sink, NULL);
  if (!gst_element_link (appsrc, sink)) {
    g_printerr ("ivshmem-send: cannot link appsrc to ivshmemsink\n");
    return 1;
  }

  /* PLAYING opens the region; errors (a missing device, no permission,
   * another producer already streaming) come on the bus, read below. */
  if (gst_element_set_state (pipeline, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE)
    g_printerr ("ivshmem-send: the pipeline did not start\n");

  /* ---- make and push the frames ---- */
  for (i = 0; i < frames; i++) {
    GstBuffer *buf = gst_buffer_new_allocate (NULL, info.size, NULL);
    GstVideoFrame vframe;
    GstFlowReturn flow;

    /* GstVideoFrame knows the strides and plane offsets of the format */
    gst_video_frame_map (&vframe, &info, buf, GST_MAP_WRITE);
    example_draw (&vframe, i);
    gst_video_frame_unmap (&vframe);

    /* timestamps: frame i starts at i / fps seconds */
    GST_BUFFER_PTS (buf) = gst_util_uint64_scale (i, GST_SECOND * EXAMPLE_FPS_D,
        EXAMPLE_FPS_N);
    GST_BUFFER_DURATION (buf) = gst_util_uint64_scale (1,
        GST_SECOND * EXAMPLE_FPS_D, EXAMPLE_FPS_N);
    GST_BUFFER_OFFSET (buf) = i;

    /* appsrc takes ownership of the buffer */
    flow = gst_app_src_push_buffer (GST_APP_SRC (appsrc), buf);
    if (flow != GST_FLOW_OK) {
      /* FLUSHING or an error downstream: the bus says why */
      g_printerr ("ivshmem-send: push stopped at frame %d (%s)\n", i,
          gst_flow_get_name (flow));
      break;
    }
  }
  /* EOS goes through the ring after the last frame */
  gst_app_src_end_of_stream (GST_APP_SRC (appsrc));

  /* ---- wait until the sink has written EOS, or for an error ---- */
  bus = gst_element_get_bus (pipeline);
  msg = gst_bus_timed_pop_filtered (bus, GST_CLOCK_TIME_NONE,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  ok = GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS;
  if (ok) {
    g_print ("ivshmem-send: sent %d frames of %dx%d %s to %s\n", i,
        EXAMPLE_WIDTH, EXAMPLE_HEIGHT,
        gst_video_format_to_string (EXAMPLE_FORMAT),
        device[0] ? device : "the first IVSHMEM device");
  } else {
    gchar *debug = NULL;

    gst_message_parse_error (msg, &error, &debug);
    g_printerr ("ivshmem-send: %s\n(%s)\n", error->message,
        GST_STR_NULL (debug));
    g_clear_error (&error);
    g_free (debug);
  }
  gst_message_unref (msg);
  gst_object_unref (bus);

  /* NULL closes the session in the region: a reader that has drained it
   * sees the producer gone, and gets EOS it has not already got. */
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);
  gst_deinit ();
  return ok && i == frames ? 0 : 1;
}
