/* gst-ivshmem: finding and mapping an IVSHMEM region (POSIX)
 * SPDX-License-Identifier: MIT
 *
 * The front of the POSIX back end: ivshm_region_open() chooses the way in
 * by the device string, a host file (ivshmem-region-host.c) or a guest's
 * PCI BAR (ivshmem-region-pci.c); the getters are here. What both ways
 * share is in ivshmem-region-map.c (ivshmem-region-private.h is the
 * seam).
 */
#include "ivshmem-region-private.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

/* ---- API ---- */

IvshmStatus
ivshm_region_open (const char *device, const IvshmRegionOptions * options,
    IvshmRegion ** region, IvshmError * err)
{
  static const IvshmRegionOptions defaults = { 0, NULL,
    IVSHM_BAR_MAPPING_AUTO
  };
  const char *sysfs_root;
  IvshmPciAddr addr;

  if (region == NULL)
    return ivshm_error_set (err, IVSHM_ERR_INVALID_ARG, 0,
        "ivshm_region_open: region must not be NULL");
  *region = NULL;
  if (options == NULL)
    options = &defaults;

  if (device != NULL && (device[0] == '/' || device[0] == '.'))
    return ivshm_region_open_host (device, options->create_size,
        options->read_only, region, err);

  sysfs_root = options->sysfs_root;
  if (sysfs_root == NULL || sysfs_root[0] == '\0')
    sysfs_root = ivshm_sysfs_root ();

  if (device == NULL || device[0] == '\0')
    return ivshm_region_open_pci (NULL, sysfs_root, options->bar_mapping,
        options->read_only, region, err);
  if (ivshm_pci_addr_parse (device, &addr) == 0)
    return ivshm_region_open_pci (&addr, sysfs_root, options->bar_mapping,
        options->read_only, region, err);

  return ivshm_error_set (err, IVSHM_ERR_INVALID_ARG, 0,
      "\"%s\" is neither a file path (start it with / or ./) nor a PCI "
      "address such as 0000:00:05.0", device);
}

void
ivshm_region_close (IvshmRegion * region)
{
  if (region == NULL)
    return;
  ivshm_guard_remove (region->guard);
  if (region->data != NULL)
    munmap (region->data, (size_t) region->size);
  if (region->fd >= 0)
    close (region->fd);
  free (region->path);
  free (region);
}

void *
ivshm_region_data (const IvshmRegion * region)
{
  return region ? region->data : NULL;
}

uint64_t
ivshm_region_size (const IvshmRegion * region)
{
  return region ? region->size : 0;
}

IvshmRegionKind
ivshm_region_kind (const IvshmRegion * region)
{
  return region ? region->kind : IVSHM_REGION_HOST_FILE;
}

const char *
ivshm_region_path (const IvshmRegion * region)
{
  return region ? region->path : "";
}

const char *
ivshm_region_location (const IvshmRegion * region)
{
  return region ? region->location : "";
}

int
ivshm_region_created (const IvshmRegion * region)
{
  return region ? region->created : 0;
}

const char *
ivshm_system_name (void)
{
#if defined(_WIN32)
  return "Windows";
#elif defined(__linux__)
  return "Linux";
#elif defined(__FreeBSD__)
  return "FreeBSD";
#elif defined(__APPLE__)
  return "Darwin";
#else
  return "unknown";
#endif
}
