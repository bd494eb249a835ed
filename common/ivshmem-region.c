/* gst-ivshmem: finding and mapping an IVSHMEM region
 * SPDX-License-Identifier: MIT
 *
 * Host side: the file behind QEMU's memory-backend-file, mapped MAP_SHARED.
 * Guest side: BAR2 of the ivshmem PCI device, mapped from sysfs resource2.
 *
 * BAR2 is mapped through resource2_wc (write-combining) where the kernel
 * offers it, else resource2 (uncached); IvshmBarMapping chooses.
 *
 * resource2 is opened O_RDWR without O_SYNC. O_SYNC changes the caching of
 * /dev/mem mappings only; for a sysfs resourceN file the kernel picks the
 * memory type itself (uncached "device" memory for resourceN, write-combined
 * for resourceN_wc), so the flag would only suggest a control we do not have.
 *
 * The size of a PCI region is BAR2's size as the kernel reports it in the
 * device's `resource` file (read through libpci, see ivshmem-pci.c). The
 * kernel gives resource2 the same st_size; if a (fake or odd) resource2 is
 * smaller, the smaller size is mapped, since touching a mapping past the end
 * of a file raises SIGBUS.
 */
#include "ivshmem-private.h"
#include "ivshmem-region.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

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



/* ---- sysfs root ---- */

static pthread_once_t sysfs_root_once = PTHREAD_ONCE_INIT;
static const char *sysfs_root_value = "/sys";

static void
sysfs_root_init (void)
{
  const char *env = getenv (IVSHM_SYSFS_ROOT_ENV);
  char *copy;

  if (env == NULL || env[0] == '\0')
    return;
  /* A copy: a later setenv() must not change or free what we hand out. It
   * lives as long as the process. */
  copy = strdup (env);
  if (copy != NULL)
    sysfs_root_value = copy;
}

const char *
ivshm_sysfs_root (void)
{
  pthread_once (&sysfs_root_once, sysfs_root_init);
  return sysfs_root_value;
}

/* ---- lockdown ---- */

int
ivshm_lockdown_active (const char *sysfs_root, char *mode, size_t mode_size)
{
  char path[1024], buf[256];
  const char *open_bracket, *close_bracket;
  size_t len;
  FILE *f;

  if (mode != NULL && mode_size > 0)
    mode[0] = '\0';
  if (sysfs_root == NULL || sysfs_root[0] == '\0')
    sysfs_root = ivshm_sysfs_root ();
  if ((size_t) snprintf (path, sizeof path, "%s/kernel/security/lockdown",
          sysfs_root) >= sizeof path)
    return 0;
  f = fopen (path, "re");
  if (f == NULL)
    return 0;
  if (fgets (buf, sizeof buf, f) == NULL) {
    fclose (f);
    return 0;
  }
  fclose (f);

  open_bracket = strchr (buf, '[');
  close_bracket = open_bracket ? strchr (open_bracket, ']') : NULL;
  if (close_bracket == NULL)
    return 0;
  len = (size_t) (close_bracket - open_bracket - 1);
  if (mode != NULL && mode_size > 0) {
    size_t n = len < mode_size - 1 ? len : mode_size - 1;
    memcpy (mode, open_bracket + 1, n);
    mode[n] = '\0';
  }
  return !(len == 4 && strncmp (open_bracket + 1, "none", 4) == 0);
}

/* ---- common ---- */

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

/* "64 MiB", "128 KiB", "1536 bytes": for details. */
static const char *
human_size (uint64_t size, char *buf, size_t buf_size)
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

/* "60.5 MiB": for sizes that are not round, such as free space. */
static const char *
approx_size (uint64_t size, char *buf, size_t buf_size)
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

/* The directory of `path` ("/dev/shm"), for messages about its file
 * system. */
static const char *
dir_of (const char *path, char *buf, size_t buf_size)
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

/* A file system too full for the region: "/dev/shm has 60.0 MiB free; the
 * region /dev/shm/x needs 128 MiB". `missing`: the part of the region not
 * yet backed by memory. */
static IvshmStatus
no_space_error (int fd, const char *path, uint64_t size, uint64_t missing,
    int e, IvshmError * err)
{
  struct statvfs vfs;
  char dir[512], free_text[32], need[32], miss[32];

  dir_of (path, dir, sizeof dir);
  human_size (size, need, sizeof need);
  if (fstatvfs (fd, &vfs) != 0)
    return ivshm_error_set (err, IVSHM_ERR_IO, e, "%s has no room for the "
        "region %s (%s): %s", dir, path, need, strerror (e));
  approx_size ((uint64_t) vfs.f_bavail * vfs.f_frsize, free_text,
      sizeof free_text);
  return ivshm_error_set (err, IVSHM_ERR_IO, e, "%s has %s free; the region "
      "%s needs %s (%s of it not reserved yet): %s. Give the file system "
      "more room (a container's /dev/shm is 64 MiB unless --shm-size says "
      "otherwise; mount -o remount,size=... /dev/shm), or use a smaller "
      "region", dir, free_text, path, need,
      approx_size (missing, miss, sizeof miss), strerror (e));
}

static IvshmStatus
region_new (void *data, uint64_t size, IvshmRegionKind kind, int created,
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

static IvshmStatus
map_fd (int fd, uint64_t size, bool read_only, const char *path, void **data,
    int *map_errno, IvshmError * err)
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

static IvshmStatus
open_host_file (const char *path, uint64_t create_size, bool read_only,
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
          human_size (next_pow2 (create_size), human, sizeof human));
    if (create_size < IVSHM_REGION_MIN_SIZE)
      return ivshm_error_set (err, IVSHM_ERR_TOO_SMALL, 0,
          "cannot create %s with %s: the protocol needs at least %s",
          path, human_size (create_size, human, sizeof human),
          human_size (IVSHM_REGION_MIN_SIZE, human2, sizeof human2));

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
          status = no_space_error (fd, path, create_size, create_size, e, err);
        else
          status = ivshm_error_set (err, IVSHM_ERR_IO, e,
              "cannot give %s a size of %s: %s", path,
              human_size (create_size, human, sizeof human), strerror (e));
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
          human_size (IVSHM_REGION_MIN_SIZE, human2, sizeof human2));
    else
      status = ivshm_error_set (err, IVSHM_ERR_TOO_SMALL, 0,
          "%s is %s; the protocol needs at least %s", path,
          human_size (size, human, sizeof human),
          human_size (IVSHM_REGION_MIN_SIZE, human2, sizeof human2));
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

    status = no_space_error (fd, path, size, have < size ? size - have : 0,
        ENOSPC, err);
    goto fail;
  }
#endif

  status = map_fd (fd, size, read_only, path, &data, &map_errno, err);
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
          human_size (size, human, sizeof human), strerror (map_errno));
    goto fail;
  }

  status = region_new (data, size, IVSHM_REGION_HOST_FILE, created, path, "",
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

/* ---- PCI ---- */

/* One sysfs file tried for BAR2, and how it went. */
typedef struct
{
  char path[520];
  const char *what;             /* "open" or "map" */
  int sys_errno;                /* 0: it worked */
} PciAttempt;

static int
is_permission_errno (int e)
{
  return e == EACCES || e == EPERM;
}

/* "cannot open A: Permission denied; cannot open B: Permission denied" */
static const char *
attempts_text (const PciAttempt * tries, int n, char *buf, size_t size)
{
  size_t len = 0;
  int i;

  buf[0] = '\0';
  for (i = 0; i < n && len < size; i++)
    len += (size_t) snprintf (buf + len, size - len, "%scannot %s %s: %s",
        i ? "; " : "", tries[i].what, tries[i].path,
        strerror (tries[i].sys_errno));
  return buf;
}

static IvshmStatus
pci_access_error (const IvshmPciDevice * dev, const char *sysfs_root,
    const PciAttempt * tries, int n, IvshmError * err)
{
  const PciAttempt *last = &tries[n - 1];
  char mode[32], text[1200];
  int e = last->sys_errno;

  attempts_text (tries, n, text, sizeof text);
  if (e == EPERM && ivshm_lockdown_active (sysfs_root, mode, sizeof mode))
    return ivshm_error_set (err, IVSHM_ERR_LOCKDOWN, e,
        "%s: the kernel is in lockdown mode \"%s\" (see "
        "%s/kernel/security/lockdown), which forbids mapping PCI BARs from "
        "user space, even as root; it cannot be lifted at run time (it "
        "comes from Secure Boot or the lockdown= kernel parameter)",
        text, mode, sysfs_root);
  if (is_permission_errno (e))
    return ivshm_error_set (err, IVSHM_ERR_PERMISSION, e,
        "%s; mapping a PCI BAR needs root, or the udev rule of gst-ivshmem "
        "(package ivshmem-tools, " IVSHM_UDEV_RULE_FILE ") with this user "
        "in the group " IVSHM_UDEV_GROUP " (log in again after joining "
        "it); the rule is: %s", text, IVSHM_UDEV_RULE);
  if (e == ENOENT)
    return ivshm_error_set (err, IVSHM_ERR_NOT_FOUND, e,
        "%s: device %s has no shared memory BAR", text, dev->location);
  return ivshm_error_set (err, IVSHM_ERR_IO, e, "%s", text);
}

/* Opens and maps one resource file of BAR2 (at most *size bytes; a smaller
 * file shrinks *size). Fills try; returns 0 or the failing errno. A file too
 * small for the protocol is mapped all the same: the caller checks *size. */
static int
map_resource (const char *path, bool read_only, uint64_t * size, void **data,
    PciAttempt * try)
{
  struct stat st;
  void *p;
  int fd;

  snprintf (try->path, sizeof try->path, "%s", path);
  try->what = "open";
  fd = open (path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (fd < 0)
    return try->sys_errno = errno;
  if (fstat (fd, &st) == 0 && S_ISREG (st.st_mode) && st.st_size > 0
      && (uint64_t) st.st_size < *size)
    *size = (uint64_t) st.st_size;
  try->what = "map";
  if (*size > SIZE_MAX || *size < IVSHM_REGION_MIN_SIZE) {
    close (fd);
    return try->sys_errno = *size > SIZE_MAX ? EOVERFLOW : EFBIG;
  }
  p = mmap (NULL, (size_t) *size,
      read_only ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  try->sys_errno = p == MAP_FAILED ? errno : 0;
  close (fd);
  if (p == MAP_FAILED)
    return try->sys_errno;
  *data = p;
  return 0;
}

/* Maps BAR2 through the file that `mapping` asks for. AUTO takes
 * resource2_wc where the kernel offers it and falls back to resource2 when
 * resource2_wc is refused (a udev rule that opens resource2 only); an
 * error then names both files. */
static IvshmStatus
map_pci_device (const IvshmPciDevice * dev, const char *sysfs_root,
    IvshmBarMapping mapping, bool read_only, IvshmRegion ** out,
    IvshmError * err)
{
  IvshmStatus status;
  PciAttempt tries[2];
  uint64_t size = dev->size;
  void *data = NULL;
  int n = 0, e = 0;
  char wc[sizeof dev->resource_path + 4], human[32], human2[32];

  snprintf (wc, sizeof wc, "%s_wc", dev->resource_path);
  if (mapping == IVSHM_BAR_MAPPING_RESOURCE_WC
      || (mapping == IVSHM_BAR_MAPPING_AUTO && access (wc, F_OK) == 0)) {
    e = map_resource (wc, read_only, &size, &data, &tries[n++]);
    if (e == ENOENT && mapping == IVSHM_BAR_MAPPING_RESOURCE_WC)
      return ivshm_error_set (err, IVSHM_ERR_NOT_FOUND, ENOENT,
          "%s does not exist: the kernel offers no write-combining mapping "
          "of this BAR; use the uncached one (bar-mapping=resource)", wc);
  }
  if (n == 0 || (mapping == IVSHM_BAR_MAPPING_AUTO
          && (is_permission_errno (e) || e == ENOENT))) {
    size = dev->size;
    e = map_resource (dev->resource_path, read_only, &size, &data,
        &tries[n++]);
  }

  if (e == EFBIG)
    return ivshm_error_set (err, IVSHM_ERR_TOO_SMALL, 0,
        "BAR2 of IVSHMEM device %s is %s; the protocol needs at least %s "
        "(give the VM's ivshmem memory backend a bigger size=)",
        dev->location, human_size (size, human, sizeof human),
        human_size (IVSHM_REGION_MIN_SIZE, human2, sizeof human2));
  if (e != 0)
    return pci_access_error (dev, sysfs_root, tries, n, err);

  status = region_new (data, size, IVSHM_REGION_PCI, 0, tries[n - 1].path,
      dev->location, out, err);
  if (status != IVSHM_OK)
    munmap (data, (size_t) size);
  return status;
}

/* Why `location` is not in the list: no such device, or not an IVSHMEM
 * one. */
static IvshmStatus
pci_not_ivshmem (const char *sysfs_root, const char *location, IvshmError * err)
{
  char dir[1024];
  uint64_t vendor, device;

  snprintf (dir, sizeof dir, "%s/bus/pci/devices/%s", sysfs_root, location);
  if (ivshm_sysfs_read_u64 (dir, "vendor", &vendor) == 0
      && ivshm_sysfs_read_u64 (dir, "device", &device) == 0)
    return ivshm_error_set (err, IVSHM_ERR_INVALID_ARG, 0,
        "PCI device %s is a %04" PRIx64 ":%04" PRIx64 " device, not an "
        "IVSHMEM device (%04x:%04x); list them with ivshmem-info",
        location, vendor, device, IVSHM_PCI_VENDOR_ID, IVSHM_PCI_DEVICE_ID);
  return ivshm_error_set (err, IVSHM_ERR_NOT_FOUND, 0,
      "there is no PCI device %s (in %s/bus/pci/devices); list the IVSHMEM "
      "devices with ivshmem-info", location, sysfs_root);
}

static IvshmStatus
open_pci (const IvshmPciAddr * want, const char *sysfs_root,
    IvshmBarMapping mapping, bool read_only, IvshmRegion ** out,
    IvshmError * err)
{
  IvshmPciDevice *devs = NULL;
  const IvshmPciDevice *found = NULL;
  size_t n = 0, i;
  IvshmStatus status;
  char location[IVSHM_PCI_ADDR_STRLEN];

  status = ivshm_pci_list (sysfs_root, &devs, &n, err);
  if (status != IVSHM_OK)
    return status;

  for (i = 0; i < n && found == NULL; i++) {
    if (want == NULL || (devs[i].addr.domain == want->domain
            && devs[i].addr.bus == want->bus
            && devs[i].addr.device == want->device
            && devs[i].addr.function == want->function))
      found = &devs[i];
  }

  if (found != NULL)
    status = map_pci_device (found, sysfs_root, mapping, read_only, out, err);
  else if (want != NULL) {
    ivshm_pci_addr_format (want, location);
    status = pci_not_ivshmem (sysfs_root, location, err);
  } else
    status = ivshm_error_set (err, IVSHM_ERR_NOT_FOUND, 0,
        "no IVSHMEM PCI device (%04x:%04x) in %s/bus/pci/devices: give the "
        "VM one (QEMU: -device ivshmem-plain,memdev=ID with a "
        "memory-backend-file; libvirt: <shmem> with <model "
        "type='ivshmem-plain'/>)", IVSHM_PCI_VENDOR_ID, IVSHM_PCI_DEVICE_ID,
        sysfs_root);
  free (devs);
  return status;
}

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
    return open_host_file (device, options->create_size, options->read_only,
        region, err);

  sysfs_root = options->sysfs_root;
  if (sysfs_root == NULL || sysfs_root[0] == '\0')
    sysfs_root = ivshm_sysfs_root ();

  if (device == NULL || device[0] == '\0')
    return open_pci (NULL, sysfs_root, options->bar_mapping,
        options->read_only, region, err);
  if (ivshm_pci_addr_parse (device, &addr) == 0)
    return open_pci (&addr, sysfs_root, options->bar_mapping,
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
  human_size (region->size, was, sizeof was);
  if (fstat (region->fd, &st) != 0)
    return ivshm_error_set (err, IVSHM_ERR_IO, errno, "the region file %s "
        "(%s) could no longer be read while it was in use: %s",
        region->path, was, strerror (errno));
  if ((uint64_t) st.st_size < region->size)
    return ivshm_error_set (err, IVSHM_ERR_IO, EFAULT, "the region file %s "
        "shrank to %s while it was in use (it was %s): another process "
        "truncated it (truncate, ftruncate, a QEMU started with another "
        "size=, or a new region made over it); it is no longer used",
        region->path, human_size ((uint64_t) st.st_size, now, sizeof now), was);
  dir_of (region->path, dir, sizeof dir);
  if (fstatvfs (region->fd, &vfs) == 0)
    return ivshm_error_set (err, IVSHM_ERR_IO, EFAULT, "the region file %s "
        "(%s) lost memory under its mapping while it was in use: its file "
        "system could not give it a page (%s has %s free of %s: full, or "
        "someone punched a hole in the file); it is no longer used",
        region->path, was, dir, approx_size ((uint64_t) vfs.f_bavail *
            vfs.f_frsize, free_text, sizeof free_text),
        approx_size ((uint64_t) vfs.f_blocks * vfs.f_frsize, total,
            sizeof total));
  return ivshm_error_set (err, IVSHM_ERR_IO, EFAULT, "the region file %s "
      "(%s) lost memory under its mapping while it was in use; it is no "
      "longer used", region->path, was);
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
