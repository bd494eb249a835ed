/* gst-ivshmem: libFuzzer target for the read-only inspection of a region
 * SPDX-License-Identifier: MIT
 *
 * What ivshmem-info and the device provider read: ivshm_inspect() (the
 * header, the slots, the sticky snapshot), the sticky iterator, liveness
 * sampling. The region starts as a valid version 2 region written by hand
 * (so the fuzzer gets past the header checks at once), then the input
 * scribbles over it as a hostile peer could. Only the first
 * IVSHM_RING_OFFSET bytes exist (malloc'd to that size): whatever size the
 * caller claims, a read past them is an AddressSanitizer report.
 *
 * Script (fuzz-common.h byte helpers):
 *   0 OFF16 LEN8 BYTES...   patch bytes at OFF
 *   1 OFF16 U64             store a u64 at OFF & ~7
 *   2 SIZE8                 inspect, claiming one of a few region sizes,
 *                           walk the sticky records, explain
 *   3                       one liveness step on the last inspection
 */
#include "fuzz-common.h"
#include "ivshmem-inspect.h"
#include "ivshmem-sticky.h"

int LLVMFuzzerTestOneInput (const uint8_t * data, size_t size);

#define HEAD IVSHM_RING_OFFSET

static void
put_record (uint8_t * recs, uint32_t * len, uint16_t type, uint16_t subtype,
    const char *text)
{
  IvshmRecordHeader h = { 0 };
  size_t n = strlen (text) + 1;

  h.type = type;
  h.subtype = subtype;
  h.payload_len = n;
  memcpy (recs + *len, &h, sizeof h);
  memcpy (recs + *len + sizeof h, text, n);
  *len += (uint32_t) ivshm_record_len (n);
}

/* A version 2 region: an active producer, two readers, all the sticky
 * records, EOS last. */
static void
format_region (uint8_t * base)
{
  IvshmHeader *h = (IvshmHeader *) base;
  IvshmStickyHeader *sh = (IvshmStickyHeader *) (base + IVSHM_STICKY_OFFSET);
  uint8_t *recs = (uint8_t *) sh + sizeof *sh;
  uint32_t len = 0;
  unsigned i;

  memset (base, 0, HEAD);
  h->magic = IVSHM_MAGIC;
  h->version_major = IVSHM_INSPECT_V2;
  h->region_size = FUZZ_REGION_SIZE;
  h->ring_offset = IVSHM_RING_OFFSET;
  h->ring_size = FUZZ_RING_SIZE;
  h->slot_offset = IVSHM_SLOT_OFFSET;
  h->slot_count = IVSHM_MAX_READERS;
  h->slot_size = IVSHM_SLOT_SIZE;
  h->sticky_offset = IVSHM_STICKY_OFFSET;
  h->sticky_size = IVSHM_STICKY_SIZE;
  h->record_align = IVSHM_RECORD_ALIGN;
  h->session_id = 0x5e55;
  h->producer_state = IVSHM_PRODUCER_ACTIVE;
  h->heartbeat_period_us = 100000;
  *(uint64_t *) (base + IVSHM_INSPECT_PRODUCER_OWNER_OFFSET) = 0x0aa7;
  h->tail = UINT64_C (1) << 40;
  h->write_pos = (UINT64_C (1) << 40) + 4096;
  for (i = 0; i < 2; i++) {
    IvshmReaderSlot *s = (IvshmReaderSlot *) (base + IVSHM_SLOT_OFFSET +
        i * IVSHM_SLOT_SIZE);
    s->owner = 1 + i;
    s->state = i ? IVSHM_INSPECT_SLOT_WAITING : IVSHM_SLOT_ACTIVE;
    s->session_id = i ? 0 : 0x5e55;
    s->read_pos = i ? 0 : h->tail + 64;
  }
  put_record (recs, &len, IVSHM_RECORD_EVENT, IVSHM_EVENT_STREAM_START, "s");
  put_record (recs, &len, IVSHM_RECORD_CAPS, 0, "video/x-raw");
  put_record (recs, &len, IVSHM_RECORD_EVENT, IVSHM_EVENT_SEGMENT, "seg");
  put_record (recs, &len, IVSHM_RECORD_EVENT, IVSHM_EVENT_TAG, "tag");
  put_record (recs, &len, IVSHM_RECORD_EVENT, IVSHM_EVENT_CUSTOM_STICKY, "c");
  put_record (recs, &len, IVSHM_RECORD_EVENT, IVSHM_EVENT_EOS, "");
  sh->len = len;
  sh->count = 6;
  sh->applies_from = h->write_pos;
  sh->seq = 2;
}

/* Every record the iterator yields lies inside the copy. */
static void
check_sticky (const IvshmInspection * insp)
{
  const IvshmStickySnapshot *snap = insp->sticky;
  IvshmStickyIter it;
  IvshmStickyRecord rec;
  size_t n;

  if (snap == NULL || insp->sticky_status != IVSHM_OK)
    return;
  if (snap->len > IVSHM_STICKY_DATA_MAX || snap->len % 64)
    fuzz_fail ("snapshot length %u", snap->len);
  ivshm_sticky_iter_init (&it, snap);
  while (ivshm_sticky_iter_next (&it, &rec)) {
    if (rec.payload != snap->data + rec.offset + sizeof rec.h
        || rec.offset % 64 || rec.len % 64
        || (uint64_t) rec.offset + rec.len > snap->len
        || sizeof rec.h + rec.h.payload_len > rec.len)
      fuzz_fail ("record %u outside the copy", rec.index);
    (void) ivshm_sticky_record_text (&rec, &n, NULL);
    if (n > rec.h.payload_len)
      fuzz_fail ("text longer than the payload");
  }
  if (ivshm_sticky_iter_status (&it) != IVSHM_OK
      && ivshm_sticky_iter_reason (&it)[0] == '\0')
    fuzz_fail ("a corrupt walk without a reason");
}

static void
inspect (const uint8_t * base, uint8_t size_sel, IvshmInspection * insp)
{
  static const uint64_t sizes[] = { FUZZ_REGION_SIZE, HEAD - 1, HEAD,
    UINT64_MAX, FUZZ_REGION_SIZE / 2 + 64
  };
  IvshmStickyRecord rec;
  char text[256];
  unsigned i;
  uint64_t lag;

  ivshm_inspection_clear (insp);
  ivshm_inspect (base, sizes[size_sel % 5], insp);
  if (insp->status == IVSHM_OK && !insp->layout_ok)
    fuzz_fail ("OK without a valid layout");
  if (insp->n_active + insp->n_claimed + insp->n_waiting + insp->n_evicted
      > IVSHM_MAX_READERS)
    fuzz_fail ("more taken slots than slots");
  for (i = 0; i < IVSHM_MAX_READERS; i++)
    if (ivshm_inspect_slot_lag (insp, i, &lag) && lag > insp->h.write_pos)
      fuzz_fail ("a lag past the write position");
  check_sticky (insp);
  (void) ivshm_inspect_sticky_find (insp, IVSHM_RECORD_CAPS, 0, &rec);
  (void) ivshm_inspect_sticky_eos (insp);
  ivshm_inspect_explain (insp, text, sizeof text);
  (void) ivshm_inspect_default_window (insp);
}

int
LLVMFuzzerTestOneInput (const uint8_t * data, size_t size)
{
  FuzzInput in = { data, size, 0 };
  uint8_t *base = malloc (HEAD);
  IvshmInspection *insp = calloc (1, sizeof *insp);
  IvshmInspection *before = calloc (1, sizeof *before);
  unsigned ops = 0;

  if (!base || !insp || !before) {
    free (base);
    free (insp);
    free (before);
    return 0;
  }
  format_region (base);
  inspect (base, 0, before);

  while (fuzz_more (&in) && ops++ < FUZZ_MAX_OPS) {
    uint8_t op = fuzz_u8 (&in) % 4;
    uint16_t off = (uint16_t) fuzz_bytes_le (&in, 2);

    if (op == 0) {
      uint8_t len = fuzz_u8 (&in);
      for (unsigned i = 0; i < len; i++)
        base[(off + i) % HEAD] = fuzz_u8 (&in);
    } else if (op == 1) {
      uint64_t v = fuzz_bytes_le (&in, 8);
      memcpy (base + (off & ~7u) % HEAD, &v, sizeof v);
    } else if (op == 2) {
      inspect (base, (uint8_t) off, insp);
    } else {
      (void) ivshm_inspect_watch_step (base, insp);
      ivshm_inspect_watch_finish (insp, 1000);
    }
  }
  inspect (base, 0, insp);
  ivshm_inspect_compare (insp, before, 1000);

  ivshm_inspection_clear (insp);
  ivshm_inspection_clear (before);
  free (insp);
  free (before);
  free (base);
  return 0;
}
