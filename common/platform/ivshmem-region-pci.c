/* gst-ivshmem: a region in a guest's PCI BAR
 * SPDX-License-Identifier: MIT
 *
 * BAR2 of the ivshmem PCI device (1af4:1110), found with ivshmem-pci.c and
 * mapped from sysfs resource2_wc (write-combining) where the kernel offers
 * it, else resource2 (uncached); IvshmBarMapping chooses. The kernel's
 * lockdown mode is read here, the sysfs root (a fake tree in tests) in
 * ivshmem-pci.c.
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
#include "ivshmem-region-private.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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
    e = map_resource (dev->resource_path, read_only, &size, &data, &tries[n++]);
  }

  if (e == EFBIG)
    return ivshm_error_set (err, IVSHM_ERR_TOO_SMALL, 0,
        "BAR2 of IVSHMEM device %s is %s; the protocol needs at least %s "
        "(give the VM's ivshmem memory backend a bigger size=)",
        dev->location, ivshm_size_text (size, human, sizeof human),
        ivshm_size_text (IVSHM_REGION_MIN_SIZE, human2, sizeof human2));
  if (e != 0)
    return pci_access_error (dev, sysfs_root, tries, n, err);

  status = ivshm_region_new (data, size, IVSHM_REGION_PCI, 0, tries[n - 1].path,
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

IvshmStatus
ivshm_region_open_pci (const IvshmPciAddr * want, const char *sysfs_root,
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
