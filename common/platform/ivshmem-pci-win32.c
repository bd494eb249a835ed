/* gst-ivshmem: finding the IVSHMEM devices of a Windows guest
 * SPDX-License-Identifier: MIT
 *
 * The Windows counterpart of ivshmem-pci.c. The virtio-win IVSHMEM driver
 * registers a device interface of class
 * {df576976-569d-4672-95a0-f57e4ea0b210} for each ivshmem PCI device it
 * started; SetupDi lists the interfaces, each one's path opens the device,
 * and IOCTL_IVSHMEM_REQUEST_SIZE gives its BAR2 size. The talking to the
 * driver that mapping shares (opening an interface, the size request,
 * Win32 error text) lives here too.
 *
 * A device that the driver did not start (a BAR0 that is not 256 bytes,
 * or a BAR2 above 2 GiB: the driver reads its size from a 32-bit field,
 * virtio-win issue #1598) has no enabled interface. When no interface
 * answers, the PCI device nodes PCI\VEN_1AF4&DEV_1110 are looked up, and
 * CM_Get_DevNode_Status tells "no driver" from "the driver did not start
 * the device" (a problem code such as 10).
 */
#include "ivshmem-win32-private.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const GUID ivshm_win_interface_guid = {
  0xdf576976, 0x569d, 0x4672,
  {0x95, 0xa0, 0xf5, 0x7e, 0x4e, 0xa0, 0xb2, 0x10}
};

/* Every call that reaches the driver goes through this table: the real
 * Win32 functions, or in a test build only, the driver stand-in. */
static const IvshmWinDriver *
drv (void)
{
  return ivshm_win_driver ();
}

/* Windows has no sysfs: device discovery never reads a directory. Kept for
 * the API; it is what the environment says, or "". */
const char *
ivshm_sysfs_root (void)
{
  const char *env = getenv (IVSHM_SYSFS_ROOT_ENV);

  return env ? env : "";
}

const char *
ivshm_win_error_text (DWORD code, char *buf, size_t size)
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



HANDLE
ivshm_win_open_interface (const char *path)
{
  return drv ()->create_file (path, 0, FILE_SHARE_READ | FILE_SHARE_WRITE,
      NULL, OPEN_EXISTING, 0, NULL);
}

IvshmStatus
ivshm_win_open_error (const char *path, DWORD code, IvshmError * err)
{
  char text[256];

  ivshm_win_error_text (code, text, sizeof text);
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

IvshmStatus
ivshm_win_request_size (HANDLE h, const char *path, uint64_t * size,
    IvshmError * err)
{
  uint64_t value = 0;
  DWORD got = 0, code;
  char text[256];

  if (!drv ()->device_io_control (h, IVSHM_IOCTL_REQUEST_SIZE, NULL, 0, &value,
          sizeof value, &got, NULL)) {
    code = GetLastError ();
    return ivshm_error_set (err, IVSHM_ERR_IO, (int) code,
        "the IVSHMEM driver did not report the size of %s: %s", path,
        ivshm_win_error_text (code, text, sizeof text));
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

  set = drv ()->get_class_devs (&ivshm_win_interface_guid, NULL, NULL,
      DIGCF_PRESENT | DIGCF_DEVICEINTERFACE);
  if (set == INVALID_HANDLE_VALUE) {
    code = GetLastError ();
    return ivshm_error_set (err, IVSHM_ERR_IO, (int) code,
        "cannot list IVSHMEM devices (SetupDiGetClassDevs): %s",
        ivshm_win_error_text (code, text, sizeof text));
  }

  for (index = 0; status == IVSHM_OK; index++) {
    SP_DEVICE_INTERFACE_DATA iface = { 0 };
    SP_DEVINFO_DATA info = { 0 };
    SP_DEVICE_INTERFACE_DETAIL_DATA_A *detail;
    DWORD need = 0;
    IvshmPciDevice *d;
    HANDLE h;

    iface.cbSize = sizeof iface;
    if (!drv ()->enum_interfaces (set, NULL, &ivshm_win_interface_guid,
            index, &iface)) {
      code = GetLastError ();
      if (code != ERROR_NO_MORE_ITEMS)
        status = ivshm_error_set (err, IVSHM_ERR_IO, (int) code,
            "cannot list IVSHMEM devices (SetupDiEnumDeviceInterfaces): %s",
            ivshm_win_error_text (code, text, sizeof text));
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
    if (!drv ()->get_interface_detail (set, &iface, detail, need, NULL, &info)) {
      free (detail);
      continue;                 /* removed meanwhile */
    }

    if (n == cap) {
      size_t new_cap = cap ? cap * 2 : 4;
      grown = realloc (list, new_cap * sizeof *list);
      if (grown == NULL) {
        free (detail);
        status = ivshm_error_set (err, IVSHM_ERR_NO_MEMORY, 0, "out of memory");
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
    h = ivshm_win_open_interface (d->resource_path);
    if (h != INVALID_HANDLE_VALUE) {
      if (ivshm_win_request_size (h, d->resource_path, &d->size,
              NULL) != IVSHM_OK)
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

/* ---- a device without a usable interface ---- */


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

void
ivshm_win_find_device_node (const IvshmPciAddr * want, IvshmDevNode * node)
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
            || addr.device != want->device || addr.function != want->function))
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

IvshmStatus
ivshm_win_device_node_error (const IvshmDevNode * node, IvshmError * err)
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
