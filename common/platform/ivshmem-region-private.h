/* gst-ivshmem: the POSIX region back end, shared by its four files
 * SPDX-License-Identifier: MIT
 *
 * Not installed, not for the elements. ivshm_region_open() (ivshmem-region.c)
 * looks at the device string and hands over to one of two ways in:
 *  - ivshmem-region-host.c: a host file (/dev/shm/NAME), created and sized
 *    on demand, guarded against SIGBUS (ivshmem-guard.c);
 *  - ivshmem-region-pci.c: a guest's BAR2 through sysfs resource2(_wc),
 *    after finding the device (ivshmem-pci.c).
 * Both build the same IvshmRegion with ivshmem-region-map.c, which calls
 * neither. Windows has its own back end (ivshmem-region-win32.c).
 */
#ifndef IVSHMEM_REGION_PRIVATE_H
#define IVSHMEM_REGION_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ivshmem-private.h"
#include "ivshmem-region.h"

struct IvshmRegion
{
  void *data;
  uint64_t size;
  IvshmRegionKind kind;
  int created;
  char *path;
  char location[IVSHM_PCI_ADDR_STRLEN];
  /* a host file: kept open to say what happened to it if its mapping
   * faults (ivshm_region_lost_error()), and its slot in the SIGBUS guard;
   * -1 for a PCI BAR */
  int fd;
  int guard;
};

/* ---- ivshmem-region-map.c: what both ways in share ---- */

/* A new IvshmRegion for a mapping (fd and guard -1: the caller sets them). */
IvshmStatus ivshm_region_new (void *data, uint64_t size, IvshmRegionKind kind,
    int created, const char *path, const char *location, IvshmRegion ** out,
    IvshmError * err);
/* mmap()s size bytes of fd, shared. IVSHM_ERR_IO with *map_errno set: the
 * mmap() failed and the caller explains; another status: err is set. */
IvshmStatus ivshm_region_map_fd (int fd, uint64_t size, bool read_only,
    const char *path, void **data, int *map_errno, IvshmError * err);

/* "64 MiB", "128 KiB", "1536 bytes": for details. */
const char *ivshm_size_text (uint64_t size, char *buf, size_t buf_size);
/* "60.5 MiB": for sizes that are not round, such as free space. */
const char *ivshm_size_approx (uint64_t size, char *buf, size_t buf_size);
/* The directory of `path` ("/dev/shm"), for messages about its file
 * system. */
const char *ivshm_dir_of (const char *path, char *buf, size_t buf_size);

/* ivshmem-region-host.c: a host file (ivshm_region_open()'s first case) */
IvshmStatus ivshm_region_open_host (const char *path, uint64_t create_size,
    bool read_only, IvshmRegion ** out, IvshmError * err);
/* A file system too full for the region: "/dev/shm has 60.0 MiB free; the
 * region /dev/shm/x needs 128 MiB". `missing`: the part of the region not
 * yet backed by memory. */
IvshmStatus ivshm_region_no_space (int fd, const char *path, uint64_t size,
    uint64_t missing, int e, IvshmError * err);

/* ivshmem-region-pci.c: a guest's BAR2; want NULL: the first device */
IvshmStatus ivshm_region_open_pci (const IvshmPciAddr * want,
    const char *sysfs_root, IvshmBarMapping mapping, bool read_only,
    IvshmRegion ** out, IvshmError * err);

#endif /* IVSHMEM_REGION_PRIVATE_H */
