/* ivshmem-info: list IVSHMEM devices and show a region and its ring
 * SPDX-License-Identifier: MIT
 *
 * Links only the core (common/), no GStreamer.
 *
 * The ring view reads a region that a peer (another VM) may have filled
 * with anything, so it follows the protocol's rules for untrusted memory
 * (PROTOCOL.md section 8): every shared field is read once, with an atomic
 * load, into a private copy (HeaderCopy, SlotCopy, the sticky snapshot);
 * only the copies are checked and printed; every length is bounded by the
 * fixed layout before it is used. The slots and the sticky area are found
 * at the layout's constant offsets, never at offsets the header claims,
 * and the region is at least IVSHM_REGION_MIN_SIZE bytes (region_open
 * checks it), so no read leaves the mapping.
 */
#include "ivshmem-layout.h"
#include "ivshmem-os.h"
#include "ivshmem-region.h"

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
} PrintOptions;

#define RLX memory_order_relaxed
#define ACQ memory_order_acquire

static void
usage (FILE * out)
{
  fprintf (out,
      "Usage: ivshmem-info [--json] [--no-wait] [DEVICE]\n"
      "\n"
      "Without DEVICE, lists this machine's IVSHMEM PCI devices (%04x:%04x) in\n"
      "address order: PCI location, shared memory size, the file that maps\n"
      "it (sysfs resource2), and the system this runs on.\n"
      "\n"
      "With DEVICE, maps that region and prints its size and path, then the\n"
      "gst-ivshmem ring in it: protocol version, producer session, state and\n"
      "whether it is alive, write position and tail, the stream's caps,\n"
      "stream-start, segment and tags, each reader with its lag and lease,\n"
      "and statistics. DEVICE is\n"
      "  a file path starting with / or . (host side: the file of QEMU's\n"
      "    memory-backend-file, e.g. /dev/shm/NAME), or\n"
      "  a PCI address, DDDD:BB:DD.F or BB:DD.F (guest side), or\n"
      "  on Windows, a device path as listed (\\\\?\\pci#...), or\n"
      "  \"\" for the first IVSHMEM device.\n"
      "Mapping a PCI BAR needs root or a udev rule granting access to\n"
      "resource2 (Linux), or the virtio-win IVSHMEM driver (Windows).\n"
      "The region is only read, never written.\n"
      "\n"
      "Options:\n"
      "  --json      print JSON on standard output instead of text\n"
      "  --no-wait   do not watch the heartbeats (up to 1 s) to tell whether\n"
      "              the producer and the readers are alive\n"
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
      "  1  error (the region cannot be opened, ...): its status and detail\n"
      "     are printed on standard error\n"
      "  2  usage error\n"
      "  3  the region has no producer yet (its magic is 0)\n"
      "  4  the region is not a gst-ivshmem region (another magic)\n"
      "  5  the region speaks a protocol version this tool cannot read\n"
      "  6  the ring header describes an impossible layout (corrupt)\n"
      "With --json, codes 3 to 6 still print the region, with \"ring\": null\n"
      "and an \"error\" object.\n",
      IVSHM_PCI_VENDOR_ID, IVSHM_PCI_DEVICE_ID, IVSHM_SYSFS_ROOT_ENV);
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
  if (n == 0 && !opts->json)
#ifdef _WIN32
    fprintf (stderr, "no IVSHMEM devices found (none with the virtio-win "
        "IVSHMEM driver's device interface; is the driver installed?)\n");
#else
    fprintf (stderr, "no IVSHMEM devices found (looked in "
        "%s/bus/pci/devices)\n", ivshm_sysfs_root ());
#endif
  else
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

/* ---- the ring in a region ---- */

/* Private copies of the shared header and slots, each field read once. */
typedef struct
{
  uint64_t magic;
  uint32_t version_major, version_minor;
  uint64_t region_size, ring_offset, ring_size;
  uint32_t slot_offset;
  uint16_t slot_count, slot_size;
  uint32_t sticky_offset, sticky_size, record_align, header_flags;
  uint64_t session_id, heartbeat;
  uint32_t state, flags;
  uint64_t pid, heartbeat_period_us, kernel_id;
  uint64_t write_pos, tail;
} HeaderCopy;

typedef struct
{
  uint32_t state;
  uint64_t owner, read_pos, heartbeat, session_id, pid, records_read;
  uint64_t kernel_id;
  bool read_pos_tagged;         /* its low 6 bits hold a claim's tag */
  /* filled by watch_heartbeats() */
  bool moved;
} SlotCopy;

#define MAX_PROBLEMS 16

typedef struct
{
  HeaderCopy h;
  SlotCopy slots[IVSHM_MAX_READERS];
  unsigned active, claimed;

  /* the sticky area: a consistent copy, or why there is none */
  const char *sticky_problem;   /* NULL: copied */
  uint64_t sticky_seq, sticky_applies_from;
  uint32_t sticky_len, sticky_count, sticky_parsed;
  char *caps, *stream_start, *segment, *tags;

  /* heartbeats */
  bool watched;
  uint64_t watched_ns;
  bool producer_moved;

  bool layout_ok;
  const char *problems[MAX_PROBLEMS];
  char problem_buf[MAX_PROBLEMS][160];
  unsigned n_problems;
  unsigned more_problems;       /* not kept: the list was full */
} RingView;

static void
add_problem (RingView * v, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format (printf, 2, 3)))
#endif
    ;

static void
add_problem (RingView * v, const char *fmt, ...)
{
  va_list ap;

  if (v->n_problems == MAX_PROBLEMS) {
    v->more_problems++;
    return;
  }
  va_start (ap, fmt);
  vsnprintf (v->problem_buf[v->n_problems], sizeof v->problem_buf[0], fmt,
      ap);
  va_end (ap);
  v->problems[v->n_problems] = v->problem_buf[v->n_problems];
  v->n_problems++;
}

static void
ring_view_clear (RingView * v)
{
  free (v->caps);
  free (v->stream_start);
  free (v->segment);
  free (v->tags);
}

static const IvshmReaderSlot *
slot_at (const uint8_t * base, unsigned i)
{
  return (const IvshmReaderSlot *) (base + IVSHM_SLOT_OFFSET +
      (size_t) i * IVSHM_SLOT_SIZE);
}

/* Reads the shared values. The casts drop const: C11 atomic loads take a
 * non-const pointer, and nothing here stores. */
static void
read_header (uint8_t * base, HeaderCopy * c)
{
  IvshmHeader *h = (IvshmHeader *) base;

  c->magic = atomic_load_explicit (&h->magic, ACQ);
  c->version_major = atomic_load_explicit (&h->version_major, RLX);
  c->version_minor = atomic_load_explicit (&h->version_minor, RLX);
  c->region_size = atomic_load_explicit (&h->region_size, RLX);
  c->ring_offset = atomic_load_explicit (&h->ring_offset, RLX);
  c->ring_size = atomic_load_explicit (&h->ring_size, RLX);
  c->slot_offset = atomic_load_explicit (&h->slot_offset, RLX);
  c->slot_count = atomic_load_explicit (&h->slot_count, RLX);
  c->slot_size = atomic_load_explicit (&h->slot_size, RLX);
  c->sticky_offset = atomic_load_explicit (&h->sticky_offset, RLX);
  c->sticky_size = atomic_load_explicit (&h->sticky_size, RLX);
  c->record_align = atomic_load_explicit (&h->record_align, RLX);
  c->header_flags = atomic_load_explicit (&h->header_flags, RLX);
  c->session_id = atomic_load_explicit (&h->session_id, ACQ);
  c->heartbeat = atomic_load_explicit (&h->producer_heartbeat, ACQ);
  c->state = atomic_load_explicit (&h->producer_state, ACQ);
  c->flags = atomic_load_explicit (&h->producer_flags, RLX);
  c->pid = atomic_load_explicit (&h->producer_pid, RLX);
  c->heartbeat_period_us = atomic_load_explicit (&h->heartbeat_period_us,
      RLX);
  c->kernel_id = atomic_load_explicit (&h->producer_kernel_id, RLX);
  /* tail first, then the slots (read_slots), then write_pos: for an honest
   * producer tail <= read_pos <= write_pos then holds in the copies. */
  c->tail = atomic_load_explicit (&h->tail, ACQ);
}

static void
read_slots (uint8_t * base, RingView * v)
{
  unsigned i, bad_slots = 0, first_bad = 0;

  for (i = 0; i < IVSHM_MAX_READERS; i++) {
    IvshmReaderSlot *s = (IvshmReaderSlot *) slot_at (base, i);
    SlotCopy *c = &v->slots[i];

    c->state = atomic_load_explicit (&s->state, ACQ);
    c->owner = atomic_load_explicit (&s->owner, RLX);
    /* the position without the claim's tag (a reader's value has one) */
    c->read_pos = atomic_load_explicit (&s->read_pos, ACQ);
    c->read_pos_tagged = (c->read_pos & IVSHM_POS_TAG_MASK) != 0;
    c->read_pos &= ~IVSHM_POS_TAG_MASK;
    c->heartbeat = atomic_load_explicit (&s->heartbeat, RLX);
    c->session_id = atomic_load_explicit (&s->session_id, RLX);
    c->pid = atomic_load_explicit (&s->pid, RLX);
    c->records_read = atomic_load_explicit (&s->records_read, RLX);
    c->kernel_id = atomic_load_explicit (&s->kernel_id, RLX);
    c->moved = false;
    if (c->state == IVSHM_SLOT_ACTIVE)
      v->active++;
    else if (c->state == IVSHM_SLOT_CLAIMED)
      v->claimed++;
    else if (c->state != IVSHM_SLOT_FREE && bad_slots++ == 0)
      first_bad = i;
  }
  if (bad_slots)
    add_problem (v, "%u reader slot(s) hold an unknown state (the first: "
        "slot %u, state %" PRIu32 ")", bad_slots, first_bad,
        v->slots[first_bad].state);
}

/* A NUL-terminated copy of at most len bytes of payload (up to its first
 * NUL). */
static char *
copy_string (const uint8_t * payload, uint64_t len)
{
  const uint8_t *nul = memchr (payload, '\0', (size_t) len);
  size_t n = nul ? (size_t) (nul - payload) : (size_t) len;
  char *str = malloc (n + 1);

  if (str != NULL) {
    memcpy (str, payload, n);
    str[n] = '\0';
  }
  return str;
}

static void
keep_string (char **slot, const uint8_t * payload, uint64_t len)
{
  free (*slot);
  *slot = copy_string (payload, len);
}

/* Copies the sticky area under its sequence lock, as ivshm_reader does,
 * then parses the private copy. */
static void
read_sticky (uint8_t * base, RingView * v)
{
  IvshmStickyHeader *sh = (IvshmStickyHeader *) (base + IVSHM_STICKY_OFFSET);
  const uint8_t *src = (const uint8_t *) sh + sizeof (IvshmStickyHeader);
  const uint32_t cap = IVSHM_STICKY_SIZE - sizeof (IvshmStickyHeader);
  uint8_t *buf = malloc (cap);
  uint32_t len = 0, off, count = 0;
  int tries;

  if (buf == NULL) {
    v->sticky_problem = "out of memory";
    return;
  }
  v->sticky_problem = "the producer kept rewriting it (sequence lock busy)";
  for (tries = 0; tries < 200; tries++) {
    uint64_t s1 = atomic_load_explicit (&sh->seq, ACQ), s2, from;

    if (s1 & 1) {
      ivshm_sleep_ns (100 * 1000);
      continue;
    }
    from = atomic_load_explicit (&sh->applies_from, RLX);
    len = atomic_load_explicit (&sh->len, RLX);
    count = atomic_load_explicit (&sh->count, RLX);
    if (len > cap || len % IVSHM_RECORD_ALIGN != 0) {
      atomic_thread_fence (ACQ);
      if (atomic_load_explicit (&sh->seq, RLX) != s1)
        continue;
      v->sticky_problem = "it claims an impossible length";
      v->sticky_len = len;
      free (buf);
      return;
    }
    memcpy (buf, src, len);
    atomic_thread_fence (ACQ);
    s2 = atomic_load_explicit (&sh->seq, RLX);
    if (s1 != s2)
      continue;
    v->sticky_problem = NULL;
    v->sticky_seq = s1;
    v->sticky_applies_from = from;
    break;
  }
  if (v->sticky_problem != NULL) {
    free (buf);
    return;
  }
  v->sticky_len = len;
  v->sticky_count = count;

  /* Only the private copy from here on. Each record: a 64-byte header,
   * payload_len bounded by what is left, a known type. */
  for (off = 0; off + sizeof (IvshmRecordHeader) <= len;) {
    IvshmRecordHeader rh;
    uint64_t left;
    const uint8_t *payload;

    memcpy (&rh, buf + off, sizeof rh);
    left = len - off - sizeof rh;
    if (rh.payload_len > left) {
      add_problem (v, "sticky record at +%" PRIu32 " claims %" PRIu64
          " bytes of payload, only %" PRIu64 " are there", off,
          rh.payload_len, left);
      break;
    }
    payload = buf + off + sizeof rh;
    if (rh.type == IVSHM_RECORD_CAPS) {
      keep_string (&v->caps, payload, rh.payload_len);
    } else if (rh.type == IVSHM_RECORD_EVENT
        && rh.subtype == IVSHM_EVENT_STREAM_START) {
      keep_string (&v->stream_start, payload, rh.payload_len);
    } else if (rh.type == IVSHM_RECORD_EVENT
        && rh.subtype == IVSHM_EVENT_SEGMENT) {
      keep_string (&v->segment, payload, rh.payload_len);
    } else if (rh.type == IVSHM_RECORD_EVENT && rh.subtype == IVSHM_EVENT_TAG) {
      keep_string (&v->tags, payload, rh.payload_len);
    } else {
      add_problem (v, "sticky record at +%" PRIu32 " has type %u subtype %u,"
          " which does not belong there", off, (unsigned) rh.type,
          (unsigned) rh.subtype);
      break;
    }
    v->sticky_parsed++;
    /* payload_len <= len < 56 KiB: no overflow */
    off += (uint32_t) ivshm_record_len (rh.payload_len);
  }
  if (v->sticky_parsed != count && v->n_problems == 0)
    add_problem (v, "the sticky area says %" PRIu32 " records, %" PRIu32
        " were found", count, v->sticky_parsed);
  free (buf);
}

static void
check_layout (const HeaderCopy * c, uint64_t mapped, RingView * v)
{
  uint64_t expect_ring = 0;

  if (c->region_size >= IVSHM_RING_OFFSET)
    expect_ring = (c->region_size - IVSHM_RING_OFFSET)
        & ~(uint64_t) (IVSHM_RECORD_ALIGN - 1);
  v->layout_ok = false;
  if (c->region_size > mapped)
    add_problem (v, "the producer mapped %" PRIu64 " bytes, this side sees "
        "only %" PRIu64 "; both sides must map the same region",
        c->region_size, mapped);
  else if (c->region_size < IVSHM_REGION_MIN || c->ring_offset !=
      IVSHM_RING_OFFSET || c->ring_size != expect_ring
      || c->slot_offset != IVSHM_SLOT_OFFSET
      || c->slot_count != IVSHM_MAX_READERS
      || c->slot_size != IVSHM_SLOT_SIZE
      || c->sticky_offset != IVSHM_STICKY_OFFSET
      || c->sticky_size != IVSHM_STICKY_SIZE
      || c->record_align != IVSHM_RECORD_ALIGN)
    add_problem (v, "the header describes an impossible layout (region %"
        PRIu64 ", ring at %" PRIu64 " of %" PRIu64 " bytes, %u slots of %u "
        "at %" PRIu32 ", sticky %" PRIu32 " at %" PRIu32 ", align %" PRIu32
        ")", c->region_size, c->ring_offset, c->ring_size,
        (unsigned) c->slot_count, (unsigned) c->slot_size, c->slot_offset,
        c->sticky_size, c->sticky_offset, c->record_align);
  else
    v->layout_ok = true;
}

static void
check_positions (RingView * v)
{
  const HeaderCopy *c = &v->h;

  if (c->write_pos % IVSHM_RECORD_ALIGN != 0 || c->tail % IVSHM_RECORD_ALIGN)
    add_problem (v, "write position %" PRIu64 " or tail %" PRIu64 " is not "
        "a multiple of 64", c->write_pos, c->tail);
  else if (c->tail > c->write_pos)
    add_problem (v, "the tail %" PRIu64 " is past the write position %"
        PRIu64, c->tail, c->write_pos);
  else if (v->layout_ok && c->write_pos - c->tail > c->ring_size)
    add_problem (v, "%" PRIu64 " bytes between tail and write position, "
        "more than the ring's %" PRIu64, c->write_pos - c->tail, c->ring_size);
  if (c->state == IVSHM_PRODUCER_ACTIVE && c->session_id == 0)
    add_problem (v, "an active producer with session id 0");
  if (c->state > IVSHM_PRODUCER_CLOSED)
    add_problem (v, "unknown producer state %" PRIu32, c->state);
}

/* The lag of an active slot, or false if its read_pos makes no sense. */
static bool
slot_lag (const RingView * v, const SlotCopy * s, uint64_t * lag)
{
  if (!s->read_pos_tagged || s->read_pos > v->h.write_pos)
    return false;
  *lag = v->h.write_pos - s->read_pos;
  return !(v->layout_ok && s->session_id == v->h.session_id
      && *lag > v->h.ring_size);
}

/* Watches the producer's and the active readers' heartbeats: about 2.5
 * producer heartbeat periods, at least 250 ms (readers beat every 100 ms),
 * at most 1 s; stops as soon as every one of them moved. */
static void
watch_heartbeats (uint8_t * base, RingView * v)
{
  IvshmHeader *h = (IvshmHeader *) base;
  uint64_t period_us = v->h.heartbeat_period_us, window, start, now;
  bool all;
  unsigned i;

  if (period_us == 0)
    period_us = IVSHM_DEFAULT_HEARTBEAT_NS / 1000;
  if (period_us > 1000 * 1000)  /* untrusted: bound before multiplying */
    period_us = 1000 * 1000;
  window = period_us * 1000 * 5 / 2;
  if (window < 250ull * 1000 * 1000)
    window = 250ull * 1000 * 1000;
  if (window > 1000ull * 1000 * 1000)
    window = 1000ull * 1000 * 1000;

  v->watched = true;
  start = ivshm_now_ns ();
  do {
    ivshm_sleep_ns (5 * 1000 * 1000);
    if (atomic_load_explicit (&h->producer_heartbeat, RLX) != v->h.heartbeat)
      v->producer_moved = true;
    all = v->producer_moved || v->h.state != IVSHM_PRODUCER_ACTIVE;
    for (i = 0; i < IVSHM_MAX_READERS; i++) {
      SlotCopy *s = &v->slots[i];
      IvshmReaderSlot *shared;

      if (s->state != IVSHM_SLOT_ACTIVE || s->moved)
        continue;
      shared = (IvshmReaderSlot *) slot_at (base, i);
      if (atomic_load_explicit (&shared->heartbeat, RLX) != s->heartbeat)
        s->moved = true;
      else
        all = false;
    }
    now = ivshm_now_ns ();
  } while (!all && now - start < window);
  v->watched_ns = now - start;
}

static const char *
producer_state_name (uint32_t state)
{
  switch (state) {
    case IVSHM_PRODUCER_NONE:
      return "none";
    case IVSHM_PRODUCER_ACTIVE:
      return "active";
    case IVSHM_PRODUCER_CLOSED:
      return "closed";
    default:
      return "unknown";
  }
}

/* "yes", "no" or "unknown" (not watched) */
static const char *
producer_alive (const RingView * v)
{
  if (v->h.state != IVSHM_PRODUCER_ACTIVE)
    return "no";
  if (!v->watched)
    return "unknown";
  return v->producer_moved ? "yes" : "no";
}

static const char *
kernel_relation (uint64_t id)
{
  uint64_t mine = ivshm_kernel_id ();

  if (id == 0 || mine == 0)
    return "unknown";
  return id == mine ? "this kernel" : "another kernel";
}

/* Reads and checks the ring. Returns the exit code; the status names the
 * cause for the messages. */
static int
ring_view_read (const IvshmRegion * region, const PrintOptions * opts,
    RingView * v, IvshmStatus * status)
{
  uint8_t *base = ivshm_region_data (region);
  uint64_t mapped = ivshm_region_size (region);
  IvshmHeader *h = (IvshmHeader *) base;

  memset (v, 0, sizeof *v);
  *status = IVSHM_OK;
  read_header (base, &v->h);
  if (v->h.magic == 0) {
    *status = IVSHM_ERR_NO_PRODUCER;
    return EXIT_NO_PRODUCER;
  }
  if (v->h.magic != IVSHM_MAGIC) {
    *status = IVSHM_ERR_BAD_MAGIC;
    return EXIT_NOT_IVSHMEM;
  }
  if (v->h.version_major != IVSHM_VERSION_MAJOR) {
    *status = IVSHM_ERR_VERSION;
    return EXIT_VERSION;
  }
  check_layout (&v->h, mapped, v);
  read_slots (base, v);
  v->h.write_pos = atomic_load_explicit (&h->write_pos, ACQ);
  check_positions (v);
  read_sticky (base, v);
  if (!opts->no_wait)
    watch_heartbeats (base, v);
  if (!v->layout_ok) {
    *status = IVSHM_ERR_CORRUPT;
    return EXIT_CORRUPT;
  }
  return EXIT_OK;
}

static void
ring_error_detail (const RingView * v, IvshmStatus status, char *buf,
    size_t size)
{
  switch (status) {
    case IVSHM_ERR_NO_PRODUCER:
      snprintf (buf, size, "no producer has initialised this region yet "
          "(its magic is 0): start an ivshmemsink on it");
      break;
    case IVSHM_ERR_BAD_MAGIC:
      snprintf (buf, size, "the region does not start with the gst-ivshmem "
          "magic 0x%016" PRIx64 " (found 0x%016" PRIx64 "); another program "
          "uses it, or it holds stale data", (uint64_t) IVSHM_MAGIC,
          v->h.magic);
      break;
    case IVSHM_ERR_VERSION:
      snprintf (buf, size, "the producer speaks protocol version %" PRIu32
          ".%" PRIu32 ", this tool reads version %u; use the same "
          "gst-ivshmem major version on both sides", v->h.version_major,
          v->h.version_minor, IVSHM_VERSION_MAJOR);
      break;
    case IVSHM_ERR_CORRUPT:
      snprintf (buf, size, "%s", v->n_problems ? v->problems[0] :
          "the ring header is corrupt");
      break;
    default:
      snprintf (buf, size, "%s", ivshm_status_string (status));
  }
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

static void
print_ring_text (FILE * out, const RingView * v)
{
  const HeaderCopy *c = &v->h;
  unsigned i;
  uint64_t in_flight = c->tail <= c->write_pos ? c->write_pos - c->tail : 0;

  fputs ("\nring:\n", out);
  fprintf (out, "  protocol:       %" PRIu32 ".%" PRIu32 "\n",
      c->version_major, c->version_minor);
  fprintf (out, "  session:        0x%016" PRIx64 "\n", c->session_id);
  fprintf (out, "  producer:       %s", producer_state_name (c->state));
  if (c->state > IVSHM_PRODUCER_CLOSED)
    fprintf (out, " (%" PRIu32 ")", c->state);
  fprintf (out, ", alive: %s", producer_alive (v));
  if (v->watched && c->state == IVSHM_PRODUCER_ACTIVE)
    fprintf (out, " (heartbeat %s in %" PRIu64 " ms)",
        v->producer_moved ? "moved" : "did not move",
        v->watched_ns / 1000000);
  else if (!v->watched && c->state == IVSHM_PRODUCER_ACTIVE)
    fputs (" (--no-wait)", out);
  fputc ('\n', out);
  fprintf (out, "  producer pid:   %" PRIu64 " (%s)\n", c->pid,
      kernel_relation (c->kernel_id));
  fprintf (out, "  heartbeat:      %" PRIu64 ", every %" PRIu64 " us\n",
      c->heartbeat, c->heartbeat_period_us);
  fprintf (out, "  region size:    %" PRIu64 " bytes (producer's view)\n",
      c->region_size);
  fprintf (out, "  ring:           %" PRIu64 " bytes at offset %" PRIu64 "\n",
      c->ring_size, c->ring_offset);
  fprintf (out, "  write position: %" PRIu64, c->write_pos);
  if (v->layout_ok && c->ring_size)
    fprintf (out, " (lap %" PRIu64 ", offset %" PRIu64 ")",
        c->write_pos / c->ring_size, c->write_pos % c->ring_size);
  fputc ('\n', out);
  fprintf (out, "  tail:           %" PRIu64 "\n", c->tail);
  fprintf (out, "  in flight:      %" PRIu64 " bytes", in_flight);
  if (v->layout_ok && c->ring_size)
    fprintf (out, " (%.1f%% of the ring)",
        100.0 * (double) in_flight / (double) c->ring_size);
  fputc ('\n', out);
  fprintf (out, "  flags:          %s%s%s\n",
      c->flags & IVSHM_PRODUCER_FLAG_HAD_READER ? "had-reader " : "",
      c->flags & IVSHM_PRODUCER_FLAG_STICKY_OVERFLOW ? "sticky-overflow " : "",
      (c->flags & (IVSHM_PRODUCER_FLAG_HAD_READER |
              IVSHM_PRODUCER_FLAG_STICKY_OVERFLOW)) ? "" : "none");

  fputs ("\nstream:\n", out);
  if (v->sticky_problem != NULL) {
    fprintf (out, "  (the sticky records could not be read: %s)\n",
        v->sticky_problem);
  } else {
    print_opt_string (out, "  caps:           ", v->caps);
    print_opt_string (out, "  stream-start:   ", v->stream_start);
    print_opt_string (out, "  segment:        ", v->segment);
    print_opt_string (out, "  tags:           ", v->tags);
    fprintf (out, "  sticky records: %" PRIu32 " (%" PRIu32 " bytes, %"
        PRIu64 " updates), apply from position %" PRIu64 "\n",
        v->sticky_parsed, v->sticky_len, v->sticky_seq / 2,
        v->sticky_applies_from);
  }

  fprintf (out, "\nreaders: %u active", v->active);
  if (v->claimed)
    fprintf (out, ", %u attaching", v->claimed);
  fprintf (out, " (of %u slots)\n", IVSHM_MAX_READERS);
  for (i = 0; i < IVSHM_MAX_READERS; i++) {
    const SlotCopy *s = &v->slots[i];
    uint64_t lag;

    if (s->state != IVSHM_SLOT_ACTIVE)
      continue;
    fprintf (out, "  slot %u: pid %" PRIu64 " (%s), %s session", i, s->pid,
        kernel_relation (s->kernel_id),
        s->session_id == c->session_id ? "this" : "another");
    if (slot_lag (v, s, &lag))
      fprintf (out, ", lag %" PRIu64 " bytes", lag);
    else
      fprintf (out, ", read position %" PRIu64 " invalid", s->read_pos);
    fprintf (out, ", lease %s, %" PRIu64 " records read\n",
        !v->watched ? "not watched" : s->moved ? "alive" : "stalled",
        s->records_read);
  }

  if (v->n_problems) {
    fputs ("\nproblems:\n", out);
    for (i = 0; i < v->n_problems; i++)
      fprintf (out, "  %s\n", v->problems[i]);
    if (v->more_problems)
      fprintf (out, "  (%u more)\n", v->more_problems);
  }
}

static void
print_ring_json (FILE * out, const RingView * v)
{
  const HeaderCopy *c = &v->h;
  unsigned i, n = 0;
  const char *alive = producer_alive (v);

  fprintf (out, ",\n \"ring\": {\"version_major\": %" PRIu32
      ", \"version_minor\": %" PRIu32 ", \"session\": \"0x%016" PRIx64 "\"",
      c->version_major, c->version_minor, c->session_id);
  fprintf (out, ",\n  \"producer\": {\"state\": \"%s\", \"state_value\": %"
      PRIu32 ", \"alive\": %s, \"watched_ms\": %" PRIu64 ", \"pid\": %"
      PRIu64 ", \"kernel\": \"%s\", \"heartbeat\": %" PRIu64
      ", \"heartbeat_period_us\": %" PRIu64 "}",
      producer_state_name (c->state), c->state,
      strcmp (alive, "unknown") == 0 ? "null" : strcmp (alive, "yes") == 0 ?
      "true" : "false", v->watched_ns / 1000000, c->pid,
      kernel_relation (c->kernel_id), c->heartbeat, c->heartbeat_period_us);
  fprintf (out, ",\n  \"region_size\": %" PRIu64 ", \"ring_offset\": %"
      PRIu64 ", \"ring_size\": %" PRIu64 ", \"write_pos\": %" PRIu64
      ", \"tail\": %" PRIu64 ", \"in_flight\": %" PRIu64,
      c->region_size, c->ring_offset, c->ring_size, c->write_pos, c->tail,
      c->tail <= c->write_pos ? c->write_pos - c->tail : 0);
  fprintf (out, ",\n  \"flags\": {\"value\": %" PRIu32 ", \"had_reader\": %s"
      ", \"sticky_overflow\": %s}", c->flags,
      c->flags & IVSHM_PRODUCER_FLAG_HAD_READER ? "true" : "false",
      c->flags & IVSHM_PRODUCER_FLAG_STICKY_OVERFLOW ? "true" : "false");

  fputs (",\n  \"stream\": {\"caps\": ", out);
  json_opt_string (out, v->caps);
  fputs (", \"stream_start\": ", out);
  json_opt_string (out, v->stream_start);
  fputs (", \"segment\": ", out);
  json_opt_string (out, v->segment);
  fputs (", \"tags\": ", out);
  json_opt_string (out, v->tags);
  fprintf (out, ", \"sticky_records\": %" PRIu32 ", \"sticky_bytes\": %"
      PRIu32 ", \"sticky_updates\": %" PRIu64 ", \"applies_from\": %" PRIu64
      ", \"error\": ", v->sticky_parsed, v->sticky_len, v->sticky_seq / 2,
      v->sticky_applies_from);
  json_opt_string (out, v->sticky_problem);
  fputs ("}", out);

  fprintf (out, ",\n  \"reader_count\": %u, \"readers_attaching\": %u, "
      "\"reader_slots\": %u, \"readers\": [", v->active, v->claimed,
      IVSHM_MAX_READERS);
  for (i = 0; i < IVSHM_MAX_READERS; i++) {
    const SlotCopy *s = &v->slots[i];
    uint64_t lag;

    if (s->state != IVSHM_SLOT_ACTIVE)
      continue;
    fprintf (out, "%s\n   {\"slot\": %u, \"pid\": %" PRIu64 ", \"kernel\": "
        "\"%s\", \"session_match\": %s, \"read_pos\": %" PRIu64 ", \"lag\": ",
        n++ ? "," : "", i, s->pid, kernel_relation (s->kernel_id),
        s->session_id == c->session_id ? "true" : "false", s->read_pos);
    if (slot_lag (v, s, &lag))
      fprintf (out, "%" PRIu64, lag);
    else
      fputs ("null", out);
    fprintf (out, ", \"lease_alive\": %s, \"heartbeat\": %" PRIu64
        ", \"records_read\": %" PRIu64 "}",
        !v->watched ? "null" : s->moved ? "true" : "false", s->heartbeat,
        s->records_read);
  }
  fputs (n ? "\n  ]" : "]", out);

  fputs (",\n  \"problems\": [", out);
  for (i = 0; i < v->n_problems; i++) {
    if (i)
      fputs (", ", out);
    json_string (out, v->problems[i]);
  }
  fputs ("]}", out);
}

static int
show_region (const char *device, const PrintOptions * opts)
{
  IvshmRegion *region = NULL;
  IvshmError err = { 0 };
  IvshmStatus status;
  RingView view;
  int code;
  char detail[512];

  if (ivshm_region_open (device, NULL, &region, &err) != IVSHM_OK) {
    fprintf (stderr, "ivshmem-info: %s: %s\n",
        ivshm_status_string (err.status), err.detail);
    return EXIT_ERROR;
  }

  code = ring_view_read (region, opts, &view, &status);
  if (status != IVSHM_OK)
    ring_error_detail (&view, status, detail, sizeof detail);

  if (opts->json) {
    fputs ("{", stdout);
    print_region (stdout, region, opts);
    if (code == EXIT_OK || code == EXIT_CORRUPT) {
      print_ring_json (stdout, &view);
    } else {
      fputs (",\n \"ring\": null", stdout);
    }
    if (status != IVSHM_OK) {
      fprintf (stdout, ",\n \"error\": {\"status\": \"%s\", \"exit_code\": "
          "%d, \"detail\": ", ivshm_status_name (status), code);
      json_string (stdout, detail);
      fputs ("}", stdout);
    }
    fputs ("}\n", stdout);
  } else {
    print_region (stdout, region, opts);
    if (code == EXIT_OK || code == EXIT_CORRUPT)
      print_ring_text (stdout, &view);
  }
  if (status != IVSHM_OK)
    fprintf (stderr, "ivshmem-info: %s: %s\n", ivshm_status_string (status),
        detail);

  ring_view_clear (&view);
  ivshm_region_close (region);
  return code;
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
    } else if (!options_done && strcmp (arg, "--no-wait") == 0) {
      opts.no_wait = 1;
    } else if (!options_done && (strcmp (arg, "-h") == 0
            || strcmp (arg, "--help") == 0)) {
      usage (stdout);
      return EXIT_OK;
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
