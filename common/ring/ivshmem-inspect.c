/* gst-ivshmem: a read-only look at a mapped region
 * SPDX-License-Identifier: MIT
 *
 * See ivshmem-inspect.h. The region may be a hostile peer's: each shared
 * value is read once with an atomic load into IvshmHeaderCopy /
 * IvshmSlotCopy, and only the copies are checked. The loads take
 * non-const pointers (C11), but nothing here stores.
 */
#include "ivshmem-inspect.h"
#include "ivshmem-layout.h"
#include "ivshmem-os.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifndef _WIN32
#include <unistd.h>
#endif

_Static_assert (IVSHM_INSPECT_SIZE == IVSHM_RING_OFFSET,
    "ivshm_inspect() reads everything before the ring");
_Static_assert (IVSHM_INSPECT_LIVE_SIZE == IVSHM_STICKY_OFFSET,
    "the header and the slots end where the sticky area starts");

#define RLX memory_order_relaxed
#define ACQ memory_order_acquire

#define MS (1000ull * 1000ull)
#define WATCH_STEP_NS (5 * MS)
#define READER_HEARTBEAT_NS (100 * MS)

bool
ivshm_inspect_version_supported (uint32_t major)
{
  /* version 1 only while this build's own layout is still version 1 */
  return major == IVSHM_INSPECT_V2 || major == IVSHM_VERSION_MAJOR;
}

/* *INDENT-OFF* */
static void
add_problem (IvshmInspection * insp, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format (printf, 2, 3)))
#endif
    ;
/* *INDENT-ON* */

static void
add_problem (IvshmInspection * insp, const char *fmt, ...)
{
  va_list ap;

  if (insp->n_problems == IVSHM_INSPECT_MAX_PROBLEMS) {
    insp->more_problems++;
    return;
  }
  va_start (ap, fmt);
  vsnprintf (insp->problems[insp->n_problems], IVSHM_INSPECT_PROBLEM_LEN,
      fmt, ap);
  va_end (ap);
  insp->n_problems++;
}

static IvshmReaderSlot *
slot_at (const void *base, unsigned i)
{
  return (IvshmReaderSlot *) ((uint8_t *) base + IVSHM_SLOT_OFFSET +
      (size_t) i * IVSHM_SLOT_SIZE);
}

static _Atomic uint64_t *
producer_owner_at (const void *base)
{
  return (_Atomic uint64_t *) ((uint8_t *) base +
      IVSHM_INSPECT_PRODUCER_OWNER_OFFSET);
}

static void
read_header (const void *base, IvshmHeaderCopy * c)
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
  c->producer_heartbeat = atomic_load_explicit (&h->producer_heartbeat, ACQ);
  c->producer_state = atomic_load_explicit (&h->producer_state, ACQ);
  c->producer_flags = atomic_load_explicit (&h->producer_flags, RLX);
  c->producer_pid = atomic_load_explicit (&h->producer_pid, RLX);
  c->heartbeat_period_us = atomic_load_explicit (&h->heartbeat_period_us, RLX);
  c->producer_kernel_id = atomic_load_explicit (&h->producer_kernel_id, RLX);
  c->producer_owner = atomic_load_explicit (producer_owner_at (base), RLX);
  c->data_futex = atomic_load_explicit (&h->data_futex, RLX);
  c->readers_sleeping = atomic_load_explicit (&h->readers_sleeping, RLX);
  c->space_futex = atomic_load_explicit (&h->space_futex, RLX);
  c->writer_sleeping = atomic_load_explicit (&h->writer_sleeping, RLX);
  /* tail first, then the slots, then write_pos: for an honest producer
   * tail <= read_pos <= write_pos then holds in the copies */
  c->tail = atomic_load_explicit (&h->tail, ACQ);
}

static bool
slot_state_known (const IvshmInspection * insp, uint32_t state)
{
  if (state <= IVSHM_SLOT_EVICTED)
    return true;
  return state == IVSHM_INSPECT_SLOT_WAITING
      && insp->h.version_major >= IVSHM_INSPECT_V2;
}

static void
read_slots (const void *base, IvshmInspection * insp)
{
  unsigned i, bad = 0, first_bad = 0, waiting_bad = 0;

  for (i = 0; i < IVSHM_MAX_READERS; i++) {
    IvshmReaderSlot *s = slot_at (base, i);
    IvshmSlotCopy *c = &insp->slots[i];

    c->state = atomic_load_explicit (&s->state, ACQ);
    c->owner = atomic_load_explicit (&s->owner, RLX);
    c->read_pos = atomic_load_explicit (&s->read_pos, ACQ);
    c->heartbeat = atomic_load_explicit (&s->heartbeat, RLX);
    c->session_id = atomic_load_explicit (&s->session_id, RLX);
    c->generation = atomic_load_explicit (&s->generation, RLX);
    if (insp->h.version_major >= IVSHM_INSPECT_V2) {
      c->read_pos_tag = (uint32_t) (c->read_pos & IVSHM_POS_TAG_MASK);
      c->read_pos &= ~IVSHM_POS_TAG_MASK;
    }
    c->pid = atomic_load_explicit (&s->pid, RLX);
    c->records_read = atomic_load_explicit (&s->records_read, RLX);
    c->kernel_id = atomic_load_explicit (&s->kernel_id, RLX);
    insp->slot_alive[i] = c->state == IVSHM_SLOT_FREE ?
        IVSHM_LIVENESS_NONE : IVSHM_LIVENESS_UNKNOWN;

    if (!slot_state_known (insp, c->state) && bad++ == 0)
      first_bad = i;
    else if (c->state == IVSHM_SLOT_ACTIVE)
      insp->n_active++;
    else if (c->state == IVSHM_SLOT_CLAIMED)
      insp->n_claimed++;
    else if (c->state == IVSHM_SLOT_EVICTED)
      insp->n_evicted++;
    else if (c->state == IVSHM_INSPECT_SLOT_WAITING) {
      insp->n_waiting++;
      if (c->session_id != 0)
        waiting_bad++;
    }
  }
  if (bad)
    add_problem (insp, "%u reader slot(s) hold an unknown state (the "
        "first: slot %u, state %" PRIu32 ")", bad, first_bad,
        insp->slots[first_bad].state);
  if (waiting_bad)
    add_problem (insp, "%u waiting reader slot(s) name a session; a "
        "waiting slot's session is 0", waiting_bad);
}

static void
check_layout (IvshmInspection * insp, uint64_t mapped)
{
  const IvshmHeaderCopy *c = &insp->h;
  uint64_t expect_ring = 0;

  if (c->region_size >= IVSHM_RING_OFFSET)
    expect_ring = (c->region_size - IVSHM_RING_OFFSET)
        & ~(uint64_t) (IVSHM_RECORD_ALIGN - 1);
  insp->layout_ok = false;
  if (c->region_size > mapped)
    add_problem (insp, "the producer mapped %" PRIu64 " bytes, this side "
        "sees only %" PRIu64 "; both sides must map the same region",
        c->region_size, mapped);
  else if (c->region_size < IVSHM_REGION_MIN || c->ring_offset !=
      IVSHM_RING_OFFSET || c->ring_size != expect_ring
      || c->slot_offset != IVSHM_SLOT_OFFSET
      || c->slot_count != IVSHM_MAX_READERS
      || c->slot_size != IVSHM_SLOT_SIZE
      || c->sticky_offset != IVSHM_STICKY_OFFSET
      || c->sticky_size != IVSHM_STICKY_SIZE
      || c->record_align != IVSHM_RECORD_ALIGN)
    add_problem (insp, "the header describes an impossible layout (region %"
        PRIu64 ", ring at %" PRIu64 " of %" PRIu64 " bytes, %u slots of %u "
        "at %" PRIu32 ", sticky %" PRIu32 " at %" PRIu32 ", align %" PRIu32
        ")", c->region_size, c->ring_offset, c->ring_size,
        (unsigned) c->slot_count, (unsigned) c->slot_size, c->slot_offset,
        c->sticky_size, c->sticky_offset, c->record_align);
  else
    insp->layout_ok = true;
}

static void
check_positions (IvshmInspection * insp)
{
  const IvshmHeaderCopy *c = &insp->h;

  if (c->write_pos % IVSHM_RECORD_ALIGN != 0 || c->tail % IVSHM_RECORD_ALIGN)
    add_problem (insp, "write position %" PRIu64 " or tail %" PRIu64
        " is not a multiple of 64", c->write_pos, c->tail);
  else if (c->tail > c->write_pos)
    add_problem (insp, "the tail %" PRIu64 " is past the write position %"
        PRIu64, c->tail, c->write_pos);
  else if (insp->layout_ok && c->write_pos - c->tail > c->ring_size)
    add_problem (insp, "%" PRIu64 " bytes between tail and write position, "
        "more than the ring's %" PRIu64, c->write_pos - c->tail, c->ring_size);
  if (c->producer_state == IVSHM_PRODUCER_ACTIVE && c->session_id == 0)
    add_problem (insp, "an active producer with session id 0");
  if (c->producer_state > IVSHM_PRODUCER_CLOSED)
    add_problem (insp, "unknown producer state %" PRIu32, c->producer_state);
  if (c->version_major >= IVSHM_INSPECT_V2
      && c->producer_state == IVSHM_PRODUCER_ACTIVE && c->producer_owner == 0)
    add_problem (insp, "an active producer that owns nothing (producer "
        "owner 0)");
}

static void
read_sticky (const void *base, IvshmInspection * insp)
{
  char reason[IVSHM_STICKY_REASON_LEN];

  insp->sticky = malloc (sizeof *insp->sticky);
  if (insp->sticky == NULL) {
    insp->sticky_status = IVSHM_ERR_NO_MEMORY;
    return;
  }
  /* a tool can afford short pauses: 200 tries, 100 us apart at most */
  insp->sticky_status = ivshm_sticky_snapshot (base, 200, 100 * 1000,
      insp->sticky);
  if (insp->sticky_status == IVSHM_OK
      && ivshm_sticky_validate (insp->sticky, reason, sizeof reason)
      != IVSHM_OK)
    add_problem (insp, "%s", reason);
}

IvshmStatus
ivshm_inspect (const void *base, uint64_t mapped_size, IvshmInspection * insp)
{
  IvshmHeader *h = (IvshmHeader *) base;
  unsigned i;

  memset (insp, 0, sizeof *insp);
  insp->producer_alive = IVSHM_LIVENESS_NONE;
  for (i = 0; i < IVSHM_MAX_READERS; i++)
    insp->slot_alive[i] = IVSHM_LIVENESS_NONE;
  insp->sticky_status = IVSHM_ERR_NOT_MAPPED;
  if (mapped_size < IVSHM_RING_OFFSET) {
    insp->status = IVSHM_ERR_TOO_SMALL;
    return insp->status;
  }
  read_header (base, &insp->h);
  if (insp->h.magic == 0)
    insp->status = IVSHM_ERR_NO_PRODUCER;
  else if (insp->h.magic != IVSHM_MAGIC)
    insp->status = IVSHM_ERR_BAD_MAGIC;
  else if (!ivshm_inspect_version_supported (insp->h.version_major))
    insp->status = IVSHM_ERR_VERSION;
  if (insp->status != IVSHM_OK)
    return insp->status;

  if (insp->h.producer_state == IVSHM_PRODUCER_ACTIVE)
    insp->producer_alive = IVSHM_LIVENESS_UNKNOWN;
  check_layout (insp, mapped_size);
  read_slots (base, insp);
  insp->h.write_pos = atomic_load_explicit (&h->write_pos, ACQ);
  check_positions (insp);
  read_sticky (base, insp);
  if (!insp->layout_ok)
    insp->status = IVSHM_ERR_CORRUPT;
  return insp->status;
}

void
ivshm_inspection_clear (IvshmInspection * insp)
{
  free (insp->sticky);
  insp->sticky = NULL;
}

uint64_t
ivshm_inspect_default_window (const IvshmInspection * insp)
{
  uint64_t period_us = insp->h.heartbeat_period_us, window;

  if (period_us == 0)
    period_us = IVSHM_DEFAULT_HEARTBEAT_NS / 1000;
  if (period_us > 1000 * 1000)  /* untrusted: bound before multiplying */
    period_us = 1000 * 1000;
  window = period_us * 1000 * 5 / 2;
  if (window < 250 * MS)
    window = 250 * MS;
  if (window > 1000 * MS)
    window = 1000 * MS;
  return window;
}

bool
ivshm_inspect_watch_step (const void *base, IvshmInspection * insp)
{
  IvshmHeader *h = (IvshmHeader *) base;
  bool all = true;
  unsigned i;

  /* the slots were not read (nor, maybe, mapped) */
  if (insp->status != IVSHM_OK && insp->status != IVSHM_ERR_CORRUPT)
    return true;
  if (insp->producer_alive == IVSHM_LIVENESS_UNKNOWN) {
    if (atomic_load_explicit (&h->producer_heartbeat, RLX) !=
        insp->h.producer_heartbeat)
      insp->producer_alive = IVSHM_LIVENESS_ALIVE;
    else
      all = false;
  }
  for (i = 0; i < IVSHM_MAX_READERS; i++) {
    if (insp->slot_alive[i] != IVSHM_LIVENESS_UNKNOWN)
      continue;
    if (atomic_load_explicit (&slot_at (base, i)->heartbeat, RLX) !=
        insp->slots[i].heartbeat)
      insp->slot_alive[i] = IVSHM_LIVENESS_ALIVE;
    else
      all = false;
  }
  return all;
}

void
ivshm_inspect_watch (const void *base, IvshmInspection * insp,
    uint64_t window_ns)
{
  uint64_t start, now;

  if (window_ns == 0 || (insp->status != IVSHM_OK
          && insp->status != IVSHM_ERR_CORRUPT))
    return;
  start = ivshm_now_ns ();
  do {
    ivshm_sleep_ns (WATCH_STEP_NS);
    now = ivshm_now_ns ();
  } while (!ivshm_inspect_watch_step (base, insp)
      && now - start < window_ns);
  ivshm_inspect_watch_finish (insp, now - start);
}

void
ivshm_inspect_watch_finish (IvshmInspection * insp, uint64_t elapsed_ns)
{
  unsigned i;

  insp->watched_ns = elapsed_ns ? elapsed_ns : 1;
  /* what did not move in the whole window */
  if (insp->producer_alive == IVSHM_LIVENESS_UNKNOWN)
    insp->producer_alive = IVSHM_LIVENESS_DEAD;
  for (i = 0; i < IVSHM_MAX_READERS; i++)
    if (insp->slot_alive[i] == IVSHM_LIVENESS_UNKNOWN)
      insp->slot_alive[i] = IVSHM_LIVENESS_DEAD;
}

void
ivshm_inspect_compare (IvshmInspection * now, const IvshmInspection * before,
    uint64_t elapsed_ns)
{
  unsigned i;

  if (elapsed_ns == 0 || before->status != now->status
      || (now->status != IVSHM_OK && now->status != IVSHM_ERR_CORRUPT))
    return;
  now->watched_ns = elapsed_ns;
  if (now->producer_alive == IVSHM_LIVENESS_UNKNOWN) {
    if (before->h.session_id != now->h.session_id
        || before->h.producer_heartbeat != now->h.producer_heartbeat)
      now->producer_alive = IVSHM_LIVENESS_ALIVE;
    else
      now->producer_alive = IVSHM_LIVENESS_DEAD;
  }
  for (i = 0; i < IVSHM_MAX_READERS; i++) {
    if (now->slot_alive[i] != IVSHM_LIVENESS_UNKNOWN)
      continue;
    now->slot_alive[i] = (before->slots[i].owner != now->slots[i].owner
        || before->slots[i].heartbeat != now->slots[i].heartbeat) ?
        IVSHM_LIVENESS_ALIVE : IVSHM_LIVENESS_DEAD;
  }
}

const char *
ivshm_inspect_producer_state_name (uint32_t state)
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

const char *
ivshm_inspect_slot_state_name (uint32_t state)
{
  switch (state) {
    case IVSHM_SLOT_FREE:
      return "free";
    case IVSHM_SLOT_CLAIMED:
      return "claimed";
    case IVSHM_SLOT_ACTIVE:
      return "active";
    case IVSHM_SLOT_EVICTED:
      return "evicted";
    case IVSHM_INSPECT_SLOT_WAITING:
      return "waiting";
    default:
      return "unknown";
  }
}

const char *
ivshm_inspect_liveness_name (IvshmLiveness liveness)
{
  switch (liveness) {
    case IVSHM_LIVENESS_ALIVE:
      return "alive";
    case IVSHM_LIVENESS_DEAD:
      return "dead";
    case IVSHM_LIVENESS_NONE:
      return "none";
    default:
      return "unknown";
  }
}

bool
ivshm_inspect_slot_lag (const IvshmInspection * insp, unsigned i,
    uint64_t * lag)
{
  const IvshmSlotCopy *s;

  if (i >= IVSHM_MAX_READERS)
    return false;
  s = &insp->slots[i];
  if (s->read_pos % IVSHM_RECORD_ALIGN != 0 || s->read_pos > insp->h.write_pos)
    return false;
  *lag = insp->h.write_pos - s->read_pos;
  return !(insp->layout_ok && s->session_id == insp->h.session_id
      && *lag > insp->h.ring_size);
}

void
ivshm_inspect_explain (const IvshmInspection * insp, char *buf, size_t size)
{
  const IvshmHeaderCopy *c = &insp->h;

  switch (insp->status) {
    case IVSHM_OK:
      snprintf (buf, size, "a gst-ivshmem region, protocol %" PRIu32 ".%"
          PRIu32, c->version_major, c->version_minor);
      break;
    case IVSHM_ERR_TOO_SMALL:
      snprintf (buf, size, "the mapping is smaller than the %u bytes of "
          "header, reader slots and sticky area", IVSHM_RING_OFFSET);
      break;
    case IVSHM_ERR_NO_PRODUCER:
      snprintf (buf, size, "no producer has initialised this region yet "
          "(its magic is 0): start an ivshmemsink on it");
      break;
    case IVSHM_ERR_BAD_MAGIC:
      snprintf (buf, size, "the region does not start with the gst-ivshmem "
          "magic 0x%016" PRIx64 " (found 0x%016" PRIx64 "); another program "
          "uses it, or it holds stale data", (uint64_t) IVSHM_MAGIC, c->magic);
      break;
    case IVSHM_ERR_VERSION:
      snprintf (buf, size, "the producer speaks protocol version %" PRIu32
          ".%" PRIu32 ", not supported: this build reads version %u; use "
          "the same gst-ivshmem major version on both sides",
          c->version_major, c->version_minor, IVSHM_INSPECT_V2);
      break;
    case IVSHM_ERR_CORRUPT:
      snprintf (buf, size, "%s", insp->n_problems ? insp->problems[0] :
          "the ring header is corrupt");
      break;
    default:
      snprintf (buf, size, "%s", ivshm_status_string (insp->status));
  }
}

bool
ivshm_inspect_sticky_find (const IvshmInspection * insp, uint16_t type,
    uint16_t subtype, IvshmStickyRecord * rec)
{
  IvshmStickyIter it;
  IvshmStickyRecord r;
  bool found = false;

  if (insp->sticky == NULL || insp->sticky_status != IVSHM_OK)
    return false;
  ivshm_sticky_iter_init (&it, insp->sticky);
  while (ivshm_sticky_iter_next (&it, &r)) {
    if (r.h.type == type && (type != IVSHM_RECORD_EVENT
            || r.h.subtype == subtype)) {
      *rec = r;
      found = true;
    }
  }
  return found;
}

bool
ivshm_inspect_sticky_eos (const IvshmInspection * insp)
{
  IvshmStickyRecord rec;

  return ivshm_inspect_sticky_find (insp, IVSHM_RECORD_EVENT,
      IVSHM_EVENT_EOS, &rec);
}

void
ivshm_inspect_magic_bytes (const void *base,
    uint8_t bytes[IVSHM_INSPECT_MAGIC_LEN])
{
  const IvshmHeader *h = base;
  uint64_t magic = atomic_load_explicit (&h->magic, ACQ);

  /* little-endian, as the layout is */
  memcpy (bytes, &magic, IVSHM_INSPECT_MAGIC_LEN);
}

#ifndef _WIN32
bool
ivshm_inspect_read_file (int fd, void *buf)
{
  uint8_t *b = buf;
  uint64_t seq;
  int tries;

  for (tries = 0; tries < 16; tries++) {
    if (pread (fd, b, IVSHM_INSPECT_SIZE, 0) != IVSHM_INSPECT_SIZE)
      return false;
    if (pread (fd, &seq, sizeof seq, IVSHM_STICKY_OFFSET) != sizeof seq)
      return false;
    if (memcmp (&seq, b + IVSHM_STICKY_OFFSET, sizeof seq) == 0 && !(seq & 1))
      break;
  }
  return true;
}

bool
ivshm_inspect_reread_file (int fd, void *buf)
{
  return pread (fd, buf, IVSHM_INSPECT_LIVE_SIZE, 0) == IVSHM_INSPECT_LIVE_SIZE;
}
#endif
