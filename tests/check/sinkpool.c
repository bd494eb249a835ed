/* gst-ivshmem: the sink's pool never deadlocks, flushing wakes everyone
 * SPDX-License-Identifier: MIT
 *
 * Upstream elements that keep the buffers they got from ivshmemsink's
 * zero-copy pool (a decoder's reference frames) must never stop the
 * stream, whatever the region's size; a flushing seek or a state change
 * to NULL must wake every thread that waits, upstream threads blocked in
 * the pool's acquire included.
 *
 * Producer and reader run as pipelines in this process over one
 * /dev/shm file. Every wait has a deadline: a hang fails the test.
 */
#include <gst/check/gstcheck.h>
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/video/video.h>

#include <string.h>
#include <unistd.h>

#define KiB 1024u
/* a 64 KiB ring */
#define SMALL_REGION (128u * KiB)
/* 12 KiB frames: five fit in the ring, so the pool keeps at most two */
#define FRAME_W 112
#define FRAME_H 112
#define FRAME_CAPS "video/x-raw,format=GRAY8,width=112,height=112," \
    "framerate=30/1"
#define DEADLINE (10 * GST_SECOND)

static guint
time_scale (void)
{
  const gchar *v = g_getenv ("IVSHMEM_TEST_TIME_SCALE");
  guint n = v ? (guint) g_ascii_strtoull (v, NULL, 10) : 1;

  return n ? n : 1;
}

static gchar *
region_path (const gchar * name)
{
  gchar *path = g_strdup_printf ("/dev/shm/gst-ivshmem-sp-%d-%s",
      (int) getpid (), name);

  unlink (path);
  return path;
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

static GstElement *
by_name (GstElement * p, const gchar * name)
{
  GstElement *e = gst_bin_get_by_name (GST_BIN (p), name);

  fail_unless (e != NULL);
  gst_object_unref (e);
  return e;
}

static void
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

static void
stop (GstElement * p)
{
  check_no_error (p);
  fail_unless (gst_element_set_state (p, GST_STATE_NULL) ==
      GST_STATE_CHANGE_SUCCESS);
  gst_object_unref (p);
}

static GstElement *
reader (const gchar * path)
{
  gchar *desc = g_strdup_printf ("ivshmemsrc device=%s is-live=false "
      "zero-copy=false ! appsink name=sink sync=false "
      "enable-last-sample=false max-buffers=1", path);
  GstElement *p = launch (desc);

  g_free (desc);
  return p;
}

static GstBuffer *
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

static void
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
static guint
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

static gboolean
is_pool_memory (GstBuffer * buf)
{
  GstMemory *mem = gst_buffer_peek_memory (buf, 0);

  return mem->allocator &&
      g_strcmp0 (mem->allocator->mem_type, "IvshmemRing") == 0;
}

static guint64
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

typedef struct
{
  gchar *path;
  GstElement *prod;
  GstAppSrc *appsrc;
  GstBufferPool *pool;
  GstCaps *caps;
  guint size;
} Up;

/* The producer, a reader if asked, and the sink's pool as an upstream
 * element negotiates it (asking for `min` buffers). NULL pool: the sink
 * refused it. */
static void
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

static void
up_start (Up * u, const gchar * name, guint min, gboolean reader_first,
    GstElement ** rd)
{
  up_start_full (u, name, FRAME_CAPS, min, reader_first, rd);
}

static void
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

static GstBuffer *
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
static void
check_keeper (const gchar * name, guint keep, guint min)
{
  const guint n = 60;
  GQueue kept = G_QUEUE_INIT;
  GstElement *rd;
  guint i, from_pool = 0;
  Up u = { 0 };

  up_start (&u, name, min, TRUE, &rd);
  for (i = 0; i < n; i++) {
    GstBuffer *buf = up_alloc (&u), *got;

    if (is_pool_memory (buf))
      from_pool++;
    fill (buf, i);
    g_queue_push_tail (&kept, gst_buffer_ref (buf));
    fail_unless_equals_int (gst_app_src_push_buffer (u.appsrc, buf),
        GST_FLOW_OK);
    while (kept.length > (guint) keep)
      gst_buffer_unref (g_queue_pop_head (&kept));

    got = pull (rd, DEADLINE);
    fail_unless (got != NULL, "%s: frame %u did not arrive while upstream "
        "kept %u pool buffers", name, i, keep);
    fail_unless_equals_int (check (got), (gint) i);
    gst_buffer_unref (got);
  }
  /* what upstream still keeps is intact: moved, never overwritten */
  for (i = 0; i < kept.length; i++)
    fail_unless_equals_int (check (g_queue_peek_nth (&kept, i)),
        (gint) (n - kept.length + i));
  g_queue_clear_full (&kept, (GDestroyNotify) gst_buffer_unref);
  GST_INFO ("%s: %u of %u frames from the pool; zero-copy %" G_GUINT64_FORMAT
      ", copied %" G_GUINT64_FORMAT ", pool system buffers %" G_GUINT64_FORMAT
      ", moved out %" G_GUINT64_FORMAT, name, from_pool, n,
      sink_stat (u.prod, "zero-copy-buffers"),
      sink_stat (u.prod, "copied-buffers"),
      sink_stat (u.prod, "pool-system-buffers"),
      sink_stat (u.prod, "pool-buffers-moved"));
  /* the sink counts a buffer just after the reader may have it */
  for (i = 0; i < 100 && sink_stat (u.prod, "zero-copy-buffers") +
      sink_stat (u.prod, "copied-buffers") < n; i++)
    g_usleep (50 * 1000 * time_scale ());
  fail_unless_equals_uint64 (sink_stat (u.prod, "zero-copy-buffers") +
      sink_stat (u.prod, "copied-buffers"), n);
  if (min == 0)
    fail_unless (from_pool > 0, "%s: the pool was never used", name);
  stop (rd);
  up_finish (&u);
}

/* keeps four frames without saying so (min 0) in a ring of five */
GST_START_TEST (test_keeper_undeclared)
{
  check_keeper ("keep4", 4, 0);
}

GST_END_TEST;

/* keeps three, one more than the pool can hold at once */
GST_START_TEST (test_keeper_three)
{
  check_keeper ("keep3", 3, 0);
}

GST_END_TEST;

/* asks for eight buffers in the allocation: the pool refuses the config
 * (the ring cannot keep them), upstream takes memory of its own */
GST_START_TEST (test_keeper_declared_min_refused)
{
  check_keeper ("min8", 8, 8);
}

GST_END_TEST;

/* ---- flushing wakes an upstream thread blocked in acquire -------------- */

typedef struct
{
  GstBufferPool *pool;
  GstAppSrc *appsrc;
  GMutex lock;
  GCond cond;
  gboolean done;
  GstFlowReturn ret;
  guint pushed;
} Filler;

/* acquire, fill, push, until acquire fails */
static gpointer
filler_thread (gpointer data)
{
  Filler *f = data;
  GstFlowReturn ret;

  for (;;) {
    GstBuffer *buf = NULL;

    ret = gst_buffer_pool_acquire_buffer (f->pool, &buf, NULL);
    if (ret != GST_FLOW_OK)
      break;
    fill (buf, f->pushed++);
    gst_app_src_push_buffer (f->appsrc, buf);
  }
  g_mutex_lock (&f->lock);
  f->ret = ret;
  f->done = TRUE;
  g_cond_broadcast (&f->cond);
  g_mutex_unlock (&f->lock);
  return NULL;
}

static gboolean
filler_wait (Filler * f, GstClockTime timeout)
{
  gint64 end = g_get_monotonic_time () +
      GST_TIME_AS_USECONDS (timeout) * time_scale ();
  gboolean done;

  g_mutex_lock (&f->lock);
  while (!f->done && g_cond_wait_until (&f->cond, &f->lock, end));
  done = f->done;
  g_mutex_unlock (&f->lock);
  return done;
}

/* what a flushing seek delivers to the sink */
static void
flush_sink (Up * u, gboolean start)
{
  GstPad *pad = gst_element_get_static_pad (by_name (u->prod, "sink"),
      "sink");

  fail_unless (gst_pad_send_event (pad, start ?
          gst_event_new_flush_start () : gst_event_new_flush_stop (TRUE)));
  gst_object_unref (pad);
}

/* The ring fills (no reader: the sink keeps everything for a first one;
 * or a reader that stopped reading) and the filler thread blocks in the
 * pool's acquire. A flushing seek, or a state change to NULL, must wake
 * it. The flush is sent to the sink's pad, as a flushing seek from an
 * element upstream of the test's thread would. */
static void
check_flush_wakes_acquire (const gchar * name, gboolean stalled_reader,
    gboolean to_null)
{
  GstElement *rd = NULL;
  Filler f = { 0 };
  GThread *t;
  guint before;
  Up u = { 0 };

  /* 4 KiB frames: the pool may keep twelve, so the ring fills with
   * published ones and the acquire waits for the readers */
  up_start_full (&u, name, "video/x-raw,format=GRAY8,width=64,height=64,"
      "framerate=30/1", 0, stalled_reader, &rd);
  fail_unless (u.pool != NULL);
  g_mutex_init (&f.lock);
  g_cond_init (&f.cond);
  f.pool = u.pool;
  f.appsrc = u.appsrc;
  t = g_thread_new ("filler", filler_thread, &f);

  /* the ring is full when nothing more is pushed for a while */
  do {
    before = g_atomic_int_get (&f.pushed);
    g_usleep (300 * 1000);
  } while ((guint) g_atomic_int_get (&f.pushed) != before);
  fail_if (filler_wait (&f, 0), "acquire failed: %s",
      gst_flow_get_name (f.ret));

  if (to_null) {
    fail_unless (gst_element_set_state (u.prod, GST_STATE_NULL) ==
        GST_STATE_CHANGE_SUCCESS);
  } else {
    flush_sink (&u, TRUE);
  }
  fail_unless (filler_wait (&f, DEADLINE), "%s: an upstream thread is "
      "still blocked in the pool's acquire after %s", name,
      to_null ? "the state change to NULL" : "a flush");
  fail_unless_equals_int (f.ret, GST_FLOW_FLUSHING);
  g_thread_join (t);

  if (!to_null) {
    /* a seek sends FLUSH_STOP once the upstream threads have stopped */
    flush_sink (&u, FALSE);
  }
  if (!to_null) {
    GstBufferPoolAcquireParams params = {
      .flags = GST_BUFFER_POOL_ACQUIRE_FLAG_DONTWAIT
    };
    GstBuffer *buf = NULL;
    GstFlowReturn ret;

    /* after the flush the pool works again: full (EOS, DONTWAIT), or a
     * buffer, not FLUSHING */
    ret = gst_buffer_pool_acquire_buffer (u.pool, &buf, &params);
    fail_if (ret == GST_FLOW_FLUSHING, "the pool stays flushing");
    gst_clear_buffer (&buf);
  }
  if (rd)
    stop (rd);
  up_finish (&u);
  g_mutex_clear (&f.lock);
  g_cond_clear (&f.cond);
}

GST_START_TEST (test_flush_seek_wakes_acquire_no_reader)
{
  check_flush_wakes_acquire ("seek-noreader", FALSE, FALSE);
}

GST_END_TEST;

GST_START_TEST (test_flush_seek_wakes_acquire_stalled_reader)
{
  check_flush_wakes_acquire ("seek-stalled", TRUE, FALSE);
}

GST_END_TEST;

GST_START_TEST (test_null_wakes_acquire_no_reader)
{
  check_flush_wakes_acquire ("null-noreader", FALSE, TRUE);
}

GST_END_TEST;

GST_START_TEST (test_null_wakes_acquire_stalled_reader)
{
  check_flush_wakes_acquire ("null-stalled", TRUE, TRUE);
}

GST_END_TEST;

/* ---- the streaming thread blocked, flushing seek and NULL -------------- */

typedef struct
{
  GstElement *p;
  GstStateChangeReturn ret;
  gboolean seek, done;
  GMutex lock;
  GCond cond;
} Changer;

static gpointer
changer_thread (gpointer data)
{
  Changer *c = data;
  GstStateChangeReturn ret;

  if (c->seek)
    ret = gst_element_seek_simple (c->p, GST_FORMAT_TIME,
        GST_SEEK_FLAG_FLUSH, 0) ? GST_STATE_CHANGE_SUCCESS :
        GST_STATE_CHANGE_FAILURE;
  else
    ret = gst_element_set_state (c->p, GST_STATE_NULL);
  g_mutex_lock (&c->lock);
  c->ret = ret;
  c->done = TRUE;
  g_cond_broadcast (&c->cond);
  g_mutex_unlock (&c->lock);
  return NULL;
}

/* videotestsrc fills the ring (through the pool, or copied) and blocks:
 * the seek or the state change returns, from a thread of its own so that
 * a hang fails the test instead of stopping it. */
static void
check_streaming_blocked (const gchar * name, const gchar * caps,
    gboolean stalled_reader, gboolean seek)
{
  gchar *path = region_path (name);
  gchar *desc = g_strdup_printf ("videotestsrc ! %s ! ivshmemsink "
      "name=sink device=%s size=%u", caps, path, SMALL_REGION);
  GstElement *prod = launch (desc), *rd = NULL;
  Changer c = {.p = prod,.seek = seek };
  guint64 before;
  gint64 end;
  GThread *t;

  if (stalled_reader)
    rd = reader (path);
  do {
    before = sink_stat (prod, "records");
    g_usleep (300 * 1000);
  } while (sink_stat (prod, "records") != before || before == 0);

  g_mutex_init (&c.lock);
  g_cond_init (&c.cond);
  t = g_thread_new ("changer", changer_thread, &c);
  end = g_get_monotonic_time () + GST_TIME_AS_USECONDS (DEADLINE) *
      time_scale ();
  g_mutex_lock (&c.lock);
  while (!c.done && g_cond_wait_until (&c.cond, &c.lock, end));
  g_mutex_unlock (&c.lock);
  fail_unless (c.done, "%s: %s did not return with a full ring", name,
      seek ? "a flushing seek" : "the state change to NULL");
  g_thread_join (t);
  fail_unless (c.ret != GST_STATE_CHANGE_FAILURE);

  if (rd)
    stop (rd);
  stop (prod);
  unlink (path);
  g_free (path);
  g_free (desc);
  g_mutex_clear (&c.lock);
  g_cond_clear (&c.cond);
}

GST_START_TEST (test_streaming_blocked_seek_and_null)
{
  const gchar *pool_caps = FRAME_CAPS;
  /* 48 KiB frames: too big for a pool in this ring, copied */
  const gchar *copy_caps = "video/x-raw,format=GRAY8,width=256,height=192";

  check_streaming_blocked ("sb1", pool_caps, FALSE, TRUE);
  check_streaming_blocked ("sb2", pool_caps, TRUE, TRUE);
  check_streaming_blocked ("sb3", pool_caps, FALSE, FALSE);
  check_streaming_blocked ("sb4", pool_caps, TRUE, FALSE);
  check_streaming_blocked ("sb5", copy_caps, FALSE, TRUE);
  check_streaming_blocked ("sb6", copy_caps, TRUE, FALSE);
}

GST_END_TEST;

/* ---- a pause is not a flush ------------------------------------------- */

/* videotestsrc waits in the pool's acquire (the ring is full: no reader
 * yet). PLAYING -> PAUSED -> PLAYING unlocks the sink, but is no flush:
 * upstream must not get FLUSHING from the pool (its streaming thread would
 * stop for good). Once a reader comes, every frame arrives, then EOS. */
GST_START_TEST (test_pause_does_not_stop_upstream)
{
  const guint n = 40;
  gchar *path = region_path ("pause");
  gchar *desc = g_strdup_printf ("videotestsrc num-buffers=%u ! "
      "video/x-raw,format=GRAY8,width=64,height=64,framerate=30/1 ! "
      "ivshmemsink name=sink device=%s size=%u", n, path, SMALL_REGION);
  GstElement *prod = launch (desc), *rd;
  GstBuffer *buf;
  guint64 before;
  guint got = 0;

  do {
    before = sink_stat (prod, "records");
    g_usleep (300 * 1000);
  } while (sink_stat (prod, "records") != before || before == 0);
  fail_unless (sink_stat (prod, "buffers") < n, "the ring took everything");

  fail_if (gst_element_set_state (prod, GST_STATE_PAUSED) ==
      GST_STATE_CHANGE_FAILURE);
  fail_if (gst_element_set_state (prod, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE);

  rd = reader (path);
  while ((buf = pull (rd, DEADLINE))) {
    gst_buffer_unref (buf);
    got++;
  }
  fail_unless_equals_int (got, n);
  fail_unless (gst_app_sink_is_eos (GST_APP_SINK (by_name (rd, "sink"))));
  stop (rd);
  stop (prod);
  unlink (path);
  g_free (path);
  g_free (desc);
}

GST_END_TEST;

static Suite *
sinkpool_suite (void)
{
  Suite *s = suite_create ("sinkpool");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_keeper_undeclared);
  tcase_add_test (tc, test_keeper_three);
  tcase_add_test (tc, test_keeper_declared_min_refused);
  tcase_add_test (tc, test_flush_seek_wakes_acquire_no_reader);
  tcase_add_test (tc, test_flush_seek_wakes_acquire_stalled_reader);
  tcase_add_test (tc, test_null_wakes_acquire_no_reader);
  tcase_add_test (tc, test_null_wakes_acquire_stalled_reader);
  tcase_add_test (tc, test_streaming_blocked_seek_and_null);
  tcase_add_test (tc, test_pause_does_not_stop_upstream);
  return s;
}

GST_CHECK_MAIN (sinkpool);
