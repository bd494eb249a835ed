/* gst-ivshmem: ivshmemdeviceprovider
 * SPDX-License-Identifier: MIT
 */
/**
 * SECTION:provider-ivshmemdeviceprovider
 * @title: ivshmemdeviceprovider
 * @see_also: #GstIvshmemSrc, #GstIvshmemSink, #GstDeviceMonitor
 *
 * Lists the IVSHMEM regions this system can reach, for #GstDeviceMonitor
 * and `gst-device-monitor-1.0`. Started (a monitor that follows,
 * `gst-device-monitor-1.0 -f`), it probes again every second in a thread
 * of its own and reports regions that appear or go away and producers
 * that start, stop or die (device-added, -removed, -changed).
 *
 * - Inside a guest, each IVSHMEM PCI device (1af4:1110) found in sysfs.
 * - On the host, each regular file in /dev/shm that starts with this
 *   protocol's magic: a region an #GstIvshmemSink has formatted.
 *
 * Every region is offered twice, once with its #GstIvshmemSrc (a source)
 * and once with its #GstIvshmemSink (a sink), since the same memory can
 * carry a stream either way. The device class says what the region
 * carries, so that applications that list cameras or microphones find it:
 *
 * - a live producer that sends video (`video/...` or `image/...` caps):
 *   "Video/Source/IVSHMEM" and "Video/Sink/IVSHMEM";
 * - audio (`audio/...`): "Audio/Source/IVSHMEM" and "Audio/Sink/IVSHMEM";
 * - no producer, a dead or closed one, or other caps: "Source/IVSHMEM"
 *   and "Sink/IVSHMEM".
 *
 * GStreamer matches a class filter word by word, so `Video/Source`,
 * `Source/Video` and `Source/IVSHMEM` all find a video region's source.
 * Both devices set #GstIvshmemSrc:device / #GstIvshmemSink:device: the PCI
 * address for a guest device, the path for a host region. The caps are
 * ANY: the next producer may send anything.
 *
 * Properties of each device:
 *
 * - `device.api`: `ivshmem`
 * - `device.bus-path`: `pci-0000:00:04.0` (PCI devices)
 * - `sysfs.path`: `/sys/bus/pci/devices/0000:00:04.0` (PCI devices)
 * - `device.path`: the file that is mapped (`resource2`, or `/dev/shm/NAME`)
 * - `size`: the region size in bytes (guint64)
 * - `ivshmem.producer`: `active` (a producer is streaming: its heartbeat
 *   moves), `dead` (its session is open but its heartbeat stopped: it
 *   crashed, or its VM is paused), `closed` (it stopped cleanly), `none`
 *   (the region was never formatted), or `unknown` (the region could not
 *   be read, usually for lack of permission: mapping `resource2` needs
 *   root or the udev rule; or it speaks another protocol version; always
 *   on Windows, see below)
 * - `ivshmem.caps`: the caps of the current stream, when the producer has
 *   sent them
 * - `ivshmem.eos`: TRUE when the stream has ended (EOS)
 * - `ivshmem.readers`: the number of active readers (guint)
 *
 * The heartbeats are watched briefly during a probe: all regions
 * together, until every producer's heartbeat moved (a live one moves
 * within its period, 100 ms by default), at most 5 of their periods (500
 * ms by default, never more than 1 s). The provider
 * remembers what it saw, so a producer found dead is reported dead at
 * once by the next probes, as long as its heartbeat stays still.
 *
 * On Windows (a guest) the devices are those the virtio-win IVSHMEM driver
 * lists, and the provider does not look inside them: gst-ivshmem allows
 * one mapping of a device at a time in the whole guest (and so does the
 * driver, but for its builds of March 2024 to October 2025), and a probe
 * must not take it from an element. `ivshmem.producer` is then `unknown` and
 * there is no `ivshmem.caps`; `ivshmem-info` shows what a device holds.
 *
 * ## Example
 * |[
 * gst-device-monitor-1.0 Video/Source
 * ]| Lists each region that carries video, with a `gst-launch-1.0` line
 * for it (inside a guest: as root or with the udev rule).
 *
 * Since: 0.1
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstivshmemdeviceprovider.h"
#include "gstivshmemelements.h"
#include "gstivshmemregionlook.h"

#include "ivshmem-inspect.h"
#include "ivshmem-os.h"
#include "ivshmem-region.h"

#include <string.h>
#ifndef G_OS_WIN32
#include <sys/stat.h>
#endif

GST_DEBUG_CATEGORY (gst_ivshmem_device_provider_debug);
#define GST_CAT_DEFAULT gst_ivshmem_device_provider_debug

/* Where QEMU's memory-backend-file regions usually live on the host. */
#define SHM_DIR "/dev/shm"
/* Probing reads 64 KiB of each file there; stop after this many. */
#define SHM_MAX_FILES 512
/* A heartbeat seen unchanged for this long (on our clock) is dead. */
#define WATCH_MAX_NS (1000 * GST_MSECOND)
#define WATCH_STEP_US 5000

/* ---- GstIvshmemDeviceProvider ------------------------------------------ */

/* The last heartbeat seen of a region's producer. */
typedef struct
{
  guint64 session;
  guint64 heartbeat;
  GstClockTime changed;         /* our clock, when it was seen to move */
} Seen;

struct _GstIvshmemDeviceProvider
{
  GstDeviceProvider parent;

  /* path -> Seen; GST_OBJECT_LOCK */
  GHashTable *seen;

  /* the monitoring thread (start/stop); lock guards stopping */
  GThread *thread;
  GMutex lock;
  GCond cond;
  gboolean stopping;
};

/* How often the monitoring thread probes again. */
#define MONITOR_INTERVAL_US (1000 * 1000)

#define gst_ivshmem_device_provider_parent_class parent_class
G_DEFINE_TYPE (GstIvshmemDeviceProvider, gst_ivshmem_device_provider,
    GST_TYPE_DEVICE_PROVIDER);
/* GstDeviceMonitor (and so gst-device-monitor-1.0) only uses providers
 * ranked above GST_RANK_NONE; MARGINAL keeps it out of the way of real
 * audio and video providers. */
GST_DEVICE_PROVIDER_REGISTER_DEFINE (ivshmemdeviceprovider,
    "ivshmemdeviceprovider", GST_RANK_MARGINAL,
    GST_TYPE_IVSHMEM_DEVICE_PROVIDER);

/* "64 MiB", "1 GiB", "200 KiB", "1000 bytes" */
static gchar *
format_size (guint64 size)
{
  if (size >= (G_GUINT64_CONSTANT (1) << 30) && size % (1u << 30) == 0)
    return g_strdup_printf ("%" G_GUINT64_FORMAT " GiB", size >> 30);
  if (size >= (1u << 20) && size % (1u << 20) == 0)
    return g_strdup_printf ("%" G_GUINT64_FORMAT " MiB", size >> 20);
  if (size >= 1024 && size % 1024 == 0)
    return g_strdup_printf ("%" G_GUINT64_FORMAT " KiB", size >> 10);
  return g_strdup_printf ("%" G_GUINT64_FORMAT " bytes", size);
}


/* Liveness from what an earlier probe saw: a heartbeat that has not moved
 * for WATCH_MAX_NS is dead at once. Anything else is watched now: that it
 * moved since an earlier probe does not say that it still moves. */
static void
liveness_from_history (GstIvshmemDeviceProvider * self, Look * look,
    GstClockTime now)
{
  IvshmInspection *insp = look->insp;
  Seen *seen;

  if (insp == NULL || insp->producer_alive != IVSHM_LIVENESS_UNKNOWN)
    return;
  GST_OBJECT_LOCK (self);
  seen = g_hash_table_lookup (self->seen, look->path);
  if (seen && seen->session == insp->h.session_id
      && seen->heartbeat == insp->h.producer_heartbeat
      && now - seen->changed >= WATCH_MAX_NS)
    insp->producer_alive = IVSHM_LIVENESS_DEAD;
  GST_OBJECT_UNLOCK (self);
  look->watch = insp->producer_alive == IVSHM_LIVENESS_UNKNOWN;
}

/* Watches the producers of every region that needs it at once, until each
 * moved or the window passed: twice ivshmem-info's (5 advertised heartbeat
 * periods, at least 500 ms, at most WATCH_MAX_NS), so that a producer a
 * busy machine schedules late does not look dead. A live producer moves
 * within a period (100 ms by default): only dead ones cost the window,
 * 500 ms for all of them together by default. */
static void
watch_producers (Look * looks, guint n)
{
  GstClockTime start = g_get_monotonic_time () * GST_USECOND, now;
  guint64 window = 0;
  gboolean pending;
  guint i;

  for (i = 0; i < n; i++)
    if (looks[i].watch)
      window = MAX (window, 2 * ivshm_inspect_default_window (looks[i].insp));
  if (window == 0)
    return;
  window = MIN (window, WATCH_MAX_NS);
  do {
    g_usleep (WATCH_STEP_US);
    now = g_get_monotonic_time () * GST_USECOND;
    pending = FALSE;
    for (i = 0; i < n; i++) {
      if (!looks[i].watch)
        continue;
      look_refresh (&looks[i]);
      ivshm_inspect_watch_step (looks[i].base, looks[i].insp);
      pending |= looks[i].insp->producer_alive == IVSHM_LIVENESS_UNKNOWN;
    }
  } while (pending && now - start < window);
  for (i = 0; i < n; i++)
    if (looks[i].watch)
      ivshm_inspect_watch_finish (looks[i].insp, now - start);
}

/* Remembers what was seen, for the next probe. */
static void
remember (GstIvshmemDeviceProvider * self, const Look * look, GstClockTime now)
{
  const IvshmInspection *insp = look->insp;
  gboolean moved;
  Seen *seen;

  if (insp == NULL || insp->h.producer_state != IVSHM_PRODUCER_ACTIVE
      || insp->status != IVSHM_OK)
    return;
  GST_OBJECT_LOCK (self);
  seen = g_hash_table_lookup (self->seen, look->path);
  if (seen == NULL) {
    seen = g_new0 (Seen, 1);
    g_hash_table_insert (self->seen, g_strdup (look->path), seen);
  }
  /* `changed` is when the heartbeat was last seen to move: it stays put
   * while the heartbeat does, so that a still one is dead at once once
   * WATCH_MAX_NS passed */
  moved = seen->session != insp->h.session_id
      || seen->heartbeat != insp->h.producer_heartbeat;
  if (insp->producer_alive == IVSHM_LIVENESS_ALIVE)
    seen->changed = now;
  else if (moved)
    seen->changed = look->watch ? now - insp->watched_ns : now;
  seen->session = insp->h.session_id;
  seen->heartbeat = insp->h.producer_heartbeat;
  GST_OBJECT_UNLOCK (self);
}

/* Adds the source and the sink device of one region to *list. */
static void
add_region (GList ** list, const Look * look)
{
  const gchar *producer = look_producer (look);
  gchar *size_text = format_size (look->size);
  gchar *name = g_strdup_printf ("IVSHMEM %s (%s)", look->what, size_text);
  GstStructure *props = look->props;
  Media media;
  gchar *caps = look_caps (look, &media);

  gst_structure_set (props, "device.api", G_TYPE_STRING, "ivshmem",
      "size", G_TYPE_UINT64, look->size,
      "ivshmem.producer", G_TYPE_STRING, producer, NULL);
  if (caps)
    gst_structure_set (props, "ivshmem.caps", G_TYPE_STRING, caps, NULL);
  if (look->insp && look->insp->status == IVSHM_OK)
    gst_structure_set (props, "ivshmem.eos", G_TYPE_BOOLEAN,
        ivshm_inspect_sticky_eos (look->insp), "ivshmem.readers", G_TYPE_UINT,
        look->insp->n_active, NULL);
  /* only a live producer says what the region carries */
  if (g_strcmp0 (producer, "active") != 0)
    media = MEDIA_NONE;

  GST_DEBUG ("%s: producer %s, caps %s", name, producer, GST_STR_NULL (caps));
  *list = g_list_append (*list, gst_ivshmem_device_new (name, TRUE, media,
          look->device, props));
  *list = g_list_append (*list, gst_ivshmem_device_new (name, FALSE, media,
          look->device, props));

  g_free (caps);
  g_free (name);
  g_free (size_text);
}

/* The guest side: every IVSHMEM PCI device. */
static void
probe_pci (GArray * looks)
{
  IvshmPciDevice *devs = NULL;
  IvshmError err = { 0 };
  size_t n = 0, i;

  if (ivshm_pci_list (NULL, &devs, &n, &err) != IVSHM_OK) {
    GST_WARNING ("cannot list PCI devices: %s", err.detail);
    return;
  }
  for (i = 0; i < n; i++) {
    gchar *bus_path = g_strdup_printf ("pci-%s", devs[i].location);
    Look look;

    look_open (&look, devs[i].resource_path, devs[i].size, TRUE);
    look.device = g_strdup (devs[i].location);
    look.what = g_strdup (devs[i].location);
    look.props = gst_structure_new ("ivshmem-proplist",
        "device.bus-path", G_TYPE_STRING, bus_path,
        "sysfs.path", G_TYPE_STRING, devs[i].sysfs_path,
        "device.path", G_TYPE_STRING, devs[i].resource_path, NULL);
    g_array_append_val (looks, look);
    g_free (bus_path);
  }
  free (devs);
}

#ifdef G_OS_WIN32
/* Windows is a guest only: there are no host-side files to list. */
static void
probe_shm (GArray * looks)
{
}
#else
/* The host side: regular files in /dev/shm that start with the magic, in
 * name order. Reads 64 KiB of at most SHM_MAX_FILES files, nothing else. */
static void
probe_shm (GArray * looks)
{
  GDir *dir = g_dir_open (SHM_DIR, 0, NULL);
  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
  const gchar *entry;
  guint i;

  if (dir == NULL)
    return;
  while ((entry = g_dir_read_name (dir)) != NULL && names->len < SHM_MAX_FILES)
    g_ptr_array_add (names, g_build_filename (SHM_DIR, entry, NULL));
  g_dir_close (dir);
  /* a stable order, whatever readdir gives */
  g_ptr_array_sort (names, (GCompareFunc) g_strcmp0);

  for (i = 0; i < names->len; i++) {
    const gchar *path = g_ptr_array_index (names, i);
    struct stat sb;
    Look look;

    if (lstat (path, &sb) != 0 || !S_ISREG (sb.st_mode)
        || (guint64) sb.st_size < IVSHM_REGION_MIN_SIZE)
      continue;
    look_open (&look, path, (guint64) sb.st_size, FALSE);
    if (!look_is_region (&look)) {
      look_close (&look);
      continue;
    }
    look.device = g_strdup (path);
    look.what = g_strdup (path);
    look.props = gst_structure_new ("ivshmem-proplist",
        "device.path", G_TYPE_STRING, path, NULL);
    g_array_append_val (looks, look);
  }
  g_ptr_array_free (names, TRUE);
}
#endif /* G_OS_WIN32 */

static GList *
gst_ivshmem_device_provider_probe (GstDeviceProvider * provider)
{
  GstIvshmemDeviceProvider *self = GST_IVSHMEM_DEVICE_PROVIDER (provider);
  GArray *looks = g_array_new (FALSE, FALSE, sizeof (Look));
  GstClockTime now = g_get_monotonic_time () * GST_USECOND;
  GList *list = NULL;
  guint i;

  probe_pci (looks);
  probe_shm (looks);

  for (i = 0; i < looks->len; i++)
    liveness_from_history (self, &g_array_index (looks, Look, i), now);
  watch_producers ((Look *) looks->data, looks->len);

  now = g_get_monotonic_time () * GST_USECOND;
  for (i = 0; i < looks->len; i++) {
    Look *look = &g_array_index (looks, Look, i);

    remember (self, look, now);
    add_region (&list, look);
    look_close (look);
  }
  g_array_free (looks, TRUE);
  return list;
}

/* ---- monitoring: start/stop -------------------------------------------- */

/* The device of the same region and role in list, or NULL. */
static GstDevice *
find_same (GList * list, GstDevice * device)
{
  GstIvshmemDevice *d = GST_IVSHMEM_DEVICE (device);
  GList *l;

  for (l = list; l; l = l->next) {
    GstIvshmemDevice *o = l->data;
    if (o->factory == d->factory && g_strcmp0 (o->device, d->device) == 0)
      return l->data;
  }
  return NULL;
}

static gboolean
device_equal (GstDevice * a, GstDevice * b)
{
  gchar *ca = gst_device_get_device_class (a);
  gchar *cb = gst_device_get_device_class (b);
  GstStructure *pa = gst_device_get_properties (a);
  GstStructure *pb = gst_device_get_properties (b);
  gboolean equal = g_strcmp0 (ca, cb) == 0 && gst_structure_is_equal (pa, pb);

  g_free (ca);
  g_free (cb);
  gst_structure_free (pa);
  gst_structure_free (pb);
  return equal;
}

/* Tells the monitor what changed between the devices it has and a new
 * probe: regions that appeared, went away, or changed (producer state,
 * caps, class). The list is copied under the object lock, not with
 * gst_device_provider_get_devices(): that takes the start lock, which
 * gst_device_provider_stop() holds while it waits for this thread. */
static void
publish_changes (GstDeviceProvider * provider, GList * now)
{
  GList *before = NULL, *l;

  GST_OBJECT_LOCK (provider);
  for (l = provider->devices; l; l = l->next)
    before = g_list_prepend (before, gst_object_ref (l->data));
  GST_OBJECT_UNLOCK (provider);

  /* gone first: the loop below hands the new devices over */
  for (l = before; l; l = l->next)
    if (find_same (now, l->data) == NULL)
      gst_device_provider_device_remove (provider, l->data);
  for (l = now; l; l = l->next) {
    GstDevice *dev = l->data, *old = find_same (before, dev);

    if (old == NULL)
      gst_device_provider_device_add (provider, dev);
    else if (!device_equal (old, dev))
      gst_device_provider_device_changed (provider, dev, old);
    else
      gst_object_unref (gst_object_ref_sink (dev));
  }
  g_list_free_full (before, gst_object_unref);
  g_list_free (now);
}

static gpointer
monitor_thread (gpointer data)
{
  GstIvshmemDeviceProvider *self = data;
  gint64 deadline;

  g_mutex_lock (&self->lock);
  while (!self->stopping) {
    deadline = g_get_monotonic_time () + MONITOR_INTERVAL_US;
    while (!self->stopping && g_cond_wait_until (&self->cond, &self->lock,
            deadline));
    if (self->stopping)
      break;
    g_mutex_unlock (&self->lock);
    publish_changes (GST_DEVICE_PROVIDER (self),
        gst_ivshmem_device_provider_probe (GST_DEVICE_PROVIDER (self)));
    g_mutex_lock (&self->lock);
  }
  g_mutex_unlock (&self->lock);
  return NULL;
}

/* Probes once, then watches: a thread probes again every second and
 * reports regions that appear or go away and producers that start, stop
 * or die (gst-device-monitor-1.0 -f). */
static gboolean
gst_ivshmem_device_provider_start (GstDeviceProvider * provider)
{
  GstIvshmemDeviceProvider *self = GST_IVSHMEM_DEVICE_PROVIDER (provider);
  GList *devices = gst_ivshmem_device_provider_probe (provider), *l;
  GError *error = NULL;

  for (l = devices; l; l = l->next)
    gst_device_provider_device_add (provider, l->data);
  g_list_free (devices);

  self->stopping = FALSE;
  self->thread = g_thread_try_new ("ivshmem-monitor", monitor_thread, self,
      &error);
  if (self->thread == NULL) {
    GST_WARNING_OBJECT (self, "cannot start the monitoring thread: %s",
        error->message);
    g_clear_error (&error);
    return FALSE;
  }
  return TRUE;
}

/* The base class drops the devices after this (its bus is flushing by
 * then, so what the thread posts meanwhile goes nowhere). */
static void
gst_ivshmem_device_provider_stop (GstDeviceProvider * provider)
{
  GstIvshmemDeviceProvider *self = GST_IVSHMEM_DEVICE_PROVIDER (provider);

  g_mutex_lock (&self->lock);
  self->stopping = TRUE;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
  if (self->thread)
    g_thread_join (self->thread);
  self->thread = NULL;
}

static void
gst_ivshmem_device_provider_finalize (GObject * object)
{
  GstIvshmemDeviceProvider *self = GST_IVSHMEM_DEVICE_PROVIDER (object);

  g_hash_table_unref (self->seen);
  g_mutex_clear (&self->lock);
  g_cond_clear (&self->cond);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_ivshmem_device_provider_class_init (GstIvshmemDeviceProviderClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstDeviceProviderClass *dm_class = GST_DEVICE_PROVIDER_CLASS (klass);

  /* GStreamer 1.22 has no GST_DEVICE_PROVIDER_REGISTER_DEFINE_WITH_CODE:
   * the debug category is set up with the class */
  GST_DEBUG_CATEGORY_INIT (gst_ivshmem_device_provider_debug,
      "ivshmemdeviceprovider", 0, "IVSHMEM device provider");

  gobject_class->finalize = gst_ivshmem_device_provider_finalize;
  dm_class->probe = gst_ivshmem_device_provider_probe;
  dm_class->start = gst_ivshmem_device_provider_start;
  dm_class->stop = gst_ivshmem_device_provider_stop;

  /* every word a device's class may have: a monitor only asks providers
   * whose classes hold all the words of its filter */
  gst_device_provider_class_set_static_metadata (dm_class,
      "IVSHMEM Device Provider", "Source/Sink/Audio/Video/IVSHMEM",
      "Lists IVSHMEM shared memory regions: PCI devices in a guest, "
      "formatted /dev/shm regions on the host", "gst-ivshmem developers");
}

static void
gst_ivshmem_device_provider_init (GstIvshmemDeviceProvider * self)
{
  self->seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_mutex_init (&self->lock);
  g_cond_init (&self->cond);
}
