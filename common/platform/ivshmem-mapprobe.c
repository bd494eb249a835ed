/* gst-ivshmem: how fast a mapping reads
 * SPDX-License-Identifier: MIT
 *
 * See ivshmem-copy.h. In a guest, BAR2 of ivshmem-plain may be mapped
 * uncached or write-combined (the sysfs resource2 files are; on AMD hosts
 * KVM honours the guest's memory types), and then every load goes to
 * memory: reading a frame in place there costs far more than copying it
 * out once with streaming loads. The probe tells, by timing: a read of the
 * first page of the mapping against the same read of a page of this
 * process's own memory, each the best of a few passes, so that a first
 * touch (a page fault, a cache miss, a line the writer just wrote) or a
 * preemption does not count. On a 2-vCPU AMD EPYC VM, 2000 probes of a
 * /dev/shm mapping found its page in 190 to 210 ns, and at most about
 * 1 us with another thread writing every line of that page meanwhile
 * (the producer's counters): well below the 5 us gap that makes a
 * mapping slow, so a cached mapping is not taken for an uncached one. How
 * an uncached BAR reads has not been measured here.
 */
#include "ivshmem-copy.h"
#include "ivshmem-os.h"

#include <stdlib.h>
#include <string.h>

#define PASSES 5

/* Reads len bytes (a multiple of 8) with one 8-byte load each, as a
 * parser or a converter reading in place would; returns the ns taken. */
static uint64_t
timed_read (const void *p, size_t len, uint64_t * sink)
{
  const volatile uint64_t *w = p;
  uint64_t t0, t1, sum = 0;
  size_t i;

  t0 = ivshm_now_ns ();
  for (i = 0; i < len / 8; i++)
    sum += w[i];
  t1 = ivshm_now_ns ();
  *sink += sum;
  return t1 - t0;
}

static uint64_t
best_read (const void *p, size_t len, uint64_t * sink)
{
  uint64_t best = UINT64_MAX;
  int i;

  for (i = 0; i < PASSES; i++) {
    uint64_t t = timed_read (p, len, sink);

    if (t < best)
      best = t;
  }
  return best;
}

void
ivshm_mapprobe_run (const void *map, uint64_t len, IvshmMapProbe * out)
{
  uint64_t ram[IVSHM_MAPPROBE_BYTES / 8];
  const char *force = getenv ("IVSHMEM_FORCE_SLOW_MAPPING");
  uint64_t sink = 0;
  size_t n = len < IVSHM_MAPPROBE_BYTES ? (size_t) len & ~(size_t) 7 :
      IVSHM_MAPPROBE_BYTES;

  memset (out, 0, sizeof *out);
  out->bytes = (uint32_t) n;
  if (n) {
    size_t i;

    for (i = 0; i < n / 8; i++)
      ram[i] = i;
    out->ram_ns = best_read (ram, n, &sink);
    out->map_ns = best_read (map, n, &sink);
  }
  /* a clock too coarse to see the ordinary read (0 ns) still sees an
   * uncached one: compare against at least 1 ns */
  out->slow = n && out->map_ns >= IVSHM_MAPPROBE_MIN_GAP_NS + out->ram_ns &&
      out->map_ns >= IVSHM_MAPPROBE_SLOW_FACTOR * (out->ram_ns ? out->ram_ns :
      1);
  if (force && strcmp (force, "1") == 0) {
    out->slow = true;
    out->forced = true;
  }
  /* keep the loads: the sum goes nowhere, but through a volatile */
  *(volatile uint64_t *) &ram[0] = sink;
}
