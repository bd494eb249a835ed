/* gst-ivshmem: soak test, over a million buffers through the core
 * SPDX-License-Identifier: MIT
 *
 * One writer thread writes N buffers (1,100,000 by default) of random
 * sizes, 0 to 64 KiB and mostly small, into a 32 MiB region, losslessly.
 * Each buffer carries its sequence number and the checksum of its payload.
 * Three readers:
 *  - reader 0 stays from start to end and must get every buffer;
 *  - readers 1 and 2 detach and attach again at random points. A reader
 *    that attaches again starts mid-stream, so what it gets from there on
 *    must be a gap-free, duplicate-free, in-order run of sequence numbers.
 * Every payload is checked against its checksum. Prints buffers, bytes,
 * lost, reordered and duplicated; all but the first two must be 0.
 *
 *   test-soak [buffers]
 */
#include <pthread.h>

#include "stress-util.h"

#define REGION_SIZE (32u * 1024u * 1024u)
#define N_READERS 3

typedef struct
{
  unsigned index;
  uint64_t rng;
  uint64_t buffers, bytes, bad, lost, reordered, duplicated, attaches;
  uint64_t first_seq;
} ReaderCtx;

static void *base;
static uint64_t n_buffers = 1100000;
static _Atomic uint64_t total_written = UINT64_MAX;
static IvshmReaderConfig rcfg;
static atomic_int reader0_attached;

static uint64_t
random_size (uint64_t * rng)
{
  uint64_t r = stress_rand (rng), pick = r % 100;

  r >>= 8;
  if (pick < 70)
    return r % 1025;            /* 70%: 0 .. 1 KiB */
  if (pick < 95)
    return 1024 + r % (15 * 1024 + 1);  /* 25%: 1 .. 16 KiB */
  return 16 * 1024 + r % (48 * 1024 + 1);       /* 5%: 16 .. 64 KiB */
}

static IvshmReader *
attach (ReaderCtx * c)
{
  IvshmReader *r = NULL;
  IvshmError err;
  IvshmStatus st;

  for (unsigned tries = 0;; tries++) {
    st = ivshm_reader_new (base, REGION_SIZE, &rcfg, &r, &err);
    if (st == IVSHM_OK)
      break;
    CHECK (st == IVSHM_AGAIN && tries < 100000, "reader %u: attach: %s (%s)",
        c->index, ivshm_status_name (st), err.detail);
  }
  c->attaches++;
  if (c->index == 0)
    atomic_store (&reader0_attached, 1);
  return r;
}

static void *
reader_main (void *data)
{
  ReaderCtx *c = data;
  IvshmReader *r = attach (c);
  IvshmWaiter waiter;
  uint64_t expect = UINT64_MAX, leave_after = 0, run = 0;

  ivshm_waiter_init (&waiter);
  if (c->index != 0)
    leave_after = 1 + stress_rand (&c->rng) % 200000;
  for (;;) {
    IvshmRecord rec;
    IvshmError err;
    IvshmStatus st;
    uint64_t total = atomic_load (&total_written);

    if (expect != UINT64_MAX && expect == total)
      break;
    st = ivshm_reader_next (r, &rec, &err);
    if (st == IVSHM_AGAIN) {
      ivshm_reader_heartbeat (r);
      if (total != UINT64_MAX && expect == UINT64_MAX)
        break;                  /* attached after the last buffer */
      ivshm_reader_wait (r, &waiter, 10 * MS_NS);
      continue;
    }
    CHECK (st == IVSHM_OK, "reader %u: next: %s (%s)", c->index,
        ivshm_status_name (st), err.detail);
    if (rec.h.type == IVSHM_RECORD_BUFFER) {
      uint64_t seq = rec.h.offset;
      if (stress_checksum (rec.payload, rec.h.payload_len) != rec.h.offset_end)
        c->bad++;
      if (expect == UINT64_MAX) {
        if (c->first_seq == UINT64_MAX)
          c->first_seq = seq;
      } else if (seq > expect) {
        c->lost += seq - expect;
      } else if (seq < expect) {
        if (seq == expect - 1)
          c->duplicated++;
        else
          c->reordered++;
      }
      expect = seq + 1;
      c->buffers++;
      c->bytes += rec.h.payload_len;
    }
    CHECK_STATUS (ivshm_reader_release (r), IVSHM_OK);
    if ((++run & 255) == 0)
      ivshm_reader_heartbeat (r);
    if (leave_after && run == leave_after) {
      /* detach, maybe pause, attach again: mid-stream */
      ivshm_reader_free (r);
      if (stress_rand (&c->rng) & 1)
        ivshm_sleep_ns ((stress_rand (&c->rng) % 20) * MS_NS);
      r = attach (c);
      expect = UINT64_MAX;
      run = 0;
      leave_after = 1 + stress_rand (&c->rng) % 200000;
    }
  }
  ivshm_reader_free (r);
  return NULL;
}

int
main (int argc, char **argv)
{
  IvshmWriterConfig wcfg = { 0 };
  IvshmWriter *w;
  IvshmWaiter waiter;
  IvshmWriterStats ws;
  IvshmError err;
  ReaderCtx ctx[N_READERS];
  pthread_t th[N_READERS];
  uint64_t rng = 12345, bytes = 0, t0;
  IvshmRecordHeader caps = { 0 };
  const char caps_str[] = "application/x-soak";
  int failed = 0;

  if (argc > 1)
    n_buffers = strtoull (argv[1], NULL, 10);
  stress_watchdog (280);
  base = stress_region_map (REGION_SIZE);
  /* a loaded machine must not look like dead peers */
  wcfg.lease_timeout_ns = 20 * S_NS;
  rcfg.producer_timeout_ns = 20 * S_NS;
  CHECK_STATUS (ivshm_writer_new (base, REGION_SIZE, &wcfg, &w, &err),
      IVSHM_OK);
  caps.type = IVSHM_RECORD_CAPS;
  caps.payload_len = sizeof caps_str;
  CHECK_STATUS (ivshm_writer_write (w, &caps, caps_str), IVSHM_OK);

  for (unsigned i = 0; i < N_READERS; i++) {
    memset (&ctx[i], 0, sizeof ctx[i]);
    ctx[i].index = i;
    ctx[i].rng = 1000 + i;
    ctx[i].first_seq = UINT64_MAX;
  }
  /* reader 0 attaches before anything is written: it must get it all */
  {
    pthread_attr_t attr;
    pthread_attr_init (&attr);
    for (unsigned i = 0; i < N_READERS; i++)
      CHECK (pthread_create (&th[i], &attr, reader_main, &ctx[i]) == 0,
          "pthread_create");
    pthread_attr_destroy (&attr);
  }
  /* reader 0 itself, not just any reader: the others may attach first,
   * and then reader 0 would join mid-stream */
  while (!atomic_load (&reader0_attached))
    ivshm_sleep_ns (MS_NS);

  ivshm_waiter_init (&waiter);
  t0 = ivshm_now_ns ();
  for (uint64_t seq = 0; seq < n_buffers; seq++) {
    uint64_t len = random_size (&rng);
    CHECK_STATUS (stress_write_buffer (w, &waiter, seq, len, 30 * S_NS),
        IVSHM_OK);
    bytes += len;
    if ((seq & 1023) == 0)
      ivshm_writer_heartbeat (w);
  }
  atomic_store (&total_written, n_buffers);
  for (unsigned i = 0; i < N_READERS; i++)
    pthread_join (th[i], NULL);
  ivshm_writer_get_stats (w, &ws);

  printf ("soak: %" PRIu64 " buffers, %" PRIu64 " bytes written in %.1f s; "
      "the writer waited %" PRIu64 " times, evicted %" PRIu64 "\n",
      n_buffers, bytes, stress_secs (ivshm_now_ns () - t0), ws.full_waits,
      ws.readers_evicted);
  for (unsigned i = 0; i < N_READERS; i++) {
    ReaderCtx *c = &ctx[i];
    printf ("reader %u: attached %" PRIu64 " times, first buffer %" PRIu64
        "; buffers %" PRIu64 ", bytes %" PRIu64 ", lost %" PRIu64
        ", reordered %" PRIu64 ", duplicated %" PRIu64 ", bad checksums %"
        PRIu64 "\n", i, c->attaches, c->first_seq, c->buffers, c->bytes,
        c->lost, c->reordered, c->duplicated, c->bad);
    if (c->lost || c->reordered || c->duplicated || c->bad)
      failed = 1;
  }
  CHECK (!failed, "a reader lost, reordered, duplicated or got bad data");
  CHECK (ctx[0].first_seq == 0 && ctx[0].buffers == n_buffers &&
      ctx[0].bytes == bytes, "reader 0 did not get every buffer");
  CHECK (ctx[1].attaches > 1 && ctx[2].attaches > 1,
      "readers 1 and 2 never came back");
  CHECK (ws.buffers == n_buffers && ws.readers_evicted == 0,
      "writer: %" PRIu64 " buffers, %" PRIu64 " evicted", ws.buffers,
      ws.readers_evicted);
  printf ("buffers %" PRIu64 ", bytes %" PRIu64 ", lost 0, reordered 0, "
      "duplicated 0\nPASS\n", n_buffers, bytes);
  ivshm_writer_free (w);
  munmap (base, REGION_SIZE);
  return 0;
}
