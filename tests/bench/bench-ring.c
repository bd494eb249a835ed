/* bench-ring: what the ring costs per record, without GStreamer.
 *
 * Copyright (c) 2025 The gst-ivshmem authors
 * SPDX-License-Identifier: MIT
 *
 * A writer copies --count records of --size bytes into a 1 MiB region
 * (the benchmark's region for 4 KiB buffers) with ivshm_writer_write(), as
 * fast as it can: the copy, the record header and the publication that
 * ivshmemsink does for every buffer it does not own. Modes:
 *
 *   alone   nobody reads (a leaky producer, as ivshmemsink policy=leaky
 *           with no reader)
 *   reader  another process reads and releases every record, polling the
 *           ring without sleeping (as a reader that keeps up does): what
 *           the cache lines that both sides touch add
 *
 * It prints one JSON object: {"mode", "size", "n", "ns_per_record"}, the
 * writer's wall time per record.
 *
 *   bench-ring [--count N] [--size BYTES] [--region BYTES]
 *              [--hot-window BYTES|off] [--read-payload] alone|reader
 *
 * --region: the region's size (1 MiB by default); --hot-window: the
 * writer's IvshmWriterConfig.hot_window (the cache-hot ring, PROTOCOL.md
 * section 11; "off" never wraps early), to compare the two in one run;
 * --read-payload: the reader copies each payload out, as ivshmemsrc does
 * with zero-copy=off, instead of only releasing the record.
 */

#include "ivshmem-os.h"
#include "ivshmem-layout.h"
#include "ivshmem-ring.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static uint64_t region_size = 1024u * 1024;
static int read_payload;

static int
read_all (void *base, long n)
{
  IvshmReaderConfig cfg = { 0 };
  IvshmReader *r = NULL;
  IvshmError err = { 0 };
  long got = 0;
  uint8_t *copy = malloc (region_size);

  if (!copy)
    return 1;
  while (ivshm_reader_new (base, region_size, &cfg, &r, &err) != IVSHM_OK)
    usleep (100);
  while (got < n) {
    IvshmRecord rec;
    IvshmStatus st = ivshm_reader_next (r, &rec, &err);

    if (st == IVSHM_AGAIN) {
      ivshm_cpu_relax ();
      continue;
    }
    if (st != IVSHM_OK) {
      fprintf (stderr, "bench-ring: reader: %s\n", err.detail);
      return 1;
    }
    if (read_payload && rec.h.payload_len <= region_size)
      memcpy (copy, rec.payload, rec.h.payload_len);
    if (rec.h.type == IVSHM_RECORD_BUFFER && ++got % 1024 == 0)
      ivshm_reader_heartbeat (r);
    ivshm_reader_release (r);
  }
  ivshm_reader_free (r);
  free (copy);
  return 0;
}

int
main (int argc, char **argv)
{
  const char *mode = NULL;
  long n = 2000000, size = 4096, i;
  IvshmWriterConfig cfg = { 0 };
  IvshmRecordHeader h = { 0 };
  IvshmWriter *w = NULL;
  IvshmWriterStats ws;
  IvshmError err = { 0 };
  uint64_t t0, t1;
  int status = 0, with_reader;
  uint8_t *payload;
  void *base;
  pid_t pid = 0;

  for (i = 1; i < argc; i++) {
    if (!strcmp (argv[i], "--count") && i + 1 < argc)
      n = atol (argv[++i]);
    else if (!strcmp (argv[i], "--size") && i + 1 < argc)
      size = atol (argv[++i]);
    else if (!strcmp (argv[i], "--region") && i + 1 < argc)
      region_size = strtoull (argv[++i], NULL, 0);
    else if (!strcmp (argv[i], "--hot-window") && i + 1 < argc) {
      i++;
      cfg.hot_window = !strcmp (argv[i], "off") ? UINT64_MAX :
          strtoull (argv[i], NULL, 0);
    } else if (!strcmp (argv[i], "--read-payload"))
      read_payload = 1;
    else
      mode = argv[i];
  }
  if (!mode || n <= 0 || size <= 0 || region_size < IVSHM_REGION_MIN ||
      (uint64_t) size > (region_size - IVSHM_RING_OFFSET) / 2 ||
      (strcmp (mode, "alone") && strcmp (mode, "reader"))) {
    fprintf (stderr, "usage: %s [--count N] [--size BYTES] [--region BYTES] "
        "[--hot-window BYTES|off] [--read-payload] alone|reader\n", argv[0]);
    return 2;
  }
  with_reader = !strcmp (mode, "reader");

  base = mmap (NULL, region_size, PROT_READ | PROT_WRITE,
      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  payload = calloc (1, size);
  if (base == MAP_FAILED || !payload) {
    perror ("bench-ring");
    return 1;
  }
  cfg.leaky = !with_reader;
  if (ivshm_writer_new (base, region_size, &cfg, &w, &err) != IVSHM_OK) {
    fprintf (stderr, "bench-ring: writer: %s\n", err.detail);
    return 1;
  }
  if (with_reader) {
    pid = fork ();
    if (pid < 0) {
      perror ("bench-ring: fork");
      return 1;
    }
    if (pid == 0)
      _exit (read_all (base, n));
    while (!ivshm_writer_had_reader (w))
      usleep (100);
  }

  h.type = IVSHM_RECORD_BUFFER;
  h.payload_len = size;
  h.pts = h.dts = h.duration = h.offset = h.offset_end = IVSHM_TIME_NONE;
  t0 = ivshm_now_ns ();
  for (i = 0; i < n; i++) {
    while (ivshm_writer_write (w, &h, payload) == IVSHM_AGAIN)
      ivshm_cpu_relax ();
    if (i % 1024 == 0)
      ivshm_writer_heartbeat (w);
  }
  t1 = ivshm_now_ns ();

  if (with_reader) {
    waitpid (pid, &status, 0);
    if (!WIFEXITED (status) || WEXITSTATUS (status) != 0) {
      fprintf (stderr, "bench-ring: the reader failed\n");
      return 1;
    }
  }
  ivshm_writer_get_stats (w, &ws);
  ivshm_writer_free (w);
  printf ("{\"mode\": \"%s\", \"size\": %ld, \"n\": %ld, "
      "\"ns_per_record\": %.1f, \"early_wraps\": %llu}\n", mode, size, n,
      (double) (t1 - t0) / n, (unsigned long long) ws.early_wraps);
  return 0;
}
