/* gst-ivshmem: ivshmemsrc's time mapping (gst/gstivshmemtime.c), alone
 * SPDX-License-Identifier: MIT
 *
 * No pipeline, no clock: the running time "now" is a variable of the test.
 */
#include <gst/check/gstcheck.h>

#include "gstivshmemtime.h"

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
  h = header (12 * GST_SECOND + 40 * GST_MSECOND, 12 * GST_SECOND,
      GST_SECOND);
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

  fail_unless (gst_ivshmem_time_loss (&t, TRUE, 3 * GST_SECOND, &start,
          &dur));
  fail_unless_equals_uint64 (start, 50 * GST_SECOND + 100 * GST_MSECOND);
  fail_unless_equals_uint64 (dur, 1900 * GST_MSECOND);

  fail_unless (gst_ivshmem_time_loss (&t, FALSE, 3 * GST_SECOND, &start,
          &dur));
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
  return s;
}

GST_CHECK_MAIN (srctime);
