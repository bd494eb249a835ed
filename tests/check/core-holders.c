/* gst-ivshmem: readers of the previous session that still hold records
 * SPDX-License-Identifier: MIT
 *
 * A reader holds a record in place (zero-copy) when its producer dies and
 * a new producer takes over: the new session must not write over that
 * record until the reader lets go of its slot, or its lease expires
 * (PROTOCOL.md, "Holders of the previous session"). One process, two
 * writer objects: the first just stops (no close, its heartbeat stops).
 * Nothing asserts a duration.
 */
#include "core-lifecycle-util.h"

#define LEN 2000u

typedef struct
{
  void *base;
  IvshmWriter *a, *b;
  IvshmReader *r;               /* reader of a's session, holds a record */
  IvshmReader *r2;              /* reader of b's session, drains it */
  IvshmHold hold;
  unsigned slot;                /* r's */
  const uint8_t *held;          /* the held payload, in the ring */
  uint8_t copy[LEN];
  uint64_t n;                   /* b's next buffer */
  uint64_t next2;               /* r2's next buffer */
} Fixture;

/* a writes three buffers, r holds the one at index `held` and reads the
 * others; then b (with the given hot window, 0: the default) takes over
 * from a, and r2 attaches to b's session. */
static void
setup_full (Fixture * f, uint64_t b_lease_ns, bool leaky, unsigned held,
    uint64_t hot_window)
{
  IvshmWriterConfig cfg = { 0 };
  IvshmError err = { 0 };
  IvshmRecord rec;
  uint64_t next = held + 1;
  unsigned i;

  memset (f, 0, sizeof *f);
  f->base = region_shared ();
  f->a = writer_new_ok (f->base, 0, 0);
  f->r = reader_new_ok (f->base, false);
  f->slot = slot_of_reader (f->r);
  for (i = 0; i < 3; i++)
    assert_status (write_buffer (f->a, i, LEN), IVSHM_OK);
  for (i = 0; i < held; i++) {
    assert_status (ivshm_reader_next (f->r, &rec, &err), IVSHM_OK);
    assert_status (ivshm_reader_release (f->r), IVSHM_OK);
  }
  assert_status (ivshm_reader_next (f->r, &rec, &err), IVSHM_OK);
  fail_unless_equals_uint64 (rec.h.offset, held);
  fail_unless_equals_uint64 (rec.h.payload_len, LEN);
  assert_status (ivshm_reader_hold (f->r, &f->hold), IVSHM_OK);
  f->held = rec.payload;
  memcpy (f->copy, rec.payload, LEN);
  assert_status (drain (f->r, &next, &err), IVSHM_AGAIN);
  fail_unless_equals_uint64 (next, 3);

  /* a dies: it is never used again; b takes over after its wait */
  cfg.lease_timeout_ns = b_lease_ns;
  cfg.heartbeat_period_ns = 20 * MS;
  cfg.takeover_wait_ns = 100 * MS;
  cfg.leaky = leaky;
  cfg.hot_window = hot_window;
  assert_status (ivshm_writer_new (f->base, REGION, &cfg, &f->b, &err),
      IVSHM_OK);
  f->r2 = reader_new_ok (f->base, false);
}

static void
setup (Fixture * f, uint64_t b_lease_ns, bool leaky)
{
  setup_full (f, b_lease_ns, leaky, 0, 0);
}

static void
teardown (Fixture * f)
{
  ivshm_reader_free (f->r2);
  ivshm_reader_free (f->r);
  ivshm_writer_free (f->b);
  ivshm_writer_free (f->a);
  munmap (f->base, REGION);
}

/* One buffer from b, r2 drained first (a leaky b would drop it rather
 * than wait), and again when the ring is full: AGAIN means what holds b
 * back is not r2. */
static IvshmStatus
write_one (Fixture * f)
{
  IvshmError err = { 0 };
  IvshmStatus st;

  ivshm_reader_heartbeat (f->r2);
  assert_status (drain (f->r2, &f->next2, &err), IVSHM_AGAIN);
  st = write_buffer (f->b, f->n, LEN);
  if (st == IVSHM_AGAIN) {
    assert_status (drain (f->r2, &f->next2, &err), IVSHM_AGAIN);
    st = write_buffer (f->b, f->n, LEN);
  }
  if (st == IVSHM_OK)
    f->n++;
  return st;
}

static void
assert_held_intact (Fixture * f, const char *when)
{
  fail_unless (memcmp (f->held, f->copy, LEN) == 0,
      "the new session wrote over a record a live reader of the previous "
      "session holds (%s, after %" G_GUINT64_FORMAT " buffers)", when, f->n);
}

/* Writes two rings' worth: every buffer goes through. */
static void
assert_proceeds (Fixture * f)
{
  uint64_t i, rounds = 2 * REGION / LEN;
  IvshmError err = { 0 };

  for (i = 0; i < rounds; i++)
    assert_status (write_one (f), IVSHM_OK);
  assert_status (drain (f->r2, &f->next2, &err), IVSHM_AGAIN);
  fail_unless_equals_uint64 (f->next2, f->n);
}

GST_START_TEST (test_live_holder_not_overwritten)
{
  Fixture f;
  uint64_t i, rounds = 2 * REGION / LEN;
  IvshmStatus st = IVSHM_OK;

  setup (&f, 60000 * MS, false);
  /* b writes until only the held record is in its way */
  for (i = 0; i < rounds && st == IVSHM_OK; i++) {
    st = write_one (&f);
    assert_held_intact (&f, "while writing");
  }
  assert_status (st, IVSHM_AGAIN);
  fail_unless (f.n > 10);
  /* the reader is alive (its lease is long): b keeps waiting */
  ivshm_writer_tick (f.b);
  assert_status (write_one (&f), IVSHM_AGAIN);
  assert_held_intact (&f, "waiting");

  /* the reader moves the record out of the ring and lets go of its slot */
  ivshm_reader_unhold (f.r, &f.hold);
  ivshm_reader_free (f.r);
  f.r = NULL;
  assert_proceeds (&f);
  teardown (&f);
}

GST_END_TEST;

GST_START_TEST (test_dead_holder_delays_one_lease)
{
  Fixture f;
  uint64_t deadline, start, i, rounds = 2 * REGION / LEN, lease;
  IvshmWriterStats ws;
  IvshmStatus st = IVSHM_OK;
  unsigned waits = 0;

  lease = scaled (300 * MS);
  setup (&f, lease, false);
  for (i = 0; i < rounds && st == IVSHM_OK; i++)
    st = write_one (&f);
  assert_status (st, IVSHM_AGAIN);
  assert_held_intact (&f, "before the lease");

  /* r is dead (its heartbeat never moves): after its lease b reaps its
   * slot and goes on */
  start = ivshm_now_ns ();
  deadline = start + scaled (60000 * MS);
  while ((st = write_one (&f)) == IVSHM_AGAIN) {
    fail_unless (ivshm_now_ns () < deadline, "the dead holder was never "
        "reaped");
    waits++;
    sleep_ms (10);
  }
  assert_status (st, IVSHM_OK);
  GST_INFO ("a dead holder delayed the producer %" G_GUINT64_FORMAT
      " ms (lease %" G_GUINT64_FORMAT " ms), %u tries",
      (guint64) ((ivshm_now_ns () - start) / MS), (guint64) (lease / MS),
      waits);
  fail_unless (waits > 0);
  ivshm_writer_get_stats (f.b, &ws);
  fail_unless (ws.readers_evicted >= 1);
  fail_unless_equals_uint64 (atomic_load (&slot_at (f.base, f.slot)->owner), 0);
  assert_proceeds (&f);
  teardown (&f);
}

GST_END_TEST;

/* The cache-hot ring's condition 2 (PROTOCOL.md, "Early wrap"): while a
 * holder of the previous session is in its bound, the producer does not
 * wrap early, even where the ring's start before the held record (the
 * third of a's, after two records' worth of free space) would have room
 * for the next record. Once the holder lets go, it does again. Mutation:
 * with the n_holders test taken out of writer_early_wrap this fails (an
 * early wrap while r held its record); the held record stayed intact even
 * then, as the free-space accounting alone keeps it. */
GST_START_TEST (test_no_early_wrap_past_holder)
{
  Fixture f;
  uint64_t i, rounds = 2 * REGION / LEN;
  IvshmStatus st = IVSHM_OK;

  setup_full (&f, 60000 * MS, false, 2, REGION / 4);
  for (i = 0; i < rounds && st == IVSHM_OK; i++) {
    st = write_one (&f);
    assert_held_intact (&f, "while writing");
  }
  assert_status (st, IVSHM_AGAIN);
  fail_unless (early_wraps (f.b) == 0, "b wrapped early while a holder of "
      "the previous session was in its bound");
  fail_unless (f.n > REGION / 4 / LEN, "b must pass its hot window");

  ivshm_reader_unhold (f.r, &f.hold);
  ivshm_reader_free (f.r);
  f.r = NULL;
  assert_proceeds (&f);
  fail_unless (early_wraps (f.b) > 0, "no early wrap once the holder was "
      "gone");
  teardown (&f);
}

GST_END_TEST;

/* A leaky producer keeps a live holder's records one lease, then goes on
 * (it never waits for readers longer). */
GST_START_TEST (test_leaky_holder_one_lease)
{
  Fixture f;
  uint64_t deadline, i, rounds = 2 * REGION / LEN;
  IvshmStatus st = IVSHM_OK;

  setup (&f, scaled (300 * MS), true);
  for (i = 0; i < rounds && st == IVSHM_OK; i++) {
    st = write_one (&f);
    assert_held_intact (&f, "while writing");
  }
  assert_status (st, IVSHM_AGAIN);
  /* r stays alive (its heartbeat moves) but never lets go */
  deadline = ivshm_now_ns () + scaled (60000 * MS);
  while ((st = write_one (&f)) == IVSHM_AGAIN) {
    fail_unless (ivshm_now_ns () < deadline, "the leaky producer waited "
        "for a holder for more than a lease");
    ivshm_reader_heartbeat (f.r);
    sleep_ms (10);
  }
  assert_status (st, IVSHM_OK);
  /* r2, the reader of b's session, was not dropped for it */
  assert_proceeds (&f);
  teardown (&f);
}

GST_END_TEST;

static Suite *
core_holders_suite (void)
{
  Suite *s = suite_create ("core_holders");
  TCase *tc = tcase_create ("general");

  tcase_set_timeout (tc, 120);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_live_holder_not_overwritten);
  tcase_add_test (tc, test_dead_holder_delays_one_lease);
  tcase_add_test (tc, test_leaky_holder_one_lease);
  tcase_add_test (tc, test_no_early_wrap_past_holder);
  return s;
}

GST_CHECK_MAIN (core_holders);
