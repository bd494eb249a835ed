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
 */
#include "ivshmem-inspect.h"
#include "ivshmem-layout.h"
#include "ivshmem-os.h"
#include "ivshmem-region.h"
#include "ivshmem-sticky.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef _WIN32
#include "ivshmem-private.h"
#include <grp.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#endif

/* The group the packaged udev rule (udev/70-ivshmem.rules) gives access. */
#ifndef IVSHM_UDEV_GROUP
#define IVSHM_UDEV_GROUP "ivshmem"
#endif

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

/* ---- output helpers ---- */

/* Length of the valid UTF-8 sequence at p (n bytes left), 0 if the bytes
 * there are not one. Strings come from an untrusted peer. */
static size_t
utf8_len (const unsigned char *p, size_t n)
{
  size_t len, i;
  uint32_t cp;

  if (p[0] < 0x80)
    return 1;
  if (p[0] >= 0xc2 && p[0] <= 0xdf)
    len = 2, cp = p[0] & 0x1f;
  else if (p[0] >= 0xe0 && p[0] <= 0xef)
    len = 3, cp = p[0] & 0x0f;
  else if (p[0] >= 0xf0 && p[0] <= 0xf4)
    len = 4, cp = p[0] & 0x07;
  else
    return 0;
  if (len > n)
    return 0;
  for (i = 1; i < len; i++) {
    if ((p[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (p[i] & 0x3f);
  }
  if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
      || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
    return 0;
  return len;
}

/* A JSON string: control characters escaped, bytes that are not UTF-8
 * replaced with U+FFFD, so that the output always parses. */
static void
json_string (FILE * out, const char *s)
{
  const unsigned char *p = (const unsigned char *) s;
  size_t n = strlen (s), len;

  fputc ('"', out);
  while (n > 0) {
    if (*p == '"' || *p == '\\') {
      fputc ('\\', out);
      fputc (*p, out);
      len = 1;
    } else if (*p == '\n') {
      fputs ("\\n", out);
      len = 1;
    } else if (*p == '\t') {
      fputs ("\\t", out);
      len = 1;
    } else if (*p < 0x20 || *p == 0x7f) {
      fprintf (out, "\\u%04x", *p);
      len = 1;
    } else if ((len = utf8_len (p, n)) == 0) {
      fputs ("\\ufffd", out);
      len = 1;
    } else {
      fwrite (p, 1, len, out);
    }
    p += len;
    n -= len;
  }
  fputc ('"', out);
}

/* For a terminal: control characters and bytes that are not UTF-8 as
 * \xNN, so a hostile string cannot send escape sequences. */
static void
text_string (FILE * out, const char *s)
{
  const unsigned char *p = (const unsigned char *) s;
  size_t n = strlen (s), len;

  while (n > 0) {
    if (*p < 0x20 || *p == 0x7f || *p == '\\' || (len = utf8_len (p, n)) == 0) {
      if (*p == '\\')
        fputs ("\\\\", out);
      else
        fprintf (out, "\\x%02x", *p);
      len = 1;
    } else {
      fwrite (p, 1, len, out);
    }
    p += len;
    n -= len;
  }
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
  if (n == 0)
#ifdef _WIN32
    fprintf (out, "no IVSHMEM devices found (none with the virtio-win "
        "IVSHMEM driver's device interface; is the driver installed?)\n");
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

/* ---- why a guest's BAR cannot be mapped ---- */

#ifndef _WIN32
static bool
user_in_group (gid_t gid)
{
  gid_t groups[256];
  int n = getgroups (256, groups), i;

  if (getegid () == gid)
    return true;
  for (i = 0; i < n; i++)
    if (groups[i] == gid)
      return true;
  return false;
}

/* What the mode and group of one resource file say about access. */
static void
explain_file (FILE * out, const char *path)
{
  struct stat st;
  struct group *gr;
  char gname[64];

  if (stat (path, &st) != 0) {
    fprintf (out, "  %s: cannot stat it\n", path);
    return;
  }
  gr = getgrgid (st.st_gid);
  if (gr != NULL)
    snprintf (gname, sizeof gname, "%s", gr->gr_name);
  else
    snprintf (gname, sizeof gname, "%u", (unsigned) st.st_gid);
  fprintf (out, "  %s: mode %04o, group %s\n", path,
      (unsigned) (st.st_mode & 07777), gname);

  if (geteuid () == 0 || (st.st_mode & S_IROTH))
    fprintf (out, "    readable by this user: the kernel refused anyway "
        "(lockdown, or a security module such as SELinux or AppArmor)\n");
  else if (!(st.st_mode & S_IRGRP) || st.st_gid == 0)
    fprintf (out, "    the udev rule is missing: only root may read it; "
        "install the rule %s (group \"%s\"), then run: sudo udevadm "
        "control --reload && sudo udevadm trigger --subsystem-match=pci "
        "--attr-match=vendor=0x1af4\n", "70-ivshmem.rules", IVSHM_UDEV_GROUP);
  else if (!user_in_group (st.st_gid))
    fprintf (out, "    this user is not in the group %s: sudo adduser %s "
        "%s, then log in again\n", gname,
        getenv ("USER") ? getenv ("USER") : "USER", gname);
  else
    fprintf (out, "    this user is in the group %s, which may read it: "
        "the kernel refused anyway (lockdown, or a security module)\n", gname);
}

/* After a PCI open failed with PERMISSION or LOCKDOWN: looks at the
 * files (mode, group, the user's groups) and the kernel's lockdown state,
 * and says which of them is the cause, as far as can be told. */
static void
explain_pci_access (const char *device, IvshmBarMapping mapping)
{
  IvshmPciDevice *devs = NULL;
  const IvshmPciDevice *dev = NULL;
  IvshmPciAddr want;
  size_t n = 0, i;
  char mode[32], wc[520];

  fputs ("ivshmem-info: why:\n", stderr);
  if (ivshm_lockdown_active (ivshm_sysfs_root (), mode, sizeof mode))
    fprintf (stderr, "  the kernel is in lockdown mode \"%s\": it refuses "
        "to map PCI BARs from user space, even to root, whatever the file "
        "permissions\n", mode);
  if (ivshm_pci_list (NULL, &devs, &n, NULL) != IVSHM_OK)
    return;
  for (i = 0; i < n && dev == NULL; i++)
    if (device[0] == '\0' || (ivshm_pci_addr_parse (device, &want) == 0
            && want.domain == devs[i].addr.domain
            && want.bus == devs[i].addr.bus
            && want.device == devs[i].addr.device
            && want.function == devs[i].addr.function))
      dev = &devs[i];
  if (dev != NULL) {
    snprintf (wc, sizeof wc, "%s_wc", dev->resource_path);
    if (mapping != IVSHM_BAR_MAPPING_RESOURCE && access (wc, F_OK) == 0)
      explain_file (stderr, wc);
    if (mapping != IVSHM_BAR_MAPPING_RESOURCE_WC)
      explain_file (stderr, dev->resource_path);
  }
  free (devs);
}
#endif

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

/* ---- the ring in a region ---- */

/* The stream as the sticky records tell it: NUL-terminated copies of the
 * latest payloads, taken from the inspection's private snapshot. */
typedef struct
{
  char *caps, *stream_start, *segment, *tags;
  bool eos;
  unsigned custom;              /* custom sticky events */
  unsigned parsed;              /* valid records */
} StreamView;

static char *
record_string (const IvshmStickyRecord * rec)
{
  size_t n;
  const char *text = ivshm_sticky_record_text (rec, &n, NULL);
  char *copy = malloc (n + 1);

  if (copy != NULL) {
    memcpy (copy, text, n);
    copy[n] = '\0';
  }
  return copy;
}

static void
keep_string (char **slot, const IvshmStickyRecord * rec)
{
  free (*slot);
  *slot = record_string (rec);
}

static void
stream_view_read (const IvshmInspection * insp, StreamView * sv)
{
  IvshmStickyIter it;
  IvshmStickyRecord rec;

  memset (sv, 0, sizeof *sv);
  if (insp->sticky == NULL || insp->sticky_status != IVSHM_OK)
    return;
  ivshm_sticky_iter_init (&it, insp->sticky);
  while (ivshm_sticky_iter_next (&it, &rec)) {
    sv->parsed++;
    if (rec.h.type == IVSHM_RECORD_CAPS)
      keep_string (&sv->caps, &rec);
    else if (rec.h.subtype == IVSHM_EVENT_STREAM_START)
      keep_string (&sv->stream_start, &rec);
    else if (rec.h.subtype == IVSHM_EVENT_SEGMENT)
      keep_string (&sv->segment, &rec);
    else if (rec.h.subtype == IVSHM_EVENT_TAG)
      keep_string (&sv->tags, &rec);
    else if (rec.h.subtype == IVSHM_EVENT_EOS)
      sv->eos = true;
    else
      sv->custom++;
  }
  /* a bad record is in insp->problems already (ivshm_inspect validates) */
}

static void
stream_view_clear (StreamView * sv)
{
  free (sv->caps);
  free (sv->stream_start);
  free (sv->segment);
  free (sv->tags);
}

/* "yes", "no" or "unknown" (not watched) */
static const char *
producer_alive (const IvshmInspection * insp)
{
  switch (insp->producer_alive) {
    case IVSHM_LIVENESS_ALIVE:
      return "yes";
    case IVSHM_LIVENESS_UNKNOWN:
      return "unknown";
    default:
      return "no";
  }
}

static const char *
lease_text (const IvshmInspection * insp, unsigned i)
{
  switch (insp->slot_alive[i]) {
    case IVSHM_LIVENESS_ALIVE:
      return "alive";
    case IVSHM_LIVENESS_DEAD:
      return "stalled";
    default:
      return "not watched";
  }
}

static const char *
kernel_relation (uint64_t id)
{
  uint64_t mine = ivshm_kernel_id ();

  if (id == 0 || mine == 0)
    return "unknown";
  return id == mine ? "this kernel" : "another kernel";
}

static void
print_opt_string (FILE * out, const char *label, const char *value)
{
  fputs (label, out);
  if (value != NULL)
    text_string (out, value);
  else
    fputs ("(none)", out);
  fputc ('\n', out);
}

static void
json_opt_string (FILE * out, const char *value)
{
  if (value != NULL)
    json_string (out, value);
  else
    fputs ("null", out);
}

/* readers_sleeping: a count in version 1, a bitmask of slots in 2 */
static void
print_sleeping_text (FILE * out, const IvshmHeaderCopy * c)
{
  unsigned i, n = 0;

  fprintf (out, "  readers asleep: ");
  if (c->version_major < IVSHM_INSPECT_V2) {
    fprintf (out, "%" PRIu32 "\n", c->readers_sleeping);
    return;
  }
  for (i = 0; i < 32; i++)
    if (c->readers_sleeping & (1u << i))
      fprintf (out, "%sslot %u", n++ ? ", " : "", i);
  fputs (n ? "\n" : "none\n", out);
}

static void
print_producer_text (FILE * out, const IvshmInspection * insp)
{
  const IvshmHeaderCopy *c = &insp->h;
  bool active = c->producer_state == IVSHM_PRODUCER_ACTIVE;

  fprintf (out, "  producer:       %s",
      ivshm_inspect_producer_state_name (c->producer_state));
  if (c->producer_state > IVSHM_PRODUCER_CLOSED)
    fprintf (out, " (%" PRIu32 ")", c->producer_state);
  fprintf (out, ", alive: %s", producer_alive (insp));
  if (insp->watched_ns && active)
    fprintf (out, " (heartbeat %s in %" PRIu64 " ms)",
        insp->producer_alive == IVSHM_LIVENESS_ALIVE ? "moved" :
        "did not move", insp->watched_ns / 1000000);
  else if (active)
    fputs (" (--no-wait)", out);
  fputc ('\n', out);
  if (c->version_major >= IVSHM_INSPECT_V2)
    fprintf (out, "  owner:          0x%016" PRIx64 "%s\n", c->producer_owner,
        c->producer_owner ? "" : " (nobody)");
  fprintf (out, "  producer pid:   %" PRIu64 " (%s)\n", c->producer_pid,
      kernel_relation (c->producer_kernel_id));
  fprintf (out, "  heartbeat:      %" PRIu64 ", every %" PRIu64 " us\n",
      c->producer_heartbeat, c->heartbeat_period_us);
}

static void
print_positions_text (FILE * out, const IvshmInspection * insp)
{
  const IvshmHeaderCopy *c = &insp->h;
  uint64_t in_flight = c->tail <= c->write_pos ? c->write_pos - c->tail : 0;

  fprintf (out, "  region size:    %" PRIu64 " bytes (producer's view)\n",
      c->region_size);
  fprintf (out, "  ring:           %" PRIu64 " bytes at offset %" PRIu64 "\n",
      c->ring_size, c->ring_offset);
  fprintf (out, "  write position: %" PRIu64, c->write_pos);
  if (insp->layout_ok && c->ring_size)
    fprintf (out, " (lap %" PRIu64 ", offset %" PRIu64 ")",
        c->write_pos / c->ring_size, c->write_pos % c->ring_size);
  fputc ('\n', out);
  fprintf (out, "  tail:           %" PRIu64 "\n", c->tail);
  fprintf (out, "  in flight:      %" PRIu64 " bytes", in_flight);
  if (insp->layout_ok && c->ring_size)
    fprintf (out, " (%.1f%% of the ring)",
        100.0 * (double) in_flight / (double) c->ring_size);
  fputc ('\n', out);
  fprintf (out, "  flags:          %s%s%s%s\n",
      c->producer_flags & IVSHM_PRODUCER_FLAG_HAD_READER ? "had-reader " : "",
      c->producer_flags & IVSHM_PRODUCER_FLAG_STICKY_OVERFLOW ?
      "sticky-overflow " : "",
      c->producer_flags & IVSHM_PRODUCER_FLAG_LEAKY ? "leaky " : "",
      (c->producer_flags & (IVSHM_PRODUCER_FLAG_HAD_READER |
              IVSHM_PRODUCER_FLAG_STICKY_OVERFLOW |
              IVSHM_PRODUCER_FLAG_LEAKY)) ? "" : "none");
  print_sleeping_text (out, c);
}

static void
print_stream_text (FILE * out, const IvshmInspection * insp,
    const StreamView * sv)
{
  const IvshmStickySnapshot *snap = insp->sticky;

  fputs ("\nstream:\n", out);
  if (insp->sticky_status != IVSHM_OK) {
    fprintf (out, "  (the sticky records could not be read: %s)\n",
        snap ? snap->reason : "out of memory");
    return;
  }
  print_opt_string (out, "  caps:           ", sv->caps);
  print_opt_string (out, "  stream-start:   ", sv->stream_start);
  print_opt_string (out, "  segment:        ", sv->segment);
  print_opt_string (out, "  tags:           ", sv->tags);
  fprintf (out, "  ended:          %s\n", sv->eos ? "yes (EOS)" : "no");
  if (sv->custom)
    fprintf (out, "  custom events:  %u\n", sv->custom);
  fprintf (out, "  sticky records: %u (%" PRIu32 " bytes, %" PRIu64
      " updates), apply from position %" PRIu64 "\n", sv->parsed, snap->len,
      snap->seq / 2, snap->applies_from);
}

static void
print_slots_text (FILE * out, const IvshmInspection * insp)
{
  unsigned i;

  fprintf (out, "\nreaders: %u active", insp->n_active);
  if (insp->n_claimed)
    fprintf (out, ", %u attaching", insp->n_claimed);
  if (insp->n_waiting)
    fprintf (out, ", %u waiting for a producer", insp->n_waiting);
  if (insp->n_evicted)
    fprintf (out, ", %u evicted", insp->n_evicted);
  fprintf (out, " (of %u slots)\n", IVSHM_MAX_READERS);
  for (i = 0; i < IVSHM_MAX_READERS; i++) {
    const IvshmSlotCopy *s = &insp->slots[i];
    uint64_t lag;

    if (s->state == IVSHM_SLOT_FREE)
      continue;
    fprintf (out, "  slot %u: ", i);
    if (s->state != IVSHM_SLOT_ACTIVE)
      fprintf (out, "%s, ", ivshm_inspect_slot_state_name (s->state));
    fprintf (out, "pid %" PRIu64 " (%s), %s session", s->pid,
        kernel_relation (s->kernel_id), s->session_id == 0 ? "no" :
        s->session_id == insp->h.session_id ? "this" : "another");
    if (s->state == IVSHM_SLOT_ACTIVE) {
      if (ivshm_inspect_slot_lag (insp, i, &lag))
        fprintf (out, ", lag %" PRIu64 " bytes", lag);
      else
        fprintf (out, ", read position %" PRIu64 " invalid", s->read_pos);
    }
    fprintf (out, ", lease %s, %" PRIu64 " records read\n",
        lease_text (insp, i), s->records_read);
  }
}

static void
print_ring_text (FILE * out, const IvshmInspection * insp,
    const StreamView * sv)
{
  const IvshmHeaderCopy *c = &insp->h;
  unsigned i;

  fputs ("\nring:\n", out);
  fprintf (out, "  protocol:       %" PRIu32 ".%" PRIu32 "\n",
      c->version_major, c->version_minor);
  fprintf (out, "  session:        0x%016" PRIx64 "\n", c->session_id);
  print_producer_text (out, insp);
  print_positions_text (out, insp);
  print_stream_text (out, insp, sv);
  print_slots_text (out, insp);

  if (insp->n_problems) {
    fputs ("\nproblems:\n", out);
    for (i = 0; i < insp->n_problems; i++) {
      fputs ("  ", out);
      text_string (out, insp->problems[i]);
      fputc ('\n', out);
    }
    if (insp->more_problems)
      fprintf (out, "  (%u more)\n", insp->more_problems);
  }
}

static const char *
json_liveness (IvshmLiveness l)
{
  return l == IVSHM_LIVENESS_ALIVE ? "true" : l == IVSHM_LIVENESS_UNKNOWN ?
      "null" : "false";
}

static void
print_producer_json (FILE * out, const IvshmInspection * insp)
{
  const IvshmHeaderCopy *c = &insp->h;

  fprintf (out, ",\n  \"producer\": {\"state\": \"%s\", \"state_value\": %"
      PRIu32 ", \"alive\": %s, \"watched_ms\": %" PRIu64 ", \"owner\": "
      "\"0x%016" PRIx64 "\", \"pid\": %" PRIu64 ", \"kernel\": \"%s\", "
      "\"heartbeat\": %" PRIu64 ", \"heartbeat_period_us\": %" PRIu64 "}",
      ivshm_inspect_producer_state_name (c->producer_state),
      c->producer_state, json_liveness (insp->producer_alive),
      insp->watched_ns / 1000000, c->producer_owner, c->producer_pid,
      kernel_relation (c->producer_kernel_id), c->producer_heartbeat,
      c->heartbeat_period_us);
  fprintf (out, ",\n  \"region_size\": %" PRIu64 ", \"ring_offset\": %"
      PRIu64 ", \"ring_size\": %" PRIu64 ", \"write_pos\": %" PRIu64
      ", \"tail\": %" PRIu64 ", \"in_flight\": %" PRIu64
      ", \"readers_sleeping\": %" PRIu32, c->region_size, c->ring_offset,
      c->ring_size, c->write_pos, c->tail,
      c->tail <= c->write_pos ? c->write_pos - c->tail : 0,
      c->readers_sleeping);
  fprintf (out, ",\n  \"flags\": {\"value\": %" PRIu32 ", \"had_reader\": %s"
      ", \"sticky_overflow\": %s, \"leaky\": %s}", c->producer_flags,
      c->producer_flags & IVSHM_PRODUCER_FLAG_HAD_READER ? "true" : "false",
      c->producer_flags & IVSHM_PRODUCER_FLAG_STICKY_OVERFLOW ? "true" :
      "false", c->producer_flags & IVSHM_PRODUCER_FLAG_LEAKY ? "true" :
      "false");
}

static void
print_stream_json (FILE * out, const IvshmInspection * insp,
    const StreamView * sv)
{
  const IvshmStickySnapshot *snap = insp->sticky;
  bool ok = insp->sticky_status == IVSHM_OK;

  fputs (",\n  \"stream\": {\"caps\": ", out);
  json_opt_string (out, sv->caps);
  fputs (", \"stream_start\": ", out);
  json_opt_string (out, sv->stream_start);
  fputs (", \"segment\": ", out);
  json_opt_string (out, sv->segment);
  fputs (", \"tags\": ", out);
  json_opt_string (out, sv->tags);
  fprintf (out, ", \"eos\": %s, \"custom_events\": %u, \"sticky_records\": "
      "%u, \"sticky_bytes\": %" PRIu32 ", \"sticky_updates\": %" PRIu64
      ", \"applies_from\": %" PRIu64 ", \"error\": ", sv->eos ? "true" :
      "false", sv->custom, sv->parsed, ok ? snap->len : 0,
      ok ? snap->seq / 2 : 0, ok ? snap->applies_from : 0);
  json_opt_string (out, ok ? NULL : snap ? snap->reason : "out of memory");
  fputs ("}", out);
}

static void
print_slots_json (FILE * out, const IvshmInspection * insp)
{
  const IvshmHeaderCopy *c = &insp->h;
  unsigned i, n = 0;

  fprintf (out, ",\n  \"reader_count\": %u, \"readers_attaching\": %u, "
      "\"readers_waiting\": %u, \"readers_evicted\": %u, \"reader_slots\": "
      "%u, \"readers\": [", insp->n_active, insp->n_claimed,
      insp->n_waiting, insp->n_evicted, IVSHM_MAX_READERS);
  for (i = 0; i < IVSHM_MAX_READERS; i++) {
    const IvshmSlotCopy *s = &insp->slots[i];
    uint64_t lag;

    if (s->state == IVSHM_SLOT_FREE)
      continue;
    fprintf (out, "%s\n   {\"slot\": %u, \"state\": \"%s\", \"pid\": %"
        PRIu64 ", \"kernel\": \"%s\", \"session_match\": %s, \"read_pos\": %"
        PRIu64 ", \"lag\": ", n++ ? "," : "", i,
        ivshm_inspect_slot_state_name (s->state), s->pid,
        kernel_relation (s->kernel_id),
        s->session_id == c->session_id ? "true" : "false", s->read_pos);
    if (s->state == IVSHM_SLOT_ACTIVE && ivshm_inspect_slot_lag (insp, i, &lag))
      fprintf (out, "%" PRIu64, lag);
    else
      fputs ("null", out);
    fprintf (out, ", \"lease_alive\": %s, \"heartbeat\": %" PRIu64
        ", \"records_read\": %" PRIu64 "}",
        json_liveness (insp->slot_alive[i]), s->heartbeat, s->records_read);
  }
  fputs (n ? "\n  ]" : "]", out);
}

static void
print_ring_json (FILE * out, const IvshmInspection * insp,
    const StreamView * sv)
{
  const IvshmHeaderCopy *c = &insp->h;
  unsigned i;

  fprintf (out, ",\n \"ring\": {\"version_major\": %" PRIu32
      ", \"version_minor\": %" PRIu32 ", \"session\": \"0x%016" PRIx64 "\"",
      c->version_major, c->version_minor, c->session_id);
  print_producer_json (out, insp);
  print_stream_json (out, insp, sv);
  print_slots_json (out, insp);
  fputs (",\n  \"problems\": [", out);
  for (i = 0; i < insp->n_problems; i++) {
    if (i)
      fputs (", ", out);
    json_string (out, insp->problems[i]);
  }
  fputs ("]}", out);
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
#ifndef _WIN32
  if ((err.status == IVSHM_ERR_PERMISSION || err.status == IVSHM_ERR_LOCKDOWN)
      && device[0] != '/' && device[0] != '.')
    explain_pci_access (device, opts->bar_mapping);
#endif
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
