/* ivshmem-info: the ring of a region, as text or JSON
 * SPDX-License-Identifier: MIT
 */
#ifndef IVSHMEM_INFO_RING_H
#define IVSHMEM_INFO_RING_H

#include "ivshmem-inspect.h"

#include <stdbool.h>
#include <stdio.h>

/* The stream as the sticky records tell it: NUL-terminated copies of the
 * latest payloads, taken from the inspection's private snapshot. */
typedef struct
{
  char *caps, *stream_start, *segment, *tags;
  bool eos;
  unsigned custom;              /* custom sticky events */
  unsigned parsed;              /* valid records */
} StreamView;

/* Takes the stream from the inspection's sticky snapshot (through the
 * validating iterator); stream_view_clear() frees it. */
void stream_view_read (const IvshmInspection * insp, StreamView * sv);
void stream_view_clear (StreamView * sv);

/* The "ring:", "stream:", "readers:" and "problems:" sections. */
void print_ring_text (FILE * out, const IvshmInspection * insp,
    const StreamView * sv);

/* The ",\n \"ring\": {...}" member of the region's JSON object. */
void print_ring_json (FILE * out, const IvshmInspection * insp,
    const StreamView * sv);

#endif /* IVSHMEM_INFO_RING_H */
