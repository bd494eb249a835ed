#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (tests/fuzz/corpus/).

Each seed is a script in the byte code that fuzz-reader.c, fuzz-writer.c
and fuzz-inspect.c read: one operation byte, then its arguments
(little-endian). The seeds
walk the paths that matter (attach, read, hold, scribble, restart; reserve,
commit, spans, evictions) so the fuzzer starts deep.

    python3 tests/fuzz/make-seeds.py tests/fuzz/corpus
"""
import os
import struct
import sys

# fuzz-reader.c operations
R_BUF, R_REC, R_SCRIB, R_ATTACH, R_NEXT, R_HOLD, R_UNHOLD, R_LEAVE, R_MISC = \
    0, 2, 3, 5, 6, 8, 9, 10, 11
# fuzz-writer.c operations
W_SLOT, W_HDR, W_SCRIB, W_RESERVE, W_WRITE, W_SPAN, W_COMMIT_SPAN, \
    W_RELEASE_SPAN, W_READER, W_WAIT, W_MISC = 0, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12


def u8(v):
    return struct.pack("<B", v & 0xff)


def u16(v):
    return struct.pack("<H", v & 0xffff)


def u32(v):
    return struct.pack("<I", v & 0xffffffff)


def u64(v):
    return struct.pack("<Q", v & 0xffffffffffffffff)


def scribble(area, off, data, near_start=False):
    # offsets: odd = (off >> 1) % 512, even = (off >> 1) % area length
    o = (off << 1) | (1 if near_start else 0)
    return u8(area) + struct.pack("<I", o)[:3] + u8(len(data)) + data


def reader_seeds():
    s = {}
    s["attach-late-read"] = (
        u8(R_REC) + u8(2) + u8(R_REC) + u8(1) + u8(R_REC) + u8(3)
        + b"".join(u8(R_BUF) + u16(n) for n in (0, 100, 4000, 20000))
        + u8(R_ATTACH) + u8(R_NEXT) * 8)
    s["attach-first-hold"] = (
        u8(R_ATTACH) + u8(R_REC) + u8(2) + u8(R_REC) + u8(1)
        + b"".join(u8(R_BUF) + u16(n) for n in range(0, 30000, 3000))
        + u8(R_HOLD) * 6 + u8(R_UNHOLD) + u8(3) + u8(R_UNHOLD) + u8(0)
        + u8(R_NEXT) * 6 + u8(R_MISC))
    s["wrap"] = (
        u8(R_ATTACH) + u8(R_REC) + u8(1)
        + b"".join(u8(R_BUF) + u16(12000) + u8(R_NEXT) for _ in range(12))
        + u8(R_MISC))
    # a record header in the ring scribbled before it is read
    s["torn-record"] = (
        u8(R_ATTACH) + u8(R_BUF) + u16(500) + u8(R_BUF) + u16(500)
        + u8(R_SCRIB) + scribble(3, 0x10, u64(1 << 40), near_start=True)
        + u8(R_NEXT) * 3)
    # write_pos beyond the ring, a bad version, a changed session
    s["header"] = (
        u8(R_BUF) + u16(64) + u8(R_SCRIB) + scribble(0, 0x80, u64(1 << 20), True)
        + u8(R_ATTACH) + u8(R_NEXT) + u8(R_SCRIB) + scribble(0, 0x40, u64(7), True)
        + u8(R_NEXT) + u8(R_SCRIB) + scribble(0, 0x08, u32(2), True)
        + u8(R_ATTACH) + u8(R_NEXT))
    # the sticky area lies about its length
    s["sticky"] = (
        u8(R_REC) + u8(2) + u8(R_REC) + u8(1) + u8(R_ATTACH) + u8(R_NEXT)
        + u8(R_SCRIB) + scribble(2, 0x10, u32(0xfff0), True)
        + u8(R_LEAVE) + u8(1) + u8(R_ATTACH) + u8(R_NEXT) * 4)
    # a record that ends at the ring's end, more published after it (the
    # ring wrapped), and a length scribbled one line, then two records,
    # past the ring's end: within what was published and the ring's size
    # (a reader that checks the length against the ring's size alone hands
    # out a payload past the ring: fuzz_check_record aborts)
    ring_end = (
        u8(R_ATTACH) + u8(0)
        + b"".join(u8(R_BUF) + u16(960) + u8(R_NEXT) for _ in range(63))
        + b"".join(u8(R_BUF) + u16(960) for _ in range(3)))
    s["ring-end"] = (
        ring_end + u8(R_SCRIB) + scribble(3, 0x10000 - 1024 + 0x10, u64(1024))
        + u8(R_NEXT) * 4)
    s["ring-end-far"] = (
        ring_end + u8(R_SCRIB) + scribble(3, 0x10000 - 1024 + 0x10,
                                          u64(3 * 1024 - 64))
        + u8(R_NEXT) * 4)
    s["restart"] = (
        u8(R_ATTACH) + u8(R_BUF) + u16(100) + u8(R_HOLD)
        + u8(R_LEAVE) + u8(0) + u8(R_REC) + u8(2) + u8(R_BUF) + u16(10)
        + u8(R_NEXT) * 3 + u8(R_ATTACH) + u8(R_NEXT) * 3)
    return s


def writer_seeds():
    s = {}
    s["reserve-commit"] = b"".join(
        u8(W_RESERVE) + u16(n) + u16(n // 2) + u8(1) + u8(W_READER) + u8(i & 1)
        for i, n in enumerate(range(0, 60000, 5000)))
    s["read-pos-near"] = (
        u8(W_SLOT) + u8(0) + u8(0) + u8(0xfe) + u8(W_WRITE) + u16(30000)
        + u8(W_SLOT) + u8(1) + u8(0) + u8(4) + u8(W_WRITE) + u16(30000)
        + u8(W_WRITE) + u16(30000) + u8(W_MISC))
    s["garbage-slot"] = (
        u8(W_SLOT) + u8(5) + u8(5) + u32(2) + u8(W_SLOT) + u8(5) + u8(4) + u8(1)
        + u8(W_SLOT) + u8(5) + u8(2) + u64(1234) + u8(W_SLOT) + u8(5) + u8(1)
        + u64(1 << 63) + u8(W_WRITE) + u16(60000) + u8(W_WRITE) + u16(60000))
    s["spans"] = (
        u8(W_SPAN) + u16(1000) + u8(W_SPAN) + u16(20000) + u8(W_SPAN) + u16(50)
        + u8(W_COMMIT_SPAN) + u8(1) + u16(100) + u8(1)
        + u8(W_COMMIT_SPAN) + u8(0) + u16(10) + u8(1)
        + u8(W_RELEASE_SPAN) + u8(0) + u8(W_RELEASE_SPAN) + u8(0)
        + u8(W_RELEASE_SPAN) + u8(0) + u8(W_READER) + u8(0))
    s["futex"] = (
        u8(W_HDR) + u8(3) + u32(1) + u8(W_HDR) + u8(2) + u32(0xffffffff)
        + u8(W_WAIT) + u8(W_HDR) + u8(4) + u32(0xffffffff) + u8(W_WRITE)
        + u16(100) + u8(W_HDR) + u8(6) + u64(1 << 62) + u8(W_WRITE) + u16(64))
    return s


# fuzz-inspect.c operations
I_PATCH, I_U64, I_INSPECT, I_WATCH = 0, 1, 2, 3
STICKY = 0x2000


def inspect_seeds():
    s = {}
    s["valid"] = u8(I_INSPECT) + u16(0)
    # every claimed size, a heartbeat step
    s["sizes"] = b"".join(u8(I_INSPECT) + u16(i) for i in range(5)) \
        + u8(I_WATCH) + u16(0)
    # sticky len and count (one u64 over both)
    s["sticky-len"] = u8(I_U64) + u16(STICKY + 0x10) + u64(0x0000000300000140) \
        + u8(I_INSPECT) + u16(0)
    # a payload length past the area
    s["payload-len"] = u8(I_U64) + u16(STICKY + 0x40 + 0x10) + u64(0xffffffc0) \
        + u8(I_INSPECT) + u16(0)
    # EOS moved to the first record: records follow it
    s["eos-first"] = u8(I_PATCH) + u16(STICKY + 0x40) + u8(4) \
        + u16(4) + u16(5) + u8(I_INSPECT) + u16(0)
    # a writer in the middle of an update
    s["busy"] = u8(I_U64) + u16(STICKY) + u64(3) + u8(I_INSPECT) + u16(0)
    # version 1 and 3, a slot state from the future, positions backwards
    s["header"] = (u8(I_PATCH) + u16(8) + u8(4) + u32(1) + u8(I_INSPECT)
                   + u16(0) + u8(I_PATCH) + u16(8) + u8(4) + u32(3)
                   + u8(I_INSPECT) + u16(0) + u8(I_PATCH) + u16(8) + u8(4)
                   + u32(2) + u8(I_PATCH) + u16(0x1020) + u8(4) + u32(9)
                   + u8(I_U64) + u16(0xc0) + u64(1 << 62) + u8(I_INSPECT)
                   + u16(1) + u8(I_WATCH) + u16(0))
    return s


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus")
    for target, seeds in (("reader", reader_seeds()), ("writer", writer_seeds()),
                          ("inspect", inspect_seeds())):
        d = os.path.join(out, target)
        os.makedirs(d, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
