/* gst-ivshmem: runs a pipeline and prints a checksum of every buffer that
 * passes the element named "sums", for the wine suite (tests/windows).
 * SPDX-License-Identifier: MIT
 *
 *   frame-sums PIPELINE-DESCRIPTION [SECOND-PIPELINE...]
 *
 * Built for Linux and for Windows from this one file, so that the two
 * sides of a stream across the Windows/Linux boundary print the same lines
 * for the same data:
 *   caps <caps of the sums element's src pad>
 *   frame <n> <SHA-256 of the buffer's bytes>
 *   eos
 * Exit 0 after EOS, 1 after an error (printed on stderr with its debug
 * text), 2 on a usage error. Each line is flushed at once, so that a test
 * can watch the frames go by.
 *
 * With SECOND-PIPELINEs: once 10 frames have passed, each second pipeline
 * in turn runs in the same process, to its first error or EOS (60 s at
 * most), while the first goes on; after each it prints
 *   second error <message> | <debug text, on one line>
 * or "second eos" (or "second timeout"), and frames go on being counted.
 * The wine suite's "one element per device" cases use it to try a second
 * element on a device that the first holds, in one process.
 */
#include <gst/gst.h>

#include <stdio.h>
#include <string.h>

typedef struct
{
  gint frames;                  /* atomic: the streaming thread counts */
  gchar *caps;
} Sums;

#define SECOND_AFTER_FRAMES 10

/* Runs `desc` to its first error or EOS and prints the "second" line. */
static void
run_second (const gchar * desc)
{
  GstElement *second;
  GstBus *bus;
  GstMessage *msg;
  GError *error = NULL;
  gchar *debug = NULL;

  second = gst_parse_launch (desc, &error);
  if (second == NULL) {
    g_print ("second error cannot parse: %s\n", error->message);
    g_clear_error (&error);
    fflush (stdout);
    return;
  }
  gst_element_set_state (second, GST_STATE_PLAYING);
  bus = gst_element_get_bus (second);
  msg = gst_bus_timed_pop_filtered (bus, 60 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  if (msg == NULL) {
    g_print ("second timeout\n");
  } else if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS) {
    g_print ("second eos\n");
  } else {
    gst_message_parse_error (msg, &error, &debug);
    /* one line: the debug text has a line break after its source */
    if (debug != NULL)
      g_strdelimit (debug, "\r\n", ' ');
    g_print ("second error %s | %s\n", error->message, debug ? debug : "");
    g_clear_error (&error);
    g_free (debug);
  }
  fflush (stdout);
  if (msg != NULL)
    gst_message_unref (msg);
  gst_object_unref (bus);
  gst_element_set_state (second, GST_STATE_NULL);
  gst_object_unref (second);
}

static GstPadProbeReturn
on_buffer (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  Sums *sums = user_data;
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  GstMapInfo map;
  gchar *sum;
  GstCaps *caps;

  if (sums->caps == NULL && (caps = gst_pad_get_current_caps (pad))) {
    sums->caps = gst_caps_to_string (caps);
    gst_caps_unref (caps);
    g_print ("caps %s\n", sums->caps);
    fflush (stdout);
  }
  if (!gst_buffer_map (buf, &map, GST_MAP_READ)) {
    g_printerr ("cannot map buffer %d\n", g_atomic_int_get (&sums->frames));
    return GST_PAD_PROBE_OK;
  }
  sum = g_compute_checksum_for_data (G_CHECKSUM_SHA256, map.data, map.size);
  g_print ("frame %d %s\n", g_atomic_int_add (&sums->frames, 1), sum);
  fflush (stdout);
  g_free (sum);
  gst_buffer_unmap (buf, &map);
  return GST_PAD_PROBE_OK;
}

int
main (int argc, char **argv)
{
  Sums sums = { 0, NULL };
  GstElement *pipeline, *el;
  GstPad *pad;
  GstBus *bus;
  GstMessage *msg;
  GError *error = NULL;
  int ret = 1, second = 2, i;

  gst_init (&argc, &argv);
  if (argc < 2) {
    g_printerr ("usage: frame-sums PIPELINE (with an element named sums) "
        "[SECOND-PIPELINE...]\n");
    return 2;
  }
  pipeline = gst_parse_launch (argv[1], &error);
  if (pipeline == NULL) {
    g_printerr ("cannot parse the pipeline: %s\n", error->message);
    g_clear_error (&error);
    return 2;
  }
  el = gst_bin_get_by_name (GST_BIN (pipeline), "sums");
  if (el == NULL || (pad = gst_element_get_static_pad (el, "src")) == NULL) {
    g_printerr ("the pipeline has no element \"sums\" with a src pad\n");
    return 2;
  }
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, on_buffer, &sums, NULL);
  gst_object_unref (pad);
  gst_object_unref (el);

  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  bus = gst_element_get_bus (pipeline);
  for (;;) {
    msg = gst_bus_timed_pop_filtered (bus, 20 * GST_MSECOND,
        GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
    if (msg != NULL)
      break;
    if (second < argc && g_atomic_int_get (&sums.frames) >= SECOND_AFTER_FRAMES) {
      for (i = second; i < argc; i++)
        run_second (argv[i]);
      second = argc;
    }
  }
  if (second < argc)
    g_print ("second not run: the first pipeline ended after %d frames\n",
        g_atomic_int_get (&sums.frames));
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS) {
    g_print ("eos\n");
    fflush (stdout);
    ret = 0;
  } else {
    gchar *debug = NULL;

    gst_message_parse_error (msg, &error, &debug);
    g_printerr ("ERROR from %s: %s\n%s\n", GST_OBJECT_NAME (msg->src),
        error->message, debug ? debug : "");
    g_clear_error (&error);
    g_free (debug);
  }
  gst_message_unref (msg);
  gst_object_unref (bus);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);
  g_free (sums.caps);
  return ret;
}
