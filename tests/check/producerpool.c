/* gst-ivshmem: the sink's producer trusts only what it keeps itself
 * SPDX-License-Identifier: MIT
 *
 * gst_ivshmem_producer_held_locally() decides whether waiting for the
 * readers can make room, by comparing how far the ring was reclaimed with
 * the oldest pool span this process still references. It used to read
 * that tail back from the region's header, which any peer that maps the
 * region can write: a scribbled tail made the producer believe that only
 * its own pool buffers held the ring (so it copied them out instead of
 * waiting), or the reverse. The tail it uses now is the writer's private
 * copy (ivshm_writer_tail()).
 *
 * Checked by mutation: against the code before this test (the tail read
 * back from the header), test_scribbled_tail failed with "a tail
 * scribbled into the region steered held_locally".
 */
#include <gst/check/gstcheck.h>

#include "gstivshmempool.h"
#include "ivshmem-layout.h"
#include "ivshmem-region.h"
#include "ivshmem-ring.h"

#include <stdatomic.h>
#include <unistd.h>

#define REGION_SIZE (UINT64_C (1) << 20)

typedef struct
{
  gchar *path;
  IvshmRegion *region;
  IvshmWriter *writer;
  GstIvshmemProducer *p;
} Fixture;

static void
fixture_open (Fixture * f)
{
  IvshmRegionOptions opts = { 0 };
  IvshmError err = { 0 };

  f->path = g_strdup_printf ("/dev/shm/gst-ivshmem-pool-%d", (int) getpid ());
  unlink (f->path);
  opts.create_size = REGION_SIZE;
  fail_unless_equals_int (ivshm_region_open (f->path, &opts, &f->region,
          &err), IVSHM_OK);
  fail_unless_equals_int (ivshm_writer_new (ivshm_region_data (f->region),
          ivshm_region_size (f->region), NULL, &f->writer, &err), IVSHM_OK);
  f->p = gst_ivshmem_producer_new (f->region, f->writer);
}

static void
fixture_close (Fixture * f)
{
  g_array_set_size (f->p->pins, 0);
  ivshm_writer_free (f->writer);
  f->p->writer = NULL;
  f->p->region = NULL;
  gst_ivshmem_producer_unref (f->p);
  ivshm_region_close (f->region);
  unlink (f->path);
  g_free (f->path);
}

/* A pool span (as gst_ivshmem_producer_pin() records one) at pos. */
static void
pin_at (Fixture * f, guint64 pos)
{
  GstIvshmemPin pin = { 1, pos, 4096, NULL };

  g_mutex_lock (&f->p->pins_lock);
  g_array_append_val (f->p->pins, pin);
  g_mutex_unlock (&f->p->pins_lock);
}

GST_START_TEST (test_scribbled_tail)
{
  Fixture f = { 0 };
  IvshmHeader *hdr;
  guint64 tail;

  fixture_open (&f);
  hdr = ivshm_region_data (f.region);
  tail = ivshm_writer_tail (f.writer);
  /* a span ahead of the tail: the ring is held by readers (or by nobody),
   * not by this process, so waiting may help */
  pin_at (&f, tail + 4096);
  g_mutex_lock (&f.p->lock);
  fail_if (gst_ivshmem_producer_held_locally (f.p));
  /* a peer writes the published tail far ahead: nothing changes here */
  atomic_store (&hdr->tail, tail + (UINT64_C (1) << 40));
  fail_if (gst_ivshmem_producer_held_locally (f.p),
      "a tail scribbled into the region steered held_locally");
  /* and behind: still the writer's own view */
  g_array_index (f.p->pins, GstIvshmemPin, 0).pos = tail;
  atomic_store (&hdr->tail, 0);
  fail_unless (gst_ivshmem_producer_held_locally (f.p),
      "a tail scribbled back to 0 hid the producer's own pool span");
  g_mutex_unlock (&f.p->lock);
  fixture_close (&f);
}

GST_END_TEST;

static Suite *
producerpool_suite (void)
{
  Suite *s = suite_create ("producerpool");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_scribbled_tail);
  return s;
}

GST_CHECK_MAIN (producerpool);
