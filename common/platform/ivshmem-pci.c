/* gst-ivshmem: finding IVSHMEM PCI devices (guest side)
 * SPDX-License-Identifier: MIT
 *
 * Two ways to list the devices, with the same result:
 *  - libpci (pciutils), linux-sysfs method, when the build has it;
 *  - a plain scan of SYSFS/bus/pci/devices (vendor, device, resource), when
 *    it has not, and as a safety net (see below).
 *
 * libpci's error callback (pci_access.error) is declared noreturn and the
 * default one calls exit(1): in pciutils 3.9 the sysfs back-end calls it
 * when SYSFS/bus/pci/devices cannot be opened, when an entry name does not
 * parse, and when a device's vendor, device or resource file cannot be read
 * (a device unplugged between the scan and pci_fill_info()). A callback
 * that returns would let libpci go on with a NULL DIR or FILE, so ours
 * longjmp()s back to list_with_libpci(), which cleans up and reports
 * IVSHM_ERR_IO. To keep that path for true races only, the directory is
 * opened and every entry name checked first; a tree libpci would choke on is
 * scanned by the plain scan instead. What a longjmp can leak is what libpci
 * held at that moment (at most an open FILE for a malformed resource file).
 */
#include "ivshmem-config.h"
#include "ivshmem-private.h"
#include "ivshmem-region.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if IVSHM_HAVE_LIBPCI
#include <pci/pci.h>
#include <setjmp.h>
#endif

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

/* ---- sysfs attributes ---- */

/* Reads a small attribute file into buf (NUL-terminated). */
static int
read_small_file (const char *dir, const char *name, char *buf, size_t size)
{
  char path[1024];
  ssize_t n;
  int fd, saved;

  if ((size_t) snprintf (path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  do
    n = read (fd, buf, size - 1);
  while (n < 0 && errno == EINTR);
  saved = errno;
  close (fd);
  if (n < 0) {
    errno = saved;
    return -1;
  }
  buf[n] = '\0';
  return 0;
}

int
ivshm_sysfs_read_u64 (const char *dir, const char *name, uint64_t * value)
{
  char buf[64], *end;
  unsigned long long v;

  if (read_small_file (dir, name, buf, sizeof buf) < 0)
    return -1;
  errno = 0;
  v = strtoull (buf, &end, 0);
  if (errno != 0 || end == buf || (*end != '\0'
          && !isspace ((unsigned char) *end))) {
    errno = EINVAL;
    return -1;
  }
  *value = v;
  return 0;
}

int
ivshm_sysfs_bar_size (const char *dir, int bar, uint64_t * size)
{
  char path[1024], line[256];
  FILE *f;
  int i;

  if (bar < 0 || bar > 5) {
    errno = EINVAL;
    return -1;
  }
  if ((size_t) snprintf (path, sizeof path, "%s/resource", dir) >= sizeof path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  f = fopen (path, "re");
  if (f == NULL)
    return -1;
  for (i = 0; i <= bar; i++) {
    if (fgets (line, sizeof line, f) == NULL) {
      fclose (f);
      errno = EINVAL;
      return -1;
    }
  }
  fclose (f);

  {
    unsigned long long start, end, flags;
    if (sscanf (line, "%llx %llx %llx", &start, &end, &flags) != 3) {
      errno = EINVAL;
      return -1;
    }
    *size = end > start ? (uint64_t) (end - start + 1) : 0;
  }
  return 0;
}

/* ---- the list ---- */

typedef struct
{
  IvshmPciDevice *items;
  size_t n, cap;
  int oom;
} DevList;

static void
devlist_add (DevList * list, const char *devices_dir, unsigned domain,
    unsigned bus, unsigned dev, unsigned func, uint64_t size)
{
  IvshmPciDevice *d;

  if (list->oom)
    return;
  if (list->n == list->cap) {
    size_t cap = list->cap ? list->cap * 2 : 4;
    IvshmPciDevice *items = realloc (list->items, cap * sizeof *items);
    if (items == NULL) {
      list->oom = 1;
      return;
    }
    list->items = items;
    list->cap = cap;
  }
  d = &list->items[list->n++];
  memset (d, 0, sizeof *d);
  d->addr.domain = (uint16_t) domain;
  d->addr.bus = (uint8_t) bus;
  d->addr.device = (uint8_t) dev;
  d->addr.function = (uint8_t) func;
  ivshm_pci_addr_format (&d->addr, d->location);
  d->size = size;
  /* ivshm_pci_list() checked that these fit; drop the entry if not. */
  if ((size_t) snprintf (d->sysfs_path, sizeof d->sysfs_path, "%s/%s",
          devices_dir, d->location) >= sizeof d->sysfs_path
      || (size_t) snprintf (d->resource_path, sizeof d->resource_path,
          "%s/resource%d", d->sysfs_path,
          IVSHM_PCI_BAR) >= sizeof d->resource_path)
    list->n--;
}

static int
compare_devices (const void *pa, const void *pb)
{
  const IvshmPciDevice *a = pa, *b = pb;
  uint32_t ka =
      ((uint32_t) a->addr.domain << 16) | ((uint32_t) a->addr.bus << 8)
      | ((uint32_t) a->addr.device << 3) | a->addr.function;
  uint32_t kb =
      ((uint32_t) b->addr.domain << 16) | ((uint32_t) b->addr.bus << 8)
      | ((uint32_t) b->addr.device << 3) | b->addr.function;

  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/* An entry name as libpci's sysfs_scan() would accept it
 * (sscanf "%x:%x:%x.%d", domain <= 0x7fffffff), and whether it also fits
 * IvshmPciAddr (16-bit domain). */
static int
entry_name_parses (const char *name, unsigned *dom, unsigned *bus,
    unsigned *dev, unsigned *func)
{
  int f;

  if (sscanf (name, "%x:%x:%x.%d", dom, bus, dev, &f) < 4 || f < 0
      || *dom > 0x7fffffff)
    return 0;
  *func = (unsigned) f;
  return 1;
}

static int
fits_addr (unsigned dom, unsigned bus, unsigned dev, unsigned func)
{
  return dom <= 0xffff && bus <= 0xff && dev <= 0x1f && func <= 7;
}

/* The plain sysfs scan: what libpci's linux-sysfs back-end reads, without
 * libpci. Entries it cannot read are skipped, not fatal. */
static IvshmStatus
list_with_sysfs (const char *devices_dir, DevList * out, IvshmError * err)
{
  DIR *dir = opendir (devices_dir);
  struct dirent *entry;

  if (dir == NULL)
    return ivshm_error_set (err, IVSHM_ERR_IO, errno,
        "cannot open %s: %s", devices_dir, strerror (errno));

  while ((entry = readdir (dir)) != NULL) {
    char dev_dir[1024];
    unsigned dom, bus, dev, func;
    uint64_t vendor, device, size;

    if (entry->d_name[0] == '.')
      continue;
    if (!entry_name_parses (entry->d_name, &dom, &bus, &dev, &func)
        || !fits_addr (dom, bus, dev, func))
      continue;
    if ((size_t) snprintf (dev_dir, sizeof dev_dir, "%s/%s", devices_dir,
            entry->d_name) >= sizeof dev_dir)
      continue;
    if (ivshm_sysfs_read_u64 (dev_dir, "vendor", &vendor) < 0
        || ivshm_sysfs_read_u64 (dev_dir, "device", &device) < 0)
      continue;
    if (vendor != IVSHM_PCI_VENDOR_ID || device != IVSHM_PCI_DEVICE_ID)
      continue;
    if (ivshm_sysfs_bar_size (dev_dir, IVSHM_PCI_BAR, &size) < 0)
      size = 0;
    devlist_add (out, devices_dir, dom, bus, dev, func, size);
  }
  closedir (dir);
  return IVSHM_OK;
}

#if IVSHM_HAVE_LIBPCI

/* Where libpci_error() jumps to; per thread, so that two threads can list
 * devices at the same time (each with its own pci_access). */
static _Thread_local jmp_buf *libpci_jump;
static _Thread_local char libpci_message[256];

static void libpci_error (char *msg, ...)
    __attribute__((noreturn, format (printf, 1, 2)));

static void
libpci_error (char *msg, ...)
{
  va_list ap;

  va_start (ap, msg);
  vsnprintf (libpci_message, sizeof libpci_message, msg, ap);
  va_end (ap);
  if (libpci_jump != NULL)
    longjmp (*libpci_jump, 1);
  /* Only reachable if libpci called back outside list_with_libpci(), which
   * owns every pci_access of this file. */
  abort ();
}

static void libpci_quiet (char *msg, ...)
    __attribute__((format (printf, 1, 2)));

/* A library does not print: libpci's warnings (a config file it cannot
 * open, ...) do not change what we read, so they are dropped. */
static void
libpci_quiet (char *msg, ...)
{
}

static IvshmStatus
list_with_libpci (const char *bus_dir, const char *devices_dir,
    DevList * out, IvshmError * err)
{
  /* Set before setjmp() and never changed after it, so they keep their
   * values across the longjmp without being volatile. */
  struct pci_access *const pacc = pci_alloc ();
  jmp_buf *const outer = libpci_jump;
  char sysfs_param[1024];
  jmp_buf env;
  struct pci_dev *d;

  if (pacc == NULL)
    return ivshm_error_set (err, IVSHM_ERR_NO_MEMORY, ENOMEM,
        "libpci: out of memory");

  pacc->error = libpci_error;
  pacc->warning = libpci_quiet;
  pacc->debug = libpci_quiet;
  pacc->method = PCI_ACCESS_SYS_BUS_PCI;
  /* linux-sysfs's "sysfs.path" is the PCI bus directory ("/sys/bus/pci"),
   * not the sysfs mount point: it appends "/devices/ADDR/FILE". */
  snprintf (sysfs_param, sizeof sysfs_param, "%s", bus_dir);
  if (pci_set_param (pacc, (char *) "sysfs.path", sysfs_param) != 0) {
    pci_cleanup (pacc);
    return ivshm_error_set (err, IVSHM_ERR_UNSUPPORTED, 0,
        "this libpci has no linux-sysfs access method");
  }

  if (setjmp (env) != 0) {
    libpci_jump = outer;
    pci_cleanup (pacc);
    return ivshm_error_set (err, IVSHM_ERR_IO, 0,
        "libpci failed while scanning %s: %s", bus_dir, libpci_message);
  }
  libpci_jump = &env;

  pci_init (pacc);
  pci_scan_bus (pacc);
  for (d = pacc->devices; d != NULL; d = d->next) {
    unsigned dom = (unsigned) d->domain;

    if (!fits_addr (dom, d->bus, d->dev, d->func))
      continue;
    /* Identity first, BARs only for ours: fewer files read, fewer chances
     * for a vanished device to end the whole scan. */
    pci_fill_info (d, PCI_FILL_IDENT);
    if (d->vendor_id != IVSHM_PCI_VENDOR_ID
        || d->device_id != IVSHM_PCI_DEVICE_ID)
      continue;
    pci_fill_info (d, PCI_FILL_IDENT | PCI_FILL_BASES | PCI_FILL_SIZES);
    devlist_add (out, devices_dir, dom, d->bus, d->dev, d->func,
        (uint64_t) d->size[IVSHM_PCI_BAR]);
  }

  libpci_jump = outer;
  pci_cleanup (pacc);
  return IVSHM_OK;
}

#endif /* IVSHM_HAVE_LIBPCI */

IvshmStatus
ivshm_pci_list (const char *sysfs_root, IvshmPciDevice ** devices,
    size_t *n_devices, IvshmError * err)
{
  char bus_dir[512], devices_dir[512];
  DevList list = { NULL, 0, 0, 0 };
  IvshmStatus status;
  int libpci_can_parse = 1;
  DIR *dir;
  struct dirent *entry;
  /* The longest path a device gets: DEVICES/0000:00:00.0/resource2 */
  const size_t tail = 1 + IVSHM_PCI_ADDR_STRLEN + sizeof "/resource2";

  if (devices == NULL || n_devices == NULL)
    return ivshm_error_set (err, IVSHM_ERR_INVALID_ARG, 0,
        "ivshm_pci_list: devices and n_devices must not be NULL");
  *devices = NULL;
  *n_devices = 0;

  if (sysfs_root == NULL || sysfs_root[0] == '\0')
    sysfs_root = ivshm_sysfs_root ();
  snprintf (bus_dir, sizeof bus_dir, "%s/bus/pci", sysfs_root);
  if ((size_t) snprintf (devices_dir, sizeof devices_dir, "%s/devices",
          bus_dir) + tail > sizeof devices_dir)
    return ivshm_error_set (err, IVSHM_ERR_INVALID_ARG, ENAMETOOLONG,
        "sysfs root %s is too long", sysfs_root);

  /* Look before libpci leaps (see the top of this file). */
  dir = opendir (devices_dir);
  if (dir == NULL) {
    int e = errno;
    if (e == ENOENT || e == ENOTDIR)
      return IVSHM_OK;          /* no PCI bus at all: no device */
    return ivshm_error_set (err,
        (e == EACCES || e == EPERM) ? IVSHM_ERR_PERMISSION : IVSHM_ERR_IO, e,
        "cannot list PCI devices in %s: %s", devices_dir, strerror (e));
  }
  while ((entry = readdir (dir)) != NULL) {
    unsigned dom, bus, dev, func;
    if (entry->d_name[0] != '.'
        && !entry_name_parses (entry->d_name, &dom, &bus, &dev, &func))
      libpci_can_parse = 0;
  }
  closedir (dir);

#if IVSHM_HAVE_LIBPCI
  if (libpci_can_parse)
    status = list_with_libpci (bus_dir, devices_dir, &list, err);
  else
    status = list_with_sysfs (devices_dir, &list, err);
#else
  (void) libpci_can_parse;
  status = list_with_sysfs (devices_dir, &list, err);
#endif

  if (status == IVSHM_OK && list.oom)
    status = ivshm_error_set (err, IVSHM_ERR_NO_MEMORY, ENOMEM,
        "out of memory while listing PCI devices");
  if (status != IVSHM_OK) {
    free (list.items);
    return status;
  }
  if (list.n == 0) {
    free (list.items);
    return IVSHM_OK;
  }
  qsort (list.items, list.n, sizeof *list.items, compare_devices);
  *devices = list.items;
  *n_devices = list.n;
  return IVSHM_OK;
}
