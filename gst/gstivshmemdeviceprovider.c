/* gst-ivshmem: ivshmemdeviceprovider
 * SPDX-License-Identifier: MIT
 */
/**
 * SECTION:provider-ivshmemdeviceprovider
 * @title: ivshmemdeviceprovider
 * @see_also: #GstIvshmemSrc, #GstIvshmemSink, #GstDeviceMonitor
 *
 * Lists the IVSHMEM regions this system can reach, for #GstDeviceMonitor
 * and `gst-device-monitor-1.0`. It only probes; it does not watch for
 * devices coming and going.
 *
 * - Inside a guest, each IVSHMEM PCI device (1af4:1110) found in sysfs.
 * - On the host, each regular file in /dev/shm that starts with this
 *   protocol's magic: a region an #GstIvshmemSink has formatted.
 *
 * Every region is offered twice, once as "Source/IVSHMEM" (its element is
 * an ivshmemsrc) and once as "Sink/IVSHMEM" (an ivshmemsink), since the
 * same memory can carry a stream either way. Both set
 * #GstIvshmemSrc:device / #GstIvshmemSink:device: the PCI address for a
 * guest device, the path for a host region. The caps are ANY: the region
 * carries whatever its producer writes.
 *
 * Properties of each device:
 *
 * - `device.api`: `ivshmem`
 * - `device.bus-path`: `pci-0000:00:04.0` (PCI devices)
 * - `sysfs.path`: `/sys/bus/pci/devices/0000:00:04.0` (PCI devices)
 * - `device.path`: the file that is mapped (`resource2`, or `/dev/shm/NAME`)
 * - `size`: the region size in bytes (guint64)
 * - `ivshmem.producer`: `active` (a producer is streaming), `closed` (it
 *   stopped cleanly), `none` (the region was never formatted), or
 *   `unknown` (the region could not be read, usually for lack of
 *   permission: mapping `resource2` needs root or a udev rule)
 * - `ivshmem.caps`: the caps of the current stream, when the producer has
 *   sent them
 *
 * ## Example
 * |[
 * gst-device-monitor-1.0 Source/IVSHMEM
 * ]| Inside a guest, as root: lists each IVSHMEM device with a
 * `gst-launch-1.0` line for it.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstivshmemdeviceprovider.h"
#include "gstivshmemelements.h"

#include "ivshmem-layout.h"
#include "ivshmem-region.h"

#include <stdatomic.h>
#include <string.h>
#ifndef G_OS_WIN32
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

GST_DEBUG_CATEGORY_STATIC (gst_ivshmem_device_provider_debug);
#define GST_CAT_DEFAULT gst_ivshmem_device_provider_debug

/* Where QEMU's memory-backend-file regions usually live on the host. */
#define SHM_DIR "/dev/shm"
/* Probing reads a little of each file there; stop after this many. */
#define SHM_MAX_FILES 512
/* The longest caps string shown in ivshmem.caps. */
#define CAPS_MAX_LEN 4096

/* ---- what a region holds: a read-only look at its header ---------------- */

typedef struct
{
  const gchar *producer;        /* "active", "closed", "none", "unknown" */
  gchar *caps;                  /* validated caps string, or NULL */
} RegionState;

#ifdef G_OS_WIN32
/* A Windows guest maps a device only through the driver, which allows one
 * mapping per device in the whole guest: a probe must not take it from an
 * element (or fail because an element holds it). The state stays unknown;
 * ivshmem-info shows it. */
static void
region_state_read (const gchar * path, RegionState * st)
{
  st->producer = "unknown";
  st->caps = NULL;
}
#else
/* Finds the CAPS record in a private copy of the sticky records and
 * returns it as a validated caps string, or NULL. The copy came from
 * memory a peer writes: every length is checked against what is left. */
static gchar *
caps_from_sticky (const guint8 * recs, guint32 len)
{
  guint32 off = 0;

  while (len - off >= sizeof (IvshmRecordHeader)) {
    IvshmRecordHeader h;
    guint64 rec_len;
    const gchar *payload;
    gsize n;
    GstCaps *caps;

    memcpy (&h, recs + off, sizeof h);
    if (h.payload_len > len - off - sizeof h)
      return NULL;
    rec_len = ivshm_record_len (h.payload_len);
    if (h.type != IVSHM_RECORD_CAPS) {
      off += (guint32) rec_len;
      continue;
    }

    payload = (const gchar *) recs + off + sizeof h;
    n = strnlen (payload, MIN (h.payload_len, CAPS_MAX_LEN));
    if (n == 0 || n >= h.payload_len || n >= CAPS_MAX_LEN
        || !g_utf8_validate (payload, n, NULL))
      return NULL;
    /* only show text that parses as caps */
    caps = gst_caps_from_string (payload);
    if (caps == NULL)
      return NULL;
    gst_caps_unref (caps);
    return g_strndup (payload, n);
  }
  return NULL;
}

/* Takes a consistent copy of the sticky area under its sequence lock
 * (PROTOCOL.md section 6) and returns the caps in it, or NULL. */
static gchar *
read_sticky_caps (guint8 * base)
{
  IvshmStickyHeader *sh = (IvshmStickyHeader *) (base + IVSHM_STICKY_OFFSET);
  const guint8 *src = (const guint8 *) sh + sizeof (IvshmStickyHeader);
  const guint32 cap = IVSHM_STICKY_SIZE - sizeof (IvshmStickyHeader);
  guint8 *copy = g_malloc (cap);
  gchar *caps = NULL;
  gint tries;

  for (tries = 0; tries < 64; tries++) {
    guint64 s1, s2;
    guint32 len;

    s1 = atomic_load_explicit (&sh->seq, memory_order_acquire);
    if (s1 & 1) {
      g_usleep (100);
      continue;
    }
    len = atomic_load_explicit (&sh->len, memory_order_relaxed);
    if (len > cap || len % IVSHM_RECORD_ALIGN)
      break;
    memcpy (copy, src, len);
    atomic_thread_fence (memory_order_acquire);
    s2 = atomic_load_explicit (&sh->seq, memory_order_relaxed);
    if (s1 != s2)
      continue;
    caps = caps_from_sticky (copy, len);
    break;
  }
  g_free (copy);
  return caps;
}

/* Maps the first 64 KiB of a region read-only (header, reader slots and
 * sticky area) and reads what a user wants to know: is a producer there,
 * and what does it send. Never writes, never attaches as a reader. */
static void
region_state_read (const gchar * path, RegionState * st)
{
  struct stat sb;
  guint8 *base;
  IvshmHeader *hdr;
  guint64 magic;
  guint32 major, state;
  int fd;

  st->producer = "unknown";
  st->caps = NULL;

  fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    GST_DEBUG ("cannot open %s: %s", path, g_strerror (errno));
    return;
  }
  /* a file too small for the header would SIGBUS when touched */
  if (fstat (fd, &sb) != 0 || !S_ISREG (sb.st_mode)
      || (guint64) sb.st_size < IVSHM_RING_OFFSET) {
    GST_DEBUG ("%s is not a region", path);
    close (fd);
    return;
  }
  base = mmap (NULL, IVSHM_RING_OFFSET, PROT_READ, MAP_SHARED, fd, 0);
  close (fd);
  if (base == MAP_FAILED) {
    GST_DEBUG ("cannot map %s: %s", path, g_strerror (errno));
    return;
  }

  /* each shared value is read once, into a local */
  hdr = (IvshmHeader *) base;
  magic = atomic_load_explicit (&hdr->magic, memory_order_acquire);
  major = atomic_load_explicit (&hdr->version_major, memory_order_relaxed);
  state = atomic_load_explicit (&hdr->producer_state, memory_order_relaxed);

  if (magic != IVSHM_MAGIC) {
    st->producer = "none";
  } else if (major != IVSHM_VERSION_MAJOR) {
    GST_DEBUG ("%s: protocol version %u, not %u", path, major,
        IVSHM_VERSION_MAJOR);
  } else if (state == IVSHM_PRODUCER_ACTIVE || state == IVSHM_PRODUCER_CLOSED) {
    st->producer = state == IVSHM_PRODUCER_ACTIVE ? "active" : "closed";
    st->caps = read_sticky_caps (base);
  } else if (state == IVSHM_PRODUCER_NONE) {
    st->producer = "none";
  }

  munmap (base, IVSHM_RING_OFFSET);
}
#endif /* G_OS_WIN32 */

/* ---- GstIvshmemDevice -------------------------------------------------- */

struct _GstIvshmemDevice
{
  GstDevice parent;

  /* constant after construction */
  const gchar *factory;         /* "ivshmemsrc" or "ivshmemsink" */
  gchar *device;                /* value for the element's device property */
};

G_DEFINE_TYPE (GstIvshmemDevice, gst_ivshmem_device, GST_TYPE_DEVICE);

static GstElement *
gst_ivshmem_device_create_element (GstDevice * device, const gchar * name)
{
  GstIvshmemDevice *self = GST_IVSHMEM_DEVICE (device);
  GstElement *element = gst_element_factory_make (self->factory, name);

  if (element)
    g_object_set (element, "device", self->device, NULL);
  return element;
}

static gboolean
gst_ivshmem_device_reconfigure_element (GstDevice * device,
    GstElement * element)
{
  GstIvshmemDevice *self = GST_IVSHMEM_DEVICE (device);
  GstElementFactory *factory = gst_element_get_factory (element);
  GstState state;

  if (factory == NULL
      || g_strcmp0 (GST_OBJECT_NAME (factory), self->factory) != 0)
    return FALSE;

  /* device only takes effect when the element opens the region */
  GST_OBJECT_LOCK (element);
  state = GST_STATE (element);
  GST_OBJECT_UNLOCK (element);
  if (state > GST_STATE_READY) {
    GST_DEBUG_OBJECT (device, "%s is running; stop it first",
        GST_OBJECT_NAME (element));
    return FALSE;
  }

  g_object_set (element, "device", self->device, NULL);
  return TRUE;
}

static void
gst_ivshmem_device_finalize (GObject * object)
{
  GstIvshmemDevice *self = GST_IVSHMEM_DEVICE (object);

  g_free (self->device);
  G_OBJECT_CLASS (gst_ivshmem_device_parent_class)->finalize (object);
}

static void
gst_ivshmem_device_class_init (GstIvshmemDeviceClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstDeviceClass *device_class = GST_DEVICE_CLASS (klass);

  gobject_class->finalize = gst_ivshmem_device_finalize;
  device_class->create_element = gst_ivshmem_device_create_element;
  device_class->reconfigure_element = gst_ivshmem_device_reconfigure_element;
}

static void
gst_ivshmem_device_init (GstIvshmemDevice * self)
{
}

/* One GstDevice for one role of a region; props is copied. */
static GstDevice *
gst_ivshmem_device_new (const gchar * display_name, gboolean is_src,
    const gchar * device, const GstStructure * props)
{
  GstIvshmemDevice *self;
  GstCaps *caps = gst_caps_new_any ();
  GstStructure *p = gst_structure_copy (props);

  self = g_object_new (GST_TYPE_IVSHMEM_DEVICE,
      "display-name", display_name,
      "device-class", is_src ? "Source/IVSHMEM" : "Sink/IVSHMEM",
      "caps", caps, "properties", p, NULL);
  self->factory = is_src ? "ivshmemsrc" : "ivshmemsink";
  self->device = g_strdup (device);

  gst_caps_unref (caps);
  gst_structure_free (p);
  return GST_DEVICE (self);
}

/* ---- GstIvshmemDeviceProvider ------------------------------------------ */

struct _GstIvshmemDeviceProvider
{
  GstDeviceProvider parent;
};

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

/* Adds the source and the sink device of one region to *list. */
static void
add_region (GList ** list, const gchar * what, const gchar * device,
    guint64 size, GstStructure * props)
{
  RegionState st;
  gchar *size_text = format_size (size);
  gchar *name = g_strdup_printf ("IVSHMEM %s (%s)", what, size_text);

  region_state_read (gst_structure_get_string (props, "device.path"), &st);
  gst_structure_set (props, "device.api", G_TYPE_STRING, "ivshmem",
      "size", G_TYPE_UINT64, size,
      "ivshmem.producer", G_TYPE_STRING, st.producer, NULL);
  if (st.caps)
    gst_structure_set (props, "ivshmem.caps", G_TYPE_STRING, st.caps, NULL);

  GST_DEBUG ("%s: producer %s, caps %s", name, st.producer,
      GST_STR_NULL (st.caps));
  *list = g_list_append (*list, gst_ivshmem_device_new (name, TRUE, device,
          props));
  *list = g_list_append (*list, gst_ivshmem_device_new (name, FALSE, device,
          props));

  g_free (st.caps);
  g_free (name);
  g_free (size_text);
  gst_structure_free (props);
}

/* The guest side: every IVSHMEM PCI device. */
static void
probe_pci (GList ** list)
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
    GstStructure *props = gst_structure_new ("ivshmem-proplist",
        "device.bus-path", G_TYPE_STRING, bus_path,
        "sysfs.path", G_TYPE_STRING, devs[i].sysfs_path,
        "device.path", G_TYPE_STRING, devs[i].resource_path, NULL);

    add_region (list, devs[i].location, devs[i].location, devs[i].size, props);
    g_free (bus_path);
  }
  free (devs);
}

/* The host side: regular files in /dev/shm that start with the magic. Reads
 * 4 KiB of at most SHM_MAX_FILES files, nothing else. */
#ifdef G_OS_WIN32
/* Windows is a guest only: there are no host-side files to list. */
static void
probe_shm (GList ** list)
{
}
#else
static void
probe_shm (GList ** list)
{
  GDir *dir = g_dir_open (SHM_DIR, 0, NULL);
  GPtrArray *found = g_ptr_array_new_with_free_func (g_free);
  const gchar *entry;
  guint seen = 0, i;

  if (dir == NULL)
    return;
  while ((entry = g_dir_read_name (dir)) != NULL && seen < SHM_MAX_FILES) {
    gchar *path = g_build_filename (SHM_DIR, entry, NULL);
    guint8 head[4096];
    guint64 magic;
    struct stat sb;
    int fd;

    seen++;
    fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd >= 0 && fstat (fd, &sb) == 0 && S_ISREG (sb.st_mode)
        && (guint64) sb.st_size >= IVSHM_REGION_MIN
        && pread (fd, head, sizeof head, 0) == (ssize_t) sizeof head) {
      memcpy (&magic, head, sizeof magic);
      if (magic == IVSHM_MAGIC)
        g_ptr_array_add (found, g_strdup (path));
    }
    if (fd >= 0)
      close (fd);
    g_free (path);
  }
  g_dir_close (dir);

  /* a stable order, whatever readdir gives */
  g_ptr_array_sort (found, (GCompareFunc) g_strcmp0);
  for (i = 0; i < found->len; i++) {
    const gchar *path = g_ptr_array_index (found, i);
    struct stat sb;

    if (stat (path, &sb) != 0)
      continue;
    add_region (list, path, path, (guint64) sb.st_size,
        gst_structure_new ("ivshmem-proplist", "device.path", G_TYPE_STRING,
            path, NULL));
  }
  g_ptr_array_free (found, TRUE);
}
#endif /* G_OS_WIN32 */

static GList *
gst_ivshmem_device_provider_probe (GstDeviceProvider * provider)
{
  GList *list = NULL;

  probe_pci (&list);
  probe_shm (&list);
  return list;
}

static void
gst_ivshmem_device_provider_class_init (GstIvshmemDeviceProviderClass * klass)
{
  GstDeviceProviderClass *dm_class = GST_DEVICE_PROVIDER_CLASS (klass);

  /* GStreamer 1.22 has no GST_DEVICE_PROVIDER_REGISTER_DEFINE_WITH_CODE:
   * the debug category is set up with the class */
  GST_DEBUG_CATEGORY_INIT (gst_ivshmem_device_provider_debug,
      "ivshmemdeviceprovider", 0, "IVSHMEM device provider");

  dm_class->probe = gst_ivshmem_device_provider_probe;

  gst_device_provider_class_set_static_metadata (dm_class,
      "IVSHMEM Device Provider", "Source/Sink/IVSHMEM",
      "Lists IVSHMEM shared memory regions: PCI devices in a guest, "
      "formatted /dev/shm regions on the host", "gst-ivshmem developers");
}

static void
gst_ivshmem_device_provider_init (GstIvshmemDeviceProvider * self)
{
}
