/* gst-ivshmem: the Spin model's findings, played step by step
 * SPDX-License-Identifier: MIT
 *
 * common/ring/model (branch model) found where the 2.0 design fails; each test
 * here plays one of its trails at the level of the core. Findings 1 and 2
 * need a peer to stall between a check and the store it guards: the core's
 * test hook (ivshm_test_hook, ivshmem-ring-private.h) runs the other
 * peers' steps right there, in one process, with two reader (or writer)
 * objects on one region. Findings 4 and 5 are lost wake-ups: a thread
 * sleeps with a deadline far longer than the test may take, and must be
 * woken well before it. Nothing asserts a duration shorter than that.
 */
#include "core-lifecycle-util.h"

#include "ivshmem-ring-private.h"

static void *hook_base;
static IvshmWriter *hook_writer;
static IvshmReader *hook_reader;
static const char *hook_point;
static int hook_fired;

static void
hook_arm (const char *point, void *base)
{
  hook_point = point;
  hook_base = base;
  hook_fired = 0;
  ivshm_test_hook = NULL;
}

static bool
hook_take (const char *point)
{
  if (hook_fired || strcmp (point, hook_point) != 0)
    return false;
  hook_fired = 1;
  return true;
}

/* Keeps ticking until the slot is reaped (its owner never heartbeats). */
static void
tick_until_reaped (IvshmWriter * w, IvshmReaderSlot * s)
{
  unsigned i;

  for (i = 0; i < 1000 && atomic_load (&s->owner) != 0; i++) {
    ivshm_writer_tick (w);
    sleep_ms (10);
  }
  fail_unless_equals_uint64 (atomic_load (&s->owner), 0);
}

/* ---- finding 1: ABA of read_pos within one session ------------------- */

/* Reader A checked that it owns slot 0 and is about to publish; here it
 * stalls for a lease: the tick reaps the slot, reader B claims it, reads
 * the first record and so publishes the very position A last published. */
static void
aba_hook (const char *point, void *obj)
{
  IvshmRecord rec;
  IvshmReader *b;

  if (!hook_take (point))
    return;
  tick_until_reaped (hook_writer, slot_at (hook_base, 0));
  b = reader_new_ok (hook_base, false);
  fail_unless_equals_int (slot_of_reader (b), 0);
  assert_status (ivshm_reader_next (b, &rec, NULL), IVSHM_OK);
  fail_unless_equals_uint64 (rec.h.offset, 0);  /* a first reader */
  assert_status (ivshm_reader_release (b), IVSHM_OK);
  hook_reader = b;
}

GST_START_TEST (test_stale_reader_aba)
{
  void *base = region_shared ();
  IvshmWriter *w = writer_new_ok (base, scaled (30 * MS), 0);
  IvshmReader *a = reader_new_ok (base, false), *b;
  IvshmReaderSlot *s = slot_at (base, 0);
  IvshmRecord rec;
  uint64_t b_pos;
  unsigned i;

  fail_unless_equals_int (slot_of_reader (a), 0);
  for (i = 0; i < 3; i++)
    assert_status (write_buffer (w, i, 1000), IVSHM_OK);
  assert_status (ivshm_reader_next (a, &rec, NULL), IVSHM_OK);
  assert_status (ivshm_reader_release (a), IVSHM_OK);
  assert_status (ivshm_reader_next (a, &rec, NULL), IVSHM_OK);
  fail_unless_equals_uint64 (rec.h.offset, 1);

  hook_arm ("reader-publish", base);
  hook_writer = w;
  hook_reader = NULL;
  ivshm_test_hook = aba_hook;
  /* A resumes: its release must not land in B's slot */
  assert_status (ivshm_reader_release (a), IVSHM_ERR_EVICTED);
  ivshm_test_hook = NULL;
  fail_unless (hook_fired);
  b = hook_reader;
  b_pos = ivshm_writer_position (w) - 2 * ivshm_record_len (1000);
  fail_unless_equals_uint64 (atomic_load (&s->read_pos) & ~(uint64_t) 63,
      b_pos);
  /* and B, which has not read record 1, goes on as if nothing happened */
  assert_status (ivshm_reader_next (b, &rec, NULL), IVSHM_OK);
  fail_unless_equals_uint64 (rec.h.offset, 1);
  assert_status (ivshm_reader_release (b), IVSHM_OK);
  ivshm_reader_free (a);
  ivshm_reader_free (b);
  ivshm_writer_free (w);
  munmap (base, REGION);
}

GST_END_TEST;

/* ---- finding 2: a stale producer's adoption ------------------------- */

/* Producer P2 formats, finds the WAITING slot and is about to adopt it;
 * here it stalls: P1 takes the region over and formats (adopting the
 * slot itself). */
static void
adopt_hook (const char *point, void *obj)
{
  (void) obj;
  if (!hook_take (point))
    return;
  hook_writer = writer_new_ok (hook_base, 0, scaled (50 * MS));
}

GST_START_TEST (test_stale_producer_adoption)
{
  void *base = region_shared ();
  IvshmReader *r = reader_new_ok (base, true);
  IvshmWriterConfig cfg = { 0 };
  IvshmWriter *p2 = NULL, *p1;
  IvshmError err = { 0 };
  IvshmStatus st;
  uint64_t next = 0;
  unsigned i;

  fail_unless (ivshm_reader_waiting (r));
  hook_arm ("producer-adopt", base);
  hook_writer = NULL;
  ivshm_test_hook = adopt_hook;
  cfg.heartbeat_period_ns = 20 * MS;
  st = ivshm_writer_new (base, REGION, &cfg, &p2, &err);
  ivshm_test_hook = NULL;
  fail_unless (hook_fired);
  p1 = hook_writer;
  /* P2 resumed after P1 took the region: it must not come back as a
   * producer, nor leave its session in the header or the slot */
  fail_unless (st != IVSHM_OK, "the stale producer formatted the region "
      "after it was taken over");
  fail_unless (p2 == NULL);
  fail_unless_equals_uint64 (atomic_load (&hdr_of (base)->session_id),
      ivshm_writer_session (p1));
  fail_unless_equals_uint64 (atomic_load (&slot_at (base,
              slot_of_reader (r))->session_id), ivshm_writer_session (p1));

  /* the waiting reader gets P1's whole stream */
  for (i = 0; i < 5; i++)
    assert_status (write_buffer (p1, i, 1000), IVSHM_OK);
  assert_status (drain (r, &next, &err), IVSHM_AGAIN);
  fail_unless_equals_uint64 (next, 5);
  fail_unless_equals_uint64 (ivshm_reader_session (r),
      ivshm_writer_session (p1));
  ivshm_reader_free (r);
  ivshm_writer_free (p1);
  munmap (base, REGION);
}

GST_END_TEST;

/* ---- finding 4: a reap wakes the reader it frees --------------------- */

typedef struct
{
  IvshmReader *r;
  IvshmWriter *w;
  IvshmWaiter waiter;
  atomic_int done;
} Sleeper;

static void *
reader_sleeps (void *data)
{
  Sleeper *s = data;

  ivshm_reader_wait (s->r, &s->waiter, scaled (60000 * MS));
  atomic_store (&s->done, 1);
  return NULL;
}

/* waits for *done up to 30 s (scaled); the sleeper's deadline is 60 s */
static bool
woken (atomic_int * done)
{
  unsigned i;

  for (i = 0; i < 3000 * scaled (1) && !atomic_load (done); i++)
    sleep_ms (10);
  return atomic_load (done);
}

/* The set-up of the sleeper cases: a producer (lease_ns, 0: the
 * default), a reader that has not read, and the waiter it sleeps on. */
static void
sleeper_setup (Sleeper * s, void *base, uint64_t lease_ns)
{
  s->w = writer_new_ok (base, lease_ns, 0);
  s->r = reader_new_ok (base, false);
  ivshm_waiter_init (&s->waiter);
}

/* Until the reader has set its sleeping bit (10000 looks, 1 ms apart). */
static void
wait_for_sleeping_bit (void *base)
{
  unsigned i;

  for (i = 0; i < 10000 &&
      atomic_load (&hdr_of (base)->readers_sleeping) == 0; i++)
    sleep_ms (1);
}

static void
sleeper_finish (Sleeper * s, void *base)
{
  ivshm_reader_free (s->r);
  ivshm_writer_free (s->w);
  munmap (base, REGION);
}

GST_START_TEST (test_reap_wakes_sleeper)
{
  void *base = region_shared ();
  Sleeper s = { 0 };
  pthread_t t;

  sleeper_setup (&s, base, scaled (30 * MS));
  fail_unless (pthread_create (&t, NULL, reader_sleeps, &s) == 0);
  wait_for_sleeping_bit (base);
  /* it sleeps without heartbeats: the tick reaps its slot */
  tick_until_reaped (s.w, slot_at (base, slot_of_reader (s.r)));
  fail_unless (woken (&s.done), "the reaped reader was not woken");
  pthread_join (t, NULL);
  fail_unless_equals_int (atomic_load (&hdr_of (base)->readers_sleeping), 0);
  sleeper_finish (&s, base);
}

GST_END_TEST;

/* ---- finding 5: freed space wakes the producer ----------------------- */

static void *
writer_sleeps (void *data)
{
  Sleeper *s = data;

  ivshm_writer_wait (s->w, &s->waiter, scaled (60000 * MS));
  atomic_store (&s->done, 1);
  return NULL;
}

/* Fills the ring with r attached and reading nothing. */
static void
fill_ring (IvshmWriter * w, IvshmReader * r)
{
  IvshmRecord rec;
  uint64_t seq;

  /* a first record read, so that r is counted (HAD_READER) */
  assert_status (write_buffer (w, 0, 1000), IVSHM_OK);
  assert_status (ivshm_reader_next (r, &rec, NULL), IVSHM_OK);
  assert_status (ivshm_reader_release (r), IVSHM_OK);
  for (seq = 1; seq < 10000; seq++)
    if (write_buffer (w, seq, 4000) == IVSHM_AGAIN)
      return;
  fail ("the ring never filled");
}

static void
space_wake_case (bool reap)
{
  void *base = region_shared ();
  Sleeper s = { 0 };
  pthread_t t;
  unsigned i;

  s.w = writer_new_ok (base, scaled (30 * MS), 0);
  s.r = reader_new_ok (base, false);
  fill_ring (s.w, s.r);
  ivshm_waiter_init (&s.waiter);
  fail_unless (pthread_create (&t, NULL, writer_sleeps, &s) == 0);
  for (i = 0; i < 10000 &&
      atomic_load (&hdr_of (base)->writer_sleeping) == 0; i++)
    sleep_ms (1);
  fail_unless (atomic_load (&hdr_of (base)->writer_sleeping) != 0);
  if (reap) {
    /* a second reader finds no slot free but the dead one's: it reaps */
    IvshmReaderSlot *slot = slot_at (base, slot_of_reader (s.r));
    IvshmLeaseWatch lw = { 0 };
    uint64_t owner = 0;

    ivshm_lease_expired (&lw, slot, 0, 1, &owner);
    fail_unless (ivshm_lease_expired (&lw, slot, 10, 1, &owner));
    fail_unless (ivshm_slot_reap (hdr_of (base), slot, slot_of_reader (s.r),
            owner));
  } else {
    ivshm_reader_detach (s.r);
  }
  fail_unless (woken (&s.done), "the producer was not woken");
  pthread_join (t, NULL);
  ivshm_reader_free (s.r);
  ivshm_writer_free (s.w);
  munmap (base, REGION);
}

GST_START_TEST (test_let_go_wakes_producer)
{
  space_wake_case (false);
}

GST_END_TEST;

GST_START_TEST (test_reap_wakes_producer)
{
  space_wake_case (true);
}

GST_END_TEST;

/* ---- finding 6: a WAITING reader that the format did not adopt ------ */

/* The format has walked the slots; here a reader comes, finds no magic
 * and waits in a slot that the format will never adopt. */
static void
late_waiter_hook (const char *point, void *obj)
{
  (void) obj;
  if (!hook_take (point))
    return;
  hook_reader = reader_new_ok (hook_base, true);
}

GST_START_TEST (test_unadopted_waiting_reader)
{
  void *base = region_shared ();
  IvshmReaderSlot *s;
  IvshmWriter *w;
  IvshmReader *r;
  IvshmError err = { 0 };
  uint64_t next = 0;
  unsigned i;

  hook_arm ("producer-slots-done", base);
  hook_reader = NULL;
  ivshm_test_hook = late_waiter_hook;
  w = writer_new_ok (base, 0, 0);
  ivshm_test_hook = NULL;
  fail_unless (hook_fired);
  r = hook_reader;
  s = slot_at (base, slot_of_reader (r));
  fail_unless_equals_int (atomic_load (&s->state), IVSHM_SLOT_WAITING);
  fail_unless_equals_uint64 (atomic_load (&s->session_id), 0);
  /* not adopted, so the producer does not keep anything for it... */
  fail_unless_equals_int (ivshm_writer_count_readers (w), 0);
  /* ...and it attaches as a later reader at its first next() */
  assert_status (drain (r, &next, &err), IVSHM_AGAIN);
  fail_unless (!ivshm_reader_waiting (r));
  fail_unless_equals_int (atomic_load (&s->state), IVSHM_SLOT_ACTIVE);
  fail_unless_equals_uint64 (ivshm_reader_session (r),
      ivshm_writer_session (w));
  for (i = 0; i < 5; i++)
    assert_status (write_buffer (w, i, 1000), IVSHM_OK);
  assert_status (drain (r, &next, &err), IVSHM_AGAIN);
  fail_unless_equals_uint64 (next, 5);
  ivshm_reader_free (r);
  ivshm_writer_free (w);
  munmap (base, REGION);
}

GST_END_TEST;

/* ---- finding 3: writer_sleeping names its producer -------------------- */

GST_START_TEST (test_writer_sleeping_mark)
{
  void *base = region_shared ();
  IvshmWriter *w = writer_new_ok (base, 0, 0);
  IvshmReader *r = reader_new_ok (base, false);
  _Atomic uint32_t *ws = &hdr_of (base)->writer_sleeping;
  IvshmWaiter waiter;
  uint32_t token;

  ivshm_waiter_init (&waiter);
  fill_ring (w, r);
  fail_unless (ivshm_writer_wait_prepare (w, &token));
  fail_unless_equals_uint64 (atomic_load (ws) | 0ull,
      (uint32_t) atomic_load (&hdr_of (base)->producer_owner) ?
      (uint32_t) atomic_load (&hdr_of (base)->producer_owner) : 1u);
  /* another producer's mark is not ours to clear */
  atomic_store (ws, atomic_load (ws) ^ 0x80000000u);
  ivshm_writer_wait_finish (w, &waiter, token, MS);
  fail_unless (atomic_load (ws) != 0);
  atomic_store (ws, atomic_load (ws) ^ 0x80000000u);
  ivshm_writer_wait_finish (w, &waiter, token, MS);
  fail_unless_equals_int (atomic_load (ws), 0);
  ivshm_reader_free (r);
  ivshm_writer_free (w);
  munmap (base, REGION);
}

GST_END_TEST;

/* ---- finding 7: a reaper that stalls before its poison ---------------- */

/* The reaper checked that A still owns the slot; here it stalls: A lets
 * go and B claims the slot. */
static void
stale_reaper_hook (const char *point, void *obj)
{
  (void) obj;
  if (!hook_take (point))
    return;
  ivshm_reader_free (hook_reader);
  hook_reader = reader_new_ok (hook_base, false);
}

GST_START_TEST (test_stale_reaper_poison)
{
  void *base = region_shared ();
  IvshmWriter *w = writer_new_ok (base, 0, 0);
  IvshmReader *a = reader_new_ok (base, false), *b;
  IvshmReaderSlot *s = slot_at (base, 0);
  IvshmError err = { 0 };
  uint64_t next = 0;
  unsigned i;

  fail_unless_equals_int (slot_of_reader (a), 0);
  hook_arm ("reaper-poison", base);
  hook_reader = a;
  ivshm_test_hook = stale_reaper_hook;
  fail_if (ivshm_slot_reap (hdr_of (base), s, 0, atomic_load (&s->owner)));
  ivshm_test_hook = NULL;
  fail_unless (hook_fired);
  b = hook_reader;
  fail_unless_equals_int (slot_of_reader (b), 0);
  /* B's slot is untouched: it reads and releases as usual */
  fail_unless (atomic_load (&s->read_pos) != IVSHM_POS_POISON);
  for (i = 0; i < 3; i++)
    assert_status (write_buffer (w, i, 1000), IVSHM_OK);
  assert_status (drain (b, &next, &err), IVSHM_AGAIN);
  fail_unless_equals_uint64 (next, 3);
  ivshm_reader_free (b);
  ivshm_writer_free (w);
  munmap (base, REGION);
}

GST_END_TEST;

/* ---- the let-go / reap window (model: broken-letgo, broken-reap) ------ */

/* Reader A (or a reaper of A) checked that A owns slot 0 and is about to
 * move its state to FREE; here it stalls: A's slot is reaped (or let go),
 * and reader B claims it and attaches, so the slot is ACTIVE again, the
 * state A saw. The model's trail of -DBROKEN_LETGO, played against the C.
 * With the old state-only compare-and-swap (from the state seen) both
 * tests fail: B's slot ends FREE (checked by mutation: the CAS in
 * ivshm_slot_move_from made 32-bit, on `state` alone). */
static void
letgo_hook (const char *point, void *obj)
{
  IvshmReaderSlot *s = obj;

  if (!hook_take (point))
    return;
  if (strcmp (point, "reader-let-go") == 0) {
    /* A stalled for a lease: the tick reaps its slot */
    tick_until_reaped (hook_writer, s);
  } else {
    /* the reaper stalled: A lets go itself */
    ivshm_reader_free (hook_reader);
  }
  hook_reader = reader_new_ok (hook_base, false);
}

static void
stale_free_case (const char *point)
{
  void *base = region_shared ();
  IvshmWriter *w = writer_new_ok (base, scaled (30 * MS), 0);
  IvshmReader *a = reader_new_ok (base, false), *b;
  IvshmReaderSlot *s = slot_at (base, 0);
  IvshmError err = { 0 };
  uint64_t next = 0, owner_a;
  unsigned i;

  fail_unless_equals_int (slot_of_reader (a), 0);
  fail_unless_equals_int (atomic_load (&s->state), IVSHM_SLOT_ACTIVE);
  owner_a = atomic_load (&s->owner);
  hook_arm (point, base);
  hook_writer = w;
  hook_reader = a;
  ivshm_test_hook = letgo_hook;
  if (strcmp (point, "reader-let-go") == 0) {
    ivshm_reader_detach (a);
  } else {
    fail_if (ivshm_slot_reap (hdr_of (base), s, 0, owner_a));
    a = NULL;                   /* freed by the hook */
  }
  ivshm_test_hook = NULL;
  fail_unless (hook_fired);
  b = hook_reader;
  fail_unless_equals_int (slot_of_reader (b), 0);
  /* B's slot is B's: the stale move to FREE did not land */
  fail_unless_equals_int (atomic_load (&s->state), IVSHM_SLOT_ACTIVE);
  fail_unless (atomic_load (&s->owner) != 0);
  fail_unless (atomic_load (&s->owner) != owner_a);
  for (i = 0; i < 3; i++)
    assert_status (write_buffer (w, i, 1000), IVSHM_OK);
  assert_status (drain (b, &next, &err), IVSHM_AGAIN);
  fail_unless_equals_uint64 (next, 3);
  fail_unless_equals_int (ivshm_writer_count_readers (w), 1);
  if (a)
    ivshm_reader_free (a);
  ivshm_reader_free (b);
  ivshm_writer_free (w);
  munmap (base, REGION);
}

GST_START_TEST (test_stale_let_go)
{
  stale_free_case ("reader-let-go");
}

GST_END_TEST;

GST_START_TEST (test_stale_reaper_free)
{
  stale_free_case ("reaper-free");
}

GST_END_TEST;

/* ---- the publish wakes a sleeping reader (section 11a) ----------------- */

/* The reader sleeps with a deadline of 60 s; one record published must
 * wake it well before (30 s, scaled). Checked by mutation: without the
 * wake in writer_publish the reader slept to its deadline and this test
 * failed. */
GST_START_TEST (test_publish_wakes_sleeper)
{
  void *base = region_shared ();
  Sleeper s = { 0 };
  pthread_t t;

  sleeper_setup (&s, base, 0);
  fail_unless (pthread_create (&t, NULL, reader_sleeps, &s) == 0);
  wait_for_sleeping_bit (base);
  fail_unless (atomic_load (&hdr_of (base)->readers_sleeping) != 0);
  /* past its last look at write_pos (a publish before that look would
   * keep it awake whether or not the producer wakes it) */
  sleep_ms (200);
  assert_status (write_buffer (s.w, 0, 1000), IVSHM_OK);
  fail_unless (woken (&s.done), "the publish did not wake the reader");
  pthread_join (t, NULL);
  sleeper_finish (&s, base);
}

GST_END_TEST;

/* The reader loaded data_futex and is about to set its sleeping bit; here
 * the producer publishes (it sees no bit: no wake). The reader must look
 * at write_pos again after its bit and not sleep. Checked by mutation:
 * without that look (ivshm_reader_wait) it slept to its deadline and this
 * test failed. */
static void
publish_before_bit_hook (const char *point, void *obj)
{
  (void) obj;
  if (!hook_take (point))
    return;
  assert_status (write_buffer (hook_writer, 0, 1000), IVSHM_OK);
}

GST_START_TEST (test_publish_before_sleep_bit)
{
  void *base = region_shared ();
  Sleeper s = { 0 };
  pthread_t t;

  sleeper_setup (&s, base, 0);
  hook_arm ("reader-sleep", base);
  hook_writer = s.w;
  ivshm_test_hook = publish_before_bit_hook;
  fail_unless (pthread_create (&t, NULL, reader_sleeps, &s) == 0);
  fail_unless (woken (&s.done), "the reader slept through a record "
      "published before it set its bit");
  pthread_join (t, NULL);
  ivshm_test_hook = NULL;
  fail_unless (hook_fired);
  sleeper_finish (&s, base);
}

GST_END_TEST;

/* ---- the tail / reclaim Dekker pair (invariant 6) --------------------- */

/* Reader R2 attaches in a thread of its own, which stops at named test
 * points (a gate) while the main thread plays the producer and reader R1:
 * R2 registers a position the producer's tail passes while R2 attaches.
 * Either side of the pair must see the other; otherwise the producer
 * ignores R2 (its position is below the tail) and overwrites what R2 is
 * about to read. R2 stops where it has loaded write_pos W, before it
 * publishes W as its position; the producer writes three rings' worth
 * meanwhile while R1 keeps up; then R2 must read every record from W. */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static const char *gate_stops[2];       /* R2 stops there, in this order */
static unsigned gate_next;
static const char *gate_at;     /* where R2 waits now; NULL: it runs */

typedef struct
{
  void *base;
  IvshmReader *r;
  IvshmStatus st;
} Attach;

static void
gate_arrive (const char *point)
{
  pthread_mutex_lock (&gate_mu);
  if (gate_next < G_N_ELEMENTS (gate_stops) && gate_stops[gate_next] &&
      strcmp (point, gate_stops[gate_next]) == 0) {
    gate_next++;
    gate_at = point;
    pthread_cond_broadcast (&gate_cv);
    while (gate_at != NULL)
      pthread_cond_wait (&gate_cv, &gate_mu);
  }
  pthread_mutex_unlock (&gate_mu);
}

/* waits (30 s at most) until R2 stands at point */
static void
gate_wait_at (const char *point)
{
  struct timespec ts;
  bool there;

  clock_gettime (CLOCK_REALTIME, &ts);
  ts.tv_sec += 30 * (time_t) scaled (1);
  pthread_mutex_lock (&gate_mu);
  while (!(gate_at && strcmp (gate_at, point) == 0) &&
      pthread_cond_timedwait (&gate_cv, &gate_mu, &ts) == 0);
  there = gate_at && strcmp (gate_at, point) == 0;
  pthread_mutex_unlock (&gate_mu);
  fail_unless (there, "the attaching reader never reached %s", point);
}

static void
gate_go (void)
{
  pthread_mutex_lock (&gate_mu);
  gate_at = NULL;
  pthread_cond_broadcast (&gate_cv);
  pthread_mutex_unlock (&gate_mu);
}

static void *
attach_thread (void *data)
{
  Attach *a = data;
  IvshmReaderConfig cfg = { 0 };

  cfg.producer_timeout_ns = 60000 * MS;
  a->st = ivshm_reader_new (a->base, REGION, &cfg, &a->r, NULL);
  return NULL;
}

static pthread_t dekker_thread;
static Attach dekker_attach;

static void
dekker_hook (const char *point, void *obj)
{
  (void) obj;
  if (strcmp (point, "producer-scanned") == 0) {
    /* the producer scanned (without R2) and is about to publish its
     * tail: R2 registers the old tail now, looks at the tail again (the
     * old one still) and stops once it loaded W */
    if (!hook_take (point))
      return;
    fail_unless (pthread_create (&dekker_thread, NULL, attach_thread,
            &dekker_attach) == 0);
    gate_wait_at ("reader-start");
    return;
  }
  gate_arrive (point);
}

static void
dekker_case (bool reader_side)
{
  void *base = region_shared ();
  IvshmWriter *w = writer_new_ok (base, 0, 0);
  IvshmReader *r1 = reader_new_ok (base, false), *r2;
  IvshmError err = { 0 };
  uint64_t seq = 0, next1 = 0, next2, first2;
  IvshmRecord rec;
  IvshmStatus st;
  unsigned round;

  for (; seq < 8; seq++)
    assert_status (write_buffer (w, seq, 1000), IVSHM_OK);
  /* R1 is counted: the producer reclaims from now on; the tail stays at
   * the session's start until the next reclaim, after R1 read it all */
  ivshm_writer_reclaim (w, false);
  assert_status (drain (r1, &next1, &err), IVSHM_AGAIN);

  memset (&dekker_attach, 0, sizeof dekker_attach);
  dekker_attach.base = base;
  gate_next = 0;
  gate_at = NULL;
  hook_arm (reader_side ? "none" : "producer-scanned", base);
  ivshm_test_hook = dekker_hook;
  if (reader_side) {
    /* R2 loaded the old tail and stops before it registers it: the
     * producer reclaims past it */
    gate_stops[0] = "reader-register";
    gate_stops[1] = "reader-start";
    fail_unless (pthread_create (&dekker_thread, NULL, attach_thread,
            &dekker_attach) == 0);
    gate_wait_at ("reader-register");
    ivshm_writer_reclaim (w, false);
    gate_go ();
    gate_wait_at ("reader-start");
  } else {
    gate_stops[0] = "reader-start";
    gate_stops[1] = NULL;
    ivshm_writer_reclaim (w, false);
    fail_unless (hook_fired);
  }

  /* R2 stands after its registration: the producer writes as far as its
   * readers let it, three rings' worth, while R1 keeps up */
  first2 = seq;
  for (round = 0; round < 3 * (REGION / 1000); round++) {
    st = write_buffer (w, seq, 1000);
    if (st == IVSHM_OK) {
      seq++;
      continue;
    }
    assert_status (st, IVSHM_AGAIN);
    assert_status (drain (r1, &next1, &err), IVSHM_AGAIN);
  }
  gate_go ();
  pthread_join (dekker_thread, NULL);
  ivshm_test_hook = NULL;
  assert_status (dekker_attach.st, IVSHM_OK);
  r2 = dekker_attach.r;

  /* R2 (a later reader) replays the sticky records, then reads from the
   * record at W on */
  while ((st = ivshm_reader_next (r2, &rec, &err)) == IVSHM_OK && rec.replayed)
    assert_status (ivshm_reader_release (r2), IVSHM_OK);
  fail_unless (st == IVSHM_OK, "R2 could not read its first record: %s (%s)",
      ivshm_status_name (st), err.detail);
  fail_unless_equals_int (rec.h.type, IVSHM_RECORD_BUFFER);
  fail_unless_equals_uint64 (rec.h.offset, first2);
  assert_status (ivshm_reader_release (r2), IVSHM_OK);
  next2 = first2 + 1;
  assert_status (drain (r2, &next2, &err), IVSHM_AGAIN);
  fail_unless_equals_uint64 (next2, seq);
  ivshm_reader_free (r1);
  ivshm_reader_free (r2);
  ivshm_writer_free (w);
  munmap (base, REGION);
}

/* Checked by mutation: without the tail re-check in reader_register, R2's
 * first record was overwritten and this test failed. */
GST_START_TEST (test_dekker_reader_side)
{
  dekker_case (true);
}

GST_END_TEST;

/* Checked by mutation: without the second scan in ivshm_writer_reclaim,
 * R2's first record was overwritten and this test failed. */
GST_START_TEST (test_dekker_producer_side)
{
  dekker_case (false);
}

GST_END_TEST;

static Suite *
core_lifecycle_model_suite (void)
{
  Suite *s = suite_create ("core_lifecycle_model");
  TCase *tc = tcase_create ("general");

  tcase_set_timeout (tc, 240);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_stale_reader_aba);
  tcase_add_test (tc, test_stale_producer_adoption);
  tcase_add_test (tc, test_reap_wakes_sleeper);
  tcase_add_test (tc, test_let_go_wakes_producer);
  tcase_add_test (tc, test_reap_wakes_producer);
  tcase_add_test (tc, test_unadopted_waiting_reader);
  tcase_add_test (tc, test_writer_sleeping_mark);
  tcase_add_test (tc, test_stale_reaper_poison);
  tcase_add_test (tc, test_stale_let_go);
  tcase_add_test (tc, test_stale_reaper_free);
  tcase_add_test (tc, test_publish_wakes_sleeper);
  tcase_add_test (tc, test_publish_before_sleep_bit);
  tcase_add_test (tc, test_dekker_reader_side);
  tcase_add_test (tc, test_dekker_producer_side);
  return s;
}

GST_CHECK_MAIN (core_lifecycle_model);
