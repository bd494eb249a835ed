/* bench-wake: where one-way latency goes, without GStreamer.
 *
 * Copyright (c) 2025 The gst-ivshmem authors
 * SPDX-License-Identifier: MIT
 *
 * Two processes, one region. Every 1 ms the sender takes a CLOCK_MONOTONIC
 * stamp and hands it to the receiver, which stamps again on arrival. The
 * receiver starts each wait the way ivshmemsrc does. Modes:
 *
 *   ring    the ring of common/: ivshm_writer_write() of a 4 KiB record,
 *           ivshm_reader_next() with ivshmemsrc's short spin, then
 *           ivshm_reader_wait() (a futex wake-up, since both processes
 *           share this kernel)
 *   ring-slice the same as ring, the receiver with a 100 us time slice
 *           (ivshmemsrc's scheduler-slice default, docs/latency.md): it
 *           preempts the sender when woken
 *   ring-spin  the same, but the receiver polls without ever sleeping
 *   pipe    one byte through a pipe into a blocking read(): the wake-up
 *           path of a socket, as shmsrc uses
 *
 * So `pipe` and `ring` give the floor that any transport with a sleeping
 * receiver pays on this machine (the scheduler waking a thread, on a VM
 * an idle vCPU), `ring-spin` the cost of the ring itself. It prints one
 * JSON object: {"mode", "n", "p50_ns", "p99_ns", "max_ns"}.
 *
 *   bench-wake [--count N] ring|ring-slice|ring-spin|pipe
 */

#include "ivshmem-os.h"
#include "ivshmem-ring.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REGION_SIZE (4u * 1024 * 1024)
#define PAYLOAD 4096
#define PERIOD_NS 1000000

static int64_t
now_ns (void)
{
  return (int64_t) ivshm_now_ns ();     /* CLOCK_MONOTONIC */
}

static int
cmp_i64 (const void *a, const void *b)
{
  int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;

  return x < y ? -1 : x > y;
}

static void
sleep_until (int64_t t)
{
  struct timespec ts = { t / 1000000000, t % 1000000000 };

  while (clock_nanosleep (CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0);
}

static int
receive_ring (void *base, int n, int64_t * lat, int spin_only)
{
  IvshmReaderConfig cfg = { 0 };
  IvshmReader *r = NULL;
  IvshmError err = { 0 };
  IvshmWaiter waiter;
  int i;

  ivshm_waiter_init (&waiter);
  while (ivshm_reader_new (base, REGION_SIZE, &cfg, &r, &err) != IVSHM_OK)
    usleep (1000);
  for (i = 0; i < n;) {
    IvshmRecord rec;
    IvshmBackoff b;
    IvshmStatus st;
    int64_t stamp;

    ivshm_backoff_reset (&b, 1000000);
    while ((st = ivshm_reader_next (r, &rec, &err)) == IVSHM_AGAIN) {
      uint64_t t = spin_only ? 0 : ivshm_backoff_next (&b);

      /* as ivshmemsrc: a producer that can wake us gets one long sleep */
      if (t && ivshm_reader_producer_local (r) &&
          ivshm_waiter_can_be_woken (&waiter))
        t = 100000000;

      if (t == 0)
        ivshm_cpu_relax ();
      else
        ivshm_reader_wait (r, &waiter, t);
    }
    if (st != IVSHM_OK) {
      fprintf (stderr, "bench-wake: reader: %s\n", err.detail);
      return 1;
    }
    if (rec.h.type == IVSHM_RECORD_BUFFER && rec.h.payload_len >= 8) {
      int64_t t = now_ns ();

      memcpy (&stamp, rec.payload, sizeof stamp);
      lat[i++] = t - stamp;
      ivshm_reader_heartbeat (r);
    }
    ivshm_reader_release (r);
  }
  ivshm_reader_free (r);
  return 0;
}

static int
send_ring (void *base, int n)
{
  IvshmWriterConfig cfg = { 0 };
  IvshmWriter *w = NULL;
  IvshmError err = { 0 };
  IvshmRecordHeader h = { 0 };
  static uint8_t payload[PAYLOAD];
  int64_t next;
  int i;

  if (ivshm_writer_new (base, REGION_SIZE, &cfg, &w, &err) != IVSHM_OK) {
    fprintf (stderr, "bench-wake: writer: %s\n", err.detail);
    return 1;
  }
  /* let the reader attach before the first stamp */
  while (!ivshm_writer_had_reader (w))
    usleep (1000);
  h.type = IVSHM_RECORD_BUFFER;
  h.payload_len = PAYLOAD;
  h.pts = h.dts = h.duration = h.offset = h.offset_end = IVSHM_TIME_NONE;
  next = now_ns () + PERIOD_NS;
  for (i = 0; i < n; i++) {
    int64_t stamp;

    sleep_until (next);
    next += PERIOD_NS;
    ivshm_writer_heartbeat (w);
    stamp = now_ns ();
    memcpy (payload, &stamp, sizeof stamp);
    while (ivshm_writer_write (w, &h, payload) == IVSHM_AGAIN)
      usleep (10);
  }
  ivshm_writer_free (w);
  return 0;
}

int
main (int argc, char **argv)
{
  const char *mode = NULL;
  int n = 3000, i, status = 0, p[2];
  int64_t *lat;
  void *base;
  pid_t pid;

  for (i = 1; i < argc; i++) {
    if (!strcmp (argv[i], "--count") && i + 1 < argc)
      n = atoi (argv[++i]);
    else
      mode = argv[i];
  }
  if (!mode || n <= 0 || (strcmp (mode, "ring") && strcmp (mode, "ring-spin")
          && strcmp (mode, "ring-slice") && strcmp (mode, "pipe"))) {
    fprintf (stderr, "usage: %s [--count N] ring|ring-slice|ring-spin|pipe\n",
        argv[0]);
    return 2;
  }
  base = mmap (NULL, REGION_SIZE, PROT_READ | PROT_WRITE,
      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  lat = mmap (NULL, n * sizeof *lat, PROT_READ | PROT_WRITE,
      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED || lat == MAP_FAILED || pipe (p) != 0) {
    perror ("bench-wake");
    return 1;
  }

  pid = fork ();
  if (pid < 0) {
    perror ("bench-wake: fork");
    return 1;
  }
  if (pid == 0) {
    if (!strcmp (mode, "pipe")) {
      for (i = 0; i < n; i++) {
        int64_t stamp;

        if (read (p[0], &stamp, sizeof stamp) != sizeof stamp)
          _exit (1);
        lat[i] = now_ns () - stamp;
      }
      _exit (0);
    }
    if (!strcmp (mode, "ring-slice")) {
      IvshmThreadSlice slice;

      if (!ivshm_thread_slice_set (&slice, 100000))
        fprintf (stderr, "bench-wake: no time slice for the receiver on "
            "this kernel\n");
    }
    _exit (receive_ring (base, n, lat, !strcmp (mode, "ring-spin")));
  }

  if (!strcmp (mode, "pipe")) {
    int64_t next = now_ns () + PERIOD_NS;

    for (i = 0; i < n; i++) {
      int64_t stamp;

      sleep_until (next);
      next += PERIOD_NS;
      stamp = now_ns ();
      if (write (p[1], &stamp, sizeof stamp) != sizeof stamp)
        break;
    }
  } else if (send_ring (base, n) != 0) {
    kill (pid, SIGKILL);
  }
  waitpid (pid, &status, 0);
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0) {
    fprintf (stderr, "bench-wake: the receiver failed\n");
    return 1;
  }
  /* the first tenth is warm-up */
  lat += n / 10;
  n -= n / 10;
  qsort (lat, n, sizeof *lat, cmp_i64);
  printf ("{\"mode\": \"%s\", \"n\": %d, \"p50_ns\": %" PRId64
      ", \"p99_ns\": %" PRId64 ", \"max_ns\": %" PRId64 "}\n", mode, n,
      lat[n / 2], lat[(int64_t) n * 99 / 100], lat[n - 1]);
  return 0;
}
