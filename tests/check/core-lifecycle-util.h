/* gst-ivshmem: helpers of the core's life-cycle tests
 * SPDX-License-Identifier: MIT
 *
 * Shared by core-lifecycle.c (readers and their slots), core-takeover.c
 * (producers: stalls, takeovers, races), core-holders.c (readers of the
 * previous session) and core-lifecycle-model.c. Regions are anonymous
 * MAP_SHARED mappings, so that forked peers see them.
 */
#ifndef CORE_LIFECYCLE_UTIL_H
#define CORE_LIFECYCLE_UTIL_H

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

static inline void *
region_shared (void)
{
  void *base = mmap (NULL, REGION, PROT_READ | PROT_WRITE,
      MAP_SHARED | MAP_ANONYMOUS, -1, 0);

  fail_unless (base != MAP_FAILED);
  return base;
}

static inline IvshmHeader *
hdr_of (void *base)
{
  return (IvshmHeader *) base;
}

static inline IvshmReaderSlot *
slot_at (void *base, unsigned i)
{
  return (IvshmReaderSlot *) ((uint8_t *) base + IVSHM_SLOT_OFFSET +
      (size_t) i * IVSHM_SLOT_SIZE);
}

static inline unsigned
slot_of_reader (IvshmReader * r)
{
  IvshmReaderStats rs;

  ivshm_reader_get_stats (r, &rs);
  return rs.slot;
}

static inline IvshmWriter *
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

static inline IvshmReader *
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

static inline IvshmStatus
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
static inline IvshmStatus
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

/* How often the writer has gone back to the ring's start early (the
 * cache-hot ring, PROTOCOL.md section 11). */
static inline uint64_t
early_wraps (IvshmWriter * w)
{
  IvshmWriterStats ws;

  ivshm_writer_get_stats (w, &ws);
  return ws.early_wraps;
}

/* Timeouts stretch under valgrind (IVSHMEM_TEST_TIME_SCALE=10). */
static inline uint64_t
scaled (uint64_t ns)
{
  const char *v = getenv ("IVSHMEM_TEST_TIME_SCALE");
  long k = v ? atol (v) : 1;

  return ns * (uint64_t) (k > 0 ? k : 1);
}

static inline void
sleep_ms (unsigned ms)
{
  struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
  nanosleep (&ts, NULL);
}

/* Forks n readers that attach and then wait to be killed. */
static inline void
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

static inline void
kill_all (pid_t * pids, unsigned n)
{
  unsigned i;

  for (i = 0; i < n; i++) {
    kill (pids[i], SIGKILL);
    waitpid (pids[i], NULL, 0);
  }
}

static inline void
producer_tick (void *data)
{
  ivshm_writer_tick (data);
}

static inline void
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


#endif /* CORE_LIFECYCLE_UTIL_H */
