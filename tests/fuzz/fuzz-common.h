/* gst-ivshmem: what the libFuzzer targets share
 * SPDX-License-Identifier: MIT
 *
 * A fuzz input is a script of small operations over one region: a real
 * IvshmWriter lays the region out and writes records into it, and other
 * operations scribble bytes over the header, the reader slots, the sticky
 * area or the ring, as a hostile peer could at any time. Starting from a
 * valid region lets the fuzzer get past the header checks quickly; the
 * scribbles take it from there.
 *
 * The region is a malloc'd block of exactly its size, so AddressSanitizer
 * reports any access outside it; accesses inside it but outside the part a
 * call may touch are checked by the targets themselves (fuzz_fail()).
 */
#ifndef IVSHMEM_FUZZ_COMMON_H
#define IVSHMEM_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ivshmem-layout.h"
#include "ivshmem-ring.h"

/* the smallest region: 64 KiB of header, slots and sticky area, 64 KiB of
 * ring; small regions keep each run fast */
#define FUZZ_REGION_SIZE ((uint64_t) IVSHM_REGION_MIN)
#define FUZZ_RING_SIZE (FUZZ_REGION_SIZE - IVSHM_RING_OFFSET)
#define FUZZ_MAX_OPS 512

typedef struct
{
  const uint8_t *data;
  size_t size;
  size_t at;
} FuzzInput;

static inline int
fuzz_more (const FuzzInput * in)
{
  return in->at < in->size;
}

static inline uint8_t
fuzz_u8 (FuzzInput * in)
{
  return in->at < in->size ? in->data[in->at++] : 0;
}

static inline uint64_t
fuzz_bytes_le (FuzzInput * in, unsigned n)
{
  uint64_t v = 0;

  for (unsigned i = 0; i < n; i++)
    v |= (uint64_t) fuzz_u8 (in) << (8 * i);
  return v;
}

static inline uint16_t
fuzz_u16 (FuzzInput * in)
{
  return (uint16_t) fuzz_bytes_le (in, 2);
}

static inline uint32_t
fuzz_u32 (FuzzInput * in)
{
  return (uint32_t) fuzz_bytes_le (in, 4);
}

static inline uint64_t
fuzz_u64 (FuzzInput * in)
{
  return fuzz_bytes_le (in, 8);
}

#define fuzz_fail(...) do {                                              \
  fprintf (stderr, "fuzz: %s:%d: ", __FILE__, __LINE__);                 \
  fprintf (stderr, __VA_ARGS__);                                         \
  fputc ('\n', stderr);                                                  \
  abort ();                                                              \
} while (0)

/* The areas of the region a scribble may hit. */
static inline void
fuzz_area (unsigned which, uint64_t * off, uint64_t * len)
{
  switch (which % 4) {
    case 0:
      *off = 0;
      *len = IVSHM_HEADER_SIZE;
      break;
    case 1:
      *off = IVSHM_SLOT_OFFSET;
      *len = IVSHM_MAX_READERS * IVSHM_SLOT_SIZE;
      break;
    case 2:
      *off = IVSHM_STICKY_OFFSET;
      *len = IVSHM_STICKY_SIZE;
      break;
    default:
      *off = IVSHM_RING_OFFSET;
      *len = FUZZ_RING_SIZE;
      break;
  }
}

/* Scribble: area (1 byte), offset in it (3 bytes), length (1 byte, at
 * most 16), then that many bytes. Offsets favour the start of an area,
 * where the fields are. */
static inline void
fuzz_scribble (FuzzInput * in, uint8_t * base)
{
  uint64_t area_off, area_len, off;
  unsigned len;

  fuzz_area (fuzz_u8 (in), &area_off, &area_len);
  off = fuzz_bytes_le (in, 3);
  if (off & 1)
    off = (off >> 1) % 512;
  else
    off = (off >> 1) % area_len;
  len = fuzz_u8 (in) % 17;
  if (off + len > area_len)
    len = (unsigned) (area_len - off);
  for (unsigned i = 0; i < len; i++)
    base[area_off + off + i] = fuzz_u8 (in);
}

/* A record for the writer: a BUFFER of the given length, or (kind 1..4) a
 * sticky or serialized record with a short string payload. */
static inline IvshmStatus
fuzz_write_record (IvshmWriter * w, unsigned kind, uint64_t len,
    uint64_t stamp)
{
  static const char *const strings[] = {
    "video/x-raw, format=(string)I420, width=(int)64, height=(int)48",
    "stream-start, stream-id=(string)fuzz, flags=(uint)0",
    "segment, format=(int)3, rate=(double)1, start=(guint64)0",
    "taglist, title=(string)fuzz",
    "",
  };
  IvshmRecordHeader h;
  const char *s = NULL;
  static uint8_t zeroes[65536];

  memset (&h, 0, sizeof h);
  h.pts = stamp;
  h.dts = IVSHM_TIME_NONE;
  h.duration = IVSHM_TIME_NONE;
  h.offset = stamp;
  h.offset_end = IVSHM_TIME_NONE;
  switch (kind % 6) {
    case 1:
      h.type = IVSHM_RECORD_CAPS;
      s = strings[0];
      break;
    case 2:
      h.type = IVSHM_RECORD_EVENT;
      h.subtype = IVSHM_EVENT_STREAM_START;
      s = strings[1];
      break;
    case 3:
      h.type = IVSHM_RECORD_EVENT;
      h.subtype = IVSHM_EVENT_SEGMENT;
      s = strings[2];
      break;
    case 4:
      h.type = IVSHM_RECORD_EVENT;
      h.subtype = IVSHM_EVENT_TAG;
      s = strings[3];
      break;
    case 5:
      h.type = IVSHM_RECORD_EVENT;
      h.subtype = IVSHM_EVENT_EOS;
      s = strings[4];
      break;
    default:
      h.type = IVSHM_RECORD_BUFFER;
      break;
  }
  if (s) {
    h.payload_len = strlen (s) + 1;
    return ivshm_writer_write (w, &h, s);
  }
  if (len > sizeof zeroes)
    len = sizeof zeroes;
  h.payload_len = len;
  return ivshm_writer_write (w, &h, zeroes);
}

static inline IvshmWriter *
fuzz_writer_new (uint8_t * base)
{
  IvshmWriterConfig cfg;
  IvshmWriter *w = NULL;
  IvshmError err;

  memset (&cfg, 0, sizeof cfg);
  /* a scribbled producer_state may say ACTIVE: do not wait for it long */
  cfg.takeover_wait_ns = 1000;
  if (ivshm_writer_new (base, FUZZ_REGION_SIZE, &cfg, &w, &err) != IVSHM_OK)
    return NULL;
  return w;
}

/* Touches every byte of a record a reader handed out, so that ASan sees a
 * payload pointer that leads outside the region, and checks what the
 * reader promised: a known type, a length that fits the ring, and a ring
 * payload that lies inside the ring. */
static inline void
fuzz_check_record (const uint8_t * base, const IvshmRecord * rec)
{
  volatile uint8_t sink = 0;
  const uint8_t *ring = base + IVSHM_RING_OFFSET;

  if (rec->h.type < IVSHM_RECORD_PAD || rec->h.type > IVSHM_RECORD_SKIP)
    fuzz_fail ("record of unknown type %u handed out", rec->h.type);
  if (rec->h.payload_len > FUZZ_RING_SIZE - sizeof (IvshmRecordHeader))
    fuzz_fail ("payload_len %llu larger than the ring",
        (unsigned long long) rec->h.payload_len);
  if (rec->h.payload_len && !rec->payload)
    fuzz_fail ("payload NULL");
  if (!rec->replayed && rec->h.payload_len &&
      (rec->payload < ring ||
          rec->payload + rec->h.payload_len > ring + FUZZ_RING_SIZE))
    fuzz_fail ("payload [%p, +%llu) outside the ring [%p, +%llu)",
        (const void *) rec->payload, (unsigned long long) rec->h.payload_len,
        (const void *) ring, (unsigned long long) FUZZ_RING_SIZE);
  for (uint64_t i = 0; i < rec->h.payload_len; i++)
    sink ^= rec->payload[i];
  (void) sink;
}

#endif /* IVSHMEM_FUZZ_COMMON_H */
