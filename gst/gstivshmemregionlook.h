/* gst-ivshmem: what a region holds, for the device provider
 * SPDX-License-Identifier: MIT
 */
#ifndef __GST_IVSHMEM_REGION_LOOK_H__
#define __GST_IVSHMEM_REGION_LOOK_H__

#include <gst/gst.h>

#include "ivshmem-inspect.h"

G_BEGIN_DECLS

typedef enum
{
  MEDIA_NONE,
  MEDIA_VIDEO,
  MEDIA_AUDIO,
} Media;

/* One region being probed. */
typedef struct
{
  gchar *path;                  /* the file read */
  guint64 size;
  guint8 *base;                 /* the first IVSHM_INSPECT_SIZE bytes: a
                                 * PROT_READ mapping (a PCI BAR) or a
                                 * private copy (a host file); NULL if it
                                 * cannot be read */
  int fd;                       /* a host file, to read again; else -1 */
  IvshmInspection *insp;        /* NULL if base is */
  gboolean watch;               /* liveness still to be watched */
  /* for the devices */
  gchar *device;                /* the element's device property */
  gchar *what;                  /* the display name's part */
  GstStructure *props;
} Look;

/* Reads the header, slots and sticky area of the region in the file at
 * path (size: the region's size) read-only and inspects them: a PROT_READ
 * mapping when map is set (a PCI BAR), else a private copy (a host file,
 * which another process may truncate under a mapping). Never writes,
 * never attaches as a reader. look->insp is NULL if it cannot be read,
 * and always on Windows, where a probe must not map a device (the driver
 * allows one mapping per device, an element's). */
void look_open (Look * look, const gchar * path, guint64 size, gboolean map);

/* For watching: the header and slots again (a copy is not live). */
void look_refresh (Look * look);

void look_close (Look * look);

/* Did the magic match (a region of this protocol, readable or not)? */
gboolean look_is_region (const Look * look);

/* "active", "dead", "closed", "none" or "unknown" */
const gchar *look_producer (const Look * look);

/* The caps of the sticky records, validated, and what they carry. */
gchar *look_caps (const Look * look, Media * media);

G_END_DECLS

#endif /* __GST_IVSHMEM_REGION_LOOK_H__ */
