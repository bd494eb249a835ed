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
};

#define UDEV_RULE_HINT \
  "SUBSYSTEM==\"pci\", ATTR{vendor}==\"0x1af4\", ATTR{device}==\"0x1110\", " \
  "RUN+=\"/bin/chmod 0666 %S%p/resource2\""


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
        close (fd);
        unlink (path);
        return ivshm_error_set (err, IVSHM_ERR_IO, e,
            "cannot give %s a size of %s: %s", path,
            human_size (create_size, human, sizeof human), strerror (e));
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
  close (fd);
  fd = -1;

  status = region_new (data, size, IVSHM_REGION_HOST_FILE, created, path, "",
      out, err);
  if (status != IVSHM_OK) {
    munmap (data, (size_t) size);
    goto fail;
  }
  return IVSHM_OK;

fail:
  if (fd >= 0)
    close (fd);
  if (created)
    unlink (path);
  return status;
}

/* ---- PCI ---- */

static IvshmStatus
pci_access_error (const IvshmPciDevice * dev, const char *sysfs_root,
    const char *what, int e, IvshmError * err)
{
  char mode[32];

  if (e == EPERM && ivshm_lockdown_active (sysfs_root, mode, sizeof mode))
    return ivshm_error_set (err, IVSHM_ERR_LOCKDOWN, e,
        "cannot %s %s: the kernel is in lockdown mode \"%s\" (see "
        "%s/kernel/security/lockdown), which forbids mapping PCI BARs from "
        "user space, even as root; it cannot be lifted at run time (it "
        "comes from Secure Boot or the lockdown= kernel parameter)",
        what, dev->resource_path, mode, sysfs_root);
  if (e == EACCES || e == EPERM)
    return ivshm_error_set (err, IVSHM_ERR_PERMISSION, e,
        "cannot %s %s: %s; mapping a PCI BAR needs root, or a udev rule "
        "that opens resource2 to this user, such as: %s",
        what, dev->resource_path, strerror (e), UDEV_RULE_HINT);
  if (e == ENOENT)
    return ivshm_error_set (err, IVSHM_ERR_NOT_FOUND, e,
        "%s does not exist: device %s has no shared memory BAR",
        dev->resource_path, dev->location);
  return ivshm_error_set (err, IVSHM_ERR_IO, e, "cannot %s %s: %s", what,
      dev->resource_path, strerror (e));
}

static IvshmStatus
map_pci_device (const IvshmPciDevice * dev_in, const char *sysfs_root,
    IvshmBarMapping mapping, bool read_only, IvshmRegion ** out,
    IvshmError * err)
{
  IvshmStatus status;
  struct stat st;
  uint64_t size = dev_in->size;
  void *data = NULL;
  int fd, map_errno = 0;
  char human[32], human2[32];
  IvshmPciDevice wc = *dev_in;
  const IvshmPciDevice *dev = dev_in;

  /* resource2_wc: the write-combining mapping of the same BAR, which the
   * kernel offers for prefetchable BARs (ivshmem's BAR2 is one) */
  if (mapping != IVSHM_BAR_MAPPING_RESOURCE &&
      strlen (wc.resource_path) + 3 < sizeof wc.resource_path) {
    strcat (wc.resource_path, "_wc");
    if (mapping == IVSHM_BAR_MAPPING_RESOURCE_WC ||
        access (wc.resource_path, F_OK) == 0)
      dev = &wc;
  }

  fd = open (dev->resource_path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT && dev == &wc)
    return ivshm_error_set (err, IVSHM_ERR_NOT_FOUND, ENOENT,
        "%s does not exist: the kernel offers no write-combining mapping of "
        "this BAR; use the uncached one (bar-mapping=resource)",
        dev->resource_path);
  if (fd < 0)
    return pci_access_error (dev, sysfs_root, "open", errno, err);

  if (fstat (fd, &st) == 0 && S_ISREG (st.st_mode) && st.st_size > 0
      && (uint64_t) st.st_size < size)
    size = (uint64_t) st.st_size;

  if (size < IVSHM_REGION_MIN_SIZE) {
    close (fd);
    return ivshm_error_set (err, IVSHM_ERR_TOO_SMALL, 0,
        "BAR2 of IVSHMEM device %s is %s; the protocol needs at least %s "
        "(give the VM's ivshmem memory backend a bigger size=)",
        dev->location, human_size (size, human, sizeof human),
        human_size (IVSHM_REGION_MIN_SIZE, human2, sizeof human2));
  }

  status = map_fd (fd, size, read_only, dev->resource_path, &data, &map_errno,
      err);
  close (fd);
  if (status != IVSHM_OK)
    return map_errno ? pci_access_error (dev, sysfs_root, "map", map_errno,
        err) : status;

  status = region_new (data, size, IVSHM_REGION_PCI, 0, dev->resource_path,
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
  if (region->data != NULL)
    munmap (region->data, (size_t) region->size);
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
