/* gst-ivshmem: what a region holds, for the device provider
 * SPDX-License-Identifier: MIT
 *
 * A read-only look through the core's inspection API (ivshmem-inspect.h):
 * no parser of the header or the sticky area of its own.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstivshmemregionlook.h"

#include <string.h>
#ifndef G_OS_WIN32
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

GST_DEBUG_CATEGORY_EXTERN (gst_ivshmem_device_provider_debug);
#define GST_CAT_DEFAULT gst_ivshmem_device_provider_debug

/* The longest caps string shown in ivshmem.caps. */
#define CAPS_MAX_LEN 4096

#ifdef G_OS_WIN32
/* A Windows guest maps a device only through the driver, which allows one
 * mapping per device in the whole guest: a probe must not take it from an
 * element (or fail because an element holds it). Nothing is read: the
 * producer stays `unknown` and there are no caps; ivshmem-info shows them. */
void
look_open (Look * look, const gchar * path, guint64 size, gboolean map)
{
  memset (look, 0, sizeof *look);
  look->path = g_strdup (path);
  look->size = size;
  look->fd = -1;
}

void
look_refresh (Look * look)
{
}

static void
look_release (Look * look)
{
}
#else
/* Reads the header, slots and sticky area of a region (read-only: a
 * private copy of a host file, a PROT_READ mapping of a PCI BAR, whose
 * sysfs file can only be mapped) and inspects them. Never writes, never
 * attaches as a reader. */
void
look_open (Look * look, const gchar * path, guint64 size, gboolean map)
{
  struct stat sb;
  void *base;
  int fd;

  memset (look, 0, sizeof *look);
  look->path = g_strdup (path);
  look->size = size;
  look->fd = -1;

  fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    GST_DEBUG ("cannot open %s: %s", path, g_strerror (errno));
    return;
  }
  /* a file too small for the header would SIGBUS when touched */
  if (fstat (fd, &sb) != 0 || !S_ISREG (sb.st_mode)
      || (guint64) sb.st_size < IVSHM_INSPECT_SIZE) {
    GST_DEBUG ("%s is not a region", path);
    close (fd);
    return;
  }
  if (map) {
    base = mmap (NULL, IVSHM_INSPECT_SIZE, PROT_READ, MAP_SHARED, fd, 0);
    close (fd);
    if (base == MAP_FAILED) {
      GST_DEBUG ("cannot map %s: %s", path, g_strerror (errno));
      return;
    }
  } else {
    base = g_malloc (IVSHM_INSPECT_SIZE);
    if (!ivshm_inspect_read_file (fd, base)) {
      GST_DEBUG ("cannot read %s: %s", path, g_strerror (errno));
      g_free (base);
      close (fd);
      return;
    }
    look->fd = fd;
  }
  look->base = base;
  look->insp = g_new (IvshmInspection, 1);
  /* only the first 64 KiB are read, whatever the region's size */
  ivshm_inspect (look->base, size, look->insp);
}

/* For watching: the header and slots again (a copy is not live). */
void
look_refresh (Look * look)
{
  if (look->fd >= 0 && !ivshm_inspect_reread_file (look->fd, look->base))
    GST_DEBUG ("cannot read %s again", look->path);
}

/* Drops the copy or the mapping of the head. */
static void
look_release (Look * look)
{
  if (look->fd >= 0) {
    g_free (look->base);
    close (look->fd);
  } else if (look->base) {
    munmap (look->base, IVSHM_INSPECT_SIZE);
  }
}
#endif /* G_OS_WIN32 */

void
look_close (Look * look)
{
  if (look->insp) {
    ivshm_inspection_clear (look->insp);
    g_free (look->insp);
  }
  look_release (look);
  g_free (look->path);
  g_free (look->device);
  g_free (look->what);
  if (look->props)
    gst_structure_free (look->props);
}

/* Did the magic match (a region of this protocol, readable or not)? */
gboolean
look_is_region (const Look * look)
{
  return look->insp && (look->insp->status == IVSHM_OK
      || look->insp->status == IVSHM_ERR_VERSION
      || look->insp->status == IVSHM_ERR_CORRUPT);
}

const gchar *
look_producer (const Look * look)
{
  const IvshmInspection *insp = look->insp;

  if (insp == NULL || insp->status == IVSHM_ERR_VERSION
      || insp->status == IVSHM_ERR_TOO_SMALL)
    return "unknown";
  if (insp->status == IVSHM_ERR_NO_PRODUCER
      || insp->status == IVSHM_ERR_BAD_MAGIC)
    return "none";
  switch (insp->h.producer_state) {
    case IVSHM_PRODUCER_ACTIVE:
      return insp->producer_alive == IVSHM_LIVENESS_DEAD ? "dead" : "active";
    case IVSHM_PRODUCER_CLOSED:
      return "closed";
    case IVSHM_PRODUCER_NONE:
      return "none";
    default:
      return "unknown";
  }
}

/* The caps of the sticky records as a validated caps string, or NULL. The
 * snapshot is a private copy, but of what a peer wrote: only text that
 * is UTF-8 and parses as caps is shown. */
gchar *
look_caps (const Look * look, Media * media)
{
  IvshmStickyRecord rec;
  const gchar *text, *name;
  gsize n;
  bool nul;
  GstCaps *caps;
  gchar *copy;

  *media = MEDIA_NONE;
  if (look->insp == NULL || look->insp->status != IVSHM_OK
      || !ivshm_inspect_sticky_find (look->insp, IVSHM_RECORD_CAPS, 0, &rec))
    return NULL;
  text = ivshm_sticky_record_text (&rec, &n, &nul);
  if (!nul || n == 0 || n >= CAPS_MAX_LEN || !g_utf8_validate (text, n, NULL))
    return NULL;
  caps = gst_caps_from_string (text);
  if (caps == NULL)
    return NULL;
  if (gst_caps_get_size (caps) > 0 && !gst_caps_is_any (caps)) {
    name = gst_structure_get_name (gst_caps_get_structure (caps, 0));
    if (g_str_has_prefix (name, "video/") || g_str_has_prefix (name, "image/"))
      *media = MEDIA_VIDEO;
    else if (g_str_has_prefix (name, "audio/"))
      *media = MEDIA_AUDIO;
  }
  gst_caps_unref (caps);
  copy = g_strndup (text, n);
  return copy;
}
