/* gst-ivshmem: libFuzzer target for the reader's view of a region
 * SPDX-License-Identifier: MIT
 *
 * The input is a script (fuzz-common.h): a real writer writes records, a
 * hostile peer scribbles over any part of the region, and a reader
 * attaches, reads, releases, holds and unholds. Whatever the region holds,
 * the reader must not crash, hang, read outside the region, or hand out a
 * record that breaks its promises (fuzz_check_record).
 *
 * Build and run: see README.md, "Fuzzing".
 */
#include "fuzz-common.h"

int LLVMFuzzerTestOneInput (const uint8_t * data, size_t size);

#define MAX_HOLDS IVSHM_MAX_HELD

static void
reader_drop (IvshmReader ** r, unsigned *n_holds)
{
  if (*r)
    ivshm_reader_free (*r);
  *r = NULL;
  *n_holds = 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t * data, size_t size)
{
  FuzzInput in = { data, size, 0 };
  uint8_t *base = malloc (FUZZ_REGION_SIZE);
  IvshmReaderConfig rcfg = { 0 };
  IvshmWriter *w;
  IvshmReader *r = NULL;
  IvshmHold holds[MAX_HOLDS];
  unsigned n_holds = 0, ops = 0;
  uint64_t stamp = 0;

  if (!base)
    return 0;
  memset (base, 0, FUZZ_REGION_SIZE);
  /* the writer never heartbeats here; time does not pass in a run anyway */
  rcfg.producer_timeout_ns = 60ull * 1000 * 1000 * 1000;
  /* scribbled slots may all look taken: watch them only briefly */
  rcfg.lease_timeout_ns = 1000 * 1000;
  w = fuzz_writer_new (base);
  if (!w)
    abort ();                   /* a zeroed region must always work */

  while (fuzz_more (&in) && ops++ < FUZZ_MAX_OPS) {
    IvshmRecord rec;
    IvshmError err;
    IvshmStatus st;
    uint8_t op = fuzz_u8 (&in);

    switch (op % 12) {
      case 0:
      case 1:                  /* the producer writes a buffer */
        if (w)
          fuzz_write_record (w, 0, fuzz_u16 (&in), stamp++);
        break;
      case 2:                  /* ... or caps, an event */
        if (w)
          fuzz_write_record (w, fuzz_u8 (&in), 0, stamp++);
        break;
      case 3:
      case 4:                  /* a hostile peer scribbles */
        fuzz_scribble (&in, base);
        break;
      case 5:                  /* a reader attaches, perhaps in a WAITING
                                 * slot, perhaps following stalls */
        if (!r) {
          uint8_t how = fuzz_u8 (&in);

          rcfg.wait_for_producer = how & 1;
          rcfg.follow_stall = (how & 2) != 0;
          if (ivshm_reader_new (base, FUZZ_REGION_SIZE, &rcfg, &r,
                  &err) != IVSHM_OK)
            r = NULL;
        }
        break;
      case 6:
      case 7:                  /* reads and releases a record */
        if (!r)
          break;
        st = ivshm_reader_next (r, &rec, &err);
        if (st == IVSHM_OK) {
          fuzz_check_record (base, &rec);
          if (ivshm_reader_release (r) != IVSHM_OK)
            reader_drop (&r, &n_holds);
        } else if (st != IVSHM_AGAIN) {
          /* as the source does: an error ends this reader */
          reader_drop (&r, &n_holds);
        }
        break;
      case 8:                  /* reads and holds a record */
        if (!r)
          break;
        st = ivshm_reader_next (r, &rec, &err);
        if (st == IVSHM_OK) {
          fuzz_check_record (base, &rec);
          if (n_holds < MAX_HOLDS && !rec.replayed &&
              ivshm_reader_hold (r, &holds[n_holds]) == IVSHM_OK)
            n_holds++;
          else if (ivshm_reader_release (r) != IVSHM_OK)
            reader_drop (&r, &n_holds);
        } else if (st != IVSHM_AGAIN) {
          reader_drop (&r, &n_holds);
        }
        break;
      case 9:                  /* gives a held record back, in any order */
        if (r && n_holds) {
          unsigned i = fuzz_u8 (&in) % n_holds;
          ivshm_reader_unhold (r, &holds[i]);
          holds[i] = holds[--n_holds];
        }
        break;
      case 10:                 /* the reader leaves, or the producer restarts */
        if (fuzz_u8 (&in) & 1) {
          reader_drop (&r, &n_holds);
        } else {
          if (w)
            ivshm_writer_free (w);
          w = fuzz_writer_new (base);
        }
        break;
      default:{                /* what the elements ask meanwhile */
        unsigned count;
        uint64_t bytes;
        IvshmReaderStats rs;
        IvshmWriterStats ws;
        if (r) {
          ivshm_reader_heartbeat (r);
          ivshm_reader_held (r, &count, &bytes);
          ivshm_reader_get_stats (r, &rs);
          (void) ivshm_reader_lag (r);
          (void) ivshm_reader_position (r);
        }
        if (r)
          (void) ivshm_reader_waiting (r);
        if (w) {
          ivshm_writer_tick (w);
          ivshm_writer_get_stats (w, &ws);
          (void) ivshm_writer_count_readers (w);
        }
        break;
      }
    }
  }

  /* drain what is left, within a bound */
  for (unsigned i = 0; r && i < 256; i++) {
    IvshmRecord rec;
    IvshmError err;
    IvshmStatus st = ivshm_reader_next (r, &rec, &err);
    if (st != IVSHM_OK)
      break;
    fuzz_check_record (base, &rec);
    if (ivshm_reader_release (r) != IVSHM_OK)
      break;
  }
  for (unsigned i = 0; r && i < n_holds; i++)
    ivshm_reader_unhold (r, &holds[i]);
  if (r)
    ivshm_reader_free (r);
  if (w)
    ivshm_writer_free (w);
  free (base);
  return 0;
}
