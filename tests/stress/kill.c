/* gst-ivshmem: kill -9 a reader, kill -9 the producer, in real processes
 * SPDX-License-Identifier: MIT
 *
 *   test-kill reader     a forked reader holds a record and keeps its lease
 *                        alive, so a lossless producer stalls on it; after
 *                        kill -9 the producer must go on within about the
 *                        lease (3 s) and another reader must lose nothing.
 *   test-kill producer   a forked producer streams; after kill -9 a reader
 *                        must report PRODUCER_GONE within the producer
 *                        timeout (2 s), a new producer must take the region
 *                        over, and a new reader must read its stream. A
 *                        second producer is refused while the first lives.
 *
 * The region is anonymous MAP_SHARED memory, as a /dev/shm file would be.
 * Prints the measured times.
 */
#include <errno.h>
#include <pthread.h>
#include <sys/wait.h>

#include "stress-util.h"

#define REGION_SIZE (1u * 1024u * 1024u)
#define ROUNDS 2

static void *base;

static void
kill_child (pid_t pid)
{
  int status;

  CHECK (kill (pid, SIGKILL) == 0, "kill: %s", strerror (errno));
  CHECK (waitpid (pid, &status, 0) == pid, "waitpid");
  CHECK (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL,
      "child did not die of SIGKILL (status %d)", status);
}

static void
pipe_write_u64 (int fd, uint64_t v)
{
  CHECK (write (fd, &v, sizeof v) == sizeof v, "pipe write");
}

static uint64_t
pipe_read_u64 (int fd)
{
  uint64_t v;
  ssize_t n;

  do
    n = read (fd, &v, sizeof v);
  while (n < 0 && errno == EINTR);
  CHECK (n == sizeof v, "pipe read: the child died early");
  return v;
}

/* ---- kill -9 a reader --------------------------------------------------- */

typedef struct
{
  IvshmReader *reader;
  IvshmWriter *writer;
} Beat;

static void *
beat_main (void *data)
{
  Beat *b = data;

  for (;;) {
    if (b->reader)
      ivshm_reader_heartbeat (b->reader);
    if (b->writer)
      ivshm_writer_heartbeat (b->writer);
    ivshm_sleep_ns (100 * MS_NS);
  }
  return NULL;
}

/* The doomed reader: attaches, takes the first buffer and never gives it
 * back (held, or just not released), heartbeats until killed. */
static void
stuck_reader_child (int fd, int hold)
{
  IvshmReaderConfig rcfg = { 60 * S_NS };
  static Beat beat;
  IvshmRecord rec;
  IvshmError err;
  IvshmHold h;
  pthread_t t;
  IvshmStatus st;

  CHECK_STATUS (ivshm_reader_new (base, REGION_SIZE, &rcfg, &beat.reader,
          &err), IVSHM_OK);
  pthread_create (&t, NULL, beat_main, &beat);
  pipe_write_u64 (fd, 1);       /* attached */
  while ((st = ivshm_reader_next (beat.reader, &rec, &err)) == IVSHM_AGAIN)
    ivshm_sleep_ns (MS_NS);
  CHECK_STATUS (st, IVSHM_OK);
  if (hold)
    CHECK_STATUS (ivshm_reader_hold (beat.reader, &h), IVSHM_OK);
  pipe_write_u64 (fd, 2);       /* stuck on it */
  for (;;)
    pause ();
}

/* A well-behaved reader in this process, drained whenever the writer
 * waits: it must get every buffer in order. */
static void
drain (IvshmReader * r, uint64_t * expect)
{
  IvshmRecord rec;
  IvshmError err;
  IvshmStatus st;

  while ((st = ivshm_reader_next (r, &rec, &err)) == IVSHM_OK) {
    if (rec.h.type == IVSHM_RECORD_BUFFER) {
      CHECK (rec.h.offset == *expect, "good reader: buffer %" PRIu64
          ", expected %" PRIu64, rec.h.offset, *expect);
      CHECK (stress_record_ok (&rec), "good reader: bad payload");
      (*expect)++;
    }
    CHECK_STATUS (ivshm_reader_release (r), IVSHM_OK);
  }
  CHECK_STATUS (st, IVSHM_AGAIN);
  ivshm_reader_heartbeat (r);
}

static int
kill_reader (void)
{
  IvshmWriterConfig wcfg = { 0 };       /* lease: the default, 3 s */
  IvshmReaderConfig rcfg = { 60 * S_NS };
  double worst = 0;

  for (int round = 0; round < ROUNDS; round++) {
    IvshmWriter *w;
    IvshmReader *good;
    IvshmWriterStats ws;
    IvshmWaiter waiter;
    IvshmError err;
    uint64_t seq = 0, expect = 0, t_kill, t_go, stalled_since;
    int fds[2];
    pid_t pid;
    IvshmStatus st;

    memset (base, 0, REGION_SIZE);
    CHECK_STATUS (ivshm_writer_new (base, REGION_SIZE, &wcfg, &w, &err),
        IVSHM_OK);
    CHECK_STATUS (ivshm_reader_new (base, REGION_SIZE, &rcfg, &good, &err),
        IVSHM_OK);
    CHECK (pipe (fds) == 0, "pipe");
    pid = fork ();
    CHECK (pid >= 0, "fork");
    if (pid == 0) {
      close (fds[0]);
      stuck_reader_child (fds[1], round == 0);
    }
    close (fds[1]);
    CHECK (pipe_read_u64 (fds[0]) == 1, "child attach");
    CHECK_STATUS (stress_write_buffer (w, &waiter, seq, 1000, S_NS), IVSHM_OK);
    seq++;
    CHECK (pipe_read_u64 (fds[0]) == 2, "child read");

    /* fill the ring: the child's slot holds it back */
    ivshm_waiter_init (&waiter);
    stalled_since = 0;
    for (;;) {
      void *p;
      ivshm_writer_heartbeat (w);
      st = ivshm_writer_reserve (w, 16 * 1024, &p);
      if (st == IVSHM_OK) {
        IvshmRecordHeader h;
        stress_fill (p, 16 * 1024, seq);
        h = stress_buffer_info (seq, 16 * 1024, stress_checksum (p, 16 * 1024));
        CHECK_STATUS (ivshm_writer_commit (w, &h), IVSHM_OK);
        seq++;
        stalled_since = 0;
        continue;
      }
      CHECK_STATUS (st, IVSHM_AGAIN);
      drain (good, &expect);
      if (!stalled_since)
        stalled_since = ivshm_now_ns ();
      /* stalled for longer than the lease while the child lives: the
       * lease of a live reader holds */
      if (ivshm_now_ns () - stalled_since > 4 * S_NS)
        break;
      ivshm_writer_wait (w, &waiter, 20 * MS_NS);
    }
    ivshm_writer_get_stats (w, &ws);
    CHECK (ws.readers_evicted == 0, "a live reader was evicted");

    kill_child (pid);
    t_kill = ivshm_now_ns ();
    for (;;) {
      st = stress_write_buffer (w, &waiter, seq, 16 * 1024, 20 * MS_NS);
      if (st == IVSHM_OK)
        break;
      CHECK_STATUS (st, IVSHM_AGAIN);
      drain (good, &expect);
      CHECK (ivshm_now_ns () - t_kill < 10 * S_NS,
          "the producer still stalls 10 s after the reader died");
    }
    t_go = ivshm_now_ns ();
    seq++;
    /* and it streams on */
    for (int i = 0; i < 200; i++, seq++) {
      while ((st = stress_write_buffer (w, &waiter, seq, 16 * 1024,
                  20 * MS_NS)) == IVSHM_AGAIN)
        drain (good, &expect);
      CHECK_STATUS (st, IVSHM_OK);
    }
    drain (good, &expect);
    ivshm_writer_get_stats (w, &ws);
    printf ("round %d (reader %s): dead reader dropped %.2f s after "
        "kill -9; evicted %" PRIu64 "; the good reader got %" PRIu64
        " of %" PRIu64 " buffers\n", round, round == 0 ? "holding a record"
        : "not releasing", stress_secs (t_go - t_kill), ws.readers_evicted,
        expect, seq);
    CHECK (ws.readers_evicted == 1, "the dead reader was not evicted");
    CHECK (expect == seq, "the good reader lost buffers");
    CHECK (t_go - t_kill <= 4500 * MS_NS, "dropped after %.2f s, lease 3 s",
        stress_secs (t_go - t_kill));
    if (stress_secs (t_go - t_kill) > worst)
      worst = stress_secs (t_go - t_kill);
    close (fds[0]);
    ivshm_reader_free (good);
    ivshm_writer_free (w);
  }
  printf ("kills survived: %d; longest time to drop a dead reader: %.2f s\n",
      ROUNDS, worst);
  return 0;
}

/* ---- kill -9 the producer ----------------------------------------------- */

/* A producer: takes the region (over), says how long that took, then
 * streams buffers 0, 1, 2... about one per millisecond until killed. */
static void
producer_child (int fd)
{
  IvshmWriterConfig wcfg = { 0 };
  static Beat beat;
  IvshmWaiter waiter;
  IvshmError err;
  pthread_t t;
  uint64_t t0 = ivshm_now_ns (), took;
  IvshmStatus st;

  st = ivshm_writer_new (base, REGION_SIZE, &wcfg, &beat.writer, &err);
  took = ivshm_now_ns () - t0;
  CHECK (st == IVSHM_OK, "producer: %s (%s)", ivshm_status_name (st),
      err.detail);
  pthread_create (&t, NULL, beat_main, &beat);
  pipe_write_u64 (fd, took);
  ivshm_waiter_init (&waiter);
  for (uint64_t seq = 0;; seq++) {
    while ((st = stress_write_buffer (beat.writer, &waiter, seq,
                seq % 5000, S_NS)) == IVSHM_AGAIN);
    CHECK_STATUS (st, IVSHM_OK);
    ivshm_sleep_ns (MS_NS);
  }
}

static pid_t
start_producer (uint64_t * takeover_ns)
{
  int fds[2];
  pid_t pid;

  CHECK (pipe (fds) == 0, "pipe");
  pid = fork ();
  CHECK (pid >= 0, "fork");
  if (pid == 0) {
    close (fds[0]);
    producer_child (fds[1]);
    _exit (1);
  }
  close (fds[1]);
  *takeover_ns = pipe_read_u64 (fds[0]);
  close (fds[0]);
  return pid;
}

/* Attaches (the producer may be initialising) and reads `n` buffers: in
 * order, checked, from wherever it joined. */
static IvshmReader *
read_some (unsigned n)
{
  IvshmReaderConfig rcfg = { 0 };       /* producer timeout: default */
  IvshmReader *r = NULL;
  IvshmWaiter waiter;
  IvshmError err;
  uint64_t expect = UINT64_MAX, t0 = ivshm_now_ns ();
  IvshmStatus st;

  ivshm_waiter_init (&waiter);
  while ((st = ivshm_reader_new (base, REGION_SIZE, &rcfg, &r, &err))
      != IVSHM_OK) {
    CHECK (st == IVSHM_AGAIN || st == IVSHM_ERR_NO_PRODUCER,
        "attach: %s (%s)", ivshm_status_name (st), err.detail);
    CHECK (ivshm_now_ns () - t0 < 5 * S_NS, "could not attach in 5 s");
    ivshm_sleep_ns (MS_NS);
  }
  for (unsigned got = 0; got < n;) {
    IvshmRecord rec;
    st = ivshm_reader_next (r, &rec, &err);
    if (st == IVSHM_AGAIN) {
      CHECK (ivshm_now_ns () - t0 < 10 * S_NS, "stream stalled");
      ivshm_reader_heartbeat (r);
      ivshm_reader_wait (r, &waiter, 10 * MS_NS);
      continue;
    }
    CHECK (st == IVSHM_OK, "next: %s (%s)", ivshm_status_name (st), err.detail);
    if (rec.h.type == IVSHM_RECORD_BUFFER) {
      CHECK (expect == UINT64_MAX || rec.h.offset == expect,
          "buffer %" PRIu64 ", expected %" PRIu64, rec.h.offset, expect);
      CHECK (stress_record_ok (&rec), "bad payload");
      expect = rec.h.offset + 1;
      got++;
    }
    CHECK_STATUS (ivshm_reader_release (r), IVSHM_OK);
  }
  return r;
}

static int
kill_producer (void)
{
  uint64_t takeover_ns, t_kill, t_err;
  double worst_detect = 0, worst_takeover = 0;
  IvshmWaiter waiter;
  pid_t pid;

  ivshm_waiter_init (&waiter);
  pid = start_producer (&takeover_ns);
  printf ("first producer started in %.3f s\n", stress_secs (takeover_ns));

  for (int round = 0; round < ROUNDS; round++) {
    IvshmReader *r = read_some (500);
    IvshmRecord rec;
    IvshmError err;
    IvshmStatus st;

    if (round == 0) {
      /* a second producer while the first one lives: refused */
      IvshmWriterConfig wcfg = { 0 };
      IvshmWriter *w2 = NULL;
      st = ivshm_writer_new (base, REGION_SIZE, &wcfg, &w2, &err);
      CHECK (st == IVSHM_ERR_PRODUCER_BUSY, "second producer: %s",
          ivshm_status_name (st));
      printf ("a second producer is refused while the first lives: %s\n",
          err.detail);
      ivshm_reader_free (r);
      r = read_some (100);      /* and the stream goes on */
    }

    kill_child (pid);
    t_kill = ivshm_now_ns ();
    for (;;) {
      st = ivshm_reader_next (r, &rec, &err);
      if (st == IVSHM_OK) {
        CHECK_STATUS (ivshm_reader_release (r), IVSHM_OK);
        continue;
      }
      if (st != IVSHM_AGAIN)
        break;
      ivshm_reader_heartbeat (r);
      CHECK (ivshm_now_ns () - t_kill < 10 * S_NS,
          "the reader still waits 10 s after the producer died");
      ivshm_reader_wait (r, &waiter, 10 * MS_NS);
    }
    t_err = ivshm_now_ns ();
    CHECK (st == IVSHM_ERR_PRODUCER_GONE, "after kill -9: %s, expected %s",
        ivshm_status_name (st), ivshm_status_name (IVSHM_ERR_PRODUCER_GONE));
    printf ("round %d: the reader saw the producer gone %.2f s after kill -9 "
        "(%s)\n", round, stress_secs (t_err - t_kill), err.detail);
    CHECK (t_err - t_kill <= 3500 * MS_NS, "detected after %.2f s",
        stress_secs (t_err - t_kill));
    if (stress_secs (t_err - t_kill) > worst_detect)
      worst_detect = stress_secs (t_err - t_kill);
    ivshm_reader_free (r);

    /* a new producer takes over the dead one's region */
    pid = start_producer (&takeover_ns);
    printf ("round %d: a new producer took the region over in %.3f s\n",
        round, stress_secs (takeover_ns));
    CHECK (takeover_ns < 2 * S_NS, "takeover took %.2f s",
        stress_secs (takeover_ns));
    if (stress_secs (takeover_ns) > worst_takeover)
      worst_takeover = stress_secs (takeover_ns);
  }
  /* the last producer's stream reads fine */
  ivshm_reader_free (read_some (500));
  kill_child (pid);
  printf ("kills survived: %d; longest time to notice: %.2f s; longest "
      "takeover: %.3f s\n", ROUNDS + 1, worst_detect, worst_takeover);
  return 0;
}

int
main (int argc, char **argv)
{
  const char *mode = argc > 1 ? argv[1] : "";

  stress_watchdog (120);
  base = stress_region_map (REGION_SIZE);
  if (strcmp (mode, "reader") == 0)
    return kill_reader ();
  if (strcmp (mode, "producer") == 0)
    return kill_producer ();
  fprintf (stderr, "usage: %s reader|producer\n", argv[0]);
  return 2;
}
