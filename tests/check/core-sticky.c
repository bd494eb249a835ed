/* gst-ivshmem: tests of the sticky area's read side (ivshmem-sticky.h)
 * SPDX-License-Identifier: MIT
 *
 * Sticky areas are built by hand here (the layout is the ABI), plus one
 * written by the real producer, with EOS at the end of a stream. The region
 * the snapshot reads is mapped read-only where it can be, so that a store
 * into shared memory would crash the test.
 */
#include <gst/check/gstcheck.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "ivshmem-layout.h"
#include "ivshmem-ring.h"
#include "ivshmem-sticky.h"

#define assert_status(expr, expected) G_STMT_START {                     \
  IvshmStatus _got = (expr), _exp = (expected);                          \
  fail_unless (_got == _exp, "%s: got %s, expected %s", #expr,           \
      ivshm_status_name (_got), ivshm_status_name (_exp));               \
} G_STMT_END

#define REGION_SIZE ((size_t) IVSHM_REGION_MIN)

static uint8_t *
region_new (void)
{
  void *base = mmap (NULL, REGION_SIZE, PROT_READ | PROT_WRITE,
      MAP_SHARED | MAP_ANONYMOUS, -1, 0);

  fail_unless (base != MAP_FAILED);
  return base;
}

static void
region_free (uint8_t * base)
{
  munmap (base, REGION_SIZE);
}

static IvshmStickyHeader *
sticky_hdr (uint8_t * base)
{
  return (IvshmStickyHeader *) (base + IVSHM_STICKY_OFFSET);
}

/* Appends one record to a record buffer; returns the new length. */
static uint32_t
put_record (uint8_t * recs, uint32_t len, uint16_t type, uint16_t subtype,
    const char *payload)
{
  IvshmRecordHeader h = { 0 };
  size_t n = payload ? strlen (payload) + 1 : 0;

  h.type = type;
  h.subtype = subtype;
  h.pos = 4096 + len;
  h.payload_len = n;
  memcpy (recs + len, &h, sizeof h);
  if (n)
    memcpy (recs + len + sizeof h, payload, n);
  return len + (uint32_t) ivshm_record_len (n);
}

/* Stores records into the region's sticky area as a producer would. */
static void
store_sticky (uint8_t * base, const uint8_t * recs, uint32_t len,
    uint32_t count, uint64_t seq)
{
  IvshmStickyHeader *sh = sticky_hdr (base);

  memcpy ((uint8_t *) sh + sizeof *sh, recs, len);
  atomic_store (&sh->applies_from, 8192);
  atomic_store (&sh->len, len);
  atomic_store (&sh->count, count);
  atomic_store (&sh->seq, seq);
}

/* A snapshot of a region made read-only for the time of the call. */
static IvshmStatus
snapshot_ro (uint8_t * base, IvshmStickySnapshot * snap)
{
  IvshmStatus st;

  fail_unless (mprotect (base, REGION_SIZE, PROT_READ) == 0);
  st = ivshm_sticky_snapshot (base, 8, 0, snap);
  fail_unless (mprotect (base, REGION_SIZE, PROT_READ | PROT_WRITE) == 0);
  return st;
}

static IvshmStickySnapshot *
snap_new (void)
{
  IvshmStickySnapshot *snap = malloc (sizeof *snap);

  fail_unless (snap != NULL);
  return snap;
}

/* Walks a snapshot, checks the types and subtypes yielded, and returns the
 * final status. */
static IvshmStatus
walk (const IvshmStickySnapshot * snap, const uint16_t * types,
    const uint16_t * subtypes, guint n_expected, const char **reason)
{
  /* static: *reason points into it after the return */
  static IvshmStickyIter it;
  IvshmStickyRecord rec;
  guint n = 0;

  ivshm_sticky_iter_init (&it, snap);
  while (ivshm_sticky_iter_next (&it, &rec)) {
    fail_unless (n < n_expected, "more records than expected");
    if (types) {
      fail_unless_equals_int (rec.h.type, types[n]);
      fail_unless_equals_int (rec.h.subtype, subtypes[n]);
    }
    fail_unless_equals_int (rec.index, n);
    fail_unless (rec.payload >= snap->data
        && rec.payload + rec.h.payload_len <= snap->data + snap->len);
    n++;
  }
  fail_if (ivshm_sticky_iter_next (&it, &rec), "the walk restarted");
  if (ivshm_sticky_iter_status (&it) == IVSHM_OK)
    fail_unless_equals_int (n, n_expected);
  if (reason)
    *reason = ivshm_sticky_iter_reason (&it);
  return ivshm_sticky_iter_status (&it);
}

GST_START_TEST (test_empty)
{
  uint8_t *base = region_new ();
  IvshmStickySnapshot *snap = snap_new ();

  /* a zeroed region: no records, no error */
  assert_status (snapshot_ro (base, snap), IVSHM_OK);
  fail_unless_equals_int (snap->len, 0);
  assert_status (walk (snap, NULL, NULL, 0, NULL), IVSHM_OK);
  assert_status (ivshm_sticky_validate (snap, NULL, 0), IVSHM_OK);
  free (snap);
  region_free (base);
}

GST_END_TEST;

/* Everything a producer stores, EOS last, and a subtype from the future. */
GST_START_TEST (test_all_kinds_and_eos)
{
  static const uint16_t types[] = { IVSHM_RECORD_EVENT, IVSHM_RECORD_CAPS,
    IVSHM_RECORD_EVENT, IVSHM_RECORD_EVENT, IVSHM_RECORD_EVENT,
    IVSHM_RECORD_EVENT, IVSHM_RECORD_EVENT
  };
  static const uint16_t subtypes[] = { IVSHM_EVENT_STREAM_START, 0,
    IVSHM_EVENT_SEGMENT, IVSHM_EVENT_TAG, IVSHM_EVENT_CUSTOM_STICKY,
    IVSHM_EVENT_MAX + 5, IVSHM_EVENT_EOS
  };
  uint8_t *base = region_new (), recs[4096];
  IvshmStickySnapshot *snap = snap_new ();
  IvshmStickyIter it;
  IvshmStickyRecord rec;
  uint32_t len = 0;
  guint i;
  size_t n;
  bool nul;
  const char *text;

  for (i = 0; i < G_N_ELEMENTS (types); i++)
    len = put_record (recs, len, types[i], subtypes[i],
        types[i] == IVSHM_RECORD_CAPS ? "video/x-raw" :
        subtypes[i] == IVSHM_EVENT_EOS ? "" : "an-event");
  store_sticky (base, recs, len, G_N_ELEMENTS (types), 12);

  assert_status (snapshot_ro (base, snap), IVSHM_OK);
  fail_unless_equals_uint64 (snap->seq, 12);
  fail_unless_equals_uint64 (snap->applies_from, 8192);
  fail_unless_equals_int (snap->len, len);
  assert_status (walk (snap, types, subtypes, G_N_ELEMENTS (types), NULL),
      IVSHM_OK);

  /* payloads point into the private copy, as text */
  ivshm_sticky_iter_init (&it, snap);
  fail_unless (ivshm_sticky_iter_next (&it, &rec));
  fail_unless (ivshm_sticky_iter_next (&it, &rec));
  text = ivshm_sticky_record_text (&rec, &n, &nul);
  fail_unless (nul);
  fail_unless_equals_int (n, strlen ("video/x-raw"));
  fail_unless (strncmp (text, "video/x-raw", n) == 0);
  fail_unless_equals_int (rec.offset, 128);
  fail_unless_equals_int (rec.len, 128);

  /* the copy does not change with the region */
  memset (base + IVSHM_STICKY_OFFSET, 0xff, 1024);
  assert_status (walk (snap, types, subtypes, G_N_ELEMENTS (types), NULL),
      IVSHM_OK);
  free (snap);
  region_free (base);
}

GST_END_TEST;

static IvshmWriter *
writer_new_ok (uint8_t * base)
{
  static const IvshmWriterConfig calm = { 60000ull * 1000 * 1000, 0, 0 };
  IvshmWriter *w = NULL;
  IvshmError err = { 0 };

  assert_status (ivshm_writer_new (base, REGION_SIZE, &calm, &w, &err),
      IVSHM_OK);
  return w;
}

static void
write_string (IvshmWriter * w, uint16_t type, uint16_t subtype, const char *s)
{
  IvshmRecordHeader h = { 0 };

  h.type = type;
  h.subtype = subtype;
  h.payload_len = strlen (s) + 1;
  h.pts = h.dts = h.duration = h.offset = h.offset_end = IVSHM_TIME_NONE;
  assert_status (ivshm_writer_write (w, &h, s), IVSHM_OK);
}

/* The real producer at the end of a stream: what ivshmem-info used to
 * call "sticky record at +832 has type 4 subtype 5, which does not belong
 * there". */
GST_START_TEST (test_producer_eos)
{
  static const uint16_t types[] = { IVSHM_RECORD_EVENT, IVSHM_RECORD_CAPS,
    IVSHM_RECORD_EVENT, IVSHM_RECORD_EVENT, IVSHM_RECORD_EVENT
  };
  static const uint16_t subtypes[] = { IVSHM_EVENT_STREAM_START, 0,
    IVSHM_EVENT_SEGMENT, IVSHM_EVENT_TAG, IVSHM_EVENT_EOS
  };
  uint8_t *base = region_new ();
  IvshmStickySnapshot *snap = snap_new ();
  IvshmWriter *w = writer_new_ok (base);
  const char *reason = NULL;

  write_string (w, IVSHM_RECORD_EVENT, IVSHM_EVENT_STREAM_START,
      "stream-start, stream-id=(string)x;");
  write_string (w, IVSHM_RECORD_CAPS, 0, "video/x-raw, width=(int)64");
  write_string (w, IVSHM_RECORD_EVENT, IVSHM_EVENT_SEGMENT, "segment;");
  write_string (w, IVSHM_RECORD_EVENT, IVSHM_EVENT_TAG, "taglist;");
  write_string (w, IVSHM_RECORD_EVENT, IVSHM_EVENT_EOS, "");
  ivshm_writer_free (w);

  assert_status (snapshot_ro (base, snap), IVSHM_OK);
  assert_status (walk (snap, types, subtypes, G_N_ELEMENTS (types), &reason),
      IVSHM_OK);
  free (snap);
  region_free (base);
}

GST_END_TEST;

/* Builds a valid area of three records, lets `mutate` break it, and
 * expects the walk (not the snapshot) to fail with a reason holding
 * `expect`. */
static void
expect_walk_corrupt (void (*mutate) (uint8_t * recs, uint32_t * len,
        uint32_t * count), const char *expect)
{
  uint8_t *base = region_new (), recs[4096] = { 0 };
  IvshmStickySnapshot *snap = snap_new ();
  uint32_t len = 0, count = 3;
  const char *reason = NULL;
  char why[IVSHM_STICKY_REASON_LEN];

  len = put_record (recs, len, IVSHM_RECORD_EVENT, IVSHM_EVENT_STREAM_START,
      "s");
  len = put_record (recs, len, IVSHM_RECORD_CAPS, 0, "c");
  len = put_record (recs, len, IVSHM_RECORD_EVENT, IVSHM_EVENT_SEGMENT, "g");
  mutate (recs, &len, &count);
  store_sticky (base, recs, len, count, 2);

  assert_status (snapshot_ro (base, snap), IVSHM_OK);
  /* the records before the bad one are yielded (a tool shows them) */
  assert_status (walk (snap, NULL, NULL, 4, &reason), IVSHM_ERR_CORRUPT);
  fail_unless (strstr (reason, expect) != NULL, "reason '%s', expected '%s'",
      reason, expect);
  assert_status (ivshm_sticky_validate (snap, why, sizeof why),
      IVSHM_ERR_CORRUPT);
  fail_unless_equals_string (why, reason);
  free (snap);
  region_free (base);
}

static IvshmRecordHeader *
rec_at (uint8_t * recs, guint i)
{
  return (IvshmRecordHeader *) (recs + 128 * i);
}

static void
huge_payload (uint8_t * recs, uint32_t * len, uint32_t * count)
{
  rec_at (recs, 1)->payload_len = UINT64_MAX;
}

static void
payload_past_end (uint8_t * recs, uint32_t * len, uint32_t * count)
{
  /* the last record: 64 bytes of payload room in 128, claims 65 */
  rec_at (recs, 2)->payload_len = 65;
}

static void
almost_huge_payload (uint8_t * recs, uint32_t * len, uint32_t * count)
{
  rec_at (recs, 0)->payload_len = UINT64_MAX - 63;
}

static void
buffer_record (uint8_t * recs, uint32_t * len, uint32_t * count)
{
  rec_at (recs, 1)->type = IVSHM_RECORD_BUFFER;
}

static void
pad_record (uint8_t * recs, uint32_t * len, uint32_t * count)
{
  rec_at (recs, 2)->type = IVSHM_RECORD_PAD;
}

static void
skip_record (uint8_t * recs, uint32_t * len, uint32_t * count)
{
  rec_at (recs, 2)->type = IVSHM_RECORD_SKIP;
}

static void
unknown_type (uint8_t * recs, uint32_t * len, uint32_t * count)
{
  rec_at (recs, 0)->type = 77;
}

static void
gap_event (uint8_t * recs, uint32_t * len, uint32_t * count)
{
  rec_at (recs, 2)->subtype = IVSHM_EVENT_GAP;
}

static void
subtype_zero (uint8_t * recs, uint32_t * len, uint32_t * count)
{
  rec_at (recs, 2)->subtype = 0;
}

static void
eos_not_last (uint8_t * recs, uint32_t * len, uint32_t * count)
{
  rec_at (recs, 1)->type = IVSHM_RECORD_EVENT;
  rec_at (recs, 1)->subtype = IVSHM_EVENT_EOS;
}

static void
count_too_high (uint8_t * recs, uint32_t * len, uint32_t * count)
{
  *count = 4;
}

static void
count_too_low (uint8_t * recs, uint32_t * len, uint32_t * count)
{
  *count = 2;
}

static void
zero_record_after (uint8_t * recs, uint32_t * len, uint32_t * count)
{
  /* len covers a fourth, all-zero record: type 0 */
  *len += 64;
}

GST_START_TEST (test_bad_records)
{
  expect_walk_corrupt (huge_payload,
      "claims 18446744073709551615 bytes of payload");
  expect_walk_corrupt (payload_past_end, "claims 65 bytes of payload, only 64");
  expect_walk_corrupt (almost_huge_payload, "sticky record 0 at +0 claims");
  expect_walk_corrupt (buffer_record, "has type 2 subtype 0");
  expect_walk_corrupt (pad_record, "has type 1");
  expect_walk_corrupt (skip_record, "has type 5");
  expect_walk_corrupt (unknown_type, "has type 77");
  expect_walk_corrupt (gap_event, "type 4 subtype 4, which does not belong");
  expect_walk_corrupt (subtype_zero, "type 4 subtype 0");
  expect_walk_corrupt (eos_not_last, "follows EOS");
  expect_walk_corrupt (count_too_high, "says 4 records, 3 were found");
  expect_walk_corrupt (count_too_low, "says 2 records, 3 were found");
  expect_walk_corrupt (zero_record_after, "sticky record 3 at +384 has type 0");
}

GST_END_TEST;

/* Lengths the area cannot hold: refused by the snapshot, nothing copied. */
GST_START_TEST (test_impossible_length)
{
  static const uint32_t bad[] = { IVSHM_STICKY_DATA_MAX + 64, UINT32_MAX,
    UINT32_MAX & ~63u, 65, 1, 63
  };
  uint8_t *base = region_new ();
  IvshmStickySnapshot *snap = snap_new ();
  IvshmStickyHeader *sh = sticky_hdr (base);
  guint i;

  for (i = 0; i < G_N_ELEMENTS (bad); i++) {
    atomic_store (&sh->len, bad[i]);
    atomic_store (&sh->seq, 4);
    assert_status (snapshot_ro (base, snap), IVSHM_ERR_CORRUPT);
    fail_unless_equals_int (snap->len, 0);
    fail_unless (strstr (snap->reason, "claims") != NULL, "%s", snap->reason);
    assert_status (walk (snap, NULL, NULL, 0, NULL), IVSHM_OK);
  }
  /* the largest possible length is fine */
  atomic_store (&sh->len, IVSHM_STICKY_DATA_MAX);
  assert_status (snapshot_ro (base, snap), IVSHM_OK);

  /* a snapshot built by a caller is checked by the iterator too */
  snap->len = 65;
  assert_status (walk (snap, NULL, NULL, 0, NULL), IVSHM_ERR_CORRUPT);
  free (snap);
  region_free (base);
}

GST_END_TEST;

/* A producer that never finishes writing: AGAIN, not a hang. */
GST_START_TEST (test_busy_seqlock)
{
  uint8_t *base = region_new ();
  IvshmStickySnapshot *snap = snap_new ();
  IvshmStickyHeader *sh = sticky_hdr (base);

  atomic_store (&sh->seq, 7);
  atomic_store (&sh->len, 64);
  assert_status (snapshot_ro (base, snap), IVSHM_AGAIN);
  fail_unless_equals_int (snap->len, 0);
  fail_unless (strstr (snap->reason, "kept rewriting") != NULL);
  /* with a pause between the tries, still bounded */
  assert_status (ivshm_sticky_snapshot (base, 3, 1000, snap), IVSHM_AGAIN);
  /* the default bound, 0 tries meaning 64 */
  assert_status (ivshm_sticky_snapshot (base, 0, 0, snap), IVSHM_AGAIN);
  free (snap);
  region_free (base);
}

GST_END_TEST;

/* A producer rewriting the area all the time, with impossible lengths
 * while the lock is odd: a snapshot is either a consistent copy of one of
 * its two versions, or AGAIN; never CORRUPT, never a mix. */
typedef struct
{
  uint8_t *base;
  atomic_bool stop;
  uint8_t a[1024], b[1024];
  uint32_t a_len, b_len;
} Rewriter;

static void *
rewriter_thread (void *data)
{
  Rewriter *rw = data;
  IvshmStickyHeader *sh = sticky_hdr (rw->base);
  uint8_t *dst = rw->base + IVSHM_STICKY_OFFSET + sizeof *sh;
  uint64_t seq = 0;
  bool flip = false;

  while (!atomic_load (&rw->stop)) {
    atomic_store_explicit (&sh->seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence (memory_order_release);
    atomic_store_explicit (&sh->len, UINT32_MAX, memory_order_relaxed);
    memset (dst, 0xee, 256);
    memcpy (dst, flip ? rw->a : rw->b, flip ? rw->a_len : rw->b_len);
    atomic_store_explicit (&sh->len, flip ? rw->a_len : rw->b_len,
        memory_order_relaxed);
    atomic_store_explicit (&sh->count, flip ? 1 : 3, memory_order_relaxed);
    atomic_store_explicit (&sh->seq, seq + 2, memory_order_release);
    seq += 2;
    flip = !flip;
  }
  return NULL;
}

GST_START_TEST (test_concurrent_writer)
{
  Rewriter *rw = g_new0 (Rewriter, 1);
  IvshmStickySnapshot *snap = snap_new ();
  pthread_t thread;
  guint i, ok = 0, again = 0;

  rw->base = region_new ();
  rw->a_len = put_record (rw->a, 0, IVSHM_RECORD_CAPS, 0, "audio/x-raw");
  rw->b_len = put_record (rw->b, 0, IVSHM_RECORD_EVENT,
      IVSHM_EVENT_STREAM_START, "s");
  rw->b_len = put_record (rw->b, rw->b_len, IVSHM_RECORD_CAPS, 0, "c");
  rw->b_len = put_record (rw->b, rw->b_len, IVSHM_RECORD_EVENT,
      IVSHM_EVENT_EOS, "");
  fail_unless (pthread_create (&thread, NULL, rewriter_thread, rw) == 0);

  for (i = 0; i < 20000; i++) {
    IvshmStatus st = ivshm_sticky_snapshot (rw->base, 4, 0, snap);

    fail_unless (st == IVSHM_OK || st == IVSHM_AGAIN, "snapshot %u: %s (%s)",
        i, ivshm_status_name (st), snap->reason);
    if (st == IVSHM_AGAIN) {
      again++;
      continue;
    }
    ok++;
    fail_unless (snap->seq % 2 == 0);
    if (snap->len == 0)
      continue;                 /* before the first rewrite */
    fail_unless ((snap->len == rw->a_len && memcmp (snap->data, rw->a,
                rw->a_len) == 0) || (snap->len == rw->b_len
            && memcmp (snap->data, rw->b, rw->b_len) == 0),
        "a torn copy of %u bytes", snap->len);
    assert_status (ivshm_sticky_validate (snap, NULL, 0), IVSHM_OK);
  }
  atomic_store (&rw->stop, true);
  pthread_join (thread, NULL);
  GST_INFO ("%u consistent copies, %u busy", ok, again);

  region_free (rw->base);
  g_free (rw);
  free (snap);
}

GST_END_TEST;

static Suite *
core_sticky_suite (void)
{
  Suite *s = suite_create ("core-sticky");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_empty);
  tcase_add_test (tc, test_all_kinds_and_eos);
  tcase_add_test (tc, test_producer_eos);
  tcase_add_test (tc, test_bad_records);
  tcase_add_test (tc, test_impossible_length);
  tcase_add_test (tc, test_busy_seqlock);
  tcase_add_test (tc, test_concurrent_writer);
  return s;
}

GST_CHECK_MAIN (core_sticky);
