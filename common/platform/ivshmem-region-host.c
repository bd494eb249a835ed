/* gst-ivshmem: a region in a host file
 * SPDX-License-Identifier: MIT
 *
 * The file behind QEMU's memory-backend-file (usually /dev/shm/NAME),
 * opened or created (a power of two, reserved with posix_fallocate() so a
 * full /dev/shm is an error now rather than a SIGBUS later), mapped
 * MAP_SHARED and registered with the SIGBUS guard (ivshmem-guard.c). What
 * happened to a file whose mapping was lost is explained here too.
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

static int
is_pow2 (uint64_t v)
{
  return v != 0 && (v & (v - 1)) == 0;
}

static uint64_t
next_pow2 (uint64_t v)
{
  uint64_t p = 1;

  while (p < v && p < (UINT64_C (1) << 63))
    p <<= 1;
  return p;
}

IvshmStatus
ivshm_region_no_space (int fd, const char *path, uint64_t size,
    uint64_t missing, int e, IvshmError * err)
{
  struct statvfs vfs;
  char dir[512], free_text[32], need[32], miss[32];

  ivshm_dir_of (path, dir, sizeof dir);
  ivshm_size_text (size, need, sizeof need);
  if (fstatvfs (fd, &vfs) != 0)
    return ivshm_error_set (err, IVSHM_ERR_IO, e, "%s has no room for the "
        "region %s (%s): %s", dir, path, need, strerror (e));
  ivshm_size_approx ((uint64_t) vfs.f_bavail * vfs.f_frsize, free_text,
      sizeof free_text);
  return ivshm_error_set (err, IVSHM_ERR_IO, e, "%s has %s free; the region "
      "%s needs %s (%s of it not reserved yet): %s. Give the file system "
      "more room (a container's /dev/shm is 64 MiB unless --shm-size says "
      "otherwise; mount -o remount,size=... /dev/shm), or use a smaller "
      "region", dir, free_text, path, need,
      ivshm_size_approx (missing, miss, sizeof miss), strerror (e));
}

/* ---- host file ---- */

static IvshmStatus
host_open_error (const char *path, int e, uint64_t create_size,
    IvshmError * err)
{
  switch (e) {
    case ENOENT:
      if (create_size > 0)
        return ivshm_error_set (err, IVSHM_ERR_NOT_FOUND, e,
            "cannot create %s: its directory does not exist", path);
      return ivshm_error_set (err, IVSHM_ERR_NOT_FOUND, e,
          "%s does not exist: start QEMU with -object memory-backend-file,"
          "id=ivshmem,share=on,mem-path=%s,size=64M -device ivshmem-plain,"
          "memdev=ivshmem (or the libvirt <shmem> equivalent) first, or set "
          "size= on the sink to create it", path, path);
    case EACCES:
    case EPERM:
    case EROFS:
      return ivshm_error_set (err, IVSHM_ERR_PERMISSION, e,
          "cannot open %s for reading and writing: %s (the file must be "
          "readable and writable by this user; QEMU creates it as its own "
          "user, so give both a common group and mode 0660)", path,
          strerror (e));
    case EISDIR:
      return ivshm_error_set (err, IVSHM_ERR_INVALID_ARG, e,
          "%s is a directory, not a shared memory file", path);
    default:
      return ivshm_error_set (err, IVSHM_ERR_IO, e, "cannot open %s: %s",
          path, strerror (e));
  }
}

IvshmStatus
ivshm_region_open_host (const char *path, uint64_t create_size, bool read_only,
    IvshmRegion ** out, IvshmError * err)
{
  IvshmStatus status;
  struct stat st;
  int fd, e, created = 0, raced = 0, map_errno = 0, tries;
  uint64_t size;
  void *data = NULL;
  char human[32], human2[32];
  const struct timespec wait_for_creator = { 0, 2 * 1000 * 1000 };

  fd = open (path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT && create_size > 0 && !read_only) {
    if (!is_pow2 (create_size))
      return ivshm_error_set (err, IVSHM_ERR_NOT_POW2, 0,
          "cannot create %s with %" PRIu64 " bytes: QEMU's ivshmem refuses "
          "a region whose size is not a power of two; use %" PRIu64
          " (%s) instead", path, create_size, next_pow2 (create_size),
          ivshm_size_text (next_pow2 (create_size), human, sizeof human));
    if (create_size < IVSHM_REGION_MIN_SIZE)
      return ivshm_error_set (err, IVSHM_ERR_TOO_SMALL, 0,
          "cannot create %s with %s: the protocol needs at least %s",
          path, ivshm_size_text (create_size, human, sizeof human),
          ivshm_size_text (IVSHM_REGION_MIN_SIZE, human2, sizeof human2));

    fd = open (path, O_RDWR | O_CLOEXEC | O_CREAT | O_EXCL, 0660);
    if (fd >= 0) {
      created = 1;
      /* The documented mode, whatever the umask: QEMU usually runs as
       * another user of the same group. */
      (void) fchmod (fd, 0660);
      /* Reserve the memory now where the file system can (tmpfs can), so a
       * full /dev/shm is an error here rather than a SIGBUS later. */
      e = posix_fallocate (fd, 0, (off_t) create_size);
      if (e == EINVAL || e == EOPNOTSUPP)
        e = ftruncate (fd, (off_t) create_size) < 0 ? errno : 0;
      if (e != 0) {
        if (e == ENOSPC)
          status =
              ivshm_region_no_space (fd, path, create_size, create_size, e,
              err);
        else
          status = ivshm_error_set (err, IVSHM_ERR_IO, e,
              "cannot give %s a size of %s: %s", path,
              ivshm_size_text (create_size, human, sizeof human), strerror (e));
        close (fd);
        unlink (path);
        return status;
      }
    } else if (errno == EEXIST) {
      /* Another process created it between our two open()s: use theirs. */
      raced = 1;
      fd = open (path, O_RDWR | O_CLOEXEC);
    }
  }
  if (fd < 0)
    return host_open_error (path, errno, create_size, err);

  for (tries = 0;; tries++) {
    if (fstat (fd, &st) < 0) {
      e = errno;
      status = ivshm_error_set (err, IVSHM_ERR_IO, e, "cannot stat %s: %s",
          path, strerror (e));
      goto fail;
    }
    /* The process that won the creation race sizes the file right after
     * creating it: give it a moment. */
    if (!raced || st.st_size != 0 || tries == 50)
      break;
    nanosleep (&wait_for_creator, NULL);
  }

  if (!S_ISREG (st.st_mode)) {
    status = ivshm_error_set (err, IVSHM_ERR_INVALID_ARG, 0,
        "%s is not a regular file (a shared memory file such as "
        "/dev/shm/NAME is expected)", path);
    goto fail;
  }
  size = (uint64_t) st.st_size;
  if (size < IVSHM_REGION_MIN_SIZE) {
    if (size == 0)
      status = ivshm_error_set (err, IVSHM_ERR_TOO_SMALL, 0,
          "%s is empty; the protocol needs at least %s", path,
          ivshm_size_text (IVSHM_REGION_MIN_SIZE, human2, sizeof human2));
    else
      status = ivshm_error_set (err, IVSHM_ERR_TOO_SMALL, 0,
          "%s is %s; the protocol needs at least %s", path,
          ivshm_size_text (size, human, sizeof human),
          ivshm_size_text (IVSHM_REGION_MIN_SIZE, human2, sizeof human2));
    goto fail;
  }
#ifdef __linux__
  /* A file someone else made (QEMU, truncate -s) may be sparse: reserve
   * its pages now, so that a file system too small for it (a container's
   * /dev/shm) is an error here rather than a fault later. fallocate(2)
   * with mode 0 only fills holes and never writes to a page that exists
   * (posix_fallocate()'s fallback writes zeros, not on a live region).
   * Where the file system cannot (EOPNOTSUPP), or the file is sealed
   * (EPERM), the guard is left to catch what may come. */
  if (!read_only && !created && fallocate (fd, 0, 0, (off_t) size) != 0
      && errno == ENOSPC) {
    uint64_t have = (uint64_t) st.st_blocks * 512;

    status =
        ivshm_region_no_space (fd, path, size, have < size ? size - have : 0,
        ENOSPC, err);
    goto fail;
  }
#endif

  status =
      ivshm_region_map_fd (fd, size, read_only, path, &data, &map_errno, err);
  if (status != IVSHM_OK) {
    if (map_errno == 0)
      goto fail;
    if (map_errno == EACCES || map_errno == EPERM)
      status = ivshm_error_set (err, IVSHM_ERR_PERMISSION, map_errno,
          "cannot map %s for reading and writing: %s (is it sealed "
          "against writes, or on a read-only or noexec mount?)", path,
          strerror (map_errno));
    else
      status = ivshm_error_set (err, IVSHM_ERR_IO, map_errno,
          "cannot map %s (%s): %s", path,
          ivshm_size_text (size, human, sizeof human), strerror (map_errno));
    goto fail;
  }

  status =
      ivshm_region_new (data, size, IVSHM_REGION_HOST_FILE, created, path, "",
      out, err);
  if (status != IVSHM_OK) {
    munmap (data, (size_t) size);
    goto fail;
  }
  (*out)->fd = fd;
  (*out)->guard = ivshm_guard_add (data, (size_t) size);
  return IVSHM_OK;

fail:
  if (fd >= 0)
    close (fd);
  if (created)
    unlink (path);
  return status;
}

/* ---- a region that was lost ---- */

bool
ivshm_region_lost (const IvshmRegion * region)
{
  return region != NULL && ivshm_guard_faulted (region->guard);
}

bool
ivshm_region_check (IvshmRegion * region)
{
  struct stat st;

  if (region == NULL || region->fd < 0)
    return false;
  if (ivshm_guard_faulted (region->guard))
    return true;
  if (fstat (region->fd, &st) == 0 && (uint64_t) st.st_size < region->size) {
    ivshm_guard_mark (region->guard);
    return ivshm_guard_faulted (region->guard);
  }
  return false;
}

IvshmStatus
ivshm_region_lost_error (const IvshmRegion * region, IvshmError * err)
{
  struct stat st;
  struct statvfs vfs;
  char was[32], now[32], dir[512], free_text[32], total[32];

  if (region == NULL || region->fd < 0)
    return ivshm_error_set (err, IVSHM_ERR_IO, EFAULT, "the region %s "
        "could no longer be read while it was in use",
        region ? region->path : "");
  ivshm_size_text (region->size, was, sizeof was);
  if (fstat (region->fd, &st) != 0)
    return ivshm_error_set (err, IVSHM_ERR_IO, errno, "the region file %s "
        "(%s) could no longer be read while it was in use: %s",
        region->path, was, strerror (errno));
  if ((uint64_t) st.st_size < region->size)
    return ivshm_error_set (err, IVSHM_ERR_IO, EFAULT, "the region file %s "
        "shrank to %s while it was in use (it was %s): another process "
        "truncated it (truncate, ftruncate, a QEMU started with another "
        "size=, or a new region made over it); it is no longer used",
        region->path, ivshm_size_text ((uint64_t) st.st_size, now, sizeof now),
        was);
  ivshm_dir_of (region->path, dir, sizeof dir);
  if (fstatvfs (region->fd, &vfs) == 0)
    return ivshm_error_set (err, IVSHM_ERR_IO, EFAULT, "the region file %s "
        "(%s) lost memory under its mapping while it was in use: its file "
        "system could not give it a page (%s has %s free of %s: full, or "
        "someone punched a hole in the file); it is no longer used",
        region->path, was, dir, ivshm_size_approx ((uint64_t) vfs.f_bavail *
            vfs.f_frsize, free_text, sizeof free_text),
        ivshm_size_approx ((uint64_t) vfs.f_blocks * vfs.f_frsize, total,
            sizeof total));
  return ivshm_error_set (err, IVSHM_ERR_IO, EFAULT, "the region file %s "
      "(%s) lost memory under its mapping while it was in use; it is no "
      "longer used", region->path, was);
}
