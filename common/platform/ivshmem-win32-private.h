/* gst-ivshmem: the Windows back end, shared by its two files
 * SPDX-License-Identifier: MIT
 *
 * Not installed, not for the elements. Windows guests reach BAR2 only
 * through the virtio-win IVSHMEM driver (ivshmem-win32-driver.h is the
 * table of the Win32 calls that reach it):
 *  - ivshmem-pci-win32.c finds the devices: their interfaces (SetupDi),
 *    locations and sizes, and the device nodes the driver did not start;
 *  - ivshmem-region-win32.c maps one: the guest-wide one-element lock,
 *    the cache mode, the IvshmRegion API.
 *
 * The numeric IOCTL codes, the interface GUID and the layout of the MMAP
 * structures are the driver's published user-space interface, from
 * virtio-win's ivshmem/Public.h (kvm-guest-drivers-windows). They are
 * restated here (not included) so a build needs no driver kit; the
 * _Static_asserts below pin them.
 */
#ifndef IVSHMEM_WIN32_PRIVATE_H
#define IVSHMEM_WIN32_PRIVATE_H

#include "ivshmem-region.h"
#include "ivshmem-win32-driver.h"

#include <windows.h>
#include <winioctl.h>
#include <setupapi.h>

#include <stddef.h>
#include <stdint.h>

/* ---- the driver's interface (virtio-win ivshmem/Public.h) ---- */

/* {df576976-569d-4672-95a0-f57e4ea0b210}: GUID_DEVINTERFACE_IVSHMEM
 * (ivshmem-pci-win32.c) */
extern const GUID ivshm_win_interface_guid;

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

/* A Win32 error as text, without the trailing CR LF. */
const char *ivshm_win_error_text (DWORD code, char *buf, size_t size);
/* Opens a device interface with access 0: the driver's IOCTLs are all
 * FILE_ANY_ACCESS, so asking for read or write would only fail where the
 * device's ACL is stricter. */
HANDLE ivshm_win_open_interface (const char *path);
/* The error of a failed ivshm_win_open_interface(). */
IvshmStatus ivshm_win_open_error (const char *path, DWORD code,
    IvshmError * err);
/* BAR2's size, as the driver reports it (IOCTL_IVSHMEM_REQUEST_SIZE). */
IvshmStatus ivshm_win_request_size (HANDLE h, const char *path,
    uint64_t * size, IvshmError * err);

/* One IVSHMEM PCI device node, found when no interface answered. */
typedef struct
{
  int found;
  ULONG status, problem;        /* CM_Get_DevNode_Status; problem 0: none */
  char location[IVSHM_PCI_ADDR_STRLEN];
} IvshmDevNode;

/* Looks for the IVSHMEM PCI device node (at `want`, or any when NULL)
 * among all present devices, preferring one with a problem code: the
 * Device Manager's view of a device that has no enabled interface. */
void ivshm_win_find_device_node (const IvshmPciAddr * want,
    IvshmDevNode * node);
/* The error for a device node without a usable interface. */
IvshmStatus ivshm_win_device_node_error (const IvshmDevNode * node,
    IvshmError * err);

#endif /* IVSHMEM_WIN32_PRIVATE_H */
