/* gst-ivshmem: what the sink's tests share
 * SPDX-License-Identifier: MIT
 */
#include "sinktest.h"

#include <string.h>
#include <unistd.h>

guint
time_scale (void)
{
  const gchar *v = g_getenv ("IVSHMEM_TEST_TIME_SCALE");
  guint n = v ? (guint) g_ascii_strtoull (v, NULL, 10) : 1;

  return n ? n : 1;
}

gchar *
region_path (const gchar * name)
{
  gchar *path = g_strdup_printf ("/dev/shm/gst-ivshmem-sink-%d-%s",
      (int) getpid (), name);

  unlink (path);
  return path;
}

GstElement *
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

GstElement *
by_name (GstElement * p, const gchar * name)
{
  GstElement *e = gst_bin_get_by_name (GST_BIN (p), name);

  fail_unless (e != NULL);
  gst_object_unref (e);
  return e;
}

void
check_no_error (GstElement * p)
{
  GstBus *bus = gst_element_get_bus (p);
  GstMessage *msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);

  if (msg) {
    GError *err = NULL;
    gchar *dbg = NULL;

    gst_message_parse_error (msg, &err, &dbg);
    fail ("error from %s: %s (%s)", GST_OBJECT_NAME (msg->src),
        err->message, dbg ? dbg : "");
  }
  gst_object_unref (bus);
}

void
stop (GstElement * p)
{
  check_no_error (p);
  fail_unless (gst_element_set_state (p, GST_STATE_NULL) ==
      GST_STATE_CHANGE_SUCCESS);
  gst_object_unref (p);
}

GstElement *
reader (const gchar * path)
{
  gchar *desc = g_strdup_printf ("ivshmemsrc device=%s is-live=false "
      "zero-copy=false ! appsink name=sink sync=false "
      "enable-last-sample=false max-buffers=1", path);
  GstElement *p = launch (desc);

  g_free (desc);
  return p;
}

GstBuffer *
pull (GstElement * rd, GstClockTime timeout)
{
  GstSample *s = gst_app_sink_try_pull_sample (GST_APP_SINK (by_name (rd,
              "sink")), timeout * time_scale ());
  GstBuffer *buf;

  check_no_error (rd);
  if (!s)
    return NULL;
  buf = gst_buffer_ref (gst_sample_get_buffer (s));
  gst_sample_unref (s);
  return buf;
}

void
fill (GstBuffer * buf, guint seq)
{
  GstMapInfo map;
  gsize i;

  fail_unless (gst_buffer_map (buf, &map, GST_MAP_WRITE));
  for (i = 0; i < map.size; i++)
    map.data[i] = (guint8) (seq * 7 + i / 64);
  memcpy (map.data, &seq, sizeof seq);
  gst_buffer_unmap (buf, &map);
}

/* The sequence number, or G_MAXUINT if the bytes are not fill()'s */
guint
check (GstBuffer * buf)
{
  GstMapInfo map;
  guint seq = G_MAXUINT;
  gsize i;

  fail_unless (gst_buffer_map (buf, &map, GST_MAP_READ));
  if (map.size == FRAME_W * FRAME_H) {
    memcpy (&seq, map.data, sizeof seq);
    for (i = sizeof seq; i < map.size && seq != G_MAXUINT; i++)
      if (map.data[i] != (guint8) (seq * 7 + i / 64))
        seq = G_MAXUINT;
  }
  gst_buffer_unmap (buf, &map);
  return seq;
}

gboolean
is_pool_memory (GstBuffer * buf)
{
  GstMemory *mem = gst_buffer_peek_memory (buf, 0);

  return mem->allocator &&
      g_strcmp0 (mem->allocator->mem_type, "IvshmemRing") == 0;
}

guint64
sink_stat (GstElement * prod, const gchar * field)
{
  GstStructure *s = NULL;
  guint64 v = 0;

  g_object_get (by_name (prod, "sink"), "stats", &s, NULL);
  fail_unless (s != NULL);
  fail_unless (gst_structure_get_uint64 (s, field, &v), "no %s", field);
  gst_structure_free (s);
  return v;
}

/* ---- the pool: appsrc ! ivshmemsink, upstream played by the test ------ */


/* The producer, a reader if asked, and the sink's pool as an upstream
 * element negotiates it (asking for `min` buffers). NULL pool: the sink
 * refused it. */
void
up_start_full (Up * u, const gchar * name, const gchar * caps, guint min,
    gboolean reader_first, GstElement ** rd)
{
  GstQuery *q;
  GstPad *pad;
  GstStructure *config;
  gchar *desc;

  u->path = region_path (name);
  u->caps = gst_caps_from_string (caps);
  /* a push waits while two buffers are queued, as a push downstream
   * would: upstream runs at the sink's pace */
  desc = g_strdup_printf ("appsrc name=src format=time block=true "
      "max-buffers=2 max-bytes=0 caps=\"%s\" ! ivshmemsink name=sink "
      "device=%s size=%u", caps, u->path, SMALL_REGION);
  u->prod = launch (desc);
  g_free (desc);
  u->appsrc = GST_APP_SRC (by_name (u->prod, "src"));
  if (rd)
    *rd = reader_first ? reader (u->path) : NULL;

  pad = gst_element_get_static_pad (GST_ELEMENT (u->appsrc), "src");
  q = gst_query_new_allocation (u->caps, TRUE);
  fail_unless (gst_pad_peer_query (pad, q));
  fail_unless (gst_query_get_n_allocation_pools (q) > 0,
      "ivshmemsink proposed no pool");
  gst_query_parse_nth_allocation_pool (q, 0, &u->pool, &u->size, NULL, NULL);
  fail_unless (u->pool != NULL);
  config = gst_buffer_pool_get_config (u->pool);
  gst_buffer_pool_config_set_params (config, u->caps, u->size, min, 0);
  gst_buffer_pool_config_add_option (config, GST_BUFFER_POOL_OPTION_VIDEO_META);
  if (!gst_buffer_pool_set_config (u->pool, config)) {
    /* as GstVideoDecoder and GstBaseSrc do */
    config = gst_buffer_pool_get_config (u->pool);
    fail_if (gst_buffer_pool_config_validate_params (config, u->caps,
            u->size, min, 0), "the pool changed the config acceptably");
    gst_structure_free (config);
    gst_clear_object (&u->pool);
  } else {
    fail_unless (gst_buffer_pool_set_active (u->pool, TRUE));
  }
  gst_query_unref (q);
  gst_object_unref (pad);
}

void
up_start (Up * u, const gchar * name, guint min, gboolean reader_first,
    GstElement ** rd)
{
  up_start_full (u, name, FRAME_CAPS, min, reader_first, rd);
}

void
up_finish (Up * u)
{
  if (u->pool) {
    gst_buffer_pool_set_active (u->pool, FALSE);
    gst_object_unref (u->pool);
  }
  stop (u->prod);
  unlink (u->path);
  g_free (u->path);
  gst_caps_unref (u->caps);
}

GstBuffer *
up_alloc (Up * u)
{
  GstBuffer *buf = NULL;

  if (!u->pool)
    return gst_buffer_new_allocate (NULL, u->size, NULL);
  fail_unless_equals_int (gst_buffer_pool_acquire_buffer (u->pool, &buf,
          NULL), GST_FLOW_OK);
  return buf;
}

/* Like a decoder with reference frames: each frame is allocated from the
 * pool, filled, pushed, and kept until `keep` newer ones were pushed. The
 * ring holds only five frames. Every frame must arrive, intact, in order;
 * on the old code the acquire of the sixth waited for ever. */
