/* gst-ivshmem: helpers shared by the stress, kill and soak tests
 * SPDX-License-Identifier: MIT
 *
 * These tests use the core (IvshmWriter / IvshmReader) directly, with plain
 * threads or forked processes, and no GLib: they must run under
 * ThreadSanitizer and AddressSanitizer without GLib's own noise. A test
 * exits 0 when it passed, 1 when it failed, 77 when it cannot run here.
 * Each one arms a watchdog (alarm) so a hang is a failure, never a stall.
 */
#ifndef IVSHMEM_STRESS_UTIL_H
#define IVSHMEM_STRESS_UTIL_H

#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "ivshmem-layout.h"
#include "ivshmem-os.h"
#include "ivshmem-ring.h"

#define MS_NS (1000ull * 1000ull)
#define S_NS (1000ull * MS_NS)

#define CHECK(cond, ...) do {                                            \
  if (!(cond)) {                                                         \
    fprintf (stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);     \
    fprintf (stderr, __VA_ARGS__);                                       \
    fputc ('\n', stderr);                                                \
    fflush (stdout);                                                     \
    _exit (1);                                                           \
  }                                                                      \
} while (0)

#define CHECK_STATUS(expr, expected) do {                                \
  IvshmStatus _st = (expr);                                              \
  CHECK (_st == (expected), "got %s, expected %s",                       \
      ivshm_status_name (_st), ivshm_status_name (expected));            \
} while (0)

static inline void
stress_watchdog (unsigned seconds)
{
  /* SIGALRM's default action ends the process: a hang fails the test */
  alarm (seconds);
}

/* Anonymous MAP_SHARED memory: zeroed, shared with forked children, and
 * page-aligned like a real region. */
static inline void *
stress_region_map (uint64_t size)
{
  void *base = mmap (NULL, size, PROT_READ | PROT_WRITE,
      MAP_SHARED | MAP_ANONYMOUS, -1, 0);

  CHECK (base != MAP_FAILED, "mmap %" PRIu64 " bytes", size);
  return base;
}

/* splitmix64: a small, good, seedable generator */
static inline uint64_t
stress_rand (uint64_t * state)
{
  uint64_t z = (*state += UINT64_C (0x9e3779b97f4a7c15));

  z = (z ^ (z >> 30)) * UINT64_C (0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C (0x94d049bb133111eb);
  return z ^ (z >> 31);
}

/* The payload of buffer `seq`: bytes derived from seq, so a reader can
 * check it without any shared table. */
static inline void
stress_fill (uint8_t * dst, uint64_t len, uint64_t seq)
{
  uint64_t st = seq * UINT64_C (0x2545f4914f6cdd1d) + 1;
  uint64_t i = 0;

  for (; i + 8 <= len; i += 8) {
    uint64_t v = stress_rand (&st);
    memcpy (dst + i, &v, 8);
  }
  if (i < len) {
    uint64_t v = stress_rand (&st);
    memcpy (dst + i, &v, len - i);
  }
}

/* A 64-bit checksum of a payload (FNV-1a over 64-bit words, then the
 * tail bytes), seeded with the length so that truncation shows. */
static inline uint64_t
stress_checksum (const uint8_t * p, uint64_t len)
{
  uint64_t h = UINT64_C (0xcbf29ce484222325) ^ len;
  uint64_t i = 0;

  for (; i + 8 <= len; i += 8) {
    uint64_t v;
    memcpy (&v, p + i, 8);
    h = (h ^ v) * UINT64_C (0x100000001b3);
  }
  for (; i < len; i++)
    h = (h ^ p[i]) * UINT64_C (0x100000001b3);
  return h;
}

/* A BUFFER header carrying its sequence number in `offset` and the
 * payload's checksum in `offset_end` (fields the core passes through). */
static inline IvshmRecordHeader
stress_buffer_info (uint64_t seq, uint64_t len, uint64_t checksum)
{
  IvshmRecordHeader h;

  memset (&h, 0, sizeof h);
  h.type = IVSHM_RECORD_BUFFER;
  h.payload_len = len;
  h.pts = seq * 1000;
  h.dts = IVSHM_TIME_NONE;
  h.duration = IVSHM_TIME_NONE;
  h.offset = seq;
  h.offset_end = checksum;
  return h;
}

/* Writes buffer `seq` of `len` bytes, waiting (with heartbeats) while the
 * ring is full, at most `max_wait_ns`. Returns the final status. */
static inline IvshmStatus
stress_write_buffer (IvshmWriter * w, IvshmWaiter * waiter, uint64_t seq,
    uint64_t len, uint64_t max_wait_ns)
{
  uint64_t deadline = ivshm_now_ns () + max_wait_ns;
  IvshmStatus st;
  void *p;

  for (;;) {
    st = ivshm_writer_reserve (w, len, &p);
    if (st != IVSHM_AGAIN)
      break;
    ivshm_writer_heartbeat (w);
    if (ivshm_now_ns () > deadline)
      return IVSHM_AGAIN;
    ivshm_writer_wait (w, waiter, 10 * MS_NS);
  }
  if (st != IVSHM_OK)
    return st;
  stress_fill (p, len, seq);
  {
    IvshmRecordHeader h = stress_buffer_info (seq, len,
        stress_checksum (p, len));
    return ivshm_writer_commit (w, &h);
  }
}

/* Checks a record a reader got: the payload matches the checksum in the
 * header, and the checksum is the one of buffer `offset`'s pattern. */
static inline int
stress_record_ok (const IvshmRecord * rec)
{
  uint64_t len = rec->h.payload_len;
  uint8_t *copy;
  int ok;

  if (stress_checksum (rec->payload, len) != rec->h.offset_end)
    return 0;
  copy = malloc (len ? len : 1);
  CHECK (copy != NULL, "malloc");
  stress_fill (copy, len, rec->h.offset);
  ok = stress_checksum (copy, len) == rec->h.offset_end;
  free (copy);
  return ok;
}

static inline double
stress_secs (uint64_t ns)
{
  return (double) ns / 1e9;
}

#endif /* IVSHMEM_STRESS_UTIL_H */
