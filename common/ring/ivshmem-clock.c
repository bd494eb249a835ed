/* gst-ivshmem: the producer's clock, carried through the region
 * SPDX-License-Identifier: MIT
 *
 * The clock area (IvshmHeader line 4) is a sequence lock with one writer
 * (whichever producer thread gets clock_busy) and any number of readers.
 * See ivshmem-clock.h for what the values mean and PROTOCOL.md, section
 * 6a, for the rules.
 */
#include "ivshmem-clock.h"
#include "ivshmem-ring-private.h"

#include <stdlib.h>
#include <string.h>

/* a producer reads its two clocks within microseconds; a window this wide
 * is garbage */
#define MAX_WINDOW_NS (1000ull * 1000 * 1000)
/* the rate of a CLOCK_MONOTONIC against another: TCG guests may be far off,
 * but not by more than this */
#define MAX_DRIFT 0.2
/* fit a rate only over this many seconds of observations */
#define MIN_FIT_SPAN_NS (3ull * IVSHM_CLOCK_SYNC_BUCKET_NS)

/* ---- the producer ------------------------------------------------------ */

void
ivshm_writer_publish_clock (IvshmWriter * w, uint64_t epoch,
    uint64_t clock_ns, uint64_t mono_ns, uint64_t window_ns)
{
  IvshmHeader *hdr = w->hdr;
  uint64_t seq, pub;

  if (atomic_flag_test_and_set_explicit (&w->clock_busy, ACQ))
    return;                     /* another thread publishes right now */
  if (!ivshm_writer_owns (w))
    goto out;
  seq = w->clock_seq;
  atomic_store_explicit (&hdr->clock_seq, seq + 1, RLX);
  atomic_thread_fence (REL);
  atomic_store_explicit (&hdr->clock_epoch, epoch, RLX);
  atomic_store_explicit (&hdr->clock_kernel_id, w->kernel_id, RLX);
  atomic_store_explicit (&hdr->clock_time, clock_ns, RLX);
  atomic_store_explicit (&hdr->clock_mono, mono_ns, RLX);
  atomic_store_explicit (&hdr->clock_window, window_ns, RLX);
  atomic_store_explicit (&hdr->clock_seq, seq + 2, REL);
  w->clock_seq = seq + 2;
  /* Visible to every reader before we read the clock again (a full fence
   * drains the store buffer): a reader that did not see it looked before
   * `pub`. */
  atomic_thread_fence (SEQ);
  pub = ivshm_now_ns ();
  atomic_store_explicit (&hdr->clock_pub_mono, pub, RLX);
  atomic_store_explicit (&hdr->clock_pub_seq, seq + 2, REL);
out:
  atomic_flag_clear_explicit (&w->clock_busy, REL);
}

/* ---- a reader ---------------------------------------------------------- */

IvshmStatus
ivshm_reader_clock_sample (IvshmReader * r, IvshmClockSample * s)
{
  IvshmHeader *hdr = r->hdr;
  uint64_t seq2;
  int tries;

  for (tries = 0; tries < 4; tries++) {
    s->seq = atomic_load_explicit (&hdr->clock_seq, ACQ);
    if (s->seq & 1)
      continue;
    s->epoch = atomic_load_explicit (&hdr->clock_epoch, RLX);
    s->kernel_id = atomic_load_explicit (&hdr->clock_kernel_id, RLX);
    s->clock_ns = atomic_load_explicit (&hdr->clock_time, RLX);
    s->mono_ns = atomic_load_explicit (&hdr->clock_mono, RLX);
    s->window_ns = atomic_load_explicit (&hdr->clock_window, RLX);
    atomic_thread_fence (ACQ);
    seq2 = atomic_load_explicit (&hdr->clock_seq, RLX);
    if (seq2 != s->seq)
      continue;
    if (s->epoch == 0)
      return IVSHM_AGAIN;
    if (s->window_ns > MAX_WINDOW_NS)
      return IVSHM_ERR_CORRUPT;
    return IVSHM_OK;
  }
  return IVSHM_AGAIN;
}

bool
ivshm_reader_clock_published (IvshmReader * r, uint64_t seq,
    uint64_t * pub_mono_ns)
{
  uint64_t pseq = atomic_load_explicit (&r->hdr->clock_pub_seq, ACQ);

  /* a later sample's publication time is later: still a valid bound */
  if (pseq < seq || pseq - seq > (UINT64_C (1) << 62))
    return false;
  *pub_mono_ns = atomic_load_explicit (&r->hdr->clock_pub_mono, RLX);
  return true;
}

uint64_t
ivshm_clock_sample_to_mono (const IvshmClockSample * s, uint64_t clock_ns)
{
  int64_t d = (int64_t) (clock_ns - s->clock_ns);

  if (d < 0 && (uint64_t) (-d) > s->mono_ns)
    return 0;
  return s->mono_ns + (uint64_t) d;
}

void
ivshm_writer_set_live_since (IvshmWriter * w, uint64_t mono_ns)
{
  if (ivshm_writer_owns (w))
    atomic_store_explicit (&w->hdr->live_since_mono, mono_ns, REL);
}

bool
ivshm_reader_session_is_old (IvshmReader * r, uint64_t grace_ns)
{
  uint64_t since = atomic_load_explicit (&r->hdr->live_since_mono, ACQ);
  IvshmClockSample s;
  IvshmStatus st;

  if (since == 0)
    return false;               /* not live, or a 2.0 producer */
  st = ivshm_reader_clock_sample (r, &s);
  if (st != IVSHM_OK)
    return true;                /* live, of unknown age: do not replay it */
  return s.mono_ns > since && s.mono_ns - since >= grace_ns;
}

void
ivshm_writer_forget_first_reader (IvshmWriter * w)
{
  if (!w->had_reader && ivshm_writer_owns (w)) {
    w->had_reader = true;
    ivshm_writer_set_flag (w, IVSHM_PRODUCER_FLAG_HAD_READER);
  }
}

bool
ivshm_writer_note_readers (IvshmWriter * w)
{
  if (!w->had_reader && ivshm_writer_owns (w) && ivshm_writer_reader_came (w)) {
    w->had_reader = true;
    ivshm_writer_set_flag (w, IVSHM_PRODUCER_FLAG_HAD_READER);
  }
  return w->had_reader;
}

/* ---- the filter -------------------------------------------------------- */

#ifndef MAX
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#endif

/* no libm in the core */
static int64_t
round_i64 (double x)
{
  return (int64_t) (x >= 0 ? x + 0.5 : x - 0.5);
}

void
ivshm_clock_sync_init (IvshmClockSync * cs)
{
  memset (cs, 0, sizeof *cs);
}

static int64_t
bound_mid (const IvshmClockBound * b)
{
  return b->lo + (b->hi - b->lo) / 2;
}

static uint64_t
bound_half (const IvshmClockBound * b)
{
  return (uint64_t) (b->hi - b->lo) / 2;
}

/* Recomputes the estimate from the best bound of each bucket: a weighted
 * line through their middles over the last buckets (the rate), pulled
 * inside the newest bound (the offset is never outside what the newest
 * observation proves). */
/* Recomputes the estimate: a line through the middles of the best bound
 * of each bucket (weighted by their narrowness) gives the rate once the
 * history is long enough. The offset is the line's value at the
 * narrowest recent bound (this second's or the last), pulled inside it:
 * that bound is what is known for sure, and a narrow one a moment old says
 * more than a wide one now (a reader whose polls were held up by its own
 * sink). The error is the distance to that bound's farther end, plus what
 * an unknown rate could add since (0.2 % before the rate is fitted, 20 ppm
 * after). */
static void
clock_sync_estimate (IvshmClockSync * cs, const IvshmClockBound * newest)
{
  double sw = 0, st = 0, sm = 0, stt = 0, stm = 0, b = 0, a, slack;
  uint64_t t0 = newest->t, oldest = newest->t;
  const IvshmClockBound *best = newest;
  int64_t at_best;
  unsigned i, n = 0;
  bool fitted = false;

  for (i = 0; i < IVSHM_CLOCK_SYNC_BUCKETS; i++) {
    const IvshmClockBound *k = &cs->bucket[i];

    if (k->used && k->t <= t0 && t0 - k->t < 2 * IVSHM_CLOCK_SYNC_BUCKET_NS
        && bound_half (k) < bound_half (best))
      best = k;
  }
  at_best = bound_mid (best);
  for (i = 0; i < IVSHM_CLOCK_SYNC_BUCKETS; i++) {
    const IvshmClockBound *k = &cs->bucket[i];
    double w, t, m;

    if (!k->used || k->t > t0 ||
        t0 - k->t >= IVSHM_CLOCK_SYNC_BUCKETS * IVSHM_CLOCK_SYNC_BUCKET_NS)
      continue;
    if (k->t < oldest)
      oldest = k->t;
    w = (double) (bound_half (k) + 1000);
    w = 1.0 / (w * w);
    t = (double) (int64_t) (k->t - best->t);
    m = (double) (bound_mid (k) - bound_mid (best));
    sw += w;
    st += w * t;
    sm += w * m;
    stt += w * t * t;
    stm += w * t * m;
    n++;
  }
  if (n >= 3 && t0 - oldest >= MIN_FIT_SPAN_NS) {
    double den = sw * stt - st * st;

    if (den > 0)
      b = (sw * stm - st * sm) / den;
    if (b > MAX_DRIFT)
      b = MAX_DRIFT;
    if (b < -MAX_DRIFT)
      b = -MAX_DRIFT;
    a = (sm - b * st) / sw;     /* the line at best->t */
    at_best = bound_mid (best) + round_i64 (a);
    if (at_best < best->lo)
      at_best = best->lo;
    if (at_best > best->hi)
      at_best = best->hi;
    fitted = true;
  }
  slack = (double) (t0 - best->t) * (fitted ? 2e-5 : 2e-3);
  cs->error_ns = (uint64_t) MAX (at_best - best->lo, best->hi - at_best)
      + (uint64_t) slack;
  /* theta(t) = at_best + b (t - best->t), t the reader's time; in the
   * producer's terms (t = p + theta) theta = at_best + b / (1 - b)
   * (p - ref), with the reference ref = best->t - at_best */
  cs->offset_ns = at_best;
  cs->drift = b / (1.0 - b);
  cs->ref_ns = best->t - (uint64_t) at_best;
  cs->at_ns = best->t;
  cs->valid = true;
}

void
ivshm_clock_sync_observe (IvshmClockSync * cs, uint64_t t_prev,
    uint64_t t_seen, uint64_t p_mono, uint64_t pub_mono)
{
  IvshmClockBound nb, *slot;
  uint64_t index;

  if (cs->exact)
    return;
  nb.t = t_seen;
  nb.hi = (int64_t) (t_seen - p_mono);
  nb.lo = (int64_t) (t_prev - pub_mono);
  nb.used = true;
  if (nb.lo > nb.hi || t_seen < t_prev || pub_mono < p_mono) {
    cs->rejected++;
    return;
  }
  cs->observations++;
  index = t_seen / IVSHM_CLOCK_SYNC_BUCKET_NS;
  slot = &cs->bucket[index % IVSHM_CLOCK_SYNC_BUCKETS];
  if (!slot->used || slot->t / IVSHM_CLOCK_SYNC_BUCKET_NS != index ||
      bound_half (&nb) <= bound_half (slot))
    *slot = nb;
  clock_sync_estimate (cs, &nb);
}

void
ivshm_clock_sync_look (IvshmClockSync * cs, const IvshmClockSample * s,
    bool same_kernel, uint64_t t_before, uint64_t t_after, bool pub_ok,
    uint64_t pub_mono_ns)
{
  if (same_kernel) {
    cs->exact = cs->valid = true;
    cs->offset_ns = 0;
    cs->drift = 0;
    cs->error_ns = 0;
    cs->ref_ns = 0;
    return;
  }
  if (cs->exact)                /* the producer changed kernels: start over */
    ivshm_clock_sync_init (cs);
  if (cs->pending_seq && pub_ok) {
    ivshm_clock_sync_observe (cs, cs->pending_prev, cs->pending_t,
        cs->pending_mono, pub_mono_ns);
    cs->pending_seq = 0;
  }
  if (cs->have_look && s->seq != cs->last_seq && s->epoch != 0) {
    cs->pending_seq = s->seq;
    cs->pending_t = t_after;
    cs->pending_prev = cs->last_look_ns;
    cs->pending_mono = s->mono_ns + s->window_ns;
  }
  /* this look read after t_before and did not see the next sample */
  cs->last_seq = s->seq;
  cs->last_look_ns = t_before;
  cs->have_look = true;
}

bool
ivshm_clock_sync_to_reader (const IvshmClockSync * cs, uint64_t p_mono,
    uint64_t * r_mono)
{
  double d;

  if (!cs->valid)
    return false;
  d = (double) (int64_t) (p_mono - cs->ref_ns) * cs->drift;
  *r_mono = p_mono + (uint64_t) (cs->offset_ns + (int64_t) round_i64 (d));
  return true;
}

bool
ivshm_clock_sync_to_producer (const IvshmClockSync * cs, uint64_t r_mono,
    uint64_t * p_mono)
{
  double d;

  if (!cs->valid)
    return false;
  /* r = p + o + (p - ref) b  =>  p = (r - o + ref b) / (1 + b) */
  d = (double) (int64_t) (r_mono - cs->offset_ns - cs->ref_ns) /
      (1.0 + cs->drift);
  *p_mono = cs->ref_ns + (uint64_t) (int64_t) round_i64 (d);
  return true;
}
