/* gst-ivshmem: the life cycle of producers, readers and their slots
 * SPDX-License-Identifier: MIT
 *
 * Issue 10 at the level of the core: readers that wait before the producer
 * starts, dead readers that must give their slots back, a producer that
 * stalls and resumes, producers that race for a region or come back after
 * being taken over, readers that must never store into a slot they lost,
 * readers_sleeping as a bitmask, bounded next(), getters without side
 * effects. Where a process boundary matters the peers are real forked
 * processes, and SIGKILL/SIGSTOP go to the process that runs the core.
 * Nothing waits without a deadline and nothing asserts a duration.
 */
#include <gst/check/gstcheck.h>

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "ivshmem-layout.h"
#include "ivshmem-ring.h"

#define MS (1000ull * 1000ull)
#define REGION (256u * 1024u)

#define assert_status(expr, expected) G_STMT_START {                     \
  IvshmStatus _got = (expr), _exp = (expected);                          \
  fail_unless (_got == _exp, "%s: got %s, expected %s", #expr,           \
      ivshm_status_name (_got), ivshm_status_name (_exp));               \
} G_STMT_END

static void *
region_shared (void)
{
  void *base = mmap (NULL, REGION, PROT_READ | PROT_WRITE,
      MAP_SHARED | MAP_ANONYMOUS, -1, 0);

  fail_unless (base != MAP_FAILED);
  return base;
}

static IvshmHeader *
hdr_of (void *base)
{
  return (IvshmHeader *) base;
}

static IvshmReaderSlot *
slot_at (void *base, unsigned i)
{
  return (IvshmReaderSlot *) ((uint8_t *) base + IVSHM_SLOT_OFFSET +
      (size_t) i * IVSHM_SLOT_SIZE);
}

static unsigned
slot_of_reader (IvshmReader * r)
{
  IvshmReaderStats rs;

  ivshm_reader_get_stats (r, &rs);
  return rs.slot;
}

static IvshmWriter *
writer_new_ok (void *base, uint64_t lease_ns, uint64_t takeover_ns)
{
  IvshmWriterConfig cfg = { 0 };
  IvshmWriter *w = NULL;
  IvshmError err = { 0 };
  IvshmStatus st;

  cfg.lease_timeout_ns = lease_ns ? lease_ns : 60000 * MS;
  cfg.takeover_wait_ns = takeover_ns;
  cfg.heartbeat_period_ns = 20 * MS;
  st = ivshm_writer_new (base, REGION, &cfg, &w, &err);
  fail_unless (st == IVSHM_OK, "writer_new: %s (%s)", ivshm_status_name (st),
      err.detail);
  return w;
}

static IvshmReader *
reader_new_ok (void *base, bool wait)
{
  IvshmReaderConfig cfg = { 0 };
  IvshmReader *r = NULL;
  IvshmError err = { 0 };
  IvshmStatus st;

  cfg.producer_timeout_ns = 60000 * MS;
  cfg.wait_for_producer = wait;
  st = ivshm_reader_new (base, REGION, &cfg, &r, &err);
  fail_unless (st == IVSHM_OK, "reader_new: %s (%s)", ivshm_status_name (st),
      err.detail);
  return r;
}

static IvshmStatus
write_buffer (IvshmWriter * w, uint64_t seq, uint64_t len)
{
  IvshmRecordHeader h = { 0 };
  uint8_t buf[4096];

  fail_unless (len <= sizeof buf);
  memset (buf, (int) (seq & 0xff), len);
  h.type = IVSHM_RECORD_BUFFER;
  h.payload_len = len;
  h.pts = h.offset = seq;
  h.dts = h.duration = h.offset_end = IVSHM_TIME_NONE;
  return ivshm_writer_write (w, &h, buf);
}

/* Reads what is there: buffers must come in order from *next on. */
static IvshmStatus
drain (IvshmReader * r, uint64_t *next, IvshmError * err)
{
  IvshmRecord rec;
  IvshmStatus st;

  while ((st = ivshm_reader_next (r, &rec, err)) == IVSHM_OK) {
    if (rec.h.type == IVSHM_RECORD_BUFFER) {
      fail_unless_equals_uint64 (rec.h.offset, *next);
      fail_unless (rec.h.payload_len == 0 ||
          rec.payload[rec.h.payload_len - 1] == (*next & 0xff));
      (*next)++;
    }
    assert_status (ivshm_reader_release (r), IVSHM_OK);
  }
  return st;
}

/* Timeouts stretch under valgrind (IVSHMEM_TEST_TIME_SCALE=10). */
static uint64_t
scaled (uint64_t ns)
{
  const char *v = getenv ("IVSHMEM_TEST_TIME_SCALE");
  long k = v ? atol (v) : 1;

  return ns * (uint64_t) (k > 0 ? k : 1);
}

static void
sleep_ms (unsigned ms)
{
  struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
  nanosleep (&ts, NULL);
}

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

/* Forks n readers that attach and then wait to be killed. */
static void
spawn_readers (void *base, pid_t * pids, unsigned n, bool sleep_in_wait)
{
  unsigned i;
  int fds[2];
  char c;

  fail_unless (pipe (fds) == 0);
  for (i = 0; i < n; i++) {
    pids[i] = fork ();
    fail_unless (pids[i] >= 0);
    if (pids[i] == 0) {
      IvshmReaderConfig cfg = { 60000 * MS };
      IvshmReader *r = NULL;
      IvshmWaiter waiter;

      if (ivshm_reader_new (base, REGION, &cfg, &r, NULL) != IVSHM_OK)
        _exit (1);
      ivshm_waiter_init (&waiter);
      if (write (fds[1], "x", 1) != 1)
        _exit (1);
      for (;;) {
        if (sleep_in_wait)
          ivshm_reader_wait (r, &waiter, 10000 * MS);
        else
          pause ();
      }
    }
  }
  for (i = 0; i < n; i++)
    fail_unless (read (fds[0], &c, 1) == 1, "reader %u did not attach", i);
  close (fds[0]);
  close (fds[1]);
}

static void
kill_all (pid_t * pids, unsigned n)
{
  unsigned i;

  for (i = 0; i < n; i++) {
    kill (pids[i], SIGKILL);
    waitpid (pids[i], NULL, 0);
  }
}

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

/* ---- 3. a producer that stalls (SIGSTOP) is followed again ------------- */

static void
producer_tick (void *data)
{
  ivshm_writer_tick (data);
}

static void
run_producer_child (void *base, uint64_t n)
{
  IvshmWriterConfig cfg = { 0 };
  IvshmWriter *w = NULL;
  IvshmWaiter waiter;
  IvshmTicker *t;
  uint64_t seq = 0;

  cfg.heartbeat_period_ns = 20 * MS;
  if (ivshm_writer_new (base, REGION, &cfg, &w, NULL) != IVSHM_OK)
    _exit (2);
  t = ivshm_ticker_start (20 * MS, producer_tick, w);
  if (!t)
    _exit (3);
  ivshm_waiter_init (&waiter);
  while (seq < n) {
    IvshmStatus st = write_buffer (w, seq, 2000);
    if (st == IVSHM_OK) {
      seq++;
      ivshm_sleep_ns (2 * MS);
    } else if (st == IVSHM_AGAIN) {
      ivshm_writer_wait (w, &waiter, 10 * MS);
    } else {
      _exit (4);
    }
  }
  ivshm_ticker_stop (t);
  ivshm_writer_free (w);
  _exit (0);
}

GST_START_TEST (test_stalled_producer_followed)
{
  void *base = region_shared ();
  IvshmReaderConfig cfg = { 0 };
  IvshmReader *r = NULL;
  IvshmError err = { 0 };
  IvshmWaiter waiter;
  IvshmStatus st;
  uint64_t next = 0, deadline;
  const uint64_t n = 400;
  unsigned stalls = 0;
  bool stopped = false, continued = false;
  pid_t pid;
  int status;

  cfg.producer_timeout_ns = scaled (200 * MS);
  cfg.follow_stall = true;
  ivshm_waiter_init (&waiter);
  pid = fork ();
  fail_unless (pid >= 0);
  if (pid == 0)
    run_producer_child (base, n);

  /* the first reader: the producer keeps everything until it comes */
  deadline = ivshm_now_ns () + scaled (60000 * MS);
  while ((st = ivshm_reader_new (base, REGION, &cfg, &r, &err)) ==
      IVSHM_ERR_NO_PRODUCER && ivshm_now_ns () < deadline)
    sleep_ms (5);
  assert_status (st, IVSHM_OK);
  for (;;) {
    fail_unless (ivshm_now_ns () < deadline, "stuck at buffer %"
        G_GUINT64_FORMAT, next);
    ivshm_reader_heartbeat (r);
    st = drain (r, &next, &err);
    if (st == IVSHM_PRODUCER_STALLED) {
      /* (a loaded machine may starve the running producer for a while
       * too: the reader just goes on then) */
      if (!stopped || continued)
        continue;
      stalls++;
      /* once per stall: the heartbeat has not moved since */
      assert_status (drain (r, &next, &err), IVSHM_AGAIN);
      /* the producer comes back: a paused VM that resumes */
      kill (pid, SIGCONT);
      continued = true;
      continue;
    }
    if (st == IVSHM_ERR_PRODUCER_GONE && stopped && !continued) {
      kill (pid, SIGKILL);
      waitpid (pid, NULL, 0);
      fail ("the reader gave up on a stopped producer: %s", err.detail);
    }
    if (st == IVSHM_ERR_PRODUCER_GONE)
      break;
    fail_unless (st == IVSHM_AGAIN, "%s (%s)", ivshm_status_name (st),
        err.detail);
    if (next >= 50 && !stopped) {
      kill (pid, SIGSTOP);
      stopped = true;
    }
    ivshm_reader_wait (r, &waiter, 10 * MS);
  }
  fail_unless_equals_int (stalls, 1);
  fail_unless_equals_uint64 (next, n);
  fail_unless (waitpid (pid, &status, 0) == pid);
  fail_unless (WIFEXITED (status) && WEXITSTATUS (status) == 0,
      "producer exit status %d", status);
  ivshm_reader_free (r);
  munmap (base, REGION);
}

GST_END_TEST;

/* ---- 4. takeover ------------------------------------------------------- */

static void
count_wait (void *data, uint64_t pid, uint64_t wait_ns)
{
  (*(int *) data)++;
}

GST_START_TEST (test_taken_over_producer_writes_nothing)
{
  void *base = region_shared ();
  IvshmWriter *a = writer_new_ok (base, 0, 0), *b;
  IvshmWriterConfig cfg = { 60000 * MS, 20 * MS, 100 * MS };
  IvshmError err = { 0 };
  uint8_t *snapshot = malloc (REGION);
  uint64_t a_pos;
  int waits = 0, i;

  for (i = 0; i < 3; i++)
    assert_status (write_buffer (a, i, 1000), IVSHM_OK);
  a_pos = ivshm_writer_position (a);
  /* a stalls (its heartbeat stops); b waits for its lease, then takes
   * over, and says that it waits */
  cfg.takeover_wait_cb = count_wait;
  cfg.takeover_wait_data = &waits;
  assert_status (ivshm_writer_new (base, REGION, &cfg, &b, &err), IVSHM_OK);
  assert_status (write_buffer (b, 0, 1000), IVSHM_OK);
  memcpy (snapshot, base, REGION);

  /* a resumes: nothing it does lands in the region */
  assert_status (write_buffer (a, 3, 1000), IVSHM_ERR_TAKEN_OVER);
  assert_status (write_buffer (a, 4, 100000 / 100), IVSHM_ERR_TAKEN_OVER);
  ivshm_writer_heartbeat (a);
  ivshm_writer_tick (a);
  fail_unless (ivshm_writer_taken_over (a));
  fail_if (ivshm_writer_taken_over (b));
  ivshm_writer_free (a);
  fail_unless (memcmp (snapshot, base, REGION) == 0,
      "the stale producer changed the region");
  /* b's positions are ones a never published (no ABA on write_pos) */
  fail_unless (ivshm_writer_position (b) >= a_pos + IVSHM_SESSION_BASE_STEP);
  fail_unless_equals_int (waits, 1);
  ivshm_writer_free (b);
  free (snapshot);
  munmap (base, REGION);
}

GST_END_TEST;

/* Two producers start together on a region whose producer died: exactly
 * one wins. */
static void
race_child (void *base, int go)
{
  IvshmWriterConfig cfg = { 0, 20 * MS, scaled (500 * MS) };
  IvshmWriter *w = NULL;
  IvshmTicker *t;
  IvshmStatus st;
  char c;

  if (read (go, &c, 1) != 1)
    _exit (1);
  st = ivshm_writer_new (base, REGION, &cfg, &w, NULL);
  if (st == IVSHM_ERR_PRODUCER_BUSY)
    _exit (20);
  if (st != IVSHM_OK)
    _exit (1);
  t = ivshm_ticker_start (20 * MS, producer_tick, w);
  /* longer than the loser watches us */
  ivshm_sleep_ns (3 * cfg.takeover_wait_ns);
  ivshm_ticker_stop (t);
  _exit (ivshm_writer_taken_over (w) ? 30 : 10);
}

static void
race_round (void *base, unsigned round)
{
  int fds[2], st0, st1;
  pid_t p0, p1;

  fail_unless (pipe (fds) == 0);
  p0 = fork ();
  if (p0 == 0)
    race_child (base, fds[0]);
  p1 = fork ();
  if (p1 == 0)
    race_child (base, fds[0]);
  fail_unless (write (fds[1], "xx", 2) == 2);
  fail_unless (waitpid (p0, &st0, 0) == p0 && waitpid (p1, &st1, 0) == p1);
  fail_unless (WIFEXITED (st0) && WIFEXITED (st1));
  st0 = WEXITSTATUS (st0);
  st1 = WEXITSTATUS (st1);
  fail_unless ((st0 == 10 && st1 == 20) || (st0 == 20 && st1 == 10),
      "round %u: exit codes %d and %d (10: won, 20: busy, 30: taken over)",
      round, st0, st1);
  close (fds[0]);
  close (fds[1]);
}

GST_START_TEST (test_racing_producers_exclusive)
{
  void *base = region_shared ();
  IvshmWriter *w = writer_new_ok (base, 0, 0);
  unsigned round;

  /* a region whose producer died (ACTIVE, heartbeat still) */
  race_round (base, 0);
  /* a region whose producer closed cleanly, several times */
  for (round = 1; round < 4; round++) {
    ivshm_writer_free (w);
    w = writer_new_ok (base, 0, 100 * MS);
    ivshm_writer_free (w);
    w = NULL;
    race_round (base, round);
    w = writer_new_ok (base, 0, scaled (2000 * MS));
  }
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
  assert_status (ivshm_reader_next (a, &rec, NULL),
      IVSHM_ERR_SESSION_CHANGED);
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
  tcase_add_test (tc, test_stalled_producer_followed);
  tcase_add_test (tc, test_taken_over_producer_writes_nothing);
  tcase_add_test (tc, test_racing_producers_exclusive);
  tcase_add_test (tc, test_stale_reader_never_stores);
  tcase_add_test (tc, test_sleeping_mask_survives_restart);
  tcase_add_test (tc, test_killed_sleeper_bit_cleared);
  tcase_add_test (tc, test_next_skips_bounded);
  tcase_add_test (tc, test_getters_have_no_side_effects);
  return s;
}

GST_CHECK_MAIN (core_lifecycle);
