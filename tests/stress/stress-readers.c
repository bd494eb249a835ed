/* gst-ivshmem: one writer thread and four reader threads on one region
 * SPDX-License-Identifier: MIT
 *
 * The multi-reader stress test that also runs under ThreadSanitizer (the
 * 'tsan' test setup). Each reader checks that it gets every buffer, in
 * order, with the right payload. Half of the records it reads are held
 * (zero-copy reads) and handed to another thread, which unholds them in
 * its own time; a third thread runs the producer's tick, bumps every
 * reader's heartbeat and reads statistics
 * meanwhile. Lossless mode: nobody may be evicted, nothing may be lost.
 */
#include <pthread.h>

#include "stress-util.h"

#define N_READERS 4
#define REGION_SIZE (4u * 1024u * 1024u)
#define QUEUE_LEN 128

typedef struct
{
  unsigned index;
  IvshmReader *reader;
  IvshmWaiter waiter;
  uint64_t received;
  uint64_t held;
  uint64_t bad;

  /* holds on their way to the unholder thread; guarded by lock */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  IvshmHold queue[QUEUE_LEN];
  unsigned q_head, q_len;
  int done;
  pthread_t unholder;
} ReaderCtx;

static _Atomic uint64_t total_written = UINT64_MAX;
static atomic_int stop_heartbeats;
static IvshmWriter *writer;
static ReaderCtx readers[N_READERS];

static void *
unholder_main (void *data)
{
  ReaderCtx *c = data;

  pthread_mutex_lock (&c->lock);
  for (;;) {
    while (c->q_len == 0 && !c->done)
      pthread_cond_wait (&c->cond, &c->lock);
    if (c->q_len == 0 && c->done)
      break;
    IvshmHold h = c->queue[c->q_head];
    c->q_head = (c->q_head + 1) % QUEUE_LEN;
    c->q_len--;
    pthread_cond_broadcast (&c->cond);
    pthread_mutex_unlock (&c->lock);
    /* some latency, so that holds pile up and run out of order */
    if ((h.id & 7) == 0)
      ivshm_sleep_ns (200 * 1000);
    ivshm_reader_unhold (c->reader, &h);
    pthread_mutex_lock (&c->lock);
  }
  pthread_mutex_unlock (&c->lock);
  return NULL;
}

static void
queue_hold (ReaderCtx * c, const IvshmHold * h)
{
  pthread_mutex_lock (&c->lock);
  while (c->q_len == QUEUE_LEN)
    pthread_cond_wait (&c->cond, &c->lock);
  c->queue[(c->q_head + c->q_len) % QUEUE_LEN] = *h;
  c->q_len++;
  pthread_cond_broadcast (&c->cond);
  pthread_mutex_unlock (&c->lock);
}

static void *
reader_main (void *data)
{
  ReaderCtx *c = data;
  uint64_t expect = 0;
  IvshmRecord rec;
  IvshmError err;

  for (;;) {
    IvshmStatus st;

    if (expect == atomic_load (&total_written))
      break;
    st = ivshm_reader_next (c->reader, &rec, &err);
    if (st == IVSHM_AGAIN) {
      ivshm_reader_wait (c->reader, &c->waiter, 10 * MS_NS);
      continue;
    }
    CHECK (st == IVSHM_OK, "reader %u: next: %s (%s)", c->index,
        ivshm_status_name (st), err.detail);
    if (rec.h.type != IVSHM_RECORD_BUFFER) {
      CHECK_STATUS (ivshm_reader_release (c->reader), IVSHM_OK);
      continue;
    }
    CHECK (rec.h.offset == expect, "reader %u: got buffer %" PRIu64
        ", expected %" PRIu64, c->index, rec.h.offset, expect);
    if (!stress_record_ok (&rec))
      c->bad++;
    expect++;
    c->received++;
    if ((rec.h.offset + c->index) % 2 == 0) {
      IvshmHold h;
      st = ivshm_reader_hold (c->reader, &h);
      if (st == IVSHM_OK) {
        c->held++;
        queue_hold (c, &h);
        continue;
      }
      CHECK (st == IVSHM_AGAIN, "hold: %s", ivshm_status_name (st));
    }
    CHECK_STATUS (ivshm_reader_release (c->reader), IVSHM_OK);
  }
  pthread_mutex_lock (&c->lock);
  c->done = 1;
  pthread_cond_broadcast (&c->cond);
  pthread_mutex_unlock (&c->lock);
  pthread_join (c->unholder, NULL);
  return NULL;
}

static void *
heartbeat_main (void *data)
{
  while (!atomic_load (&stop_heartbeats)) {
    /* the producer's periodic work (heartbeat and lease reaping) runs in
     * this thread while the writer streams in its own, as in the sink */
    ivshm_writer_tick (writer);
    for (unsigned i = 0; i < N_READERS; i++) {
      IvshmReaderStats st;
      unsigned held;
      ivshm_reader_heartbeat (readers[i].reader);
      ivshm_reader_get_stats (readers[i].reader, &st);
      ivshm_reader_held (readers[i].reader, &held, NULL);
      (void) ivshm_reader_holding_back (readers[i].reader);
      (void) ivshm_reader_lag (readers[i].reader);
      (void) ivshm_reader_position (readers[i].reader);
    }
    ivshm_sleep_ns (20 * MS_NS);
  }
  return NULL;
}

int
main (int argc, char **argv)
{
  double seconds = argc > 1 ? atof (argv[1]) : 3.0;
  IvshmWriterConfig wcfg = { 0 };
  IvshmReaderConfig rcfg = { 0 };
  IvshmError err;
  IvshmWaiter wwait;
  IvshmWriterStats ws;
  pthread_t rt[N_READERS], hb;
  uint64_t seq = 0, rng = 42, t0, deadline;
  void *base;

  stress_watchdog (120);
  base = stress_region_map (REGION_SIZE);
  wcfg.lease_timeout_ns = 30 * S_NS;    /* sanitizers are slow: no evictions */
  CHECK_STATUS (ivshm_writer_new (base, REGION_SIZE, &wcfg, &writer, &err),
      IVSHM_OK);
  rcfg.producer_timeout_ns = 30 * S_NS;
  for (unsigned i = 0; i < N_READERS; i++) {
    ReaderCtx *c = &readers[i];
    c->index = i;
    pthread_mutex_init (&c->lock, NULL);
    pthread_cond_init (&c->cond, NULL);
    ivshm_waiter_init (&c->waiter);
    CHECK_STATUS (ivshm_reader_new (base, REGION_SIZE, &rcfg, &c->reader,
            &err), IVSHM_OK);
  }
  for (unsigned i = 0; i < N_READERS; i++) {
    CHECK (pthread_create (&readers[i].unholder, NULL, unholder_main,
            &readers[i]) == 0, "pthread_create");
    CHECK (pthread_create (&rt[i], NULL, reader_main, &readers[i]) == 0,
        "pthread_create");
  }
  CHECK (pthread_create (&hb, NULL, heartbeat_main, NULL) == 0,
      "pthread_create");

  ivshm_waiter_init (&wwait);
  t0 = ivshm_now_ns ();
  deadline = t0 + (uint64_t) (seconds * 1e9);
  while (ivshm_now_ns () < deadline) {
    uint64_t len = stress_rand (&rng) % 8192;
    if (seq % 64 == 0)
      len = 64 * 1024 + len;    /* now and then a big one */
    CHECK_STATUS (stress_write_buffer (writer, &wwait, seq, len, 20 * S_NS),
        IVSHM_OK);
    seq++;
  }
  atomic_store (&total_written, seq);
  /* wake readers sleeping on the data futex */
  ivshm_writer_heartbeat (writer);
  for (unsigned i = 0; i < N_READERS; i++)
    pthread_join (rt[i], NULL);
  atomic_store (&stop_heartbeats, 1);
  pthread_join (hb, NULL);

  ivshm_writer_get_stats (writer, &ws);
  printf ("%.1f s: %" PRIu64 " buffers written, %" PRIu64
      " bytes; evicted %" PRIu64 ", invalid slots %" PRIu64 "\n",
      stress_secs (ivshm_now_ns () - t0), ws.buffers, ws.bytes,
      ws.readers_evicted, ws.invalid_slots);
  for (unsigned i = 0; i < N_READERS; i++) {
    ReaderCtx *c = &readers[i];
    printf ("reader %u: %" PRIu64 " buffers, %" PRIu64 " held, %" PRIu64
        " bad payloads\n", i, c->received, c->held, c->bad);
    CHECK (c->received == seq, "reader %u lost buffers", i);
    CHECK (c->bad == 0, "reader %u got bad payloads", i);
    CHECK (c->held > 0, "reader %u never held a record", i);
    ivshm_reader_free (c->reader);
  }
  CHECK (ws.readers_evicted == 0 && ws.invalid_slots == 0,
      "no reader may be evicted");
  CHECK (seq > 1000, "only %" PRIu64 " buffers written", seq);
  ivshm_writer_free (writer);
  munmap (base, REGION_SIZE);
  printf ("PASS\n");
  return 0;
}
