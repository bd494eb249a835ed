/* gst-ivshmem: mapping an IVSHMEM region in a Windows guest
 * SPDX-License-Identifier: MIT
 *
 * The Windows counterpart of ivshmem-region.c (finding the devices is
 * ivshmem-pci-win32.c, the counterpart of ivshmem-pci.c). Windows
 * gives user space no access to a PCI BAR; the Red Hat / virtio-win IVSHMEM
 * driver (ivshmem.sys, "IVSHMEM Device" in the Device Manager) does it:
 *
 *  - it registers a device interface of class
 *    {df576976-569d-4672-95a0-f57e4ea0b210} for each ivshmem PCI device;
 *    SetupDi lists the interfaces, and each one's path opens the device;
 *  - IOCTL_IVSHMEM_REQUEST_SIZE returns the size of BAR2;
 *  - IOCTL_IVSHMEM_REQUEST_MMAP maps BAR2 into the calling process, with a
 *    cache mode chosen by the caller, and returns the address;
 *  - IOCTL_IVSHMEM_RELEASE_MMAP (or closing the handle) unmaps it.
 *
 * The device is opened with access 0 (neither read nor write): every
 * IOCTL of the driver is FILE_ANY_ACCESS, so the handle needs no right, and
 * a device whose ACL is stricter than the driver's default (its INF sets
 * none) still opens. Looking Glass and the driver's own test do the same.
 *
 * ONE element per device in the whole guest. What the driver allows
 * depends on its build:
 *  - builds from the driver's first release (2017) to March 2024, and from
 *    October 2025 on (the current source): one mapping per device for the
 *    whole guest; while one handle has it mapped, REQUEST_MMAP from any
 *    other handle or process fails with STATUS_DEVICE_ALREADY_ATTACHED
 *    (ERROR_DEVICE_ALREADY_ATTACHED in user space);
 *  - builds from March 2024 to October 2025 (virtio-win commit 042b7c6f,
 *    merged 2024-03-04, reverted by 2cb82f93, merged 2025-10-15, after
 *    virtio-win issue #1340: programs "clobber each other's memory"): one
 *    mapping per file handle, so any number of processes map the device.
 * Two producers formatting one region would destroy each other's stream,
 * so this file keeps the one-mapping rule itself, whatever the build: a
 * named mutex in the Global\ namespace (one name per device interface
 * path, so per device for the whole guest, all sessions) exists for as
 * long as a mapping of this library lives. A second element, in this or
 * another process, finds it and gets IVSHM_ERR_ALREADY_MAPPED before it
 * asks the driver. The driver's own refusal becomes the same status. With
 * the 2024-2025 builds, a program that does not take the mutex (Looking
 * Glass) can still map the device next to an element: nothing in user
 * space can see that mapping.
 *
 * Cache mode: bar-mapping picks the driver's IVSHMEM_MMAP_CONFIG cache
 * mode: auto (the default) maps CACHED, resource NONCACHED, resource-wc
 * WRITECOMBINED. BAR2 of QEMU's ivshmem is ordinary host RAM (the memory
 * backend), not device registers, and the host maps it write-back, so a
 * cached guest mapping is coherent with the host and with other guests on
 * x86; the ring's C11 atomics give the ordering (it publishes with a
 * compare-and-swap, a locked instruction, which also drains write-combining
 * buffers). Whether the guest's choice matters depends on the host: KVM
 * ignores the guest's memory type and maps guest RAM write-back only on
 * Intel hosts, with its default quirk (KVM_X86_QUIRK_IGNORE_GUEST_PAT) and
 * no passthrough device; AMD hosts, and Intel hosts with passthrough
 * devices (VFIO, non-coherent DMA), honour the guest's PAT.
 * There an uncached mapping makes every read of a video frame a bus cycle
 * and write-combining leaves reads uncached: cached is the only mode that
 * is fast for a reader everywhere, hence the default.
 *
 * The driver's interface (IOCTL codes, GUID, structures) is restated in
 * ivshmem-win32-private.h; finding the devices is ivshmem-pci-win32.c.
 *
 * Host-side files (QEMU's memory-backend-file) exist only on a Linux host:
 * on Windows a path is IVSHM_ERR_UNSUPPORTED.
 *
 * IvshmError.sys_errno holds the Win32 error code (GetLastError()) here.
 *
 * Verified: it runs under wine in CI (tests/windows, suite windows)
 * against a stand-in for the driver that keeps the interface above (as
 * ivshmem-win32-private.h restates it), in
 * both mapping behaviours, with an ACL that grants access 0 only, with a
 * device node that has a problem code, and recording the cache mode. NOT
 * verified: it has never run against the real driver in a Windows guest
 * (see README).
 */
#include "ivshmem-win32-private.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- region ---- */

struct IvshmRegion
{
  HANDLE handle;
  HANDLE device_lock;           /* the guest-wide lock: see device_lock_take */
  void *data;
  uint64_t size;
  char *path;
  char location[IVSHM_PCI_ADDR_STRLEN];
};

/* Every call that reaches the driver goes through this table: the real
 * Win32 functions, or in a test build only, the driver stand-in. */
static const IvshmWinDriver *
drv (void)
{
  return ivshm_win_driver ();
}

/* ---- one element per device, in the whole guest ---- */

/* The driver builds of March 2024 to October 2025 map a device once per
 * handle, not once per guest (see the top of this file). The rule "one
 * mapping of a device at a time" is kept here instead, for every build, by
 * a named mutex in the Global\ namespace, named after the device interface
 * path, that exists exactly as long as a mapping does.
 *
 * The mutex is never owned: a mutex's ownership belongs to a thread, and
 * GStreamer may stop an element from another thread than the one that
 * started it. Its existence is the lock, as in Windows' single-instance
 * idiom: CreateMutex of a name that exists fails with ERROR_ALREADY_EXISTS
 * (atomically, in the object manager, also inside one process), and the
 * object goes away with its last handle, so also when the process that
 * held it ends or crashes. Created by another user (another session), the
 * object exists but cannot be opened: ERROR_ACCESS_DENIED, the same
 * answer. */

#define LOCK_PREFIX "Global\\gst-ivshmem-device-"

/* The lock's name: the interface path without its \\?\ or \\.\ prefix, in
 * lower case (paths compare without case), with the backslashes that a
 * kernel object name may not hold replaced; a hash of it where the name
 * would pass MAX_PATH. */
static void
device_lock_name (const char *path, char *name, size_t size)
{
  char key[MAX_PATH];
  size_t n = 0, prefix = strlen (LOCK_PREFIX);
  uint64_t hash = 0xcbf29ce484222325ull;        /* FNV-1a */
  const char *p = path;

  if ((p[0] == '\\' && p[1] == '\\' && (p[2] == '?' || p[2] == '.')
          && p[3] == '\\'))
    p += 4;
  for (; *p != '\0'; p++) {
    char c = *p;

    if (c >= 'A' && c <= 'Z')
      c = (char) (c - 'A' + 'a');
    else if (c == '\\')
      c = '/';
    hash = (hash ^ (uint8_t) c) * 0x100000001b3ull;
    if (n + 1 < sizeof key)
      key[n] = c;
    n++;
  }
  key[n < sizeof key ? n : sizeof key - 1] = '\0';
  if (prefix + n + 1 <= size && prefix + n < MAX_PATH)
    snprintf (name, size, "%s%s", LOCK_PREFIX, key);
  else
    snprintf (name, size, "%shash-%016" PRIx64, LOCK_PREFIX, hash);
}

/* Takes the lock of the device at `path` ("shown" names it in messages)
 * into *lock. */
static IvshmStatus
device_lock_take (const char *path, const char *shown, HANDLE * lock,
    IvshmError * err)
{
  char name[MAX_PATH], text[256];
  HANDLE h;
  DWORD code;

  device_lock_name (path, name, sizeof name);
  SetLastError (ERROR_SUCCESS);
  h = CreateMutexA (NULL, FALSE, name);
  code = GetLastError ();
  if (h != NULL && code != ERROR_ALREADY_EXISTS) {
    *lock = h;
    return IVSHM_OK;
  }
  if (h != NULL)
    CloseHandle (h);
  if (h != NULL || code == ERROR_ACCESS_DENIED)
    return ivshm_error_set (err, IVSHM_ERR_ALREADY_MAPPED, 0,
        "IVSHMEM device %s is already mapped: gst-ivshmem allows one "
        "mapping of a device at a time in the whole guest, whatever the "
        "build of the Windows IVSHMEM driver, and another element or "
        "ivshmem-info holds it (in this or another process, of this or "
        "another user); close that one first", shown);
  return ivshm_error_set (err, IVSHM_ERR_IO, (int) code,
      "cannot create the guest-wide lock %s of IVSHMEM device %s: %s", name,
      shown, ivshm_win_error_text (code, text, sizeof text));
}

/* ---- mapping ---- */

/* bar-mapping -> the driver's cache mode (see the top of this file) */
static uint8_t
cache_mode (IvshmBarMapping mapping)
{
  switch (mapping) {
    case IVSHM_BAR_MAPPING_RESOURCE:
      return IVSHM_WIN_CACHE_NONCACHED;
    case IVSHM_BAR_MAPPING_RESOURCE_WC:
      return IVSHM_WIN_CACHE_WRITECOMBINED;
    case IVSHM_BAR_MAPPING_AUTO:
    default:
      return IVSHM_WIN_CACHE_CACHED;
  }
}

static IvshmStatus
map_interface (const char *path, const char *location,
    IvshmBarMapping mapping, IvshmRegion ** out, IvshmError * err)
{
  IvshmWinMmapConfig config = { cache_mode (mapping) };
  IvshmWinMmap map;
  IvshmRegion *r;
  IvshmStatus status;
  uint64_t size = 0;
  DWORD got = 0, code;
  HANDLE h, lock = NULL;
  const char *shown = location[0] ? location : path;
  char text[256];

  status = device_lock_take (path, shown, &lock, err);
  if (status != IVSHM_OK)
    return status;

  h = ivshm_win_open_interface (path);
  if (h == INVALID_HANDLE_VALUE) {
    status = ivshm_win_open_error (path, GetLastError (), err);
    CloseHandle (lock);
    return status;
  }

  status = ivshm_win_request_size (h, path, &size, err);
  if (status != IVSHM_OK)
    goto fail;
  if (size < IVSHM_REGION_MIN_SIZE) {
    status = ivshm_error_set (err, IVSHM_ERR_TOO_SMALL, 0,
        "the shared memory of IVSHMEM device %s is %" PRIu64 " bytes; the "
        "protocol needs at least %" PRIu64 " (give the VM's ivshmem memory "
        "backend a bigger size=)", shown, size,
        (uint64_t) IVSHM_REGION_MIN_SIZE);
    goto fail;
  }

  memset (&map, 0, sizeof map);
  if (!drv ()->device_io_control (h, IVSHM_IOCTL_REQUEST_MMAP, &config,
          sizeof config, &map, sizeof map, &got, NULL)) {
    code = GetLastError ();
    if (code == ERROR_DEVICE_ALREADY_ATTACHED)
      status = ivshm_error_set (err, IVSHM_ERR_ALREADY_MAPPED, (int) code,
          "IVSHMEM device %s is already mapped: the Windows IVSHMEM driver "
          "allows one mapping of a device at a time in the whole guest, and "
          "another program holds it (one that is not gst-ivshmem, e.g. "
          "Looking Glass); close that one first", shown);
    else
      status = ivshm_error_set (err, IVSHM_ERR_IO, (int) code,
          "the IVSHMEM driver refused to map %s (cache mode %u): %s", shown,
          (unsigned) config.cache_mode,
          ivshm_win_error_text (code, text, sizeof text));
    goto fail;
  }
  if (got != sizeof map || map.ptr == NULL || map.size < size) {
    status = ivshm_error_set (err, IVSHM_ERR_IO, 0,
        "the IVSHMEM driver's answer to the map request for %s makes no "
        "sense (%lu bytes, address %p, size %" PRIu64 "); is this the "
        "virtio-win ivshmem driver?", shown, (unsigned long) got, map.ptr,
        map.size);
    if (map.ptr != NULL)
      drv ()->device_io_control (h, IVSHM_IOCTL_RELEASE_MMAP, NULL, 0, NULL,
          0, &got, NULL);
    goto fail;
  }

  r = calloc (1, sizeof *r);
  if (r == NULL || (r->path = _strdup (path)) == NULL) {
    free (r);
    drv ()->device_io_control (h, IVSHM_IOCTL_RELEASE_MMAP, NULL, 0, NULL, 0,
        &got, NULL);
    status = ivshm_error_set (err, IVSHM_ERR_NO_MEMORY, 0, "out of memory");
    goto fail;
  }
  r->handle = h;
  r->device_lock = lock;
  r->data = map.ptr;
  r->size = size;
  snprintf (r->location, sizeof r->location, "%s", location);
  *out = r;
  return IVSHM_OK;

fail:
  drv ()->close_handle (h);
  CloseHandle (lock);
  return status;
}

static IvshmStatus
open_pci (const IvshmPciAddr * want, IvshmBarMapping mapping,
    IvshmRegion ** out, IvshmError * err)
{
  IvshmPciDevice *devs = NULL;
  const IvshmPciDevice *found = NULL;
  IvshmDevNode node;
  size_t n = 0, i;
  IvshmStatus status;
  char location[IVSHM_PCI_ADDR_STRLEN];

  status = ivshm_pci_list (NULL, &devs, &n, err);
  if (status != IVSHM_OK)
    return status;
  for (i = 0; i < n && found == NULL; i++) {
    if (want == NULL || (devs[i].location[0] != '\0'
            && devs[i].addr.domain == want->domain
            && devs[i].addr.bus == want->bus
            && devs[i].addr.device == want->device
            && devs[i].addr.function == want->function))
      found = &devs[i];
  }

  if (found != NULL) {
    status = map_interface (found->resource_path, found->location, mapping,
        out, err);
    free (devs);
    return status;
  }
  free (devs);

  /* No interface answers: is there a device the driver did not take? */
  ivshm_win_find_device_node (want, &node);
  if (node.found)
    return ivshm_win_device_node_error (&node, err);
  if (want != NULL) {
    ivshm_pci_addr_format (want, location);
    return ivshm_error_set (err, IVSHM_ERR_NOT_FOUND, 0,
        "there is no IVSHMEM device at PCI %s (Windows numbers buses its "
        "own way: list the devices with ivshmem-info)", location);
  }
  return ivshm_error_set (err, IVSHM_ERR_NOT_FOUND, 0,
      "no IVSHMEM device found: give the VM one (QEMU: -device "
      "ivshmem-plain,memdev=ID) and " DRIVER_HINT);
}

/* ---- API ---- */

IvshmStatus
ivshm_region_open (const char *device, const IvshmRegionOptions * options,
    IvshmRegion ** region, IvshmError * err)
{
  IvshmBarMapping mapping =
      options ? options->bar_mapping : IVSHM_BAR_MAPPING_AUTO;
  IvshmPciAddr addr;

  if (region == NULL)
    return ivshm_error_set (err, IVSHM_ERR_INVALID_ARG, 0,
        "ivshm_region_open: region must not be NULL");
  *region = NULL;

  /* A device interface path as ivshmem-info lists it: \\?\pci#ven_1af4... */
  if (device != NULL && device[0] == '\\' && device[1] == '\\')
    return map_interface (device, "", mapping, region, err);

  if (device != NULL && (device[0] == '/' || device[0] == '.' ||
          (device[0] != '\0' && device[1] == ':' && (device[2] == '\\'
                  || device[2] == '/'))))
    return ivshm_error_set (err, IVSHM_ERR_UNSUPPORTED, 0,
        "%s is a file path, but Windows is supported as a guest only: "
        "there is no host-side shared memory file here; give a PCI "
        "address or the device path from ivshmem-info", device);

  if (device == NULL || device[0] == '\0')
    return open_pci (NULL, mapping, region, err);
  if (ivshm_pci_addr_parse (device, &addr) == 0)
    return open_pci (&addr, mapping, region, err);

  return ivshm_error_set (err, IVSHM_ERR_INVALID_ARG, 0,
      "\"%s\" is neither a PCI address such as 0000:00:05.0 nor an IVSHMEM "
      "device path (\\\\?\\pci#...)", device);
}

void
ivshm_region_close (IvshmRegion * region)
{
  DWORD got = 0;

  if (region == NULL)
    return;
  if (region->data != NULL)
    drv ()->device_io_control (region->handle, IVSHM_IOCTL_RELEASE_MMAP,
        NULL, 0, NULL, 0, &got, NULL);
  /* closing the handle would release the mapping too */
  drv ()->close_handle (region->handle);
  /* only once the mapping is gone: the next element may map the device */
  if (region->device_lock != NULL)
    CloseHandle (region->device_lock);
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
  (void) region;
  return IVSHM_REGION_PCI;
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
  (void) region;
  return 0;
}

const char *
ivshm_system_name (void)
{
  return "Windows";
}
