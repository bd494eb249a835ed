/* gst-ivshmem: what the POSIX region back end's two ways in share
 * SPDX-License-Identifier: MIT
 *
 * The building blocks of a host file (ivshmem-region-host.c) and a
 * guest's PCI BAR (ivshmem-region-pci.c): the region object for a
 * mapping, mmap() of a file, and sizes and directories as messages say
 * them. It calls nothing else of the back end, so that the front
 * (ivshmem-region.c) calls the ways in and they call down to this file,
 * never back (ivshmem-region-private.h is the seam).
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

const char *
ivshm_size_text (uint64_t size, char *buf, size_t buf_size)
{
  if (size >= (UINT64_C (1) << 30) && size % (UINT64_C (1) << 30) == 0)
    snprintf (buf, buf_size, "%" PRIu64 " GiB", size >> 30);
  else if (size >= (UINT64_C (1) << 20) && size % (UINT64_C (1) << 20) == 0)
    snprintf (buf, buf_size, "%" PRIu64 " MiB", size >> 20);
  else if (size >= 1024 && size % 1024 == 0)
    snprintf (buf, buf_size, "%" PRIu64 " KiB", size >> 10);
  else
    snprintf (buf, buf_size, "%" PRIu64 " bytes", size);
  return buf;
}

const char *
ivshm_size_approx (uint64_t size, char *buf, size_t buf_size)
{
  if (size >= (UINT64_C (1) << 30))
    snprintf (buf, buf_size, "%.1f GiB", (double) size / (1 << 30));
  else if (size >= (UINT64_C (1) << 20))
    snprintf (buf, buf_size, "%.1f MiB", (double) size / (1 << 20));
  else if (size >= 1024)
    snprintf (buf, buf_size, "%.1f KiB", (double) size / 1024);
  else
    snprintf (buf, buf_size, "%" PRIu64 " bytes", size);
  return buf;
}

const char *
ivshm_dir_of (const char *path, char *buf, size_t buf_size)
{
  const char *slash = strrchr (path, '/');
  size_t len = slash == NULL ? 0 : (size_t) (slash - path);

  if (slash == path)
    len = 1;
  if (len == 0)
    snprintf (buf, buf_size, ".");
  else
    snprintf (buf, buf_size, "%.*s", (int) (len < buf_size ? len :
            buf_size - 1), path);
  return buf;
}

IvshmStatus
ivshm_region_new (void *data, uint64_t size, IvshmRegionKind kind, int created,
    const char *path, const char *location, IvshmRegion ** out,
    IvshmError * err)
{
  IvshmRegion *r = calloc (1, sizeof *r);

  if (r == NULL || (r->path = strdup (path)) == NULL) {
    free (r);
    return ivshm_error_set (err, IVSHM_ERR_NO_MEMORY, ENOMEM, "out of memory");
  }
  r->data = data;
  r->size = size;
  r->kind = kind;
  r->created = created;
  r->fd = -1;
  r->guard = -1;
  snprintf (r->location, sizeof r->location, "%s", location);
  *out = r;
  return IVSHM_OK;
}

IvshmStatus
ivshm_region_map_fd (int fd, uint64_t size, bool read_only, const char *path,
    void **data, int *map_errno, IvshmError * err)
{
  void *p;

  if (size > SIZE_MAX)
    return ivshm_error_set (err, IVSHM_ERR_UNSUPPORTED, EOVERFLOW,
        "%s is %" PRIu64 " bytes, more than this process can map", path, size);
  p = mmap (NULL, (size_t) size, read_only ? PROT_READ : PROT_READ | PROT_WRITE,
      MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    *map_errno = errno;
    return IVSHM_ERR_IO;        /* the caller explains */
  }
  *data = p;
  return IVSHM_OK;
}
