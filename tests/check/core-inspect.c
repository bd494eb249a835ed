/* gst-ivshmem: tests of the read-only inspection API (ivshmem-inspect.h)
 * SPDX-License-Identifier: MIT
 *
 * Regions are written by hand here, in the version 2 layout of
 * PROTOCOL.md 2.0 (the producer's owner at 0x070, WAITING slots, a bitmask of
 * sleeping readers), and mapped read-only while they are inspected: a
 * store into shared memory would crash the test.
 */
#include <gst/check/gstcheck.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "ivshmem-inspect.h"
#include "ivshmem-layout.h"

#define assert_status(expr, expected) G_STMT_START {                     \
  IvshmStatus _got = (expr), _exp = (expected);                          \
  fail_unless (_got == _exp, "%s: got %s, expected %s", #expr,           \
      ivshm_status_name (_got), ivshm_status_name (_exp));               \
} G_STMT_END

#define REGION_SIZE ((size_t) 256 * 1024)
#define MS (1000ull * 1000ull)
#define BASE_POS (UINT64_C (1) << 40)

static uint8_t *
region_new (void)
{
  void *base = mmap (NULL, REGION_SIZE, PROT_READ | PROT_WRITE,
      MAP_SHARED | MAP_ANONYMOUS, -1, 0);

  fail_unless (base != MAP_FAILED);
  return base;
}

static void
region_free (uint8_t * base)
{
  munmap (base, REGION_SIZE);
}

static IvshmHeader *
hdr (uint8_t * base)
{
  return (IvshmHeader *) base;
}

static IvshmReaderSlot *
slot (uint8_t * base, unsigned i)
{
  return (IvshmReaderSlot *) (base + IVSHM_SLOT_OFFSET + i * IVSHM_SLOT_SIZE);
}

/* A version 2 session as its owning producer formats it. */
static void
format_v2 (uint8_t * base)
{
  IvshmHeader *h = hdr (base);

  memset (base, 0, IVSHM_RING_OFFSET);
  atomic_store (&h->version_major, IVSHM_INSPECT_V2);
  atomic_store (&h->version_minor, 0);
  atomic_store (&h->region_size, REGION_SIZE);
  atomic_store (&h->ring_offset, IVSHM_RING_OFFSET);
  atomic_store (&h->ring_size, REGION_SIZE - IVSHM_RING_OFFSET);
  atomic_store (&h->slot_offset, IVSHM_SLOT_OFFSET);
  atomic_store (&h->slot_count, IVSHM_MAX_READERS);
  atomic_store (&h->slot_size, IVSHM_SLOT_SIZE);
  atomic_store (&h->sticky_offset, IVSHM_STICKY_OFFSET);
  atomic_store (&h->sticky_size, IVSHM_STICKY_SIZE);
  atomic_store (&h->record_align, IVSHM_RECORD_ALIGN);
  atomic_store (&h->session_id, 0x5e55);
  atomic_store (&h->producer_state, IVSHM_PRODUCER_ACTIVE);
  atomic_store (&h->heartbeat_period_us, 100000);
  atomic_store ((_Atomic uint64_t *) (base +
          IVSHM_INSPECT_PRODUCER_OWNER_OFFSET), 0x0123456789abcdefull);
  atomic_store (&h->tail, BASE_POS);
  atomic_store (&h->write_pos, BASE_POS + 1024);
  atomic_store (&h->magic, IVSHM_MAGIC);
}

static void
set_slot (uint8_t * base, unsigned i, uint32_t state, uint64_t session,
    uint64_t read_pos)
{
  IvshmReaderSlot *s = slot (base, i);

  atomic_store (&s->owner, 0x70c0 + i);
  atomic_store (&s->session_id, session);
  atomic_store (&s->read_pos, read_pos);
  atomic_store (&s->pid, 1000 + i);
  atomic_store (&s->state, state);
}

/* Inspects with the region read-only. */
static IvshmStatus
inspect_ro (uint8_t * base, IvshmInspection * insp)
{
  IvshmStatus st;

  fail_unless (mprotect (base, REGION_SIZE, PROT_READ) == 0);
  st = ivshm_inspect (base, REGION_SIZE, insp);
  fail_unless (mprotect (base, REGION_SIZE, PROT_READ | PROT_WRITE) == 0);
  return st;
}

static IvshmInspection *
insp_new (void)
{
  IvshmInspection *insp = calloc (1, sizeof *insp);

  fail_unless (insp != NULL);
  return insp;
}

static void
insp_free (IvshmInspection * insp)
{
  ivshm_inspection_clear (insp);
  free (insp);
}

GST_START_TEST (test_v2_region)
{
  uint8_t *base = region_new ();
  IvshmInspection *insp = insp_new ();
  uint64_t lag;
  char text[256];

  format_v2 (base);
  set_slot (base, 0, IVSHM_SLOT_ACTIVE, 0x5e55, BASE_POS + 512);
  set_slot (base, 4, IVSHM_INSPECT_SLOT_WAITING, 0, 0);
  set_slot (base, 7, IVSHM_SLOT_EVICTED, 0x01d, 64);
  set_slot (base, 9, IVSHM_SLOT_CLAIMED, 0x5e55, 0);
  atomic_store (&hdr (base)->readers_sleeping, (1u << 0) | (1u << 4));

  assert_status (inspect_ro (base, insp), IVSHM_OK);
  fail_unless (insp->layout_ok);
  fail_unless_equals_int (insp->n_problems, 0);
  fail_unless_equals_uint64 (insp->h.producer_owner, 0x0123456789abcdefull);
  fail_unless_equals_int (insp->h.readers_sleeping, 0x11);
  fail_unless_equals_int (insp->n_active, 1);
  fail_unless_equals_int (insp->n_waiting, 1);
  fail_unless_equals_int (insp->n_evicted, 1);
  fail_unless_equals_int (insp->n_claimed, 1);
  fail_unless_equals_string (ivshm_inspect_slot_state_name
      (insp->slots[4].state), "waiting");
  fail_unless (ivshm_inspect_slot_lag (insp, 0, &lag));
  fail_unless_equals_uint64 (lag, 512);
  fail_unless_equals_int (insp->producer_alive, IVSHM_LIVENESS_UNKNOWN);
  fail_unless_equals_int (insp->slot_alive[0], IVSHM_LIVENESS_UNKNOWN);
  fail_unless_equals_int (insp->slot_alive[1], IVSHM_LIVENESS_NONE);
  assert_status (insp->sticky_status, IVSHM_OK);
  ivshm_inspect_explain (insp, text, sizeof text);
  fail_unless (strstr (text, "protocol 2.0") != NULL, "%s", text);

  /* a waiting slot names no session in version 2 */
  ivshm_inspection_clear (insp);
  atomic_store (&slot (base, 4)->session_id, 0x5e55);
  assert_status (inspect_ro (base, insp), IVSHM_OK);
  fail_unless_equals_int (insp->n_problems, 1);
  fail_unless (strstr (insp->problems[0], "waiting") != NULL);

  /* an active v2 producer owns its region */
  ivshm_inspection_clear (insp);
  atomic_store (&slot (base, 4)->session_id, 0);
  atomic_store ((_Atomic uint64_t *) (base +
          IVSHM_INSPECT_PRODUCER_OWNER_OFFSET), 0);
  assert_status (inspect_ro (base, insp), IVSHM_OK);
  fail_unless (strstr (insp->problems[0], "owns nothing") != NULL);

  insp_free (insp);
  region_free (base);
}

GST_END_TEST;

/* What is not a readable region is named, and nothing further is read. */
GST_START_TEST (test_not_readable)
{
  uint8_t *base = region_new ();
  IvshmInspection *insp = insp_new ();
  char text[256];

  /* zero: no producer yet; nothing to watch */
  assert_status (inspect_ro (base, insp), IVSHM_ERR_NO_PRODUCER);
  fail_unless (insp->sticky == NULL);
  fail_unless_equals_int (insp->producer_alive, IVSHM_LIVENESS_NONE);
  fail_unless_equals_int (insp->slot_alive[0], IVSHM_LIVENESS_NONE);
  fail_unless (ivshm_inspect_watch_step (base, insp));
  ivshm_inspection_clear (insp);

  atomic_store (&hdr (base)->magic, 0x4141414141414141ull);
  assert_status (inspect_ro (base, insp), IVSHM_ERR_BAD_MAGIC);
  ivshm_inspection_clear (insp);

  format_v2 (base);
  atomic_store (&hdr (base)->version_major, 3);
  assert_status (inspect_ro (base, insp), IVSHM_ERR_VERSION);
  ivshm_inspect_explain (insp, text, sizeof text);
  fail_unless (strstr (text, "version 3.0, not supported") != NULL, "%s", text);
  ivshm_inspection_clear (insp);

  /* version 1: read while this build's layout is version 1, refused once
   * it is version 2 */
  atomic_store (&hdr (base)->version_major, 1);
  if (IVSHM_VERSION_MAJOR == 1) {
    assert_status (inspect_ro (base, insp), IVSHM_OK);
    /* version 1 has no WAITING state */
    ivshm_inspection_clear (insp);
    set_slot (base, 2, IVSHM_INSPECT_SLOT_WAITING, 0, 0);
    assert_status (inspect_ro (base, insp), IVSHM_OK);
    fail_unless (strstr (insp->problems[0], "unknown state") != NULL);
  } else {
    assert_status (inspect_ro (base, insp), IVSHM_ERR_VERSION);
    ivshm_inspect_explain (insp, text, sizeof text);
    fail_unless (strstr (text, "version 1.0, not supported") != NULL, "%s",
        text);
  }
  ivshm_inspection_clear (insp);

  /* an impossible layout */
  format_v2 (base);
  atomic_store (&hdr (base)->ring_size, 12345);
  assert_status (inspect_ro (base, insp), IVSHM_ERR_CORRUPT);
  fail_unless (!insp->layout_ok);
  ivshm_inspect_explain (insp, text, sizeof text);
  fail_unless (strstr (text, "impossible layout") != NULL, "%s", text);
  ivshm_inspection_clear (insp);

  /* a region the producer sees bigger than we do */
  format_v2 (base);
  assert_status (ivshm_inspect (base, REGION_SIZE / 2, insp),
      IVSHM_ERR_CORRUPT);
  ivshm_inspection_clear (insp);

  /* a mapping too small to hold the header area */
  assert_status (ivshm_inspect (base, IVSHM_RING_OFFSET - 1, insp),
      IVSHM_ERR_TOO_SMALL);

  insp_free (insp);
  region_free (base);
}

GST_END_TEST;

/* A sticky area with EOS: found; a bad one: a problem. */
GST_START_TEST (test_sticky)
{
  uint8_t *base = region_new ();
  IvshmInspection *insp = insp_new ();
  IvshmStickyHeader *sh = (IvshmStickyHeader *) (base + IVSHM_STICKY_OFFSET);
  IvshmRecordHeader *r = (IvshmRecordHeader *) ((uint8_t *) sh + 64);
  IvshmStickyRecord rec;

  format_v2 (base);
  r[0].type = IVSHM_RECORD_CAPS;
  r[0].payload_len = 6;
  memcpy (&r[1], "audio", 6);
  r[2].type = IVSHM_RECORD_EVENT;
  r[2].subtype = IVSHM_EVENT_EOS;
  r[2].payload_len = 1;
  atomic_store (&sh->len, 256);
  atomic_store (&sh->count, 2);
  atomic_store (&sh->seq, 2);

  assert_status (inspect_ro (base, insp), IVSHM_OK);
  fail_unless_equals_int (insp->n_problems, 0);
  fail_unless (ivshm_inspect_sticky_find (insp, IVSHM_RECORD_CAPS, 0, &rec));
  fail_unless_equals_string ((const char *) rec.payload, "audio");
  fail_unless (ivshm_inspect_sticky_eos (insp));
  fail_if (ivshm_inspect_sticky_find (insp, IVSHM_RECORD_EVENT,
          IVSHM_EVENT_SEGMENT, &rec));
  ivshm_inspection_clear (insp);

  /* a busy lock: no snapshot, no problem, no hang */
  atomic_store (&sh->seq, 3);
  assert_status (inspect_ro (base, insp), IVSHM_OK);
  assert_status (insp->sticky_status, IVSHM_AGAIN);
  fail_if (ivshm_inspect_sticky_eos (insp));
  ivshm_inspection_clear (insp);

  /* a record claiming more than is there */
  atomic_store (&sh->seq, 4);
  r[2].payload_len = 65;
  assert_status (inspect_ro (base, insp), IVSHM_OK);
  fail_unless_equals_int (insp->n_problems, 1);
  fail_unless (strstr (insp->problems[0], "claims 65 bytes") != NULL, "%s",
      insp->problems[0]);
  /* what came before the bad record is still there */
  fail_unless (ivshm_inspect_sticky_find (insp, IVSHM_RECORD_CAPS, 0, &rec));
  fail_if (ivshm_inspect_sticky_eos (insp));

  insp_free (insp);
  region_free (base);
}

GST_END_TEST;

typedef struct
{
  uint8_t *base;
  atomic_bool stop;
} Beater;

/* The producer and the reader in slot 1 beat; the reader in slot 2 is
 * dead. */
static void *
beater_thread (void *data)
{
  Beater *b = data;

  while (!atomic_load (&b->stop)) {
    atomic_fetch_add (&hdr (b->base)->producer_heartbeat, 1);
    atomic_fetch_add (&slot (b->base, 1)->heartbeat, 1);
    g_usleep (2000);
  }
  return NULL;
}

GST_START_TEST (test_liveness)
{
  Beater b = { 0 };
  IvshmInspection *insp = insp_new (), *before = insp_new ();
  pthread_t thread;

  b.base = region_new ();
  format_v2 (b.base);
  set_slot (b.base, 1, IVSHM_SLOT_ACTIVE, 0x5e55, BASE_POS);
  set_slot (b.base, 2, IVSHM_SLOT_ACTIVE, 0x5e55, BASE_POS);

  /* nothing moves: dead after the window; a window of 0 is a fast probe */
  assert_status (ivshm_inspect (b.base, REGION_SIZE, insp), IVSHM_OK);
  ivshm_inspect_watch (b.base, insp, 0);
  fail_unless_equals_int (insp->producer_alive, IVSHM_LIVENESS_UNKNOWN);
  fail_unless_equals_uint64 (insp->watched_ns, 0);
  ivshm_inspect_watch (b.base, insp, 20 * MS);
  fail_unless_equals_int (insp->producer_alive, IVSHM_LIVENESS_DEAD);
  fail_unless_equals_int (insp->slot_alive[1], IVSHM_LIVENESS_DEAD);
  fail_unless_equals_int (insp->slot_alive[0], IVSHM_LIVENESS_NONE);
  fail_unless (insp->watched_ns > 0);
  ivshm_inspection_clear (insp);

  /* window bounds from the advertised period, clamped */
  assert_status (ivshm_inspect (b.base, REGION_SIZE, before), IVSHM_OK);
  fail_unless_equals_uint64 (ivshm_inspect_default_window (before), 250 * MS);
  before->h.heartbeat_period_us = UINT64_MAX;
  fail_unless_equals_uint64 (ivshm_inspect_default_window (before), 1000 * MS);
  before->h.heartbeat_period_us = 200000;
  fail_unless_equals_uint64 (ivshm_inspect_default_window (before), 500 * MS);

  fail_unless (pthread_create (&thread, NULL, beater_thread, &b) == 0);
  /* the producer and slot 1 move within the (generous) window; slot 2
   * does not, so the whole window passes */
  assert_status (ivshm_inspect (b.base, REGION_SIZE, insp), IVSHM_OK);
  ivshm_inspect_watch (b.base, insp, 3000 * MS);
  fail_unless_equals_int (insp->producer_alive, IVSHM_LIVENESS_ALIVE);
  fail_unless_equals_int (insp->slot_alive[1], IVSHM_LIVENESS_ALIVE);
  fail_unless_equals_int (insp->slot_alive[2], IVSHM_LIVENESS_DEAD);
  ivshm_inspection_clear (insp);

  /* compare: two inspections some time apart, as a monitor polls */
  while (atomic_load (&hdr (b.base)->producer_heartbeat) ==
      before->h.producer_heartbeat)
    g_usleep (1000);
  assert_status (ivshm_inspect (b.base, REGION_SIZE, insp), IVSHM_OK);
  ivshm_inspect_compare (insp, before, 100 * MS);
  fail_unless_equals_int (insp->producer_alive, IVSHM_LIVENESS_ALIVE);
  fail_unless_equals_int (insp->slot_alive[2], IVSHM_LIVENESS_DEAD);
  ivshm_inspection_clear (insp);

  atomic_store (&b.stop, true);
  pthread_join (thread, NULL);
  /* stopped: the same heartbeat twice is dead */
  ivshm_inspection_clear (before);
  assert_status (ivshm_inspect (b.base, REGION_SIZE, before), IVSHM_OK);
  assert_status (ivshm_inspect (b.base, REGION_SIZE, insp), IVSHM_OK);
  ivshm_inspect_compare (insp, before, 100 * MS);
  fail_unless_equals_int (insp->producer_alive, IVSHM_LIVENESS_DEAD);

  /* a closed producer is not watched */
  ivshm_inspection_clear (insp);
  atomic_store (&hdr (b.base)->producer_state, IVSHM_PRODUCER_CLOSED);
  assert_status (ivshm_inspect (b.base, REGION_SIZE, insp), IVSHM_OK);
  ivshm_inspect_watch (b.base, insp, 10 * MS);
  fail_unless_equals_int (insp->producer_alive, IVSHM_LIVENESS_NONE);

  insp_free (insp);
  insp_free (before);
  region_free (b.base);
}

GST_END_TEST;

static Suite *
core_inspect_suite (void)
{
  Suite *s = suite_create ("core-inspect");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_v2_region);
  tcase_add_test (tc, test_not_readable);
  tcase_add_test (tc, test_sticky);
  tcase_add_test (tc, test_liveness);
  return s;
}

GST_CHECK_MAIN (core_inspect);
