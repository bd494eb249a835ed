#!/usr/bin/env python3
# Copyright (c) 2025 The gst-ivshmem authors
# SPDX-License-Identifier: MIT
"""Benchmark ivshmemsink/ivshmemsrc against GStreamer's shmsink/shmsrc.

Runs the same pipelines through both transports, alternately, for several
rounds; each side runs in its own process (tests/bench/bench-writer and
tests/bench/bench-reader from the build). Prints medians and ratios
(ivshmem / shm), writes OUT/results.csv (every round), OUT/summary.csv
(medians), OUT/bench.png (gnuplot) and a Markdown table.

    python3 tests/bench/run.py --builddir build            # 5 rounds
    python3 tests/bench/run.py --builddir build --quick    # smoke run

Not part of `meson test`: the numbers depend on the machine.
"""

import argparse
import csv
import datetime
import glob
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# (size in bytes, buffers per round in full mode). Counts are chosen so that
# one side of a round takes about one to three seconds here.
SIZES = [
    (4096, 200000),
    (65536, 50000),
    (1048576, 5000),
    (8294400, 1500),
    (33177600, 300),
]
QUICK_DIVISOR = 5
WARMUP_FRACTION = 0.2       # buffers before the measured window
LAT_SIZE = 4096
LAT_RATE = 1000             # buffers/s, paced by fakesrc datarate + sync
# ivshmemsrc's busy-poll for the second latency row: above the interval
# between buffers, so the source never sleeps
LAT_BUSY_POLL = 2 * 1000000000 // LAT_RATE
WAKE_MODES = ("pipe", "ring", "ring-slice", "ring-spin")
RING_MODES = ("alone", "reader")
# raw video into ivshmemsink's pool: (frame bytes, caps, label, frames per
# round in full mode)
VIDEOS = [
    (8294400, "video/x-raw,format=BGRx,width=1920,height=1080", "1080p", 1500),
    (33177600, "video/x-raw,format=BGRx,width=3840,height=2160", "4K", 400),
]
VIDEO_CAPS = {size: caps for size, caps, _, _ in VIDEOS}
VIDEO_LABEL = {size: label for size, _, label, _ in VIDEOS}
# bench-copy: memcpy() and the streaming copy (ivshm_copy) of each size, in
# ms per timed run (the best of 3 runs counts)
COPY_MS = 300
COPY_MODES = ("memcpy", "stream")

TRANSPORTS = ("ivshmem", "shm")
# ivshmem-noslice: ivshmemsrc scheduler-slice=0, the streaming thread left
# with the kernel's default time slice (what the slice buys, in the same run)
LAT_TRANSPORTS = ("ivshmem", "ivshmem-noslice", "ivshmem-busy", "shm")


def size_label(n):
    if n % 1048576 == 0:
        return "%d MiB" % (n // 1048576)
    if n % 1024 == 0 and n < 1048576:
        return "%d KiB" % (n // 1024)
    return "{:,} B".format(n)


def region_size(payload):
    """Power-of-two region for ivshmem with room for about seven buffers,
    at least 1 MiB (as shm's area below). A ring much larger than the
    buffers in flight only spreads small buffers over memory that is no
    longer in the cache: with 4 KiB buffers a 64 MiB region ran at about
    0.6 M buffers/s here, a 1 MiB one at about 0.8 M."""
    need = 1024 * 1024
    while need < 7 * (payload + 4096) + 65536:
        need *= 2
    return need


def shm_size(payload):
    """shmsink's area. With the 64 MiB default and 4 KiB buffers, shmsink
    and shmsrc deadlock here: both block in send() on their control socket
    once thousands of buffers are in flight. About eight buffers (at least
    1 MiB) keeps the socket from filling and gives shm its best speed."""
    mib = 1024 * 1024
    want = max(mib, 8 * payload)
    return (want + mib - 1) // mib * mib


class Runner:
    def __init__(self, args):
        self.args = args
        self.builddir = os.path.abspath(args.builddir)
        self.reader = os.path.join(self.builddir, "tests", "bench", "bench-reader")
        self.writer = os.path.join(self.builddir, "tests", "bench", "bench-writer")
        self.wake = os.path.join(self.builddir, "tests", "bench", "bench-wake")
        self.ring = os.path.join(self.builddir, "tests", "bench", "bench-ring")
        self.copy = os.path.join(self.builddir, "tests", "bench", "bench-copy")
        self.out = os.path.abspath(args.out)
        self.logs = os.path.join(self.out, "logs")
        self.tmp = tempfile.mkdtemp(prefix="ivshmem-bench-")
        self.seq = 0
        self.env = dict(os.environ)
        plugin = os.path.join(self.builddir, "gst")
        self.env["GST_PLUGIN_PATH_1_0"] = plugin
        self.env["GST_REGISTRY_1_0"] = os.path.join(self.out, "registry.bin")
        self.env.setdefault("GST_DEBUG", "*:1")
        self.live_files = set()
        self.children = []

    # -- processes -------------------------------------------------------

    def spawn(self, argv, tag):
        base = os.path.join(self.logs, tag)
        out = open(base + ".out", "w")
        err = open(base + ".err", "w")
        p = subprocess.Popen(argv, stdout=out, stderr=err, env=self.env,
                             stdin=subprocess.DEVNULL)
        out.close()
        err.close()
        p.tag = base
        p.rusage = None
        self.children.append(p)
        return p

    def reap(self, procs, deadline):
        """Wait for every process; kill all of them at the deadline.
        Returns True when nobody had to be killed."""
        pending = list(procs)
        timed_out = False
        while pending:
            for p in list(pending):
                pid, status, ru = os.wait4(p.pid, os.WNOHANG)
                if pid:
                    p.returncode = os.waitstatus_to_exitcode(status)
                    p.rusage = ru
                    pending.remove(p)
                    self.children.remove(p)
            if not pending:
                break
            if time.monotonic() > deadline:
                timed_out = True
                for p in pending:
                    try:
                        os.kill(p.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                deadline = float("inf")
            time.sleep(0.01)
        return not timed_out

    def run_one(self, argv, tag):
        """Runs one process to its end (or kills it at the timeout).
        Returns (process, its json, error or None)."""
        p = self.spawn(argv, tag)
        ok = self.reap([p], time.monotonic() + self.args.timeout)
        j = self.result(p)
        if not ok:
            return p, j, "killed after %d s" % self.args.timeout
        if j is None or j.get("error"):
            return p, j, (j or {}).get("error") or "no result: " + \
                self.stderr_tail(p)
        return p, j, None

    @staticmethod
    def result(p):
        try:
            with open(p.tag + ".out") as f:
                lines = [l for l in f.read().splitlines() if l.startswith("{")]
            return json.loads(lines[-1]) if lines else None
        except (OSError, ValueError):
            return None

    @staticmethod
    def stderr_tail(p):
        try:
            with open(p.tag + ".err") as f:
                lines = [l for l in f.read().splitlines() if l.strip()]
            return lines[-1][:200] if lines else ""
        except OSError:
            return ""

    def cleanup_files(self, writer_pid=None):
        for path in list(self.live_files):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            self.live_files.discard(path)
        if writer_pid:
            # shmsink's areas, left behind when it is killed
            for path in glob.glob("/dev/shm/shmpipe.%d.*" % writer_pid):
                try:
                    os.unlink(path)
                except OSError:
                    pass

    def close(self):
        for p in list(self.children):
            try:
                os.kill(p.pid, signal.SIGKILL)
                os.waitpid(p.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            # a shmsink killed here (Ctrl-C) leaves its area behind
            self.cleanup_files(p.pid)
        self.cleanup_files()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- one round of one case through one transport ----------------------

    def run_pair(self, transport, writer_desc, reader_desc, count, *,
                 latency=False, region=None, socket=None):
        """Runs writer and reader; returns (reader json, writer json,
        cpu seconds of both, error or None)."""
        self.seq += 1
        tag = "%04d-%s" % (self.seq, transport)
        t = self.args.timeout
        inner = ["--timeout", str(max(t - 5, 5))]
        warm = int(count * WARMUP_FRACTION)
        rargv = [self.reader, "--count", str(count), "--warmup", str(warm)] + inner
        if latency:
            rargv.append("--latency")
        rargv.append(reader_desc)
        wargv = [self.writer] + inner + (["--stamp"] if latency else []) + [writer_desc]

        procs = []
        error = None
        deadline = time.monotonic() + t
        if transport.startswith("ivshmem"):
            # The reader waits on an empty file for the producer, so it is
            # attached before the ring fills up.
            self.live_files.add(region[0])
            with open(region[0], "wb") as f:
                f.truncate(region[1])
            reader = self.spawn(rargv, tag + "-reader")
            writer = self.spawn(wargv, tag + "-writer")
            procs = [reader, writer]
        else:
            # shmsrc needs the socket, which shmsink creates when it starts
            self.live_files.add(socket)
            writer = self.spawn(wargv, tag + "-writer")
            procs = [writer]
            while not os.path.exists(socket) and writer.poll() is None \
                    and time.monotonic() < deadline:
                time.sleep(0.005)
            if os.path.exists(socket):
                reader = self.spawn(rargv, tag + "-reader")
                procs.append(reader)
            else:
                reader = None
                error = "shmsink did not create its socket"
                deadline = time.monotonic()
        ok = self.reap(procs, deadline)
        self.cleanup_files(writer.pid)

        rj = self.result(reader) if reader else None
        wj = self.result(writer)
        cpu = 0.0
        for p in procs:
            if p.rusage:
                cpu += p.rusage.ru_utime + p.rusage.ru_stime
        if error is None:
            if not ok:
                error = "killed after %d s" % t
            elif rj is None:
                error = "reader: no result (exit %s: %s)" % (
                    reader.returncode, self.stderr_tail(reader))
            elif rj.get("error"):
                error = "reader: " + rj["error"]
            elif wj is None:
                error = "writer: no result (exit %s: %s)" % (
                    writer.returncode, self.stderr_tail(writer))
            elif wj.get("error"):
                error = "writer: " + wj["error"]
        return rj, wj, cpu, error


def fakesrc(size, count, extra=""):
    return ("fakesrc name=src sizetype=fixed sizemax=%d filltype=nothing "
            "num-buffers=%d %s" % (size, count, extra)).strip()


def videosrc(count, size):
    return "videotestsrc name=src pattern=black num-buffers=%d ! %s" % (
        count, VIDEO_CAPS[size])


def median(xs):
    return statistics.median(xs) if xs else None


def fmt(x, digits=0):
    if x is None:
        return "n/a"
    if digits == 0:
        return "{:,.0f}".format(x)
    return "{:,.{}f}".format(x, digits)


def ratio(a, b):
    if a is None or b in (None, 0):
        return None
    return a / b


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--builddir", default=os.path.join(TOP, "build"),
                    help="meson build directory (default: build)")
    ap.add_argument("--rounds", type=int, default=None,
                    help="rounds per case (default 5, --quick: 2)")
    ap.add_argument("--quick", action="store_true",
                    help="2 rounds, a fifth of the buffers: a smoke run")
    ap.add_argument("--out", default=os.path.join(TOP, "tests", "bench", "out"),
                    help="output directory (default tests/bench/out)")
    ap.add_argument("--timeout", type=int, default=120,
                    help="seconds before a process is killed (default 120)")
    ap.add_argument("--only", default="throughput,latency,video",
                    help="comma-separated subset of throughput,latency,video")
    ap.add_argument("--sizes", default=None,
                    help="comma-separated subset of the fakesrc sizes in "
                    "bytes (default: all)")
    ap.add_argument("--chart", default=None,
                    help="also copy the chart to this path (e.g. docs/bench.png)")
    args = ap.parse_args()
    rounds = args.rounds or (2 if args.quick else 5)
    div = QUICK_DIVISOR if args.quick else 1
    only = set(args.only.split(","))
    if args.sizes:
        keep = {int(x) for x in args.sizes.split(",")}
        SIZES[:] = [(s, c) for s, c in SIZES if s in keep]
        if not SIZES:
            sys.exit("--sizes: none of %s is a fakesrc size" % args.sizes)

    r = Runner(args)
    for exe in (r.reader, r.writer, r.wake, r.ring, r.copy):
        if not os.access(exe, os.X_OK):
            sys.exit("%s is missing: build first (meson setup %s && ninja -C %s)"
                     % (exe, args.builddir, args.builddir))
    os.makedirs(r.logs, exist_ok=True)
    for f in glob.glob(os.path.join(r.logs, "*")):
        os.unlink(f)
    for elem in ("ivshmemsink", "ivshmemsrc", "shmsink", "shmsrc", "fakesrc",
                 "videotestsrc"):
        if subprocess.run(["gst-inspect-1.0", elem], env=r.env,
                          stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode != 0:
            sys.exit("element %s not found (GST_PLUGIN_PATH_1_0=%s)"
                     % (elem, r.env["GST_PLUGIN_PATH_1_0"]))

    machine = machine_info()
    print("gst-ivshmem benchmark: %d rounds%s, %s" % (
        rounds, " (quick)" if args.quick else "", machine["summary"]))
    print("git: %s" % machine["git"])

    # case key -> transport -> list of per-round dicts
    cases = []
    if "throughput" in only:
        for size, count in SIZES:
                cases.append(("throughput", size, max(count // div, 20)))
        if SIZES[0][0] == 4096:     # the references are for 4 KiB
            cases.append(("throughput-inprocess", SIZES[0][0],
                          max(SIZES[0][1] * 2 // div, 20)))
            cases.append(("throughput-writeronly", SIZES[0][0],
                          max(SIZES[0][1] * 2 // div, 20)))
            cases.append(("ring", SIZES[0][0],
                          max(SIZES[0][1] * 10 // div, 20)))
        cases.append(("copy", 0, 0))
    if "latency" in only:
        cases.append(("latency", LAT_SIZE, max(3 * LAT_RATE // div, 500)))
        cases.append(("wake", LAT_SIZE, max(3 * LAT_RATE // div, 500)))
    if "video" in only:
        for size, _, _, frames in VIDEOS:
            n = max(frames // div, 60)
            cases.append(("video", size, n))
            cases.append(("video-inprocess", size, n))

    rows = []
    failures = []
    pid = os.getpid()
    try:
        for rnd in range(1, rounds + 1):
            # alternate which transport goes first, round by round
            order = TRANSPORTS if rnd % 2 else TRANSPORTS[::-1]
            for kind, size, count in cases:
                if kind.endswith("-inprocess"):
                    rows.append(run_inprocess(r, rnd, kind, size, count,
                                              failures))
                    continue
                if kind == "throughput-writeronly":
                    rows.append(run_writer_only(r, rnd, size, count, pid,
                                                failures))
                    continue
                if kind == "copy":
                    rows.extend(run_copy(r, rnd, failures))
                    continue
                if kind == "ring":
                    for mode in RING_MODES:
                        rows.append(run_ring(r, rnd, mode, size, count,
                                             failures))
                    continue
                if kind == "wake":
                    for mode in WAKE_MODES:
                        rows.append(run_wake(r, rnd, mode, count, failures))
                    continue
                trs = order
                if kind == "latency":
                    trs = LAT_TRANSPORTS if rnd % 2 else LAT_TRANSPORTS[::-1]
                for tr in trs:
                    rows.append(run_case(r, rnd, kind, tr, size, count, pid,
                                         failures))
                    print_row(rows[-1])
    except KeyboardInterrupt:
        print("interrupted; writing what was measured", file=sys.stderr)
    finally:
        r.close()

    summary = summarize(rows)
    write_csv(r.out, rows, summary)
    chart = write_chart(r.out, summary)
    if chart and args.chart:
        shutil.copyfile(chart, args.chart)
    table = markdown(summary, rounds, machine, failures)
    with open(os.path.join(r.out, "table.md"), "w") as f:
        f.write(table)
    print()
    print(table)
    print("CSV: %s, %s" % (os.path.join(r.out, "results.csv"),
                           os.path.join(r.out, "summary.csv")))
    if chart:
        print("chart: %s" % chart)
    if failures:
        print("%d failed round(s), see above and %s" % (len(failures), r.logs))
    return 0


def run_case(r, rnd, kind, tr, size, count, pid, failures):
    region = "/dev/shm/bench-%d-%d" % (pid, r.seq + 1)
    sock = os.path.join(r.tmp, "shm-%d" % (r.seq + 1))
    latency = kind == "latency"
    if kind == "video":
        src = videosrc(count, size)
    elif latency:
        src = fakesrc(size, count, "datarate=%d sync=true" % (size * LAT_RATE))
    else:
        src = fakesrc(size, count)
    if tr.startswith("ivshmem"):
        rs = region_size(size)
        busy = " busy-poll=%d" % LAT_BUSY_POLL if tr == "ivshmem-busy" else ""
        if tr == "ivshmem-noslice":
            busy = " scheduler-slice=0"
        wdesc = "%s ! ivshmemsink device=%s size=%d" % (src, region, rs)
        rdesc = ("ivshmemsrc device=%s is-live=false%s ! fakesink name=sink "
                 "sync=false" % (region, busy))
        rj, wj, cpu, err = r.run_pair(tr, wdesc, rdesc, count, latency=latency,
                                      region=(region, rs))
    else:
        wdesc = ("%s ! shmsink socket-path=%s wait-for-connection=true "
                 "shm-size=%d sync=false" % (src, sock, shm_size(size)))
        rdesc = "shmsrc socket-path=%s is-live=false ! fakesink name=sink sync=false" % sock
        rj, wj, cpu, err = r.run_pair(tr, wdesc, rdesc, count, latency=latency,
                                      socket=sock)
    row = {"round": rnd, "case": kind, "size": size, "transport": tr,
           "buffers": count, "status": "ok" if err is None else "failed",
           "error": err or ""}
    if err is None:
        fill_rates(row, rj, size)
        rate = row.get("buffers_per_s") or 0
        if latency and abs(rate - LAT_RATE) > 0.1 * LAT_RATE:
            # a writer that fell behind its clock sends a burst, whose
            # latency says nothing about a paced stream
            err = "the writer was not paced: %.0f buffers/s" % rate
            row.update(status="failed", error=err)
            row.pop("buffers_per_s", None)
            row.pop("gb_per_s", None)
    if err is None:
        row["cpu_s"] = cpu
        row["cpu_s_per_gb"] = cpu / (count * size / 1e9)
        if latency:
            row["lat_p50_us"] = rj["lat_p50"] / 1e3
            row["lat_p99_us"] = rj["lat_p99"] / 1e3
            row["lat_max_us"] = rj["lat_max"] / 1e3
    else:
        failures.append("round %d, %s %s, %s: %s" % (
            rnd, kind, size_label(size), tr, " ".join(err.split())))
    return row


def fill_rates(row, rj, size):
    n = rj["buffers"] - 1 - rj["warm_index"]
    secs = (rj["t_last"] - rj["t_warm"]) / 1e9
    if n > 0 and secs > 0:
        row["buffers_per_s"] = n / secs
        row["gb_per_s"] = n * size / secs / 1e9


def run_inprocess(r, rnd, kind, size, count, failures):
    """The same source into fakesink in one process: the ceiling of what
    any transport between two processes can reach with that source."""
    r.seq += 1
    tag = "%04d-inprocess" % r.seq
    warm = int(count * WARMUP_FRACTION)
    case = kind[:-len("-inprocess")]
    src = videosrc(count, size) if case == "video" else fakesrc(size, count)
    p, rj, err = r.run_one([r.reader, "--count", str(count), "--warmup",
                            str(warm), "--timeout",
                            str(max(r.args.timeout - 5, 5)),
                            "%s ! fakesink name=sink sync=false" % src], tag)
    row = {"round": rnd, "case": case, "size": size,
           "transport": "in-process", "buffers": count,
           "status": "ok" if err is None else "failed", "error": err or ""}
    if err is None:
        fill_rates(row, rj, size)
        cpu = p.rusage.ru_utime + p.rusage.ru_stime
        row["cpu_s"] = cpu
        row["cpu_s_per_gb"] = cpu / (count * size / 1e9)
    else:
        failures.append("round %d, %s in-process: %s" % (rnd, case, err))
    print_row(row)
    return row


def run_writer_only(r, rnd, size, count, pid, failures):
    """fakesrc into ivshmemsink with no reader (policy=leaky, so it does not
    keep the stream for one): what the sink itself costs per buffer, with
    nobody on the other side of the ring."""
    r.seq += 1
    tag = "%04d-writer-only" % r.seq
    region = "/dev/shm/bench-%d-%d" % (pid, r.seq)
    r.live_files.add(region)
    p, wj, err = r.run_one([r.writer, "--timeout",
                            str(max(r.args.timeout - 5, 5)),
                            "%s ! ivshmemsink device=%s size=%d policy=leaky" % (
                                fakesrc(size, count), region,
                                region_size(size))], tag)
    r.cleanup_files()
    row = {"round": rnd, "case": "throughput", "size": size,
           "transport": "writer-only", "buffers": count,
           "status": "ok" if err is None else "failed", "error": err or ""}
    if err is None and wj["t_last"] > wj["t_first"]:
        secs = (wj["t_last"] - wj["t_first"]) / 1e9
        row["buffers_per_s"] = (wj["buffers"] - 1) / secs
        row["gb_per_s"] = row["buffers_per_s"] * size / 1e9
        cpu = p.rusage.ru_utime + p.rusage.ru_stime
        row["cpu_s"] = cpu
        row["cpu_s_per_gb"] = cpu / (count * size / 1e9)
    elif err is None:
        row.update(status="failed", error="no time measured")
    if row["status"] != "ok":
        failures.append("round %d, writer only: %s" % (rnd, row["error"]))
    print_row(row)
    return row


def run_copy(r, rnd, failures):
    """bench-copy: memcpy() of each size against the streaming copy, into
    a ring of about eight buffers as ivshmemsink copies: the memory speed
    each throughput row can be held against."""
    r.seq += 1
    tag = "%04d-copy" % r.seq
    sizes = [str(size) for size, _ in SIZES]
    ms = COPY_MS // (QUICK_DIVISOR if r.args.quick else 1)
    p = r.spawn([r.copy, "--ms", str(ms)] + sizes, tag)
    ok = r.reap([p], time.monotonic() + r.args.timeout)
    got = {}
    try:
        with open(p.tag + ".out") as f:
            for line in f:
                if line.startswith("{"):
                    j = json.loads(line)
                    got[j["size"]] = j
    except (OSError, ValueError):
        pass
    rows = []
    for size, _ in SIZES:
        j = got.get(size)
        err = None if j else ("killed after %d s" % r.args.timeout if not ok
                              else "no result: " + r.stderr_tail(p))
        for mode in COPY_MODES:
            row = {"round": rnd, "case": "copy", "size": size,
                   "transport": mode, "buffers": 0,
                   "status": "ok" if err is None else "failed",
                   "error": err or ""}
            if err is None:
                row["gb_per_s"] = j["in_%s_gbps" % mode]
                row["buffers_per_s"] = row["gb_per_s"] * 1e9 / size
            rows.append(row)
        if err is None:
            print("  round %d %-10s %-12s memcpy %7.2f GB/s, streaming "
                  "stores %7.2f GB/s" % (rnd, "copy", size_label(size),
                                         j["in_memcpy_gbps"],
                                         j["in_stream_gbps"]), flush=True)
        else:
            failures.append("round %d, copy %s: %s" % (rnd, size_label(size),
                                                       err))
            print_row(rows[-1])
    return rows


def run_ring(r, rnd, mode, size, count, failures):
    """bench-ring: the ring's own cost per record, without GStreamer."""
    r.seq += 1
    tag = "%04d-ring-%s" % (r.seq, mode)
    _, rj, err = r.run_one([r.ring, "--count", str(count), "--size",
                            str(size), mode], tag)
    row = {"round": rnd, "case": "ring", "size": size, "transport": mode,
           "buffers": count, "status": "ok" if err is None else "failed",
           "error": err or ""}
    if err is None:
        row["ns_per_record"] = rj["ns_per_record"]
        print("  round %d %-10s %-12s %-10s %8.1f ns per record" % (
            rnd, "ring", size_label(size), mode, rj["ns_per_record"]),
            flush=True)
    else:
        failures.append("round %d, ring %s: %s" % (rnd, mode, err))
        print_row(row)
    return row


def run_wake(r, rnd, mode, count, failures):
    """bench-wake: the wake-up floor of this machine, without GStreamer."""
    r.seq += 1
    tag = "%04d-wake-%s" % (r.seq, mode)
    _, rj, err = r.run_one([r.wake, "--count", str(count), mode], tag)
    row = {"round": rnd, "case": "wake", "size": LAT_SIZE, "transport": mode,
           "buffers": count, "status": "ok" if err is None else "failed",
           "error": err or ""}
    if err is None:
        row["lat_p50_us"] = rj["p50_ns"] / 1e3
        row["lat_p99_us"] = rj["p99_ns"] / 1e3
        row["lat_max_us"] = rj["max_ns"] / 1e3
    else:
        failures.append("round %d, wake %s: %s" % (rnd, mode, err))
    print_row(row)
    return row


def print_row(row):
    if row["status"] != "ok":
        print("  round %d %-10s %-12s %-10s FAILED: %s" % (
            row["round"], row["case"], size_label(row["size"]),
            row["transport"], row["error"]))
        return
    extra = ""
    if row["case"] == "wake":
        print("  round %d %-10s %-12s %-10s latency p50 %.1f us p99 %.1f us "
              "max %.1f us" % (row["round"], row["case"], "", row["transport"],
                               row["lat_p50_us"], row["lat_p99_us"],
                               row["lat_max_us"]), flush=True)
        return
    if "lat_p50_us" in row:
        extra = "  latency p50 %.1f us p99 %.1f us max %.1f us" % (
            row["lat_p50_us"], row["lat_p99_us"], row["lat_max_us"])
    print("  round %d %-10s %-12s %-10s %12s buffers/s %7.2f GB/s %6.2f CPU s/GB%s" % (
        row["round"], row["case"], size_label(row["size"]), row["transport"],
        fmt(row.get("buffers_per_s")), row.get("gb_per_s") or 0,
        row.get("cpu_s_per_gb") or 0, extra), flush=True)


METRICS = ("buffers_per_s", "gb_per_s", "cpu_s_per_gb", "lat_p50_us",
           "lat_p99_us", "lat_max_us", "ns_per_record")


def summarize(rows):
    """Medians over the successful rounds, per (case, size, transport)."""
    groups = {}
    for row in rows:
        key = (row["case"], row["size"], row["transport"])
        g = groups.setdefault(key, {"ok": 0, "failed": 0, "values": {}})
        g[row["status"]] += 1
        for m in METRICS:
            if m in row:
                g["values"].setdefault(m, []).append(row[m])
    summary = []
    for (case, size, tr), g in groups.items():
        s = {"case": case, "size": size, "transport": tr,
             "rounds_ok": g["ok"], "rounds_failed": g["failed"]}
        for m in METRICS:
            s[m] = median(g["values"].get(m, []))
        summary.append(s)
    return summary


def lookup(summary, case, size, tr):
    for s in summary:
        if s["case"] == case and s["size"] == size and s["transport"] == tr:
            return s
    return None


def write_csv(out, rows, summary):
    cols = ["round", "case", "size", "transport", "buffers", "status",
            "buffers_per_s", "gb_per_s", "cpu_s", "cpu_s_per_gb",
            "lat_p50_us", "lat_p99_us", "lat_max_us", "ns_per_record",
            "error"]
    with open(os.path.join(out, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow(row)
    cols = ["case", "size", "transport", "rounds_ok", "rounds_failed"] + \
        list(METRICS) + ["ratio_buffers_per_s"]
    with open(os.path.join(out, "summary.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for s in summary:
            shm = lookup(summary, s["case"], s["size"], "shm")
            s = dict(s)
            s["ratio_buffers_per_s"] = ratio(s["buffers_per_s"],
                                             shm and shm["buffers_per_s"])
            w.writerow(s)


def write_chart(out, summary):
    if not shutil.which("gnuplot"):
        print("gnuplot not found: no chart", file=sys.stderr)
        return None
    data = os.path.join(out, "chart.dat")
    lines = []
    for size, _ in SIZES:
        iv = lookup(summary, "throughput", size, "ivshmem")
        sh = lookup(summary, "throughput", size, "shm")
        if not iv or not sh:
            continue
        lines.append('"%s" %s %s' % (size_label(size),
                                     iv["buffers_per_s"] or "NaN",
                                     sh["buffers_per_s"] or "NaN"))
    for size, _, label, _ in VIDEOS:
        iv = lookup(summary, "video", size, "ivshmem")
        sh = lookup(summary, "video", size, "shm")
        if iv and sh:
            lines.append('"videotestsrc %s" %s %s' % (
                label, iv["buffers_per_s"] or "NaN",
                sh["buffers_per_s"] or "NaN"))
    if not lines:
        return None
    with open(data, "w") as f:
        f.write("\n".join(lines) + "\n")
    png = os.path.join(out, "bench.png")
    script = """
set terminal pngcairo size 900,500 font 'sans,10'
set output '%s'
set title 'Buffers per second, one process each side (median of the rounds; higher is better)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set yrange [10:*]
set format y '%%.0s%%c'
set ylabel 'buffers/s (log scale)'
set grid ytics
set key top right
plot '%s' using 2:xtic(1) title 'ivshmemsink/ivshmemsrc' lc rgb '#1f77b4', \\
     '' using 3 title 'shmsink/shmsrc' lc rgb '#ff7f0e'
""" % (png, data)
    res = subprocess.run(["gnuplot"], input=script, text=True,
                         capture_output=True)
    if res.returncode != 0:
        print("gnuplot failed: %s" % res.stderr.strip(), file=sys.stderr)
        return None
    return png


def markdown(summary, rounds, machine, failures):
    out = []
    out.append("Medians of %d rounds, %s, %s." % (
        rounds, machine["summary"], machine["date"]))
    head = len(out)
    out.append("")
    # in-process: the same source into fakesink in one process (no
    # transport); memcpy: bench-copy's copy of one buffer of that size into
    # a ring, plain and with streaming stores (one copy, what shm pays)
    out.append("| case | ivshmem buffers/s | shm buffers/s | ratio | "
               "in-process buffers/s | ivshmem / in-process | ivshmem GB/s "
               "| shm GB/s | memcpy GB/s (streaming) | ivshmem CPU s/GB "
               "| shm CPU s/GB | target |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    targets = {4096: ">= 10x, >= 70 %", 1048576: ">= 1.0x",
               8294400: ">= 1.0x"}

    def table_row(label, iv, sh, ip, mc, target):
        mcs = ""
        if mc[0] and mc[0]["gb_per_s"]:
            mcs = "%s (%s)" % (fmt(mc[0]["gb_per_s"], 2),
                               fmt(mc[1] and mc[1]["gb_per_s"], 2))
        ipr = ip and ip["buffers_per_s"]
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s "
                   "| %s |" % (
                       label, fmt(iv["buffers_per_s"]),
                       fmt(sh["buffers_per_s"]),
                       fmt_ratio(ratio(iv["buffers_per_s"],
                                       sh["buffers_per_s"])),
                       fmt(ipr) if ipr else "",
                       fmt_pct(ratio(iv["buffers_per_s"], ipr)) if ipr else "",
                       fmt(iv["gb_per_s"], 2), fmt(sh["gb_per_s"], 2), mcs,
                       fmt(iv["cpu_s_per_gb"], 2), fmt(sh["cpu_s_per_gb"], 2),
                       target))

    def memcpy_of(size):
        return tuple(lookup(summary, "copy", size, m) for m in COPY_MODES)

    for size, _ in SIZES:
        iv = lookup(summary, "throughput", size, "ivshmem")
        sh = lookup(summary, "throughput", size, "shm")
        if not iv or not sh:
            continue
        table_row("fakesrc %s" % (size_label(size) if size != 8294400
                                  else "8,294,400 B"), iv, sh,
                  lookup(summary, "throughput", size, "in-process"),
                  memcpy_of(size), targets.get(size, ""))
    for size, _, label, _ in VIDEOS:
        iv = lookup(summary, "video", size, "ivshmem")
        sh = lookup(summary, "video", size, "shm")
        if iv and sh:
            table_row("videotestsrc black %s BGRx into the pool" % label, iv,
                      sh, lookup(summary, "video", size, "in-process"),
                      memcpy_of(size), ">= 1.1x, >= 85 %")
    if len(out) == head + 3:    # no throughput rows: drop the header
        del out[head:]
    ref = []
    tp = lookup(summary, "throughput", SIZES[0][0], "in-process")
    sh = lookup(summary, "throughput", SIZES[0][0], "shm")
    iv = lookup(summary, "throughput", SIZES[0][0], "ivshmem")
    if tp and tp["buffers_per_s"]:
        ref.append("- fakesrc %s into fakesink in one process, no transport at "
                   "all: %s buffers/s, %s shm's rate; ivshmem reaches %s of it." % (
                       size_label(SIZES[0][0]), fmt(tp["buffers_per_s"]),
                       fmt_ratio(ratio(tp["buffers_per_s"],
                                       sh and sh["buffers_per_s"])),
                       fmt_pct(ratio(iv and iv["buffers_per_s"],
                                     tp["buffers_per_s"]))))
    wo = lookup(summary, "throughput", SIZES[0][0], "writer-only")
    if wo and wo["buffers_per_s"] and tp and tp["buffers_per_s"]:
        ref.append("- fakesrc %s into ivshmemsink with no reader at all "
                   "(policy=leaky): %s buffers/s, %s of in-process. What the "
                   "sink costs by itself; the rest of the gap to ivshmem's "
                   "row is the reader on the other core." % (
                       size_label(SIZES[0][0]), fmt(wo["buffers_per_s"]),
                       fmt_pct(ratio(wo["buffers_per_s"], tp["buffers_per_s"]))))
    ra = lookup(summary, "ring", SIZES[0][0], "alone")
    rr = lookup(summary, "ring", SIZES[0][0], "reader")
    if ra and rr and ra["ns_per_record"] and rr["ns_per_record"]:
        ref.append("- the ring alone, without GStreamer (bench-ring, %s records "
                   "copied in): %s ns per record with nobody reading, %s ns "
                   "with a reader polling on the other core." % (
                       size_label(SIZES[0][0]), fmt(ra["ns_per_record"]),
                       fmt(rr["ns_per_record"])))
        if tp and tp["buffers_per_s"] and sh and sh["buffers_per_s"]:
            budget = 1e9 / (10 * sh["buffers_per_s"]) - 1e9 / tp["buffers_per_s"]
            if budget <= 0:
                ref.append("- so 10x shm at %s would be faster than fakesrc ! "
                           "fakesink with no transport at all, in this run." %
                           size_label(SIZES[0][0]))
            else:
                ref.append("- so 10x shm at %s leaves the writer %s ns per "
                           "buffer on top of fakesrc ! fakesink (1 s / (10 x "
                           "shm's rate) - 1 s / in-process rate) for everything "
                           "the transport does; the ring by itself takes %s ns "
                           "of it." % (size_label(SIZES[0][0]), fmt(budget),
                                       fmt(rr["ns_per_record"])))
    for size, _, label, _ in VIDEOS:
        ip = lookup(summary, "video", size, "in-process")
        if ip:
            ref.append("- videotestsrc %s into fakesink in one process: "
                       "%s frames/s (%s GB/s, %s CPU s/GB)." % (
                           label, fmt(ip["buffers_per_s"]),
                           fmt(ip["gb_per_s"], 2), fmt(ip["cpu_s_per_gb"], 2)))
    if ref:
        out.append("")
        out.append("References, in the same rounds:")
        out.append("")
        out.extend(ref)
    iv = lookup(summary, "latency", LAT_SIZE, "ivshmem")
    ins = lookup(summary, "latency", LAT_SIZE, "ivshmem-noslice")
    ib = lookup(summary, "latency", LAT_SIZE, "ivshmem-busy")
    sh = lookup(summary, "latency", LAT_SIZE, "shm")
    if iv and sh:
        out.append("")
        out.append("One-way latency, %s buffers at %d/s, stamped by the writer "
                   "(CLOCK_MONOTONIC) just before the sink, read by the receiver's "
                   "fakesink (CPU: both processes):" % (size_label(LAT_SIZE),
                                                       LAT_RATE))
        out.append("")
        out.append("| latency | ivshmem | ivshmem, scheduler-slice=0 | "
                   "ivshmem, busy-poll=%d | shm | target (ivshmem, issue 20) |"
                   % LAT_BUSY_POLL)
        out.append("|---|---:|---:|---:|---:|---|")
        for m, label, tgt in (("lat_p50_us", "p50", "<= 12 us"),
                              ("lat_p99_us", "p99", "<= shm's"),
                              ("lat_max_us", "max", "")):
            out.append("| %s | %s us | %s us | %s us | %s us | %s |" % (
                label, fmt(iv[m], 1), fmt(ins and ins[m], 1),
                fmt(ib and ib[m], 1), fmt(sh[m], 1), tgt))
        out.append("| CPU s per s of stream | %s | %s | %s | %s | |" % (
            fmt(cpu_per_s(iv), 3), fmt(cpu_per_s(ins), 3),
            fmt(cpu_per_s(ib), 3), fmt(cpu_per_s(sh), 3)))
    wk = {m: lookup(summary, "wake", LAT_SIZE, m) for m in WAKE_MODES}
    if all(wk.values()):
        out.append("")
        out.append("The floor, without GStreamer (tests/bench/bench-wake: one "
                   "stamp per ms from one process to another):")
        out.append("")
        out.append("| latency | pipe, blocking read | ring + futex wake-up | "
                   "the same, 100 us slice | ring, polling |")
        out.append("|---|---:|---:|---:|---:|")
        for m, label in (("lat_p50_us", "p50"), ("lat_p99_us", "p99"),
                         ("lat_max_us", "max")):
            out.append("| %s | %s us | %s us | %s us | %s us |" % (
                label, fmt(wk["pipe"][m], 1), fmt(wk["ring"][m], 1),
                fmt(wk["ring-slice"][m], 1), fmt(wk["ring-spin"][m], 1)))
    bad = [s for s in summary if s["rounds_failed"]]
    if failures or bad:
        out.append("")
        out.append("Failed rounds (left out of the medians): %d" % len(failures))
        for f in failures:
            out.append("- %s" % f)
    return "\n".join(out) + "\n"


def fmt_ratio(x):
    return "n/a" if x is None else "%.2fx" % x


def fmt_pct(x):
    return "n/a" if x is None else "%.1f%%" % (100 * x)


def cpu_per_s(s):
    """CPU seconds per second of a paced stream, from CPU s/GB."""
    if not s or s["cpu_s_per_gb"] is None:
        return None
    return s["cpu_s_per_gb"] * LAT_SIZE * LAT_RATE / 1e9


def machine_info():
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        gst = subprocess.run(["gst-launch-1.0", "--version"], capture_output=True,
                             text=True).stdout.splitlines()[1].strip()
    except (OSError, IndexError):
        gst = "GStreamer ?"
    try:
        git = subprocess.run(["git", "-C", TOP, "log", "-1", "--format=%h %s"],
                             capture_output=True, text=True).stdout.strip()
    except OSError:
        git = "?"
    summary = "%d cores (%s), Linux %s, %s" % (
        os.cpu_count(), model, platform.release(), gst)
    return {"summary": summary, "git": git,
            "date": datetime.date.today().isoformat()}


if __name__ == "__main__":
    sys.exit(main())
