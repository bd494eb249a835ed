/* gst-ivshmem: the life cycle of readers and their slots
 * SPDX-License-Identifier: MIT
 *
 * Issue 10 at the level of the core, the readers' side: readers that wait
 * before the producer starts, dead readers that must give their slots
 * back, readers that must never store into a slot they lost,
 * readers_sleeping as a bitmask, bounded next(), getters without side
 * effects (the producers' side: core-takeover.c). Where a process boundary
 * matters the peers are real forked processes, killed with SIGKILL.
 * Nothing waits without a deadline and nothing asserts a duration.
 */
#include "core-lifecycle-util.h"

/* ---- 1. readers waiting before the producer get the whole stream ------ */

GST_START_TEST (test_waiting_readers_get_everything)
{
  void *base = region_shared ();
  IvshmReader *a = reader_new_ok (base, true), *b = reader_new_ok (base, true);
  IvshmWriter *w;
  IvshmError err = { 0 };
  uint64_t seq = 0, na = 0, nb = 0;
  const uint64_t n = 500;

  fail_unless (ivshm_reader_waiting (a) && ivshm_reader_waiting (b));
  fail_unless_equals_int (atomic_load (&slot_at (base,
              slot_of_reader (a))->state), IVSHM_SLOT_WAITING);
  w = writer_new_ok (base, 0, 0);
  /* both were adopted by the format, at the session's first position */
  fail_unless_equals_int (ivshm_writer_count_readers (w), 2);
  /* 500 buffers of 3000 bytes through a 192 KiB ring: the producer must
   * wait for both readers many times over */
  while (na < n || nb < n) {
    while (seq < n && write_buffer (w, seq, 3000) == IVSHM_OK)
      seq++;
    assert_status (drain (a, &na, &err), IVSHM_AGAIN);
    assert_status (drain (b, &nb, &err), IVSHM_AGAIN);
  }
  fail_unless_equals_uint64 (na, n);
  fail_unless_equals_uint64 (nb, n);
  ivshm_reader_free (a);
  ivshm_reader_free (b);
  ivshm_writer_free (w);
  munmap (base, REGION);
}

GST_END_TEST;

/* A reader that waits on a region whose producer closed is adopted by the
 * next producer, and reads its stream from the first record. */
GST_START_TEST (test_waiting_reader_follows_restart)
{
  void *base = region_shared ();
  IvshmWriter *w = writer_new_ok (base, 0, 0);
  IvshmReader *r;
  IvshmError err = { 0 };
  uint64_t seq, next = 0;

  for (seq = 0; seq < 5; seq++)
    assert_status (write_buffer (w, seq, 100), IVSHM_OK);
  ivshm_writer_free (w);
  /* a closed session, and its owner let go of the region */
  fail_unless_equals_uint64 (atomic_load (&hdr_of (base)->producer_owner), 0);
  r = reader_new_ok (base, true);
  fail_unless (ivshm_reader_waiting (r));
  assert_status (drain (r, &next, &err), IVSHM_AGAIN);
  w = writer_new_ok (base, 0, 0);
  for (seq = 0; seq < 5; seq++)
    assert_status (write_buffer (w, seq, 100), IVSHM_OK);
  assert_status (drain (r, &next, &err), IVSHM_AGAIN);
  fail_if (ivshm_reader_waiting (r));
  fail_unless_equals_uint64 (next, 5);
  ivshm_reader_free (r);
  ivshm_writer_free (w);
  munmap (base, REGION);
}

GST_END_TEST;

/* ---- 2. dead readers give their slots back ----------------------------- */

static unsigned
owned_slots (void *base)
{
  unsigned i, n = 0;

  for (i = 0; i < IVSHM_MAX_READERS; i++)
    n += atomic_load (&slot_at (base, i)->owner) != 0;
  return n;
}

GST_START_TEST (test_dead_readers_reaped_by_tick)
{
  void *base = region_shared ();
  IvshmWriter *w = writer_new_ok (base, 300 * MS, 0);
  pid_t pids[IVSHM_MAX_READERS];
  IvshmReader *r = NULL;
  IvshmReaderConfig cfg = { 60000 * MS };
  IvshmError err = { 0 };
  unsigned i;

  spawn_readers (base, pids, IVSHM_MAX_READERS, false);
  kill_all (pids, IVSHM_MAX_READERS);
  for (i = 0; i < IVSHM_MAX_READERS; i++)
    fail_unless (atomic_load (&slot_at (base, i)->owner) != 0);
  /* no ring pressure at all: only the producer's periodic tick */
  for (i = 0; i < 200 && owned_slots (base) > 0; i++) {
    ivshm_writer_tick (w);
    sleep_ms (20);
  }
  for (i = 0; i < IVSHM_MAX_READERS; i++) {
    fail_unless_equals_uint64 (atomic_load (&slot_at (base, i)->owner), 0);
    fail_unless_equals_int (atomic_load (&slot_at (base, i)->state),
        IVSHM_SLOT_FREE);
  }
  /* a long lease for the newcomer: it must not need one */
  cfg.lease_timeout_ns = 60000 * MS;
  assert_status (ivshm_reader_new (base, REGION, &cfg, &r, &err), IVSHM_OK);
  ivshm_reader_free (r);
  ivshm_writer_free (w);
  munmap (base, REGION);
}

GST_END_TEST;

GST_START_TEST (test_reader_reaps_when_full)
{
  void *base = region_shared ();
  IvshmWriter *w = writer_new_ok (base, 0, 0);
  pid_t pids[IVSHM_MAX_READERS];
  IvshmReader *r = NULL;
  IvshmReaderConfig cfg = { 60000 * MS };
  IvshmError err = { 0 };

  spawn_readers (base, pids, IVSHM_MAX_READERS, false);
  kill_all (pids, IVSHM_MAX_READERS);
  /* the producer does not tick: the newcomer watches one lease itself */
  cfg.lease_timeout_ns = 300 * MS;
  assert_status (ivshm_reader_new (base, REGION, &cfg, &r, &err), IVSHM_OK);
  ivshm_reader_free (r);
  ivshm_writer_free (w);
  munmap (base, REGION);
}

GST_END_TEST;

/* ---- 5. a reader never stores into a slot it no longer owns ----------- */

GST_START_TEST (test_stale_reader_never_stores)
{
  void *base = region_shared ();
  IvshmWriter *w1 = writer_new_ok (base, 0, 0), *w2;
  IvshmReader *a = reader_new_ok (base, false), *b;
  IvshmReaderSlot *sa, *sb;
  IvshmRecord rec;
  IvshmHold hold;
  uint64_t a_owner, a_pos, a_hb, b_pos, b_hb;
  unsigned i;

  for (i = 0; i < 3; i++)
    assert_status (write_buffer (w1, i, 1000), IVSHM_OK);
  assert_status (ivshm_reader_next (a, &rec, NULL), IVSHM_OK);
  assert_status (ivshm_reader_hold (a, &hold), IVSHM_OK);
  sa = slot_at (base, slot_of_reader (a));
  a_owner = atomic_load (&sa->owner);

  /* w1 dies; w2 takes over: a's slot is evicted, not wiped */
  w2 = writer_new_ok (base, 100 * MS, 50 * MS);
  b = reader_new_ok (base, false);
  sb = slot_at (base, slot_of_reader (b));
  a_pos = atomic_load (&sa->read_pos);
  a_hb = atomic_load (&sa->heartbeat);
  b_pos = atomic_load (&sb->read_pos);
  b_hb = atomic_load (&sb->heartbeat);
  /* a, not knowing yet, gives its held record back and heartbeats */
  ivshm_reader_unhold (a, &hold);
  ivshm_reader_heartbeat (a);
  fail_unless_equals_uint64 (atomic_load (&sa->read_pos), a_pos);
  fail_unless_equals_uint64 (atomic_load (&sa->heartbeat), a_hb);
  fail_unless_equals_uint64 (atomic_load (&sb->read_pos), b_pos);
  fail_unless_equals_uint64 (atomic_load (&sb->heartbeat), b_hb);
  fail_unless (sb != sa, "the new reader got the old reader's slot");
  fail_unless_equals_int (atomic_load (&sa->state), IVSHM_SLOT_EVICTED);
  fail_unless_equals_uint64 (atomic_load (&sa->owner), a_owner);

  /* after a lease the tick reaps a's slot; a newcomer may get it, and a
   * late store of a still must not reach it */
  for (i = 0; i < 100 && atomic_load (&sa->owner) != 0; i++) {
    ivshm_reader_heartbeat (b);
    ivshm_writer_tick (w2);
    sleep_ms (20);
  }
  fail_unless_equals_uint64 (atomic_load (&sa->owner), 0);
  fail_unless_equals_uint64 (atomic_load (&sa->read_pos), IVSHM_POS_POISON);
  assert_status (ivshm_reader_next (a, &rec, NULL), IVSHM_ERR_SESSION_CHANGED);
  ivshm_reader_free (a);
  ivshm_reader_free (b);
  ivshm_writer_free (w2);
  ivshm_writer_free (w1);
  munmap (base, REGION);
}

GST_END_TEST;

/* ---- 6. readers_sleeping is a bitmask ---------------------------------- */

static atomic_int stop_sleeping;

static void *
sleeper (void *data)
{
  IvshmReader *r = data;
  IvshmWaiter waiter;

  ivshm_waiter_init (&waiter);
  while (!atomic_load (&stop_sleeping))
    ivshm_reader_wait (r, &waiter, 200 * MS);
  return NULL;
}

GST_START_TEST (test_sleeping_mask_survives_restart)
{
  void *base = region_shared ();
  IvshmWriter *w = writer_new_ok (base, 0, 0);
  IvshmReader *r = reader_new_ok (base, false);
  pthread_t t;
  unsigned i;

  atomic_store (&stop_sleeping, 0);
  fail_unless (pthread_create (&t, NULL, sleeper, r) == 0);
  for (i = 0; i < 10000 &&
      atomic_load (&hdr_of (base)->readers_sleeping) == 0; i++)
    sleep_ms (1);
  fail_unless_equals_int (atomic_load (&hdr_of (base)->readers_sleeping),
      1u << slot_of_reader (r));
  /* a restart under the sleeping reader */
  ivshm_writer_free (w);
  w = writer_new_ok (base, 0, 0);
  /* its slot is evicted now: it sleeps no more with its bit set */
  atomic_store (&stop_sleeping, 1);
  pthread_join (t, NULL);
  fail_unless_equals_int (atomic_load (&hdr_of (base)->readers_sleeping), 0);
  ivshm_reader_free (r);
  ivshm_writer_free (w);
  munmap (base, REGION);
}

GST_END_TEST;

GST_START_TEST (test_killed_sleeper_bit_cleared)
{
  void *base = region_shared ();
  IvshmWriter *w = writer_new_ok (base, 200 * MS, 0);
  pid_t pid;
  unsigned i;

  spawn_readers (base, &pid, 1, true);
  for (i = 0; i < 10000 &&
      atomic_load (&hdr_of (base)->readers_sleeping) == 0; i++)
    sleep_ms (1);
  fail_unless (atomic_load (&hdr_of (base)->readers_sleeping) != 0);
  kill_all (&pid, 1);
  for (i = 0; i < 100 && atomic_load (&hdr_of (base)->readers_sleeping); i++) {
    ivshm_writer_tick (w);
    sleep_ms (20);
  }
  fail_unless_equals_int (atomic_load (&hdr_of (base)->readers_sleeping), 0);
  ivshm_writer_free (w);
  munmap (base, REGION);
}

GST_END_TEST;

/* ---- 7. bounded next() ------------------------------------------------- */

GST_START_TEST (test_next_skips_bounded)
{
  void *base = region_shared ();
  IvshmWriter *w = writer_new_ok (base, 0, 0);
  IvshmReader *r = reader_new_ok (base, false);
  IvshmRecord rec;
  IvshmSpan span;
  uint64_t start = ivshm_reader_position (r);
  unsigned i, calls = 0;
  IvshmStatus st;

  for (i = 0; i < 1000; i++) {
    assert_status (ivshm_writer_reserve_span (w, 0, &span), IVSHM_OK);
    ivshm_writer_cancel_span (w, &span);
    ivshm_writer_release_span (w, &span);
  }
  assert_status (write_buffer (w, 7, 100), IVSHM_OK);
  assert_status (ivshm_reader_next (r, &rec, NULL), IVSHM_AGAIN);
  /* progress is kept: exactly 64 skip records per call */
  fail_unless_equals_uint64 (ivshm_reader_position (r) - start, 64 * 64);
  while ((st = ivshm_reader_next (r, &rec, NULL)) == IVSHM_AGAIN)
    fail_unless (++calls < 100);
  assert_status (st, IVSHM_OK);
  fail_unless_equals_int (calls, 1000 / 64 - 1);
  fail_unless_equals_uint64 (rec.h.offset, 7);
  ivshm_reader_free (r);
  ivshm_writer_free (w);
  munmap (base, REGION);
}

GST_END_TEST;

/* ---- 8. getters never write shared memory ------------------------------ */

GST_START_TEST (test_getters_have_no_side_effects)
{
  void *base = region_shared ();
  IvshmWriter *w = writer_new_ok (base, 0, 0);
  IvshmReader *r;
  IvshmReaderSlot *hostile = slot_at (base, 30);
  uint8_t *snapshot = malloc (REGION);
  IvshmWriterStats ws;
  IvshmReaderStats rs;
  IvshmSpan span;
  unsigned n;
  uint64_t bytes;

  /* a skip before the first record: reclaiming would move the tail */
  assert_status (ivshm_writer_reserve_span (w, 0, &span), IVSHM_OK);
  ivshm_writer_cancel_span (w, &span);
  ivshm_writer_release_span (w, &span);
  assert_status (write_buffer (w, 0, 100), IVSHM_OK);
  /* a slot that breaks the rules: reclaiming would evict it */
  atomic_store (&hostile->owner, 12345);
  atomic_store (&hostile->session_id, ivshm_writer_session (w));
  atomic_store (&hostile->read_pos, ivshm_writer_position (w) + 64 * 1000);
  atomic_store (&hostile->state, IVSHM_SLOT_ACTIVE);
  r = reader_new_ok (base, false);
  memcpy (snapshot, base, REGION);

  fail_unless_equals_int (ivshm_writer_count_readers (w), 1);
  (void) ivshm_writer_had_reader (w);
  ivshm_writer_get_stats (w, &ws);
  (void) ivshm_writer_readers_local (w);
  ivshm_reader_get_stats (r, &rs);
  ivshm_reader_held (r, &n, &bytes);
  (void) ivshm_reader_holding_back (r);
  (void) ivshm_reader_lag (r);
  (void) ivshm_reader_position (r);
  (void) ivshm_reader_waiting (r);
  fail_unless (memcmp (snapshot, base, REGION) == 0,
      "a getter wrote shared memory");
  fail_unless_equals_int (atomic_load (&hostile->state), IVSHM_SLOT_ACTIVE);
  ivshm_reader_free (r);
  ivshm_writer_free (w);
  free (snapshot);
  munmap (base, REGION);
}

GST_END_TEST;

static Suite *
core_lifecycle_suite (void)
{
  Suite *s = suite_create ("core_lifecycle");
  TCase *tc = tcase_create ("general");

  tcase_set_timeout (tc, 120);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_waiting_readers_get_everything);
  tcase_add_test (tc, test_waiting_reader_follows_restart);
  tcase_add_test (tc, test_dead_readers_reaped_by_tick);
  tcase_add_test (tc, test_reader_reaps_when_full);
  tcase_add_test (tc, test_stale_reader_never_stores);
  tcase_add_test (tc, test_sleeping_mask_survives_restart);
  tcase_add_test (tc, test_killed_sleeper_bit_cleared);
  tcase_add_test (tc, test_next_skips_bounded);
  tcase_add_test (tc, test_getters_have_no_side_effects);
  return s;
}

GST_CHECK_MAIN (core_lifecycle);
