/* gst-ivshmem: libFuzzer target for the writer's view of reader state
 * SPDX-License-Identifier: MIT
 *
 * A writer with live records and two real readers; the input scribbles
 * what a guest may write: slot fields (read_pos, owner, heartbeat,
 * session, state, kernel_id, ...), the header's futex words and flags,
 * or any bytes of the header and slots. Between scribbles the writer
 * reserves, commits, writes, uses spans and so reclaims space by reading
 * the slots. It must not crash, hang, or write outside the ring: payload
 * pointers must lie in the ring, and a BUFFER write must leave the parts
 * of the region that no BUFFER write touches (the reserved header bytes,
 * the slots' reserved lines, the sticky area) as they were.
 *
 * Build and run: see README.md, "Fuzzing".
 */
#include "fuzz-common.h"

int LLVMFuzzerTestOneInput (const uint8_t * data, size_t size);

#define N_READERS 2
#define MAX_SPANS 4

/* The bytes a BUFFER write has no business changing. */
typedef struct
{
  uint8_t hdr_reserved[IVSHM_HEADER_SIZE - 4 * IVSHM_CACHE_LINE];
  uint8_t slot_reserved[IVSHM_MAX_READERS][IVSHM_CACHE_LINE];
  uint8_t sticky[IVSHM_STICKY_SIZE];
} Untouched;

static void
untouched_take (const uint8_t * base, Untouched * u)
{
  memcpy (u->hdr_reserved, base + 4 * IVSHM_CACHE_LINE, sizeof u->hdr_reserved);
  for (unsigned i = 0; i < IVSHM_MAX_READERS; i++)
    memcpy (u->slot_reserved[i], base + IVSHM_SLOT_OFFSET +
        i * IVSHM_SLOT_SIZE + IVSHM_CACHE_LINE, IVSHM_CACHE_LINE);
  memcpy (u->sticky, base + IVSHM_STICKY_OFFSET, IVSHM_STICKY_SIZE);
}

static void
untouched_check (const uint8_t * base, const Untouched * before)
{
  static Untouched after;

  untouched_take (base, &after);
  if (memcmp (before->hdr_reserved, after.hdr_reserved,
          sizeof after.hdr_reserved) != 0)
    fuzz_fail ("a buffer write changed the reserved part of the header");
  if (memcmp (before->slot_reserved, after.slot_reserved,
          sizeof after.slot_reserved) != 0)
    fuzz_fail ("a buffer write changed a slot's reserved line");
  if (memcmp (before->sticky, after.sticky, sizeof after.sticky) != 0)
    fuzz_fail ("a buffer write changed the sticky area");
}

static void
check_payload (const uint8_t * base, const void *p, uint64_t len)
{
  const uint8_t *ring = base + IVSHM_RING_OFFSET;
  const uint8_t *q = p;

  if (q < ring || q + len > ring + FUZZ_RING_SIZE || len > FUZZ_RING_SIZE)
    fuzz_fail ("payload [%p, +%llu) outside the ring [%p, +%llu)",
        p, (unsigned long long) len, (const void *) ring,
        (unsigned long long) FUZZ_RING_SIZE);
  if (((uintptr_t) q - (uintptr_t) ring) % IVSHM_RECORD_ALIGN)
    fuzz_fail ("payload not 64-byte aligned in the ring");
}

/* A slot field as a guest writes it. read_pos values are often made
 * near the writer's position, where they matter. */
static void
scribble_slot (FuzzInput * in, uint8_t * base, IvshmWriter * w)
{
  IvshmReaderSlot *s = (IvshmReaderSlot *) (base + IVSHM_SLOT_OFFSET +
      (fuzz_u8 (in) % IVSHM_MAX_READERS) * IVSHM_SLOT_SIZE);
  uint8_t field = fuzz_u8 (in);
  uint64_t v;

  switch (field % 10) {
    case 0:{
      int64_t delta = (int8_t) fuzz_u8 (in);
      uint64_t wpos = w ? ivshm_writer_position (w) : 0;
      atomic_store (&s->read_pos, wpos + (uint64_t) (delta * 64));
      break;
    }
    case 1:
      atomic_store (&s->read_pos, fuzz_u64 (in));
      break;
    case 2:
      atomic_store (&s->owner, fuzz_u64 (in));
      break;
    case 3:
      atomic_store (&s->heartbeat, fuzz_u64 (in));
      break;
    case 4:
      v = fuzz_u8 (in);
      /* the current session, or garbage */
      atomic_store (&s->session_id, (v & 1) && w ?
          ivshm_writer_session (w) : fuzz_u64 (in));
      break;
    case 5:
      atomic_store (&s->state, fuzz_u32 (in) % 6);
      break;
    case 6:
      atomic_store (&s->state, fuzz_u32 (in));
      break;
    case 7:
      atomic_store (&s->kernel_id, fuzz_u64 (in));
      break;
    case 8:
      atomic_store (&s->generation, fuzz_u32 (in));
      break;
    default:
      atomic_store (&s->pid, fuzz_u64 (in));
      atomic_store (&s->records_read, fuzz_u64 (in));
      break;
  }
}

static void
scribble_header (FuzzInput * in, uint8_t * base)
{
  IvshmHeader *h = (IvshmHeader *) base;

  switch (fuzz_u8 (in) % 9) {
    case 0:
      atomic_store (&h->data_futex, fuzz_u32 (in));
      break;
    case 1:
      atomic_store (&h->readers_sleeping, fuzz_u32 (in));
      break;
    case 2:
      atomic_store (&h->space_futex, fuzz_u32 (in));
      break;
    case 3:
      atomic_store (&h->writer_sleeping, fuzz_u32 (in));
      break;
    case 4:
      atomic_store (&h->producer_flags, fuzz_u32 (in));
      break;
    case 5:
      atomic_store (&h->producer_state, fuzz_u32 (in));
      break;
    case 6:
      atomic_store (&h->tail, fuzz_u64 (in));
      break;
    case 7:
      atomic_store (&h->write_pos, fuzz_u64 (in));
      break;
    default:
      atomic_store (&h->header_flags, fuzz_u32 (in));
      break;
  }
}

int
LLVMFuzzerTestOneInput (const uint8_t * data, size_t size)
{
  static Untouched before;
  FuzzInput in = { data, size, 0 };
  uint8_t *base = malloc (FUZZ_REGION_SIZE);
  IvshmReaderConfig rcfg = { 0 };
  IvshmReader *r[N_READERS] = { NULL };
  IvshmSpan spans[MAX_SPANS];
  int span_committed[MAX_SPANS];
  unsigned n_spans = 0, ops = 0;
  IvshmWriter *w;
  uint64_t stamp = 0;
  IvshmError err;

  if (!base)
    return 0;
  memset (base, 0, FUZZ_REGION_SIZE);
  rcfg.producer_timeout_ns = 60ull * 1000 * 1000 * 1000;
  w = fuzz_writer_new (base);
  if (!w)
    abort ();
  /* live records: stream-start, caps, segment, and buffers that the
   * readers have partly read, so the slots hold real positions */
  fuzz_write_record (w, 2, 0, stamp++);
  fuzz_write_record (w, 1, 0, stamp++);
  fuzz_write_record (w, 3, 0, stamp++);
  for (unsigned i = 0; i < N_READERS; i++)
    if (ivshm_reader_new (base, FUZZ_REGION_SIZE, &rcfg, &r[i], &err)
        != IVSHM_OK)
      abort ();
  for (unsigned i = 0; i < 8; i++)
    fuzz_write_record (w, 0, 1000 * i, stamp++);

  while (fuzz_more (&in) && ops++ < FUZZ_MAX_OPS) {
    uint8_t op = fuzz_u8 (&in);
    IvshmRecordHeader h;
    IvshmRecord rec;
    IvshmStatus st;
    void *p;

    switch (op % 13) {
      case 0:
      case 1:
        scribble_slot (&in, base, w);
        break;
      case 2:
        scribble_header (&in, base);
        break;
      case 3:                  /* raw bytes anywhere */
        fuzz_scribble (&in, base);
        break;
      case 4:
      case 5:{                 /* reserve, fill, commit (maybe shorter) */
        uint64_t len = fuzz_u16 (&in), used;
        if (n_spans)
          break;
        untouched_take (base, &before);
        st = ivshm_writer_reserve (w, len, &p);
        if (st == IVSHM_OK) {
          check_payload (base, p, len);
          memset (p, 0xa5, len);
          used = len ? fuzz_u16 (&in) % (len + 1) : 0;
          memset (&h, 0, sizeof h);
          h.type = IVSHM_RECORD_BUFFER;
          h.payload_len = used;
          h.offset = stamp++;
          if (fuzz_u8 (&in) & 1)
            ivshm_writer_commit (w, &h);
          else
            ivshm_writer_abort (w);
        }
        untouched_check (base, &before);
        break;
      }
      case 6:                  /* reserve + memcpy + commit */
        if (n_spans)
          break;
        untouched_take (base, &before);
        fuzz_write_record (w, 0, fuzz_u16 (&in), stamp++);
        untouched_check (base, &before);
        break;
      case 7:{                 /* a span, for zero-copy writes */
        uint64_t len = fuzz_u16 (&in);
        if (n_spans == MAX_SPANS)
          break;
        untouched_take (base, &before);
        if (ivshm_writer_reserve_span (w, len, &spans[n_spans]) == IVSHM_OK) {
          check_payload (base, spans[n_spans].payload, spans[n_spans].capacity);
          if (spans[n_spans].capacity < len)
            fuzz_fail ("span smaller than asked");
          memset (spans[n_spans].payload, 0x5a, spans[n_spans].capacity);
          span_committed[n_spans] = 0;
          n_spans++;
        }
        untouched_check (base, &before);
        break;
      }
      case 8:                  /* commit or cancel a span, in any order */
        if (n_spans) {
          unsigned i = fuzz_u8 (&in) % n_spans;
          if (span_committed[i])
            break;
          untouched_take (base, &before);
          memset (&h, 0, sizeof h);
          h.type = IVSHM_RECORD_BUFFER;
          h.payload_len = spans[i].capacity ?
              fuzz_u16 (&in) % (spans[i].capacity + 1) : 0;
          if (fuzz_u8 (&in) & 1)
            ivshm_writer_commit_span (w, &spans[i], &h);
          else
            ivshm_writer_cancel_span (w, &spans[i]);
          span_committed[i] = 1;
          untouched_check (base, &before);
        }
        break;
      case 9:                  /* let a span go (once committed or cancelled) */
        if (n_spans) {
          unsigned i = fuzz_u8 (&in) % n_spans;
          if (!span_committed[i])
            ivshm_writer_cancel_span (w, &spans[i]);
          ivshm_writer_release_span (w, &spans[i]);
          spans[i] = spans[n_spans - 1];
          span_committed[i] = span_committed[n_spans - 1];
          n_spans--;
        }
        break;
      case 10:{                /* a reader reads on, or comes back */
        unsigned i = fuzz_u8 (&in) % N_READERS;
        if (!r[i]) {
          if (ivshm_reader_new (base, FUZZ_REGION_SIZE, &rcfg, &r[i], &err)
              != IVSHM_OK)
            r[i] = NULL;
          break;
        }
        st = ivshm_reader_next (r[i], &rec, &err);
        if (st == IVSHM_OK) {
          fuzz_check_record (base, &rec);
          st = ivshm_reader_release (r[i]);
        }
        if (st != IVSHM_OK && st != IVSHM_AGAIN) {
          ivshm_reader_free (r[i]);
          r[i] = NULL;
        }
        break;
      }
      case 11:{                /* a short wait on a scribbled futex word */
        IvshmWaiter waiter;
        ivshm_waiter_init (&waiter);
        ivshm_writer_wait (w, &waiter, 50 * 1000);
        break;
      }
      default:{
        IvshmWriterStats ws;
        ivshm_writer_heartbeat (w);
        ivshm_writer_get_stats (w, &ws);
        (void) ivshm_writer_count_readers (w);
        (void) ivshm_writer_had_reader (w);
        (void) ivshm_writer_readers_local (w);
        break;
      }
    }
  }

  for (unsigned i = 0; i < n_spans; i++) {
    if (!span_committed[i])
      ivshm_writer_cancel_span (w, &spans[i]);
    ivshm_writer_release_span (w, &spans[i]);
  }
  for (unsigned i = 0; i < N_READERS; i++)
    if (r[i])
      ivshm_reader_free (r[i]);
  ivshm_writer_free (w);
  free (base);
  return 0;
}
