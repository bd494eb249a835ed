/* gst-ivshmem: tests of the core ring (IvshmWriter / IvshmReader)
 * SPDX-License-Identifier: MIT
 *
 * The region is plain memory here: a malloc'd block (so that ASan and
 * valgrind see any access outside it) or, where a child process must see
 * it, an anonymous MAP_SHARED mapping. Nothing in this file waits without a
 * deadline: a bug makes a test fail, never hang.
 */
#include <gst/check/gstcheck.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "ivshmem-layout.h"
#include "ivshmem-ring.h"

#define MS (1000ull * 1000ull)
#define RING_64K (64u * 1024u)

/* A reader config whose producer timeout never fires during a test: the
 * writers of most tests do not heartbeat. */
static const IvshmReaderConfig patient_reader = { 60000ull * MS };

/* Deadlines of tests that cross processes stretch under valgrind
 * (IVSHMEM_TEST_TIME_SCALE=10). */
static uint64_t
scaled (uint64_t ns)
{
  const char *v = getenv ("IVSHMEM_TEST_TIME_SCALE");
  long k = v ? atol (v) : 1;

  return ns * (uint64_t) (k > 0 ? k : 1);
}

#define assert_status(expr, expected) G_STMT_START {                     \
  IvshmStatus _got = (expr), _exp = (expected);                          \
  fail_unless (_got == _exp, "%s: got %s, expected %s", #expr,           \
      ivshm_status_name (_got), ivshm_status_name (_exp));               \
} G_STMT_END

/* ---- regions ------------------------------------------------------------ */

/* Makes the writer scan its slots as it does when it needs space. */
static void
writer_reclaim_now (IvshmWriter * w)
{
  IvshmWaiter waiter;
  uint32_t token;

  ivshm_waiter_init (&waiter);
  if (ivshm_writer_wait_prepare (w, &token))
    ivshm_writer_wait_finish (w, &waiter, token, 1000);
}

static void *
region_alloc (uint64_t size)
{
  void *base = aligned_alloc (4096, size);

  fail_unless (base != NULL);
  /* fresh shared memory reads as zeroes */
  memset (base, 0, size);
  return base;
}

static void *
region_map_shared (uint64_t size)
{
  void *base = mmap (NULL, size, PROT_READ | PROT_WRITE,
      MAP_SHARED | MAP_ANONYMOUS, -1, 0);

  fail_unless (base != MAP_FAILED);
  return base;
}

static IvshmHeader *
hdr_of (void *base)
{
  return (IvshmHeader *) base;
}

static IvshmReaderSlot *
slot_at (void *base, unsigned i)
{
  return (IvshmReaderSlot *) ((uint8_t *) base + IVSHM_SLOT_OFFSET +
      (size_t) i * IVSHM_SLOT_SIZE);
}

static IvshmStickyHeader *
sticky_at (void *base)
{
  return (IvshmStickyHeader *) ((uint8_t *) base + IVSHM_STICKY_OFFSET);
}

static IvshmRecordHeader *
ring_rec_at (void *base, uint64_t ring_size, uint64_t pos)
{
  return (IvshmRecordHeader *) ((uint8_t *) base + IVSHM_RING_OFFSET +
      pos % ring_size);
}

static void
sleep_ms (unsigned ms)
{
  struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
  nanosleep (&ts, NULL);
}

static IvshmWriter *
writer_new_ok (void *base, uint64_t size, const IvshmWriterConfig * cfg)
{
  /* most readers here do not heartbeat: no lease expiry unless asked */
  static const IvshmWriterConfig calm = { 60000ull * MS, 0, 0 };
  IvshmWriter *w = NULL;
  IvshmError err = { 0 };

  assert_status (ivshm_writer_new (base, size, cfg ? cfg : &calm, &w, &err),
      IVSHM_OK);
  fail_unless (w != NULL);
  return w;
}

static IvshmReader *
reader_new_ok (void *base, uint64_t size)
{
  IvshmReader *r = NULL;
  IvshmError err = { 0 };
  IvshmStatus st;

  st = ivshm_reader_new (base, size, &patient_reader, &r, &err);
  fail_unless (st == IVSHM_OK, "reader_new: %s (%s)", ivshm_status_name (st),
      err.detail);
  fail_unless (r != NULL);
  return r;
}

/* ---- payload patterns ---------------------------------------------------- */

static uint64_t
mix64 (uint64_t x)
{
  x ^= x >> 30;
  x *= UINT64_C (0xbf58476d1ce4e5b9);
  x ^= x >> 27;
  x *= UINT64_C (0x94d049bb133111eb);
  x ^= x >> 31;
  return x;
}

static void
fill_pattern (uint8_t * dst, uint64_t len, uint64_t seed)
{
  uint64_t i, v = 0;

  for (i = 0; i < len; i++) {
    if (i % 8 == 0)
      v = mix64 (seed * 0x9e3779b97f4a7c15ull + i / 8 + 1);
    dst[i] = (uint8_t) (v >> (8 * (i % 8)));
  }
}

static gboolean
check_pattern (const uint8_t * src, uint64_t len, uint64_t seed)
{
  uint8_t *expect = g_malloc (len ? len : 1);
  gboolean ok;

  fill_pattern (expect, len, seed);
  ok = memcmp (expect, src, len) == 0;
  g_free (expect);
  return ok;
}

static uint64_t
fnv1a (const uint8_t * p, uint64_t len)
{
  uint64_t h = UINT64_C (0xcbf29ce484222325), i;

  for (i = 0; i < len; i++) {
    h ^= p[i];
    h *= UINT64_C (0x100000001b3);
  }
  return h;
}

/* ---- writing and reading records ---------------------------------------- */

static IvshmRecordHeader
buffer_info (uint64_t seq, uint64_t len)
{
  IvshmRecordHeader h = { 0 };

  h.type = IVSHM_RECORD_BUFFER;
  h.flags = (uint32_t) (seq * 7) & 0xffff;
  h.payload_len = len;
  h.pts = seq * 1000;
  h.dts = seq * 1000 + 1;
  h.duration = 1000 + seq % 3;
  h.offset = seq;
  h.offset_end = seq + 1;
  return h;
}

/* Writes BUFFER `seq` with `len` bytes of the seq's pattern. */
static IvshmStatus
write_buffer (IvshmWriter * w, uint64_t seq, uint64_t len)
{
  IvshmRecordHeader h = buffer_info (seq, len);
  uint8_t *p = g_malloc (len ? len : 1);
  IvshmStatus st;

  fill_pattern (p, len, seq);
  st = ivshm_writer_write (w, &h, p);
  g_free (p);
  return st;
}

static void
write_buffer_ok (IvshmWriter * w, uint64_t seq, uint64_t len)
{
  assert_status (write_buffer (w, seq, len), IVSHM_OK);
}

static IvshmStatus
write_string (IvshmWriter * w, uint16_t type, uint16_t subtype, const char *s)
{
  IvshmRecordHeader h = { 0 };

  h.type = type;
  h.subtype = subtype;
  h.payload_len = strlen (s) + 1;
  h.pts = h.dts = h.duration = h.offset = h.offset_end = IVSHM_TIME_NONE;
  return ivshm_writer_write (w, &h, s);
}

static void
write_event_ok (IvshmWriter * w, uint16_t subtype, const char *s)
{
  assert_status (write_string (w, IVSHM_RECORD_EVENT, subtype, s), IVSHM_OK);
}

static void
write_caps_ok (IvshmWriter * w, const char *s)
{
  assert_status (write_string (w, IVSHM_RECORD_CAPS, 0, s), IVSHM_OK);
}

/* Reads the next record, which must be BUFFER `seq` of `len` bytes (len
 * UINT64_MAX: any), checks every field and its content, releases it. */
static void
read_buffer_ok (IvshmReader * r, uint64_t seq, uint64_t len)
{
  IvshmRecord rec;
  IvshmError err = { 0 };
  IvshmRecordHeader e;
  IvshmStatus st;

  st = ivshm_reader_next (r, &rec, &err);
  fail_unless (st == IVSHM_OK, "next (buffer %" G_GUINT64_FORMAT "): %s (%s)",
      seq, ivshm_status_name (st), err.detail);
  fail_unless_equals_int (rec.h.type, IVSHM_RECORD_BUFFER);
  fail_if (rec.replayed);
  if (len != UINT64_MAX)
    fail_unless_equals_uint64 (rec.h.payload_len, len);
  e = buffer_info (seq, rec.h.payload_len);
  fail_unless_equals_int (rec.h.subtype, 0);
  fail_unless_equals_int (rec.h.flags, e.flags);
  fail_unless_equals_uint64 (rec.h.pts, e.pts);
  fail_unless_equals_uint64 (rec.h.dts, e.dts);
  fail_unless_equals_uint64 (rec.h.duration, e.duration);
  fail_unless_equals_uint64 (rec.h.offset, e.offset);
  fail_unless_equals_uint64 (rec.h.offset_end, e.offset_end);
  fail_unless (((uintptr_t) rec.payload) % IVSHM_RECORD_ALIGN == 0);
  fail_unless (check_pattern (rec.payload, rec.h.payload_len, seq),
      "payload of buffer %" G_GUINT64_FORMAT " is wrong", seq);
  assert_status (ivshm_reader_release (r), IVSHM_OK);
}

/* Reads the next record, a CAPS or EVENT carrying string s. */
static void
read_string_ok (IvshmReader * r, uint16_t type, uint16_t subtype,
    const char *s, bool replayed)
{
  IvshmRecord rec;
  IvshmError err = { 0 };
  IvshmStatus st;

  st = ivshm_reader_next (r, &rec, &err);
  fail_unless (st == IVSHM_OK, "next (%s): %s (%s)", s,
      ivshm_status_name (st), err.detail);
  fail_unless_equals_int (rec.h.type, type);
  fail_unless_equals_int (rec.h.subtype, subtype);
  fail_unless_equals_int (rec.replayed, replayed);
  fail_unless_equals_uint64 (rec.h.payload_len, strlen (s) + 1);
  /* a record from the ring has its payload 64-byte aligned; a replayed
   * one lives in the reader's private copy, where it only needs to be
   * readable */
  if (!replayed)
    fail_unless (((uintptr_t) rec.payload) % IVSHM_RECORD_ALIGN == 0);
  fail_unless_equals_string ((const char *) rec.payload, s);
  assert_status (ivshm_reader_release (r), IVSHM_OK);
}

static void
read_none (IvshmReader * r)
{
  IvshmRecord rec;

  assert_status (ivshm_reader_next (r, &rec, NULL), IVSHM_AGAIN);
}

/* Reads buffers first..last-1 (any size). */
static void
read_buffers_ok (IvshmReader * r, uint64_t first, uint64_t last)
{
  uint64_t s;

  for (s = first; s < last; s++)
    read_buffer_ok (r, s, UINT64_MAX);
}

/* Fills the ring with 1000-byte buffers from seq on until the writer has to
 * wait, lets r (caught up on entry) read them all, and writes one more: the
 * writer has reclaimed space with r attached, which sets HAD_READER. Leaves
 * r caught up and returns the next seq. */
static uint64_t
cycle_ring (IvshmWriter * w, IvshmReader * r, uint64_t seq)
{
  uint64_t first = seq;

  while (write_buffer (w, seq, 1000) == IVSHM_OK)
    seq++;
  read_buffers_ok (r, first, seq);
  write_buffer_ok (w, seq++, 1000);
  read_buffer_ok (r, seq - 1, 1000);
  return seq;
}

/* ---- 1. round trip ------------------------------------------------------- */

GST_START_TEST (test_round_trip)
{
  static const uint64_t sizes[] = { 0, 1, 7, 63, 64, 65, 100, 127, 128, 1000,
    4095, 4096, 4097, 12345, 65536, 100003
  };
  const uint64_t size = 1024 * 1024;
  void *base = region_alloc (size);
  IvshmWriter *w = writer_new_ok (base, size, NULL);
  IvshmReader *r = reader_new_ok (base, size);
  IvshmWriterStats ws;
  IvshmReaderStats rs;
  IvshmRecord rec;
  IvshmRecordHeader h;
  uint64_t i, pos = ivshm_writer_position (w), bytes = 0;
  void *dst, *dst2;

  read_none (r);
  for (i = 0; i < G_N_ELEMENTS (sizes); i++)
    write_buffer_ok (w, i, sizes[i]);

  for (i = 0; i < G_N_ELEMENTS (sizes); i++) {
    assert_status (ivshm_reader_next (r, &rec, NULL), IVSHM_OK);
    /* next() does not consume */
    assert_status (ivshm_reader_next (r, &rec, NULL), IVSHM_OK);
    fail_unless_equals_uint64 (rec.h.pos, pos);
    fail_unless_equals_uint64 (rec.h.pts, i * 1000);
    read_buffer_ok (r, i, sizes[i]);
    pos += ivshm_record_len (sizes[i]);
    bytes += sizes[i];
  }
  read_none (r);
  fail_unless_equals_uint64 (ivshm_writer_position (w), pos);
  fail_unless_equals_uint64 (atomic_load (&hdr_of (base)->write_pos), pos);

  /* "none" values survive */
  h = buffer_info (99, 3);
  h.pts = h.dts = h.duration = h.offset = h.offset_end = IVSHM_TIME_NONE;
  h.flags = 0xffffffffu;
  assert_status (ivshm_writer_write (w, &h, "abc"), IVSHM_OK);
  assert_status (ivshm_reader_next (r, &rec, NULL), IVSHM_OK);
  fail_unless_equals_uint64 (rec.h.pts, IVSHM_TIME_NONE);
  fail_unless_equals_uint64 (rec.h.dts, IVSHM_TIME_NONE);
  fail_unless_equals_uint64 (rec.h.duration, IVSHM_TIME_NONE);
  fail_unless_equals_uint64 (rec.h.offset, IVSHM_TIME_NONE);
  fail_unless_equals_uint64 (rec.h.offset_end, IVSHM_TIME_NONE);
  fail_unless_equals_uint64 (rec.h.flags, 0xffffffffu);
  fail_unless (memcmp (rec.payload, "abc", 3) == 0);
  assert_status (ivshm_reader_release (r), IVSHM_OK);
  /* release without a record */
  assert_status (ivshm_reader_release (r), IVSHM_ERR_INVALID_ARG);

  /* reserve/commit: a shorter commit, a second reserve, bad commits, abort */
  assert_status (ivshm_writer_reserve (w, 5000, &dst), IVSHM_OK);
  fail_unless (((uintptr_t) dst) % IVSHM_RECORD_ALIGN == 0);
  assert_status (ivshm_writer_reserve (w, 10, &dst2), IVSHM_ERR_INVALID_ARG);
  fill_pattern (dst, 3000, 100);
  h = buffer_info (100, 5001);
  assert_status (ivshm_writer_commit (w, &h), IVSHM_ERR_INVALID_ARG);
  h = buffer_info (100, 3000);
  h.type = IVSHM_RECORD_PAD;
  assert_status (ivshm_writer_commit (w, &h), IVSHM_ERR_INVALID_ARG);
  h = buffer_info (100, 3000);
  assert_status (ivshm_writer_commit (w, &h), IVSHM_OK);
  assert_status (ivshm_writer_commit (w, &h), IVSHM_ERR_INVALID_ARG);
  assert_status (ivshm_writer_reserve (w, 64, &dst), IVSHM_OK);
  ivshm_writer_abort (w);
  read_buffer_ok (r, 100, 3000);
  read_none (r);

  ivshm_writer_get_stats (w, &ws);
  fail_unless_equals_uint64 (ws.records, G_N_ELEMENTS (sizes) + 2);
  fail_unless_equals_uint64 (ws.buffers, G_N_ELEMENTS (sizes) + 2);
  fail_unless_equals_uint64 (ws.bytes, bytes + 3 + 3000);
  ivshm_reader_get_stats (r, &rs);
  fail_unless_equals_uint64 (rs.records, G_N_ELEMENTS (sizes) + 2);
  fail_unless_equals_uint64 (rs.buffers, G_N_ELEMENTS (sizes) + 2);
  fail_unless_equals_uint64 (rs.bytes, bytes + 3 + 3000);
  fail_unless_equals_uint64 (rs.invalid, 0);
  fail_if (rs.joined_mid_stream);
  fail_unless_equals_uint64 (ivshm_reader_session (r),
      ivshm_writer_session (w));
  fail_unless (ivshm_writer_session (w) != 0);

  ivshm_reader_free (r);
  ivshm_writer_free (w);
  free (base);
}

GST_END_TEST;

/* ---- 2. wrap-around ------------------------------------------------------ */

GST_START_TEST (test_wrap_around)
{
  const uint64_t size = IVSHM_REGION_MIN;
  void *base = region_alloc (size);
  IvshmWriter *w = writer_new_ok (base, size, NULL);
  IvshmReader *r = reader_new_ok (base, size);
  const uint64_t n = 3000, ring = RING_64K;
  uint64_t wseq = 0, rseq = 0, pads = 0, again = 0, rng = 42;
  uint64_t *rec_pos = g_new0 (uint64_t, n);
  IvshmWriterStats ws;

  fail_unless_equals_uint64 (atomic_load (&hdr_of (base)->ring_size), ring);
  while (rseq < n) {
    /* the writer writes until full (or done) */
    while (wseq < n) {
      uint64_t len = mix64 (rng) % 9000, rlen = ivshm_record_len (len);
      uint64_t p0 = ivshm_writer_position (w), off = p0 % ring;
      /* where the record must go: here, or after a pad at the ring's start */
      uint64_t pos = off + rlen > ring ? p0 + ring - off : p0;
      IvshmStatus st = write_buffer (w, wseq, len);

      if (st == IVSHM_AGAIN) {
        again++;
        /* the pad may be out already; the same record comes next time */
        if (ivshm_writer_position (w) != p0) {
          fail_unless_equals_uint64 (ivshm_writer_position (w), pos);
          pads++;
        }
        break;
      }
      assert_status (st, IVSHM_OK);
      if (pos != p0)
        pads++;
      rec_pos[wseq] = pos;
      fail_unless_equals_uint64 (ivshm_writer_position (w), pos + rlen);
      wseq++;
      rng++;
    }
    /* the reader reads a random number of records */
    {
      uint64_t k = 1 + mix64 (rseq * 31 + 7) % 12;
      while (k-- && rseq < wseq) {
        IvshmRecord rec;
        assert_status (ivshm_reader_next (r, &rec, NULL), IVSHM_OK);
        /* never a pad: always the record at its expected position */
        fail_unless_equals_int (rec.h.type, IVSHM_RECORD_BUFFER);
        fail_unless_equals_uint64 (rec.h.pos, rec_pos[rseq]);
        fail_unless (rec.h.payload_len + sizeof (IvshmRecordHeader) <= ring -
            rec.h.pos % ring);
        read_buffer_ok (r, rseq, UINT64_MAX);
        rseq++;
      }
      if (rseq == wseq)
        read_none (r);
    }
  }
  read_none (r);
  fail_unless (again > 10, "the ring never filled up");
  fail_unless (pads > 10, "no pad was written (%" G_GUINT64_FORMAT ")", pads);
  fail_unless (ivshm_writer_position (w) > 20 * ring);
  ivshm_writer_get_stats (w, &ws);
  fail_unless_equals_uint64 (ws.records, n);
  fail_unless_equals_uint64 (ws.full_waits, again);

  g_free (rec_pos);
  ivshm_reader_free (r);
  ivshm_writer_free (w);
  free (base);
}

GST_END_TEST;

/* ---- 3. full ring, largest record --------------------------------------- */

GST_START_TEST (test_full_ring)
{
  const uint64_t size = IVSHM_REGION_MIN;
  void *base = region_alloc (size);
  IvshmWriter *w = writer_new_ok (base, size, NULL);
  IvshmReader *r = reader_new_ok (base, size);
  IvshmWriterStats ws;
  IvshmRecord rec;
  uint64_t n = 0, max, i;
  void *dst;

  /* fill it: 1000-byte payloads are 1088-byte records, 60 of them fit */
  while (write_buffer (w, n, 1000) == IVSHM_OK)
    n++;
  fail_unless_equals_uint64 (n, RING_64K / ivshm_record_len (1000));
  assert_status (write_buffer (w, n, 1000), IVSHM_AGAIN);
  ivshm_writer_get_stats (w, &ws);
  fail_unless (ws.full_waits >= 2);
  fail_unless_equals_uint64 (ws.records, n);

  /* reading without releasing frees nothing */
  assert_status (ivshm_reader_next (r, &rec, NULL), IVSHM_OK);
  assert_status (write_buffer (w, n, 1000), IVSHM_AGAIN);
  assert_status (ivshm_reader_release (r), IVSHM_OK);
  /* one released record makes room for one more */
  write_buffer_ok (w, n, 1000);
  assert_status (write_buffer (w, n + 1, 1000), IVSHM_AGAIN);
  n++;
  for (i = 1; i < n; i++)
    read_buffer_ok (r, i, 1000);
  read_none (r);

  /* the largest payload, with the write position in the middle */
  max = ivshm_writer_max_payload (w);
  fail_unless_equals_uint64 (max, RING_64K - sizeof (IvshmRecordHeader));
  fail_unless (ivshm_writer_position (w) % RING_64K != 0);
  assert_status (ivshm_writer_reserve (w, max + 1, &dst), IVSHM_ERR_TOO_BIG);
  assert_status (ivshm_writer_reserve (w, UINT64_MAX, &dst), IVSHM_ERR_TOO_BIG);
  assert_status (ivshm_writer_reserve (w, UINT64_MAX - 63, &dst),
      IVSHM_ERR_TOO_BIG);
  /* the pad goes out first; the reader must pass it to free the space */
  assert_status (write_buffer (w, 1000, max), IVSHM_AGAIN);
  fail_unless_equals_uint64 (ivshm_writer_position (w) % RING_64K, 0);
  read_none (r);
  write_buffer_ok (w, 1000, max);
  read_buffer_ok (r, 1000, max);
  read_none (r);
  /* and again, from the start of the ring */
  write_buffer_ok (w, 1001, max);
  read_buffer_ok (r, 1001, max);
  ivshm_reader_free (r);
  ivshm_writer_free (w);
  free (base);
}

GST_END_TEST;

GST_START_TEST (test_region_size_for_payload)
{
  static const uint64_t payloads[] = { 0, 1, RING_64K - 64, RING_64K - 63,
    RING_64K, 100000, 1 << 20, (1 << 20) + 1
  };
  unsigned i;

  for (i = 0; i < G_N_ELEMENTS (payloads); i++) {
    uint64_t p = payloads[i], sz = ivshm_region_size_for_payload (p);
    void *base;
    IvshmWriter *w;

    fail_unless (sz >= IVSHM_REGION_MIN);
    fail_unless ((sz & (sz - 1)) == 0, "%" G_GUINT64_FORMAT " is no power "
        "of two", sz);
    base = region_alloc (sz);
    w = writer_new_ok (base, sz, NULL);
    fail_unless (ivshm_writer_max_payload (w) >= p);
    ivshm_writer_free (w);
    if (sz > IVSHM_REGION_MIN) {
      /* the next smaller power of two is too small */
      w = writer_new_ok (base, sz / 2, NULL);
      fail_unless (ivshm_writer_max_payload (w) < p);
      ivshm_writer_free (w);
    }
    free (base);
  }
}

GST_END_TEST;

/* ---- 4. the first reader gets everything -------------------------------- */

GST_START_TEST (test_first_reader_gets_all)
{
  const uint64_t size = IVSHM_REGION_MIN;
  void *base = region_alloc (size);
  IvshmWriter *w = writer_new_ok (base, size, NULL);
  IvshmReader *r;
  IvshmReaderStats rs;
  uint64_t n = 0, i;

  write_event_ok (w, IVSHM_EVENT_STREAM_START, "stream-1");
  write_caps_ok (w, "video/x-raw, width=320");
  write_event_ok (w, IVSHM_EVENT_SEGMENT, "segment-1");
  /* without a reader the writer keeps everything, until the ring is full */
  while (write_buffer (w, n, 2000) == IVSHM_OK)
    n++;
  fail_unless (n > 20);
  assert_status (write_buffer (w, n, 2000), IVSHM_AGAIN);
  fail_unless_equals_int (ivshm_writer_count_readers (w), 0);
  /* positions start at the session base (PROTOCOL.md, "Session format") */
  fail_unless_equals_uint64 (atomic_load (&hdr_of (base)->tail),
      IVSHM_SESSION_BASE_STEP);

  r = reader_new_ok (base, size);
  ivshm_reader_get_stats (r, &rs);
  fail_if (rs.joined_mid_stream);
  fail_unless_equals_int (ivshm_writer_count_readers (w), 1);
  read_string_ok (r, IVSHM_RECORD_EVENT, IVSHM_EVENT_STREAM_START, "stream-1",
      false);
  read_string_ok (r, IVSHM_RECORD_CAPS, 0, "video/x-raw, width=320", false);
  read_string_ok (r, IVSHM_RECORD_EVENT, IVSHM_EVENT_SEGMENT, "segment-1",
      false);
  for (i = 0; i < n; i++)
    read_buffer_ok (r, i, 2000);
  read_none (r);
  /* now the space comes back */
  write_buffer_ok (w, n, 2000);
  read_buffer_ok (r, n, 2000);
  fail_unless (atomic_load (&hdr_of (base)->producer_flags) &
      IVSHM_PRODUCER_FLAG_HAD_READER);
  ivshm_reader_free (r);
  ivshm_writer_free (w);
  free (base);
}

GST_END_TEST;

/* ---- 5. mid-stream attach, sticky replay, event order ------------------- */

GST_START_TEST (test_mid_stream_attach)
{
  const uint64_t size = IVSHM_REGION_MIN;
  void *base = region_alloc (size);
  IvshmWriter *w = writer_new_ok (base, size, NULL);
  IvshmReader *a = reader_new_ok (base, size), *b, *c;
  IvshmReaderStats rs;
  uint64_t seq = 0;

  write_event_ok (w, IVSHM_EVENT_STREAM_START, "stream-1");
  write_caps_ok (w, "caps-1");
  write_event_ok (w, IVSHM_EVENT_SEGMENT, "segment-1");
  write_event_ok (w, IVSHM_EVENT_TAG, "tags-1");
  write_buffer_ok (w, seq++, 500);
  write_buffer_ok (w, seq++, 500);
  /* a caps change between buffers 2 and 3 and a non-sticky event */
  write_caps_ok (w, "caps-2");
  write_buffer_ok (w, seq++, 500);
  write_event_ok (w, IVSHM_EVENT_CUSTOM, "custom-1");
  write_buffer_ok (w, seq++, 500);

  read_string_ok (a, IVSHM_RECORD_EVENT, IVSHM_EVENT_STREAM_START, "stream-1",
      false);
  read_string_ok (a, IVSHM_RECORD_CAPS, 0, "caps-1", false);
  read_string_ok (a, IVSHM_RECORD_EVENT, IVSHM_EVENT_SEGMENT, "segment-1",
      false);
  read_string_ok (a, IVSHM_RECORD_EVENT, IVSHM_EVENT_TAG, "tags-1", false);
  read_buffer_ok (a, 0, 500);
  read_buffer_ok (a, 1, 500);
  read_string_ok (a, IVSHM_RECORD_CAPS, 0, "caps-2", false);
  read_buffer_ok (a, 2, 500);
  read_string_ok (a, IVSHM_RECORD_EVENT, IVSHM_EVENT_CUSTOM, "custom-1", false);
  read_buffer_ok (a, 3, 500);
  read_none (a);

  /* data moves on: the writer reclaims with a reading along */
  seq = cycle_ring (w, a, seq);
  fail_unless (atomic_load (&hdr_of (base)->producer_flags) &
      IVSHM_PRODUCER_FLAG_HAD_READER);
  write_event_ok (w, IVSHM_EVENT_SEGMENT, "segment-2");
  write_buffer_ok (w, seq++, 100);
  read_string_ok (a, IVSHM_RECORD_EVENT, IVSHM_EVENT_SEGMENT, "segment-2",
      false);
  read_buffer_ok (a, seq - 1, 100);

  /* b joins: the latest sticky records first, in order, then what the
   * writer writes next */
  b = reader_new_ok (base, size);
  ivshm_reader_get_stats (b, &rs);
  fail_unless (rs.joined_mid_stream);
  fail_unless_equals_int (rs.slot, 1);
  read_string_ok (b, IVSHM_RECORD_EVENT, IVSHM_EVENT_STREAM_START, "stream-1",
      true);
  read_string_ok (b, IVSHM_RECORD_CAPS, 0, "caps-2", true);
  read_string_ok (b, IVSHM_RECORD_EVENT, IVSHM_EVENT_SEGMENT, "segment-2",
      true);
  read_string_ok (b, IVSHM_RECORD_EVENT, IVSHM_EVENT_TAG, "tags-1", true);
  read_none (b);
  write_buffer_ok (w, seq++, 300);
  read_buffer_ok (b, seq - 1, 300);
  read_buffer_ok (a, seq - 1, 300);
  write_caps_ok (w, "caps-3");
  write_buffer_ok (w, seq++, 300);
  read_string_ok (b, IVSHM_RECORD_CAPS, 0, "caps-3", false);
  read_buffer_ok (b, seq - 1, 300);
  read_none (b);
  ivshm_reader_get_stats (b, &rs);
  fail_unless_equals_uint64 (rs.records, 4 + 3);

  /* a new stream-start: the old tags no longer apply */
  write_event_ok (w, IVSHM_EVENT_STREAM_START, "stream-2");
  c = reader_new_ok (base, size);
  read_string_ok (c, IVSHM_RECORD_EVENT, IVSHM_EVENT_STREAM_START, "stream-2",
      true);
  read_string_ok (c, IVSHM_RECORD_CAPS, 0, "caps-3", true);
  read_string_ok (c, IVSHM_RECORD_EVENT, IVSHM_EVENT_SEGMENT, "segment-2",
      true);
  read_none (c);
  write_buffer_ok (w, seq++, 10);
  read_buffer_ok (c, seq - 1, 10);

  ivshm_reader_free (c);
  ivshm_reader_free (b);
  ivshm_reader_free (a);
  ivshm_writer_free (w);
  free (base);
}

GST_END_TEST;

/* ---- 6. several readers -------------------------------------------------- */

GST_START_TEST (test_several_readers)
{
  const uint64_t size = IVSHM_REGION_MIN;
  void *base = region_alloc (size);
  IvshmWriter *w = writer_new_ok (base, size, NULL);
  IvshmReader *r[3];
  uint64_t next[3] = { 0, 0, 0 }, wseq = 0, n, k, i;
  const uint64_t total = 1500;

  for (i = 0; i < 3; i++)
    r[i] = reader_new_ok (base, size);
  fail_unless_equals_int (ivshm_writer_count_readers (w), 3);

  /* fill; two readers catch up, the third lags: the writer waits for it */
  while (write_buffer (w, wseq, 3000) == IVSHM_OK)
    wseq++;
  n = wseq;
  read_buffers_ok (r[0], 0, n);
  read_buffers_ok (r[1], 0, n);
  next[0] = next[1] = n;
  for (k = 0; k < 5; k++)
    assert_status (write_buffer (w, wseq, 3000), IVSHM_AGAIN);
  read_buffers_ok (r[2], 0, 1);
  next[2] = 1;
  write_buffer_ok (w, wseq++, 3000);
  assert_status (write_buffer (w, wseq, 3000), IVSHM_AGAIN);

  /* a long stream; reader i reads at most 1 + 3 * (2 - i) per round */
  while (next[0] < total || next[1] < total || next[2] < total) {
    while (wseq < total) {
      IvshmStatus st = write_buffer (w, wseq, 64 + mix64 (wseq) % 5000);
      if (st == IVSHM_AGAIN)
        break;
      assert_status (st, IVSHM_OK);
      wseq++;
    }
    for (i = 0; i < 3; i++) {
      for (k = 0; k < 1 + 3 * (2 - i) && next[i] < wseq; k++) {
        read_buffer_ok (r[i], next[i], next[i] < n + 1 ? 3000 :
            64 + mix64 (next[i]) % 5000);
        next[i]++;
      }
    }
  }
  for (i = 0; i < 3; i++) {
    read_none (r[i]);
    ivshm_reader_free (r[i]);
  }
  fail_unless_equals_int (ivshm_writer_count_readers (w), 0);
  ivshm_writer_free (w);
  free (base);
}

GST_END_TEST;

static void
heartbeat_all (void *data)
{
  IvshmReader **r = data;
  unsigned i;

  for (i = 0; i < IVSHM_MAX_READERS; i++)
    ivshm_reader_heartbeat (r[i]);
}

GST_START_TEST (test_no_slot)
{
  const uint64_t size = IVSHM_REGION_MIN;
  void *base = region_alloc (size);
  IvshmWriter *w = writer_new_ok (base, size, NULL);
  IvshmReader *r[IVSHM_MAX_READERS], *extra = NULL;
  IvshmError err = { 0 };
  unsigned i;

  IvshmReaderConfig cfg = patient_reader;
  IvshmTicker *t;

  for (i = 0; i < IVSHM_MAX_READERS; i++)
    r[i] = reader_new_ok (base, size);
  /* 32 live readers: their heartbeats move while the newcomer watches
   * (for a second, or ten under valgrind: a ticker starved that long on a
   * loaded machine would let it reap them) */
  t = ivshm_ticker_start (20 * MS, heartbeat_all, r);
  fail_unless (t != NULL);
  cfg.lease_timeout_ns = scaled (1000 * MS);
  assert_status (ivshm_reader_new (base, size, &cfg, &extra, &err),
      IVSHM_ERR_NO_SLOT);
  ivshm_ticker_stop (t);
  fail_unless (extra == NULL);
  fail_unless_equals_int (err.status, IVSHM_ERR_NO_SLOT);
  fail_unless (strstr (err.detail, "(32 by readers whose heartbeat moves)"),
      "%s", err.detail);
  ivshm_reader_free (r[5]);
  r[5] = reader_new_ok (base, size);
  for (i = 0; i < IVSHM_MAX_READERS; i++)
    ivshm_reader_free (r[i]);
  ivshm_writer_free (w);
  free (base);
}

GST_END_TEST;

/* ---- 7. corrupted header ------------------------------------------------- */

static void
expect_attach_fails (void *base, uint64_t size, IvshmStatus expected)
{
  IvshmReader *r = (IvshmReader *) & r;
  IvshmError err = { 0 };

  assert_status (ivshm_reader_new (base, size, &patient_reader, &r, &err),
      expected);
  fail_unless (r == NULL);
  fail_unless_equals_int (err.status, expected);
  fail_unless (err.detail[0] != '\0');
}

/* The corruption cases share these (they were written out twice): each
 * stores one bad value, expects the reader to fail, and puts back the copy
 * the test saved first (`saved`).
 * TRY_ATTACH: into field of the shared struct at ptr; attaching a reader
 * to (base, size) must fail with expected.
 * TRY_NEXT: into field of the record header rh; the next() of reader r
 * must fail with IVSHM_ERR_CORRUPT. */
#define TRY_ATTACH(ptr, field, value, expected) G_STMT_START {          \
    atomic_store (&(ptr)->field, value);                               \
    expect_attach_fails (base, size, expected);                        \
    memcpy ((ptr), &saved, sizeof saved);                              \
  } G_STMT_END
#define TRY_NEXT(field, value) G_STMT_START {                          \
    rh->field = value;                                                 \
    expect_next_fails (r, IVSHM_ERR_CORRUPT);                          \
    memcpy (rh, &saved, sizeof saved);                                 \
  } G_STMT_END

GST_START_TEST (test_corrupt_header)
{
  const uint64_t size = 256 * 1024;
  void *base = region_alloc (size);
  IvshmHeader *h = hdr_of (base), saved;
  IvshmWriter *w = NULL;
  IvshmReader *r;
  IvshmError err = { 0 };

  /* nobody initialised it */
  expect_attach_fails (base, size, IVSHM_ERR_NO_PRODUCER);
  expect_attach_fails (base, IVSHM_REGION_MIN - 1, IVSHM_ERR_TOO_SMALL);
  expect_attach_fails (NULL, size, IVSHM_ERR_TOO_SMALL);
  assert_status (ivshm_writer_new (base, IVSHM_REGION_MIN - 1, NULL, &w,
          &err), IVSHM_ERR_TOO_SMALL);
  fail_unless (w == NULL);

  w = writer_new_ok (base, size, NULL);
  memcpy (&saved, h, sizeof saved);
  expect_attach_fails (base, IVSHM_REGION_MIN - 1, IVSHM_ERR_TOO_SMALL);
  /* the producer mapped more than we see */
  expect_attach_fails (base, size - 4096, IVSHM_ERR_TOO_SMALL);

  TRY_ATTACH (h, magic, 0, IVSHM_ERR_NO_PRODUCER);
  TRY_ATTACH (h, magic, 0x1234, IVSHM_ERR_BAD_MAGIC);
  TRY_ATTACH (h, magic, ~IVSHM_MAGIC, IVSHM_ERR_BAD_MAGIC);
  TRY_ATTACH (h, version_major, 0, IVSHM_ERR_VERSION);
  TRY_ATTACH (h, version_major, 1, IVSHM_ERR_VERSION);
  TRY_ATTACH (h, version_major, 3, IVSHM_ERR_VERSION);
  TRY_ATTACH (h, version_major, UINT32_MAX, IVSHM_ERR_VERSION);
  TRY_ATTACH (h, region_size, size * 2, IVSHM_ERR_TOO_SMALL);
  TRY_ATTACH (h, region_size, UINT64_MAX, IVSHM_ERR_TOO_SMALL);
  TRY_ATTACH (h, region_size, 0, IVSHM_ERR_CORRUPT);
  TRY_ATTACH (h, region_size, IVSHM_REGION_MIN - 64, IVSHM_ERR_CORRUPT);
  TRY_ATTACH (h, region_size, size - 64 * 1024, IVSHM_ERR_CORRUPT);
  TRY_ATTACH (h, ring_size, 0, IVSHM_ERR_CORRUPT);
  TRY_ATTACH (h, ring_size, size, IVSHM_ERR_CORRUPT);
  TRY_ATTACH (h, ring_size, size - IVSHM_RING_OFFSET + 64, IVSHM_ERR_CORRUPT);
  TRY_ATTACH (h, ring_size, size - IVSHM_RING_OFFSET - 64, IVSHM_ERR_CORRUPT);
  TRY_ATTACH (h, ring_size, UINT64_MAX, IVSHM_ERR_CORRUPT);
  TRY_ATTACH (h, ring_offset, 0, IVSHM_ERR_CORRUPT);
  TRY_ATTACH (h, ring_offset, 4096, IVSHM_ERR_CORRUPT);
  TRY_ATTACH (h, ring_offset, UINT64_MAX, IVSHM_ERR_CORRUPT);
  TRY_ATTACH (h, slot_offset, 0, IVSHM_ERR_CORRUPT);
  TRY_ATTACH (h, slot_count, IVSHM_MAX_READERS + 1, IVSHM_ERR_CORRUPT);
  TRY_ATTACH (h, slot_size, 64, IVSHM_ERR_CORRUPT);
  TRY_ATTACH (h, sticky_offset, 0, IVSHM_ERR_CORRUPT);
  TRY_ATTACH (h, sticky_size, UINT32_MAX, IVSHM_ERR_CORRUPT);
  TRY_ATTACH (h, record_align, 32, IVSHM_ERR_CORRUPT);
  /* a tail that is not a record boundary: a first reader would start
   * reading there (the fuzzer found 65535 reading past the ring) */
  TRY_ATTACH (h, tail, 32, IVSHM_ERR_CORRUPT);
  TRY_ATTACH (h, tail, 65535, IVSHM_ERR_CORRUPT);
  /* a closed session */
  TRY_ATTACH (h, producer_state, IVSHM_PRODUCER_CLOSED, IVSHM_ERR_NO_PRODUCER);

  /* the untouched header still works */
  r = reader_new_ok (base, size);
  ivshm_reader_free (r);
  ivshm_writer_free (w);
  expect_attach_fails (base, size, IVSHM_ERR_NO_PRODUCER);
  free (base);
}

GST_END_TEST;

/* ---- 8. corrupted indexes, records and sticky area ---------------------- */

static void
expect_next_fails_once (IvshmReader * r, IvshmStatus expected)
{
  IvshmRecord rec;
  IvshmError err = { 0 };
  IvshmReaderStats before, after;

  ivshm_reader_get_stats (r, &before);
  assert_status (ivshm_reader_next (r, &rec, &err), expected);
  fail_unless_equals_int (err.status, expected);
  fail_unless (err.detail[0] != '\0');
  ivshm_reader_get_stats (r, &after);
  fail_unless_equals_uint64 (after.records, before.records);
}

/* ... and again: the same answer, not a loop or a skip */
static void
expect_next_fails (IvshmReader * r, IvshmStatus expected)
{
  IvshmRecord rec;

  expect_next_fails_once (r, expected);
  assert_status (ivshm_reader_next (r, &rec, NULL), expected);
}

GST_START_TEST (test_corrupt_ring)
{
  const uint64_t size = IVSHM_REGION_MIN, ring = RING_64K;
  void *base = region_alloc (size);
  IvshmHeader *hd = hdr_of (base);
  IvshmWriter *w = writer_new_ok (base, size, NULL);
  IvshmReader *r = reader_new_ok (base, size);
  IvshmRecordHeader *rh, saved;
  uint64_t p, wp, off;
  unsigned i;

  for (i = 0; i < 4; i++)
    write_buffer_ok (w, i, 1000);
  read_buffer_ok (r, 0, 1000);
  p = ivshm_record_len (1000);  /* the reader's position */
  wp = ivshm_writer_position (w);
  off = p % ring;

  /* write_pos: beyond the ring, backwards, unaligned, absurd */
  {
    const uint64_t bad[] = { p + ring + 64, p + 2 * ring, UINT64_MAX & ~63ull,
      UINT64_MAX, p - 64, 0, p + 65, p + 1, wp + 8
    };
    for (i = 0; i < G_N_ELEMENTS (bad); i++) {
      atomic_store (&hd->write_pos, bad[i]);
      expect_next_fails (r, IVSHM_ERR_CORRUPT);
    }
    atomic_store (&hd->write_pos, wp);
  }

  rh = ring_rec_at (base, ring, p);
  memcpy (&saved, rh, sizeof saved);
  /* a record's own position */
  TRY_NEXT (pos, p + 64);
  TRY_NEXT (pos, p + ring);
  TRY_NEXT (pos, 0);
  TRY_NEXT (pos, UINT64_MAX);
  /* payload lengths: huge, past the ring's end, overflowing, past write_pos */
  TRY_NEXT (payload_len, UINT64_MAX);
  TRY_NEXT (payload_len, UINT64_MAX - 63);
  TRY_NEXT (payload_len, UINT64_MAX - 64 - off);
  TRY_NEXT (payload_len, ring);
  TRY_NEXT (payload_len, ring - 64);
  TRY_NEXT (payload_len, ring - off - 64 + 1);
  TRY_NEXT (payload_len, ring - off);
  TRY_NEXT (payload_len, wp - p - 64 + 1);
  TRY_NEXT (payload_len, (UINT64_MAX - (p % ring)) / 2);
  /* unknown types */
  TRY_NEXT (type, 0);
  TRY_NEXT (type, IVSHM_RECORD_SKIP + 1);
  TRY_NEXT (type, 0xffff);
  /* a pad in the middle of the ring, short or long */
  TRY_NEXT (type, IVSHM_RECORD_PAD);
  rh->payload_len = ring - off - 64;
  TRY_NEXT (type, IVSHM_RECORD_PAD);

  {
    IvshmReaderStats rs;
    ivshm_reader_get_stats (r, &rs);
    fail_unless (rs.invalid >= 30, "invalid: %" G_GUINT64_FORMAT, rs.invalid);
  }
  read_buffers_ok (r, 1, 4);
  read_none (r);

  /* caught up: a new session id or a magic of 0 means a restart, other
   * magic garbage is corruption */
  {
    uint64_t sess = atomic_load (&hd->session_id);
    atomic_store (&hd->session_id, sess + 1);
    expect_next_fails (r, IVSHM_ERR_SESSION_CHANGED);
    atomic_store (&hd->session_id, sess);
    atomic_store (&hd->magic, 0);
    expect_next_fails (r, IVSHM_ERR_SESSION_CHANGED);
    atomic_store (&hd->magic, 0xdeadbeef);
    expect_next_fails (r, IVSHM_ERR_CORRUPT);
    atomic_store (&hd->magic, IVSHM_MAGIC);
    read_none (r);
  }

  /* a pad in the right place, but longer than what was published */
  {
    IvshmRecordHeader pad = { 0 };

    pad.type = IVSHM_RECORD_PAD;
    pad.pos = wp;
    pad.payload_len = ring - wp % ring - 64;
    memcpy (ring_rec_at (base, ring, wp), &pad, sizeof pad);
    atomic_store (&hd->write_pos, wp + 64);
    expect_next_fails (r, IVSHM_ERR_CORRUPT);
    /* published up to a garbage record after it: the reader passes the pad,
     * then stops at the garbage */
    atomic_store (&hd->write_pos, wp + ring - wp % ring + 64);
    memset (ring_rec_at (base, ring, 0), 0xa5, 64);
    expect_next_fails (r, IVSHM_ERR_CORRUPT);
    atomic_store (&hd->write_pos, wp);
  }
  ivshm_reader_free (r);
  ivshm_writer_free (w);
  free (base);
}

GST_END_TEST;

/* A record that ends exactly at the ring's end, with more published after
 * it (the ring wrapped): lengths that run past the ring's end but fit in
 * what was published, and in the ring's size, must be refused. Checked by
 * mutation: with the payload length compared to the ring's size instead of
 * the space to its end (reader_check_record), next() returned OK with a
 * payload reaching past the ring and this test failed. */
GST_START_TEST (test_corrupt_ring_end)
{
  const uint64_t size = IVSHM_REGION_MIN, ring = RING_64K;
  const uint64_t plen = 1024 - 64, n = ring / 1024;
  void *base = region_alloc (size);
  IvshmWriter *w = writer_new_ok (base, size, NULL);
  IvshmReader *r = reader_new_ok (base, size);
  IvshmRecordHeader *rh, saved;
  uint64_t p, i;

  fail_unless_equals_uint64 (ivshm_record_len (plen), 1024);
  fail_unless_equals_uint64 (ivshm_writer_position (w) % ring, 0);
  for (i = 0; i < n - 1; i++)
    write_buffer_ok (w, i, plen);
  read_buffers_ok (r, 0, n - 1);
  /* the last record of the ring, then two at its start */
  p = ivshm_writer_position (w);
  fail_unless_equals_uint64 (p % ring, ring - 1024);
  for (i = n - 1; i < n + 2; i++)
    write_buffer_ok (w, i, plen);
  fail_unless_equals_uint64 (ivshm_writer_position (w) - p, 3 * 1024);

  rh = ring_rec_at (base, ring, p);
  memcpy (&saved, rh, sizeof saved);
  /* one byte, one line, two records past the ring's end: all within the
   * 3 KiB published and far below the ring's size */
  TRY_NEXT (payload_len, plen + 1);
  TRY_NEXT (payload_len, plen + 64);
  TRY_NEXT (payload_len, 3 * 1024 - 64);
  read_buffers_ok (r, n - 1, n + 2);
  read_none (r);
  ivshm_reader_free (r);
  ivshm_writer_free (w);
  free (base);
}

GST_END_TEST;

GST_START_TEST (test_corrupt_sticky)
{
  const uint64_t size = IVSHM_REGION_MIN;
  void *base = region_alloc (size);
  IvshmStickyHeader *sh = sticky_at (base), saved;
  IvshmRecordHeader *first, saved_rec;
  IvshmWriter *w = writer_new_ok (base, size, NULL);
  IvshmReader *a = reader_new_ok (base, size), *b;
  const uint64_t cap = IVSHM_STICKY_SIZE - sizeof (IvshmStickyHeader);

  write_event_ok (w, IVSHM_EVENT_STREAM_START, "s");
  write_caps_ok (w, "c");
  read_string_ok (a, IVSHM_RECORD_EVENT, IVSHM_EVENT_STREAM_START, "s", false);
  read_string_ok (a, IVSHM_RECORD_CAPS, 0, "c", false);
  cycle_ring (w, a, 0);
  memcpy (&saved, sh, sizeof saved);

  TRY_ATTACH (sh, len, (uint32_t) cap + 64, IVSHM_ERR_CORRUPT);
  TRY_ATTACH (sh, len, UINT32_MAX, IVSHM_ERR_CORRUPT);
  TRY_ATTACH (sh, len, UINT32_MAX & ~63u, IVSHM_ERR_CORRUPT);
  TRY_ATTACH (sh, len, 65, IVSHM_ERR_CORRUPT);
  /* a seqlock that never settles, or records not yet published */
  TRY_ATTACH (sh, seq, 1, IVSHM_AGAIN);
  TRY_ATTACH (sh, applies_from, UINT64_MAX, IVSHM_AGAIN);

  /* bad records inside a sane length: found when replayed */
  first = (IvshmRecordHeader *) ((uint8_t *) sh + sizeof *sh);
  memcpy (&saved_rec, first, sizeof saved_rec);
#define TRY_REC(field, value) G_STMT_START {                           \
    first->field = value;                                              \
    b = reader_new_ok (base, size);                                    \
    expect_next_fails_once (b, IVSHM_ERR_CORRUPT);                     \
    ivshm_reader_free (b);                                             \
    memcpy (first, &saved_rec, sizeof saved_rec);                      \
  } G_STMT_END
  TRY_REC (payload_len, UINT64_MAX);
  TRY_REC (payload_len, UINT64_MAX - 63);
  TRY_REC (payload_len, cap);
  TRY_REC (payload_len, 256 - 64 + 1);  /* past the 2 records' 256 bytes */
  TRY_REC (type, IVSHM_RECORD_BUFFER);
  TRY_REC (type, IVSHM_RECORD_PAD);
  TRY_REC (type, 77);
#undef TRY_REC

  /* restored: it replays fine */
  b = reader_new_ok (base, size);
  read_string_ok (b, IVSHM_RECORD_EVENT, IVSHM_EVENT_STREAM_START, "s", true);
  read_string_ok (b, IVSHM_RECORD_CAPS, 0, "c", true);
  read_none (b);
  ivshm_reader_free (b);
  ivshm_reader_free (a);
  ivshm_writer_free (w);
  free (base);
}

GST_END_TEST;

GST_START_TEST (test_sticky_overflow)
{
  const uint64_t size = IVSHM_REGION_MIN * 2;
  void *base = region_alloc (size);
  IvshmWriter *w = writer_new_ok (base, size, NULL);
  IvshmReader *a = reader_new_ok (base, size), *b;
  IvshmWriterStats ws;
  char *big = g_malloc (IVSHM_STICKY_SIZE);

  memset (big, 'x', IVSHM_STICKY_SIZE - 1);
  big[IVSHM_STICKY_SIZE - 1] = '\0';
  write_caps_ok (w, "small-caps");
  write_event_ok (w, IVSHM_EVENT_SEGMENT, "seg");
  /* caps too big for the sticky area */
  write_caps_ok (w, big);
  ivshm_writer_get_stats (w, &ws);
  fail_unless (ws.sticky_overflows > 0);
  fail_unless (atomic_load (&hdr_of (base)->producer_flags) &
      IVSHM_PRODUCER_FLAG_STICKY_OVERFLOW);
  read_string_ok (a, IVSHM_RECORD_CAPS, 0, "small-caps", false);
  read_string_ok (a, IVSHM_RECORD_EVENT, IVSHM_EVENT_SEGMENT, "seg", false);
  read_string_ok (a, IVSHM_RECORD_CAPS, 0, big, false);
  cycle_ring (w, a, 0);

  /* a late reader must not be told the stale small caps */
  b = reader_new_ok (base, size);
  read_string_ok (b, IVSHM_RECORD_EVENT, IVSHM_EVENT_SEGMENT, "seg", true);
  read_none (b);
  ivshm_reader_free (b);
  ivshm_reader_free (a);
  ivshm_writer_free (w);
  g_free (big);
  free (base);
}

GST_END_TEST;

/* ---- 9. hostile reader slots -------------------------------------------- */

/* An evicted reader learns it at once, or at the latest when it releases
 * the record it was handed. */
static void
expect_evicted (IvshmReader * r)
{
  IvshmRecord rec;
  IvshmStatus st = ivshm_reader_next (r, &rec, NULL);

  if (st == IVSHM_OK)
    assert_status (ivshm_reader_release (r), IVSHM_ERR_EVICTED);
  else
    assert_status (st, IVSHM_ERR_EVICTED);
}

GST_START_TEST (test_hostile_slot)
{
  const uint64_t size = IVSHM_REGION_MIN;
  void *base = region_alloc (size);
  IvshmWriter *w = writer_new_ok (base, size, NULL);
  IvshmReader *good = reader_new_ok (base, size), *bad;
  IvshmWriterStats ws;
  IvshmReaderStats rs;
  uint64_t seq = 0, s0, k;
  /* read_pos: without a claim's tag (its low 6 bits 0; at the record
   * and at write_pos), far beyond write_pos, behind the tail (tagged) */
  enum
  { UNTAGGED, UNTAGGED_END, BEYOND, BEHIND, N_KINDS };

  for (k = 0; k < N_KINDS; k++) {
    IvshmReaderSlot *s;
    uint64_t v;

    bad = reader_new_ok (base, size);
    ivshm_reader_get_stats (bad, &rs);
    s = slot_at (base, rs.slot);
    s0 = seq;
    write_buffer_ok (w, seq++, 100);
    write_buffer_ok (w, seq++, 100);
    read_buffer_ok (bad, s0, 100);
    read_buffers_ok (good, s0, seq);
    v = ivshm_writer_position (w) - ivshm_record_len (100);
    if (k == UNTAGGED_END)
      v = ivshm_writer_position (w);
    else if (k == BEYOND)
      v += (UINT64_C (1) << 40) + 1;
    else if (k == BEHIND)
      v = 1;                    /* the tail has moved on by now */
    fail_unless (k != BEHIND || atomic_load (&hdr_of (base)->tail) > 0);
    atomic_store (&s->read_pos, v);
    /* the writer needs space and goes on past it */
    seq = cycle_ring (w, good, seq);
    ivshm_writer_get_stats (w, &ws);
    if (k == BEHIND) {
      IvshmRecord rec;

      /* below the tail a slot holds nothing back (a reader attaching
       * passes there for a moment), so it is neither counted nor evicted;
       * the reader behind it finds its records overwritten */
      fail_unless_equals_uint64 (ws.invalid_slots, k);
      fail_unless_equals_int (atomic_load (&s->state), IVSHM_SLOT_ACTIVE);
      assert_status (ivshm_reader_next (bad, &rec, NULL), IVSHM_ERR_CORRUPT);
      ivshm_reader_free (bad);
      fail_unless_equals_int (atomic_load (&s->state), IVSHM_SLOT_FREE);
      fail_unless_equals_int (ivshm_writer_count_readers (w), 1);
      continue;
    }
    fail_unless_equals_uint64 (ws.invalid_slots, k + 1);
    /* evicted, but still taken until the reader lets go */
    fail_unless_equals_int (atomic_load (&s->state), IVSHM_SLOT_EVICTED);
    expect_evicted (bad);
    assert_status (ivshm_reader_release (bad), IVSHM_ERR_INVALID_ARG);
    ivshm_reader_free (bad);
    fail_unless_equals_int (atomic_load (&s->state), IVSHM_SLOT_FREE);
    fail_unless_equals_uint64 (atomic_load (&s->owner), 0);
    fail_unless_equals_int (ivshm_writer_count_readers (w), 1);
  }
  ivshm_writer_get_stats (w, &ws);
  fail_unless_equals_uint64 (ws.readers_evicted, 0);
  ivshm_reader_free (good);
  ivshm_writer_free (w);
  free (base);
}

GST_END_TEST;

/* An evicted reader must leave the slot it lost alone: another reader may
 * own it now. */
GST_START_TEST (test_evicted_reader_leaves_slot_alone)
{
  const uint64_t size = IVSHM_REGION_MIN;
  void *base = region_alloc (size);
  IvshmWriter *w = writer_new_ok (base, size, NULL);
  IvshmReader *a = reader_new_ok (base, size), *b;
  IvshmReaderStats rs;
  IvshmRecord rec;
  IvshmWriterStats ws;
  uint64_t seq = 0, a_pos, b_pos, base0 = ivshm_writer_position (w);
  IvshmReaderSlot *s;

  /* a reads up to the end of the ring but for 4 KiB */
  while (ivshm_writer_position (w) - base0 + ivshm_record_len (5000) <=
      RING_64K)
    write_buffer_ok (w, seq++, 5000);
  read_buffers_ok (a, 0, seq);
  a_pos = ivshm_writer_position (w);
  fail_unless_equals_uint64 (a_pos - base0, RING_64K - 4096);
  /* a record that does not fit before the end: a pad, then the record */
  write_buffer_ok (w, seq++, 5000);
  fail_unless_equals_uint64 (ivshm_writer_position (w) - base0,
      RING_64K + ivshm_record_len (5000));
  fail_unless_equals_int (ring_rec_at (base, RING_64K, a_pos)->type,
      IVSHM_RECORD_PAD);
  /* the writer evicts a (any reason will do: here its slot turns invalid) */
  ivshm_reader_get_stats (a, &rs);
  s = slot_at (base, rs.slot);
  atomic_store (&s->read_pos, a_pos);   /* no claim's tag */
  /* counting readers changes nothing; reclaiming space evicts */
  fail_unless_equals_int (ivshm_writer_count_readers (w), 0);
  fail_unless_equals_int (atomic_load (&s->state), IVSHM_SLOT_ACTIVE);
  writer_reclaim_now (w);
  ivshm_writer_get_stats (w, &ws);
  fail_unless_equals_uint64 (ws.invalid_slots, 1);
  fail_unless_equals_int (atomic_load (&s->state), IVSHM_SLOT_EVICTED);
  /* the evicted slot stays a's until a lets go or a lease passes, so b
   * gets another one; here the stale slot is handed over by force, as if
   * the lease had passed */
  b = reader_new_ok (base, size);
  ivshm_reader_get_stats (b, &rs);
  fail_unless (slot_at (base, rs.slot) != s);
  ivshm_reader_free (b);
  atomic_store (&s->state, IVSHM_SLOT_FREE);
  atomic_store (&s->owner, 0);
  b = reader_new_ok (base, size);
  ivshm_reader_get_stats (b, &rs);
  fail_unless (slot_at (base, rs.slot) == s);
  b_pos = atomic_load (&s->read_pos);
  /* a, not knowing yet, reads on: it meets the pad and skips it, but the
   * read position it publishes is no longer its own */
  (void) ivshm_reader_next (a, &rec, NULL);
  fail_unless_equals_uint64 (atomic_load (&s->read_pos), b_pos);
  expect_evicted (a);
  fail_unless_equals_uint64 (atomic_load (&s->read_pos), b_pos);
  ivshm_reader_free (a);
  fail_unless_equals_uint64 (atomic_load (&s->owner) != 0, 1);
  ivshm_reader_free (b);
  ivshm_writer_free (w);
  free (base);
}

GST_END_TEST;

/* ---- 10. lease expiry ---------------------------------------------------- */

static void
reader_beat (void *data)
{
  ivshm_reader_heartbeat (data);
}

static void
writer_beat (void *data)
{
  ivshm_writer_heartbeat (data);
}

GST_START_TEST (test_lease_expiry)
{
  const uint64_t size = IVSHM_REGION_MIN;
  void *base = region_alloc (size);
  IvshmWriterConfig cfg = { 50 * MS, 0, 0 };
  IvshmWriter *w = writer_new_ok (base, size, &cfg);
  IvshmReader *r = reader_new_ok (base, size);
  IvshmWriterStats ws;
  uint64_t seq = 0, start, evicted_after, deadline;
  IvshmStatus st;

  while (write_buffer (w, seq, 4000) == IVSHM_OK)
    seq++;
  read_buffer_ok (r, 0, 4000);
  /* Lagging but alive: the writer waits, for much longer than the lease.
   * The reader's heartbeat moves before every look of the writer, so
   * however late a look comes on a loaded machine, it sees it move. */
  start = ivshm_now_ns ();
  while (ivshm_now_ns () - start < 300 * MS) {
    reader_beat (r);
    assert_status (write_buffer (w, seq + 100, 65000), IVSHM_AGAIN);
    sleep_ms (2);
  }
  ivshm_writer_get_stats (w, &ws);
  fail_unless_equals_uint64 (ws.readers_evicted, 0);
  fail_unless_equals_int (ivshm_writer_count_readers (w), 1);
  /* and it still reads */
  read_buffer_ok (r, 1, 4000);

  /* its heartbeat stops after one last beat: evicted after the lease,
   * which counts from the first look that saw that beat (after `start`).
   * Mutation: with a lease of 10 ms in the writer's config, this fails. */
  reader_beat (r);
  start = ivshm_now_ns ();
  deadline = start + scaled (5000 * MS);
  while ((st = write_buffer (w, seq + 100, 65000)) == IVSHM_AGAIN) {
    fail_unless (ivshm_now_ns () < deadline, "never evicted");
    sleep_ms (2);
  }
  assert_status (st, IVSHM_OK);
  evicted_after = ivshm_now_ns () - start;
  fail_unless (evicted_after > 50 * MS, "evicted %" G_GUINT64_FORMAT
      " ms after its last heartbeat, with a lease of 50 ms",
      evicted_after / MS);
  ivshm_writer_get_stats (w, &ws);
  fail_unless_equals_uint64 (ws.readers_evicted, 1);
  fail_unless_equals_uint64 (ws.invalid_slots, 0);
  fail_unless_equals_int (ivshm_writer_count_readers (w), 0);
  expect_evicted (r);
  ivshm_reader_free (r);
  ivshm_writer_free (w);
  free (base);
}

GST_END_TEST;

/* ---- 11. session changes ------------------------------------------------- */

GST_START_TEST (test_session_change_after_close)
{
  const uint64_t size = IVSHM_REGION_MIN;
  void *base = region_alloc (size);
  IvshmWriter *w1 = writer_new_ok (base, size, NULL), *w2;
  IvshmReader *r = reader_new_ok (base, size), *r2;
  IvshmRecord rec;
  uint64_t s1;

  write_buffer_ok (w1, 0, 10);
  read_buffer_ok (r, 0, 10);
  s1 = ivshm_writer_session (w1);
  ivshm_writer_free (w1);
  /* closed and drained */
  expect_next_fails (r, IVSHM_ERR_PRODUCER_GONE);
  expect_attach_fails (base, size, IVSHM_ERR_NO_PRODUCER);

  /* a new producer on the same memory: no wait, a new session */
  w2 = writer_new_ok (base, size, NULL);
  fail_unless (ivshm_writer_session (w2) != s1);
  write_buffer_ok (w2, 1, 10);
  expect_next_fails (r, IVSHM_ERR_SESSION_CHANGED);
  assert_status (ivshm_reader_release (r), IVSHM_ERR_INVALID_ARG);
  ivshm_reader_free (r);

  r2 = reader_new_ok (base, size);
  fail_unless_equals_uint64 (ivshm_reader_session (r2),
      ivshm_writer_session (w2));
  read_buffer_ok (r2, 1, 10);
  assert_status (ivshm_reader_next (r2, &rec, NULL), IVSHM_AGAIN);
  ivshm_reader_free (r2);
  ivshm_writer_free (w2);
  free (base);
}

GST_END_TEST;

GST_START_TEST (test_producer_busy_and_takeover)
{
  const uint64_t size = IVSHM_REGION_MIN;
  void *base = region_alloc (size);
  IvshmWriterConfig cfg1 = { 0, 10 * MS, 0 };
  IvshmWriterConfig cfg2 = { 0, 10 * MS, 150 * MS };
  /* the newcomer watches the busy producer for a second (ten under
   * valgrind): a ticker starved for that long would let it take over */
  IvshmWriterConfig cfg_busy = { 0, 10 * MS, scaled (1000 * MS) };
  IvshmWriter *w1 = writer_new_ok (base, size, &cfg1), *w2 = NULL;
  IvshmReader *r = reader_new_ok (base, size), *r2;
  IvshmTicker *t = ivshm_ticker_start (5 * MS, writer_beat, w1);
  IvshmError err = { 0 };
  uint64_t s1 = ivshm_writer_session (w1), start;

  fail_unless (t != NULL);
  write_buffer_ok (w1, 0, 10);
  /* w1's heartbeat moves: w2 must not take over */
  start = ivshm_now_ns ();
  assert_status (ivshm_writer_new (base, size, &cfg_busy, &w2, &err),
      IVSHM_ERR_PRODUCER_BUSY);
  fail_unless (w2 == NULL);
  fail_unless_equals_int (err.status, IVSHM_ERR_PRODUCER_BUSY);
  /* it gives up after its watch, it does not wait for the producer */
  fail_unless (ivshm_now_ns () - start < cfg_busy.takeover_wait_ns +
      scaled (10000 * MS));
  /* nothing was touched */
  fail_unless_equals_uint64 (atomic_load (&hdr_of (base)->session_id), s1);
  fail_unless_equals_uint64 (atomic_load (&hdr_of (base)->magic), IVSHM_MAGIC);
  write_buffer_ok (w1, 1, 10);
  read_buffer_ok (r, 0, 10);
  read_buffer_ok (r, 1, 10);

  /* w1 hangs (its heartbeat stops, the session stays ACTIVE): w2 waits
   * takeover_wait_ns, then takes over */
  ivshm_ticker_stop (t);
  start = ivshm_now_ns ();
  w2 = writer_new_ok (base, size, &cfg2);
  fail_unless (ivshm_now_ns () - start >= 100 * MS);
  fail_unless (ivshm_writer_session (w2) != s1);
  fail_unless_equals_uint64 (atomic_load (&hdr_of (base)->session_id),
      ivshm_writer_session (w2));

  /* freeing the old writer must not close the new session */
  ivshm_writer_free (w1);
  fail_unless_equals_int (atomic_load (&hdr_of (base)->producer_state),
      IVSHM_PRODUCER_ACTIVE);
  r2 = reader_new_ok (base, size);
  write_buffer_ok (w2, 2, 10);
  read_buffer_ok (r2, 2, 10);
  ivshm_reader_free (r2);

  /* the old reader notices the new session */
  expect_next_fails (r, IVSHM_ERR_SESSION_CHANGED);
  ivshm_reader_free (r);
  ivshm_writer_free (w2);
  free (base);
}

GST_END_TEST;

/* ---- 12. producer gone --------------------------------------------------- */

GST_START_TEST (test_producer_gone_heartbeat)
{
  const uint64_t size = IVSHM_REGION_MIN;
  void *base = region_alloc (size);
  IvshmWriterConfig wcfg = { 0, 10 * MS, 0 };
  IvshmReaderConfig rcfg = { 100 * MS };
  IvshmWriter *w = writer_new_ok (base, size, &wcfg);
  IvshmReader *r = NULL;
  IvshmRecord rec;
  IvshmStatus st;
  uint64_t start, before, after = 0, seen = 0;

  assert_status (ivshm_reader_new (base, size, &rcfg, &r, NULL), IVSHM_OK);
  write_buffer_ok (w, 0, 10);
  write_buffer_ok (w, 1, 10);

  /* A heartbeat that moves keeps the producer alive. It moves before
   * every poll, so however late a poll comes on a loaded machine, the
   * reader sees it move. */
  start = ivshm_now_ns ();
  read_buffer_ok (r, 0, 10);
  read_buffer_ok (r, 1, 10);
  while (ivshm_now_ns () - start < 300 * MS) {
    writer_beat (w);
    assert_status (ivshm_reader_next (r, &rec, NULL), IVSHM_AGAIN);
    sleep_ms (5);
  }

  /* A stuck producer: gone after the configured timeout, counted from the
   * poll that saw its last beat, whatever the scheduler does. Bounds that
   * hold on a loaded machine: a poll that ends GONE ends more than 100 ms
   * after the last beat (the reader saw it move after `start`); a poll
   * that starts more than 100 ms after the first poll saw the beat must
   * end GONE (with the default timeout, 2 s, it does not: mutation). */
  writer_beat (w);
  start = ivshm_now_ns ();
  for (;;) {
    before = ivshm_now_ns ();
    st = ivshm_reader_next (r, &rec, NULL);
    after = ivshm_now_ns ();
    if (st != IVSHM_AGAIN)
      break;
    if (seen == 0)
      seen = after;             /* the poll that saw the last beat */
    fail_unless (before < seen
        || before - seen <= 100 * MS,
        "still AGAIN %" G_GUINT64_FORMAT
        " ms after the reader saw the last heartbeat, with "
        "producer_timeout_ns = 100 ms", (before - seen) / MS);
    sleep_ms (5);
  }
  assert_status (st, IVSHM_ERR_PRODUCER_GONE);
  fail_unless (after - start > 100 * MS, "PRODUCER_GONE %" G_GUINT64_FORMAT
      " ms after the last heartbeat, with producer_timeout_ns = 100 ms",
      (after - start) / MS);
  ivshm_reader_free (r);
  ivshm_writer_free (w);
  free (base);
}

GST_END_TEST;

GST_START_TEST (test_producer_gone_drain)
{
  const uint64_t size = IVSHM_REGION_MIN;
  void *base = region_alloc (size);
  IvshmWriter *w = writer_new_ok (base, size, NULL);
  IvshmReader *r = reader_new_ok (base, size);

  write_caps_ok (w, "caps");
  write_buffer_ok (w, 0, 100);
  write_buffer_ok (w, 1, 0);
  write_event_ok (w, IVSHM_EVENT_EOS, "eos");
  ivshm_writer_free (w);
  read_string_ok (r, IVSHM_RECORD_CAPS, 0, "caps", false);
  read_buffer_ok (r, 0, 100);
  read_buffer_ok (r, 1, 0);
  read_string_ok (r, IVSHM_RECORD_EVENT, IVSHM_EVENT_EOS, "eos", false);
  expect_next_fails (r, IVSHM_ERR_PRODUCER_GONE);
  ivshm_reader_free (r);
  free (base);
}

GST_END_TEST;

/* ---- 13. across processes ------------------------------------------------ */

#define XP_RECORDS 2000
#define XP_SIZE (256 * 1024)

static uint64_t
xp_len (uint64_t seq)
{
  return mix64 (seq ^ 0x5555) % 20000;
}

static int
xp_child (void *base)
{
  IvshmWriter *w = NULL;
  /* the reader heartbeats (as the source element does); the lease is
   * fitted to the time scale too, for a valgrind run on a loaded machine */
  IvshmWriterConfig cfg = { scaled (3000 * MS), 10 * MS, 0 };
  uint64_t seq = 0, deadline = ivshm_now_ns () + scaled (20000 * MS);

  if (ivshm_writer_new (base, XP_SIZE, &cfg, &w, NULL) != IVSHM_OK)
    return 2;
  while (seq < XP_RECORDS) {
    uint64_t len = xp_len (seq);
    IvshmRecordHeader h = buffer_info (seq, len);
    void *dst;
    IvshmStatus st;

    ivshm_writer_heartbeat (w);
    st = ivshm_writer_reserve (w, len, &dst);
    if (st == IVSHM_AGAIN) {
      if (ivshm_now_ns () > deadline)
        return 3;
      sleep_ms (1);
      continue;
    }
    if (st != IVSHM_OK)
      return 4;
    fill_pattern (dst, len, seq);
    /* the checksum travels in the header */
    h.offset_end = fnv1a (dst, len);
    if (ivshm_writer_commit (w, &h) != IVSHM_OK)
      return 5;
    seq++;
  }
  ivshm_writer_free (w);
  return 0;
}

GST_START_TEST (test_cross_process)
{
  void *base = region_map_shared (XP_SIZE);
  IvshmReader *r = NULL;
  IvshmTicker *t = NULL;
  IvshmStatus st;
  uint64_t seq = 0, deadline = ivshm_now_ns () + scaled (30000 * MS);
  int status = 0;
  pid_t pid;

  pid = fork ();
  fail_unless (pid >= 0);
  if (pid == 0)
    _exit (xp_child (base));

  /* wait for the producer */
  while ((st = ivshm_reader_new (base, XP_SIZE, &patient_reader, &r,
              NULL)) != IVSHM_OK) {
    fail_unless (st == IVSHM_ERR_NO_PRODUCER || st == IVSHM_AGAIN,
        "reader_new: %s", ivshm_status_name (st));
    if (ivshm_now_ns () > deadline)
      break;
    sleep_ms (1);
  }
  /* the reader keeps its slot as the source element does: a heartbeat
   * from a thread of its own, however slow the reading is */
  if (r)
    t = ivshm_ticker_start (25 * MS, reader_beat, r);
  if (r) {
    for (;;) {
      IvshmRecord rec;
      IvshmError err = { 0 };
      uint64_t sum;
      gboolean pattern_ok;

      st = ivshm_reader_next (r, &rec, &err);
      if (st == IVSHM_AGAIN) {
        if (ivshm_now_ns () > deadline)
          break;
        sleep_ms (1);
        continue;
      }
      if (st != IVSHM_OK)
        break;
      /* the shared bytes count only once release says they were still
       * this reader's while it read them (not EVICTED) */
      sum = fnv1a (rec.payload, rec.h.payload_len);
      pattern_ok = check_pattern (rec.payload, rec.h.payload_len, seq);
      assert_status (ivshm_reader_release (r), IVSHM_OK);
      fail_unless_equals_int (rec.h.type, IVSHM_RECORD_BUFFER);
      fail_unless_equals_uint64 (rec.h.pts, seq * 1000);
      fail_unless_equals_uint64 (rec.h.payload_len, xp_len (seq));
      fail_unless_equals_uint64 (rec.h.offset_end, sum);
      fail_unless (pattern_ok);
      seq++;
    }
  }
  if (t)
    ivshm_ticker_stop (t);
  if (ivshm_now_ns () > deadline)
    kill (pid, SIGKILL);
  fail_unless_equals_int (waitpid (pid, &status, 0), pid);
  fail_unless (WIFEXITED (status) && WEXITSTATUS (status) == 0,
      "child writer failed (status 0x%x; under valgrind, exit status 1 "
      "can also be leaks it inherited from earlier failed tests)", status);
  fail_unless (r != NULL, "no producer appeared");
  assert_status (st, IVSHM_ERR_PRODUCER_GONE);
  fail_unless_equals_uint64 (seq, XP_RECORDS);
  ivshm_reader_free (r);
  munmap (base, XP_SIZE);
}

GST_END_TEST;


/* ---- 14. spans: several reservations in flight (zero-copy writes) ------- */

static void
commit_span_ok (IvshmWriter * w, IvshmSpan * sp, uint64_t seq, uint64_t len)
{
  IvshmRecordHeader h = buffer_info (seq, len);

  fill_pattern (sp->payload, len, seq);
  assert_status (ivshm_writer_commit_span (w, sp, &h), IVSHM_OK);
}

GST_START_TEST (test_spans_in_order)
{
  const uint64_t size = 1024 * 1024;
  void *base = region_alloc (size);
  IvshmWriter *w = writer_new_ok (base, size, NULL);
  IvshmReader *r = reader_new_ok (base, size);
  IvshmSpan sp[3];
  uint64_t i, pos0;

  /* three reservations in flight, committed in order: each is published
   * as it is committed, with its payload where it was reserved */
  for (i = 0; i < 3; i++) {
    assert_status (ivshm_writer_reserve_span (w, 3000, &sp[i]), IVSHM_OK);
    fail_unless (((uintptr_t) sp[i].payload) % IVSHM_RECORD_ALIGN == 0);
    fail_unless (sp[i].capacity >= 3000);
  }
  pos0 = ivshm_writer_position (w);
  read_none (r);
  for (i = 0; i < 3; i++) {
    IvshmRecord rec;

    /* a shorter payload than reserved leaves a skip behind the record */
    commit_span_ok (w, &sp[i], i, 1000 + i);
    fail_unless (ivshm_writer_position (w) > pos0);
    assert_status (ivshm_reader_next (r, &rec, NULL), IVSHM_OK);
    fail_unless (rec.payload == sp[i].payload, "not read in place");
    assert_status (ivshm_reader_release (r), IVSHM_OK);
    read_none (r);
    /* committed twice: stale */
    assert_status (ivshm_writer_commit_span (w, &sp[i], &rec.h),
        IVSHM_ERR_STALE);
    ivshm_writer_release_span (w, &sp[i]);
  }
  {
    IvshmWriterStats ws;
    ivshm_writer_get_stats (w, &ws);
    fail_unless_equals_uint64 (ws.cancelled, 0);
    fail_unless_equals_uint64 (ws.buffers, 3);
  }
  ivshm_reader_free (r);
  ivshm_writer_free (w);
  free (base);
}

GST_END_TEST;

GST_START_TEST (test_spans_out_of_order)
{
  const uint64_t size = 1024 * 1024;
  void *base = region_alloc (size);
  IvshmWriter *w = writer_new_ok (base, size, NULL);
  IvshmReader *r = reader_new_ok (base, size);
  IvshmSpan a, b, c;
  IvshmRecordHeader h = buffer_info (0, 100);
  IvshmWriterStats ws;

  assert_status (ivshm_writer_reserve_span (w, 5000, &a), IVSHM_OK);
  assert_status (ivshm_writer_reserve_span (w, 5000, &b), IVSHM_OK);
  assert_status (ivshm_writer_reserve_span (w, 5000, &c), IVSHM_OK);
  /* b first: a, reserved before it, can no longer come before it in the
   * ring, so it turns into a skip and its commit finds it stale */
  commit_span_ok (w, &b, 1, 5000);
  assert_status (ivshm_writer_commit_span (w, &a, &h), IVSHM_ERR_STALE);
  read_buffer_ok (r, 1, 5000);
  read_none (r);
  /* c, still pending, is cancelled explicitly: nothing is published */
  ivshm_writer_cancel_span (w, &c);
  read_none (r);
  assert_status (ivshm_writer_commit_span (w, &c, &h), IVSHM_ERR_STALE);
  /* a record written afterwards comes next */
  write_buffer_ok (w, 2, 10);
  read_buffer_ok (r, 2, 10);
  ivshm_writer_get_stats (w, &ws);
  fail_unless_equals_uint64 (ws.cancelled, 2);
  ivshm_writer_release_span (w, &a);
  ivshm_writer_release_span (w, &b);
  ivshm_writer_release_span (w, &c);
  ivshm_reader_free (r);
  ivshm_writer_free (w);
  free (base);
}

GST_END_TEST;

/* A span that is published and read by everyone still keeps its space while
 * a local reference (a pool buffer) points into it. */
GST_START_TEST (test_span_keeps_space_until_released)
{
  const uint64_t size = IVSHM_REGION_MIN;
  void *base = region_alloc (size);
  IvshmWriter *w = writer_new_ok (base, size, NULL);
  IvshmReader *r = reader_new_ok (base, size);
  IvshmSpan held;
  uint64_t seq = 0, first;
  void *dst;

  assert_status (ivshm_writer_reserve_span (w, 1000, &held), IVSHM_OK);
  commit_span_ok (w, &held, seq++, 1000);
  read_buffer_ok (r, 0, 1000);
  /* fill the rest of the ring: the reader keeps up, but the writer must
   * stop short of the held span */
  first = seq;
  while (write_buffer (w, seq, 1000) == IVSHM_OK) {
    read_buffer_ok (r, seq, 1000);
    seq++;
    fail_unless (seq < 1000, "the held span was overwritten");
  }
  fail_unless (seq - first >= 40, "only %" G_GUINT64_FORMAT " records",
      seq - first);
  fill_pattern (held.payload, 1000, 0);
  fail_unless (check_pattern (held.payload, 1000, 0));
  /* once released, its space is reused */
  ivshm_writer_release_span (w, &held);
  write_buffer_ok (w, seq, 1000);
  read_buffer_ok (r, seq, 1000);
  /* the legacy API still takes one reservation at a time */
  assert_status (ivshm_writer_reserve (w, 10, &dst), IVSHM_OK);
  assert_status (ivshm_writer_reserve (w, 10, &dst), IVSHM_ERR_INVALID_ARG);
  ivshm_writer_abort (w);
  read_none (r);
  ivshm_reader_free (r);
  ivshm_writer_free (w);
  free (base);
}

GST_END_TEST;


/* Spans released without a commit (pool buffers dropped unpushed) turn
 * into skips by themselves: they neither block publication nor fill the
 * ring, whether or not a reader has attached yet. */
GST_START_TEST (test_spans_dropped)
{
  const uint64_t size = IVSHM_REGION_MIN;
  void *base = region_alloc (size);
  IvshmWriter *w = writer_new_ok (base, size, NULL);
  IvshmReader *r = NULL;
  IvshmSpan sp;
  IvshmRecord rec;
  uint64_t i;

  /* before any reader: the ring never fills with dropped spans */
  for (i = 0; i < 200; i++) {
    assert_status (ivshm_writer_reserve_span (w, 4000, &sp), IVSHM_OK);
    ivshm_writer_release_span (w, &sp);
  }
  /* the first reader starts after them, with the first real record */
  write_buffer_ok (w, 0, 100);
  r = reader_new_ok (base, size);
  read_buffer_ok (r, 0, 100);
  read_none (r);
  /* with a reader: the same, and it never sees them */
  for (i = 0; i < 200; i++) {
    assert_status (ivshm_writer_reserve_span (w, 4000, &sp), IVSHM_OK);
    ivshm_writer_release_span (w, &sp);
    assert_status (ivshm_reader_next (r, &rec, NULL), IVSHM_AGAIN);
  }
  write_buffer_ok (w, 1, 100);
  read_buffer_ok (r, 1, 100);
  ivshm_reader_free (r);
  ivshm_writer_free (w);
  free (base);
}

GST_END_TEST;

/* ---- 15. holds: records read in place (zero-copy reads) ------------------ */

static IvshmHold
hold_buffer_ok (IvshmReader * r, uint64_t seq, const uint8_t ** payload)
{
  IvshmRecord rec;
  IvshmHold h;

  assert_status (ivshm_reader_next (r, &rec, NULL), IVSHM_OK);
  fail_unless_equals_int (rec.h.type, IVSHM_RECORD_BUFFER);
  fail_unless_equals_uint64 (rec.h.pts, buffer_info (seq, 0).pts);
  assert_status (ivshm_reader_hold (r, &h), IVSHM_OK);
  *payload = rec.payload;
  return h;
}

GST_START_TEST (test_holds)
{
  const uint64_t size = IVSHM_REGION_MIN;
  void *base = region_alloc (size);
  IvshmWriter *w = writer_new_ok (base, size, NULL);
  IvshmReader *r = reader_new_ok (base, size);
  IvshmHold h[3];
  const uint8_t *p[3];
  unsigned count;
  uint64_t bytes, seq, i;

  for (i = 0; i < 3; i++)
    write_buffer_ok (w, i, 4000);
  for (i = 0; i < 3; i++)
    h[i] = hold_buffer_ok (r, i, &p[i]);
  ivshm_reader_held (r, &count, &bytes);
  fail_unless_equals_int (count, 3);
  fail_unless_equals_uint64 (bytes, 3 * ivshm_record_len (4000));
  read_none (r);

  /* the writer fills the ring but never writes over a held record */
  seq = 3;
  while (write_buffer (w, seq, 1000) == IVSHM_OK) {
    read_buffer_ok (r, seq, 1000);
    seq++;
    fail_unless (seq < 1000);
  }
  for (i = 0; i < 3; i++)
    fail_unless (check_pattern (p[i], 4000, i), "held record %u changed",
        (unsigned) i);

  /* giving back a younger one frees nothing; the oldest frees its space */
  ivshm_reader_unhold (r, &h[1]);
  ivshm_reader_unhold (r, &h[1]);       /* twice: ignored */
  assert_status (write_buffer (w, seq, 1000), IVSHM_AGAIN);
  ivshm_reader_unhold (r, &h[0]);
  write_buffer_ok (w, seq, 1000);
  read_buffer_ok (r, seq, 1000);
  seq++;
  fail_unless (check_pattern (p[2], 4000, 2));
  ivshm_reader_held (r, &count, &bytes);
  fail_unless_equals_int (count, 1);
  ivshm_reader_unhold (r, &h[2]);
  ivshm_reader_held (r, &count, &bytes);
  fail_unless_equals_int (count, 0);
  fail_unless_equals_uint64 (bytes, 0);
  seq = cycle_ring (w, r, seq);

  /* a replayed record cannot be held; nor can nothing */
  assert_status (ivshm_reader_hold (r, &h[0]), IVSHM_ERR_INVALID_ARG);
  ivshm_reader_free (r);
  ivshm_writer_free (w);
  free (base);
}

GST_END_TEST;

/* At most IVSHM_MAX_HELD at once: then AGAIN, and the caller copies. */
GST_START_TEST (test_holds_bounded)
{
  const uint64_t size = 1024 * 1024;
  void *base = region_alloc (size);
  IvshmWriter *w = writer_new_ok (base, size, NULL);
  IvshmReader *r = reader_new_ok (base, size);
  IvshmHold h[IVSHM_MAX_HELD], extra;
  const uint8_t *p;
  IvshmRecord rec;
  uint64_t i;

  for (i = 0; i < IVSHM_MAX_HELD + 1; i++)
    write_buffer_ok (w, i, 100);
  for (i = 0; i < IVSHM_MAX_HELD; i++)
    h[i] = hold_buffer_ok (r, i, &p);
  assert_status (ivshm_reader_next (r, &rec, NULL), IVSHM_OK);
  assert_status (ivshm_reader_hold (r, &extra), IVSHM_AGAIN);
  fail_unless (check_pattern (rec.payload, 100, IVSHM_MAX_HELD));
  assert_status (ivshm_reader_release (r), IVSHM_OK);
  /* given back in reverse order */
  for (i = IVSHM_MAX_HELD; i > 0; i--)
    ivshm_reader_unhold (r, &h[i - 1]);
  fail_unless_equals_uint64 (atomic_load (&slot_at (base, 0)->read_pos) &
      ~IVSHM_POS_TAG_MASK, ivshm_writer_position (w));
  ivshm_reader_free (r);
  ivshm_writer_free (w);
  free (base);
}

GST_END_TEST;

typedef struct
{
  IvshmReader *r;
  IvshmHold *holds;
  unsigned n;
} UnholdJob;

static gpointer
unhold_thread (gpointer data)
{
  UnholdJob *job = data;
  unsigned i;

  for (i = 0; i < job->n; i++)
    ivshm_reader_unhold (job->r, &job->holds[i]);
  return NULL;
}

/* Holds given back from another thread while the reader goes on: the
 * writer keeps streaming, nothing is lost or overwritten. */
GST_START_TEST (test_holds_threads)
{
  const uint64_t size = IVSHM_REGION_MIN;
  void *base = region_alloc (size);
  IvshmWriter *w = writer_new_ok (base, size, NULL);
  IvshmReader *r = reader_new_ok (base, size);
  uint64_t seq = 0, read = 0, round;
  IvshmHold holds[2][8];
  UnholdJob job[2] = { {r, holds[0], 0}, {r, holds[1], 0} };
  GThread *t[2] = { NULL, NULL };

  /* round k holds into holds[k % 2] while the thread of round k - 1 gives
   * holds[(k - 1) % 2] back */
  for (round = 0; round < 200; round++) {
    unsigned b = round % 2, i, n;
    const uint8_t *p[8];
    gint64 deadline = g_get_monotonic_time () + 10 * G_TIME_SPAN_SECOND;

    if (t[b])
      g_thread_join (t[b]);
    t[b] = NULL;
    while (seq < read + 8) {
      IvshmStatus st = write_buffer (w, seq, 3000);
      if (st == IVSHM_OK)
        seq++;
      else if (read == seq)
        fail_unless (g_get_monotonic_time () < deadline, "writer stuck");
      else
        break;
    }
    for (i = 0; read < seq && i < 8; i++, read++)
      holds[b][i] = hold_buffer_ok (r, read, &p[i]);
    for (n = 0; n < i; n++)
      fail_unless (check_pattern (p[n], 3000, read - i + n));
    job[b].n = i;
    t[b] = g_thread_new ("unhold", unhold_thread, &job[b]);
  }
  if (t[0])
    g_thread_join (t[0]);
  if (t[1])
    g_thread_join (t[1]);
  fail_unless (seq >= 200 * 8 / 2);
  ivshm_reader_free (r);
  ivshm_writer_free (w);
  free (base);
}

GST_END_TEST;


/* ---- 16. leaky producer ------------------------------------------------ */

GST_START_TEST (test_leaky)
{
  const uint64_t size = IVSHM_REGION_MIN;
  void *base = region_alloc (size);
  IvshmWriterConfig cfg = { 0 };
  IvshmReaderConfig rcfg = { 0 };
  IvshmWriter *w;
  IvshmReader *slow, *fast, *again;
  IvshmWriterStats ws;
  IvshmRecord rec;
  IvshmHold hold;
  uint64_t seq = 0, i;

  cfg.leaky = true;
  w = writer_new_ok (base, size, &cfg);
  write_event_ok (w, IVSHM_EVENT_STREAM_START, "stream-start, stream-id=x");
  write_caps_ok (w, "video/x-raw");
  /* nothing is kept for a first reader: it joins at the live edge */
  slow = reader_new_ok (base, size);
  fast = reader_new_ok (base, size);
  read_string_ok (slow, IVSHM_RECORD_EVENT, IVSHM_EVENT_STREAM_START,
      "stream-start, stream-id=x", true);
  read_string_ok (slow, IVSHM_RECORD_CAPS, 0, "video/x-raw", true);
  read_string_ok (fast, IVSHM_RECORD_EVENT, IVSHM_EVENT_STREAM_START,
      "stream-start, stream-id=x", true);
  read_string_ok (fast, IVSHM_RECORD_CAPS, 0, "video/x-raw", true);
  /* no zero-copy from a leaky producer */
  write_buffer_ok (w, seq++, 100);
  assert_status (ivshm_reader_next (fast, &rec, NULL), IVSHM_OK);
  assert_status (ivshm_reader_hold (fast, &hold), IVSHM_AGAIN);
  assert_status (ivshm_reader_release (fast), IVSHM_OK);

  /* the writer never waits: three rings' worth, fast keeps up, slow not */
  for (i = 0; i < 3 * RING_64K / 1000; i++) {
    write_buffer_ok (w, seq, 1000);
    read_buffer_ok (fast, seq, 1000);
    seq++;
  }
  ivshm_writer_get_stats (w, &ws);
  fail_unless_equals_uint64 (ws.readers_lapped, 1);
  fail_unless_equals_uint64 (ws.full_waits, 0);
  /* slow was dropped; whatever it gets is never a record overwritten */
  assert_status (ivshm_reader_next (slow, &rec, NULL), IVSHM_ERR_EVICTED);
  fail_unless (ivshm_reader_producer_leaky (slow));
  ivshm_reader_free (slow);
  /* joining again: the stream so far, replayed, then the next record */
  again = reader_new_ok (base, size);
  read_string_ok (again, IVSHM_RECORD_EVENT, IVSHM_EVENT_STREAM_START,
      "stream-start, stream-id=x", true);
  read_string_ok (again, IVSHM_RECORD_CAPS, 0, "video/x-raw", true);
  read_none (again);
  write_buffer_ok (w, seq, 10);
  read_buffer_ok (again, seq, 10);
  read_buffer_ok (fast, seq, 10);
  seq++;

  /* EOS is sticky: after the producer closes, a reader that asks for it
   * joins the closed session and still learns the stream ended */
  write_event_ok (w, IVSHM_EVENT_EOS, "");
  ivshm_writer_free (w);
  expect_attach_fails (base, size, IVSHM_ERR_NO_PRODUCER);
  rcfg.attach_closed = true;
  {
    IvshmReader *late = NULL;
    IvshmError err = { 0 };

    assert_status (ivshm_reader_new (base, size, &rcfg, &late, &err), IVSHM_OK);
    read_string_ok (late, IVSHM_RECORD_EVENT, IVSHM_EVENT_STREAM_START,
        "stream-start, stream-id=x", true);
    read_string_ok (late, IVSHM_RECORD_CAPS, 0, "video/x-raw", true);
    read_string_ok (late, IVSHM_RECORD_EVENT, IVSHM_EVENT_EOS, "", true);
    ivshm_reader_free (late);
  }
  ivshm_reader_free (again);
  ivshm_reader_free (fast);
  free (base);
}

GST_END_TEST;

/* ---- the cache-hot ring (PROTOCOL.md, "Early wrap") ---------------------- */

#define HOT_WINDOW (64u * 1024u)
#define HOT_LEN 4000u           /* a 4096-byte record */
#define HOT_REC 4096u

/* Writes buffer seq of HOT_LEN bytes; returns the ring offset of its
 * record (the copy path publishes at once, so it ends at write_pos). */
static uint64_t
write_hot (IvshmWriter * w, uint64_t ring, uint64_t seq)
{
  write_buffer_ok (w, seq, HOT_LEN);
  return (ivshm_writer_position (w) - HOT_REC) % ring;
}

/* Reads buffer seq, which must lie at ring offset off: the reader skips
 * the early pad without showing it. */
static void
read_hot_at (IvshmReader * r, uint64_t ring, uint64_t seq, uint64_t off)
{
  IvshmRecord rec;
  IvshmError err = { 0 };

  assert_status (ivshm_reader_next (r, &rec, &err), IVSHM_OK);
  fail_unless_equals_int (rec.h.type, IVSHM_RECORD_BUFFER);
  fail_unless_equals_uint64 (rec.h.pts, buffer_info (seq, 0).pts);
  fail_unless_equals_uint64 (rec.h.pos % ring, off);
  fail_unless (check_pattern (rec.payload, HOT_LEN, seq));
  assert_status (ivshm_reader_release (r), IVSHM_OK);
}

static uint64_t
early_wraps (IvshmWriter * w)
{
  IvshmWriterStats ws;

  ivshm_writer_get_stats (w, &ws);
  return ws.early_wraps;
}

/* Writes n records in ring order, none wrapped early, while something
 * holds the ring (r, if not NULL, reads each at once). */
static uint64_t
write_hot_no_wrap (IvshmWriter * w, IvshmReader * r, uint64_t ring,
    uint64_t seq, unsigned n)
{
  uint64_t wraps = early_wraps (w), prev = UINT64_MAX, off = 0;
  unsigned i;

  for (i = 0; i < n; i++, seq++) {
    off = write_hot (w, ring, seq);
    if (prev != UINT64_MAX)
      fail_unless_equals_uint64 (off, (prev + HOT_REC) % ring);
    prev = off;
    if (r)
      read_hot_at (r, ring, seq, off);
  }
  fail_unless (off >= HOT_WINDOW, "the test must pass the window");
  fail_unless_equals_uint64 (early_wraps (w), wraps);
  return seq;
}

/* With every reader caught up and nothing held, the writer goes back to
 * the ring's start once past the window, within a quarter window more
 * (its look is throttled after a look that found the start held): the
 * record lands at offset 0. */
static uint64_t
write_hot_until_wrap (IvshmWriter * w, IvshmReader ** r, unsigned nr,
    uint64_t ring, uint64_t seq)
{
  uint64_t wraps = early_wraps (w), off;
  unsigned i, k;

  for (i = 0; i <= (HOT_WINDOW + HOT_WINDOW / 4) / HOT_REC + 1; i++, seq++) {
    off = write_hot (w, ring, seq);
    for (k = 0; k < nr; k++)
      read_hot_at (r[k], ring, seq, off);
    if (off == 0) {
      fail_unless_equals_uint64 (early_wraps (w), wraps + 1);
      return seq + 1;
    }
  }
  fail ("no early wrap although every reader had caught up");
  return seq;
}

/* Issue 20's cache-hot ring: positions the writer chooses on a 960 KiB
 * ring with a 64 KiB hot window. The writer wraps early when the ring's
 * start has room for the record and the margin; from part 4 on the
 * margin is 8 records, so a reader (or a hold, or a reservation of ours)
 * at offset 4096, right behind the record at the start, keeps the writer
 * in ring order. Mutations of writer_early_wrap that this test caught
 * (each tried once): wrapping whenever the window is passed (part 1
 * fails: the early pad leaves no room while the first reader's records
 * are kept, AGAIN), ignoring the margin (part 4 fails: a record at offset
 * 0 while the reader's oldest unread record was at 4096), never wrapping
 * (part 2 fails), and leaving out the room for pending reservations
 * (part 8 fails). */
GST_START_TEST (test_early_wrap)
{
  const uint64_t size = 1024 * 1024, ring = size - IVSHM_RING_OFFSET;
  void *base = region_alloc (size);
  IvshmWriterConfig cfg = { 60000ull * MS, 0, 0 };
  IvshmReader *r[2];
  IvshmWriter *w;
  IvshmSpan sp;
  IvshmHold h;
  const uint8_t *p;
  uint64_t seq, i, off;

  cfg.hot_window = HOT_WINDOW;
  w = writer_new_ok (base, size, &cfg);

  /* 1. before the first reader everything is kept for it: no early wrap */
  seq = write_hot_no_wrap (w, NULL, ring, 0, 2 * HOT_WINDOW / HOT_REC);
  r[0] = reader_new_ok (base, size);
  for (i = 0; i < seq; i++)
    read_hot_at (r[0], ring, i, i * HOT_REC);
  read_none (r[0]);

  /* 2. it has caught up: the next record goes to the ring's start */
  seq = write_hot_until_wrap (w, r, 1, ring, seq);
  read_none (r[0]);

  /* 3. and the writer stays in the window while the reader keeps up */
  for (i = 0; i < 100; i++, seq++) {
    off = write_hot (w, ring, seq);
    fail_unless (off <= HOT_WINDOW, "record at %" G_GUINT64_FORMAT, off);
    read_hot_at (r[0], ring, seq, off);
  }
  fail_unless (early_wraps (w) >= 1 + 100 / (HOT_WINDOW / HOT_REC + 1));

  /* 4. a margin of 8 records; a reader behind at offset 4096: the start
   * lacks room for record and margin, records go on in ring order */
  ivshm_writer_set_early_margin (w, 8 * HOT_REC);
  seq = write_hot_until_wrap (w, r, 1, ring, seq);
  {
    uint64_t first = seq;

    seq = write_hot_no_wrap (w, NULL, ring, seq, 2 * HOT_WINDOW / HOT_REC);
    read_buffers_ok (r[0], first, seq);
    seq = write_hot_until_wrap (w, r, 1, ring, seq);
  }

  /* 4b. a reader behind at offset 13 * 4096, past record and margin: the
   * writer wraps early although the reader has not caught up, and the
   * reader still gets every record, in order and intact */
  for (i = 0; i < 12; i++, seq++)
    read_hot_at (r[0], ring, seq, write_hot (w, ring, seq));
  {
    uint64_t first = seq, offs[64], wraps = early_wraps (w);
    unsigned n = 0;

    do {
      fail_unless (n < G_N_ELEMENTS (offs), "no early wrap with the start "
          "free past record and margin");
      offs[n++] = write_hot (w, ring, seq++);
    } while (offs[n - 1] != 0);
    fail_unless_equals_uint64 (early_wraps (w), wraps + 1);
    fail_unless (offs[n - 2] + HOT_REC >= HOT_WINDOW);
    for (i = 0; i < n; i++)
      read_hot_at (r[0], ring, first + i, offs[i]);
    read_none (r[0]);
  }

  /* 5. a record held in place (zero-copy read), the rest read at once */
  off = write_hot (w, ring, seq);
  h = hold_buffer_ok (r[0], seq++, &p);
  seq = write_hot_no_wrap (w, r[0], ring, seq, 2 * HOT_WINDOW / HOT_REC);
  fail_unless (check_pattern (p, HOT_LEN, seq - 1 - 2 * HOT_WINDOW / HOT_REC));
  ivshm_reader_unhold (r[0], &h);
  seq = write_hot_until_wrap (w, r, 1, ring, seq);

  /* 6. a reservation of ours still referenced after its commit (a pool
   * buffer that last-sample keeps) */
  assert_status (ivshm_writer_reserve_span (w, HOT_LEN, &sp), IVSHM_OK);
  commit_span_ok (w, &sp, seq, HOT_LEN);
  read_hot_at (r[0], ring, seq, sp.pos % ring);
  seq++;
  seq = write_hot_no_wrap (w, r[0], ring, seq, 2 * HOT_WINDOW / HOT_REC);
  ivshm_writer_release_span (w, &sp);
  seq = write_hot_until_wrap (w, r, 1, ring, seq);

  /* 7. a second reader joins late (at the live edge) and lags */
  r[1] = reader_new_ok (base, size);
  {
    uint64_t first = seq;

    seq = write_hot_no_wrap (w, r[0], ring, seq, 2 * HOT_WINDOW / HOT_REC);
    read_buffers_ok (r[1], first, seq);
  }
  seq = write_hot_until_wrap (w, r, 2, ring, seq);
  read_none (r[0]);
  read_none (r[1]);
  ivshm_reader_free (r[1]);

  /* 8. margin 0, a reservation of ours at offset 4096, still referenced:
   * records written after it turn it into a skip (it will be copied when
   * it is rendered), and an early wrap must leave room for that copy; the
   * start has only 4096 bytes, so records go on in ring order */
  ivshm_writer_set_early_margin (w, 0);
  {
    uint64_t first = seq, wraps = early_wraps (w);

    assert_status (ivshm_writer_reserve_span (w, 4 * HOT_REC, &sp), IVSHM_OK);
    fail_unless_equals_uint64 (sp.pos % ring, HOT_REC);
    for (i = 0; i < 2 * HOT_WINDOW / HOT_REC; i++)
      write_buffer_ok (w, seq++, HOT_LEN);
    fail_unless_equals_uint64 (early_wraps (w), wraps);
    read_buffers_ok (r[0], first, seq);
    read_none (r[0]);
    ivshm_writer_release_span (w, &sp);
  }
  /* without anything pending, margin 0: wrapped as soon as one record
   * fits at the start */
  seq = write_hot_until_wrap (w, r, 1, ring, seq);


  ivshm_reader_free (r[0]);
  ivshm_writer_free (w);
  free (base);
}

GST_END_TEST;

static Suite *
core_ring_suite (void)
{
  Suite *s = suite_create ("core-ring");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_round_trip);
  tcase_add_test (tc, test_wrap_around);
  tcase_add_test (tc, test_full_ring);
  tcase_add_test (tc, test_region_size_for_payload);
  tcase_add_test (tc, test_first_reader_gets_all);
  tcase_add_test (tc, test_mid_stream_attach);
  tcase_add_test (tc, test_several_readers);
  tcase_add_test (tc, test_no_slot);
  tcase_add_test (tc, test_corrupt_header);
  tcase_add_test (tc, test_corrupt_ring);
  tcase_add_test (tc, test_corrupt_ring_end);
  tcase_add_test (tc, test_corrupt_sticky);
  tcase_add_test (tc, test_sticky_overflow);
  tcase_add_test (tc, test_hostile_slot);
  tcase_add_test (tc, test_evicted_reader_leaves_slot_alone);
  tcase_add_test (tc, test_lease_expiry);
  tcase_add_test (tc, test_session_change_after_close);
  tcase_add_test (tc, test_producer_busy_and_takeover);
  tcase_add_test (tc, test_producer_gone_heartbeat);
  tcase_add_test (tc, test_producer_gone_drain);
  tcase_add_test (tc, test_cross_process);
  tcase_add_test (tc, test_spans_in_order);
  tcase_add_test (tc, test_spans_out_of_order);
  tcase_add_test (tc, test_span_keeps_space_until_released);
  tcase_add_test (tc, test_spans_dropped);
  tcase_add_test (tc, test_holds);
  tcase_add_test (tc, test_holds_bounded);
  tcase_add_test (tc, test_holds_threads);
  tcase_add_test (tc, test_leaky);
  tcase_add_test (tc, test_early_wrap);
  return s;
}

GST_CHECK_MAIN (core_ring);
