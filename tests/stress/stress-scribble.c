/* gst-ivshmem: a hostile peer scribbles over the region while a producer
 * and a reader stream through it
 * SPDX-License-Identifier: MIT
 *
 * Phase 1 (a few seconds): a writer thread and a reader thread stream
 * checked buffers while a third thread writes random bytes at random
 * places of the region: header, slots, sticky area, ring. Neither side may
 * crash or hang (the region has guard pages on both sides, and a watchdog
 * runs); the reader must report errors (CORRUPT, SESSION_CHANGED, ...) and
 * is made anew after each, as ivshmemsrc does.
 * Phase 2: the scribbler stops, a good producer initialises the region
 * again (ivshm_writer_new), and a fresh reader must get every buffer of
 * the new session, in order, with correct payloads.
 */
#include <pthread.h>

#include "stress-util.h"

#define REGION_SIZE (2u * 1024u * 1024u)

static uint8_t *base;
static atomic_int scribbling = 1;
static atomic_int streaming = 1;
static _Atomic uint64_t n_scribbles;
/* *INDENT-OFF* */
static _Atomic (IvshmWriter *) writer;
/* *INDENT-ON* */

/* reader counts, by status */
static _Atomic uint64_t reader_errors[IVSHM_STATUS_COUNT];
static _Atomic uint64_t reader_buffers, reader_bad_payloads;
static _Atomic uint64_t writer_buffers, writer_errors;

static void *
scribbler_main (void *data)
{
  uint64_t rng = 777;

  while (atomic_load (&scribbling)) {
    uint64_t r = stress_rand (&rng);
    uint64_t area = r % 8, off, len = 1 + (r >> 8) % 16;
    volatile uint8_t *p;

    /* favour the header and the slots, where the fields are; the
     * identity line seldom, or the reader would only ever see a bad
     * magic */
    if (area < 3 && (r >> 40) % 64 == 0)
      off = (r >> 16) % IVSHM_CACHE_LINE;
    else if (area < 3)
      off = IVSHM_CACHE_LINE + (r >> 16) % (IVSHM_HEADER_SIZE -
          IVSHM_CACHE_LINE);
    else if (area < 5)
      off = IVSHM_SLOT_OFFSET + (r >> 16) % (IVSHM_MAX_READERS *
          IVSHM_SLOT_SIZE);
    else if (area < 6)
      off = IVSHM_STICKY_OFFSET + (r >> 16) % IVSHM_STICKY_SIZE;
    else
      off = (r >> 16) % REGION_SIZE;
    if (off + len > REGION_SIZE)
      len = REGION_SIZE - off;
    p = base + off;
    for (uint64_t i = 0; i < len; i++)
      p[i] = (uint8_t) stress_rand (&rng);
    atomic_fetch_add (&n_scribbles, 1);
    ivshm_sleep_ns (20 * 1000);
  }
  return NULL;
}

static void *
writer_main (void *data)
{
  IvshmWriter *w = atomic_load (&writer);
  IvshmWaiter waiter;
  uint64_t seq = 0, rng = 99;

  ivshm_waiter_init (&waiter);
  while (atomic_load (&streaming)) {
    IvshmStatus st = stress_write_buffer (w, &waiter, seq,
        stress_rand (&rng) % 20000, 50 * MS_NS);
    ivshm_writer_heartbeat (w);
    if (st == IVSHM_OK) {
      seq++;
      atomic_fetch_add (&writer_buffers, 1);
    } else if (st != IVSHM_AGAIN) {
      atomic_fetch_add (&writer_errors, 1);
    }
  }
  return NULL;
}

static void *
reader_main (void *data)
{
  IvshmReaderConfig rcfg = { 0 };
  IvshmReader *r = NULL;
  IvshmWaiter waiter;

  ivshm_waiter_init (&waiter);
  while (atomic_load (&streaming)) {
    IvshmRecord rec;
    IvshmError err;
    IvshmStatus st;

    if (!r) {
      st = ivshm_reader_new (base, REGION_SIZE, &rcfg, &r, &err);
      if (st != IVSHM_OK) {
        r = NULL;
        atomic_fetch_add (&reader_errors[st], 1);
        ivshm_sleep_ns (MS_NS);
        continue;
      }
    }
    st = ivshm_reader_next (r, &rec, &err);
    if (st == IVSHM_AGAIN) {
      ivshm_reader_heartbeat (r);
      ivshm_reader_wait (r, &waiter, 5 * MS_NS);
      continue;
    }
    if (st == IVSHM_OK) {
      if (rec.h.type == IVSHM_RECORD_BUFFER) {
        /* the payload may have been scribbled on: that is data, not a
         * protocol error, and only counted */
        if (rec.h.payload_len <= 20000 && stress_record_ok (&rec))
          atomic_fetch_add (&reader_buffers, 1);
        else
          atomic_fetch_add (&reader_bad_payloads, 1);
      }
      st = ivshm_reader_release (r);
      if (st == IVSHM_OK)
        continue;
    }
    CHECK (st < IVSHM_STATUS_COUNT, "status %d", (int) st);
    atomic_fetch_add (&reader_errors[st], 1);
    ivshm_reader_free (r);
    r = NULL;
  }
  if (r)
    ivshm_reader_free (r);
  return NULL;
}

/* Phase 2: a good producer and a fresh reader, in this thread. */
static void
recover (void)
{
  IvshmWriterConfig wcfg = { 0 };
  IvshmReaderConfig rcfg = { 0 };
  IvshmWriter *w;
  IvshmReader *r;
  IvshmWaiter waiter;
  IvshmError err;
  IvshmStatus st;
  uint64_t expect = 0, seq = 0, rng = 5, t0 = ivshm_now_ns ();
  const uint64_t n = 3000;

  ivshm_waiter_init (&waiter);
  st = ivshm_writer_new (base, REGION_SIZE, &wcfg, &w, &err);
  CHECK (st == IVSHM_OK, "a good producer cannot initialise the region "
      "again: %s (%s)", ivshm_status_name (st), err.detail);
  printf ("a good producer initialised the region again in %.3f s\n",
      stress_secs (ivshm_now_ns () - t0));
  st = ivshm_reader_new (base, REGION_SIZE, &rcfg, &r, &err);
  CHECK (st == IVSHM_OK, "a fresh reader cannot attach: %s (%s)",
      ivshm_status_name (st), err.detail);
  while (expect < n) {
    IvshmRecord rec;
    if (seq < n) {
      st = stress_write_buffer (w, &waiter, seq, stress_rand (&rng) % 20000, 0);
      if (st == IVSHM_OK)
        seq++;
      else
        CHECK_STATUS (st, IVSHM_AGAIN);
    }
    while ((st = ivshm_reader_next (r, &rec, &err)) == IVSHM_OK) {
      if (rec.h.type == IVSHM_RECORD_BUFFER) {
        CHECK (rec.h.offset == expect, "after recovery: buffer %" PRIu64
            ", expected %" PRIu64, rec.h.offset, expect);
        CHECK (stress_record_ok (&rec), "after recovery: bad payload");
        expect++;
      }
      CHECK_STATUS (ivshm_reader_release (r), IVSHM_OK);
    }
    CHECK (st == IVSHM_AGAIN, "after recovery: %s (%s)",
        ivshm_status_name (st), err.detail);
    ivshm_writer_heartbeat (w);
    ivshm_reader_heartbeat (r);
    CHECK (ivshm_now_ns () - t0 < 20 * S_NS, "recovery stalled at %" PRIu64,
        expect);
  }
  printf ("after recovery: %" PRIu64 " of %" PRIu64 " buffers read, in "
      "order, checked\n", expect, n);
  ivshm_reader_free (r);
  ivshm_writer_free (w);
}

int
main (int argc, char **argv)
{
  double seconds = argc > 1 ? atof (argv[1]) : 4.0;
  IvshmWriterConfig wcfg = { 0 };
  IvshmWriter *w;
  IvshmError err;
  pthread_t ts, tw, tr;
  uint64_t errors = 0;
  long page = sysconf (_SC_PAGESIZE);
  uint8_t *map;

  stress_watchdog (90);
  /* guard pages on both sides: an access outside the region faults */
  map = mmap (NULL, REGION_SIZE + 2 * page, PROT_NONE,
      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK (map != MAP_FAILED, "mmap");
  base = map + page;
  CHECK (mprotect (base, REGION_SIZE, PROT_READ | PROT_WRITE) == 0, "mprotect");

  wcfg.lease_timeout_ns = 500 * MS_NS;
  CHECK_STATUS (ivshm_writer_new (base, REGION_SIZE, &wcfg, &w, &err),
      IVSHM_OK);
  atomic_store (&writer, w);
  pthread_create (&tw, NULL, writer_main, NULL);
  pthread_create (&tr, NULL, reader_main, NULL);
  ivshm_sleep_ns (200 * MS_NS);
  pthread_create (&ts, NULL, scribbler_main, NULL);
  ivshm_sleep_ns ((uint64_t) (seconds * 1e9));
  atomic_store (&scribbling, 0);
  pthread_join (ts, NULL);
  atomic_store (&streaming, 0);
  pthread_join (tw, NULL);
  pthread_join (tr, NULL);

  printf ("%.1f s of scribbling, %" PRIu64 " scribbles; writer: %" PRIu64
      " buffers, %" PRIu64 " errors; reader: %" PRIu64 " good buffers, %"
      PRIu64 " with scribbled payloads\nreader errors:", seconds,
      atomic_load (&n_scribbles), atomic_load (&writer_buffers),
      atomic_load (&writer_errors), atomic_load (&reader_buffers),
      atomic_load (&reader_bad_payloads));
  for (int s = 0; s < IVSHM_STATUS_COUNT; s++) {
    uint64_t n = atomic_load (&reader_errors[s]);
    if (n)
      printf (" %s %" PRIu64, ivshm_status_name ((IvshmStatus) s), n);
    errors += n;
  }
  printf ("\n");
  CHECK (errors > 0, "the reader reported no error while the region was "
      "scribbled on");
  CHECK (atomic_load (&reader_buffers) > 0, "nothing streamed at all");

  /* the hostile phase is over: the old producer goes, a good one comes */
  ivshm_writer_free (w);
  recover ();
  munmap (map, REGION_SIZE + 2 * page);
  printf ("PASS\n");
  return 0;
}
