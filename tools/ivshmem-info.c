/* ivshmem-info: list IVSHMEM devices and show a region and its ring
 * SPDX-License-Identifier: MIT
 *
 * Links only the core (common/), no GStreamer.
 *
 * The region is opened read-only (a user with read access is enough) and
 * read through the core's one inspection API (ivshmem-inspect.h: a
 * private copy of the header and slots, each field read once; the sticky
 * records through ivshmem-sticky.h). Nothing here parses shared memory
 * itself; it only prints the copies, escaping what a hostile peer wrote.
 *
 * This file: options, the device list, one region. info-ring.c prints the
 * ring (text and JSON), info-text.c escapes strings, info-access.c says
 * why a guest's BAR cannot be mapped.
 */
#include "info-access.h"
#include "info-ring.h"
#include "info-text.h"
#include "ivshmem-inspect.h"
#include "ivshmem-protocol.h"
#include "ivshmem-os.h"
#include "ivshmem-region.h"
#include "ivshmem-sticky.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Exit codes; documented in usage(). */
enum
{
  EXIT_OK = 0,
  EXIT_ERROR = 1,
  EXIT_USAGE = 2,
  EXIT_NO_PRODUCER = 3,
  EXIT_NOT_IVSHMEM = 4,
  EXIT_VERSION = 5,
  EXIT_CORRUPT = 6,
};

typedef struct
{
  int json;
  int no_wait;
  IvshmBarMapping bar_mapping;
} PrintOptions;

static void
usage (FILE * out)
{
  fprintf (out,
      "Usage: ivshmem-info [--json] [--no-wait] [--bar-mapping MODE] [DEVICE]\n"
      "\n"
      "Without DEVICE, lists this machine's IVSHMEM PCI devices (%04x:%04x) in\n"
      "address order: PCI location, shared memory size, the file that maps\n"
      "it (sysfs resource2), and the system this runs on.\n"
      "\n"
      "With DEVICE, maps that region read-only and prints its size and path,\n"
      "then the gst-ivshmem ring in it: protocol version, producer session,\n"
      "state, owner and whether it is alive, write position and tail, the\n"
      "stream's caps, stream-start, segment and tags and whether it ended\n"
      "(EOS), and each taken reader slot with its state, lag, lease and the\n"
      "number of records it read. DEVICE is\n"
      "  a file path starting with / or . (host side: the file of QEMU's\n"
      "    memory-backend-file, e.g. /dev/shm/NAME), or\n"
      "  a PCI address, DDDD:BB:DD.F or BB:DD.F (guest side), or\n"
      "  on Windows, a device path as listed (\\\\?\\pci#...), or\n"
      "  \"\" for the first IVSHMEM device.\n"
      "Reading a guest's BAR needs root or the udev rule that gives the group\n"
      "\"%s\" access to resource2 (Linux), or the virtio-win IVSHMEM driver\n"
      "(Windows); when the mapping is refused, this tool says why.\n"
      "The region is only read, never written.\n"
      "\n"
      "Options:\n"
      "  --json      print JSON on standard output instead of text\n"
      "  --no-wait   do not watch the heartbeats (up to 1 s) to tell whether\n"
      "              the producer and the readers are alive\n"
      "  --bar-mapping auto|resource|resource-wc\n"
      "              which sysfs file maps a guest's BAR2: resource2_wc where\n"
      "              it exists (auto, the default), resource2, resource2_wc\n"
      "  -h, --help  print this help and exit\n"
      "\n"
      "Environment:\n"
      "  %s  look for PCI devices under this directory instead\n"
      "                      of /sys\n"
      "\n"
      "Exit status:\n"
      "  0  success; also when there is no IVSHMEM device: the text output\n"
      "     then says \"no IVSHMEM devices found\" on standard output, --json\n"
      "     prints an empty \"devices\" list\n"
      "  1  error (the region cannot be opened, ...): its status and detail\n"
      "     are printed on standard error\n"
      "  2  usage error\n"
      "  3  the region has no producer yet (its magic is 0)\n"
      "  4  the region is not a gst-ivshmem region (another magic)\n"
      "  5  the region speaks a protocol version this tool cannot read\n"
      "  6  the ring header describes an impossible layout (corrupt)\n"
      "With --json, codes 3 to 6 still print the region, with \"ring\": null\n"
      "and an \"error\" object.\n",
      IVSHM_PCI_VENDOR_ID, IVSHM_PCI_DEVICE_ID, IVSHM_UDEV_GROUP,
      IVSHM_SYSFS_ROOT_ENV);
}

/* ---- the device list ---- */

static void
print_device_list (FILE * out, const IvshmPciDevice * devs, size_t n,
    const PrintOptions * opts)
{
  size_t i;

  if (opts->json) {
    fputs ("{\"system\": ", out);
    json_string (out, ivshm_system_name ());
    fputs (", \"devices\": [", out);
    for (i = 0; i < n; i++) {
      const IvshmPciDevice *d = &devs[i];
      fprintf (out, "%s\n  {\"location\": ", i ? "," : "");
      json_string (out, d->location);
      fprintf (out, ", \"domain\": %u, \"bus\": %u, \"device\": %u, "
          "\"function\": %u, \"size\": %" PRIu64 ", \"size_mib\": ",
          (unsigned) d->addr.domain, (unsigned) d->addr.bus,
          (unsigned) d->addr.device, (unsigned) d->addr.function, d->size);
      print_mib (out, d->size);
      fputs (", \"path\": ", out);
      json_string (out, d->resource_path);
      fputs ("}", out);
    }
    fputs (n ? "\n]}\n" : "]}\n", out);
    return;
  }

  fprintf (out, "system: %s\n", ivshm_system_name ());
  if (n == 0)
#ifdef _WIN32
  {
    /* Opening "the first device" tells why none answers: no device, no
     * driver, or a device the driver did not start (its problem code). */
    IvshmRegion *r = NULL;
    IvshmError err = { 0 };

    if (ivshm_region_open (NULL, NULL, &r, &err) == IVSHM_OK)
      ivshm_region_close (r);   /* appeared meanwhile */
    fprintf (out, "no IVSHMEM devices found (none with the virtio-win "
        "IVSHMEM driver's device interface): %s\n",
        err.detail[0] ? err.detail : "is the driver installed?");
  }
#else
    fprintf (out, "no IVSHMEM devices found (looked in "
        "%s/bus/pci/devices)\n", ivshm_sysfs_root ());
#endif
  for (i = 0; i < n; i++) {
    const IvshmPciDevice *d = &devs[i];
    fprintf (out, "\n%s (PCI bus %u, device %u, function %u)\n", d->location,
        (unsigned) d->addr.bus, (unsigned) d->addr.device,
        (unsigned) d->addr.function);
    print_size_text (out, "  size: ", d->size);
    fprintf (out, "  path: %s\n", d->resource_path);
  }
}

static int
list_devices (const PrintOptions * opts)
{
  IvshmPciDevice *devs = NULL;
  size_t n = 0;
  IvshmError err = { 0 };

  if (ivshm_pci_list (NULL, &devs, &n, &err) != IVSHM_OK) {
    fprintf (stderr, "ivshmem-info: %s: %s\n",
        ivshm_status_string (err.status), err.detail);
    return EXIT_ERROR;
  }
  print_device_list (stdout, devs, n, opts);
  free (devs);
  return EXIT_OK;
}

/* ---- one region ---- */

/* Prints what is known about an open region. Text: one "name: value" line
 * each; JSON: the members of one object, without the braces, so that
 * callers (and later views) can add members. */
static void
print_region (FILE * out, const IvshmRegion * region, const PrintOptions * opts)
{
  int pci = ivshm_region_kind (region) == IVSHM_REGION_PCI;
  uint64_t size = ivshm_region_size (region);

  if (opts->json) {
    fputs ("\"system\": ", out);
    json_string (out, ivshm_system_name ());
    fprintf (out, ", \"kind\": \"%s\", \"location\": ",
        pci ? "pci" : "host-file");
    json_string (out, ivshm_region_location (region));
    fputs (", \"path\": ", out);
    json_string (out, ivshm_region_path (region));
    fprintf (out, ", \"size\": %" PRIu64 ", \"size_mib\": ", size);
    print_mib (out, size);
    return;
  }

  fprintf (out, "system:   %s\n", ivshm_system_name ());
  if (pci) {
    IvshmPciAddr addr;
    fprintf (out, "device:   %s", ivshm_region_location (region));
    if (ivshm_pci_addr_parse (ivshm_region_location (region), &addr) == 0)
      fprintf (out, " (PCI bus %u, device %u, function %u)",
          (unsigned) addr.bus, (unsigned) addr.device,
          (unsigned) addr.function);
    fputc ('\n', out);
  } else {
    fputs ("device:   host file\n", out);
  }
  fprintf (out, "path:     %s\n", ivshm_region_path (region));
  print_size_text (out, "size:     ", size);
}

static int
exit_code_for (IvshmStatus status)
{
  switch (status) {
    case IVSHM_OK:
      return EXIT_OK;
    case IVSHM_ERR_NO_PRODUCER:
      return EXIT_NO_PRODUCER;
    case IVSHM_ERR_BAD_MAGIC:
      return EXIT_NOT_IVSHMEM;
    case IVSHM_ERR_VERSION:
      return EXIT_VERSION;
    case IVSHM_ERR_CORRUPT:
      return EXIT_CORRUPT;
    default:
      return EXIT_ERROR;
  }
}

static int
open_region (const char *device, const PrintOptions * opts,
    IvshmRegion ** region)
{
  IvshmRegionOptions ropts = { 0 };
  IvshmError err = { 0 };

  ropts.read_only = true;
  ropts.bar_mapping = opts->bar_mapping;
  if (ivshm_region_open (device, &ropts, region, &err) == IVSHM_OK)
    return EXIT_OK;
  fprintf (stderr, "ivshmem-info: %s: %s\n",
      ivshm_status_string (err.status), err.detail);
  if ((err.status == IVSHM_ERR_PERMISSION || err.status == IVSHM_ERR_LOCKDOWN)
      && device[0] != '/' && device[0] != '.')
    explain_pci_access (device, opts->bar_mapping);
  return EXIT_ERROR;
}

static int
show_region (const char *device, const PrintOptions * opts)
{
  IvshmRegion *region = NULL;
  IvshmInspection *insp;
  StreamView sv;
  const void *base;
  int code;
  char detail[512];

  if ((code = open_region (device, opts, &region)) != EXIT_OK)
    return code;
  insp = malloc (sizeof *insp);
  if (insp == NULL) {
    ivshm_region_close (region);
    fprintf (stderr, "ivshmem-info: out of memory\n");
    return EXIT_ERROR;
  }
  base = ivshm_region_data (region);
  ivshm_inspect (base, ivshm_region_size (region), insp);
  if (!opts->no_wait)
    ivshm_inspect_watch (base, insp, ivshm_inspect_default_window (insp));
  stream_view_read (insp, &sv);
  if (ivshm_region_lost (region)) {
    /* the file shrank (or lost pages) while we read it: what we read is
     * partly zeros (ivshmem-guard.c); say what happened instead */
    IvshmError err = { 0 };

    ivshm_region_lost_error (region, &err);
    fprintf (stderr, "ivshmem-info: %s\n", err.detail);
    stream_view_clear (&sv);
    ivshm_inspection_clear (insp);
    free (insp);
    ivshm_region_close (region);
    return EXIT_ERROR;
  }
  code = exit_code_for (insp->status);
  if (insp->status != IVSHM_OK)
    ivshm_inspect_explain (insp, detail, sizeof detail);

  if (opts->json) {
    fputs ("{", stdout);
    print_region (stdout, region, opts);
    if (code == EXIT_OK || code == EXIT_CORRUPT)
      print_ring_json (stdout, insp, &sv);
    else
      fputs (",\n \"ring\": null", stdout);
    if (insp->status != IVSHM_OK) {
      fprintf (stdout, ",\n \"error\": {\"status\": \"%s\", \"exit_code\": "
          "%d, \"detail\": ", ivshm_status_name (insp->status), code);
      json_string (stdout, detail);
      fputs ("}", stdout);
    }
    fputs ("}\n", stdout);
  } else {
    print_region (stdout, region, opts);
    if (code == EXIT_OK || code == EXIT_CORRUPT)
      print_ring_text (stdout, insp, &sv);
  }
  if (insp->status != IVSHM_OK)
    fprintf (stderr, "ivshmem-info: %s: %s\n",
        ivshm_status_string (insp->status), detail);

  stream_view_clear (&sv);
  ivshm_inspection_clear (insp);
  free (insp);
  ivshm_region_close (region);
  return code;
}

static int
parse_bar_mapping (const char *text, IvshmBarMapping * out)
{
  if (strcmp (text, "auto") == 0)
    *out = IVSHM_BAR_MAPPING_AUTO;
  else if (strcmp (text, "resource") == 0)
    *out = IVSHM_BAR_MAPPING_RESOURCE;
  else if (strcmp (text, "resource-wc") == 0)
    *out = IVSHM_BAR_MAPPING_RESOURCE_WC;
  else
    return -1;
  return 0;
}

static int
usage_error (const char *fmt, const char *arg)
{
  fputs ("ivshmem-info: ", stderr);
  fprintf (stderr, fmt, arg);
  fputs ("\n\n", stderr);
  usage (stderr);
  return EXIT_USAGE;
}

int
main (int argc, char **argv)
{
  PrintOptions opts = { 0 };
  const char *device = NULL, *value;
  int options_done = 0, i;

  for (i = 1; i < argc; i++) {
    const char *arg = argv[i];

    if (!options_done && strcmp (arg, "--") == 0) {
      options_done = 1;
    } else if (!options_done && strcmp (arg, "--json") == 0) {
      opts.json = 1;
    } else if (!options_done && strcmp (arg, "--no-wait") == 0) {
      opts.no_wait = 1;
    } else if (!options_done && (strcmp (arg, "--bar-mapping") == 0
            || strncmp (arg, "--bar-mapping=", 14) == 0)) {
      value = arg[13] == '=' ? arg + 14 : (i + 1 < argc ? argv[++i] : NULL);
      if (value == NULL)
        return usage_error ("%s needs a value", arg);
      if (parse_bar_mapping (value, &opts.bar_mapping) != 0)
        return usage_error ("unknown --bar-mapping \"%s\" (auto, resource "
            "or resource-wc)", value);
    } else if (!options_done && (strcmp (arg, "-h") == 0
            || strcmp (arg, "--help") == 0)) {
      usage (stdout);
      return EXIT_OK;
    } else if (!options_done && arg[0] == '-' && arg[1] != '\0') {
      return usage_error ("unknown option %s", arg);
    } else if (device != NULL) {
      return usage_error ("more than one DEVICE%s", "");
    } else {
      device = arg;
    }
  }

  if (device == NULL)
    return list_devices (&opts);
  return show_region (device, &opts);
}
