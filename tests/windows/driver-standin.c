/* gst-ivshmem: TEST ONLY: a stand-in for the virtio-win IVSHMEM driver
 * SPDX-License-Identifier: MIT
 *
 * Linked instead of common/ivshmem-win32-driver.c only when the build has
 * -Dwindows_driver_standin=true (tests/windows: the wine suite). A shipped
 * build never contains it.
 *
 * The driver cannot run under wine. This stand-in keeps its documented
 * user-space contract (virtio-win ivshmem/Public.h and the driver's
 * IOCTL handler) and serves files instead of BAR2:
 *  - SetupDi lists one device interface of class
 *    {df576976-569d-4672-95a0-f57e4ea0b210} per file, with a PCI bus
 *    number 0 and device number 3, 4, ... (0000:00:03.0, ...);
 *  - IOCTL_IVSHMEM_REQUEST_SIZE answers the file's size in a UINT64, and
 *    wants exactly that output buffer;
 *  - IOCTL_IVSHMEM_REQUEST_MMAP wants exactly a 1-byte IVSHMEM_MMAP_CONFIG
 *    in and a 32-byte IVSHMEM_MMAP out, maps the whole file and answers
 *    its address;
 *  - IOCTL_IVSHMEM_RELEASE_MMAP, or closing the handle, unmaps it;
 *  - ONE mapping per device in the whole "guest" (every process of the
 *    wineserver): a second REQUEST_MMAP fails with
 *    ERROR_DEVICE_ALREADY_ATTACHED until the first is released. A named
 *    kernel object held while mapped makes that rule hold across
 *    processes, and it goes away with the process, as the driver's does.
 *
 * IVSHMEM_STANDIN_DEVICES lists the files, separated by ';'
 * (Z:\dev\shm\NAME under wine: a native process maps the same bytes). When
 * it is not set, every call goes to the real Win32 functions: that is a
 * machine without the driver.
 */
#include "ivshmem-win32-driver.h"

#include <winioctl.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STANDIN_ENV "IVSHMEM_STANDIN_DEVICES"
#define STANDIN_MAX 8
#define SET_MAGIC 0x53544e44u   /* "STND" */

/* the driver's published interface, restated (as in the region code) */
static const GUID standin_guid = {
  0xdf576976, 0x569d, 0x4672,
  {0x95, 0xa0, 0xf5, 0x7e, 0x4e, 0xa0, 0xb2, 0x10}
};

#define STANDIN_REQUEST_SIZE \
  CTL_CODE (FILE_DEVICE_UNKNOWN, 0x801, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define STANDIN_REQUEST_MMAP \
  CTL_CODE (FILE_DEVICE_UNKNOWN, 0x802, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define STANDIN_RELEASE_MMAP \
  CTL_CODE (FILE_DEVICE_UNKNOWN, 0x803, METHOD_BUFFERED, FILE_ANY_ACCESS)

#ifndef ERROR_DEVICE_ALREADY_ATTACHED
#define ERROR_DEVICE_ALREADY_ATTACHED 548L
#endif

typedef struct
{
  uint16_t peer_id;
  uint64_t size;
  void *ptr;
  uint16_t vectors;
} StandinMmap;

_Static_assert (sizeof (StandinMmap) == 32, "IVSHMEM_MMAP is 32 bytes");

typedef struct
{
  char file[MAX_PATH];
  char iface[160];
} StandinDev;

typedef struct
{
  uint32_t magic;
  int n;
  StandinDev devs[STANDIN_MAX];
} StandinSet;

/* One open interface handle. */
typedef struct StandinHandle
{
  struct StandinHandle *next;
  HANDLE file;
  HANDLE lock;                  /* the named object: "this device is mapped" */
  HANDLE mapping;
  void *view;
  char lock_name[MAX_PATH];
} StandinHandle;

static SRWLOCK handles_lock = SRWLOCK_INIT;
static StandinHandle *handles;

/* Parses the environment (again at each call: it is tiny). */
static int
standin_devices (StandinDev * devs)
{
  const char *env = getenv (STANDIN_ENV);
  int n = 0;

  while (env != NULL && *env != '\0' && n < STANDIN_MAX) {
    const char *end = strchr (env, ';');
    size_t len = end ? (size_t) (end - env) : strlen (env);

    if (len > 0 && len < MAX_PATH) {
      memcpy (devs[n].file, env, len);
      devs[n].file[len] = '\0';
      snprintf (devs[n].iface, sizeof devs[n].iface,
          "\\\\?\\pci#ven_1af4&dev_1110&subsys_11001af4&rev_01#standin&%d#"
          "{df576976-569d-4672-95a0-f57e4ea0b210}", n);
      n++;
    }
    env = end ? end + 1 : NULL;
  }
  return n;
}

static BOOL
standin_active (void)
{
  return getenv (STANDIN_ENV) != NULL;
}

static BOOL
fail (DWORD code)
{
  SetLastError (code);
  return FALSE;
}

/* ---- SetupDi ---- */

static HDEVINFO WINAPI
standin_get_class_devs (const GUID * guid, PCSTR enumerator, HWND parent,
    DWORD flags)
{
  StandinSet *set;

  if (!standin_active ())
    return SetupDiGetClassDevsA (guid, enumerator, parent, flags);
  set = calloc (1, sizeof *set);
  if (set == NULL) {
    SetLastError (ERROR_NOT_ENOUGH_MEMORY);
    return INVALID_HANDLE_VALUE;
  }
  set->magic = SET_MAGIC;
  if (guid != NULL && IsEqualGUID (guid, &standin_guid)
      && (flags & DIGCF_DEVICEINTERFACE))
    set->n = standin_devices (set->devs);
  return (HDEVINFO) set;
}

static StandinSet *
as_set (HDEVINFO h)
{
  StandinSet *set = (StandinSet *) h;

  return set != NULL && set->magic == SET_MAGIC ? set : NULL;
}

static BOOL WINAPI
standin_enum_interfaces (HDEVINFO h, PSP_DEVINFO_DATA info,
    const GUID * guid, DWORD index, PSP_DEVICE_INTERFACE_DATA iface)
{
  StandinSet *set;

  if (!standin_active ())
    return SetupDiEnumDeviceInterfaces (h, info, guid, index, iface);
  set = as_set (h);
  if (set == NULL)
    return fail (ERROR_INVALID_HANDLE);
  if (iface == NULL || iface->cbSize != sizeof *iface)
    return fail (ERROR_INVALID_USER_BUFFER);
  if (index >= (DWORD) set->n || guid == NULL
      || !IsEqualGUID (guid, &standin_guid))
    return fail (ERROR_NO_MORE_ITEMS);
  iface->InterfaceClassGuid = standin_guid;
  iface->Flags = SPINT_ACTIVE;
  iface->Reserved = index + 1;
  return TRUE;
}

static BOOL WINAPI
standin_get_interface_detail (HDEVINFO h, PSP_DEVICE_INTERFACE_DATA iface,
    PSP_DEVICE_INTERFACE_DETAIL_DATA_A detail, DWORD size, PDWORD need,
    PSP_DEVINFO_DATA info)
{
  StandinSet *set;
  const char *path;
  DWORD required;
  ULONG_PTR i;

  if (!standin_active ())
    return SetupDiGetDeviceInterfaceDetailA (h, iface, detail, size, need,
        info);
  set = as_set (h);
  if (set == NULL)
    return fail (ERROR_INVALID_HANDLE);
  if (iface == NULL || iface->Reserved == 0
      || iface->Reserved > (ULONG_PTR) set->n)
    return fail (ERROR_INVALID_PARAMETER);
  i = iface->Reserved - 1;
  path = set->devs[i].iface;
  required = (DWORD) (offsetof (SP_DEVICE_INTERFACE_DETAIL_DATA_A,
          DevicePath) + strlen (path) + 1);
  if (need != NULL)
    *need = required;
  if (detail == NULL || size < required)
    return fail (ERROR_INSUFFICIENT_BUFFER);
  if (detail->cbSize != sizeof (SP_DEVICE_INTERFACE_DETAIL_DATA_A))
    return fail (ERROR_INVALID_USER_BUFFER);
  memcpy (detail->DevicePath, path, strlen (path) + 1);
  if (info != NULL) {
    if (info->cbSize != sizeof *info)
      return fail (ERROR_INVALID_USER_BUFFER);
    info->DevInst = (DWORD) i + 1;
    info->Reserved = i + 1;
  }
  return TRUE;
}

static BOOL WINAPI
standin_get_registry_property (HDEVINFO h, PSP_DEVINFO_DATA info,
    DWORD property, PDWORD type, PBYTE buffer, DWORD size, PDWORD need)
{
  StandinSet *set;
  DWORD value;

  if (!standin_active ())
    return SetupDiGetDeviceRegistryPropertyA (h, info, property, type,
        buffer, size, need);
  set = as_set (h);
  if (set == NULL || info == NULL || info->Reserved == 0
      || info->Reserved > (ULONG_PTR) set->n)
    return fail (ERROR_INVALID_PARAMETER);
  if (property == SPDRP_BUSNUMBER)
    value = 0;
  else if (property == SPDRP_ADDRESS)   /* device << 16 | function */
    value = (DWORD) (3 + info->Reserved - 1) << 16;
  else
    return fail (ERROR_INVALID_DATA);
  if (need != NULL)
    *need = sizeof value;
  if (buffer == NULL || size < sizeof value)
    return fail (ERROR_INSUFFICIENT_BUFFER);
  if (type != NULL)
    *type = REG_DWORD;
  memcpy (buffer, &value, sizeof value);
  return TRUE;
}

static BOOL WINAPI
standin_destroy_list (HDEVINFO h)
{
  StandinSet *set;

  if (!standin_active ())
    return SetupDiDestroyDeviceInfoList (h);
  set = as_set (h);
  if (set == NULL)
    return fail (ERROR_INVALID_HANDLE);
  set->magic = 0;
  free (set);
  return TRUE;
}

/* ---- the device handle ---- */

static HANDLE WINAPI
standin_create_file (LPCSTR path, DWORD access, DWORD share,
    LPSECURITY_ATTRIBUTES sa, DWORD disposition, DWORD flags, HANDLE tmpl)
{
  StandinDev devs[STANDIN_MAX];
  StandinHandle *sh;
  int n, i;
  char *c;

  n = standin_active ()? standin_devices (devs) : 0;
  for (i = 0; i < n; i++)
    if (path != NULL && _stricmp (path, devs[i].iface) == 0)
      break;
  if (i == n)
    return CreateFileA (path, access, share, sa, disposition, flags, tmpl);

  sh = calloc (1, sizeof *sh);
  if (sh == NULL) {
    SetLastError (ERROR_NOT_ENOUGH_MEMORY);
    return INVALID_HANDLE_VALUE;
  }
  sh->file = CreateFileA (devs[i].file, GENERIC_READ | GENERIC_WRITE,
      FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
      OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
  if (sh->file == INVALID_HANDLE_VALUE) {
    DWORD code = GetLastError ();
    free (sh);
    SetLastError (code);
    return INVALID_HANDLE_VALUE;
  }
  /* one name per device file, for the whole wineserver */
  snprintf (sh->lock_name, sizeof sh->lock_name,
      "Local\\gst-ivshmem-standin-%s", devs[i].file);
  for (c = sh->lock_name + 6; *c; c++)
    if (*c == '\\' || *c == ':' || *c == '/')
      *c = '_';
  AcquireSRWLockExclusive (&handles_lock);
  sh->next = handles;
  handles = sh;
  ReleaseSRWLockExclusive (&handles_lock);
  return (HANDLE) sh;
}

/* Ours, or NULL for a handle the stand-in did not make. */
static StandinHandle *
find_handle (HANDLE h, BOOL unlink)
{
  StandinHandle **p, *found = NULL;

  AcquireSRWLockExclusive (&handles_lock);
  for (p = &handles; *p != NULL; p = &(*p)->next) {
    if ((HANDLE) * p == h) {
      found = *p;
      if (unlink)
        *p = found->next;
      break;
    }
  }
  ReleaseSRWLockExclusive (&handles_lock);
  return found;
}

static void
release_mapping (StandinHandle * sh)
{
  if (sh->view != NULL)
    UnmapViewOfFile (sh->view);
  if (sh->mapping != NULL)
    CloseHandle (sh->mapping);
  if (sh->lock != NULL)
    CloseHandle (sh->lock);
  sh->view = NULL;
  sh->mapping = NULL;
  sh->lock = NULL;
}

static BOOL
request_mmap (StandinHandle * sh, const void *in, DWORD in_size, void *out,
    DWORD out_size, LPDWORD got)
{
  StandinMmap map = { 0 };
  LARGE_INTEGER size;
  HANDLE lock;

  if (in == NULL || in_size != 1 || out == NULL
      || out_size != sizeof (StandinMmap))
    return fail (ERROR_INVALID_PARAMETER);
  if (*(const uint8_t *) in > 2)        /* cached, uncached, write-combined */
    return fail (ERROR_INVALID_PARAMETER);
  if (sh->view != NULL)
    return fail (ERROR_DEVICE_ALREADY_ATTACHED);
  lock = CreateEventA (NULL, TRUE, FALSE, sh->lock_name);
  if (lock == NULL)
    return FALSE;
  if (GetLastError () == ERROR_ALREADY_EXISTS) {
    CloseHandle (lock);
    return fail (ERROR_DEVICE_ALREADY_ATTACHED);
  }
  sh->lock = lock;
  if (!GetFileSizeEx (sh->file, &size) || size.QuadPart <= 0)
    goto io_error;
  sh->mapping = CreateFileMappingA (sh->file, NULL, PAGE_READWRITE, 0, 0,
      NULL);
  if (sh->mapping == NULL)
    goto io_error;
  sh->view = MapViewOfFile (sh->mapping, FILE_MAP_ALL_ACCESS, 0, 0, 0);
  if (sh->view == NULL)
    goto io_error;
  map.size = (uint64_t) size.QuadPart;
  map.ptr = sh->view;
  memcpy (out, &map, sizeof map);
  if (got != NULL)
    *got = sizeof map;
  return TRUE;

io_error:
  release_mapping (sh);
  return fail (ERROR_IO_DEVICE);
}

static BOOL WINAPI
standin_device_io_control (HANDLE h, DWORD code, LPVOID in, DWORD in_size,
    LPVOID out, DWORD out_size, LPDWORD got, LPOVERLAPPED overlapped)
{
  StandinHandle *sh = find_handle (h, FALSE);
  LARGE_INTEGER size;
  uint64_t value;

  if (sh == NULL)
    return DeviceIoControl (h, code, in, in_size, out, out_size, got,
        overlapped);
  if (got != NULL)
    *got = 0;
  switch (code) {
    case STANDIN_REQUEST_SIZE:
      if (out == NULL || out_size != sizeof value)
        return fail (ERROR_INVALID_PARAMETER);
      if (!GetFileSizeEx (sh->file, &size))
        return FALSE;
      value = (uint64_t) size.QuadPart;
      memcpy (out, &value, sizeof value);
      if (got != NULL)
        *got = sizeof value;
      return TRUE;
    case STANDIN_REQUEST_MMAP:
      return request_mmap (sh, in, in_size, out, out_size, got);
    case STANDIN_RELEASE_MMAP:
      if (sh->view == NULL)
        return fail (ERROR_INVALID_PARAMETER);
      release_mapping (sh);
      return TRUE;
    default:
      return fail (ERROR_INVALID_FUNCTION);
  }
}

static BOOL WINAPI
standin_close_handle (HANDLE h)
{
  StandinHandle *sh = find_handle (h, TRUE);

  if (sh == NULL)
    return CloseHandle (h);
  release_mapping (sh);
  CloseHandle (sh->file);
  free (sh);
  return TRUE;
}

static const IvshmWinDriver standin_driver = {
  "stand-in (tests only)",
  standin_get_class_devs,
  standin_enum_interfaces,
  standin_get_interface_detail,
  standin_get_registry_property,
  standin_destroy_list,
  standin_create_file,
  standin_device_io_control,
  standin_close_handle,
};

const IvshmWinDriver *
ivshm_win_driver (void)
{
  return &standin_driver;
}
