/* gst-ivshmem: tests of ivshmemdeviceprovider
 * SPDX-License-Identifier: MIT
 *
 * The guest side runs against a fake sysfs tree (the same files
 * core-region.c builds for libpci) with three IVSHMEM devices:
 *
 *   0000:00:04.0  1 MiB    a live producer (heartbeating), video caps sent
 *   0000:00:05.0  256 KiB  never formatted
 *   0000:00:06.0  1 MiB    no resource2 to map (as when mapping is denied)
 *
 * IVSHMEM_SYSFS_ROOT is read once per process, so main() builds the tree
 * and sets the variable before GStreamer or the suite starts.
 *
 * The host side uses real files in /dev/shm, named after this process so
 * that parallel tests do not meet; other regions there are ignored.
 */
#include <gst/check/gstcheck.h>

#include "ivshmem-layout.h"
#include "ivshmem-os.h"
#include "ivshmem-region.h"
#include "fixture.h"
#include "ivshmem-ring.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KiB (UINT64_C (1024))
#define MiB (UINT64_C (1024) * 1024)

#define LIVE_CAPS "video/x-raw, format=(string)GRAY8, width=(int)320, " \
  "height=(int)240, framerate=(fraction)30/1"

/* the fake tree and the live producer of 0000:00:04.0, set up in main() */
static gchar *sysfs_root;
static IvshmRegion *live_region;
static IvshmWriter *live_writer;
static IvshmTicker *live_ticker;

/* ---- helpers: a fake sysfs tree (fixture.c, as core-region's) ---- */

/* An IVSHMEM device of the fake tree (fixture_fake_device()); resource2
 * is a regular file of the BAR's size when with_resource2 is set. */
static char *
fake_device (const char *root, const char *name, uint64_t bar2_size,
    gboolean with_resource2)
{
  return fixture_fake_device (root, name, 0x1af4, 0x1110, 0x050000,
      bar2_size, with_resource2);
}

/* Formats a mapped region and writes a CAPS record into it. */
static IvshmWriter *
start_producer (IvshmRegion * region, const char *caps)
{
  IvshmRecordHeader info = { 0 };
  IvshmWriter *writer = NULL;
  IvshmError err = { 0 };
  IvshmStatus st;

  st = ivshm_writer_new (ivshm_region_data (region),
      ivshm_region_size (region), NULL, &writer, &err);
  g_assert_cmpint (st, ==, IVSHM_OK);
  if (caps) {
    info.type = IVSHM_RECORD_CAPS;
    info.payload_len = strlen (caps) + 1;
    info.pts = info.dts = info.duration = IVSHM_TIME_NONE;
    info.offset = info.offset_end = UINT64_MAX;
    g_assert_cmpint (ivshm_writer_write (writer, &info, caps), ==, IVSHM_OK);
  }
  return writer;
}

static void
beat (void *writer)
{
  ivshm_writer_heartbeat (writer);
}

/* A producer's heartbeat, as the sink's own thread keeps it. */
static IvshmTicker *
start_heartbeat (IvshmWriter * writer)
{
  IvshmTicker *ticker = ivshm_ticker_start (0, beat, writer);

  g_assert_nonnull (ticker);
  return ticker;
}

static void
setup_fake_sysfs (void)
{
  IvshmError err = { 0 };
  char *dir, *r2;

  sysfs_root = g_build_filename (g_get_tmp_dir (), "ivshm-dp-XXXXXX", NULL);
  g_assert_nonnull (mkdtemp (sysfs_root));

  /* created out of address order; probing sorts them */
  g_free (fake_device (sysfs_root, "0000:00:06.0", 1 * MiB, FALSE));
  g_free (fake_device (sysfs_root, "0000:00:05.0", 256 * KiB, TRUE));
  dir = fake_device (sysfs_root, "0000:00:04.0", 1 * MiB, TRUE);

  r2 = g_build_filename (dir, "resource2", NULL);
  g_assert_cmpint (ivshm_region_open (r2, NULL, &live_region, &err), ==,
      IVSHM_OK);
  live_writer = start_producer (live_region, LIVE_CAPS);
  live_ticker = start_heartbeat (live_writer);
  g_free (r2);
  g_free (dir);

  g_setenv (IVSHM_SYSFS_ROOT_ENV, sysfs_root, TRUE);
}

static void
teardown_fake_sysfs (void)
{
  ivshm_ticker_stop (live_ticker);
  ivshm_writer_free (live_writer);
  ivshm_region_close (live_region);
  fixture_rm_tree (sysfs_root);
}

/* ---- helpers: probing ---- */

static GstDeviceProvider *
get_provider (void)
{
  GstDeviceProvider *provider =
      gst_device_provider_factory_get_by_name ("ivshmemdeviceprovider");

  fail_unless (provider != NULL, "ivshmemdeviceprovider is not registered");
  return provider;
}

static GList *
probe (void)
{
  GstDeviceProvider *provider = get_provider ();
  GList *devices = gst_device_provider_get_devices (provider);

  gst_object_unref (provider);
  return devices;
}

/* The device of this class whose property `key` is `value`, or NULL.
 * Not a new reference. */
static GstDevice *
find_device (GList * devices, const gchar * klass, const gchar * key,
    const gchar * value)
{
  GList *l;

  for (l = devices; l; l = l->next) {
    GstDevice *dev = l->data;
    GstStructure *props = gst_device_get_properties (dev);
    gboolean match = gst_device_has_classes (dev, klass)
        && g_strcmp0 (gst_structure_get_string (props, key), value) == 0;

    gst_structure_free (props);
    if (match)
      return dev;
  }
  return NULL;
}

static guint
count_with_property (GList * devices, const gchar * key)
{
  GList *l;
  guint n = 0;

  for (l = devices; l; l = l->next) {
    GstStructure *props = gst_device_get_properties (l->data);
    n += gst_structure_has_field (props, key);
    gst_structure_free (props);
  }
  return n;
}

static gchar *
prop_string (GstDevice * dev, const gchar * key)
{
  GstStructure *props = gst_device_get_properties (dev);
  gchar *value = g_strdup (gst_structure_get_string (props, key));

  gst_structure_free (props);
  return value;
}

static void
assert_prop (GstDevice * dev, const gchar * key, const gchar * want)
{
  gchar *got = prop_string (dev, key);

  fail_unless (g_strcmp0 (got, want) == 0, "%s: %s, expected %s", key,
      GST_STR_NULL (got), GST_STR_NULL (want));
  g_free (got);
}

static gchar *
element_device (GstElement * element)
{
  gchar *device = NULL;

  g_object_get (element, "device", &device, NULL);
  return device;
}

/* ---- the tests ---- */

GST_START_TEST (test_registered)
{
  GstDeviceProviderFactory *factory =
      gst_device_provider_factory_find ("ivshmemdeviceprovider");
  GstDeviceMonitor *monitor;
  GList *devices;

  fail_unless (factory != NULL);
  /* GstDeviceMonitor ignores providers of rank NONE */
  fail_unless (gst_plugin_feature_get_rank (GST_PLUGIN_FEATURE (factory))
      > GST_RANK_NONE);
  fail_unless (gst_device_provider_factory_has_classes (factory,
          "Source/IVSHMEM"));
  fail_unless (gst_device_provider_factory_has_classes (factory,
          "Sink/IVSHMEM"));
  gst_object_unref (factory);

  /* what gst-device-monitor-1.0 Source/IVSHMEM does */
  monitor = gst_device_monitor_new ();
  fail_unless (gst_device_monitor_add_filter (monitor, "Source/IVSHMEM",
          NULL) > 0);
  fail_unless (gst_device_monitor_start (monitor));
  devices = gst_device_monitor_get_devices (monitor);
  fail_unless (find_device (devices, "Source/IVSHMEM", "device.bus-path",
          "pci-0000:00:04.0") != NULL);
  fail_unless (find_device (devices, "Sink/IVSHMEM", "device.bus-path",
          "pci-0000:00:04.0") == NULL, "the filter let a sink through");
  g_list_free_full (devices, gst_object_unref);
  gst_device_monitor_stop (monitor);
  gst_object_unref (monitor);
}

GST_END_TEST;

/* A monitor asks every provider whose classes match: the system's own
 * (PulseAudio, ALSA, V4L2...) would answer too, slowly and with leaks of
 * their own under valgrind. Only ours is ranked for this process. */
static void
rank_only_ivshmem_provider (void)
{
  GList *factories, *l;

  factories = gst_device_provider_factory_list_get_device_providers
      (GST_RANK_NONE);
  for (l = factories; l; l = l->next) {
    GstPluginFeature *f = l->data;

    if (g_strcmp0 (GST_OBJECT_NAME (f), "ivshmemdeviceprovider") != 0)
      gst_plugin_feature_set_rank (f, GST_RANK_NONE);
  }
  gst_plugin_feature_list_free (factories);
}

/* What gst-device-monitor-1.0 Video/Source does: the live video region
 * is a video source; the blank one and the sinks are not. */
static GList *
monitor_devices (const gchar * filter)
{
  GstDeviceMonitor *monitor = gst_device_monitor_new ();
  GList *devices;

  rank_only_ivshmem_provider ();
  fail_unless (gst_device_monitor_add_filter (monitor, filter, NULL) > 0,
      "no provider for %s", filter);
  fail_unless (gst_device_monitor_start (monitor));
  devices = gst_device_monitor_get_devices (monitor);
  gst_device_monitor_stop (monitor);
  gst_object_unref (monitor);
  return devices;
}

GST_START_TEST (test_monitor_media_classes)
{
  GList *devices;

  devices = monitor_devices ("Video/Source");
  fail_unless (find_device (devices, "Video/Source", "device.bus-path",
          "pci-0000:00:04.0") != NULL, "the video region is not listed");
  fail_unless (find_device (devices, "Source", "device.bus-path",
          "pci-0000:00:05.0") == NULL, "a region without producer listed");
  fail_unless (find_device (devices, "Sink", "device.bus-path",
          "pci-0000:00:04.0") == NULL, "a sink listed as a source");
  g_list_free_full (devices, gst_object_unref);

  devices = monitor_devices ("Video/Sink");
  fail_unless (find_device (devices, "Video/Sink/IVSHMEM", "device.bus-path",
          "pci-0000:00:04.0") != NULL);
  g_list_free_full (devices, gst_object_unref);

  devices = monitor_devices ("Audio/Source");
  fail_unless (find_device (devices, "Source", "device.bus-path",
          "pci-0000:00:04.0") == NULL, "a video region listed as audio");
  g_list_free_full (devices, gst_object_unref);

  /* the generic filter still finds both */
  devices = monitor_devices ("Source/IVSHMEM");
  fail_unless (find_device (devices, "Source/IVSHMEM", "device.bus-path",
          "pci-0000:00:04.0") != NULL);
  fail_unless (find_device (devices, "Source/IVSHMEM", "device.bus-path",
          "pci-0000:00:05.0") != NULL);
  g_list_free_full (devices, gst_object_unref);
}

GST_END_TEST;

GST_START_TEST (test_probe_pci)
{
  GList *devices = probe ();
  const gchar *classes[] = { "Source/IVSHMEM", "Sink/IVSHMEM" };
  guint i;

  /* three PCI devices, each as a source and a sink */
  fail_unless_equals_int (count_with_property (devices, "sysfs.path"), 6);

  for (i = 0; i < G_N_ELEMENTS (classes); i++) {
    GstDevice *live = find_device (devices, classes[i], "device.bus-path",
        "pci-0000:00:04.0");
    GstDevice *blank = find_device (devices, classes[i], "device.bus-path",
        "pci-0000:00:05.0");
    GstDevice *denied = find_device (devices, classes[i], "device.bus-path",
        "pci-0000:00:06.0");
    gchar *name, *path, *klass;
    GstStructure *props;
    GstCaps *caps;
    guint64 size = 0;

    fail_unless (live && blank && denied, "%s: a device is missing",
        classes[i]);

    name = gst_device_get_display_name (live);
    fail_unless_equals_string (name, "IVSHMEM 0000:00:04.0 (1 MiB)");
    g_free (name);
    /* a live producer of video: a video source and sink */
    klass = gst_device_get_device_class (live);
    fail_unless_equals_string (klass, i == 0 ? "Video/Source/IVSHMEM" :
        "Video/Sink/IVSHMEM");
    g_free (klass);
    fail_unless (gst_device_has_classes (live, i == 0 ? "Video/Source" :
            "Video/Sink"));
    caps = gst_device_get_caps (live);
    fail_unless (gst_caps_is_any (caps));
    gst_caps_unref (caps);

    assert_prop (live, "device.api", "ivshmem");
    path = g_build_filename (sysfs_root, "bus", "pci", "devices",
        "0000:00:04.0", NULL);
    assert_prop (live, "sysfs.path", path);
    g_free (path);
    path = g_build_filename (sysfs_root, "bus", "pci", "devices",
        "0000:00:04.0", "resource2", NULL);
    assert_prop (live, "device.path", path);
    g_free (path);
    props = gst_device_get_properties (live);
    fail_unless (gst_structure_get_uint64 (props, "size", &size));
    fail_unless_equals_uint64 (size, 1 * MiB);
    gst_structure_free (props);
    assert_prop (live, "ivshmem.producer", "active");
    assert_prop (live, "ivshmem.caps", LIVE_CAPS);

    name = gst_device_get_display_name (blank);
    fail_unless_equals_string (name, "IVSHMEM 0000:00:05.0 (256 KiB)");
    g_free (name);
    assert_prop (blank, "ivshmem.producer", "none");
    assert_prop (blank, "ivshmem.caps", NULL);
    klass = gst_device_get_device_class (blank);
    fail_unless_equals_string (klass, classes[i]);
    g_free (klass);

    /* listed although it cannot be read */
    name = gst_device_get_display_name (denied);
    fail_unless_equals_string (name, "IVSHMEM 0000:00:06.0 (1 MiB)");
    g_free (name);
    assert_prop (denied, "device.api", "ivshmem");
    assert_prop (denied, "ivshmem.producer", "unknown");
    assert_prop (denied, "ivshmem.caps", NULL);
  }

  /* sorted by PCI address */
  {
    GList *l;
    gchar *prev = NULL;

    for (l = devices; l; l = l->next) {
      gchar *bus = prop_string (l->data, "device.bus-path");
      if (bus && prev)
        fail_unless (strcmp (prev, bus) <= 0, "%s before %s", prev, bus);
      if (bus) {
        g_free (prev);
        prev = bus;
      }
    }
    g_free (prev);
  }

  g_list_free_full (devices, gst_object_unref);
}

GST_END_TEST;

GST_START_TEST (test_create_element)
{
  GList *devices = probe ();
  GstDevice *src = find_device (devices, "Source/IVSHMEM", "device.bus-path",
      "pci-0000:00:04.0");
  GstDevice *sink = find_device (devices, "Sink/IVSHMEM", "device.bus-path",
      "pci-0000:00:04.0");
  GstElement *el;
  gchar *device;

  fail_unless (src && sink);

  el = gst_device_create_element (src, "in");
  fail_unless (el != NULL);
  fail_unless_equals_string (GST_OBJECT_NAME (gst_element_get_factory (el)),
      "ivshmemsrc");
  fail_unless_equals_string (GST_OBJECT_NAME (el), "in");
  device = element_device (el);
  fail_unless_equals_string (device, "0000:00:04.0");
  g_free (device);
  gst_object_unref (el);

  el = gst_device_create_element (sink, NULL);
  fail_unless (el != NULL);
  fail_unless_equals_string (GST_OBJECT_NAME (gst_element_get_factory (el)),
      "ivshmemsink");
  device = element_device (el);
  fail_unless_equals_string (device, "0000:00:04.0");
  g_free (device);
  gst_object_unref (el);

  g_list_free_full (devices, gst_object_unref);
}

GST_END_TEST;

GST_START_TEST (test_reconfigure_element)
{
  GList *devices = probe ();
  GstDevice *src = find_device (devices, "Source/IVSHMEM", "device.bus-path",
      "pci-0000:00:05.0");
  GstDevice *sink = find_device (devices, "Sink/IVSHMEM", "device.bus-path",
      "pci-0000:00:05.0");
  GstElement *el = gst_element_factory_make ("ivshmemsrc", NULL);
  gchar *device;

  fail_unless (src && sink && el);
  g_object_set (el, "device", "/dev/shm/elsewhere", NULL);

  fail_unless (gst_device_reconfigure_element (src, el));
  device = element_device (el);
  fail_unless_equals_string (device, "0000:00:05.0");
  g_free (device);

  /* a sink device does not reconfigure a source element */
  g_object_set (el, "device", "/dev/shm/elsewhere", NULL);
  fail_unless (!gst_device_reconfigure_element (sink, el));
  device = element_device (el);
  fail_unless_equals_string (device, "/dev/shm/elsewhere");
  g_free (device);

  gst_object_unref (el);
  g_list_free_full (devices, gst_object_unref);
}

GST_END_TEST;

/* A region in /dev/shm: listed once a producer has formatted it, with its
 * state and caps, and its elements get the path. */
GST_START_TEST (test_host_region)
{
  gchar *path = g_strdup_printf ("/dev/shm/gst-ivshmem-dp-test-%d",
      (int) getpid ());
  IvshmRegionOptions opts = { 256 * KiB, NULL };
  IvshmRegion *region = NULL;
  IvshmWriter *writer;
  IvshmError err = { 0 };
  GList *devices;
  GstDevice *dev;
  GstElement *el;
  gchar *name, *device;
  IvshmTicker *ticker;

  unlink (path);
  fail_unless_equals_int (ivshm_region_open (path, &opts, &region, &err),
      IVSHM_OK);

  /* not formatted yet: not a region of this protocol */
  devices = probe ();
  fail_unless (find_device (devices, "Source/IVSHMEM", "device.path",
          path) == NULL);
  g_list_free_full (devices, gst_object_unref);

  writer = start_producer (region, "audio/x-raw, rate=(int)48000");
  ticker = start_heartbeat (writer);
  devices = probe ();
  dev = find_device (devices, "Source/IVSHMEM", "device.path", path);
  fail_unless (dev != NULL, "%s not listed", path);
  fail_unless (gst_device_has_classes (dev, "Audio/Source"));
  fail_if (gst_device_has_classes (dev, "Video"));
  fail_unless (find_device (devices, "Audio/Sink", "device.path",
          path) != NULL);
  fail_unless (find_device (devices, "Sink/IVSHMEM", "device.path",
          path) != NULL);
  name = gst_device_get_display_name (dev);
  device = g_strdup_printf ("IVSHMEM %s (256 KiB)", path);
  fail_unless_equals_string (name, device);
  g_free (device);
  g_free (name);
  assert_prop (dev, "device.api", "ivshmem");
  assert_prop (dev, "device.bus-path", NULL);
  assert_prop (dev, "ivshmem.producer", "active");
  assert_prop (dev, "ivshmem.caps", "audio/x-raw, rate=(int)48000");
  el = gst_device_create_element (dev, NULL);
  device = element_device (el);
  fail_unless_equals_string (device, path);
  g_free (device);
  gst_object_unref (el);
  g_list_free_full (devices, gst_object_unref);

  /* its heartbeat stops (it crashed, its VM paused): dead, and no longer
   * an audio source */
  ivshm_ticker_stop (ticker);
  devices = probe ();
  dev = find_device (devices, "Source/IVSHMEM", "device.path", path);
  fail_unless (dev != NULL);
  assert_prop (dev, "ivshmem.producer", "dead");
  fail_if (gst_device_has_classes (dev, "Audio"));
  g_list_free_full (devices, gst_object_unref);

  /* the producer stops: still listed, closed, last caps kept */
  ivshm_writer_free (writer);
  devices = probe ();
  dev = find_device (devices, "Sink/IVSHMEM", "device.path", path);
  fail_unless (dev != NULL);
  assert_prop (dev, "ivshmem.producer", "closed");
  assert_prop (dev, "ivshmem.caps", "audio/x-raw, rate=(int)48000");
  fail_if (gst_device_has_classes (dev, "Audio"));
  g_list_free_full (devices, gst_object_unref);

  ivshm_region_close (region);
  unlink (path);
  g_free (path);
}

GST_END_TEST;

/* The sticky area comes from an untrusted peer: text that is not caps and
 * a corrupted header give no ivshmem.caps, and nothing worse. */
GST_START_TEST (test_hostile_sticky)
{
  gchar *path = g_strdup_printf ("/dev/shm/gst-ivshmem-dp-hostile-%d",
      (int) getpid ());
  IvshmRegionOptions opts = { 256 * KiB, NULL };
  IvshmRegion *region = NULL;
  IvshmWriter *writer;
  IvshmError err = { 0 };
  IvshmStickyHeader *sh;
  GList *devices;
  GstDevice *dev;
  guint64 seq;
  IvshmTicker *ticker;

  unlink (path);
  fail_unless_equals_int (ivshm_region_open (path, &opts, &region, &err),
      IVSHM_OK);
  sh = (IvshmStickyHeader *) ((guint8 *) ivshm_region_data (region) +
      IVSHM_STICKY_OFFSET);

  writer = start_producer (region, "\x01\x02{{ not caps");
  ticker = start_heartbeat (writer);
  devices = probe ();
  dev = find_device (devices, "Source/IVSHMEM", "device.path", path);
  fail_unless (dev != NULL);
  assert_prop (dev, "ivshmem.producer", "active");
  assert_prop (dev, "ivshmem.caps", NULL);
  g_list_free_full (devices, gst_object_unref);
  ivshm_ticker_stop (ticker);
  ivshm_writer_free (writer);

  /* valid caps, then a length beyond the sticky area */
  writer = start_producer (region, "video/x-raw");
  ticker = start_heartbeat (writer);
  atomic_store (&sh->len, 0xfffffff0u);
  devices = probe ();
  dev = find_device (devices, "Source/IVSHMEM", "device.path", path);
  fail_unless (dev != NULL);
  assert_prop (dev, "ivshmem.caps", NULL);
  g_list_free_full (devices, gst_object_unref);

  /* a record whose payload_len runs past the end */
  atomic_store (&sh->len, 64u);
  devices = probe ();
  dev = find_device (devices, "Source/IVSHMEM", "device.path", path);
  assert_prop (dev, "ivshmem.caps", NULL);
  g_list_free_full (devices, gst_object_unref);

  /* a writer that never finishes: the probe gives up */
  seq = atomic_load (&sh->seq);
  atomic_store (&sh->seq, seq | 1);
  devices = probe ();
  dev = find_device (devices, "Source/IVSHMEM", "device.path", path);
  assert_prop (dev, "ivshmem.producer", "active");
  assert_prop (dev, "ivshmem.caps", NULL);
  /* no caps that can be trusted: no media class */
  fail_if (gst_device_has_classes (dev, "Video"));
  g_list_free_full (devices, gst_object_unref);

  ivshm_ticker_stop (ticker);
  ivshm_writer_free (writer);
  ivshm_region_close (region);
  unlink (path);
  g_free (path);
}

GST_END_TEST;

/* A stream that ended: the producer keeps EOS in the sticky area. The
 * region is listed with its caps and ivshmem.eos, nothing is refused. */
GST_START_TEST (test_eos_region)
{
  gchar *path = g_strdup_printf ("/dev/shm/gst-ivshmem-dp-eos-%d",
      (int) getpid ());
  IvshmRegionOptions opts = { 256 * KiB, NULL };
  IvshmRecordHeader info = { 0 };
  IvshmRegion *region = NULL;
  IvshmWriter *writer;
  IvshmTicker *ticker;
  IvshmError err = { 0 };
  GstStructure *props;
  GList *devices;
  GstDevice *dev;
  gboolean eos = FALSE;
  guint readers = 99;

  unlink (path);
  fail_unless_equals_int (ivshm_region_open (path, &opts, &region, &err),
      IVSHM_OK);
  writer = start_producer (region, "image/jpeg, width=(int)640");
  ticker = start_heartbeat (writer);
  info.type = IVSHM_RECORD_EVENT;
  info.subtype = IVSHM_EVENT_EOS;
  info.payload_len = 1;
  info.pts = info.dts = info.duration = IVSHM_TIME_NONE;
  info.offset = info.offset_end = UINT64_MAX;
  fail_unless_equals_int (ivshm_writer_write (writer, &info, ""), IVSHM_OK);

  devices = probe ();
  dev = find_device (devices, "Source/IVSHMEM", "device.path", path);
  fail_unless (dev != NULL);
  assert_prop (dev, "ivshmem.producer", "active");
  assert_prop (dev, "ivshmem.caps", "image/jpeg, width=(int)640");
  /* image/jpeg is video to an application that lists cameras */
  fail_unless (gst_device_has_classes (dev, "Video/Source"));
  props = gst_device_get_properties (dev);
  fail_unless (gst_structure_get_boolean (props, "ivshmem.eos", &eos));
  fail_unless (eos);
  fail_unless (gst_structure_get_uint (props, "ivshmem.readers", &readers));
  fail_unless_equals_int (readers, 0);
  gst_structure_free (props);
  g_list_free_full (devices, gst_object_unref);

  ivshm_ticker_stop (ticker);
  ivshm_writer_free (writer);
  ivshm_region_close (region);
  unlink (path);
  g_free (path);
}

GST_END_TEST;

/* Another process truncates and regrows a region file in /dev/shm while
 * the provider looks at it: a mapping would take SIGBUS past the new end;
 * the provider reads files instead. Nothing must crash. */
typedef struct
{
  const gchar *path;
  volatile gint stop;
} Flipper;

static gpointer
flipper_thread (gpointer data)
{
  Flipper *f = data;
  guint8 head[128] = { 0 };
  guint64 magic = IVSHM_MAGIC;
  guint32 version = 2, active = IVSHM_PRODUCER_ACTIVE;
  int fd = open (f->path, O_RDWR | O_CLOEXEC);

  /* an active producer whose heartbeat never moves: the probe watches
   * it for a while, reading the region again and again */
  g_assert_cmpint (fd, >=, 0);
  memcpy (head, &magic, sizeof magic);
  memcpy (head + 8, &version, sizeof version);
  memcpy (head + 0x50, &active, sizeof active);
  while (!g_atomic_int_get (&f->stop)) {
    g_assert_cmpint (ftruncate (fd, 0), ==, 0);
    g_assert_cmpint (ftruncate (fd, 256 * KiB), ==, 0);
    g_assert_cmpint (pwrite (fd, head, sizeof head, 0), ==, sizeof head);
  }
  close (fd);
  return NULL;
}

GST_START_TEST (test_truncated_under_probe)
{
  gchar *path = g_strdup_printf ("/dev/shm/gst-ivshmem-dp-flip-%d",
      (int) getpid ());
  Flipper f = { path, 0 };
  GThread *thread;
  guint i;

  fixture_make_sized_file (path, 256 * KiB);
  thread = g_thread_new ("flipper", flipper_thread, &f);
  for (i = 0; i < 4; i++)
    g_list_free_full (probe (), gst_object_unref);
  g_atomic_int_set (&f.stop, 1);
  g_thread_join (thread);
  unlink (path);
  g_free (path);
}

GST_END_TEST;

/* Waits (generously) for a message of this type about our region's
 * source device whose ivshmem.producer is `producer` (NULL: any). */
static gboolean
wait_device_message (GstBus * bus, GstMessageType type, const gchar * path,
    const gchar * producer)
{
  gint64 deadline = g_get_monotonic_time () + 60 * G_TIME_SPAN_SECOND;

  while (g_get_monotonic_time () < deadline) {
    GstMessage *msg = gst_bus_timed_pop_filtered (bus, 100 * GST_MSECOND,
        type);
    GstDevice *dev = NULL;
    gboolean match;
    gchar *p, *prod;

    /* the filter is a mask: every extended message type passes it */
    if (msg == NULL)
      continue;
    if (GST_MESSAGE_TYPE (msg) != type) {
      gst_message_unref (msg);
      continue;
    }
    if (type == GST_MESSAGE_DEVICE_ADDED)
      gst_message_parse_device_added (msg, &dev);
    else if (type == GST_MESSAGE_DEVICE_REMOVED)
      gst_message_parse_device_removed (msg, &dev);
    else
      gst_message_parse_device_changed (msg, &dev, NULL);
    p = prop_string (dev, "device.path");
    prod = prop_string (dev, "ivshmem.producer");
    match = g_strcmp0 (p, path) == 0 && gst_device_has_classes (dev, "Source")
        && (producer == NULL || g_strcmp0 (prod, producer) == 0);
    g_free (p);
    g_free (prod);
    gst_object_unref (dev);
    gst_message_unref (msg);
    if (match)
      return TRUE;
  }
  return FALSE;
}

/* Started (gst-device-monitor-1.0 -f), the provider reports a region that
 * appears, its producer dying, and the region going away. */
GST_START_TEST (test_monitor_thread)
{
  gchar *path = g_strdup_printf ("/dev/shm/gst-ivshmem-dp-follow-%d",
      (int) getpid ());
  IvshmRegionOptions opts = { 256 * KiB, NULL };
  GstDeviceProvider *provider = get_provider ();
  GstBus *bus = gst_device_provider_get_bus (provider);
  IvshmRegion *region = NULL;
  IvshmError err = { 0 };
  IvshmWriter *writer;
  IvshmTicker *ticker;

  unlink (path);
  fail_unless (gst_device_provider_start (provider));

  fail_unless_equals_int (ivshm_region_open (path, &opts, &region, &err),
      IVSHM_OK);
  writer = start_producer (region, "video/x-raw");
  ticker = start_heartbeat (writer);
  fail_unless (wait_device_message (bus, GST_MESSAGE_DEVICE_ADDED, path,
          "active"), "the new region was not reported");

  ivshm_ticker_stop (ticker);
  fail_unless (wait_device_message (bus, GST_MESSAGE_DEVICE_CHANGED, path,
          "dead"), "the dead producer was not reported");

  unlink (path);
  fail_unless (wait_device_message (bus, GST_MESSAGE_DEVICE_REMOVED, path,
          NULL), "the removed region was not reported");

  gst_device_provider_stop (provider);
  ivshm_writer_free (writer);
  ivshm_region_close (region);
  gst_object_unref (bus);
  gst_object_unref (provider);
  g_free (path);
}

GST_END_TEST;

static Suite *
deviceprovider_suite (void)
{
  Suite *s = suite_create ("deviceprovider");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_registered);
  tcase_add_test (tc, test_monitor_media_classes);
  tcase_add_test (tc, test_probe_pci);
  tcase_add_test (tc, test_create_element);
  tcase_add_test (tc, test_reconfigure_element);
  tcase_add_test (tc, test_host_region);
  tcase_add_test (tc, test_hostile_sticky);
  tcase_add_test (tc, test_eos_region);
  tcase_add_test (tc, test_truncated_under_probe);
  tcase_add_test (tc, test_monitor_thread);
  return s;
}

/* Not GST_CHECK_MAIN: the fake sysfs tree must exist and
 * IVSHMEM_SYSFS_ROOT be set before anything reads it. */
int
main (int argc, char **argv)
{
  int ret;

  setup_fake_sysfs ();
  gst_check_init (&argc, &argv);
  ret = gst_check_run_suite (deviceprovider_suite (), "deviceprovider",
      __FILE__);
  teardown_fake_sysfs ();
  return ret;
}
