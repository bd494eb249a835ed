/* gst-ivshmem: the protocol's values that the API shows
 * SPDX-License-Identifier: MIT
 *
 * Part of the ABI (PROTOCOL.md), but not where anything is in the region:
 * the record framing that IvshmRecord carries (types, event subtypes, the
 * 64-byte record header), the producer and slot states and flags that an
 * inspection (ivshmem-inspect.h) reports, and the limits. The layout of the
 * region (the header, the slots, the sticky area, their offsets) is
 * ivshmem-layout.h, private to common/.
 */
#ifndef IVSHMEM_PROTOCOL_H
#define IVSHMEM_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gst-ivshmem's shared layout is little-endian; this build is not"
#endif

/* Records start and end on this boundary (payloads are aligned to it). */
#define IVSHM_RECORD_ALIGN      64u
/* Reader slots in a region: at most this many readers at once. */
#define IVSHM_MAX_READERS       32u

/* The producer's state (IvshmHeaderCopy.producer_state) */
enum
{
  IVSHM_PRODUCER_NONE = 0,      /* never initialised, or initialising */
  IVSHM_PRODUCER_ACTIVE = 1,    /* streaming */
  IVSHM_PRODUCER_CLOSED = 2,    /* the producer stopped cleanly */
};

/* The producer's flags (IvshmHeaderCopy.producer_flags) */
enum
{
  /* The producer has seen a reader in this session. Until then it keeps
   * everything it wrote, so the first reader gets the stream from its
   * start. */
  IVSHM_PRODUCER_FLAG_HAD_READER = 1u << 0,
  /* The sticky records did not fit the sticky area: a reader attaching
   * mid-stream cannot learn the caps and must wait for the next ones. */
  IVSHM_PRODUCER_FLAG_STICKY_OVERFLOW = 1u << 1,
  /* The producer never waits for readers: it drops the slowest ones when
   * it needs space (they attach again, at the live edge). Readers must not
   * hand out records in place then. */
  IVSHM_PRODUCER_FLAG_LEAKY = 1u << 2,
};

/* A reader slot's state (IvshmSlotCopy.state) */
enum
{
  IVSHM_SLOT_FREE = 0,
  IVSHM_SLOT_CLAIMED = 1,       /* owner set, not yet reading */
  IVSHM_SLOT_ACTIVE = 2,        /* read_pos is live and holds back the producer */
  IVSHM_SLOT_EVICTED = 3,       /* the producer dropped the reader; the slot
                                 * stays taken until the reader lets go or a
                                 * lease passes, so that a late store of the
                                 * old reader cannot hit a new owner */
  IVSHM_SLOT_WAITING = 4,       /* owner set, session_id 0: waits for the
                                 * next session; the producer that formats
                                 * it adopts the slot (ACTIVE at the
                                 * session's first position) */
};

/* Record types */
enum
{
  IVSHM_RECORD_PAD = 1,         /* skip to the end of the ring */
  IVSHM_RECORD_BUFFER = 2,      /* media payload */
  IVSHM_RECORD_CAPS = 3,        /* payload: caps as a NUL-terminated string */
  IVSHM_RECORD_EVENT = 4,       /* subtype: IVSHM_EVENT_*, payload: string */
  IVSHM_RECORD_SKIP = 5,        /* nothing: space the producer gave up */
};

/* IvshmRecord.subtype of an IVSHM_RECORD_EVENT */
enum
{
  IVSHM_EVENT_STREAM_START = 1,
  IVSHM_EVENT_SEGMENT = 2,
  IVSHM_EVENT_TAG = 3,
  IVSHM_EVENT_GAP = 4,
  IVSHM_EVENT_EOS = 5,
  IVSHM_EVENT_CUSTOM = 6,       /* custom downstream serialized event */
  IVSHM_EVENT_CUSTOM_STICKY = 7,
  IVSHM_EVENT_STREAM_GROUP_DONE = 8,
  IVSHM_EVENT_TIME = 9,         /* 2.1: the producer's base time, in pts */
  IVSHM_EVENT_MAX = 9,
};

/* Every record starts with this 64-byte header; the payload follows it at
 * once, so payloads are 64-byte aligned and contiguous. A record's length
 * is derived, never stored: ivshm_record_len(payload_len). */
typedef struct
{
  uint16_t type;                /* 0x00 IVSHM_RECORD_* */
  uint16_t subtype;             /* 0x02 IVSHM_EVENT_* for an EVENT, else 0 */
  uint32_t flags;               /* 0x04 GstBufferFlags for a BUFFER, else 0 */
  uint64_t pos;                 /* 0x08 the record's own ring position */
  uint64_t payload_len;         /* 0x10 bytes of payload after this header */
  uint64_t pts;                 /* 0x18 ns; UINT64_MAX: none */
  uint64_t dts;                 /* 0x20 ns; UINT64_MAX: none */
  uint64_t duration;            /* 0x28 ns; UINT64_MAX: none */
  uint64_t offset;              /* 0x30 UINT64_MAX: none */
  uint64_t offset_end;          /* 0x38 UINT64_MAX: none */
} IvshmRecordHeader;

#define IVSHM_TIME_NONE UINT64_MAX

static inline uint64_t
ivshm_record_len (uint64_t payload_len)
{
  /* callers bound payload_len by the ring size first, so this can't wrap */
  return (sizeof (IvshmRecordHeader) + payload_len + IVSHM_RECORD_ALIGN - 1)
      & ~(uint64_t) (IVSHM_RECORD_ALIGN - 1);
}

#define IVSHM_ASSERT_RECORD_OFFSET(field, off) \
  _Static_assert (offsetof (IvshmRecordHeader, field) == (off), \
      "IvshmRecordHeader." #field " moved")

IVSHM_ASSERT_RECORD_OFFSET (type, 0x00);
IVSHM_ASSERT_RECORD_OFFSET (subtype, 0x02);
IVSHM_ASSERT_RECORD_OFFSET (flags, 0x04);
IVSHM_ASSERT_RECORD_OFFSET (pos, 0x08);
IVSHM_ASSERT_RECORD_OFFSET (payload_len, 0x10);
IVSHM_ASSERT_RECORD_OFFSET (pts, 0x18);
IVSHM_ASSERT_RECORD_OFFSET (dts, 0x20);
IVSHM_ASSERT_RECORD_OFFSET (duration, 0x28);
IVSHM_ASSERT_RECORD_OFFSET (offset, 0x30);
IVSHM_ASSERT_RECORD_OFFSET (offset_end, 0x38);
_Static_assert (sizeof (IvshmRecordHeader) == IVSHM_RECORD_ALIGN,
    "a record header is one cache line");

#endif /* IVSHMEM_PROTOCOL_H */
