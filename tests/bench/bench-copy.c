/* bench-copy: memcpy() against ivshm_copy() of the same sizes, same run.
 *
 * Copyright (c) 2025 The gst-ivshmem authors
 * SPDX-License-Identifier: MIT
 *
 * For each size, the two copies the transport makes, each timed with
 * memcpy() and with non-temporal stores (ivshm_copy() with streaming on):
 *
 *   in    a fixed source (upstream's buffer, reused) into a destination
 *         that walks through a ring of about eight buffers (at least
 *         1 MiB), as ivshmemsink copies into the ring
 *   out   a source that walks through such a ring into a fixed
 *         destination, as ivshmemsrc copies a record out
 *
 * Each figure is the best of --reps timed runs of about --ms ms, the
 * variants interleaved so that a noisy neighbour hurts them alike. One
 * JSON object per size on stdout:
 *   {"size", "in_memcpy_gbps", "in_stream_gbps", "out_memcpy_gbps",
 *    "out_stream_gbps", "stream_min"}
 * stream_min is the threshold ivshm_copy() uses (IVSHMEM_COPY_STREAM_MIN
 * or the default).
 *
 *   bench-copy [--ms MS] [--reps N] SIZE...
 */

#include "ivshmem-copy.h"
#include "ivshmem-os.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*CopyFunc) (void *, const void *, size_t);

static void
copy_memcpy (void *d, const void *s, size_t n)
{
  memcpy (d, s, n);
}

/* ivshm_copy() with streaming from the first byte: the environment
 * variable is read once, so the bench calls the streaming path through a
 * threshold of 1 set before the first copy */
static void
copy_stream (void *d, const void *s, size_t n)
{
  ivshm_copy (d, s, n);
}

/* GB/s of copying size bytes, `out` selects the shape */
static double
run (CopyFunc f, unsigned char *fixed, unsigned char *ring, size_t slots,
    size_t size, int out, long ms)
{
  uint64_t t0 = ivshm_now_ns (), t, until = t0 + (uint64_t) ms *1000000;
  size_t i = 0;
  long n = 0;

  do {
    unsigned char *r = ring + (i++ % slots) * size;

    if (out)
      f (fixed, r, size);
    else
      f (r, fixed, size);
    n++;
    t = ivshm_now_ns ();
  } while (t < until);
  return (double) n *size / (double) (t - t0);
}

int
main (int argc, char **argv)
{
  long ms = 200, reps = 3;
  size_t stream_min;
  int i;

  for (i = 1; i < argc && argv[i][0] == '-'; i += 2) {
    if (i + 1 >= argc)
      goto usage;
    if (strcmp (argv[i], "--ms") == 0)
      ms = atol (argv[i + 1]);
    else if (strcmp (argv[i], "--reps") == 0)
      reps = atol (argv[i + 1]);
    else
      goto usage;
  }
  if (i >= argc || ms <= 0 || reps <= 0)
    goto usage;
  /* what ivshm_copy() would use, then streaming for every size here */
  stream_min = ivshm_copy_stream_min ();
  setenv ("IVSHMEM_COPY_STREAM_MIN", "1", 1);

  for (; i < argc; i++) {
    size_t size = strtoull (argv[i], NULL, 0), slots, ring_bytes;
    double best[4] = { 0 };
    unsigned char *fixed, *ring;
    long r;
    int k;

    if (size == 0)
      goto usage;
    ring_bytes = 8 * size < (1u << 20) ? (1u << 20) : 8 * size;
    slots = ring_bytes / size;
    fixed = aligned_alloc (64, (size + 63) / 64 * 64);
    ring = aligned_alloc (64, (slots * size + 63) / 64 * 64);
    if (!fixed || !ring) {
      fprintf (stderr, "bench-copy: out of memory for %zu bytes\n", size);
      return 1;
    }
    memset (fixed, 1, size);
    memset (ring, 2, slots * size);
    for (r = 0; r < reps; r++) {
      for (k = 0; k < 4; k++) {
        double g = run (k & 1 ? copy_stream : copy_memcpy, fixed, ring,
            slots, size, k >> 1, ms);

        if (g > best[k])
          best[k] = g;
      }
    }
    printf ("{\"size\": %zu, \"in_memcpy_gbps\": %.3f, "
        "\"in_stream_gbps\": %.3f, \"out_memcpy_gbps\": %.3f, "
        "\"out_stream_gbps\": %.3f, \"stream_min\": %zu}\n", size, best[0],
        best[1], best[2], best[3], stream_min);
    fflush (stdout);
    free (fixed);
    free (ring);
  }
  return 0;

usage:
  fprintf (stderr, "usage: bench-copy [--ms MS] [--reps N] SIZE...\n");
  return 2;
}
