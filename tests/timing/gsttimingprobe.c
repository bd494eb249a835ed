/* gst-ivshmem timing tests: two test-only elements that measure time
 * across the ring, from one process to another.
 * SPDX-License-Identifier: MIT
 *
 * ivtimestamp (in the producer, just before ivshmemsink) writes a stamp
 * into the first 64 bytes of each buffer's payload: a magic, a sequence
 * number, the moment it sent the buffer (CLOCK_MONOTONIC), the buffer's
 * PTS, its running time and the pipeline's base time (so its presentation
 * moment on the producer's clock, base time plus running time), the
 * producer clock's time at that moment, and upstream's latency (a live
 * source's: the producer's own synced sink renders that much after the
 * presentation moment).
 *
 * ivtimecheck (in the reader) is a GstBaseSink with nothing of its own
 * between the clock wait and render(): with sync=true (the default) it
 * renders when fakesink sync=true would, and drops late buffers as
 * GstBaseSink does with max-lateness (the tests set it, as a video sink
 * has it). In render() it reads CLOCK_MONOTONIC and writes one line per
 * buffer to `location`: the stamp, the buffer's PTS and running time here,
 * this pipeline's base time and clock time, and the latency this sink was
 * configured with. In prepare(), before the clock wait, it writes a line
 * per buffer received (also those then dropped), and one per segment.
 * The tests (timing.py) read the file.
 *
 * Both clocks are CLOCK_MONOTONIC of one kernel, so render moment minus
 * sent moment is the end-to-end delay, exactly.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <gst/gst.h>
#include <gst/base/gstbasetransform.h>
#include <gst/base/gstbasesink.h>

#define STAMP_MAGIC G_GUINT64_CONSTANT (0x504d415453544956)     /* "IVTSTAMP" */
#define STAMP_SIZE 64

/* the stamp, little-endian u64 fields at these offsets of the payload */
enum
{
  STAMP_OFF_MAGIC = 0,
  STAMP_OFF_SEQ = 8,
  STAMP_OFF_SENT = 16,
  STAMP_OFF_PTS = 24,
  STAMP_OFF_RT = 32,
  STAMP_OFF_BASE = 40,
  STAMP_OFF_CLOCK = 48,
  STAMP_OFF_LATENCY = 56,
};
#define STAMP_FIELDS 8

static guint64
monotonic_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (guint64) ts.tv_sec * GST_SECOND + (guint64) ts.tv_nsec;
}

/* GST_CLOCK_TIME_NONE prints as -1 */
static gint64
num (GstClockTime t)
{
  return GST_CLOCK_TIME_IS_VALID (t) ? (gint64) t : -1;
}

static FILE *
open_log (GstElement * e, const gchar * location)
{
  FILE *f;

  if (location == NULL || *location == '\0')
    return NULL;
  f = fopen (location, "w");
  if (f == NULL)
    GST_ELEMENT_ERROR (e, RESOURCE, OPEN_WRITE, ("Cannot open %s", location),
        ("fopen: %s", g_strerror (errno)));
  return f;
}

static void
log_segment (FILE * f, const gchar * tag, const GstSegment * s)
{
  if (f == NULL)
    return;
  fprintf (f, "G %s %" G_GUINT64_FORMAT " %.3f %" G_GINT64_FORMAT " %"
      G_GINT64_FORMAT " %" G_GINT64_FORMAT " %" G_GINT64_FORMAT "\n", tag,
      monotonic_ns (), s->rate, num (s->start), num (s->stop), num (s->time),
      num (s->base));
  fflush (f);
}

enum
{
  PROP_0,
  PROP_LOCATION,
  PROP_TAG,
};

/* ---- ivtimestamp ---------------------------------------------------- */

typedef struct
{
  GstBaseTransform parent;
  gchar *location;
  gchar *tag;
  FILE *log;
  guint64 seq;
  gboolean query_latency;       /* at the next buffer */
  GstClockTime latency;
} IvTimeStamp;

typedef struct
{
  GstBaseTransformClass parent_class;
} IvTimeStampClass;

GType iv_time_stamp_get_type (void);
G_DEFINE_TYPE (IvTimeStamp, iv_time_stamp, GST_TYPE_BASE_TRANSFORM);

static GstStaticPadTemplate any_sink = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);
static GstStaticPadTemplate any_src = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

static void
set_common_property (gchar ** location, gchar ** tag, guint id,
    const GValue * v)
{
  if (id == PROP_LOCATION) {
    g_free (*location);
    *location = g_value_dup_string (v);
  } else if (id == PROP_TAG) {
    g_free (*tag);
    *tag = g_value_dup_string (v);
  }
}

static void
get_common_property (gchar * location, gchar * tag, guint id, GValue * v)
{
  if (id == PROP_LOCATION)
    g_value_set_string (v, location);
  else if (id == PROP_TAG)
    g_value_set_string (v, tag);
}

static void
install_common_properties (GObjectClass * oc)
{
  g_object_class_install_property (oc, PROP_LOCATION,
      g_param_spec_string ("location", "Location",
          "File that gets one line per buffer and segment", NULL,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (oc, PROP_TAG,
      g_param_spec_string ("tag", "Tag", "Name of the stream in the lines",
          "s", G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS));
}

static void
iv_time_stamp_set_property (GObject * o, guint id, const GValue * v,
    GParamSpec * p)
{
  IvTimeStamp *self = (IvTimeStamp *) o;

  set_common_property (&self->location, &self->tag, id, v);
}

static void
iv_time_stamp_get_property (GObject * o, guint id, GValue * v, GParamSpec * p)
{
  IvTimeStamp *self = (IvTimeStamp *) o;

  get_common_property (self->location, self->tag, id, v);
}

static void
iv_time_stamp_finalize (GObject * o)
{
  IvTimeStamp *self = (IvTimeStamp *) o;

  g_free (self->location);
  g_free (self->tag);
  G_OBJECT_CLASS (iv_time_stamp_parent_class)->finalize (o);
}

static gboolean
iv_time_stamp_start (GstBaseTransform * t)
{
  IvTimeStamp *self = (IvTimeStamp *) t;

  self->seq = 0;
  self->query_latency = TRUE;
  self->latency = GST_CLOCK_TIME_NONE;
  self->log = open_log (GST_ELEMENT (t), self->location);
  return self->log != NULL || self->location == NULL || !*self->location;
}

static gboolean
iv_time_stamp_stop (GstBaseTransform * t)
{
  IvTimeStamp *self = (IvTimeStamp *) t;

  if (self->log)
    fclose (self->log);
  self->log = NULL;
  return TRUE;
}

static gboolean
iv_time_stamp_sink_event (GstBaseTransform * t, GstEvent * event)
{
  IvTimeStamp *self = (IvTimeStamp *) t;

  if (GST_EVENT_TYPE (event) == GST_EVENT_SEGMENT) {
    const GstSegment *s;

    gst_event_parse_segment (event, &s);
    log_segment (self->log, self->tag, s);
    self->query_latency = TRUE;
  }
  return GST_BASE_TRANSFORM_CLASS (iv_time_stamp_parent_class)->sink_event (t,
      event);
}

static GstFlowReturn
iv_time_stamp_transform_ip (GstBaseTransform * t, GstBuffer * buf)
{
  IvTimeStamp *self = (IvTimeStamp *) t;
  GstClock *clock;
  GstClockTime pts = GST_BUFFER_PTS (buf), rt, base, now = GST_CLOCK_TIME_NONE;
  guint64 sent, seq = self->seq++;
  GstMapInfo map;

  if (self->query_latency) {
    GstQuery *q = gst_query_new_latency ();
    GstClockTime min = GST_CLOCK_TIME_NONE, max;
    gboolean live = FALSE;

    if (gst_pad_peer_query (GST_BASE_TRANSFORM_SINK_PAD (t), q))
      gst_query_parse_latency (q, &live, &min, &max);
    gst_query_unref (q);
    self->latency = live ? min : GST_CLOCK_TIME_NONE;
    self->query_latency = FALSE;
  }
  rt = gst_segment_to_running_time (&t->segment, GST_FORMAT_TIME, pts);
  base = gst_element_get_base_time (GST_ELEMENT (t));
  clock = gst_element_get_clock (GST_ELEMENT (t));
  sent = monotonic_ns ();
  if (clock) {
    now = gst_clock_get_time (clock);
    gst_object_unref (clock);
  }
  if (gst_buffer_get_size (buf) >= STAMP_SIZE
      && gst_buffer_map (buf, &map, GST_MAP_WRITE)) {
    guint8 *d = map.data;

    memset (d, 0, STAMP_SIZE);
    GST_WRITE_UINT64_LE (d + STAMP_OFF_MAGIC, STAMP_MAGIC);
    GST_WRITE_UINT64_LE (d + STAMP_OFF_SEQ, seq);
    GST_WRITE_UINT64_LE (d + STAMP_OFF_SENT, sent);
    GST_WRITE_UINT64_LE (d + STAMP_OFF_PTS, pts);
    GST_WRITE_UINT64_LE (d + STAMP_OFF_RT, rt);
    GST_WRITE_UINT64_LE (d + STAMP_OFF_BASE, base);
    GST_WRITE_UINT64_LE (d + STAMP_OFF_CLOCK, now);
    GST_WRITE_UINT64_LE (d + STAMP_OFF_LATENCY, self->latency);
    gst_buffer_unmap (buf, &map);
  }
  if (self->log) {
    /* S tag seq sent pts rt base clock latency */
    fprintf (self->log, "S %s %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %"
        G_GINT64_FORMAT " %" G_GINT64_FORMAT " %" G_GINT64_FORMAT " %"
        G_GINT64_FORMAT " %" G_GINT64_FORMAT "\n", self->tag, seq, sent,
        num (pts), num (rt), num (base), num (now), num (self->latency));
    fflush (self->log);
  }
  return GST_FLOW_OK;
}

static void
iv_time_stamp_class_init (IvTimeStampClass * klass)
{
  GObjectClass *oc = G_OBJECT_CLASS (klass);
  GstElementClass *ec = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *tc = GST_BASE_TRANSFORM_CLASS (klass);

  oc->set_property = iv_time_stamp_set_property;
  oc->get_property = iv_time_stamp_get_property;
  oc->finalize = iv_time_stamp_finalize;
  install_common_properties (oc);
  gst_element_class_add_static_pad_template (ec, &any_sink);
  gst_element_class_add_static_pad_template (ec, &any_src);
  gst_element_class_set_static_metadata (ec, "Timing stamp (test)",
      "Filter", "Writes the send moment and timestamps into each buffer",
      "gst-ivshmem tests");
  tc->start = iv_time_stamp_start;
  tc->stop = iv_time_stamp_stop;
  tc->sink_event = iv_time_stamp_sink_event;
  tc->transform_ip = iv_time_stamp_transform_ip;
}

static void
iv_time_stamp_init (IvTimeStamp * self)
{
  self->tag = g_strdup ("s");
  /* in place, never passthrough: the buffer is made writable */
  gst_base_transform_set_in_place (GST_BASE_TRANSFORM (self), TRUE);
}

/* ---- ivtimecheck ---------------------------------------------------- */

typedef struct
{
  GstBaseSink parent;
  gchar *location;
  gchar *tag;
  FILE *log;
} IvTimeCheck;

typedef struct
{
  GstBaseSinkClass parent_class;
} IvTimeCheckClass;

GType iv_time_check_get_type (void);
G_DEFINE_TYPE (IvTimeCheck, iv_time_check, GST_TYPE_BASE_SINK);

static void
iv_time_check_set_property (GObject * o, guint id, const GValue * v,
    GParamSpec * p)
{
  IvTimeCheck *self = (IvTimeCheck *) o;

  set_common_property (&self->location, &self->tag, id, v);
}

static void
iv_time_check_get_property (GObject * o, guint id, GValue * v, GParamSpec * p)
{
  IvTimeCheck *self = (IvTimeCheck *) o;

  get_common_property (self->location, self->tag, id, v);
}

static void
iv_time_check_finalize (GObject * o)
{
  IvTimeCheck *self = (IvTimeCheck *) o;

  g_free (self->location);
  g_free (self->tag);
  G_OBJECT_CLASS (iv_time_check_parent_class)->finalize (o);
}

static gboolean
iv_time_check_start (GstBaseSink * s)
{
  IvTimeCheck *self = (IvTimeCheck *) s;

  self->log = open_log (GST_ELEMENT (s), self->location);
  return self->log != NULL || self->location == NULL || !*self->location;
}

static gboolean
iv_time_check_stop (GstBaseSink * s)
{
  IvTimeCheck *self = (IvTimeCheck *) s;

  if (self->log)
    fclose (self->log);
  self->log = NULL;
  return TRUE;
}

static gboolean
iv_time_check_event (GstBaseSink * s, GstEvent * event)
{
  IvTimeCheck *self = (IvTimeCheck *) s;

  if (GST_EVENT_TYPE (event) == GST_EVENT_SEGMENT) {
    const GstSegment *seg;

    gst_event_parse_segment (event, &seg);
    log_segment (self->log, self->tag, seg);
  }
  return GST_BASE_SINK_CLASS (iv_time_check_parent_class)->event (s, event);
}

/* the stamp of BUF into ST[STAMP_FIELDS]; FALSE if it has none */
static gboolean
read_stamp (GstBuffer * buf, guint64 * st)
{
  gboolean stamped = FALSE;
  GstMapInfo map;

  if (gst_buffer_map (buf, &map, GST_MAP_READ)) {
    if (map.size >= STAMP_SIZE && GST_READ_UINT64_LE (map.data) == STAMP_MAGIC) {
      guint i;

      for (i = 0; i < STAMP_FIELDS; i++)
        st[i] = GST_READ_UINT64_LE (map.data + 8 * i);
      stamped = TRUE;
    }
    gst_buffer_unmap (buf, &map);
  }
  return stamped;
}

/* every buffer, before the clock wait: what the source delivered, also
 * the buffers the sink then drops as too late */
static GstFlowReturn
iv_time_check_prepare (GstBaseSink * s, GstBuffer * buf)
{
  IvTimeCheck *self = (IvTimeCheck *) s;
  guint64 st[STAMP_FIELDS] = { 0 };
  guint64 at = monotonic_ns ();

  if (self->log == NULL || !read_stamp (buf, st))
    return GST_FLOW_OK;
  /* P tag received seq sent */
  fprintf (self->log, "P %s %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %"
      G_GUINT64_FORMAT "\n", self->tag, at, st[1], st[2]);
  fflush (self->log);
  return GST_FLOW_OK;
}

static GstFlowReturn
iv_time_check_render (GstBaseSink * s, GstBuffer * buf)
{
  IvTimeCheck *self = (IvTimeCheck *) s;
  guint64 render = monotonic_ns ();
  GstClockTime pts = GST_BUFFER_PTS (buf), rt, base, now = GST_CLOCK_TIME_NONE;
  guint64 st[STAMP_FIELDS] = { 0 };
  gboolean stamped = FALSE;
  GstClock *clock;

  if (self->log == NULL)
    return GST_FLOW_OK;
  rt = gst_segment_to_running_time (&s->segment, GST_FORMAT_TIME, pts);
  base = gst_element_get_base_time (GST_ELEMENT (s));
  clock = gst_element_get_clock (GST_ELEMENT (s));
  if (clock) {
    now = gst_clock_get_time (clock);
    gst_object_unref (clock);
  }
  stamped = read_stamp (buf, st);
  /* R tag render | seq sent pts rt base clock latency (the producer's) |
   * pts rt base clock latency (here) */
  if (stamped)
    fprintf (self->log, "R %s %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %"
        G_GUINT64_FORMAT " %" G_GINT64_FORMAT " %" G_GINT64_FORMAT " %"
        G_GINT64_FORMAT " %" G_GINT64_FORMAT " %" G_GINT64_FORMAT, self->tag,
        render, st[1], st[2], num (st[3]), num (st[4]), num (st[5]),
        num (st[6]), num (st[7]));
  else
    fprintf (self->log, "R %s %" G_GUINT64_FORMAT " - - - - - - -",
        self->tag, render);
  fprintf (self->log, " %" G_GINT64_FORMAT " %" G_GINT64_FORMAT " %"
      G_GINT64_FORMAT " %" G_GINT64_FORMAT " %" G_GINT64_FORMAT "\n",
      num (pts), num (rt), num (base), num (now),
      num (gst_base_sink_get_latency (s)));
  fflush (self->log);
  return GST_FLOW_OK;
}

static void
iv_time_check_class_init (IvTimeCheckClass * klass)
{
  GObjectClass *oc = G_OBJECT_CLASS (klass);
  GstElementClass *ec = GST_ELEMENT_CLASS (klass);
  GstBaseSinkClass *bc = GST_BASE_SINK_CLASS (klass);

  oc->set_property = iv_time_check_set_property;
  oc->get_property = iv_time_check_get_property;
  oc->finalize = iv_time_check_finalize;
  install_common_properties (oc);
  gst_element_class_add_static_pad_template (ec, &any_sink);
  gst_element_class_set_static_metadata (ec, "Timing check (test)",
      "Sink", "Logs when each stamped buffer is rendered", "gst-ivshmem tests");
  bc->start = iv_time_check_start;
  bc->stop = iv_time_check_stop;
  bc->event = iv_time_check_event;
  bc->prepare = iv_time_check_prepare;
  bc->render = iv_time_check_render;
}

static void
iv_time_check_init (IvTimeCheck * self)
{
  self->tag = g_strdup ("s");
  gst_base_sink_set_sync (GST_BASE_SINK (self), TRUE);
}

static gboolean
plugin_init (GstPlugin * plugin)
{
  return gst_element_register (plugin, "ivtimestamp", GST_RANK_NONE,
      iv_time_stamp_get_type ())
      && gst_element_register (plugin, "ivtimecheck", GST_RANK_NONE,
      iv_time_check_get_type ());
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, ivtimingprobe,
    "gst-ivshmem timing test elements", plugin_init, "0.1", "MIT/X11",
    "gst-ivshmem", "gst-ivshmem tests")
