/* gst-ivshmem: the shared layout (ABI) of a region
 * SPDX-License-Identifier: MIT
 *
 * This header and ivshmem-protocol.h are the protocol's ABI;
 * common/ring/PROTOCOL.md describes it in prose. This one is where things are in
 * the region: private to common/ (the elements and the tools ask the
 * reader, the writer or ivshmem-inspect.h; tests/ci/check-layers.sh checks
 * that gst/ and tools/ never include it). ivshmem-protocol.h holds the
 * values the API shows: records, states, flags, limits. Every field is fixed-width little-endian, every offset is pinned by
 * a _Static_assert below, and every value read from it is untrusted: the
 * peer may be a buggy or hostile VM. Code reads each shared value once into
 * a local and validates the local (see ivshmem-ring.c).
 *
 * Region map (version 2):
 *
 *   0x00000  IvshmHeader        4 KiB   identity, session, hot counters,
 *                                        the producer's clock (2.1)
 *   0x01000  IvshmReaderSlot[32]  4 KiB   one 128-byte slot per reader
 *   0x02000  IvshmSticky        56 KiB  seqlocked copy of sticky records
 *   0x10000  ring               region_size - 64 KiB, records of 64-byte
 *                                        multiples, never wrapping
 */
#ifndef IVSHMEM_LAYOUT_H
#define IVSHMEM_LAYOUT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "ivshmem-protocol.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gst-ivshmem's shared layout is little-endian; this build is not"
#endif

_Static_assert (ATOMIC_LLONG_LOCK_FREE == 2,
    "64-bit atomics must be lock-free to work across processes and VMs");
_Static_assert (ATOMIC_INT_LOCK_FREE == 2,
    "32-bit atomics must be lock-free to work across processes and VMs");

/* "IVSHMGST" read as a little-endian u64 */
#define IVSHM_MAGIC             UINT64_C(0x5453474d48535649)
#define IVSHM_VERSION_MAJOR     2u
#define IVSHM_VERSION_MINOR     1u

#define IVSHM_CACHE_LINE        64u
#define IVSHM_HEADER_SIZE       4096u
#define IVSHM_SLOT_OFFSET       4096u
#define IVSHM_SLOT_SIZE         128u
#define IVSHM_STICKY_OFFSET     8192u
#define IVSHM_STICKY_SIZE       (56u * 1024u)
#define IVSHM_RING_OFFSET       (64u * 1024u)
/* The smallest ring worth having; the smallest region is this plus the
 * ring offset. */
#define IVSHM_RING_MIN_SIZE     (64u * 1024u)
#define IVSHM_REGION_MIN        ((uint64_t) IVSHM_RING_OFFSET + IVSHM_RING_MIN_SIZE)

/* A reader slot's read_pos after a reap: no position of any session, so a
 * late compare-and-swap of the slot's former owner can never succeed. */
#define IVSHM_POS_POISON        UINT64_MAX
/* A slot's read_pos is a position (a multiple of 64) | the tag of the
 * claim that stored it, generation % 63 + 1 (never 0): a stale owner's
 * compare-and-swap fails even where a new owner passed through the same
 * position (PROTOCOL.md, section 5). */
#define IVSHM_POS_TAG_MASK      UINT64_C (63)
#define IVSHM_POS_TAG(generation) ((uint64_t) ((generation) % 63u + 1u))
/* Each session starts its positions at a base that no earlier session can
 * have published: the old reserve_end (or write_pos) plus the smallest
 * multiple of the ring size that is at least this (PROTOCOL.md, "Session
 * format"). */
#define IVSHM_SESSION_BASE_STEP (UINT64_C (1) << 40)

typedef struct
{
  /* line 0: identity, written by the producer before it publishes magic;
   * constant for a session. */
  _Atomic uint64_t magic;               /* 0x000 IVSHM_MAGIC, written last */
  _Atomic uint32_t version_major;       /* 0x008 */
  _Atomic uint32_t version_minor;       /* 0x00c */
  _Atomic uint64_t region_size;         /* 0x010 bytes the producer mapped */
  _Atomic uint64_t ring_offset;         /* 0x018 IVSHM_RING_OFFSET */
  _Atomic uint64_t ring_size;           /* 0x020 multiple of 64 */
  _Atomic uint32_t slot_offset;         /* 0x028 IVSHM_SLOT_OFFSET */
  _Atomic uint16_t slot_count;          /* 0x02c IVSHM_MAX_READERS */
  _Atomic uint16_t slot_size;           /* 0x02e IVSHM_SLOT_SIZE */
  _Atomic uint32_t sticky_offset;       /* 0x030 IVSHM_STICKY_OFFSET */
  _Atomic uint32_t sticky_size;         /* 0x034 IVSHM_STICKY_SIZE */
  _Atomic uint32_t record_align;        /* 0x038 IVSHM_RECORD_ALIGN */
  _Atomic uint32_t header_flags;        /* 0x03c reserved, 0 */

  /* line 1: session, written by the producer */
  _Atomic uint64_t session_id;          /* 0x040 random, non-zero, new at each start */
  _Atomic uint64_t producer_heartbeat;  /* 0x048 incremented while alive */
  _Atomic uint32_t producer_state;      /* 0x050 IVSHM_PRODUCER_* */
  _Atomic uint32_t producer_flags;      /* 0x054 IVSHM_PRODUCER_FLAG_* */
  _Atomic uint64_t producer_pid;        /* 0x058 informative only */
  _Atomic uint64_t heartbeat_period_us; /* 0x060 how often the heartbeat moves */
  _Atomic uint64_t producer_kernel_id;  /* 0x068 which kernel the producer
                                         * runs on (0: unknown); a reader on
                                         * the same kernel can be woken by a
                                         * futex, others must poll */
  _Atomic uint64_t producer_owner;      /* 0x070 the owning producer's random
                                         * token, 0: nobody; claimed and
                                         * taken over by compare-and-swap */
  uint8_t _pad1[IVSHM_CACHE_LINE - 0x38];

  /* line 2: the producer's hot counter */
  _Atomic uint64_t write_pos;           /* 0x080 end of published records */
  _Atomic uint32_t data_futex;          /* 0x088 bumped to wake readers */
  _Atomic uint32_t readers_sleeping;    /* 0x08c bitmask: bit i set while
                                         * the reader in slot i is about to
                                         * sleep (fetch_or / fetch_and) */
  _Atomic uint64_t reserve_end;         /* 0x090 the end of the space the
                                         * producer may still write into
                                         * (its reservations), published by
                                         * CAS before it writes there; the
                                         * next session starts behind it */
  uint8_t _pad2[IVSHM_CACHE_LINE - 0x18];

  /* line 3: the oldest position the producer may still need to keep */
  _Atomic uint64_t tail;                /* 0x0c0 */
  _Atomic uint32_t space_futex;         /* 0x0c8 bumped to wake the producer */
  _Atomic uint32_t writer_sleeping;     /* 0x0cc the producer is about to sleep */
  uint8_t _pad3[IVSHM_CACHE_LINE - 0x10];

  /* line 4 (0x100, version 2.1): the producer's clock, sampled. A pair of
   * readings of the producer's pipeline clock and of CLOCK_MONOTONIC of
   * its kernel, taken together, under a sequence lock; refreshed at every
   * buffer and every heartbeat (PROTOCOL.md, section 6a). 0 in a 2.0
   * region: no clock published. */
  _Atomic uint64_t clock_seq;           /* 0x100 odd while being written */
  _Atomic uint64_t clock_epoch;         /* 0x108 which clock of the producer
                                         * (0: none); TIME records name it */
  _Atomic uint64_t clock_kernel_id;     /* 0x110 the kernel whose
                                         * CLOCK_MONOTONIC `clock_mono` is */
  _Atomic uint64_t clock_time;          /* 0x118 the pipeline clock, ns */
  _Atomic uint64_t clock_mono;          /* 0x120 CLOCK_MONOTONIC, ns */
  _Atomic uint64_t clock_window;        /* 0x128 clock_time was read within
                                         * clock_mono +- this, ns */
  _Atomic uint64_t clock_pub_seq;       /* 0x130 the clock_seq that ... */
  _Atomic uint64_t clock_pub_mono;      /* 0x138 ... was visible to all by
                                         * this CLOCK_MONOTONIC (or later) */
  /* line 5 (0x140, version 2.1) */
  _Atomic uint64_t live_since_mono;     /* 0x140 the producer's
                                         * CLOCK_MONOTONIC when it wrote the
                                         * first buffer of a live stream in
                                         * this session; 0: not live (yet) */
  uint8_t _pad5[IVSHM_CACHE_LINE - 0x08];

  uint8_t reserved[IVSHM_HEADER_SIZE - 6 * IVSHM_CACHE_LINE];
} IvshmHeader;

/* IvshmReaderSlot.state_gen: a slot's state and claim generation as the
 * one 64-bit word they share at 0x20 */
#define IVSHM_SLOT_WORD(state, generation) \
  ((uint64_t) (uint32_t) (state) | (uint64_t) (uint32_t) (generation) << 32)
#define IVSHM_SLOT_WORD_STATE(word) ((uint32_t) (word))
#define IVSHM_SLOT_WORD_GEN(word) ((uint32_t) ((word) >> 32))

typedef struct
{
  /* line 0: written by the reader that owns the slot */
  _Atomic uint64_t read_pos;            /* 0x00 next record the reader needs,
                                         * | its claim's tag (low 6 bits) */
  _Atomic uint64_t owner;               /* 0x08 random token, 0 when free */
  _Atomic uint64_t heartbeat;           /* 0x10 incremented while alive */
  _Atomic uint64_t session_id;          /* 0x18 the session it reads */
  union
  {
    struct
    {
      _Atomic uint32_t state;           /* 0x20 IVSHM_SLOT_* */
      _Atomic uint32_t generation;      /* 0x24 claims of this slot so far */
    };
    /* 0x20 both as one word, state | generation << 32 (little-endian):
     * a let-go or a reap moves the state by one compare-and-swap of this
     * word, so it fails once the slot was claimed again
     * (IVSHM_SLOT_WORD, ivshm_slot_move_from) */
    _Atomic uint64_t state_gen;
  };
  _Atomic uint64_t pid;                 /* 0x28 informative only */
  _Atomic uint64_t records_read;        /* 0x30 informative only */
  _Atomic uint64_t kernel_id;           /* 0x38 the reader's kernel (0: unknown) */
  /* line 1: reserved (statistics, later versions) */
  uint8_t reserved1[IVSHM_CACHE_LINE];
} IvshmReaderSlot;

/* The sticky area: a copy of the latest stream-start, caps, segment and tag
 * records, so that a reader attaching mid-stream knows the stream. Written
 * by the producer under a sequence lock. */
typedef struct
{
  _Atomic uint64_t seq;                 /* 0x00 odd while being written */
  _Atomic uint64_t applies_from;        /* 0x08 ring position from which
                                         * these records describe the stream */
  _Atomic uint32_t len;                 /* 0x10 bytes of records after the
                                         * 64-byte sticky header */
  _Atomic uint32_t count;               /* 0x14 number of records */
  uint8_t reserved[IVSHM_CACHE_LINE - 0x18];
  /* records follow, each IvshmRecordHeader + payload, 64-byte aligned */
} IvshmStickyHeader;

/* The ABI, pinned. */
#define IVSHM_ASSERT_OFFSET(type, field, off) \
  _Static_assert (offsetof (type, field) == (off), #type "." #field " moved")

IVSHM_ASSERT_OFFSET (IvshmHeader, magic, 0x000);
IVSHM_ASSERT_OFFSET (IvshmHeader, version_major, 0x008);
IVSHM_ASSERT_OFFSET (IvshmHeader, version_minor, 0x00c);
IVSHM_ASSERT_OFFSET (IvshmHeader, region_size, 0x010);
IVSHM_ASSERT_OFFSET (IvshmHeader, ring_offset, 0x018);
IVSHM_ASSERT_OFFSET (IvshmHeader, ring_size, 0x020);
IVSHM_ASSERT_OFFSET (IvshmHeader, slot_offset, 0x028);
IVSHM_ASSERT_OFFSET (IvshmHeader, slot_count, 0x02c);
IVSHM_ASSERT_OFFSET (IvshmHeader, slot_size, 0x02e);
IVSHM_ASSERT_OFFSET (IvshmHeader, sticky_offset, 0x030);
IVSHM_ASSERT_OFFSET (IvshmHeader, sticky_size, 0x034);
IVSHM_ASSERT_OFFSET (IvshmHeader, record_align, 0x038);
IVSHM_ASSERT_OFFSET (IvshmHeader, header_flags, 0x03c);
IVSHM_ASSERT_OFFSET (IvshmHeader, session_id, 0x040);
IVSHM_ASSERT_OFFSET (IvshmHeader, producer_heartbeat, 0x048);
IVSHM_ASSERT_OFFSET (IvshmHeader, producer_state, 0x050);
IVSHM_ASSERT_OFFSET (IvshmHeader, producer_flags, 0x054);
IVSHM_ASSERT_OFFSET (IvshmHeader, producer_pid, 0x058);
IVSHM_ASSERT_OFFSET (IvshmHeader, heartbeat_period_us, 0x060);
IVSHM_ASSERT_OFFSET (IvshmHeader, producer_kernel_id, 0x068);
IVSHM_ASSERT_OFFSET (IvshmHeader, producer_owner, 0x070);
IVSHM_ASSERT_OFFSET (IvshmHeader, write_pos, 0x080);
IVSHM_ASSERT_OFFSET (IvshmHeader, data_futex, 0x088);
IVSHM_ASSERT_OFFSET (IvshmHeader, readers_sleeping, 0x08c);
IVSHM_ASSERT_OFFSET (IvshmHeader, reserve_end, 0x090);
IVSHM_ASSERT_OFFSET (IvshmHeader, tail, 0x0c0);
IVSHM_ASSERT_OFFSET (IvshmHeader, space_futex, 0x0c8);
IVSHM_ASSERT_OFFSET (IvshmHeader, writer_sleeping, 0x0cc);
IVSHM_ASSERT_OFFSET (IvshmHeader, clock_seq, 0x100);
IVSHM_ASSERT_OFFSET (IvshmHeader, clock_epoch, 0x108);
IVSHM_ASSERT_OFFSET (IvshmHeader, clock_kernel_id, 0x110);
IVSHM_ASSERT_OFFSET (IvshmHeader, clock_time, 0x118);
IVSHM_ASSERT_OFFSET (IvshmHeader, clock_mono, 0x120);
IVSHM_ASSERT_OFFSET (IvshmHeader, clock_window, 0x128);
IVSHM_ASSERT_OFFSET (IvshmHeader, clock_pub_seq, 0x130);
IVSHM_ASSERT_OFFSET (IvshmHeader, clock_pub_mono, 0x138);
IVSHM_ASSERT_OFFSET (IvshmHeader, live_since_mono, 0x140);
_Static_assert (sizeof (IvshmHeader) == IVSHM_HEADER_SIZE, "header size");

IVSHM_ASSERT_OFFSET (IvshmReaderSlot, read_pos, 0x00);
IVSHM_ASSERT_OFFSET (IvshmReaderSlot, owner, 0x08);
IVSHM_ASSERT_OFFSET (IvshmReaderSlot, heartbeat, 0x10);
IVSHM_ASSERT_OFFSET (IvshmReaderSlot, session_id, 0x18);
IVSHM_ASSERT_OFFSET (IvshmReaderSlot, state, 0x20);
IVSHM_ASSERT_OFFSET (IvshmReaderSlot, generation, 0x24);
IVSHM_ASSERT_OFFSET (IvshmReaderSlot, state_gen, 0x20);
_Static_assert (IVSHM_POS_TAG_MASK + 1 == IVSHM_RECORD_ALIGN,
    "the claim tag lives in the bits a record boundary leaves 0");
IVSHM_ASSERT_OFFSET (IvshmReaderSlot, pid, 0x28);
IVSHM_ASSERT_OFFSET (IvshmReaderSlot, records_read, 0x30);
IVSHM_ASSERT_OFFSET (IvshmReaderSlot, kernel_id, 0x38);
_Static_assert (sizeof (IvshmReaderSlot) == IVSHM_SLOT_SIZE, "slot size");
_Static_assert (IVSHM_SLOT_OFFSET + IVSHM_MAX_READERS * IVSHM_SLOT_SIZE
    <= IVSHM_STICKY_OFFSET, "slots overlap the sticky area");

IVSHM_ASSERT_OFFSET (IvshmStickyHeader, seq, 0x00);
IVSHM_ASSERT_OFFSET (IvshmStickyHeader, applies_from, 0x08);
IVSHM_ASSERT_OFFSET (IvshmStickyHeader, len, 0x10);
IVSHM_ASSERT_OFFSET (IvshmStickyHeader, count, 0x14);
_Static_assert (sizeof (IvshmStickyHeader) == IVSHM_CACHE_LINE,
    "sticky header size");
_Static_assert (IVSHM_STICKY_OFFSET + IVSHM_STICKY_SIZE <= IVSHM_RING_OFFSET,
    "sticky area overlaps the ring");

#endif /* IVSHMEM_LAYOUT_H */
