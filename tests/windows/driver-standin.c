/* gst-ivshmem: TEST ONLY: a stand-in for the virtio-win IVSHMEM driver
 * SPDX-License-Identifier: MIT
 *
 * Linked instead of common/platform/ivshmem-win32-driver.c only when the build has
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
 *    wineserver), as every driver build but those of March 2024 to October
 *    2025: a second REQUEST_MMAP fails with ERROR_DEVICE_ALREADY_ATTACHED
 *    until the first is released. A named kernel object held while mapped
 *    makes that rule hold across processes, and it goes away with the
 *    process, as the driver's does;
 *  - SetupDi with the enumerator "PCI" lists one device node per file,
 *    hardware id PCI\VEN_1AF4&DEV_1110&SUBSYS_11001AF4&REV_01, and
 *    CM_Get_DevNode_Status says it is started.
 *
 * IVSHMEM_STANDIN_DEVICES lists the files, separated by ';'
 * (Z:\dev\shm\NAME under wine: a native process maps the same bytes). When
 * it is not set, every call goes to the real Win32 functions: that is a
 * machine without the driver.
 *
 * Switches (environment variables) for what other drivers and guests do:
 *  - IVSHMEM_STANDIN_MAPPING=per-handle: the driver builds of March 2024 to
 *    October 2025 (virtio-win commit 042b7c6f, reverted by 2cb82f93): one
 *    mapping per handle, any number per device;
 *  - IVSHMEM_STANDIN_ACL=access-0: the device's ACL grants no right, so
 *    CreateFile with any access but 0 fails with ERROR_ACCESS_DENIED (the
 *    driver's IOCTLs are FILE_ANY_ACCESS: a handle of access 0 uses them);
 *  - IVSHMEM_STANDIN_PROBLEM=N: the driver did not start the devices:
 *    their device nodes have problem code N (10: "This device cannot
 *    start", what the driver's refusal of a BAR0 that is not 256 bytes or
 *    of a BAR2 above 2 GiB gives), their interfaces are listed but not
 *    enabled and do not open. N=0: the node is started by another driver
 *    (Windows' "PCI standard RAM Controller"), with no interface at all;
 *  - IVSHMEM_STANDIN_CACHE_LOG=FILE: each REQUEST_MMAP appends
 *    "cache-mode N" (its IVSHMEM_MMAP_CONFIG.cacheMode) to FILE;
 *  - IVSHMEM_STANDIN_FOREIGN=mapped: another program that is not
 *    gst-ivshmem (Looking Glass) holds each device's one mapping, so every
 *    REQUEST_MMAP fails with ERROR_DEVICE_ALREADY_ATTACHED.
 */
#include "ivshmem-win32-driver.h"

#include <winioctl.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STANDIN_ENV "IVSHMEM_STANDIN_DEVICES"
#define MAPPING_ENV "IVSHMEM_STANDIN_MAPPING"
#define ACL_ENV "IVSHMEM_STANDIN_ACL"
#define PROBLEM_ENV "IVSHMEM_STANDIN_PROBLEM"
#define CACHE_LOG_ENV "IVSHMEM_STANDIN_CACHE_LOG"
#define FOREIGN_ENV "IVSHMEM_STANDIN_FOREIGN"
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

/* A SetupDi list: the device interfaces, or the PCI device nodes. */
typedef struct
{
  uint32_t magic;
  BOOL nodes;
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
switch_is (const char *name, const char *value)
{
  const char *env = getenv (name);

  return env != NULL && strcmp (env, value) == 0;
}

/* IVSHMEM_STANDIN_PROBLEM: -1 when the driver started the devices */
static long
problem_code (void)
{
  const char *env = getenv (PROBLEM_ENV);

  return env != NULL && *env != '\0' ? strtol (env, NULL, 10) : -1;
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
      && (flags & DIGCF_DEVICEINTERFACE)) {
    /* problem 0: another driver runs the device: no interface at all */
    if (problem_code () != 0)
      set->n = standin_devices (set->devs);
  } else if (guid == NULL && enumerator != NULL
      && _stricmp (enumerator, "PCI") == 0 && (flags & DIGCF_ALLCLASSES)) {
    set->nodes = TRUE;
    set->n = standin_devices (set->devs);
  }
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
  if (set->nodes || index >= (DWORD) set->n || guid == NULL
      || !IsEqualGUID (guid, &standin_guid))
    return fail (ERROR_NO_MORE_ITEMS);
  iface->InterfaceClassGuid = standin_guid;
  /* a device that did not start has its interface, not enabled */
  iface->Flags = problem_code () > 0 ? 0 : SPINT_ACTIVE;
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
  if (set->nodes || iface == NULL || iface->Reserved == 0
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
standin_enum_device_info (HDEVINFO h, DWORD index, PSP_DEVINFO_DATA info)
{
  StandinSet *set;

  if (!standin_active ())
    return SetupDiEnumDeviceInfo (h, index, info);
  set = as_set (h);
  if (set == NULL)
    return fail (ERROR_INVALID_HANDLE);
  if (info == NULL || info->cbSize != sizeof *info)
    return fail (ERROR_INVALID_USER_BUFFER);
  if (!set->nodes || index >= (DWORD) set->n)
    return fail (ERROR_NO_MORE_ITEMS);
  memset (&info->ClassGuid, 0, sizeof info->ClassGuid);
  info->DevInst = index + 1;
  info->Reserved = index + 1;
  return TRUE;
}

/* Device instance i + 1 is device i of IVSHMEM_STANDIN_DEVICES. */
static CONFIGRET WINAPI
standin_get_devnode_status (PULONG status, PULONG problem, DEVINST node,
    ULONG flags)
{
  StandinDev devs[STANDIN_MAX];
  long code;

  if (!standin_active ())
    return CM_Get_DevNode_Status (status, problem, node, flags);
  if (status == NULL || problem == NULL)
    return CR_INVALID_POINTER;
  if (node == 0 || node > (DEVINST) standin_devices (devs))
    return CR_NO_SUCH_DEVINST;
  code = problem_code ();
  *status = DN_DRIVER_LOADED | DN_STARTED;
  *problem = 0;
  if (code > 0) {
    *status = DN_HAS_PROBLEM;
    *problem = (ULONG) code;
  }
  return CR_SUCCESS;
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
  if (property == SPDRP_HARDWAREID) {
    static const char ids[] =
        "PCI\\VEN_1AF4&DEV_1110&SUBSYS_11001AF4&REV_01\0"
        "PCI\\VEN_1AF4&DEV_1110&SUBSYS_11001AF4\0"
        "PCI\\VEN_1AF4&DEV_1110&CC_050000\0" "PCI\\VEN_1AF4&DEV_1110\0";
    /* sizeof counts the final NUL: the list's double NUL */
    if (need != NULL)
      *need = sizeof ids;
    if (buffer == NULL || size < sizeof ids)
      return fail (ERROR_INSUFFICIENT_BUFFER);
    if (type != NULL)
      *type = REG_MULTI_SZ;
    memcpy (buffer, ids, sizeof ids);
    return TRUE;
  }
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
  /* the interface of a device that did not start is not enabled */
  if (problem_code () > 0) {
    SetLastError (ERROR_FILE_NOT_FOUND);
    return INVALID_HANDLE_VALUE;
  }
  /* an ACL that grants no right: only an open that asks for none passes */
  if (switch_is (ACL_ENV, "access-0") && access != 0) {
    SetLastError (ERROR_ACCESS_DENIED);
    return INVALID_HANDLE_VALUE;
  }

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

/* IVSHMEM_STANDIN_CACHE_LOG: one line per mapping asked for */
static void
record_cache_mode (uint8_t mode)
{
  const char *log = getenv (CACHE_LOG_ENV);
  char line[32];
  DWORD wrote;
  HANDLE f;
  int n;

  if (log == NULL || *log == '\0')
    return;
  f = CreateFileA (log, FILE_APPEND_DATA, FILE_SHARE_READ | FILE_SHARE_WRITE,
      NULL, OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
  if (f == INVALID_HANDLE_VALUE)
    return;
  n = snprintf (line, sizeof line, "cache-mode %u\n", (unsigned) mode);
  WriteFile (f, line, (DWORD) n, &wrote, NULL);
  CloseHandle (f);
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
  /* the driver checks for a mapping first, then the input */
  if (sh->view != NULL || switch_is (FOREIGN_ENV, "mapped"))
    return fail (ERROR_DEVICE_ALREADY_ATTACHED);
  if (*(const uint8_t *) in > 2)        /* uncached, cached, write-combined */
    return fail (ERROR_INVALID_PARAMETER);
  record_cache_mode (*(const uint8_t *) in);
  /* per-handle builds: any number of mappings per device */
  if (!switch_is (MAPPING_ENV, "per-handle")) {
    lock = CreateEventA (NULL, TRUE, FALSE, sh->lock_name);
    if (lock == NULL)
      return FALSE;
    if (GetLastError () == ERROR_ALREADY_EXISTS) {
      CloseHandle (lock);
      return fail (ERROR_DEVICE_ALREADY_ATTACHED);
    }
    sh->lock = lock;
  }
  if (!GetFileSizeEx (sh->file, &size) || size.QuadPart <= 0)
    goto io_error;
  sh->mapping = CreateFileMappingA (sh->file, NULL, PAGE_READWRITE, 0, 0, NULL);
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
  standin_enum_device_info,
  standin_get_devnode_status,
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
