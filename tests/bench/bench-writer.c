/* bench-writer: the sending side of one benchmark round.
 *
 * Copyright (c) 2025 The gst-ivshmem authors
 * SPDX-License-Identifier: MIT
 *
 * Runs a pipeline description to EOS. With --stamp, a pad probe on the
 * source pad of the element named `src` writes CLOCK_MONOTONIC ns into the
 * first 8 bytes of each buffer just before it is pushed into the sink, so
 * that bench-reader can compute the one-way latency on the same host.
 * It prints one JSON object on stdout: buffers pushed, CLOCK_MONOTONIC ns
 * of the first and last push, eos, error.
 *
 *   bench-writer [--stamp] [--timeout S] PIPELINE
 */

#include <gst/gst.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct
{
  gboolean stamp;
  guint64 buffers;              /* streaming thread only */
  guint64 unstamped;
  gint64 t_first, t_last;

  GMainLoop *loop;
  gchar *error;
  gboolean eos;
} Writer;

static gint64
now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (gint64) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static GstPadProbeReturn
on_buffer (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  Writer *w = user_data;
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  gint64 t = now_ns ();

  if (w->stamp) {
    GstMapInfo map;

    if (gst_buffer_is_writable (buf) && gst_buffer_get_size (buf) >= 8 &&
        gst_buffer_map (buf, &map, GST_MAP_WRITE)) {
      memcpy (map.data, &t, sizeof t);
      gst_buffer_unmap (buf, &map);
    } else {
      w->unstamped++;
    }
  }
  if (w->buffers == 0)
    w->t_first = t;
  w->t_last = t;
  w->buffers++;
  return GST_PAD_PROBE_OK;
}

static gboolean
on_bus (GstBus * bus, GstMessage * msg, gpointer user_data)
{
  Writer *w = user_data;

  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_EOS:
      w->eos = TRUE;
      g_main_loop_quit (w->loop);
      break;
    case GST_MESSAGE_ERROR:{
      GError *err = NULL;
      gchar *dbg = NULL;

      gst_message_parse_error (msg, &err, &dbg);
      if (!w->error)
        w->error = g_strdup_printf ("%s: %s (%s)", GST_OBJECT_NAME (msg->src),
            err->message, dbg ? dbg : "");
      g_clear_error (&err);
      g_free (dbg);
      g_main_loop_quit (w->loop);
      break;
    }
    default:
      break;
  }
  return G_SOURCE_CONTINUE;
}

static gboolean
on_timeout (gpointer user_data)
{
  Writer *w = user_data;

  if (!w->error)
    w->error = g_strdup ("timeout");
  g_main_loop_quit (w->loop);
  return G_SOURCE_REMOVE;
}

static void
print_json_string (const gchar * s)
{
  if (!s) {
    fputs ("null", stdout);
    return;
  }
  putchar ('"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\')
      printf ("\\%c", *s);
    else if ((guchar) * s < 0x20)
      printf ("\\u%04x", *s);
    else
      putchar (*s);
  }
  putchar ('"');
}

int
main (int argc, char **argv)
{
  Writer w = { 0 };
  gint timeout_s = 60;
  const gchar *desc = NULL;
  GstElement *pipeline, *src;
  GstPad *pad;
  GError *err = NULL;
  int i;

  gst_init (&argc, &argv);
  for (i = 1; i < argc; i++) {
    if (!strcmp (argv[i], "--stamp"))
      w.stamp = TRUE;
    else if (!strcmp (argv[i], "--timeout") && i + 1 < argc)
      timeout_s = atoi (argv[++i]);
    else if (argv[i][0] != '-' && !desc)
      desc = argv[i];
    else {
      fprintf (stderr, "usage: %s [--stamp] [--timeout S] PIPELINE\n", argv[0]);
      return 2;
    }
  }
  if (!desc) {
    fprintf (stderr, "%s: no pipeline\n", argv[0]);
    return 2;
  }

  w.loop = g_main_loop_new (NULL, FALSE);
  pipeline = gst_parse_launch (desc, &err);
  if (!pipeline) {
    fprintf (stderr, "%s: %s\n", argv[0], err->message);
    return 2;
  }
  src = gst_bin_get_by_name (GST_BIN (pipeline), "src");
  if (!src) {
    fprintf (stderr, "%s: the pipeline has no element named 'src'\n", argv[0]);
    return 2;
  }
  pad = gst_element_get_static_pad (src, "src");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, on_buffer, &w, NULL);
  gst_object_unref (pad);
  gst_object_unref (src);

  gst_bus_add_watch (GST_ELEMENT_BUS (pipeline), on_bus, &w);
  g_timeout_add_seconds (timeout_s, on_timeout, &w);

  if (gst_element_set_state (pipeline, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE)
    w.error = g_strdup ("could not start the pipeline");
  else
    g_main_loop_run (w.loop);
  gst_element_set_state (pipeline, GST_STATE_NULL);

  if (!w.error && w.stamp && w.unstamped)
    w.error = g_strdup_printf ("%" G_GUINT64_FORMAT " buffers could not be "
        "stamped (not writable)", w.unstamped);

  printf ("{\"buffers\": %" G_GUINT64_FORMAT ", \"t_first\": %"
      G_GINT64_FORMAT ", \"t_last\": %" G_GINT64_FORMAT ", \"eos\": %s, "
      "\"error\": ", w.buffers, w.t_first, w.t_last, w.eos ? "true" : "false");
  print_json_string (w.error);
  puts ("}");
  fflush (stdout);

  gst_object_unref (pipeline);
  g_main_loop_unref (w.loop);
  g_free (w.error);
  return 0;
}
