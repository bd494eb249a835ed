/* gst-ivshmem: copies at memory speed, and how fast a mapping reads
 * SPDX-License-Identifier: MIT
 *
 * Copies into and out of the ring (ivshmem-copy.c) and the probe that
 * tells a mapping that reads at memory speed from one that does not, such
 * as a guest's BAR2 mapped uncached or write-combined (ivshmem-mapprobe.c).
 * Plain C over libc, no GStreamer.
 */
#ifndef IVSHMEM_COPY_H
#define IVSHMEM_COPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* From the size of the L2 cache on ivshm_copy() writes with non-temporal
 * stores; this size where the system does not say what its L2 is. Below
 * it, and on CPUs other than x86-64, it is memcpy(). The destination of a
 * copy this large would not stay in the cache of this core anyway, and
 * not reading it into the cache first saves the read half of the memory
 * traffic. Measured with tests/bench/run.py on a 2-vCPU AMD EPYC (1 MiB
 * L2): 1 MiB and 8,294,400-byte buffers went faster through the ring with
 * it than with memcpy() (README, "Zero copy"). */
#define IVSHM_COPY_STREAM_MIN_DEFAULT ((size_t) 1 << 20)

/* Copies len bytes, as memcpy(), for a destination this process does not
 * read again soon: the ring (the reader is another process), or a buffer
 * copied out of it. From ivshm_copy_stream_min() bytes on, with
 * non-temporal stores. When it returns every store is globally visible
 * (an sfence after the non-temporal ones), so a release store that
 * follows publishes the copy, as after memcpy(). */
void ivshm_copy (void *dst, const void *src, size_t len);

/* The threshold in use: the L2 size (from 256 KiB to 8 MiB) where the
 * system says, else IVSHM_COPY_STREAM_MIN_DEFAULT; or the environment
 * variable IVSHMEM_COPY_STREAM_MIN (bytes; 0 = never stream). Read once. */
size_t ivshm_copy_stream_min (void);

/* Copies len bytes out of memory that is not cached for reading (a BAR
 * mapped uncached or write-combined): with streaming loads (MOVNTDQA) on
 * x86-64 CPUs that have SSE4.1, which read a whole 64-byte line per
 * access instead of one uncached access per load; memcpy() elsewhere. */
void ivshm_copy_from_uncached (void *dst, const void *src, size_t len);

/* Does ivshm_copy_from_uncached() use streaming loads on this CPU? */
bool ivshm_copy_has_stream_loads (void);

/* ---- the mapping probe (ivshmem-mapprobe.c) --------------------------- */

/* How fast a mapping reads, against ordinary memory of this process. */
typedef struct
{
  uint64_t map_ns;              /* the best of a few reads of `bytes` of the mapping */
  uint64_t ram_ns;              /* the same read of ordinary memory */
  uint32_t bytes;               /* bytes read in each */
  bool slow;                    /* the mapping reads much slower than memory */
  bool forced;                  /* slow because IVSHMEM_FORCE_SLOW_MAPPING said so */
} IvshmMapProbe;

/* A mapping that reads this many times slower than ordinary memory (and
 * slower by at least IVSHM_MAPPROBE_MIN_GAP_NS) is slow: cached memory,
 * even shared with a writer on another core, reads within a small factor
 * of it; uncached memory is one to two orders of magnitude slower. */
#define IVSHM_MAPPROBE_SLOW_FACTOR 8
#define IVSHM_MAPPROBE_MIN_GAP_NS 5000
/* What the probe reads: the first page of the mapping. */
#define IVSHM_MAPPROBE_BYTES 4096

/* Times a read of the start of a mapping of len bytes (at most
 * IVSHM_MAPPROBE_BYTES of it) against a read of ordinary memory, each the
 * best of a few passes, and says whether the mapping is slow. Only reads.
 * The environment variable IVSHMEM_FORCE_SLOW_MAPPING=1 makes it report a
 * slow mapping whatever it measured (tests; a host where the probe is
 * known to be wrong). */
void ivshm_mapprobe_run (const void *map, uint64_t len, IvshmMapProbe * out);

#ifdef __cplusplus
}
#endif

#endif /* IVSHMEM_COPY_H */
