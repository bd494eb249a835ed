/* gst-ivshmem: ivshmemsrc's time mapping (gst/gstivshmemtime.c), alone
 * SPDX-License-Identifier: MIT
 *
 * No pipeline, no clock: the running time "now" is a variable of the test.
 */
#include <gst/check/gstcheck.h>

#include "gstivshmemtime.h"

#include <gst/check/gsttestclock.h>

static GstClockTime fake_now;

static GstClockTime
now_func (gpointer data)
{
  return fake_now;
}

static void
time_new (GstIvshmemTime * t, guint64 seg_start, guint64 seg_base)
{
  GstSegment seg;

  gst_ivshmem_time_init (t, now_func, NULL, NULL);
  gst_segment_init (&seg, GST_FORMAT_TIME);
  seg.start = seg.time = seg_start;
  seg.base = seg_base;
  gst_ivshmem_time_set_segment (t, &seg);
}

static IvshmRecordHeader
header (guint64 pts, guint64 dts, guint64 dur)
{
  IvshmRecordHeader h;

  memset (&h, 0, sizeof h);
  h.type = IVSHM_RECORD_BUFFER;
  h.pts = pts;
  h.dts = dts;
  h.duration = dur;
  return h;
}

/* The first buffer is stamped with the moment it arrives; later ones keep
 * the producer's spacing, whatever the clock does meanwhile. */
GST_START_TEST (test_anchor_on_first_buffer)
{
  GstIvshmemTime t;
  IvshmRecordHeader h;
  GstClockTime pts, dts;

  /* the producer's segment starts at 10 s, with 5 s of running time
   * before it: its buffer at 12 s is at running time 7 s */
  time_new (&t, 10 * GST_SECOND, 5 * GST_SECOND);
  fake_now = 100 * GST_SECOND;
  h = header (12 * GST_SECOND, IVSHM_TIME_NONE, GST_SECOND);
  gst_ivshmem_time_stamp_buffer (&t, TRUE, &h, &pts, &dts);
  fail_unless_equals_uint64 (pts, 100 * GST_SECOND);
  fail_unless_equals_uint64 (dts, GST_CLOCK_TIME_NONE);

  fake_now = 500 * GST_SECOND;  /* not looked at again */
  h = header (12 * GST_SECOND + 40 * GST_MSECOND, 12 * GST_SECOND, GST_SECOND);
  gst_ivshmem_time_stamp_buffer (&t, TRUE, &h, &pts, &dts);
  fail_unless_equals_uint64 (pts, 100 * GST_SECOND + 40 * GST_MSECOND);
  fail_unless_equals_uint64 (dts, 100 * GST_SECOND);
}

GST_END_TEST;

/* Not live: the producer's timestamps unchanged. */
GST_START_TEST (test_not_live_passes_through)
{
  GstIvshmemTime t;
  IvshmRecordHeader h = header (12 * GST_SECOND, 11 * GST_SECOND, 0);
  GstClockTime pts, dts;

  time_new (&t, 10 * GST_SECOND, 0);
  fake_now = 100 * GST_SECOND;
  gst_ivshmem_time_stamp_buffer (&t, FALSE, &h, &pts, &dts);
  fail_unless_equals_uint64 (pts, 12 * GST_SECOND);
  fail_unless_equals_uint64 (dts, 11 * GST_SECOND);
  fail_if (t.have_offset);
}

GST_END_TEST;

/* A DTS anchors only when there is no PTS; a GAP-style restamp without
 * anchor says nothing before the anchor; before the segment: NONE;
 * earlier than the anchor: clipped at 0; no clock: anchored at 0. */
GST_START_TEST (test_restamp_edges)
{
  GstIvshmemTime t;
  GstSegment seg;

  time_new (&t, 10 * GST_SECOND, 0);
  fake_now = 3 * GST_SECOND;
  fail_unless_equals_uint64 (gst_ivshmem_time_restamp (&t, 11 * GST_SECOND,
          FALSE), GST_CLOCK_TIME_NONE);
  fail_unless_equals_uint64 (gst_ivshmem_time_restamp (&t, 5 * GST_SECOND,
          TRUE), GST_CLOCK_TIME_NONE);
  fail_unless_equals_uint64 (gst_ivshmem_time_restamp (&t, IVSHM_TIME_NONE,
          TRUE), GST_CLOCK_TIME_NONE);
  fail_unless_equals_uint64 (gst_ivshmem_time_restamp (&t, 20 * GST_SECOND,
          TRUE), 3 * GST_SECOND);
  /* 10 s of producer time before the anchor is 7 s before local 0 */
  fail_unless_equals_uint64 (gst_ivshmem_time_restamp (&t, 10 * GST_SECOND,
          FALSE), 0);

  /* a segment in another format cannot be mapped */
  gst_segment_init (&seg, GST_FORMAT_BYTES);
  gst_ivshmem_time_set_segment (&t, &seg);
  fail_unless_equals_uint64 (gst_ivshmem_time_restamp (&t, 20 * GST_SECOND,
          TRUE), GST_CLOCK_TIME_NONE);

  /* a new stream is anchored anew; without a clock, at 0 */
  gst_ivshmem_time_init (&t, NULL, NULL, NULL);
  fail_unless_equals_uint64 (gst_ivshmem_time_restamp (&t, 7 * GST_SECOND,
          TRUE), 0);
  fail_unless_equals_uint64 (gst_ivshmem_time_restamp (&t, 9 * GST_SECOND,
          TRUE), 2 * GST_SECOND);
}

GST_END_TEST;

/* After a leaky producer dropped the reader: the GAP runs from where the
 * last buffer ended to where the next begins, in output time. */
GST_START_TEST (test_loss_gap)
{
  GstIvshmemTime t;
  IvshmRecordHeader h;
  GstClockTime pts, dts, start, dur;

  time_new (&t, 0, 0);
  /* nothing read yet: no gap to report */
  fail_if (gst_ivshmem_time_loss (&t, TRUE, 5 * GST_SECOND, &start, &dur));

  fake_now = 50 * GST_SECOND;
  h = header (GST_SECOND, IVSHM_TIME_NONE, 100 * GST_MSECOND);
  gst_ivshmem_time_stamp_buffer (&t, TRUE, &h, &pts, &dts);
  fail_unless_equals_uint64 (pts, 50 * GST_SECOND);

  fail_unless (gst_ivshmem_time_loss (&t, TRUE, 3 * GST_SECOND, &start, &dur));
  fail_unless_equals_uint64 (start, 50 * GST_SECOND + 100 * GST_MSECOND);
  fail_unless_equals_uint64 (dur, 1900 * GST_MSECOND);

  fail_unless (gst_ivshmem_time_loss (&t, FALSE, 3 * GST_SECOND, &start, &dur));
  fail_unless_equals_uint64 (start, 1100 * GST_MSECOND);
  fail_unless_equals_uint64 (dur, 1900 * GST_MSECOND);

  /* the next buffer overlaps or has no timestamp: no hole */
  fail_if (gst_ivshmem_time_loss (&t, TRUE, GST_SECOND, &start, &dur));
  fail_if (gst_ivshmem_time_loss (&t, TRUE, IVSHM_TIME_NONE, &start, &dur));

  /* a buffer without duration ends where it starts */
  h = header (4 * GST_SECOND, IVSHM_TIME_NONE, IVSHM_TIME_NONE);
  gst_ivshmem_time_stamp_buffer (&t, TRUE, &h, &pts, &dts);
  fail_unless_equals_uint64 (t.last_end, 4 * GST_SECOND);
  /* a buffer without PTS leaves it */
  h = header (IVSHM_TIME_NONE, IVSHM_TIME_NONE, GST_SECOND);
  gst_ivshmem_time_stamp_buffer (&t, TRUE, &h, &pts, &dts);
  fail_unless_equals_uint64 (t.last_end, 4 * GST_SECOND);

  gst_ivshmem_time_reset (&t);
  fail_if (gst_ivshmem_time_loss (&t, TRUE, 9 * GST_SECOND, &start, &dur));
}

GST_END_TEST;

GST_START_TEST (test_lost_bytes)
{
  fail_unless_equals_uint64 (gst_ivshmem_lost_bytes (1000, 5096), 4096);
  fail_unless_equals_uint64 (gst_ivshmem_lost_bytes (5096, 1000), 0);
  fail_unless_equals_uint64 (gst_ivshmem_lost_bytes (7, 7), 0);
}

GST_END_TEST;

/* ---- the producer's clock (protocol 2.1) ---------------------------------
 *
 * The reader's pipeline runs on a GstTestClock; CLOCK_MONOTONIC of the
 * reader is that clock's time minus 200 s (any offset: the mapping goes
 * through it). The producer shares the kernel: its CLOCK_MONOTONIC is the
 * reader's. */
#define READER_MONO_OFFSET (200 * GST_SECOND)

static GstClock *test_clock;
static GstClockTime reader_base;

static gboolean
local_func (gpointer data, GstClockTime * clock_now, guint64 * mono_now,
    GstClockTime * base)
{
  *clock_now = gst_clock_get_time (test_clock);
  *mono_now = *clock_now - READER_MONO_OFFSET;
  *base = reader_base;
  return TRUE;
}

static void
set_reader_mono (guint64 mono)
{
  gst_test_clock_set_time (GST_TEST_CLOCK (test_clock),
      mono + READER_MONO_OFFSET);
}

/* the producer's clock is its CLOCK_MONOTONIC * rate + k: a sample of it
 * at `mono`, as the producer publishes at every buffer */
static void
observe_producer (GstIvshmemTime * t, guint64 mono, gdouble rate, guint64 k)
{
  IvshmClockSample s = { 0 };

  s.seq = 2;
  s.epoch = 1;
  s.kernel_id = 1;
  s.mono_ns = mono;
  s.clock_ns = (guint64) (mono * rate) + k;
  gst_ivshmem_time_observe (t, &s, TRUE, mono, mono, FALSE, 0);
}

static void
time_new_live (GstIvshmemTime * t)
{
  GstSegment seg;

  gst_ivshmem_time_init (t, now_func, local_func, NULL);
  gst_segment_init (&seg, GST_FORMAT_TIME);
  gst_ivshmem_time_set_segment (t, &seg);
  test_clock = gst_test_clock_new ();
}

/* One kernel: a buffer is stamped with the moment on this pipeline's clock
 * at which the producer meant it (its base time + running time), however
 * late it arrives; a flushing seek (new segment, new base time) and a
 * pause (new base time) of the producer carry over exactly. (Mutation:
 * without gst_ivshmem_time_map(), the first buffer anchors on its arrival,
 * 40 ms late, and the seek and pause shift every later buffer.) */
GST_START_TEST (test_producer_time_exact)
{
  GstIvshmemTime t;
  IvshmRecordHeader h;
  GstClockTime pts, dts, bp = 1000 * GST_SECOND;
  GstSegment seg;

  time_new_live (&t);
  reader_base = 300 * GST_SECOND;       /* on the reader's test clock */
  /* the producer's clock is its CLOCK_MONOTONIC + 500 s */
  fail_unless (gst_ivshmem_time_set_producer_time (&t, bp, 30 * GST_MSECOND,
          1, TRUE));
  /* same latency: nothing to say */
  fail_if (gst_ivshmem_time_set_producer_time (&t, bp, 30 * GST_MSECOND, 1,
          TRUE));

  /* running time 7 s: producer clock 1007 s = mono 507 s = reader clock
   * 707 s = reader running time 407 s, whenever it arrives */
  set_reader_mono (507 * GST_SECOND + 40 * GST_MSECOND);
  observe_producer (&t, 507 * GST_SECOND + 40 * GST_MSECOND, 1.0,
      500 * GST_SECOND);
  h = header (7 * GST_SECOND, 7 * GST_SECOND, 40 * GST_MSECOND);
  gst_ivshmem_time_stamp_buffer (&t, TRUE, &h, &pts, &dts);
  fail_unless_equals_uint64 (pts, 407 * GST_SECOND);
  fail_unless_equals_uint64 (dts, 407 * GST_SECOND);
  fail_unless_equals_int (t.mode, GST_IVSHMEM_TIME_EXACT);

  /* a flushing seek to 0 at producer clock 1010 s: running time starts
   * at 0 again under base time 1010 s */
  gst_segment_init (&seg, GST_FORMAT_TIME);
  gst_ivshmem_time_set_segment (&t, &seg);
  gst_ivshmem_time_set_producer_time (&t, 1010 * GST_SECOND,
      30 * GST_MSECOND, 1, TRUE);
  set_reader_mono (510 * GST_SECOND);
  observe_producer (&t, 510 * GST_SECOND, 1.0, 500 * GST_SECOND);
  h = header (0, IVSHM_TIME_NONE, 40 * GST_MSECOND);
  gst_ivshmem_time_stamp_buffer (&t, TRUE, &h, &pts, &dts);
  fail_unless_equals_uint64 (pts, 410 * GST_SECOND);

  /* paused 3 s at running time 1 s: base time 1013 s, running time goes
   * on from 1 s */
  gst_ivshmem_time_set_producer_time (&t, 1013 * GST_SECOND,
      30 * GST_MSECOND, 1, TRUE);
  set_reader_mono (514 * GST_SECOND);
  observe_producer (&t, 514 * GST_SECOND, 1.0, 500 * GST_SECOND);
  h = header (GST_SECOND, IVSHM_TIME_NONE, 40 * GST_MSECOND);
  gst_ivshmem_time_stamp_buffer (&t, TRUE, &h, &pts, &dts);
  fail_unless_equals_uint64 (pts, 414 * GST_SECOND);

  /* a buffer meant for before this pipeline started (reader running time
   * below 0): late for a live stream (the source drops it), clipped to 0
   * for one that is not live (its producer runs ahead of its clock, and a
   * reader that starts after it must still get its first buffers) */
  h = header (0, IVSHM_TIME_NONE, 0);
  gst_ivshmem_time_set_producer_time (&t, 550 * GST_SECOND,
      30 * GST_MSECOND, 1, TRUE);
  gst_ivshmem_time_stamp_buffer (&t, TRUE, &h, &pts, &dts);
  fail_unless_equals_uint64 (pts, 0);
  fail_unless (t.before_start);
  gst_ivshmem_time_set_producer_time (&t, 550 * GST_SECOND,
      30 * GST_MSECOND, 1, FALSE);
  gst_ivshmem_time_stamp_buffer (&t, TRUE, &h, &pts, &dts);
  fail_unless_equals_uint64 (pts, 0);
  fail_if (t.before_start);
  gst_ivshmem_time_set_producer_time (&t, 1013 * GST_SECOND,
      30 * GST_MSECOND, 1, TRUE);

  /* a new clock of the producer: its samples wait for its TIME record */
  {
    IvshmClockSample s = { 4, 2, 1, 0, 514 * GST_SECOND, 0 };

    gst_ivshmem_time_observe (&t, &s, TRUE, 0, 0, FALSE, 0);
    h = header (2 * GST_SECOND, IVSHM_TIME_NONE, 0);
    gst_ivshmem_time_stamp_buffer (&t, TRUE, &h, &pts, &dts);
    fail_unless_equals_uint64 (pts, 415 * GST_SECOND);
    gst_ivshmem_time_set_producer_time (&t, 100 * GST_SECOND,
        30 * GST_MSECOND, 2, TRUE);
    /* clock 2 is 0 at mono 514 s: 100 s + 2 s on it is mono 616 s */
    gst_ivshmem_time_stamp_buffer (&t, TRUE, &h, &pts, &dts);
    fail_unless_equals_uint64 (pts, 516 * GST_SECOND);
  }
  gst_object_unref (test_clock);
}

GST_END_TEST;

/* The delay, from the moment the producer sends a buffer to the moment a
 * synced sink in this pipeline renders it, over a simulated hour of a
 * producer whose clock runs 0.1 % fast against this pipeline's clock (a
 * GstTestClock): the producer sends a 10 ms buffer every 10 ms of its own
 * clock, the reader stamps it through the producer's clock. The delay
 * neither grows nor shrinks. Without the producer's time (the anchor on
 * the first buffer, as before protocol 2.1) the same hour drifts by 3.6 s:
 * checked too, so the test shows what it guards. */
static GstClockTimeDiff
hour_of_fast_producer (gboolean with_producer_time, GstClockTimeDiff * first)
{
  GstIvshmemTime t;
  const gdouble rate = 1.001;
  const guint64 k = 5 * GST_SECOND;     /* producer clock at mono 0 */
  const GstClockTime bp = (GstClockTime) (1000 * GST_SECOND * rate) + k;
  GstClockTimeDiff delay = 0, worst = 0;
  guint64 n;

  time_new_live (&t);
  reader_base = 100 * GST_SECOND;
  if (with_producer_time)
    gst_ivshmem_time_set_producer_time (&t, bp, 0, 1, TRUE);
  for (n = 0; n <= 360000; n += 10) {
    GstClockTime rt = n * 10 * GST_MSECOND, pts, dts;
    /* sent at producer clock bp + rt, that is at this mono: */
    guint64 mono = (guint64) ((bp + rt - k) / rate);
    IvshmRecordHeader h = header (rt, IVSHM_TIME_NONE, 10 * GST_MSECOND);

    /* it arrives 1 ms later */
    set_reader_mono (mono + GST_MSECOND);
    fake_now = gst_clock_get_time (test_clock) - reader_base;
    observe_producer (&t, mono + GST_MSECOND, rate, k);
    gst_ivshmem_time_stamp_buffer (&t, TRUE, &h, &pts, &dts);
    /* a synced sink renders at base + pts (+ latency, a constant) */
    delay = (GstClockTimeDiff) (reader_base + pts - READER_MONO_OFFSET) -
        (GstClockTimeDiff) mono;
    if (n == 0)
      *first = delay;
    if (ABS (delay - *first) > ABS (worst))
      worst = delay - *first;
  }
  gst_object_unref (test_clock);
  return worst;
}

GST_START_TEST (test_fast_producer_for_an_hour)
{
  GstClockTimeDiff first, worst;

  worst = hour_of_fast_producer (TRUE, &first);
  GST_INFO ("following the producer: delay %" GST_STIME_FORMAT ", moved by "
      "at most %" GST_STIME_FORMAT, GST_STIME_ARGS (first),
      GST_STIME_ARGS (worst));
  fail_unless (ABS (first) <= GST_USECOND);
  fail_unless (ABS (worst) <= GST_USECOND, "the delay moved by %"
      GST_STIME_FORMAT, GST_STIME_ARGS (worst));

  /* what it guards against */
  worst = hour_of_fast_producer (FALSE, &first);
  GST_INFO ("anchored: delay %" GST_STIME_FORMAT ", moved by %"
      GST_STIME_FORMAT, GST_STIME_ARGS (first), GST_STIME_ARGS (worst));
  fail_unless (ABS (worst) > 3 * GST_SECOND);
}

GST_END_TEST;

/* provide-clock: a clock steered by gst_ivshmem_follow_update() (here a
 * GstTestClock, whose internal time is the reader's CLOCK_MONOTONIC) runs
 * at the rate of a producer's clock 0.1 % fast, over a simulated hour,
 * and keeps its phase: what it says minus what it said at the start
 * equals the producer's clock's progress, within 50 us after the first
 * seconds. (Mutation: with the phase term removed the error grows with
 * the rate's first estimate; with no calibration at all it reaches
 * 3.6 s.) */
GST_START_TEST (test_follow_fast_producer_for_an_hour)
{
  GstIvshmemFollow f;
  GstClock *clock = gst_test_clock_new_with_start_time (1000 * GST_SECOND);
  const gdouble rate = 1.001;
  const GstClockTime k = 77 * GST_SECOND;
  GstClockTime m, start_clk = 0, start_cp = 0, worst = 0;
  guint64 num, denom, updates = 0;

  gst_ivshmem_follow_init (&f);
  for (m = 1000 * GST_SECOND; m <= 4600 * GST_SECOND; m += 100 * GST_MSECOND) {
    GstClockTime internal, now, cp;
    GstClockTimeDiff err;

    gst_test_clock_set_time (GST_TEST_CLOCK (clock), m);
    internal = gst_clock_get_internal_time (clock);
    fail_unless_equals_uint64 (internal, m);
    now = gst_clock_get_time (clock);
    /* the producer's clock, as the mapping gives it, with a little noise
     * (a sample a few us old) */
    cp = (GstClockTime) (m * rate) + k + (m / GST_MSECOND % 7) * GST_USECOND;
    if (m == 1000 * GST_SECOND) {
      start_clk = now;
      start_cp = cp;
    }
    if (gst_ivshmem_follow_update (&f, internal, cp, now, &num, &denom)) {
      gst_clock_set_calibration (clock, internal, now, num, denom);
      updates++;
    }
    err = (GstClockTimeDiff) (now - start_clk) -
        (GstClockTimeDiff) (cp - start_cp);
    if (m > 1010 * GST_SECOND && (GstClockTime) ABS (err) > worst)
      worst = ABS (err);
  }
  GST_INFO ("%" G_GUINT64_FORMAT " updates, rate %.9f, worst phase error %"
      GST_TIME_FORMAT, updates, f.rate, GST_TIME_ARGS (worst));
  fail_unless (updates > 7000);
  /* the phase term turns the 7 us of noise into a few ppm */
  fail_unless (ABS (f.rate - rate) < 5e-6, "rate %.9f", f.rate);
  fail_unless (worst < 50 * GST_USECOND, "phase off by %" GST_TIME_FORMAT,
      GST_TIME_ARGS (worst));
  gst_object_unref (clock);
}

GST_END_TEST;

static Suite *
srctime_suite (void)
{
  Suite *s = suite_create ("ivshmem-srctime");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_anchor_on_first_buffer);
  tcase_add_test (tc, test_not_live_passes_through);
  tcase_add_test (tc, test_restamp_edges);
  tcase_add_test (tc, test_loss_gap);
  tcase_add_test (tc, test_lost_bytes);
  tcase_add_test (tc, test_producer_time_exact);
  tcase_add_test (tc, test_fast_producer_for_an_hour);
  tcase_add_test (tc, test_follow_fast_producer_for_an_hour);
  return s;
}

GST_CHECK_MAIN (srctime);
