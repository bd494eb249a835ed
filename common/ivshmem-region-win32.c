/* gst-ivshmem: finding and mapping an IVSHMEM region in a Windows guest
 * SPDX-License-Identifier: MIT
 *
 * The Windows counterpart of ivshmem-region.c and ivshmem-pci.c. Windows
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
 * A device that the driver did not start (a BAR0 that is not 256 bytes,
 * or a BAR2 above 2 GiB: the driver reads its size from a 32-bit field,
 * virtio-win issue #1598) has no enabled interface. When no interface
 * answers, the PCI device nodes PCI\VEN_1AF4&DEV_1110 are looked up, and
 * CM_Get_DevNode_Status tells "no driver" from "the driver did not start
 * the device" (a problem code such as 10).
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
 * The numeric IOCTL codes, the interface GUID and the layout of the MMAP
 * structures are the driver's published user-space interface, from
 * virtio-win's ivshmem/Public.h (kvm-guest-drivers-windows). They are
 * restated here (not included) so a build needs no driver kit; the
 * _Static_asserts below pin them.
 *
 * Host-side files (QEMU's memory-backend-file) exist only on a Linux host:
 * on Windows a path is IVSHM_ERR_UNSUPPORTED.
 *
 * IvshmError.sys_errno holds the Win32 error code (GetLastError()) here.
 *
 * Verified: it runs under wine in CI (tests/windows, suite windows)
 * against a stand-in for the driver that keeps the interface above, in
 * both mapping behaviours, with an ACL that grants access 0 only, with a
 * device node that has a problem code, and recording the cache mode. NOT
 * verified: it has never run against the real driver in a Windows guest
 * (see README).
 */
#include "ivshmem-region.h"
#include "ivshmem-win32-driver.h"

#include <windows.h>
#include <winioctl.h>
#include <setupapi.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the driver's interface (virtio-win ivshmem/Public.h) ---- */

/* {df576976-569d-4672-95a0-f57e4ea0b210}: GUID_DEVINTERFACE_IVSHMEM */
static const GUID ivshm_interface_guid = {
  0xdf576976, 0x569d, 0x4672,
  {0x95, 0xa0, 0xf5, 0x7e, 0x4e, 0xa0, 0xb2, 0x10}
};

#define IVSHM_IOCTL_REQUEST_SIZE \
  CTL_CODE (FILE_DEVICE_UNKNOWN, 0x801, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IVSHM_IOCTL_REQUEST_MMAP \
  CTL_CODE (FILE_DEVICE_UNKNOWN, 0x802, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define IVSHM_IOCTL_RELEASE_MMAP \
  CTL_CODE (FILE_DEVICE_UNKNOWN, 0x803, METHOD_BUFFERED, FILE_ANY_ACCESS)

_Static_assert (IVSHM_IOCTL_REQUEST_SIZE == 0x222004, "REQUEST_SIZE code");
_Static_assert (IVSHM_IOCTL_REQUEST_MMAP == 0x222008, "REQUEST_MMAP code");
_Static_assert (IVSHM_IOCTL_RELEASE_MMAP == 0x22200c, "RELEASE_MMAP code");

/* IVSHMEM_MMAP_CONFIG.cacheMode */
enum
{
  IVSHM_WIN_CACHE_NONCACHED = 0,
  IVSHM_WIN_CACHE_CACHED = 1,
  IVSHM_WIN_CACHE_WRITECOMBINED = 2,
};


/* What user space sees of the driver's STATUS_DEVICE_ALREADY_ATTACHED
 * (winerror.h; older mingw-w64 headers lack it). */
#ifndef ERROR_DEVICE_ALREADY_ATTACHED
#define ERROR_DEVICE_ALREADY_ATTACHED 548L
#endif

/* REQUEST_MMAP's input: IVSHMEM_MMAP_CONFIG, one byte. The driver checks
 * the input length exactly. */
typedef struct
{
  uint8_t cache_mode;
} IvshmWinMmapConfig;

/* REQUEST_MMAP's output: IVSHMEM_MMAP, natural alignment (no packing), so
 * 32 bytes in a 64-bit process. The driver checks the output length
 * exactly: sizeof must match its own. */
typedef struct
{
  uint16_t peer_id;             /* IVSHMEM_PEERID */
  uint64_t size;                /* IVSHMEM_SIZE */
  void *ptr;                    /* the mapping, in this process */
  uint16_t vectors;             /* interrupt vectors available */
} IvshmWinMmap;

_Static_assert (sizeof (IvshmWinMmapConfig) == 1, "IVSHMEM_MMAP_CONFIG");
_Static_assert (offsetof (IvshmWinMmap, size) == 8, "IVSHMEM_MMAP.size");
_Static_assert (offsetof (IvshmWinMmap, ptr) == 16, "IVSHMEM_MMAP.ptr");
#ifdef _WIN64
_Static_assert (offsetof (IvshmWinMmap, vectors) == 24,
    "IVSHMEM_MMAP.vectors");
_Static_assert (sizeof (IvshmWinMmap) == 32, "IVSHMEM_MMAP size");
#else
/* what the driver calls IVSHMEM_MMAP32 on a 64-bit system */
_Static_assert (offsetof (IvshmWinMmap, vectors) == 20,
    "IVSHMEM_MMAP.vectors");
_Static_assert (sizeof (IvshmWinMmap) == 24, "IVSHMEM_MMAP size");
#endif

#define DRIVER_HINT \
  "install the Red Hat IVSHMEM driver from virtio-win (Device Manager: " \
  "\"PCI standard RAM Controller\" -> Update driver -> virtio-win's " \
  "ivshmem folder)"

/* What the driver needs of the device to start it (its
 * EvtDevicePrepareHardware), said where it did not start one. */
#define START_RULES \
  "the virtio-win IVSHMEM driver starts a device only when its BAR0 is 256 " \
  "bytes (QEMU's ivshmem-plain and ivshmem-doorbell) and it reads BAR2's " \
  "size from a 32-bit field, so a Windows guest's shared memory must be at " \
  "most 2 GiB (virtio-win issue #1598): give the VM's memory backend " \
  "size=2G or less, and see the device's status in the Device Manager"

/* the IVSHMEM PCI function's hardware id, without subsystem and revision */
#define IVSHM_HARDWARE_ID "PCI\\VEN_1AF4&DEV_1110"

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


/* Windows has no sysfs: device discovery never reads a directory. Kept for
 * the API; it is what the environment says, or "". */
const char *
ivshm_sysfs_root (void)
{
  const char *env = getenv (IVSHM_SYSFS_ROOT_ENV);

  return env ? env : "";
}

/* A Win32 error as text, without the trailing CR LF. */
static const char *
win_error_text (DWORD code, char *buf, size_t size)
{
  DWORD n = FormatMessageA (FORMAT_MESSAGE_FROM_SYSTEM |
      FORMAT_MESSAGE_IGNORE_INSERTS, NULL, code, 0, buf, (DWORD) size, NULL);

  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
          buf[n - 1] == ' ' || buf[n - 1] == '.'))
    buf[--n] = '\0';
  if (n == 0)
    snprintf (buf, size, "Windows error %lu", (unsigned long) code);
  return buf;
}


/* ---- talking to the driver ---- */

/* Every call that reaches the driver goes through this table: the real
 * Win32 functions, or in a test build only, the driver stand-in. */
static const IvshmWinDriver *
drv (void)
{
  return ivshm_win_driver ();
}

/* Access 0: the driver's IOCTLs are all FILE_ANY_ACCESS, so asking for
 * read or write would only fail where the device's ACL is stricter. */
static HANDLE
open_interface (const char *path)
{
  return drv ()->create_file (path, 0, FILE_SHARE_READ | FILE_SHARE_WRITE,
      NULL, OPEN_EXISTING, 0, NULL);
}

static IvshmStatus
open_error (const char *path, DWORD code, IvshmError * err)
{
  char text[256];

  win_error_text (code, text, sizeof text);
  switch (code) {
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
      return ivshm_error_set (err, IVSHM_ERR_NOT_FOUND, (int) code,
          "cannot open IVSHMEM device %s: %s (was it removed?)", path, text);
    case ERROR_ACCESS_DENIED:
      return ivshm_error_set (err, IVSHM_ERR_PERMISSION, (int) code,
          "cannot open IVSHMEM device %s: %s", path, text);
    default:
      return ivshm_error_set (err, IVSHM_ERR_IO, (int) code,
          "cannot open IVSHMEM device %s: %s", path, text);
  }
}

static IvshmStatus
request_size (HANDLE h, const char *path, uint64_t * size, IvshmError * err)
{
  uint64_t value = 0;
  DWORD got = 0, code;
  char text[256];

  if (!drv ()->device_io_control (h, IVSHM_IOCTL_REQUEST_SIZE, NULL, 0, &value,
          sizeof value, &got, NULL)) {
    code = GetLastError ();
    return ivshm_error_set (err, IVSHM_ERR_IO, (int) code,
        "the IVSHMEM driver did not report the size of %s: %s", path,
        win_error_text (code, text, sizeof text));
  }
  if (got != sizeof value)
    return ivshm_error_set (err, IVSHM_ERR_IO, 0,
        "the IVSHMEM driver answered the size request for %s with %lu "
        "bytes instead of %u; is this the virtio-win ivshmem driver?",
        path, (unsigned long) got, (unsigned) sizeof value);
  *size = value;
  return IVSHM_OK;
}

/* ---- listing ---- */

static int
compare_devices (const void *pa, const void *pb)
{
  const IvshmPciAddr *a = &((const IvshmPciDevice *) pa)->addr;
  const IvshmPciAddr *b = &((const IvshmPciDevice *) pb)->addr;

  if (a->domain != b->domain)
    return a->domain < b->domain ? -1 : 1;
  if (a->bus != b->bus)
    return a->bus < b->bus ? -1 : 1;
  if (a->device != b->device)
    return a->device < b->device ? -1 : 1;
  if (a->function != b->function)
    return a->function < b->function ? -1 : 1;
  return 0;
}

/* Bus, device and function of one device node. Windows does not give the
 * PCI segment (domain) through SetupDi registry properties; QEMU guests
 * have one segment, so the domain is 0. */
static int
device_location (HDEVINFO set, SP_DEVINFO_DATA * info, IvshmPciAddr * addr)
{
  DWORD bus = 0, address = 0, type = 0;

  if (!drv ()->get_registry_property (set, info, SPDRP_BUSNUMBER, &type,
          (PBYTE) & bus, sizeof bus, NULL) || type != REG_DWORD)
    return -1;
  if (!drv ()->get_registry_property (set, info, SPDRP_ADDRESS, &type,
          (PBYTE) & address, sizeof address, NULL) || type != REG_DWORD)
    return -1;
  /* SPDRP_ADDRESS of a PCI device: device number in the high word,
   * function in the low word */
  if (bus > 0xff || (address >> 16) > 0x1f || (address & 0xffff) > 7)
    return -1;
  addr->domain = 0;
  addr->bus = (uint8_t) bus;
  addr->device = (uint8_t) (address >> 16);
  addr->function = (uint8_t) (address & 0xffff);
  return 0;
}

IvshmStatus
ivshm_pci_list (const char *sysfs_root, IvshmPciDevice ** devices,
    size_t *n_devices, IvshmError * err)
{
  HDEVINFO set;
  IvshmPciDevice *list = NULL, *grown;
  size_t n = 0, cap = 0;
  DWORD index, code;
  IvshmStatus status = IVSHM_OK;
  char text[256];

  (void) sysfs_root;
  if (devices == NULL || n_devices == NULL)
    return ivshm_error_set (err, IVSHM_ERR_INVALID_ARG, 0,
        "ivshm_pci_list: devices and n_devices must not be NULL");
  *devices = NULL;
  *n_devices = 0;

  set = drv ()->get_class_devs (&ivshm_interface_guid, NULL, NULL,
      DIGCF_PRESENT | DIGCF_DEVICEINTERFACE);
  if (set == INVALID_HANDLE_VALUE) {
    code = GetLastError ();
    return ivshm_error_set (err, IVSHM_ERR_IO, (int) code,
        "cannot list IVSHMEM devices (SetupDiGetClassDevs): %s",
        win_error_text (code, text, sizeof text));
  }

  for (index = 0; status == IVSHM_OK; index++) {
    SP_DEVICE_INTERFACE_DATA iface = { 0 };
    SP_DEVINFO_DATA info = { 0 };
    SP_DEVICE_INTERFACE_DETAIL_DATA_A *detail;
    DWORD need = 0;
    IvshmPciDevice *d;
    HANDLE h;

    iface.cbSize = sizeof iface;
    if (!drv ()->enum_interfaces (set, NULL, &ivshm_interface_guid,
            index, &iface)) {
      code = GetLastError ();
      if (code != ERROR_NO_MORE_ITEMS)
        status = ivshm_error_set (err, IVSHM_ERR_IO, (int) code,
            "cannot list IVSHMEM devices (SetupDiEnumDeviceInterfaces): %s",
            win_error_text (code, text, sizeof text));
      break;
    }

    /* an interface that is not enabled cannot be opened: a device that
     * its driver did not start (find_device_node says why) */
    if (!(iface.Flags & SPINT_ACTIVE))
      continue;

    /* first call: how big the detail is */
    drv ()->get_interface_detail (set, &iface, NULL, 0, &need, NULL);
    if (need < sizeof (SP_DEVICE_INTERFACE_DETAIL_DATA_A) || need > 65536)
      continue;
    detail = calloc (1, need);
    if (detail == NULL) {
      status = ivshm_error_set (err, IVSHM_ERR_NO_MEMORY, 0, "out of memory");
      break;
    }
    detail->cbSize = sizeof (SP_DEVICE_INTERFACE_DETAIL_DATA_A);
    info.cbSize = sizeof info;
    if (!drv ()->get_interface_detail (set, &iface, detail, need, NULL,
            &info)) {
      free (detail);
      continue;                 /* removed meanwhile */
    }

    if (n == cap) {
      size_t new_cap = cap ? cap * 2 : 4;
      grown = realloc (list, new_cap * sizeof *list);
      if (grown == NULL) {
        free (detail);
        status = ivshm_error_set (err, IVSHM_ERR_NO_MEMORY, 0,
            "out of memory");
        break;
      }
      list = grown;
      cap = new_cap;
    }
    d = &list[n];
    memset (d, 0, sizeof *d);
    if (strlen (detail->DevicePath) >= sizeof d->resource_path) {
      status = ivshm_error_set (err, IVSHM_ERR_IO, 0,
          "the IVSHMEM device path %.100s... is longer than %u bytes",
          detail->DevicePath, (unsigned) sizeof d->resource_path - 1);
      free (detail);
      break;
    }
    snprintf (d->sysfs_path, sizeof d->sysfs_path, "%s", detail->DevicePath);
    snprintf (d->resource_path, sizeof d->resource_path, "%s",
        detail->DevicePath);
    free (detail);

    if (device_location (set, &info, &d->addr) == 0) {
      ivshm_pci_addr_format (&d->addr, d->location);
    } else {
      /* unknown: sorts last, shown as "" */
      d->addr.domain = 0xffff;
      d->addr.bus = 0xff;
      d->addr.device = 0xff;
      d->addr.function = 0xff;
    }

    /* The size needs a handle; a device that cannot be opened is listed
     * with size 0 (opening it will say why). */
    h = open_interface (d->resource_path);
    if (h != INVALID_HANDLE_VALUE) {
      if (request_size (h, d->resource_path, &d->size, NULL) != IVSHM_OK)
        d->size = 0;
      drv ()->close_handle (h);
    }
    n++;
  }
  drv ()->destroy_list (set);

  if (status != IVSHM_OK) {
    free (list);
    return status;
  }
  if (n == 0) {
    free (list);
    return IVSHM_OK;
  }
  qsort (list, n, sizeof *list, compare_devices);
  *devices = list;
  *n_devices = n;
  return IVSHM_OK;
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
      shown, win_error_text (code, text, sizeof text));
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

  h = open_interface (path);
  if (h == INVALID_HANDLE_VALUE) {
    status = open_error (path, GetLastError (), err);
    CloseHandle (lock);
    return status;
  }

  status = request_size (h, path, &size, err);
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
          win_error_text (code, text, sizeof text));
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

/* ---- a device without a usable interface ---- */

/* One IVSHMEM PCI device node, found when no interface answered. */
typedef struct
{
  int found;
  ULONG status, problem;        /* CM_Get_DevNode_Status; problem 0: none */
  char location[IVSHM_PCI_ADDR_STRLEN];
} IvshmDevNode;

/* Whether a REG_MULTI_SZ list of hardware ids names the IVSHMEM function. */
static int
is_ivshmem_hardware_id (const char *ids, DWORD size)
{
  size_t want = strlen (IVSHM_HARDWARE_ID);
  DWORD i = 0;

  while (i < size && ids[i] != '\0') {
    size_t len = strnlen (ids + i, size - i);

    if (len >= want && _strnicmp (ids + i, IVSHM_HARDWARE_ID, want) == 0
        && (ids[i + want] == '\0' || ids[i + want] == '&'))
      return 1;
    i += (DWORD) len + 1;
  }
  return 0;
}

/* Looks for the IVSHMEM PCI device node (at `want`, or any when NULL)
 * among all present devices, preferring one with a problem code: the
 * Device Manager's view of a device that has no enabled interface. */
static void
find_device_node (const IvshmPciAddr * want, IvshmDevNode * node)
{
  HDEVINFO set;
  DWORD index;

  memset (node, 0, sizeof *node);
  set = drv ()->get_class_devs (NULL, "PCI", NULL,
      DIGCF_ALLCLASSES | DIGCF_PRESENT);
  if (set == INVALID_HANDLE_VALUE)
    return;
  for (index = 0; index < 4096; index++) {
    SP_DEVINFO_DATA info = { 0 };
    char ids[1024];
    DWORD type = 0, got = 0;
    ULONG status = 0, problem = 0;
    IvshmPciAddr addr;
    int located;

    info.cbSize = sizeof info;
    if (!drv ()->enum_device_info (set, index, &info))
      break;
    memset (ids, 0, sizeof ids);
    if (!drv ()->get_registry_property (set, &info, SPDRP_HARDWAREID, &type,
            (PBYTE) ids, sizeof ids - 2, &got) || type != REG_MULTI_SZ
        || !is_ivshmem_hardware_id (ids, got < sizeof ids ? got : sizeof ids))
      continue;
    located = device_location (set, &info, &addr) == 0;
    if (want != NULL && (!located || addr.domain != want->domain
            || addr.bus != want->bus
            || addr.device != want->device
            || addr.function != want->function))
      continue;
    if (drv ()->get_devnode_status (&status, &problem, info.DevInst, 0)
        != CR_SUCCESS)
      continue;
    if (!(status & DN_HAS_PROBLEM))
      problem = 0;
    if (node->found && (node->problem != 0 || problem == 0))
      continue;
    node->found = 1;
    node->status = status;
    node->problem = problem;
    if (located)
      ivshm_pci_addr_format (&addr, node->location);
    else
      snprintf (node->location, sizeof node->location, "?");
  }
  drv ()->destroy_list (set);
}

/* The error for a device node without a usable interface. */
static IvshmStatus
device_node_error (const IvshmDevNode * node, IvshmError * err)
{
  switch (node->problem) {
    case 0:
      /* started, but not by the IVSHMEM driver: machine.inf's null driver
       * ("PCI standard RAM Controller") */
      return ivshm_error_set (err, IVSHM_ERR_NOT_FOUND, 0,
          "the IVSHMEM device at PCI %s has no IVSHMEM driver (Windows runs "
          "it as a \"PCI standard RAM Controller\"): " DRIVER_HINT,
          node->location);
    case CM_PROB_NOT_CONFIGURED:
    case CM_PROB_REINSTALL:
    case CM_PROB_FAILED_INSTALL:
      return ivshm_error_set (err, IVSHM_ERR_NOT_FOUND, 0,
          "the IVSHMEM device at PCI %s has no driver (Device Manager "
          "problem code %lu): " DRIVER_HINT, node->location,
          (unsigned long) node->problem);
    case CM_PROB_DISABLED:
      return ivshm_error_set (err, IVSHM_ERR_NOT_FOUND, 0,
          "the IVSHMEM device at PCI %s is disabled (Device Manager problem "
          "code 22): enable it in the Device Manager", node->location);
    default:
      return ivshm_error_set (err, IVSHM_ERR_NOT_FOUND, 0,
          "the IVSHMEM device at PCI %s is there, but the IVSHMEM driver did "
          "not start it (Device Manager problem code %lu%s): " START_RULES,
          node->location, (unsigned long) node->problem,
          node->problem == CM_PROB_FAILED_START ?
          ", \"This device cannot start\"" : "");
  }
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
  find_device_node (want, &node);
  if (node.found)
    return device_node_error (&node, err);
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
