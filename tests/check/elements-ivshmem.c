/* gst-ivshmem: tests of ivshmemsink and ivshmemsrc in one process
 * SPDX-License-Identifier: MIT
 *
 * Each element is checked against the core on the other side of the ring:
 * the sink's output is read back with an IvshmReader, the source is fed
 * by an IvshmWriter that the test drives record by record. The event
 * payloads the test writes are built here from the documented format
 * (gst_ivshmem_event_to_record() in gst/gstivshmemutils.c), not with the
 * plugin's own helper, so that the test checks the format too.
 *
 * Regions are files /dev/shm/gst-ivshmem-check-PID-NAME, removed by the
 * test that made them. Every wait has a deadline.
 */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/base/gstbasesink.h>
#include <gst/base/gstpushsrc.h>

#include "ivshmem-layout.h"
#include "ivshmem-region.h"
#include "fixture.h"
#include "ivshmem-ring.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* the regions of this test: /dev/shm/gst-ivshmem-check-PID-NAME */
#define shm_path(name) fixture_shm_path ("check", name)

#define KiB (G_GUINT64_CONSTANT (1024))
#define MiB (KiB * 1024)

/* ---- helpers ---------------------------------------------------------- */

static void
remove_region (gchar * path)
{
  unlink (path);
  g_free (path);
}

/* A file of `size` bytes: zeros, or random bytes whose first 8 bytes are a
 * nonzero value that is not the magic. */
static void
make_region_file (const gchar * path, guint64 size, gboolean garbage)
{
  int fd = open (path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

  fail_unless (fd >= 0, "open %s: %s", path, g_strerror (errno));
  fail_unless (ftruncate (fd, (off_t) size) == 0);
  if (garbage) {
    GRand *rand = g_rand_new_with_seed (42);
    guint8 *buf = g_malloc (size);
    guint64 i, magic = G_GUINT64_CONSTANT (0x0123456789abcdef);

    for (i = 0; i < size; i++)
      buf[i] = (guint8) g_rand_int (rand);
    memcpy (buf, &magic, sizeof magic);
    fail_unless (magic != IVSHM_MAGIC);
    fail_unless (write (fd, buf, size) == (ssize_t) size);
    g_free (buf);
    g_rand_free (rand);
  }
  close (fd);
}

static guint64
file_size (const gchar * path)
{
  struct stat st;

  if (stat (path, &st) != 0)
    return 0;
  return (guint64) st.st_size;
}

/* A producer driven by the test: the region, a writer on it and a thread
 * that keeps its heartbeat going. */
typedef struct
{
  IvshmRegion *region;
  IvshmWriter *writer;
  IvshmTicker *ticker;
} Producer;

static void
producer_tick (void *data)
{
  ivshm_writer_heartbeat (data);
}

static Producer *
producer_new (const gchar * path, guint64 size)
{
  Producer *p = g_new0 (Producer, 1);
  IvshmRegionOptions opts = { 0 };
  IvshmError err = { 0 };

  opts.create_size = size;
  fail_unless_equals_int (ivshm_region_open (path, &opts, &p->region, &err),
      IVSHM_OK);
  fail_unless_equals_int (ivshm_writer_new (ivshm_region_data (p->region),
          ivshm_region_size (p->region), NULL, &p->writer, &err), IVSHM_OK);
  p->ticker = ivshm_ticker_start (0, producer_tick, p->writer);
  fail_unless (p->ticker != NULL);
  return p;
}

static void
producer_free (Producer * p)
{
  ivshm_ticker_stop (p->ticker);
  ivshm_writer_free (p->writer);
  ivshm_region_close (p->region);
  g_free (p);
}

static IvshmHeader *
producer_header (Producer * p)
{
  return ivshm_region_data (p->region);
}

static void
info_init (IvshmRecordHeader * info, guint16 type, guint16 subtype)
{
  memset (info, 0, sizeof *info);
  info->type = type;
  info->subtype = subtype;
  info->pts = info->dts = info->duration = IVSHM_TIME_NONE;
  info->offset = info->offset_end = IVSHM_TIME_NONE;
}

/* writes a CAPS or EVENT record with a NUL-terminated string payload */
static void
producer_write_string (Producer * p, guint16 type, guint16 subtype,
    const gchar * str)
{
  IvshmRecordHeader info;

  info_init (&info, type, subtype);
  info.payload_len = strlen (str) + 1;
  fail_unless_equals_int (ivshm_writer_write (p->writer, &info, str), IVSHM_OK);
}

static void
producer_write_structure (Producer * p, guint16 subtype, GstStructure * s)
{
  gchar *str = gst_structure_to_string (s);

  producer_write_string (p, IVSHM_RECORD_EVENT, subtype, str);
  g_free (str);
  gst_structure_free (s);
}

static void
producer_write_stream_start (Producer * p, const gchar * id, guint group)
{
  producer_write_structure (p, IVSHM_EVENT_STREAM_START,
      gst_structure_new ("stream-start", "stream-id", G_TYPE_STRING, id,
          "flags", G_TYPE_UINT, 0, "has-group-id", G_TYPE_BOOLEAN, TRUE,
          "group-id", G_TYPE_UINT, group, NULL));
}

static void
producer_write_segment (Producer * p, const GstSegment * seg)
{
  producer_write_structure (p, IVSHM_EVENT_SEGMENT,
      gst_structure_new ("segment",
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
          "duration", G_TYPE_UINT64, seg->duration, NULL));
}

static void
producer_write_eos (Producer * p)
{
  producer_write_string (p, IVSHM_RECORD_EVENT, IVSHM_EVENT_EOS, "");
}

static void
producer_write_buffer (Producer * p, guint64 pts, guint64 dts,
    guint64 duration, guint64 offset, guint64 offset_end, guint32 flags,
    const guint8 * data, gsize size)
{
  IvshmRecordHeader info;

  info_init (&info, IVSHM_RECORD_BUFFER, 0);
  info.pts = pts;
  info.dts = dts;
  info.duration = duration;
  info.offset = offset;
  info.offset_end = offset_end;
  info.flags = flags;
  info.payload_len = size;
  fail_unless_equals_int (ivshm_writer_write (p->writer, &info, data),
      IVSHM_OK);
}

/* The first ERROR message on the bus within timeout, or NULL. */
static GstMessage *
pop_error (GstBus * bus, GstClockTime timeout)
{
  return gst_bus_timed_pop_filtered (bus, timeout, GST_MESSAGE_ERROR);
}

static void
assert_error (GstMessage * msg, GQuark domain, gint code,
    const gchar * text_part)
{
  GError *gerr = NULL;
  gchar *debug = NULL;

  fail_unless (msg != NULL, "no error message was posted");
  gst_message_parse_error (msg, &gerr, &debug);
  GST_INFO ("error: %s (%s)", gerr->message, debug);
  fail_unless (g_error_matches (gerr, domain, code),
      "expected %s %d, got %s %d: %s", g_quark_to_string (domain), code,
      g_quark_to_string (gerr->domain), gerr->code, gerr->message);
  if (text_part)
    fail_unless (strstr (gerr->message, text_part) != NULL ||
        (debug && strstr (debug, text_part) != NULL),
        "'%s' in neither '%s' nor '%s'", text_part, gerr->message, debug);
  g_error_free (gerr);
  g_free (debug);
}

static GstElement *
element_with_bus (const gchar * factory, GstBus ** bus)
{
  GstElement *el = gst_element_factory_make (factory, NULL);

  fail_unless (el != NULL, "no %s element", factory);
  *bus = gst_bus_new ();
  gst_element_set_bus (el, *bus);
  return el;
}

static void
element_free (GstElement * el, GstBus * bus)
{
  fail_unless_equals_int (gst_element_set_state (el, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);
  gst_element_set_bus (el, NULL);
  gst_bus_set_flushing (bus, TRUE);
  gst_object_unref (bus);
  gst_object_unref (el);
}

/* Sets the state and waits for it, failing on an error; returns the
 * seconds it took. */
static gdouble
set_state_timed (GstElement * el, GstState state)
{
  gint64 t0 = g_get_monotonic_time ();
  GstStateChangeReturn ret = gst_element_set_state (el, state);

  fail_if (ret == GST_STATE_CHANGE_FAILURE, "to %s failed",
      gst_element_state_get_name (state));
  if (ret == GST_STATE_CHANGE_ASYNC)
    fail_if (gst_element_get_state (el, NULL, NULL, 5 * GST_SECOND) ==
        GST_STATE_CHANGE_FAILURE);
  return (g_get_monotonic_time () - t0) / 1e6;
}

static GstElement *
src_pipeline (const gchar * path, gboolean live, GstBus ** bus)
{
  gchar *desc = g_strdup_printf ("ivshmemsrc name=src device=%s is-live=%d "
      "! fakesink name=sink sync=false async=false enable-last-sample=false",
      path, live);
  GError *error = NULL;
  GstElement *pipeline = gst_parse_launch (desc, &error);

  fail_unless (pipeline != NULL && error == NULL, "%s: %s", desc,
      error ? error->message : "?");
  g_free (desc);
  *bus = gst_element_get_bus (pipeline);
  return pipeline;
}

static void
pipeline_free (GstElement * pipeline, GstBus * bus)
{
  fail_unless_equals_int (gst_element_set_state (pipeline, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);
  gst_object_unref (bus);
  gst_object_unref (pipeline);
}

/* ---- 1. registration and properties ----------------------------------- */

static void
check_param (GObjectClass * klass, const gchar * name, GType type)
{
  GParamSpec *p = g_object_class_find_property (klass, name);

  fail_unless (p != NULL, "no property %s", name);
  fail_unless (G_PARAM_SPEC_VALUE_TYPE (p) == type, "%s has type %s", name,
      g_type_name (G_PARAM_SPEC_VALUE_TYPE (p)));
  fail_unless ((p->flags & G_PARAM_READWRITE) == G_PARAM_READWRITE);
  fail_unless (p->flags & GST_PARAM_MUTABLE_READY,
      "%s is not marked mutable in READY", name);
}

GST_START_TEST (test_registered_with_defaults)
{
  GstElementFactory *f;
  GstElement *sink, *src;
  gchar *device = (gchar *) "x";
  guint64 size = 1, latency = 0;
  gboolean is_live = FALSE;

  f = gst_element_factory_find ("ivshmemsink");
  fail_unless (f != NULL);
  fail_unless_equals_string (gst_plugin_feature_get_plugin_name
      (GST_PLUGIN_FEATURE (f)), "ivshmem");
  fail_unless (gst_element_factory_get_metadata (f,
          GST_ELEMENT_METADATA_KLASS) != NULL);
  gst_object_unref (f);
  f = gst_element_factory_find ("ivshmemsrc");
  fail_unless (f != NULL);
  gst_object_unref (f);

  sink = gst_element_factory_make ("ivshmemsink", NULL);
  fail_unless (GST_IS_BASE_SINK (sink));
  check_param (G_OBJECT_GET_CLASS (sink), "device", G_TYPE_STRING);
  check_param (G_OBJECT_GET_CLASS (sink), "size", G_TYPE_UINT64);
  g_object_get (sink, "device", &device, "size", &size, NULL);
  fail_unless (device == NULL);
  fail_unless_equals_uint64 (size, 0);
  /* the sink leaves pacing to the receiver */
  fail_if (gst_base_sink_get_sync (GST_BASE_SINK (sink)));
  gst_object_unref (sink);

  src = gst_element_factory_make ("ivshmemsrc", NULL);
  fail_unless (GST_IS_PUSH_SRC (src));
  check_param (G_OBJECT_GET_CLASS (src), "device", G_TYPE_STRING);
  check_param (G_OBJECT_GET_CLASS (src), "is-live", G_TYPE_BOOLEAN);
  check_param (G_OBJECT_GET_CLASS (src), "latency", G_TYPE_UINT64);
  device = (gchar *) "x";
  g_object_get (src, "device", &device, "is-live", &is_live, "latency",
      &latency, NULL);
  fail_unless (device == NULL);
  fail_unless (is_live);
  fail_unless_equals_uint64 (latency, 20 * GST_MSECOND);
  fail_unless (gst_base_src_is_live (GST_BASE_SRC (src)));
  g_object_set (src, "is-live", FALSE, NULL);
  fail_if (gst_base_src_is_live (GST_BASE_SRC (src)));
  gst_object_unref (src);
}

GST_END_TEST;

/* Every enum (or flags) type of the elements' own properties is marked as
 * plugin API (gst_type_mark_as_plugin_api, flags 0), so that the plugin's
 * documentation and gst-inspect-1.0 list it with the plugin. Counts the
 * properties too, so the test cannot pass on an element without any.
 * Mutation: without the mark of GST_TYPE_IVSHMEM_SRC_ZERO_COPY in
 * gst_ivshmem_src_class_init(), this fails ("zero-copy" of ivshmemsrc). */
static void
check_enums_are_plugin_api (const gchar * factory, guint expected)
{
  GstElement *el = gst_element_factory_make (factory, NULL);
  GParamSpec **specs;
  guint i, n_specs, found = 0;

  fail_unless (el != NULL);
  specs = g_object_class_list_properties (G_OBJECT_GET_CLASS (el), &n_specs);
  for (i = 0; i < n_specs; i++) {
    GstPluginAPIFlags flags = -1;

    if (specs[i]->owner_type != G_OBJECT_TYPE (el))
      continue;
    if (!G_IS_PARAM_SPEC_ENUM (specs[i]) && !G_IS_PARAM_SPEC_FLAGS (specs[i]))
      continue;
    found++;
    fail_unless (gst_type_is_plugin_api (specs[i]->value_type, &flags),
        "%s of %s: %s is not marked as plugin API", specs[i]->name, factory,
        g_type_name (specs[i]->value_type));
    fail_unless_equals_int (flags, 0);
  }
  g_free (specs);
  fail_unless_equals_int (found, expected);
  gst_object_unref (el);
}

GST_START_TEST (test_enum_types_plugin_api)
{
  /* policy, bar-mapping */
  check_enums_are_plugin_api ("ivshmemsink", 2);
  /* on-producer-restart, on-evicted, zero-copy, bar-mapping */
  check_enums_are_plugin_api ("ivshmemsrc", 4);
}

GST_END_TEST;

/* ---- 2. state changes ------------------------------------------------- */

static void
cycle_states (GstElement * el, GstBus * bus, gint rounds)
{
  gint i;

  for (i = 0; i < rounds; i++) {
    GstMessage *msg;

    fail_unless_equals_int (gst_element_set_state (el, GST_STATE_READY),
        GST_STATE_CHANGE_SUCCESS);
    fail_if (gst_element_set_state (el, GST_STATE_PAUSED) ==
        GST_STATE_CHANGE_FAILURE);
    fail_if (gst_element_set_state (el, GST_STATE_PLAYING) ==
        GST_STATE_CHANGE_FAILURE);
    g_usleep (20 * 1000);
    fail_if (gst_element_set_state (el, GST_STATE_PAUSED) ==
        GST_STATE_CHANGE_FAILURE);
    fail_unless_equals_int (gst_element_set_state (el, GST_STATE_READY),
        GST_STATE_CHANGE_SUCCESS);
    fail_unless_equals_int (gst_element_set_state (el, GST_STATE_NULL),
        GST_STATE_CHANGE_SUCCESS);
    msg = pop_error (bus, 0);
    fail_unless (msg == NULL, "error in round %d", i);
  }
}

GST_START_TEST (test_sink_state_changes)
{
  gchar *path = shm_path ("sink-states");
  GstBus *bus;
  GstElement *sink = element_with_bus ("ivshmemsink", &bus);

  g_object_set (sink, "device", path, "size", (guint64) MiB, NULL);
  cycle_states (sink, bus, 3);
  fail_unless_equals_uint64 (file_size (path), MiB);

  /* the region exists now: size=0 opens it as it is */
  g_object_set (sink, "size", (guint64) 0, NULL);
  cycle_states (sink, bus, 2);

  element_free (sink, bus);
  remove_region (path);
}

GST_END_TEST;

GST_START_TEST (test_src_state_changes)
{
  gchar *path = shm_path ("src-states");
  Producer *p = producer_new (path, MiB);
  GstBus *bus;
  GstElement *src = element_with_bus ("ivshmemsrc", &bus);

  g_object_set (src, "device", path, NULL);
  cycle_states (src, bus, 3);
  g_object_set (src, "is-live", FALSE, NULL);
  cycle_states (src, bus, 2);

  element_free (src, bus);
  producer_free (p);
  remove_region (path);
}

GST_END_TEST;

static void
check_start_fails (const gchar * factory, const gchar * path, guint64 size,
    gint code)
{
  GstBus *bus;
  GstElement *el = element_with_bus (factory, &bus);
  GstMessage *msg;

  g_object_set (el, "device", path, NULL);
  if (size)
    g_object_set (el, "size", size, NULL);
  /* GstBaseSink calls start() going to READY, GstBaseSrc going to
   * PAUSED: either way the element cannot reach PAUSED */
  fail_unless_equals_int (gst_element_set_state (el, GST_STATE_READY),
      GST_IS_BASE_SINK (el) ? GST_STATE_CHANGE_FAILURE :
      GST_STATE_CHANGE_SUCCESS);
  fail_unless_equals_int (gst_element_set_state (el, GST_STATE_PAUSED),
      GST_STATE_CHANGE_FAILURE);
  msg = pop_error (bus, 0);
  assert_error (msg, GST_RESOURCE_ERROR, code, NULL);
  gst_message_unref (msg);
  element_free (el, bus);
}

GST_START_TEST (test_missing_device)
{
  gchar *path = shm_path ("missing");

  check_start_fails ("ivshmemsink", path, 0, GST_RESOURCE_ERROR_NOT_FOUND);
  check_start_fails ("ivshmemsrc", path, 0, GST_RESOURCE_ERROR_NOT_FOUND);
  fail_unless (file_size (path) == 0 && access (path, F_OK) != 0,
      "a failed start left %s behind", path);
  remove_region (path);
}

GST_END_TEST;

GST_START_TEST (test_size_not_power_of_two)
{
  gchar *path = shm_path ("notpow2");

  check_start_fails ("ivshmemsink", path, MiB + 4096,
      GST_RESOURCE_ERROR_SETTINGS);
  fail_unless (access (path, F_OK) != 0, "a failed start left %s behind", path);
  remove_region (path);
}

GST_END_TEST;

/* Foreign bytes are not a ring yet: the source waits for a producer to
 * format the region, as on zeros, and says once what it found (issue 17;
 * tests/lifecycle/region.py foreign-bytes has the producer come). */
GST_START_TEST (test_src_garbage_region)
{
  gchar *path = shm_path ("garbage");
  GstBus *bus;
  GstElement *pipeline;
  GstMessage *msg;
  GError *gerr = NULL;
  gchar *debug = NULL;
  gint live;

  make_region_file (path, MiB, TRUE);
  for (live = 0; live < 2; live++) {
    pipeline = src_pipeline (path, live, &bus);
    fail_if (gst_element_set_state (pipeline, GST_STATE_PLAYING) ==
        GST_STATE_CHANGE_FAILURE);
    msg = gst_bus_timed_pop_filtered (bus, 5 * GST_SECOND,
        GST_MESSAGE_WARNING | GST_MESSAGE_ERROR);
    fail_unless (msg != NULL && GST_MESSAGE_TYPE (msg) ==
        GST_MESSAGE_WARNING, "expected a warning, got %" GST_PTR_FORMAT, msg);
    gst_message_parse_warning (msg, &gerr, &debug);
    fail_unless (strstr (gerr->message, "not a gst-ivshmem ring yet: "
            "waiting for a producer") != NULL, "%s", gerr->message);
    fail_unless (strstr (debug, "It starts with the bytes") != NULL, "%s",
        debug);
    g_clear_error (&gerr);
    g_clear_pointer (&debug, g_free);
    gst_message_unref (msg);
    /* and waits: no error */
    fail_unless (pop_error (bus, 500 * GST_MSECOND) == NULL);
    pipeline_free (pipeline, bus);
  }
  remove_region (path);
}

GST_END_TEST;

GST_START_TEST (test_src_waits_for_producer)
{
  gchar *path = shm_path ("zeroed");
  GstBus *bus;
  GstElement *pipeline;
  gdouble secs;

  make_region_file (path, MiB, FALSE);
  pipeline = src_pipeline (path, TRUE, &bus);
  set_state_timed (pipeline, GST_STATE_PLAYING);
  /* no producer: it waits, and says nothing */
  fail_unless (pop_error (bus, 500 * GST_MSECOND) == NULL);
  secs = set_state_timed (pipeline, GST_STATE_NULL);
  fail_unless (secs < 2.0, "stopping took %.2f s", secs);
  pipeline_free (pipeline, bus);
  remove_region (path);
}

GST_END_TEST;

/* ---- 3. the sink's records, read back with the core ------------------- */

#define N_SINK_BUFS 4

static gchar *
payload_string (const IvshmRecord * rec)
{
  fail_unless (rec->h.payload_len > 0);
  fail_unless_equals_int (rec->payload[rec->h.payload_len - 1], 0);
  return g_strndup ((const gchar *) rec->payload, rec->h.payload_len);
}

static IvshmStatus
next_record (IvshmReader * r, IvshmRecord * rec)
{
  IvshmError err = { 0 };
  gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
  IvshmStatus st;

  while ((st = ivshm_reader_next (r, rec, &err)) == IVSHM_AGAIN &&
      g_get_monotonic_time () < deadline)
    g_usleep (1000);
  if (st != IVSHM_OK)
    GST_INFO ("reader: %s: %s", ivshm_status_name (st), err.detail);
  return st;
}

GST_START_TEST (test_sink_writes_records)
{
  gchar *path = shm_path ("sink-records");
  gchar *desc = g_strdup_printf ("ivshmemsink device=%s size=%"
      G_GUINT64_FORMAT, path, MiB);
  GstHarness *h = gst_harness_new_parse (desc);
  const gchar *caps_str = "video/x-raw, format=(string)GRAY8, "
      "width=(int)16, height=(int)8, framerate=(fraction)30/1";
  GstSegment seg;
  GstCaps *caps;
  guint32 flags[N_SINK_BUFS] = {
    GST_BUFFER_FLAG_DISCONT | GST_BUFFER_FLAG_HEADER,
    GST_BUFFER_FLAG_DELTA_UNIT,
    GST_BUFFER_FLAG_MARKER | GST_BUFFER_FLAG_DROPPABLE,
    GST_BUFFER_FLAG_GAP | GST_BUFFER_FLAG_DELTA_UNIT,
  };
  IvshmRegion *region;
  IvshmReader *reader;
  IvshmRegionOptions opts = { 0 };
  IvshmError err = { 0 };
  IvshmRecord rec;
  GstStructure *s;
  gchar *str;
  guint64 u;
  gint i;

  /* attach first: the sink holds EOS until a first reader came */
  fail_unless_equals_int (ivshm_region_open (path, &opts, &region, &err),
      IVSHM_OK);
  fail_unless_equals_int (ivshm_reader_new (ivshm_region_data (region),
          ivshm_region_size (region), NULL, &reader, &err), IVSHM_OK);

  /* stream-start, caps, segment, buffers, a custom event, EOS */
  fail_unless (gst_harness_push_event (h,
          gst_event_new_stream_start ("sink-records-stream")));
  caps = gst_caps_from_string (caps_str);
  fail_unless (gst_harness_push_event (h, gst_event_new_caps (caps)));
  gst_segment_init (&seg, GST_FORMAT_TIME);
  seg.start = 3 * GST_SECOND;
  seg.time = 7 * GST_SECOND;
  seg.base = 11 * GST_SECOND;
  seg.position = seg.start;
  fail_unless (gst_harness_push_event (h, gst_event_new_segment (&seg)));

  for (i = 0; i < N_SINK_BUFS; i++) {
    GstBuffer *b = gst_buffer_new_allocate (NULL, 128, NULL);
    GstMapInfo map;

    fail_unless (gst_buffer_map (b, &map, GST_MAP_WRITE));
    memset (map.data, 0xa0 + i, map.size);
    map.data[0] = (guint8) i;
    gst_buffer_unmap (b, &map);
    GST_BUFFER_PTS (b) = seg.start + i * 33 * GST_MSECOND;
    GST_BUFFER_DTS (b) = i == 1 ? GST_CLOCK_TIME_NONE :
        seg.start + i * 33 * GST_MSECOND - GST_MSECOND;
    GST_BUFFER_DURATION (b) = 33 * GST_MSECOND;
    GST_BUFFER_OFFSET (b) = 100 + i;
    GST_BUFFER_OFFSET_END (b) =
        i == 3 ? GST_BUFFER_OFFSET_NONE : (guint64) (101 + i);
    GST_BUFFER_FLAGS (b) = flags[i];
    fail_unless_equals_int (gst_harness_push (h, b), GST_FLOW_OK);
    if (i == 1)
      fail_unless (gst_harness_push_event (h,
              gst_event_new_custom (GST_EVENT_CUSTOM_DOWNSTREAM,
                  gst_structure_new ("my-event", "n", G_TYPE_INT, 42, NULL))));
  }
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));

  fail_unless_equals_int (next_record (reader, &rec), IVSHM_OK);
  fail_unless_equals_int (rec.h.type, IVSHM_RECORD_EVENT);
  fail_unless_equals_int (rec.h.subtype, IVSHM_EVENT_STREAM_START);
  str = payload_string (&rec);
  s = gst_structure_from_string (str, NULL);
  fail_unless (s != NULL, "stream-start payload: %s", str);
  fail_unless_equals_string (gst_structure_get_string (s, "stream-id"),
      "sink-records-stream");
  gst_structure_free (s);
  g_free (str);
  fail_unless_equals_int (ivshm_reader_release (reader), IVSHM_OK);

  fail_unless_equals_int (next_record (reader, &rec), IVSHM_OK);
  fail_unless_equals_int (rec.h.type, IVSHM_RECORD_CAPS);
  str = payload_string (&rec);
  {
    GstCaps *got = gst_caps_from_string (str);

    fail_unless (got != NULL && gst_caps_is_equal (got, caps), "caps %s", str);
    gst_caps_unref (got);
  }
  g_free (str);
  fail_unless_equals_int (ivshm_reader_release (reader), IVSHM_OK);

  fail_unless_equals_int (next_record (reader, &rec), IVSHM_OK);
  fail_unless_equals_int (rec.h.type, IVSHM_RECORD_EVENT);
  fail_unless_equals_int (rec.h.subtype, IVSHM_EVENT_SEGMENT);
  str = payload_string (&rec);
  s = gst_structure_from_string (str, NULL);
  fail_unless (s != NULL, "segment payload: %s", str);
  fail_unless (gst_structure_get_uint64 (s, "start", &u));
  fail_unless_equals_uint64 (u, seg.start);
  fail_unless (gst_structure_get_uint64 (s, "time", &u));
  fail_unless_equals_uint64 (u, seg.time);
  fail_unless (gst_structure_get_uint64 (s, "base", &u));
  fail_unless_equals_uint64 (u, seg.base);
  fail_unless (gst_structure_get_uint64 (s, "stop", &u));
  fail_unless_equals_uint64 (u, GST_CLOCK_TIME_NONE);
  {
    gint format;
    gdouble rate;

    fail_unless (gst_structure_get_int (s, "format", &format));
    fail_unless_equals_int (format, GST_FORMAT_TIME);
    fail_unless (gst_structure_get_double (s, "rate", &rate));
    fail_unless (rate == 1.0);
  }
  gst_structure_free (s);
  g_free (str);
  fail_unless_equals_int (ivshm_reader_release (reader), IVSHM_OK);

  /* 2.1: the base time under which the sink renders, before the first
   * buffer (the harness runs on the system clock, base time 0, and has
   * no live upstream) */
  fail_unless_equals_int (next_record (reader, &rec), IVSHM_OK);
  fail_unless_equals_int (rec.h.type, IVSHM_RECORD_EVENT);
  fail_unless_equals_int (rec.h.subtype, IVSHM_EVENT_TIME);
  fail_unless_equals_uint64 (rec.h.pts, gst_element_get_base_time (h->element));
  fail_unless_equals_uint64 (rec.h.duration, 0);
  fail_unless_equals_uint64 (rec.h.offset, 1);
  fail_unless_equals_int (ivshm_reader_release (reader), IVSHM_OK);

  for (i = 0; i < N_SINK_BUFS; i++) {
    guint8 expect[128];

    fail_unless_equals_int (next_record (reader, &rec), IVSHM_OK);
    fail_unless_equals_int (rec.h.type, IVSHM_RECORD_BUFFER);
    fail_unless_equals_uint64 (rec.h.payload_len, 128);
    fail_unless_equals_uint64 (rec.h.pts, seg.start + i * 33 * GST_MSECOND);
    fail_unless_equals_uint64 (rec.h.dts, i == 1 ? IVSHM_TIME_NONE :
        seg.start + i * 33 * GST_MSECOND - GST_MSECOND);
    fail_unless_equals_uint64 (rec.h.duration, 33 * GST_MSECOND);
    fail_unless_equals_uint64 (rec.h.offset, 100 + i);
    fail_unless_equals_uint64 (rec.h.offset_end, i == 3 ? IVSHM_TIME_NONE :
        (guint64) (101 + i));
    fail_unless_equals_int (rec.h.flags, flags[i]);
    memset (expect, 0xa0 + i, sizeof expect);
    expect[0] = (guint8) i;
    fail_unless (memcmp (rec.payload, expect, sizeof expect) == 0,
        "payload of buffer %d differs", i);
    fail_unless_equals_int (ivshm_reader_release (reader), IVSHM_OK);

    if (i == 1) {
      fail_unless_equals_int (next_record (reader, &rec), IVSHM_OK);
      fail_unless_equals_int (rec.h.type, IVSHM_RECORD_EVENT);
      fail_unless_equals_int (rec.h.subtype, IVSHM_EVENT_CUSTOM);
      str = payload_string (&rec);
      s = gst_structure_from_string (str, NULL);
      fail_unless (s != NULL && gst_structure_has_name (s, "my-event"),
          "custom payload: %s", str);
      {
        gint n = 0;

        fail_unless (gst_structure_get_int (s, "n", &n));
        fail_unless_equals_int (n, 42);
      }
      gst_structure_free (s);
      g_free (str);
      fail_unless_equals_int (ivshm_reader_release (reader), IVSHM_OK);
    }
  }

  fail_unless_equals_int (next_record (reader, &rec), IVSHM_OK);
  fail_unless_equals_int (rec.h.type, IVSHM_RECORD_EVENT);
  fail_unless_equals_int (rec.h.subtype, IVSHM_EVENT_EOS);
  fail_unless_equals_int (ivshm_reader_release (reader), IVSHM_OK);

  /* nothing after EOS */
  fail_unless_equals_int (ivshm_reader_next (reader, &rec, &err), IVSHM_AGAIN);

  ivshm_reader_free (reader);
  gst_harness_teardown (h);
  /* the sink closed its session on stop */
  fail_unless_equals_int (atomic_load (&((IvshmHeader *)
              ivshm_region_data (region))->producer_state),
      IVSHM_PRODUCER_CLOSED);
  ivshm_region_close (region);
  gst_caps_unref (caps);
  g_free (desc);
  remove_region (path);
}

GST_END_TEST;

typedef struct
{
  GstHarness *h;
  gint done;                    /* atomic */
  gboolean ok;
} EosPusher;

static gpointer
eos_pusher_main (gpointer data)
{
  EosPusher *ep = data;

  ep->ok = gst_harness_push_event (ep->h, gst_event_new_eos ());
  g_atomic_int_set (&ep->done, 1);
  return NULL;
}

/* The sink holds EOS until a first reader came (so that a short stream is
 * not lost when it stops). A reader that attached, read everything and
 * left before the sink ever looked at the reader slots came all the same:
 * EOS must not wait for another one. */
GST_START_TEST (test_sink_eos_after_reader_left)
{
  gchar *path = shm_path ("eos-reader-left");
  gchar *desc = g_strdup_printf ("ivshmemsink device=%s size=%"
      G_GUINT64_FORMAT, path, MiB);
  GstHarness *h = gst_harness_new_parse (desc);
  IvshmRegionOptions opts = { 0 };
  IvshmError err = { 0 };
  IvshmRegion *region;
  IvshmReader *reader;
  IvshmRecord rec;
  EosPusher ep = { h, 0, FALSE };
  GThread *thread;
  gint64 deadline;
  gint n = 0;
  gboolean returned;

  gst_harness_set_src_caps_str (h, "application/x-test");
  fail_unless_equals_int (gst_harness_push (h,
          gst_buffer_new_allocate (NULL, 100, NULL)), GST_FLOW_OK);

  fail_unless_equals_int (ivshm_region_open (path, &opts, &region, &err),
      IVSHM_OK);
  fail_unless_equals_int (ivshm_reader_new (ivshm_region_data (region),
          ivshm_region_size (region), NULL, &reader, &err), IVSHM_OK);
  while (ivshm_reader_next (reader, &rec, &err) == IVSHM_OK) {
    fail_unless_equals_int (ivshm_reader_release (reader), IVSHM_OK);
    n++;
  }
  /* stream-start, caps, segment, TIME (2.1), the buffer */
  fail_unless_equals_int (n, 5);
  ivshm_reader_free (reader);

  thread = g_thread_new ("eos", eos_pusher_main, &ep);
  deadline = g_get_monotonic_time () + 3 * G_USEC_PER_SEC;
  while (!g_atomic_int_get (&ep.done) && g_get_monotonic_time () < deadline)
    g_usleep (1000);
  returned = g_atomic_int_get (&ep.done);
  /* unblock it either way, so that a failure does not hang the suite */
  gst_element_set_state (h->element, GST_STATE_NULL);
  g_thread_join (thread);
  fail_unless (returned, "EOS still waits for a first reader 3 s after a "
      "reader read the whole stream and left");
  fail_unless (ep.ok);

  ivshm_region_close (region);
  gst_harness_teardown (h);
  g_free (desc);
  remove_region (path);
}

GST_END_TEST;

/* ---- 4. the source, fed by the core ----------------------------------- */

/* What went out of the source's pad, in order. */
typedef struct
{
  GMutex lock;
  GString *log;
  GPtrArray *items;             /* GstMiniObject, refs */
} Trace;

static GstPadProbeReturn
trace_probe (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  Trace *t = data;
  GstMiniObject *obj = GST_PAD_PROBE_INFO_DATA (info);

  g_mutex_lock (&t->lock);
  if (GST_IS_BUFFER (obj)) {
    g_string_append (t->log, "buf ");
  } else if (GST_IS_EVENT (obj)) {
    GstEvent *ev = GST_EVENT (obj);

    if (GST_EVENT_TYPE (ev) == GST_EVENT_CUSTOM_DOWNSTREAM)
      g_string_append_printf (t->log, "%s ",
          gst_structure_get_name (gst_event_get_structure (ev)));
    else
      g_string_append_printf (t->log, "%s ", GST_EVENT_TYPE_NAME (ev));
  }
  g_ptr_array_add (t->items, gst_mini_object_ref (obj));
  g_mutex_unlock (&t->lock);
  return GST_PAD_PROBE_OK;
}

static Trace *
trace_new (GstElement * el)
{
  Trace *t = g_new0 (Trace, 1);
  GstPad *pad = gst_element_get_static_pad (el, "src");

  g_mutex_init (&t->lock);
  t->log = g_string_new (NULL);
  t->items = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_mini_object_unref);
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER |
      GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, trace_probe, t, NULL);
  gst_object_unref (pad);
  return t;
}

static void
trace_free (Trace * t)
{
  g_string_free (t->log, TRUE);
  g_ptr_array_unref (t->items);
  g_mutex_clear (&t->lock);
  g_free (t);
}

static gboolean
trace_wait_for (Trace * t, const gchar * what, gint64 timeout_us)
{
  gint64 deadline = g_get_monotonic_time () + timeout_us;
  gboolean found = FALSE;

  while (!found && g_get_monotonic_time () < deadline) {
    g_mutex_lock (&t->lock);
    found = strstr (t->log->str, what) != NULL;
    g_mutex_unlock (&t->lock);
    if (!found)
      g_usleep (2000);
  }
  return found;
}

/* The buffers of a trace, in order (no refs). */
static GPtrArray *
trace_buffers (Trace * t)
{
  GPtrArray *bufs = g_ptr_array_new ();
  guint i;

  for (i = 0; i < t->items->len; i++)
    if (GST_IS_BUFFER (g_ptr_array_index (t->items, i)))
      g_ptr_array_add (bufs, g_ptr_array_index (t->items, i));
  return bufs;
}

#define N_SRC_BUFS 4

static const guint32 src_flags[N_SRC_BUFS] = {
  GST_BUFFER_FLAG_DISCONT,
  GST_BUFFER_FLAG_DELTA_UNIT | GST_BUFFER_FLAG_MARKER,
  GST_BUFFER_FLAG_HEADER,
  GST_BUFFER_FLAG_DELTA_UNIT | GST_BUFFER_FLAG_DROPPABLE,
};

static void
write_src_buffer (Producer * p, gint i, GstClockTime base_pts)
{
  guint8 data[200];

  memset (data, 0x30 + i, sizeof data);
  data[199] = (guint8) i;
  producer_write_buffer (p, base_pts + i * 40 * GST_MSECOND,
      base_pts + i * 40 * GST_MSECOND - 5 * GST_MSECOND, 40 * GST_MSECOND,
      1000 + i, 1001 + i, src_flags[i], data, sizeof data);
}

static void
check_src_buffer (GstBuffer * b, gint i)
{
  guint8 data[200];

  memset (data, 0x30 + i, sizeof data);
  data[199] = (guint8) i;
  fail_unless (gst_buffer_memcmp (b, 0, data, sizeof data) == 0,
      "content of buffer %d", i);
  fail_unless_equals_uint64 (gst_buffer_get_size (b), sizeof data);
  fail_unless_equals_uint64 (GST_BUFFER_DURATION (b), 40 * GST_MSECOND);
  fail_unless_equals_uint64 (GST_BUFFER_OFFSET (b), 1000 + i);
  fail_unless_equals_uint64 (GST_BUFFER_OFFSET_END (b), 1001 + i);
  fail_unless_equals_int (GST_BUFFER_FLAGS (b) & src_flags[i], src_flags[i]);
  fail_unless_equals_int (GST_BUFFER_FLAGS (b) &
      ~(src_flags[i] | GST_BUFFER_FLAG_DISCONT), 0);
}

GST_START_TEST (test_src_forwards_stream)
{
  gchar *path = shm_path ("src-stream");
  Producer *p = producer_new (path, MiB);
  GstHarness *h = gst_harness_new ("ivshmemsrc");
  const gchar *caps_str = "video/x-raw, format=(string)GRAY8, "
      "width=(int)20, height=(int)10, framerate=(fraction)25/1";
  GstSegment seg;
  GstTagList *tags;
  gchar *tag_str;
  GPtrArray *bufs;
  Trace *t;
  GstCaps *caps, *want;
  GstEvent *ev;
  const gchar *sid = NULL;
  gint i;

  g_object_set (h->element, "device", path, "is-live", FALSE, NULL);
  t = trace_new (h->element);

  producer_write_stream_start (p, "ivshmem-test-stream", 7);
  producer_write_string (p, IVSHM_RECORD_CAPS, 0, caps_str);
  gst_segment_init (&seg, GST_FORMAT_TIME);
  seg.start = 2 * GST_SECOND;
  seg.time = 5 * GST_SECOND;
  seg.position = seg.start;
  producer_write_segment (p, &seg);
  tags = gst_tag_list_new (GST_TAG_TITLE, "over ivshmem", NULL);
  tag_str = gst_tag_list_to_string (tags);
  producer_write_structure (p, IVSHM_EVENT_TAG,
      gst_structure_new ("tag", "scope", G_TYPE_INT, GST_TAG_SCOPE_STREAM,
          "taglist", G_TYPE_STRING, tag_str, NULL));
  g_free (tag_str);
  gst_tag_list_unref (tags);
  for (i = 0; i < N_SRC_BUFS; i++) {
    write_src_buffer (p, i, seg.start);
    if (i == 1)
      producer_write_structure (p, IVSHM_EVENT_CUSTOM,
          gst_structure_new ("ivshmem-custom", "n", G_TYPE_INT, 5, NULL));
  }
  producer_write_eos (p);

  gst_harness_play (h);
  fail_unless (trace_wait_for (t, "eos", 5 * G_USEC_PER_SEC),
      "no EOS; got: %s", t->log->str);

  GST_INFO ("trace: %s", t->log->str);
  /* order: stream-start (ours, possibly after basesrc's default one), caps
   * before the first buffer, the custom event between buffers 2 and 3,
   * EOS last */
  fail_unless (g_regex_match_simple ("^(stream-start )+caps (segment )+tag "
          "(segment )?buf buf ivshmem-custom buf buf eos $", t->log->str, 0,
          0), "unexpected order: %s", t->log->str);

  /* the caps came from the ring, without a capsfilter */
  caps = gst_pad_get_current_caps (h->sinkpad);
  want = gst_caps_from_string (caps_str);
  fail_unless (caps != NULL && gst_caps_is_equal (caps, want));
  gst_caps_unref (caps);
  gst_caps_unref (want);

  /* the producer's stream-id and group id */
  ev = gst_pad_get_sticky_event (h->sinkpad, GST_EVENT_STREAM_START, 0);
  fail_unless (ev != NULL);
  gst_event_parse_stream_start (ev, &sid);
  fail_unless_equals_string (sid, "ivshmem-test-stream");
  {
    guint group = 0;

    fail_unless (gst_event_parse_group_id (ev, &group));
    fail_unless_equals_int (group, 7);
  }
  gst_event_unref (ev);

  /* the producer's segment, unchanged */
  ev = gst_pad_get_sticky_event (h->sinkpad, GST_EVENT_SEGMENT, 0);
  fail_unless (ev != NULL);
  {
    const GstSegment *got;

    gst_event_parse_segment (ev, &got);
    fail_unless_equals_int (got->format, GST_FORMAT_TIME);
    fail_unless_equals_uint64 (got->start, seg.start);
    fail_unless_equals_uint64 (got->time, seg.time);
    fail_unless_equals_uint64 (got->stop, GST_CLOCK_TIME_NONE);
  }
  gst_event_unref (ev);

  /* tags */
  ev = gst_pad_get_sticky_event (h->sinkpad, GST_EVENT_TAG, 0);
  fail_unless (ev != NULL);
  {
    GstTagList *got;
    gchar *title = NULL;

    gst_event_parse_tag (ev, &got);
    fail_unless (gst_tag_list_get_string (got, GST_TAG_TITLE, &title));
    fail_unless_equals_string (title, "over ivshmem");
    g_free (title);
  }
  gst_event_unref (ev);

  /* buffers: timestamps, offsets, flags and bytes as written */
  g_mutex_lock (&t->lock);
  bufs = trace_buffers (t);
  fail_unless_equals_int (bufs->len, N_SRC_BUFS);
  for (i = 0; i < N_SRC_BUFS; i++) {
    GstBuffer *b = g_ptr_array_index (bufs, i);

    fail_unless_equals_uint64 (GST_BUFFER_PTS (b),
        seg.start + i * 40 * GST_MSECOND);
    fail_unless_equals_uint64 (GST_BUFFER_DTS (b),
        seg.start + i * 40 * GST_MSECOND - 5 * GST_MSECOND);
    check_src_buffer (b, i);
  }
  g_ptr_array_unref (bufs);
  g_mutex_unlock (&t->lock);

  /* the custom event carries its structure */
  for (i = 0; (ev = gst_harness_try_pull_event (h)) != NULL; i++) {
    if (GST_EVENT_TYPE (ev) == GST_EVENT_CUSTOM_DOWNSTREAM) {
      gint n = 0;

      fail_unless (gst_structure_get_int (gst_event_get_structure (ev), "n",
              &n));
      fail_unless_equals_int (n, 5);
    }
    gst_event_unref (ev);
  }

  gst_harness_teardown (h);
  trace_free (t);
  producer_free (p);
  remove_region (path);
}

GST_END_TEST;

/* gst_harness_pull() with a 5 s deadline */
static GstBuffer *
pull_buffer (GstHarness * h)
{
  gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
  GstBuffer *b;

  while ((b = gst_harness_try_pull (h)) == NULL &&
      g_get_monotonic_time () < deadline)
    g_usleep (1000);
  fail_unless (b != NULL, "no buffer within 5 s");
  return b;
}

static GstClockTime
running_time_now (GstElement * el)
{
  GstClock *clock = gst_element_get_clock (el);
  GstClockTime now;

  fail_unless (clock != NULL);
  now = gst_clock_get_time (clock) - gst_element_get_base_time (el);
  gst_object_unref (clock);
  return now;
}

GST_START_TEST (test_src_live_restamps)
{
  gchar *path = shm_path ("src-live");
  Producer *p = producer_new (path, MiB);
  GstHarness *h = gst_harness_new ("ivshmemsrc");
  GstClockTime producer_base = 1000 * GST_SECOND, before, after, pts0;
  GstBuffer *b[N_SRC_BUFS];
  GstSegment seg;
  GstQuery *q;
  gboolean live = FALSE;
  GstClockTime min = 0, max = 0;
  gint i, j;

  g_object_set (h->element, "device", path, "latency",
      (guint64) (35 * GST_MSECOND), NULL);
  gst_harness_use_systemclock (h);
  {
    /* running time 0 is now: a standalone element keeps its base time */
    GstClock *clock = gst_element_get_clock (h->element);

    fail_unless (clock != NULL);
    gst_element_set_base_time (h->element, gst_clock_get_time (clock));
    gst_object_unref (clock);
  }
  gst_harness_play (h);

  q = gst_query_new_latency ();
  fail_unless (gst_pad_peer_query (h->sinkpad, q));
  gst_query_parse_latency (q, &live, &min, &max);
  fail_unless (live);
  fail_unless_equals_uint64 (min, 35 * GST_MSECOND);
  fail_unless (max == GST_CLOCK_TIME_NONE || max >= min);
  gst_query_unref (q);

  /* let the local running time move away from the producer's */
  g_usleep (200 * 1000);

  producer_write_stream_start (p, "live-stream", 1);
  producer_write_string (p, IVSHM_RECORD_CAPS, 0,
      "audio/x-raw, format=(string)S16LE, rate=(int)48000, channels=(int)1, "
      "layout=(string)interleaved");
  gst_segment_init (&seg, GST_FORMAT_TIME);
  producer_write_segment (p, &seg);
  before = running_time_now (h->element);
  write_src_buffer (p, 0, producer_base);
  for (i = 0; i < N_SRC_BUFS; i++) {
    b[i] = pull_buffer (h);
    if (i == 0) {
      after = running_time_now (h->element);
      /* the rest follows after a pause, which must not show */
      g_usleep (100 * 1000);
      for (j = 1; j < N_SRC_BUFS; j++)
        write_src_buffer (p, j, producer_base);
    }
  }

  GST_INFO ("first pts %" GST_TIME_FORMAT " arrived between %"
      GST_TIME_FORMAT " and %" GST_TIME_FORMAT, GST_TIME_ARGS
      (GST_BUFFER_PTS (b[0])), GST_TIME_ARGS (before), GST_TIME_ARGS (after));
  fail_unless (GST_BUFFER_PTS (b[0]) >= before &&
      GST_BUFFER_PTS (b[0]) <= after, "first pts %" GST_TIME_FORMAT
      " is not in [%" GST_TIME_FORMAT ", %" GST_TIME_FORMAT "]",
      GST_TIME_ARGS (GST_BUFFER_PTS (b[0])), GST_TIME_ARGS (before),
      GST_TIME_ARGS (after));
  /* restamped: ~200 ms of local running time (more on a loaded machine),
   * not the producer's 1000 s */
  fail_unless (before >= 150 * GST_MSECOND && after < 100 * GST_SECOND);
  pts0 = GST_BUFFER_PTS (b[0]);
  for (i = 0; i < N_SRC_BUFS; i++) {
    fail_unless_equals_uint64 (GST_BUFFER_PTS (b[i]),
        pts0 + i * 40 * GST_MSECOND);
    fail_unless_equals_uint64 (GST_BUFFER_DTS (b[i]),
        GST_BUFFER_PTS (b[i]) - 5 * GST_MSECOND);
    check_src_buffer (b[i], i);
    gst_buffer_unref (b[i]);
  }

  gst_harness_teardown (h);
  producer_free (p);
  remove_region (path);
}

GST_END_TEST;

/* ---- 5. unlocking blocked elements ------------------------------------ */

typedef struct
{
  GstHarness *h;
  gsize size;
  gint pushed;                  /* atomic */
  gint done;                    /* atomic */
  GstFlowReturn last;
} Pusher;

static gpointer
pusher_main (gpointer data)
{
  Pusher *ps = data;
  GstFlowReturn ret = GST_FLOW_OK;
  gint i;

  for (i = 0; i < 1000 && ret == GST_FLOW_OK; i++) {
    GstBuffer *b = gst_buffer_new_allocate (NULL, ps->size, NULL);

    gst_buffer_memset (b, 0, i, ps->size);
    GST_BUFFER_PTS (b) = i * GST_MSECOND;
    ret = gst_harness_push (ps->h, b);
    if (ret == GST_FLOW_OK)
      g_atomic_int_inc (&ps->pushed);
  }
  ps->last = ret;
  g_atomic_int_set (&ps->done, 1);
  return NULL;
}

/* Waits until the pusher has stopped making progress, still inside a push:
 * returns TRUE if it is blocked. */
static gboolean
pusher_wait_blocked (Pusher * ps)
{
  gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
  gint last = -1, stable = 0;

  while (g_get_monotonic_time () < deadline) {
    gint n = g_atomic_int_get (&ps->pushed);

    if (g_atomic_int_get (&ps->done))
      return FALSE;
    stable = n == last ? stable + 1 : 0;
    last = n;
    if (stable >= 30)           /* 300 ms without progress */
      return TRUE;
    g_usleep (10 * 1000);
  }
  return FALSE;
}

static gboolean
pusher_join (Pusher * ps, GThread * thread, gdouble * secs, gint64 t0)
{
  gint64 deadline = t0 + 5 * G_USEC_PER_SEC;

  while (!g_atomic_int_get (&ps->done) && g_get_monotonic_time () < deadline)
    g_usleep (1000);
  *secs = (g_get_monotonic_time () - t0) / 1e6;
  if (!g_atomic_int_get (&ps->done))
    return FALSE;
  g_thread_join (thread);
  return TRUE;
}

static GstHarness *
small_sink_harness (const gchar * path, guint64 size, GstBus ** bus)
{
  gchar *desc = g_strdup_printf ("ivshmemsink device=%s size=%"
      G_GUINT64_FORMAT, path, size);
  GstHarness *h = gst_harness_new_parse (desc);

  g_free (desc);
  *bus = gst_bus_new ();
  gst_element_set_bus (h->element, *bus);
  gst_harness_set_src_caps_str (h, "application/x-test");
  return h;
}

static void
harness_free (GstHarness * h, GstBus * bus)
{
  gst_harness_teardown (h);
  gst_bus_set_flushing (bus, TRUE);
  gst_object_unref (bus);
}

GST_START_TEST (test_sink_unlock_on_full_ring)
{
  gchar *path = shm_path ("sink-full");
  gint variant;

  for (variant = 0; variant < 2; variant++) {
    GstBus *bus;
    GstHarness *h = small_sink_harness (path, 128 * KiB, &bus);
    Pusher ps = { h, 8 * KiB, 0, 0, GST_FLOW_OK };
    GThread *thread = g_thread_new ("pusher", pusher_main, &ps);
    gdouble secs;
    gint64 t0;

    fail_unless (pusher_wait_blocked (&ps), "the sink never blocked "
        "(pushed %d, done %d)", ps.pushed, ps.done);
    /* it kept everything for the first reader: about 64 KiB of ring */
    fail_unless (ps.pushed >= 4 && ps.pushed <= 8, "pushed %d", ps.pushed);

    t0 = g_get_monotonic_time ();
    if (variant == 0) {
      gst_harness_push_event (h, gst_event_new_flush_start ());
    } else {
      gst_element_set_state (h->element, GST_STATE_NULL);
    }
    fail_unless (pusher_join (&ps, thread, &secs, t0),
        "still blocked after %.2f s (variant %d)", secs, variant);
    fail_unless (secs < 2.0, "unblocking took %.2f s", secs);
    fail_unless_equals_int (ps.last, GST_FLOW_FLUSHING);
    if (variant == 0)
      gst_element_set_state (h->element, GST_STATE_NULL);
    fail_unless (pop_error (bus, 0) == NULL);
    harness_free (h, bus);
  }
  remove_region (path);
}

GST_END_TEST;

GST_START_TEST (test_src_unlock_while_waiting)
{
  gchar *path = shm_path ("src-wait");
  gint variant;

  /* 0: waiting for data (live), 1: waiting for data (not live), 2: waiting
   * for a producer */
  for (variant = 0; variant < 3; variant++) {
    Producer *p = NULL;
    GstBus *bus;
    GstElement *pipeline;
    gdouble secs;

    if (variant < 2) {
      p = producer_new (path, MiB);
      producer_write_stream_start (p, "wait", 1);
    } else {
      make_region_file (path, MiB, FALSE);
    }
    pipeline = src_pipeline (path, variant != 1, &bus);
    set_state_timed (pipeline, GST_STATE_PLAYING);
    fail_unless (pop_error (bus, 300 * GST_MSECOND) == NULL);
    secs = set_state_timed (pipeline, GST_STATE_NULL);
    fail_unless (secs < 2.0, "stopping took %.2f s (variant %d)", secs,
        variant);
    pipeline_free (pipeline, bus);
    if (p)
      producer_free (p);
    unlink (path);
  }
  remove_region (path);
}

GST_END_TEST;

/* ---- 6. a buffer larger than the ring --------------------------------- */

GST_START_TEST (test_sink_buffer_too_big)
{
  gchar *path = shm_path ("too-big");
  GstBus *bus;
  GstHarness *h = small_sink_harness (path, 128 * KiB, &bus);
  GstBuffer *b = gst_buffer_new_allocate (NULL, 100 * KiB, NULL);
  GstMessage *msg;
  GError *gerr = NULL;
  gchar *debug = NULL, *want;
  guint64 need = ivshm_region_size_for_payload (100 * KiB);

  /* 100 KiB + header needs 64 KiB of layout and a ring above 100 KiB */
  fail_unless_equals_uint64 (need, 256 * KiB);
  gst_buffer_memset (b, 0, 0x55, 100 * KiB);
  fail_unless_equals_int (gst_harness_push (h, b), GST_FLOW_ERROR);

  msg = pop_error (bus, GST_SECOND);
  assert_error (msg, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NO_SPACE_LEFT,
      NULL);
  gst_message_parse_error (msg, &gerr, &debug);
  want = g_strdup_printf ("%" G_GUINT64_FORMAT, need);
  fail_unless (debug && strstr (debug, want), "debug '%s' does not name %s",
      debug, want);
  g_free (want);
  g_free (debug);
  g_error_free (gerr);
  gst_message_unref (msg);

  /* a buffer that fits still goes through afterwards */
  b = gst_buffer_new_allocate (NULL, 1000, NULL);
  fail_unless_equals_int (gst_harness_push (h, b), GST_FLOW_OK);

  harness_free (h, bus);
  remove_region (path);
}

GST_END_TEST;

/* ---- 7. garbage in the ring while the source reads -------------------- */

static GstPadProbeReturn
count_buffer (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  g_atomic_int_inc ((gint *) data);
  return GST_PAD_PROBE_OK;
}

GST_START_TEST (test_src_garbage_while_reading)
{
  gchar *path = shm_path ("src-corrupt");
  gint variant;

  /* 0: an impossible write position, 1: a record header that does not
   * carry its own position, 2: the magic overwritten */
  for (variant = 0; variant < 3; variant++) {
    Producer *p = producer_new (path, MiB);
    IvshmHeader *hdr = producer_header (p);
    GstBus *bus;
    GstElement *pipeline;
    GstMessage *msg;
    GstSegment seg;
    guint64 pos;

    producer_write_stream_start (p, "corrupt", 1);
    producer_write_string (p, IVSHM_RECORD_CAPS, 0, "application/x-test");
    gst_segment_init (&seg, GST_FORMAT_TIME);
    producer_write_segment (p, &seg);
    write_src_buffer (p, 0, 0);

    pipeline = src_pipeline (path, FALSE, &bus);
    /* wait until the buffer reached the sink: the source has read
     * everything there is and waits at the writer's position (the probe
     * goes in before the pipeline starts, or the buffer may pass first) */
    {
      GstElement *sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
      GstPad *pad = gst_element_get_static_pad (sink, "sink");
      gint n = 0;
      gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

      gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, count_buffer, &n,
          NULL);
      set_state_timed (pipeline, GST_STATE_PLAYING);
      while (g_atomic_int_get (&n) < 1 && g_get_monotonic_time () < deadline)
        g_usleep (1000);
      fail_unless_equals_int (g_atomic_int_get (&n), 1);
      gst_object_unref (pad);
      gst_object_unref (sink);
      pos = ivshm_writer_position (p->writer);
    }
    fail_unless (pop_error (bus, 0) == NULL);

    switch (variant) {
      case 0:
        atomic_store (&hdr->write_pos, pos + 3);
        break;
      case 1:{
        guint8 *ring = (guint8 *) hdr + IVSHM_RING_OFFSET;
        guint64 ring_size = atomic_load (&hdr->ring_size);
        IvshmRecordHeader bad;

        info_init (&bad, IVSHM_RECORD_BUFFER, 0);
        bad.pos = pos + 12345 * 64;
        bad.payload_len = 16;
        memcpy (ring + pos % ring_size, &bad, sizeof bad);
        atomic_store (&hdr->write_pos, pos + 128);
        break;
      }
      default:
        atomic_store (&hdr->magic, G_GUINT64_CONSTANT (0xdeadbeefdeadbeef));
        break;
    }

    msg = pop_error (bus, 5 * GST_SECOND);
    assert_error (msg, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_READ, NULL);
    gst_message_unref (msg);
    pipeline_free (pipeline, bus);

    /* the writer must not trust the garbage either */
    atomic_store (&hdr->magic, IVSHM_MAGIC);
    producer_free (p);
    unlink (path);
  }
  remove_region (path);
}

GST_END_TEST;

/* The cache-hot ring's margin for live streams (PROTOCOL.md section 11,
 * "Early wrap"): once upstream answers the latency query as live (the
 * harness does), the sink wraps early only while half the ring stays free
 * at its start, so a reader that stalls keeps half the ring as slack. A
 * reader that reads every record at once sees 1 MiB records in a 16 MiB
 * region; an early wrap (a record at offset 0 although it fitted behind
 * the previous one) must come only after the previous record ended at
 * least half a ring in. Mutation caught: not setting the margin in
 * gst_ivshmem_sink_note_time (wraps after the 4 MiB hot window). */
GST_START_TEST (test_sink_live_early_margin)
{
  const guint64 size = 16 * MiB, ring = size - IVSHM_RING_OFFSET;
  const gsize len = MiB - 64;
  gchar *path = shm_path ("sink-live-margin");
  gchar *desc = g_strdup_printf ("ivshmemsink device=%s size=%"
      G_GUINT64_FORMAT " sync=false", path, size);
  GstHarness *h = gst_harness_new_parse (desc);
  IvshmRegion *region;
  IvshmReader *reader;
  IvshmRegionOptions opts = { 0 };
  IvshmError err = { 0 };
  IvshmRecord rec;
  GstSegment seg;
  guint64 prev_end = G_MAXUINT64, early = 0, wraps_stat = 0;
  GstStructure *stats = NULL;
  GstElement *sink;
  GstCaps *caps;
  gint i;

  fail_unless_equals_int (ivshm_region_open (path, &opts, &region, &err),
      IVSHM_OK);
  fail_unless_equals_int (ivshm_reader_new (ivshm_region_data (region),
          ivshm_region_size (region), NULL, &reader, &err), IVSHM_OK);
  gst_harness_use_systemclock (h);
  fail_unless (gst_harness_push_event (h,
          gst_event_new_stream_start ("live-margin")));
  caps = gst_caps_new_empty_simple ("application/x-t");
  fail_unless (gst_harness_push_event (h, gst_event_new_caps (caps)));
  gst_caps_unref (caps);
  gst_segment_init (&seg, GST_FORMAT_TIME);
  fail_unless (gst_harness_push_event (h, gst_event_new_segment (&seg)));

  for (i = 0; i < 48; i++) {
    GstBuffer *b = gst_buffer_new_allocate (NULL, len, NULL);

    GST_BUFFER_PTS (b) = i * 10 * GST_MSECOND;
    fail_unless_equals_int (gst_harness_push (h, b), GST_FLOW_OK);
    /* read everything there is: the reader keeps up */
    ivshm_reader_heartbeat (reader);
    while (ivshm_reader_next (reader, &rec, &err) == IVSHM_OK) {
      guint64 off = rec.h.pos % ring,
          rec_len = ivshm_record_len (rec.h.payload_len);

      if (rec.h.type == IVSHM_RECORD_BUFFER) {
        if (off == 0 && prev_end != G_MAXUINT64 && prev_end + rec_len <= ring) {
          early++;
          fail_unless (prev_end >= ring / 2, "an early wrap of a live stream "
              "after %" G_GUINT64_FORMAT " bytes of a %" G_GUINT64_FORMAT
              "-byte ring: less than half of it stayed free", prev_end, ring);
        }
        prev_end = off + rec_len;
      }
      fail_unless_equals_int (ivshm_reader_release (reader), IVSHM_OK);
    }
  }
  fail_unless (early >= 2, "only %" G_GUINT64_FORMAT " early wraps in 48 "
      "records of 1 MiB: the test saw nothing", early);
  sink = gst_harness_find_element (h, "ivshmemsink");
  g_object_get (sink, "stats", &stats, NULL);
  fail_unless (gst_structure_get_uint64 (stats, "early-wraps", &wraps_stat));
  fail_unless_equals_uint64 (wraps_stat, early);
  gst_structure_free (stats);
  gst_object_unref (sink);

  ivshm_reader_free (reader);
  gst_harness_teardown (h);
  ivshm_region_close (region);
  g_free (desc);
  remove_region (path);
}

GST_END_TEST;

/* A sink that finds its region taken over posts its error before it
 * returns GST_FLOW_ERROR, whichever of its threads noticed first:
 * otherwise upstream's "Internal data stream error" reaches the bus
 * first and is what gst-launch-1.0 and applications report (CI saw it in
 * lifecycle-stale-producer). The takeover is simulated by a foreign
 * producer_owner; a bus sync handler holds the sink's heartbeat thread
 * inside its post for 300 ms, and meanwhile the streaming thread (this
 * one) renders a buffer. */
typedef struct
{
  GMutex lock;
  GCond cond;
  gboolean in_post;
  GThread *test_thread;
} PostGate;

static GstBusSyncReply
hold_error_post (GstBus * bus, GstMessage * msg, gpointer data)
{
  PostGate *g = data;

  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR &&
      g_thread_self () != g->test_thread) {
    g_mutex_lock (&g->lock);
    g->in_post = TRUE;
    g_cond_broadcast (&g->cond);
    g_mutex_unlock (&g->lock);
    g_usleep (300 * 1000);
  }
  return GST_BUS_PASS;
}

GST_START_TEST (test_sink_taken_over_error_first)
{
  gchar *path = shm_path ("sink-taken-over");
  gchar *desc = g_strdup_printf ("ivshmemsink device=%s size=%"
      G_GUINT64_FORMAT " sync=false", path, MiB);
  GstHarness *h = gst_harness_new_parse (desc);
  GstElement *sink = gst_harness_find_element (h, "ivshmemsink");
  GstBus *bus = gst_bus_new ();
  PostGate g = { 0 };
  IvshmRegion *region;
  IvshmRegionOptions opts = { 0 };
  IvshmError err = { 0 };
  GstMessage *msg;
  gint64 deadline;

  g_mutex_init (&g.lock);
  g_cond_init (&g.cond);
  g.test_thread = g_thread_self ();
  gst_element_set_bus (sink, bus);
  gst_bus_set_sync_handler (bus, hold_error_post, &g, NULL);
  gst_harness_set_src_caps_str (h, "application/x-t");
  fail_unless_equals_int (gst_harness_push (h,
          gst_buffer_new_allocate (NULL, 100, NULL)), GST_FLOW_OK);

  /* another producer owns the region now */
  fail_unless_equals_int (ivshm_region_open (path, &opts, &region, &err),
      IVSHM_OK);
  atomic_store (&((IvshmHeader *) ivshm_region_data (region))->producer_owner,
      0x1234567890abcdefull);
  /* the heartbeat thread notices and is held in its post */
  deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  g_mutex_lock (&g.lock);
  while (!g.in_post)
    fail_unless (g_cond_wait_until (&g.cond, &g.lock, deadline),
        "the sink's heartbeat thread did not report the takeover");
  g_mutex_unlock (&g.lock);

  /* the streaming thread fails: by then the error must be on the bus */
  fail_unless_equals_int (gst_harness_push (h,
          gst_buffer_new_allocate (NULL, 100, NULL)), GST_FLOW_ERROR);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "GST_FLOW_ERROR returned before the sink's "
      "error reached the bus");
  fail_unless (GST_MESSAGE_SRC (msg) == GST_OBJECT (sink));
  gst_message_unref (msg);

  gst_bus_set_sync_handler (bus, NULL, NULL, NULL);
  gst_harness_teardown (h);
  gst_object_unref (sink);
  gst_object_unref (bus);
  ivshm_region_close (region);
  g_mutex_clear (&g.lock);
  g_cond_clear (&g.cond);
  g_free (desc);
  remove_region (path);
}

GST_END_TEST;

static Suite *
ivshmem_suite (void)
{
  Suite *s = suite_create ("ivshmem-elements");
  TCase *tc = tcase_create ("general");

  fixture_remove_stale_regions ("check");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_registered_with_defaults);
  tcase_add_test (tc, test_enum_types_plugin_api);
  tcase_add_test (tc, test_sink_state_changes);
  tcase_add_test (tc, test_sink_live_early_margin);
  tcase_add_test (tc, test_sink_taken_over_error_first);
  tcase_add_test (tc, test_src_state_changes);
  tcase_add_test (tc, test_missing_device);
  tcase_add_test (tc, test_size_not_power_of_two);
  tcase_add_test (tc, test_src_garbage_region);
  tcase_add_test (tc, test_src_waits_for_producer);
  tcase_add_test (tc, test_sink_writes_records);
  tcase_add_test (tc, test_sink_eos_after_reader_left);
  tcase_add_test (tc, test_src_forwards_stream);
  tcase_add_test (tc, test_src_live_restamps);
  tcase_add_test (tc, test_sink_unlock_on_full_ring);
  tcase_add_test (tc, test_src_unlock_while_waiting);
  tcase_add_test (tc, test_sink_buffer_too_big);
  tcase_add_test (tc, test_src_garbage_while_reading);
  return s;
}

GST_CHECK_MAIN (ivshmem);
