/* gst-ivshmem: the Win32 calls that reach the IVSHMEM driver
 * SPDX-License-Identifier: MIT
 *
 * ivshmem-region-win32.c talks to the virtio-win IVSHMEM driver through
 * this table and nothing else: SetupDi to list the device interfaces,
 * CreateFile/DeviceIoControl/CloseHandle on one interface, and SetupDi
 * with CfgMgr32 to find an IVSHMEM PCI device node that has no usable
 * interface (no driver, or a driver that did not start the device).
 *
 * The shipped build links ivshmem-win32-driver.c, whose table holds the
 * real Win32 functions. Only a test build (meson option
 * windows_driver_standin=true) links tests/windows/driver-standin.c
 * instead: a stand-in that keeps the driver's documented contract and
 * serves files, so that the wine tests can run the same region code.
 */
#ifndef IVSHMEM_WIN32_DRIVER_H
#define IVSHMEM_WIN32_DRIVER_H

#include <windows.h>
#include <setupapi.h>
#include <cfgmgr32.h>

typedef struct
{
  /* a short name for messages: "virtio-win" or "stand-in" */
  const char *name;
  HDEVINFO (WINAPI * get_class_devs) (const GUID * guid, PCSTR enumerator,
      HWND parent, DWORD flags);
  BOOL (WINAPI * enum_interfaces) (HDEVINFO set, PSP_DEVINFO_DATA info,
      const GUID * guid, DWORD index, PSP_DEVICE_INTERFACE_DATA iface);
  BOOL (WINAPI * get_interface_detail) (HDEVINFO set,
      PSP_DEVICE_INTERFACE_DATA iface,
      PSP_DEVICE_INTERFACE_DETAIL_DATA_A detail, DWORD size, PDWORD need,
      PSP_DEVINFO_DATA info);
  BOOL (WINAPI * get_registry_property) (HDEVINFO set, PSP_DEVINFO_DATA info,
      DWORD property, PDWORD type, PBYTE buffer, DWORD size, PDWORD need);
  BOOL (WINAPI * enum_device_info) (HDEVINFO set, DWORD index,
      PSP_DEVINFO_DATA info);
  CONFIGRET (WINAPI * get_devnode_status) (PULONG status, PULONG problem,
      DEVINST node, ULONG flags);
  BOOL (WINAPI * destroy_list) (HDEVINFO set);
  HANDLE (WINAPI * create_file) (LPCSTR path, DWORD access, DWORD share,
      LPSECURITY_ATTRIBUTES sa, DWORD disposition, DWORD flags,
      HANDLE template_file);
  BOOL (WINAPI * device_io_control) (HANDLE h, DWORD code, LPVOID in,
      DWORD in_size, LPVOID out, DWORD out_size, LPDWORD got,
      LPOVERLAPPED overlapped);
  BOOL (WINAPI * close_handle) (HANDLE h);
} IvshmWinDriver;

/* The table in use (never NULL). */
const IvshmWinDriver *ivshm_win_driver (void);

#endif /* IVSHMEM_WIN32_DRIVER_H */
