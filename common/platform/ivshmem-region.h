/* gst-ivshmem: finding and mapping an IVSHMEM region
 * SPDX-License-Identifier: MIT
 *
 * A region is the same memory seen from two sides:
 *  - on the host, the file that QEMU's memory-backend-file shares
 *    (usually /dev/shm/NAME), mapped MAP_SHARED;
 *  - in a guest, BAR2 of the ivshmem PCI device (1af4:1110), found with
 *    libpci and mapped from sysfs resource2.
 *
 * This file has no GStreamer dependency.
 */
#ifndef IVSHMEM_REGION_H
#define IVSHMEM_REGION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ivshmem-pci-addr.h"
#include "ivshmem-status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define IVSHM_PCI_VENDOR_ID 0x1af4      /* Red Hat, Inc. */
#define IVSHM_PCI_DEVICE_ID 0x1110      /* Inter-VM shared memory */
#define IVSHM_PCI_BAR 2                 /* the shared memory BAR */

/* The smallest region ivshm_region_open() accepts: the layout's 64 KiB of
 * header, reader slots and sticky records (ivshmem-layout.h) plus the
 * smallest ring, 64 KiB. Anything smaller is IVSHM_ERR_TOO_SMALL. */
#define IVSHM_REGION_MIN_SIZE (UINT64_C (128) * 1024)

/* Access for non-root users in a Linux guest: the udev rule that gst-ivshmem
 * installs (udev/70-ivshmem.rules in the source, the ivshmem-tools package)
 * gives this group read-write access to every file the elements may map,
 * resource2 and resource2_wc. The rule's text is repeated here for error
 * messages; a test checks that the two agree. */
#define IVSHM_UDEV_GROUP "ivshmem"
#define IVSHM_UDEV_RULE_FILE "70-ivshmem.rules"
#define IVSHM_UDEV_RULE \
  "SUBSYSTEM==\"pci\", ATTR{vendor}==\"0x1af4\", ATTR{device}==\"0x1110\", " \
  "RUN+=\"/bin/sh -c 'cd %S%p && chgrp " IVSHM_UDEV_GROUP " resource2* && " \
  "chmod 0660 resource2*'\""

/* The environment variable that points PCI discovery at another sysfs root
 * (a fake tree in tests). Read in one place: ivshm_sysfs_root(). */
#define IVSHM_SYSFS_ROOT_ENV "IVSHMEM_SYSFS_ROOT"

typedef struct
{
  IvshmPciAddr addr;
  char location[IVSHM_PCI_ADDR_STRLEN];         /* "0000:00:03.0" */
  uint64_t size;                                /* BAR2 size in bytes */
  char sysfs_path[512];                         /* ROOT/bus/pci/devices/0000:00:03.0 */
  char resource_path[512];                      /* sysfs_path + "/resource2" */
} IvshmPciDevice;

/* Reads SYSFS_ROOT/kernel/security/lockdown ("none [integrity]
 * confidentiality": the selected mode is the one in brackets). Returns 1 if
 * a mode other than "none" is selected, 0 if "none" is or the file is
 * missing or unreadable (no lockdown LSM: nothing is locked down). When mode
 * is not NULL it receives the selected mode's name ("" if unknown). */
int ivshm_lockdown_active (const char *sysfs_root, char *mode,
    size_t mode_size);

/* The sysfs root to use: $IVSHMEM_SYSFS_ROOT if set and not empty, else
 * "/sys". Read once per process. */
const char *ivshm_sysfs_root (void);

/* Lists the IVSHMEM devices (1af4:1110) under sysfs_root (NULL: the
 * default, ivshm_sysfs_root()), sorted by domain, bus, device, function.
 * On success *devices is a malloc'd array of *n_devices entries (NULL and
 * 0 when there is none, also when SYSFS/bus/pci/devices does not exist;
 * that is not an error) to free with free(). Without libpci (or for a tree
 * libpci cannot parse) the same list comes from a plain sysfs scan. */
IvshmStatus ivshm_pci_list (const char *sysfs_root,
    IvshmPciDevice ** devices, size_t *n_devices, IvshmError * err);

/* How a device string is understood. */
typedef enum
{
  IVSHM_REGION_HOST_FILE,       /* a path: host side */
  IVSHM_REGION_PCI,             /* a PCI address, or empty: guest side */
} IvshmRegionKind;

typedef struct IvshmRegion IvshmRegion;

/* Which sysfs file a guest maps BAR2 through, which sets the memory type
 * the kernel gives the mapping (x86):
 *  - RESOURCE: resource2, uncached ("device") memory: every read and
 *    write goes to memory, the slowest both ways;
 *  - RESOURCE_WC: resource2_wc, write-combining: writes are merged into
 *    bursts (much faster for a producer), reads are still uncached;
 *  - AUTO (default): resource2_wc where the kernel offers it (prefetchable
 *    BARs such as ivshmem's), else resource2; also resource2 when
 *    resource2_wc is refused (EACCES/EPERM: a udev rule that opens
 *    resource2 only), and then an error names both files.
 * Neither is cached: a cached mapping of BAR2 needs a kernel driver (the
 * Windows driver offers one). Under QEMU TCG the type makes no difference;
 * under KVM it does. */
typedef enum
{
  IVSHM_BAR_MAPPING_AUTO = 0,
  IVSHM_BAR_MAPPING_RESOURCE,
  IVSHM_BAR_MAPPING_RESOURCE_WC,
} IvshmBarMapping;

typedef struct
{
  /* For a host file that does not exist: create it with this size (must be
   * a power of two, QEMU refuses anything else). 0: it must exist. */
  uint64_t create_size;
  /* The sysfs root for PCI discovery; NULL: ivshm_sysfs_root(). */
  const char *sysfs_root;
  /* How a guest maps BAR2 (ignored for host files). */
  IvshmBarMapping bar_mapping;
  /* Open the file O_RDONLY and map it PROT_READ, for tools that only look
   * (ivshmem-info): a user with read access is enough, and a stray store
   * crashes instead of changing the region. A missing host file is then
   * not created (create_size is ignored). Windows: the driver only maps
   * read-write; the flag is ignored there. */
  bool read_only;
} IvshmRegionOptions;

/* Opens and maps a region.
 *  - device starting with '/' or '.': a host file, mapped MAP_SHARED
 *    read-write. If it is missing and options->create_size > 0 it is created
 *    (O_CREAT|O_EXCL, mode 0660) with that size.
 *  - device that parses as a PCI address: that IVSHMEM device's BAR2.
 *  - NULL or "": the first IVSHMEM device found.
 * Errors: NOT_FOUND, PERMISSION, LOCKDOWN, TOO_SMALL, NOT_POW2, IO,
 * INVALID_ARG (a PCI address that is not an IVSHMEM device), UNSUPPORTED. */
IvshmStatus ivshm_region_open (const char *device,
    const IvshmRegionOptions * options, IvshmRegion ** region,
    IvshmError * err);
void ivshm_region_close (IvshmRegion * region);

void *ivshm_region_data (const IvshmRegion * region);
uint64_t ivshm_region_size (const IvshmRegion * region);
IvshmRegionKind ivshm_region_kind (const IvshmRegion * region);
/* The file that was mapped: the host path, or the resource2 path. */
const char *ivshm_region_path (const IvshmRegion * region);
/* "0000:00:03.0" for a PCI region, "" for a host file. */
const char *ivshm_region_location (const IvshmRegion * region);
/* True if the region was created by this open. */
int ivshm_region_created (const IvshmRegion * region);

/* A host file can shrink under its mapping (another process truncates it)
 * or lose the pages behind it (a full tmpfs cannot give one): touching the
 * mapping there would raise SIGBUS. The mapping of a host file is guarded
 * (ivshmem-guard.c): such a fault replaces the whole mapping with private
 * zero pages and marks the region lost. Check ivshm_region_lost() after
 * reading or writing the region (and before trusting a value that makes
 * no sense: a lost region reads as zeros); once it is true, stop using the
 * region (close it when nothing points into it any more).
 * ivshm_region_lost_error() says what happened to the file, from fstat()
 * and fstatvfs(): "the region file /dev/shm/x shrank to 0 bytes while it
 * was in use (it was 64 MiB): ...". Always false for a PCI BAR, whose size
 * does not change, and on Windows.
 *
 * A side that only waits touches little of the region, maybe nothing past
 * the new end of the file: ivshm_region_check() is ivshm_region_lost()
 * plus a look at the file's size (an fstat(), not for every record: call
 * it while waiting, every 100 ms or so); a file smaller than the mapping
 * marks the region lost. */
#ifdef _WIN32
static inline bool
ivshm_region_lost (const IvshmRegion * region)
{
  (void) region;
  return false;
}

static inline bool
ivshm_region_check (IvshmRegion * region)
{
  (void) region;
  return false;
}

static inline IvshmStatus
ivshm_region_lost_error (const IvshmRegion * region, IvshmError * err)
{
  (void) region;
  return ivshm_error_set (err, IVSHM_ERR_UNSUPPORTED, 0, "not lost");
}
#else
bool ivshm_region_lost (const IvshmRegion * region);
bool ivshm_region_check (IvshmRegion * region);
IvshmStatus ivshm_region_lost_error (const IvshmRegion * region,
    IvshmError * err);
#endif

/* "Linux", "Windows", ...: the system this build runs on. */
const char *ivshm_system_name (void);

#ifdef __cplusplus
}
#endif
#endif /* IVSHMEM_REGION_H */
