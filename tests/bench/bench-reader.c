/* bench-reader: the receiving side of one benchmark round.
 *
 * Copyright (c) 2025 The gst-ivshmem authors
 * SPDX-License-Identifier: MIT
 *
 * Runs a pipeline description whose last element is `fakesink name=sink`,
 * counts the buffers that reach the sink with a pad probe, and stops after
 * --count buffers or at EOS, whichever comes first (shmsrc never sends
 * EOS). It prints one JSON object on stdout:
 *
 *   buffers, bytes      what reached the sink
 *   t_first, t_warm,    CLOCK_MONOTONIC ns of the first buffer, of buffer
 *   t_last              number --warmup, and of the last buffer
 *   warm_index          the buffer index t_warm belongs to
 *   eos                 whether the pipeline ended with EOS
 *   lat_*               with --latency: one-way latency of each buffer after
 *                       the warm-up, from a CLOCK_MONOTONIC stamp the writer
 *                       put into the first 8 bytes of the payload
 *   cpu_*               user and system seconds of this process between
 *                       t_warm and t_last (getrusage, all threads)
 *   error               null, or why the round failed
 *
 *   bench-reader [--count K] [--warmup W] [--latency] [--timeout S] PIPELINE
 */

#include <gst/gst.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

typedef struct
{
  guint64 count;                /* stop after this many buffers */
  guint64 warmup;               /* buffers before the measured window */
  gboolean latency;

  /* written by the streaming thread only, read after it stopped */
  guint64 buffers;
  guint64 bytes;
  gint64 t_first, t_warm, t_last;
  double cpu_warm, cpu_last;
  GArray *lat;                  /* gint64 ns */
  guint64 short_buffers;        /* too small to carry a stamp */

  GMainLoop *loop;
  gboolean done;                /* atomic: count reached */
} Reader;

static gint64
now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (gint64) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double
cpu_seconds (void)
{
  struct rusage ru;

  getrusage (RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
      ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static GstPadProbeReturn
on_buffer (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  Reader *r = user_data;
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  gint64 t = now_ns ();

  if (g_atomic_int_get (&r->done))
    return GST_PAD_PROBE_DROP;

  if (r->latency && r->buffers >= r->warmup) {
    gint64 stamp;

    if (gst_buffer_extract (buf, 0, &stamp, sizeof stamp) == sizeof stamp) {
      gint64 d = t - stamp;
      g_array_append_val (r->lat, d);
    } else {
      r->short_buffers++;
    }
  }

  if (r->buffers == 0)
    r->t_first = t;
  if (r->buffers == r->warmup) {
    r->t_warm = t;
    r->cpu_warm = cpu_seconds ();
  }
  r->buffers++;
  r->bytes += gst_buffer_get_size (buf);
  r->t_last = t;

  if (r->buffers >= r->count) {
    r->cpu_last = cpu_seconds ();
    g_atomic_int_set (&r->done, TRUE);
    g_main_loop_quit (r->loop);
  }
  return GST_PAD_PROBE_OK;
}

typedef struct
{
  GMainLoop *loop;
  gchar *error;
  gboolean eos;
} BusState;

static gboolean
on_timeout (gpointer user_data)
{
  BusState *s = user_data;

  if (!s->error)
    s->error = g_strdup ("timeout");
  g_main_loop_quit (s->loop);
  return G_SOURCE_REMOVE;
}

static gboolean
on_bus (GstBus * bus, GstMessage * msg, gpointer user_data)
{
  BusState *s = user_data;

  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_EOS:
      s->eos = TRUE;
      g_main_loop_quit (s->loop);
      break;
    case GST_MESSAGE_ERROR:{
      GError *err = NULL;
      gchar *dbg = NULL;

      gst_message_parse_error (msg, &err, &dbg);
      if (!s->error)
        s->error = g_strdup_printf ("%s: %s (%s)", GST_OBJECT_NAME (msg->src),
            err->message, dbg ? dbg : "");
      g_clear_error (&err);
      g_free (dbg);
      g_main_loop_quit (s->loop);
      break;
    }
    default:
      break;
  }
  return G_SOURCE_CONTINUE;
}

static int
cmp_i64 (const void *a, const void *b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;

  return (x > y) - (x < y);
}

static gint64
percentile (GArray * a, double p)
{
  gsize i;

  if (a->len == 0)
    return -1;
  i = (gsize) (p * (a->len - 1) + 0.5);
  return g_array_index (a, gint64, i);
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
  Reader r = { 0 };
  BusState bs = { 0 };
  gint timeout_s = 60;
  const gchar *desc = NULL;
  GstElement *pipeline, *sink;
  GstPad *pad;
  GError *err = NULL;
  gchar *error = NULL;
  int i;

  gst_init (&argc, &argv);
  r.count = G_MAXUINT64;
  for (i = 1; i < argc; i++) {
    if (!strcmp (argv[i], "--count") && i + 1 < argc)
      r.count = g_ascii_strtoull (argv[++i], NULL, 10);
    else if (!strcmp (argv[i], "--warmup") && i + 1 < argc)
      r.warmup = g_ascii_strtoull (argv[++i], NULL, 10);
    else if (!strcmp (argv[i], "--timeout") && i + 1 < argc)
      timeout_s = atoi (argv[++i]);
    else if (!strcmp (argv[i], "--latency"))
      r.latency = TRUE;
    else if (argv[i][0] != '-' && !desc)
      desc = argv[i];
    else {
      fprintf (stderr, "usage: %s [--count K] [--warmup W] [--latency] "
          "[--timeout S] PIPELINE\n", argv[0]);
      return 2;
    }
  }
  if (!desc) {
    fprintf (stderr, "%s: no pipeline\n", argv[0]);
    return 2;
  }
  if (r.warmup >= r.count)
    r.warmup = 0;

  r.lat = g_array_new (FALSE, FALSE, sizeof (gint64));
  r.loop = bs.loop = g_main_loop_new (NULL, FALSE);

  pipeline = gst_parse_launch (desc, &err);
  if (!pipeline) {
    fprintf (stderr, "%s: %s\n", argv[0], err->message);
    return 2;
  }
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  if (!sink) {
    fprintf (stderr, "%s: the pipeline has no element named 'sink'\n", argv[0]);
    return 2;
  }
  pad = gst_element_get_static_pad (sink, "sink");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, on_buffer, &r, NULL);
  gst_object_unref (pad);
  gst_object_unref (sink);

  gst_bus_add_watch (GST_ELEMENT_BUS (pipeline), on_bus, &bs);
  g_timeout_add_seconds (timeout_s, on_timeout, &bs);

  if (gst_element_set_state (pipeline, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE)
    error = g_strdup ("could not start the pipeline");
  else
    g_main_loop_run (r.loop);
  gst_element_set_state (pipeline, GST_STATE_NULL);

  if (!error && bs.error)
    error = g_strdup (bs.error);
  if (!error && r.buffers < r.count && r.count != G_MAXUINT64)
    error = g_strdup_printf ("only %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
        " buffers arrived", r.buffers, r.count);
  if (!error && r.latency && r.lat->len == 0)
    error = g_strdup ("no latency samples");
  if (r.cpu_last == 0)
    r.cpu_last = cpu_seconds ();

  printf ("{\"buffers\": %" G_GUINT64_FORMAT ", \"bytes\": %" G_GUINT64_FORMAT
      ", \"t_first\": %" G_GINT64_FORMAT ", \"t_warm\": %" G_GINT64_FORMAT
      ", \"t_last\": %" G_GINT64_FORMAT ", \"warm_index\": %" G_GUINT64_FORMAT
      ", \"eos\": %s, \"cpu_window\": %.6f", r.buffers, r.bytes, r.t_first,
      r.t_warm, r.t_last, r.warmup, bs.eos ? "true" : "false",
      r.cpu_last - r.cpu_warm);
  if (r.latency) {
    g_array_sort (r.lat, cmp_i64);
    printf (", \"lat_n\": %u, \"lat_p50\": %" G_GINT64_FORMAT
        ", \"lat_p99\": %" G_GINT64_FORMAT ", \"lat_max\": %" G_GINT64_FORMAT
        ", \"lat_min\": %" G_GINT64_FORMAT ", \"short_buffers\": %"
        G_GUINT64_FORMAT, r.lat->len, percentile (r.lat, 0.5),
        percentile (r.lat, 0.99), percentile (r.lat, 1.0),
        percentile (r.lat, 0.0), r.short_buffers);
  }
  fputs (", \"error\": ", stdout);
  print_json_string (error);
  puts ("}");
  fflush (stdout);

  gst_object_unref (pipeline);
  g_array_free (r.lat, TRUE);
  g_main_loop_unref (r.loop);
  g_free (bs.error);
  g_free (error);
  return 0;
}
