/* ivshmem-info: list IVSHMEM devices and show a region
 * SPDX-License-Identifier: MIT
 *
 * Links only the core (common/), no GStreamer. print_region() is where
 * more views of an open region (the ring header, readers) belong.
 */
#include "ivshmem-region.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_USAGE 2

typedef struct
{
  int json;
} PrintOptions;

static void
usage (FILE * out)
{
  fprintf (out,
      "Usage: ivshmem-info [--json] [DEVICE]\n"
      "\n"
      "Without DEVICE, lists this machine's IVSHMEM PCI devices (%04x:%04x) in\n"
      "address order: PCI location, shared memory size, the file that maps\n"
      "it (sysfs resource2), and the system this runs on.\n"
      "\n"
      "With DEVICE, maps that region and prints its size and path. DEVICE is\n"
      "  a file path starting with / or . (host side: the file of QEMU's\n"
      "    memory-backend-file, e.g. /dev/shm/NAME), or\n"
      "  a PCI address, DDDD:BB:DD.F or BB:DD.F (guest side), or\n"
      "  \"\" for the first IVSHMEM device.\n"
      "Mapping a PCI BAR needs root or a udev rule granting access to\n"
      "resource2.\n"
      "\n"
      "Options:\n"
      "  --json      print JSON on standard output instead of text\n"
      "  -h, --help  print this help and exit\n"
      "\n"
      "Environment:\n"
      "  %s  look for PCI devices under this directory instead\n"
      "                      of /sys\n"
      "\n"
      "Exit status:\n"
      "  0  success; also when there is no IVSHMEM device: the text output\n"
      "     then says \"no IVSHMEM devices found\" on standard error, --json\n"
      "     prints an empty \"devices\" list\n"
      "  1  error: its status and detail are printed on standard error\n"
      "  2  usage error\n",
      IVSHM_PCI_VENDOR_ID, IVSHM_PCI_DEVICE_ID, IVSHM_SYSFS_ROOT_ENV);
}

/* ---- output helpers ---- */

static void
json_string (FILE * out, const char *s)
{
  const unsigned char *p = (const unsigned char *) s;

  fputc ('"', out);
  for (; *p; p++) {
    switch (*p) {
      case '"':
        fputs ("\\\"", out);
        break;
      case '\\':
        fputs ("\\\\", out);
        break;
      case '\n':
        fputs ("\\n", out);
        break;
      case '\t':
        fputs ("\\t", out);
        break;
      default:
        if (*p < 0x20)
          fprintf (out, "\\u%04x", *p);
        else
          fputc (*p, out);
    }
  }
  fputc ('"', out);
}

/* "64" or "0.25": a size in MiB, exact when it is whole. */
static void
print_mib (FILE * out, uint64_t size)
{
  const uint64_t mib = UINT64_C (1024) * 1024;

  if (size % mib == 0)
    fprintf (out, "%" PRIu64, size / mib);
  else
    fprintf (out, "%.3f", (double) size / (double) mib);
}

static void
print_size_text (FILE * out, const char *label, uint64_t size)
{
  fprintf (out, "%s%" PRIu64 " bytes (", label, size);
  print_mib (out, size);
  fputs (" MiB)\n", out);
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
    return EXIT_FAILURE;
  }
  if (n == 0 && !opts->json)
    fprintf (stderr, "no IVSHMEM devices found (looked in "
        "%s/bus/pci/devices)\n", ivshm_sysfs_root ());
  else
    print_device_list (stdout, devs, n, opts);
  free (devs);
  return EXIT_SUCCESS;
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
show_region (const char *device, const PrintOptions * opts)
{
  IvshmRegion *region = NULL;
  IvshmError err = { 0 };

  if (ivshm_region_open (device, NULL, &region, &err) != IVSHM_OK) {
    fprintf (stderr, "ivshmem-info: %s: %s\n",
        ivshm_status_string (err.status), err.detail);
    return EXIT_FAILURE;
  }
  if (opts->json)
    fputs ("{", stdout);
  print_region (stdout, region, opts);
  if (opts->json)
    fputs ("}\n", stdout);
  ivshm_region_close (region);
  return EXIT_SUCCESS;
}

int
main (int argc, char **argv)
{
  PrintOptions opts = { 0 };
  const char *device = NULL;
  int have_device = 0, options_done = 0, i;

  for (i = 1; i < argc; i++) {
    const char *arg = argv[i];

    if (!options_done && strcmp (arg, "--") == 0) {
      options_done = 1;
    } else if (!options_done && strcmp (arg, "--json") == 0) {
      opts.json = 1;
    } else if (!options_done && (strcmp (arg, "-h") == 0
            || strcmp (arg, "--help") == 0)) {
      usage (stdout);
      return EXIT_SUCCESS;
    } else if (!options_done && arg[0] == '-' && arg[1] != '\0') {
      fprintf (stderr, "ivshmem-info: unknown option %s\n\n", arg);
      usage (stderr);
      return EXIT_USAGE;
    } else if (have_device) {
      fprintf (stderr, "ivshmem-info: more than one DEVICE\n\n");
      usage (stderr);
      return EXIT_USAGE;
    } else {
      device = arg;
      have_device = 1;
    }
  }

  if (!have_device)
    return list_devices (&opts);
  return show_region (device, &opts);
}
