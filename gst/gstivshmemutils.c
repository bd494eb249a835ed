/* gst-ivshmem: what the two elements share
 * SPDX-License-Identifier: MIT
 */
#include "gstivshmemutils.h"

#include <errno.h>
#include <string.h>

/* IvshmError.sys_errno is an errno value on POSIX systems and a Win32
 * error code (GetLastError()) on Windows. */
static gchar *
sys_error_text (gint code)
{
#ifdef G_OS_WIN32
  gchar *text = g_win32_error_message (code);

  if (text[0] == '\0') {        /* a code the system has no text for */
    g_free (text);
    text = g_strdup_printf ("Windows error %d", code);
  }
  return text;
#else
  return g_strdup (g_strerror (code));
#endif
}

void
gst_ivshmem_post_error (GstElement * element, const IvshmError * err,
    const gchar * what, const gchar * file, const gchar * func, gint line)
{
  GQuark domain = GST_RESOURCE_ERROR;
  gint code;
  gchar *text, *debug;

  switch (err->status) {
    case IVSHM_ERR_NOT_FOUND:
      code = GST_RESOURCE_ERROR_NOT_FOUND;
      break;
    case IVSHM_ERR_PERMISSION:
    case IVSHM_ERR_LOCKDOWN:
      code = GST_RESOURCE_ERROR_NOT_AUTHORIZED;
      break;
    case IVSHM_ERR_TOO_SMALL:
    case IVSHM_ERR_NOT_POW2:
    case IVSHM_ERR_INVALID_ARG:
    case IVSHM_ERR_UNSUPPORTED:
    case IVSHM_ERR_BAD_MAGIC:
    case IVSHM_ERR_VERSION:
      code = GST_RESOURCE_ERROR_SETTINGS;
      break;
    case IVSHM_ERR_TOO_BIG:
      code = GST_RESOURCE_ERROR_NO_SPACE_LEFT;
      break;
    case IVSHM_ERR_PRODUCER_BUSY:
    case IVSHM_ERR_NO_SLOT:
    case IVSHM_ERR_ALREADY_MAPPED:
      code = GST_RESOURCE_ERROR_BUSY;
      break;
    case IVSHM_ERR_IO:
    case IVSHM_ERR_NOT_MAPPED:
      code = GST_RESOURCE_ERROR_OPEN_READ_WRITE;
      break;
    case IVSHM_ERR_CORRUPT:
    case IVSHM_ERR_SESSION_CHANGED:
    case IVSHM_ERR_PRODUCER_GONE:
    case IVSHM_ERR_EVICTED:
    case IVSHM_ERR_NO_PRODUCER:
      code = GST_RESOURCE_ERROR_READ;
      break;
    case IVSHM_ERR_NO_MEMORY:
      domain = GST_CORE_ERROR;
      code = GST_CORE_ERROR_FAILED;
      break;
    default:
      code = GST_RESOURCE_ERROR_FAILED;
      break;
  }

  /* The user text says what failed and why; the detail (the fix, the
   * numbers, the path) goes with it, as the debug string is what
   * gst-launch prints under "Additional debug info". */
#ifndef G_OS_WIN32
  if (err->status == IVSHM_ERR_IO && err->sys_errno == ENOSPC) {
    /* the detail names the file system, its free room and the need */
    code = GST_RESOURCE_ERROR_NO_SPACE_LEFT;
    text = g_strdup_printf ("Could not %s: its file system has no room "
        "for it.", what);
  } else
#endif
    text = g_strdup_printf ("Could not %s: %s.", what,
        ivshm_status_string (err->status));
  if (err->sys_errno) {
    gchar *sys = sys_error_text (err->sys_errno);
    debug = g_strdup_printf ("%s (%s)", err->detail[0] ? err->detail :
        ivshm_status_name (err->status), sys);
    g_free (sys);
  } else
    debug = g_strdup (err->detail[0] ? err->detail :
        ivshm_status_name (err->status));

  gst_element_message_full (element, GST_MESSAGE_ERROR, domain, code, text,
      debug, file, func, line);
}

gboolean
gst_ivshmem_post_begin (gint * posted)
{
  if (g_atomic_int_compare_and_exchange (posted, 0, 1))
    return TRUE;
  /* another thread posts it (or did): return once it is on the bus */
  while (g_atomic_int_get (posted) == 1)
    g_usleep (100);
  return FALSE;
}

void
gst_ivshmem_post_end (gint * posted)
{
  g_atomic_int_set (posted, 2);
}

gboolean
gst_ivshmem_region_lost (GstElement * element, const IvshmRegion * region,
    gint * posted)
{
  IvshmError err = { 0 };
  gchar *text;

  if (G_LIKELY (!ivshm_region_lost (region)))
    return FALSE;
  /* *posted: 0, 1 while one thread posts, 2 once the error is on the
   * bus. A thread that finds it posting waits for it: a streaming thread
   * must not return GST_FLOW_ERROR before the error is posted, or
   * upstream's "Internal data stream error" comes first (the same rule as
   * gst_ivshmem_sink_post_taken_over). */
  if (!gst_ivshmem_post_begin (posted))
    return TRUE;
  ivshm_region_lost_error (region, &err);
  /* "The region file /dev/shm/x shrank to 0 bytes while it was in use" */
  text = g_strdup_printf ("%c%s.", g_ascii_toupper (err.detail[0]),
      err.detail[0] ? err.detail + 1 : "");
  gst_element_message_full (element, GST_MESSAGE_ERROR, GST_RESOURCE_ERROR,
      GST_RESOURCE_ERROR_FAILED, text, g_strdup ("The region's mapping "
          "faulted (SIGBUS), which the element caught: its memory now reads "
          "as zeros in this process, and the element stopped. Stop every "
          "process that uses the region, make the file again with its "
          "full size (or let the sink's size= create it), and restart "
          "them."), __FILE__, GST_FUNCTION, __LINE__);
  gst_ivshmem_post_end (posted);
  return TRUE;
}

gboolean
gst_ivshmem_region_check (GstElement * element, IvshmRegion * region,
    gint * posted)
{
  ivshm_region_check (region);
  return gst_ivshmem_region_lost (element, region, posted);
}

/* ---- events ------------------------------------------------------------ */

static void
record_info_init (IvshmRecordHeader * info, guint16 subtype)
{
  memset (info, 0, sizeof *info);
  info->type = IVSHM_RECORD_EVENT;
  info->subtype = subtype;
  info->pts = info->dts = info->duration = IVSHM_TIME_NONE;
  info->offset = info->offset_end = IVSHM_TIME_NONE;
}

gboolean
gst_ivshmem_event_to_record (GstEvent * event, IvshmRecordHeader * info,
    gchar ** payload)
{
  GstStructure *s = NULL;

  *payload = NULL;
  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_STREAM_START:{
      const gchar *id = NULL;
      GstStreamFlags flags = 0;
      guint group = 0;
      gboolean has_group;

      gst_event_parse_stream_start (event, &id);
      gst_event_parse_stream_flags (event, &flags);
      has_group = gst_event_parse_group_id (event, &group);
      record_info_init (info, IVSHM_EVENT_STREAM_START);
      s = gst_structure_new ("stream-start", "stream-id", G_TYPE_STRING,
          id ? id : "", "flags", G_TYPE_UINT, (guint) flags,
          "has-group-id", G_TYPE_BOOLEAN, has_group,
          "group-id", G_TYPE_UINT, group, NULL);
      break;
    }
    case GST_EVENT_SEGMENT:{
      const GstSegment *seg;

      gst_event_parse_segment (event, &seg);
      record_info_init (info, IVSHM_EVENT_SEGMENT);
      s = gst_structure_new ("segment",
          "format", G_TYPE_INT, (gint) seg->format,
          "flags", G_TYPE_UINT, (guint) seg->flags,
          "rate", G_TYPE_DOUBLE, seg->rate,
          "applied-rate", G_TYPE_DOUBLE, seg->applied_rate,
          "base", G_TYPE_UINT64, seg->base,
          "offset", G_TYPE_UINT64, seg->offset,
          "start", G_TYPE_UINT64, seg->start,
          "stop", G_TYPE_UINT64, seg->stop,
          "time", G_TYPE_UINT64, seg->time,
          "position", G_TYPE_UINT64, seg->position,
          "duration", G_TYPE_UINT64, seg->duration, NULL);
      break;
    }
    case GST_EVENT_TAG:{
      GstTagList *tags;
      gchar *str;

      gst_event_parse_tag (event, &tags);
      str = gst_tag_list_to_string (tags);
      record_info_init (info, IVSHM_EVENT_TAG);
      s = gst_structure_new ("tag", "scope", G_TYPE_INT,
          (gint) gst_tag_list_get_scope (tags), "taglist", G_TYPE_STRING,
          str, NULL);
      g_free (str);
      break;
    }
    case GST_EVENT_GAP:{
      GstClockTime ts, dur;
      GstGapFlags gflags = 0;

      gst_event_parse_gap (event, &ts, &dur);
      gst_event_parse_gap_flags (event, &gflags);
      record_info_init (info, IVSHM_EVENT_GAP);
      info->pts = ts;
      info->duration = dur;
      s = gst_structure_new ("gap", "flags", G_TYPE_UINT, (guint) gflags, NULL);
      break;
    }
    case GST_EVENT_EOS:
      record_info_init (info, IVSHM_EVENT_EOS);
      *payload = g_strdup ("");
      return TRUE;
    case GST_EVENT_STREAM_GROUP_DONE:{
      guint group = 0;

      gst_event_parse_stream_group_done (event, &group);
      record_info_init (info, IVSHM_EVENT_STREAM_GROUP_DONE);
      s = gst_structure_new ("stream-group-done", "group-id", G_TYPE_UINT,
          group, NULL);
      break;
    }
    case GST_EVENT_CUSTOM_DOWNSTREAM:
    case GST_EVENT_CUSTOM_DOWNSTREAM_STICKY:{
      const GstStructure *cs = gst_event_get_structure (event);

      if (!cs)
        return FALSE;
      record_info_init (info,
          GST_EVENT_TYPE (event) == GST_EVENT_CUSTOM_DOWNSTREAM ?
          IVSHM_EVENT_CUSTOM : IVSHM_EVENT_CUSTOM_STICKY);
      *payload = gst_structure_to_string (cs);
      return TRUE;
    }
    default:
      return FALSE;
  }

  *payload = gst_structure_to_string (s);
  gst_structure_free (s);
  return TRUE;
}

static gboolean
get_u64 (const GstStructure * s, const gchar * name, guint64 * v)
{
  return gst_structure_get_uint64 (s, name, v);
}

static GstEvent *
segment_from_structure (const GstStructure * s, const gchar ** why)
{
  GstSegment seg;
  gint format;
  guint flags;
  gdouble rate, applied_rate;

  gst_segment_init (&seg, GST_FORMAT_TIME);
  if (!gst_structure_get_int (s, "format", &format) ||
      !gst_structure_get_uint (s, "flags", &flags) ||
      !gst_structure_get_double (s, "rate", &rate) ||
      !gst_structure_get_double (s, "applied-rate", &applied_rate) ||
      !get_u64 (s, "base", &seg.base) || !get_u64 (s, "offset", &seg.offset)
      || !get_u64 (s, "start", &seg.start) || !get_u64 (s, "stop", &seg.stop)
      || !get_u64 (s, "time", &seg.time)
      || !get_u64 (s, "position", &seg.position)
      || !get_u64 (s, "duration", &seg.duration)) {
    *why = "segment record lacks a field";
    return NULL;
  }
  /* the same checks gst_event_new_segment() asserts on */
  if (format < GST_FORMAT_UNDEFINED || format > GST_FORMAT_PERCENT ||
      !(rate != 0.0) || !(applied_rate != 0.0) || rate != rate ||
      applied_rate != applied_rate ||
      (seg.stop != (guint64) - 1 && seg.start > seg.stop)) {
    *why = "segment record holds impossible values";
    return NULL;
  }
  seg.format = format;
  seg.flags = flags;
  seg.rate = rate;
  seg.applied_rate = applied_rate;
  return gst_event_new_segment (&seg);
}

GstEvent *
gst_ivshmem_event_from_record (const IvshmRecordHeader * info,
    const gchar * payload, const gchar ** why)
{
  GstStructure *s = NULL;
  GstEvent *ev = NULL;

  *why = NULL;
  if (info->subtype == IVSHM_EVENT_EOS)
    return gst_event_new_eos ();
  if (info->subtype == 0 || info->subtype > IVSHM_EVENT_MAX) {
    *why = "unknown event kind";
    return NULL;
  }

  s = gst_structure_from_string (payload, NULL);
  if (!s) {
    *why = "event payload does not parse";
    return NULL;
  }

  switch (info->subtype) {
    case IVSHM_EVENT_STREAM_START:{
      const gchar *id = gst_structure_get_string (s, "stream-id");
      guint flags = 0, group = 0;
      gboolean has_group = FALSE;

      if (!id) {
        *why = "stream-start record lacks a stream-id";
        break;
      }
      gst_structure_get_uint (s, "flags", &flags);
      gst_structure_get_boolean (s, "has-group-id", &has_group);
      gst_structure_get_uint (s, "group-id", &group);
      ev = gst_event_new_stream_start (id);
      gst_event_set_stream_flags (ev, flags);
      if (has_group)
        gst_event_set_group_id (ev, group);
      break;
    }
    case IVSHM_EVENT_SEGMENT:
      ev = segment_from_structure (s, why);
      break;
    case IVSHM_EVENT_TAG:{
      const gchar *str = gst_structure_get_string (s, "taglist");
      gint scope = GST_TAG_SCOPE_STREAM;
      GstTagList *tags;

      gst_structure_get_int (s, "scope", &scope);
      tags = str ? gst_tag_list_new_from_string (str) : NULL;
      if (!tags) {
        *why = "tag record does not parse";
        break;
      }
      gst_tag_list_set_scope (tags, scope == GST_TAG_SCOPE_GLOBAL ?
          GST_TAG_SCOPE_GLOBAL : GST_TAG_SCOPE_STREAM);
      ev = gst_event_new_tag (tags);
      break;
    }
    case IVSHM_EVENT_GAP:{
      guint flags = 0;

      if (info->pts == IVSHM_TIME_NONE) {
        *why = "gap record without a timestamp";
        break;
      }
      gst_structure_get_uint (s, "flags", &flags);
      ev = gst_event_new_gap (info->pts, info->duration);
      gst_event_set_gap_flags (ev, flags);
      break;
    }
    case IVSHM_EVENT_STREAM_GROUP_DONE:{
      guint group = 0;

      if (!gst_structure_get_uint (s, "group-id", &group) || group == 0) {
        *why = "stream-group-done record without a group id";
        break;
      }
      ev = gst_event_new_stream_group_done (group);
      break;
    }
    case IVSHM_EVENT_CUSTOM:
      ev = gst_event_new_custom (GST_EVENT_CUSTOM_DOWNSTREAM, s);
      s = NULL;
      break;
    case IVSHM_EVENT_CUSTOM_STICKY:
      ev = gst_event_new_custom (GST_EVENT_CUSTOM_DOWNSTREAM_STICKY, s);
      s = NULL;
      break;
    default:
      *why = "unknown event kind";
      break;
  }

  if (s)
    gst_structure_free (s);
  return ev;
}


/* ---- properties --------------------------------------------------------- */

/**
 * GstIvshmemBarMapping:
 *
 * How a guest maps the BAR of its IVSHMEM device (the bar-mapping property
 * of #GstIvshmemSink and #GstIvshmemSrc).
 *
 * Since: 0.1
 */
GType
gst_ivshmem_bar_mapping_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {IVSHM_BAR_MAPPING_AUTO, "resource2_wc where the kernel offers it and "
          "this user may open it, else resource2", "auto"},
    {IVSHM_BAR_MAPPING_RESOURCE, "resource2: uncached, slowest reads and "
          "writes", "resource"},
    {IVSHM_BAR_MAPPING_RESOURCE_WC, "resource2_wc: write-combining, fast "
          "writes, uncached reads", "resource-wc"},
    {0, NULL, NULL}
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstIvshmemBarMapping", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

guint64
gst_ivshmem_next_wait (IvshmBackoff * backoff, gboolean * reset,
    gboolean peer_local, IvshmWaiter * waiter, guint64 max_poll_interval)
{
  guint64 timeout;

  if (*reset) {
    ivshm_backoff_reset (backoff, max_poll_interval);
    *reset = FALSE;
  }
  timeout = ivshm_backoff_next (backoff);
  if (timeout != 0 && peer_local && ivshm_waiter_can_be_woken (waiter))
    timeout = GST_IVSHMEM_LOCAL_WAIT_NS;
  return timeout;
}
