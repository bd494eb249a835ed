#!/usr/bin/env python3
# gst-ivshmem: the VM test scenarios
# SPDX-License-Identifier: MIT
"""Runs one VM scenario: scenarios.py NAME. Exit 0 pass, 1 fail, 77 skip.

  discovery  two ivshmem devices in one guest: lspci, sysfs and ivshmem-info
             agree on locations and sizes
  raw        host and guest read each other's bytes through the region, at
             boot and live (no plugin needed)
  video      host videotestsrc ! ivshmemsink -> guest ivshmemsrc: frame count,
             checksums and caps from the ring
  audio      guest audiotestsrc ! ivshmemsink -> host ivshmemsrc: checksums
             and timestamp continuity
  vm2vm      two guests on two shared regions stream to each other
  lockdown   no root / kernel lockdown in the guest: the kernel refuses, and
             the elements say why
  provider   gst-device-monitor-1.0 in a guest lists the devices and the
             stream on them
  user       an ordinary user in the udev rule's group streams both ways
             with the default bar-mapping, and falls back to resource2
  timing     live video host -> guest and guest -> host into a synced sink
             at the receiver for 30 s: at least 95 % rendered on time, no
             "buffers are being dropped" warning, and the receiver's
             estimate of the producer's clock in its stats (issue 16)

See README.md.
"""

import hashlib
import json
import mmap
import os
import re
import shlex
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ivshmemvm as vm  # noqa: E402
from ivshmemvm import Failure, Skip, log  # noqa: E402

MiB = 1 << 20

CHECKSUM_RE = re.compile(r"^(\d+:\d\d:\d\d\.\d{9}) ([0-9a-f]{32,64})$")


def parse_checksums(lines, prefix=""):
    """(pts_ns, hash) from checksumsink's lines, optionally prefixed."""
    out = []
    for line in lines:
        if not line.startswith(prefix):
            continue
        m = CHECKSUM_RE.match(line[len(prefix):].strip())
        if m:
            h, mi, s = m.group(1).split(":")
            sec, ns = s.split(".")
            pts = ((int(h) * 60 + int(mi)) * 60 + int(sec)) * 10**9 + int(ns)
            out.append((pts, m.group(2)))
    return out


def host_checksums(run, pipeline):
    """Runs pipeline (ending in checksumsink) on the host: the reference."""
    p = subprocess.run(["gst-launch-1.0", "-q"] + shlex.split(pipeline),
                       capture_output=True, text=True, timeout=60,
                       env=run.host_gst_env())
    if p.returncode != 0:
        raise Failure("reference pipeline failed: %s\n%s"
                      % (pipeline, p.stderr))
    return parse_checksums(p.stdout.splitlines())


def compare_streams(what, got, want):
    """Same number of buffers with the same content, in order."""
    if len(got) != len(want):
        raise Failure("%s: %d buffers received, %d sent"
                      % (what, len(got), len(want)))
    for i, (g, w) in enumerate(zip(got, want)):
        if g[1] != w[1]:
            raise Failure("%s: buffer %d differs (checksum %s, sent %s)"
                          % (what, i, g[1], w[1]))
    log("%s: %d buffers, all checksums match the sender's" % (what, len(got)))


def require_plugin(run):
    """The plugin scenarios skip until the plugin is built; once it is, a
    plugin without the elements is a failure, not a skip."""
    if not run.paths.have_plugin():
        raise Skip("plugin not built yet (%s is missing)" % run.paths.plugin)
    for element in ("ivshmemsink", "ivshmemsrc"):
        p = subprocess.run(["gst-inspect-1.0", element], capture_output=True,
                           text=True, env=run.host_gst_env())
        if p.returncode != 0:
            raise Failure("%s is built but gst-inspect-1.0 finds no %s:\n%s"
                          % (run.paths.plugin, element, p.stderr))


# -- discovery ---------------------------------------------------------------

DISCOVERY_SCRIPT = r"""
echo "LSPCI-BEGIN"
lspci -D -n -d 1af4:1110
echo "LSPCI-END"
for d in $(lspci -D -n -d 1af4:1110 | cut -d' ' -f1); do
  echo "RESOURCE2 $d $(stat -c %s /sys/bus/pci/devices/$d/resource2)"
done
if command -v ivshmem-info >/dev/null; then
  echo "INFO-TEXT-BEGIN"
  ivshmem-info || echo "INFO-TEXT-RC $?"
  echo "INFO-TEXT-END"
  echo "INFO-JSON-BEGIN"
  ivshmem-info --json || echo "INFO-JSON-RC $?"
  echo "INFO-JSON-END"
  # Each device is addressable by its PCI address (this maps its BAR2).
  # No producer runs on these regions: exit code 3 ("no producer yet") is
  # the documented answer; the JSON spans lines, so it is joined into one.
  for d in $(lspci -D -n -d 1af4:1110 | cut -d' ' -f1); do
    out=$(ivshmem-info --json --no-wait $d); rc=$?
    [ $rc -eq 0 ] || [ $rc -eq 3 ] || out="rc=$rc $out"
    echo "INFO-ADDR $d $(echo "$out" | tr -d '\n')"
  done
  out=$(ivshmem-info --json --no-wait ''); rc=$?
  [ $rc -eq 0 ] || [ $rc -eq 3 ] || out="rc=$rc $out"
  echo "INFO-FIRST $(echo "$out" | tr -d '\n')"
  echo "INFO-NONE $(ivshmem-info --json 0000:00:1f.0 2>&1; echo rc=$?)"
else
  echo "NO-INFO-TOOL"
fi
"""


def _between(lines, begin, end):
    try:
        i = lines.index(begin)
        j = lines.index(end, i)
    except ValueError:
        raise Failure("no %s ... %s block in the guest output" % (begin, end))
    return lines[i + 1:j]


def _info_devices(doc):
    """Devices from ivshmem-info --json: a list of objects, or an object
    with such a list. Keys are matched loosely so that the check is about
    the values."""
    if isinstance(doc, dict):
        lists = [v for v in doc.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise Failure("ivshmem-info --json: expected one list of devices "
                          "in %r" % doc)
        doc = lists[0]
    if not isinstance(doc, list):
        raise Failure("ivshmem-info --json: not a list: %r" % doc)
    found = {}
    for d in doc:
        loc = next((v for v in d.values() if isinstance(v, str)
                    and re.fullmatch(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}"
                                     r"\.[0-7]", v)), None)
        size = d.get("size", d.get("size_bytes"))
        res = next((v for v in d.values() if isinstance(v, str)
                    and re.search(r"/resource2(_wc)?$", v)), None)
        if loc is None or not isinstance(size, int):
            raise Failure("ivshmem-info --json: device without a PCI "
                          "location or an integer size: %r" % d)
        found[loc] = (size, res)
    return found


def discovery(run):
    want = {vm.Guest.pci_address(0): 1 * MiB, vm.Guest.pci_address(1): 2 * MiB}
    devices = [(run.shm("a", 1 * MiB), 1 * MiB),
               (run.shm("b", 2 * MiB), 2 * MiB)]
    res = run.guest("g", DISCOVERY_SCRIPT, devices=devices).start().wait()
    res.check()
    lines = res.lines

    lspci = {line.split()[0] for line in
             _between(lines, "LSPCI-BEGIN", "LSPCI-END") if line.strip()}
    if lspci != set(want):
        raise Failure("lspci -d 1af4:1110 in the guest shows %s, expected %s"
                      % (sorted(lspci), sorted(want)))
    sizes = {}
    for line in lines:
        if line.startswith("RESOURCE2 "):
            _, loc, size = line.split()
            sizes[loc] = int(size)
    if sizes != want:
        raise Failure("resource2 sizes in the guest: %s, expected %s"
                      % (sizes, want))
    log("lspci and sysfs in the guest: %s" % ", ".join(
        "%s %s" % (k, vm.human_size(v)) for k, v in sorted(sizes.items())))

    if "NO-INFO-TOOL" in lines:
        raise Skip("lspci and resource2 sizes are right, but %s is not "
                   "built yet: the ivshmem-info comparison did not run"
                   % run.paths.info_tool)
    text = _between(lines, "INFO-TEXT-BEGIN", "INFO-TEXT-END")
    log("ivshmem-info in the guest:\n    " + "\n    ".join(text))
    raw = _between(lines, "INFO-JSON-BEGIN", "INFO-JSON-END")
    try:
        doc = json.loads("\n".join(raw))
    except ValueError as e:
        raise Failure("ivshmem-info --json is not JSON (%s):\n%s"
                      % (e, "\n".join(raw)))
    info = _info_devices(doc)
    if {k: v[0] for k, v in info.items()} != want:
        raise Failure("ivshmem-info --json in the guest: %s; lspci and "
                      "sysfs: %s" % (info, want))
    for loc, (size, res) in info.items():
        if res is not None and not re.search(re.escape(loc) +
                                             r"/resource2(_wc)?$", res):
            raise Failure("ivshmem-info: %s has resource path %s"
                          % (loc, res))
    log("ivshmem-info --json lists the same %d devices with the same sizes"
        % len(info))

    # ivshmem-info ADDR maps that device: the location and size it reports
    # must be that device's; "" must pick the first.
    mapped = {}
    for line in lines:
        tag, _, rest = line.partition(" ")
        if tag == "INFO-ADDR":
            addr, _, js = rest.partition(" ")
            mapped[addr] = js
        elif tag in ("INFO-FIRST", "INFO-NONE"):
            mapped[tag] = rest
    first = min(want)
    for addr, js in [(a, mapped.get(a)) for a in sorted(want)] + \
            [(first, mapped.get("INFO-FIRST"))]:
        try:
            doc = json.loads(js or "")
        except ValueError:
            raise Failure("ivshmem-info --json %s in the guest did not map "
                          "it: %s" % (addr, js))
        if doc.get("location") != addr or doc.get("size") != want[addr] \
                or not re.search(re.escape(addr) + r"/resource2(_wc)?$",
                                 str(doc.get("path", ""))):
            raise Failure("ivshmem-info --json %s maps the wrong device: %s"
                          % (addr, doc))
    none = mapped.get("INFO-NONE", "")
    if none.endswith("rc=0") or "not found" not in none:
        raise Failure("ivshmem-info on a PCI address without a device: %s"
                      % none)
    log("ivshmem-info maps each device by its PCI address (and the first "
        "for \"\"); a wrong address is refused")


# -- raw ---------------------------------------------------------------------

RAW_SIZE = 1 * MiB
RAW_LEN = 64 * 1024
HOST_OFF, GUEST_OFF = 0, 512 * 1024
WAIT_OFF, ACK_OFF = RAW_SIZE - 64, RAW_SIZE - 128
BW_OFF, BW_LEN = 256 * 1024, 128 * 1024


def pattern(seed, n):
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(seed + i.to_bytes(8, "little")).digest()
        i += 1
    return bytes(out[:n])


# Runs in the guest (the host's python3, seen through 9p). Reads the host's
# pattern from BAR2, writes its own, then does a live handshake: it raises a
# flag and waits for the host to answer while both are running.
RAW_GUEST_PY = r"""
import glob, hashlib, mmap, os, sys, time
nonce = bytes.fromhex(sys.argv[1]); want = sys.argv[2]
RAW_LEN, GUEST_OFF, WAIT_OFF, ACK_OFF = %d, %d, %d, %d
BW_OFF, BW_LEN = %d, %d
def pattern(seed, n):
    out = bytearray(); i = 0
    while len(out) < n:
        out += hashlib.sha256(seed + i.to_bytes(8, "little")).digest(); i += 1
    return bytes(out[:n])
devs = []
for d in sorted(glob.glob("/sys/bus/pci/devices/*")):
    ids = [open(d + f).read().strip() for f in ("/vendor", "/device")]
    if ids == ["0x1af4", "0x1110"]:
        devs.append(d)
assert len(devs) == 1, devs
res = devs[0] + "/resource2"
fd = os.open(res, os.O_RDWR | os.O_SYNC)
size = os.fstat(fd).st_size
m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
print("GUEST mapped", res, size)
got = m[0:8]
if got != b"HOSTPING" or m[8:16] != nonce:
    print("GUEST bad header", got, m[8:16].hex()); sys.exit(2)
digest = hashlib.sha256(m[16:16 + RAW_LEN]).hexdigest()
if digest != want:
    print("GUEST pattern mismatch", digest, want); sys.exit(3)
print("GUEST host pattern ok")
m[GUEST_OFF + 16:GUEST_OFF + 16 + RAW_LEN] = pattern(nonce[::-1], RAW_LEN)
m[GUEST_OFF + 8:GUEST_OFF + 16] = nonce
m[GUEST_OFF:GUEST_OFF + 8] = b"GUESTPNG"
t0 = time.monotonic()
m[WAIT_OFF:WAIT_OFF + 8] = b"GUESTWAT"
while m[ACK_OFF:ACK_OFF + 8] != b"HOSTACK!":
    if time.monotonic() - t0 > 30:
        print("GUEST no live answer from the host"); sys.exit(4)
    time.sleep(0.001)
print("GUEST live answer after %%.1f ms" %% ((time.monotonic() - t0) * 1e3))
buf = pattern(b"bw", BW_LEN)
n, t0 = 0, time.monotonic()
while time.monotonic() - t0 < 0.5:
    m[BW_OFF:BW_OFF + BW_LEN] = buf; n += BW_LEN
w = n / (time.monotonic() - t0)
n, t0 = 0, time.monotonic()
while time.monotonic() - t0 < 0.5:
    _ = m[BW_OFF:BW_OFF + BW_LEN]; n += BW_LEN
r = n / (time.monotonic() - t0)
print("GUEST-BW write=%%d read=%%d" %% (w, r))
m.close(); os.close(fd)
""" % (RAW_LEN, GUEST_OFF, WAIT_OFF, ACK_OFF, BW_OFF, BW_LEN)


def raw(run):
    path = run.shm("region", RAW_SIZE)
    nonce = os.urandom(8)
    host_pat = pattern(nonce, RAW_LEN)
    with open(path, "r+b") as f:
        m = mmap.mmap(f.fileno(), RAW_SIZE)
    m[16:16 + RAW_LEN] = host_pat
    m[8:16] = nonce
    m[0:8] = b"HOSTPING"

    pyfile = os.path.join(run.workdir, "raw_guest.py")
    with open(pyfile, "w") as f:
        f.write(RAW_GUEST_PY)
    script = "python3 %s %s %s" % (shlex.quote(pyfile), nonce.hex(),
                                    hashlib.sha256(host_pat).hexdigest())
    g = run.guest("g", script, devices=[(path, RAW_SIZE)]).start()

    # The live half: answer the guest's flag while it runs.
    answered = threading.Event()

    def answer():
        end = time.monotonic() + g.timeout
        while time.monotonic() < end and g.proc.poll() is None:
            if m[WAIT_OFF:WAIT_OFF + 8] == b"GUESTWAT":
                m[ACK_OFF:ACK_OFF + 8] = b"HOSTACK!"
                answered.set()
                return
            time.sleep(0.001)
    t = threading.Thread(target=answer, daemon=True)
    t.start()
    res = g.wait()
    t.join()
    print("\n".join("    " + line for line in res.lines))
    res.check()
    if not answered.is_set():
        raise Failure("the host never saw the guest's live flag")

    if m[GUEST_OFF:GUEST_OFF + 8] != b"GUESTPNG" \
            or m[GUEST_OFF + 8:GUEST_OFF + 16] != nonce:
        raise Failure("the guest's reply header is not in the host file: %r"
                      % m[GUEST_OFF:GUEST_OFF + 16])
    if m[GUEST_OFF + 16:GUEST_OFF + 16 + RAW_LEN] != \
            pattern(nonce[::-1], RAW_LEN):
        raise Failure("the guest's pattern in the host file is wrong")
    m.close()
    log("host -> guest: %d bytes checked in the guest; guest -> host: %d "
        "bytes checked on the host; live handshake answered" %
        (RAW_LEN, RAW_LEN))
    for line in res.lines:
        if line.startswith("GUEST-BW "):
            kv = dict(x.split("=") for x in line.split()[1:])
            log("guest memcpy through BAR2: write %.1f MB/s, read %.1f MB/s "
                "%s" % (int(kv["write"]) / 1e6, int(kv["read"]) / 1e6,
                        vm.TCG_NOTE))


# -- video: host -> guest ----------------------------------------------------

VIDEO_N = 60
VIDEO_SRC = ("videotestsrc num-buffers=%d pattern=ball animation-mode=frames "
             "! video/x-raw,format=I420,width=320,height=240,framerate=30/1"
             % VIDEO_N)
CAPS_RE = re.compile(r"GstIvshmemSrc:ivshmemsrc\d+\.GstPad:src: caps = (.*)")

# A guest consumer: ivshmemsrc with the given device (or none) into
# checksumsink; prints its lines with a prefix so that two streams can share
# one console, and its wall time.
# Guest shell helpers for the plugin scenarios.
#
# A producer that stops before any reader attached loses its stream: a
# reader that comes later waits for the next producer. So the scenarios
# start producers only once their readers poll for one, which ivshmemsrc
# logs at INFO level ("waiting for a producer"). wait_reader falls back
# after 20 s so that a changed message slows the test instead of breaking
# it. consume prints the reader's output with a prefix (two streams share
# one console) and its wall time; it runs the reader through $RUNAS (empty:
# as root).
GUEST_HELPERS = r"""
consume() {  # prefix device
  dev=""; [ -n "$2" ] && dev="device=$2"
  t0=$(date +%%s.%%N)
  GST_DEBUG=ivshmemsrc:4 GST_DEBUG_NO_COLOR=1 timeout %d $RUNAS \
    gst-launch-1.0 -v ivshmemsrc $dev ! checksumsink >/tmp/$1.out 2>&1
  rc=$?
  t1=$(date +%%s.%%N)
  sed "s/^/$1: /" /tmp/$1.out
  echo "$1-TIME $t0 $t1 rc=$rc"
  return $rc
}
wait_reader() {  # prefix
  i=0
  until grep -q "waiting for a producer" /tmp/$1.out 2>/dev/null; do
    i=$((i + 1))
    [ $i -ge 200 ] && { echo "$1: reader not seen waiting after 20 s"; return 0; }
    sleep 0.1
  done
}
wait_host() {  # reads one line that the harness sends to the serial port
  exec 3</dev/ttyS0
  echo "$1"
  read -r _ <&3
  exec 3<&-
}
"""


def _guest_helpers(timeout=60):
    return GUEST_HELPERS % timeout


def _consumer_result(res, prefix, what):
    lines = [line[len(prefix) + 2:] for line in res.lines
             if line.startswith(prefix + ": ")]
    got = parse_checksums(lines)
    tline = next((line for line in res.lines
                  if line.startswith(prefix + "-TIME ")), None)
    elapsed = None
    if tline:
        t0, t1 = tline.split()[1:3]
        elapsed = float(t1) - float(t0)
    caps = next((m.group(1) for m in map(CAPS_RE.search, lines) if m), None)
    if not got:
        raise Failure("%s: the guest received nothing; its output:\n%s"
                      % (what, "\n".join(lines[-30:])))
    return got, caps, elapsed


def video(run):
    require_plugin(run)
    size = 64 * MiB
    path = run.shm("video", size, create=False)
    want = host_checksums(run, VIDEO_SRC + " ! checksumsink")
    script = (_guest_helpers() + "consume rx '' &\nwait_reader rx\n"
              "echo READER-WAITING\nwait\n")
    g = run.guest("g", script, devices=[(path, size)]).start()
    if not g.wait_for_line("^READER-WAITING", g.timeout):
        raise Failure("the guest never started its reader; console log: %s"
                      % g.log_path)
    # Paced at 30 fps like a camera; the guest's reader is waiting.
    prod = run.popen(["gst-launch-1.0", "-q"] + shlex.split(
        VIDEO_SRC.replace("videotestsrc ", "videotestsrc is-live=true ")
        + " ! ivshmemsink device=%s size=%d" % (path, size)), timeout=90)
    res = g.wait()
    # A guest that failed explains more than a producer left waiting.
    prc, pout = run.finish(prod, 30 if res.rc == 0 else 1)
    res.check()
    if prc != 0:
        raise Failure("host producer exited %s:\n%s"
                      % (prc if prc is not None else "(killed, hung)", pout))
    got, caps, elapsed = _consumer_result(res, "rx", "host -> guest video")
    compare_streams("host -> guest video", got, want)
    if not caps or not all(s in caps for s in ("video/x-raw", "I420",
                                                "width=(int)320",
                                                "height=(int)240")):
        raise Failure("ivshmemsrc's caps in the guest are not the "
                      "producer's: %s" % caps)
    log("caps from the ring: %s" % caps)
    # ivshmemsrc is live by default and stamps buffers with their arrival
    # in the guest's running time: the spacing is the delivery rate.
    span = (got[-1][0] - got[0][0]) / 1e9
    if span > 0:
        log("guest received %d frames at %.1f fps (the host sends at 30 fps "
            "live: this shows the guest keeps up) %s"
            % (len(got), (len(got) - 1) / span, vm.TCG_NOTE))


# -- audio: guest -> host ----------------------------------------------------

AUDIO_N = 200
AUDIO_SRC = ("audiotestsrc num-buffers=%d samplesperbuffer=1024 wave=sine "
             "freq=440 ! audio/x-raw,format=S16LE,rate=48000,channels=2"
             % AUDIO_N)
AUDIO_BUF_NS = 1024 * 10**9 / 48000


def audio(run):
    require_plugin(run)
    size = 16 * MiB
    path = run.shm("audio", size)
    want = host_checksums(run, AUDIO_SRC + " ! checksumsink")
    # The host reader waits for the guest's producer to appear.
    cons = run.popen(["gst-launch-1.0", "-v", "ivshmemsrc", "is-live=false",
                      "device=" + path, "!", "checksumsink"], timeout=120)
    script = ("t0=$(date +%%s.%%N)\n"
              "timeout 60 gst-launch-1.0 %s ! ivshmemsink\n"
              "rc=$?\necho \"TX-TIME $t0 $(date +%%s.%%N)\"\nexit $rc\n"
              % AUDIO_SRC)
    g = run.guest("g", script, devices=[(path, size)]).start()
    res = g.wait()
    crc, cout = run.finish(cons, 30 if res.rc == 0 else 1)
    res.check()
    if crc is None:
        raise Failure("the host reader did not end (no EOS from the "
                      "guest?):\n%s\nguest:\n%s" % (cout, res.output))
    if crc != 0:
        raise Failure("host ivshmemsrc pipeline exited %d:\n%s"
                      % (crc, cout))
    got = parse_checksums(cout.splitlines())
    compare_streams("guest -> host audio", got, want)
    for i in range(1, len(got)):
        gap = got[i][0] - got[i - 1][0]
        if abs(gap - AUDIO_BUF_NS) > 1000:
            raise Failure("timestamps jump between buffers %d and %d: "
                          "%d ns apart, expected %.0f" % (i - 1, i, gap,
                                                          AUDIO_BUF_NS))
    log("timestamps continuous over %d buffers (%.1f ms each)"
        % (len(got), AUDIO_BUF_NS / 1e6))
    tline = next((x for x in res.lines if x.startswith("TX-TIME ")), None)
    if tline:
        t0, t1 = map(float, tline.split()[1:3])
        nbytes = AUDIO_N * 1024 * 4
        log("guest producer: %d bytes in %.2f s = %.2f MB/s including "
            "start-up %s" % (nbytes, t1 - t0, nbytes / (t1 - t0) / 1e6,
                             vm.TCG_NOTE))


# -- vm2vm -------------------------------------------------------------------

V2V_VIDEO = ("videotestsrc num-buffers=30 pattern=ball animation-mode=frames "
             "! video/x-raw,format=I420,width=160,height=120,framerate=30/1")
V2V_AUDIO = ("audiotestsrc num-buffers=100 samplesperbuffer=1024 wave=sine "
             "! audio/x-raw,format=S16LE,rate=48000,channels=2")


def vm2vm(run):
    """Guest A sends video to B through region 1 (PCI 00:04.0 in both),
    B sends audio to A through region 2 (00:05.0). Each addresses its
    device by PCI address, and each runs a producer and a consumer."""
    require_plugin(run)
    size = 16 * MiB
    r1, r2 = run.shm("r1", size), run.shm("r2", size)
    devices = [(r1, size), (r2, size)]
    d1, d2 = vm.Guest.pci_address(0), vm.Guest.pci_address(1)
    want_video = host_checksums(run, V2V_VIDEO + " ! checksumsink")
    want_audio = host_checksums(run, V2V_AUDIO + " ! checksumsink")

    # Both readers wait before either producer starts: a barrier through
    # the serial consoles.
    def script(src, tx_dev, rx_dev):
        return (_guest_helpers(90)
                + "consume rx %s &\nrx=$!\nwait_reader rx\n" % rx_dev
                + "wait_host RX-WAITING\n"
                + "timeout 90 gst-launch-1.0 -q %s ! ivshmemsink device=%s "
                  ">/tmp/tx.out 2>&1\ntxrc=$?\n" % (src, tx_dev)
                + "wait $rx\nrc=$?\n"
                  "sed 's/^/tx: /' /tmp/tx.out\necho \"TX-RC $txrc\"\n"
                  "[ $rc = 0 ] && [ $txrc = 0 ]\n")
    a = run.guest("a", script(V2V_VIDEO, d1, d2), devices=devices,
                  timeout=150).start()
    b = run.guest("b", script(V2V_AUDIO, d2, d1), devices=devices,
                  timeout=150).start()
    for g in (a, b):
        if not g.wait_for_line("^RX-WAITING", 120):
            raise Failure("guest %s never got its reader going; console "
                          "log: %s" % (g.name, g.log_path))
    a.send("go")
    b.send("go")
    ra, rb = a.wait(), b.wait()
    for r in (ra, rb):
        if r.rc != 0:
            print("guest %s output:\n%s" % (r.name, r.output))
    ra.check()
    rb.check()
    got_video, _, tb = _consumer_result(rb, "rx", "A -> B video")
    got_audio, _, ta = _consumer_result(ra, "rx", "B -> A audio")
    compare_streams("guest A -> guest B video", got_video, want_video)
    compare_streams("guest B -> guest A audio", got_audio, want_audio)
    log("boot: A %.1f s, B %.1f s (two TCG guests share the host's CPUs)"
        % (ra.boot_s, rb.boot_s))


# -- lockdown / no root ------------------------------------------------------

# Kernel facts first (python3, no plugin): as nobody, resource2 cannot be
# opened; with lockdown=integrity, even root cannot mmap it. Then, if the
# plugin is built, the same two situations through ivshmemsrc.
LOCKDOWN_SCRIPT = r"""
res=$(for d in /sys/bus/pci/devices/*; do
  [ "$(cat $d/vendor):$(cat $d/device)" = 0x1af4:0x1110 ] && echo $d/resource2
done)
cat >/tmp/probe.py <<'EOF'
import errno, mmap, os, sys
try:
    fd = os.open(sys.argv[1], os.O_RDWR)
    m = mmap.mmap(fd, 4096, mmap.MAP_SHARED)
    print("PROBE mapped")
except OSError as e:
    print("PROBE", errno.errorcode[e.errno])
EOF
probe() { "$@" python3 /tmp/probe.py "$res"; }
as_nobody() {
  setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp "$@"
}
echo "ROOT $(probe)"
echo "NOBODY $(probe as_nobody)"
if [ "$WITH_PLUGIN" = 1 ]; then
  as_nobody timeout 30 gst-launch-1.0 ivshmemsrc ! fakesink >/tmp/nobody.out 2>&1
  echo "PLUGIN-NOBODY-RC $?"; sed 's/^/nobody: /' /tmp/nobody.out
fi
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
echo integrity > /sys/kernel/security/lockdown
echo "LOCKDOWN $(cat /sys/kernel/security/lockdown)"
echo "LOCKED $(probe)"
if [ "$WITH_PLUGIN" = 1 ]; then
  timeout 30 gst-launch-1.0 ivshmemsrc ! fakesink >/tmp/locked.out 2>&1
  echo "PLUGIN-LOCKED-RC $?"; sed 's/^/locked: /' /tmp/locked.out
fi
true
"""


def lockdown(run):
    with_plugin = run.paths.have_plugin()
    if with_plugin:
        require_plugin(run)
    size = 1 * MiB
    path = run.shm("region", size)
    res = run.guest("g", LOCKDOWN_SCRIPT, devices=[(path, size)],
                    env={"WITH_PLUGIN": "1" if with_plugin else "0"}) \
        .start().wait()
    res.check()
    found = {}
    for line in res.lines:
        parts = line.split(None, 1)
        if len(parts) == 2:
            found.setdefault(parts[0], parts[1].strip())
    expect = {"ROOT": "PROBE mapped", "NOBODY": "PROBE EACCES",
              "LOCKED": "PROBE EPERM"}
    for k, v in expect.items():
        if found.get(k) != v:
            raise Failure("guest kernel: %s gave %r, expected %r; output:\n%s"
                          % (k, found.get(k), v, res.output))
    if "[integrity]" not in found.get("LOCKDOWN", ""):
        raise Failure("lockdown=integrity did not take: %r"
                      % found.get("LOCKDOWN"))
    log("guest kernel: root maps resource2, nobody gets EACCES, root under "
        "lockdown=integrity gets EPERM")
    if not with_plugin:
        raise Skip("the kernel side is confirmed, but the plugin is not "
                   "built yet (%s missing)" % run.paths.plugin)

    for tag, words in (("nobody", ("permission",)),
                       ("locked", ("lockdown",))):
        rc = found.get("PLUGIN-%s-RC" % tag.upper())
        text = "\n".join(line[len(tag) + 2:] for line in res.lines
                         if line.startswith(tag + ": "))
        if rc in (None, "0", "124"):
            raise Failure("ivshmemsrc as %s: exit %s, expected an error:\n%s"
                          % (tag, rc, text))
        if not all(w in text.lower() for w in words):
            raise Failure("ivshmemsrc as %s failed without saying %s:\n%s"
                          % (tag, " / ".join(words), text))
        err = [x for x in text.splitlines() if "ERROR" in x]
        log("ivshmemsrc %s: %s" % (tag, err[0] if err else text.strip()))


# -- provider: the device provider in a real guest ---------------------------

PROVIDER_SCRIPT = r"""
if ! command -v gst-device-monitor-1.0 >/dev/null; then
  echo "NO-DEVICE-MONITOR"
  exit 0
fi
echo "MONITOR-BEGIN"
gst-device-monitor-1.0 Source/IVSHMEM Sink/IVSHMEM
echo "MONITOR-END rc=$?"
"""


def provider(run):
    """gst-device-monitor-1.0 in a guest lists each IVSHMEM device for both
    roles, with its PCI address, size, and the state of the ring: the
    producer on the first device (a host ivshmemsink) and its caps."""
    require_plugin(run)
    a = run.shm("pa", 1 * MiB)
    b = run.shm("pb", 2 * MiB)
    prod = run.popen(["gst-launch-1.0", "-q", "videotestsrc", "is-live=true",
                      "!", "video/x-raw,format=GRAY8,width=64,height=48",
                      "!", "ivshmemsink", "device=%s" % a], timeout=120)
    time.sleep(1.0)
    res = run.guest("g", PROVIDER_SCRIPT,
                    devices=[(a, 1 * MiB), (b, 2 * MiB)]).start().wait()
    # The producer streams until told to stop: timeout(1) passes SIGTERM on
    # to gst-launch-1.0, which then closes its output.
    prod.terminate()
    run.finish(prod, 15)
    res.check()
    if "NO-DEVICE-MONITOR" in res.lines:
        raise Skip("gst-device-monitor-1.0 is not installed "
                   "(gstreamer1.0-plugins-base-apps)")
    out = _between(res.lines, "MONITOR-BEGIN",
                   next(l for l in res.lines if l.startswith("MONITOR-END")))
    text = "\n".join(out)
    devices = [d for d in text.split("Device found:") if "name" in d]
    first, second = vm.Guest.pci_address(0), vm.Guest.pci_address(1)
    # The first carries the host's live video: a video source and sink
    # (which Source/IVSHMEM also matches); the second has no producer.
    for loc, size, media in ((first, 1 * MiB, "Video/"), (second, 2 * MiB, "")):
        mine = [d for d in devices if "device.bus-path = pci-%s" % loc in d]
        classes = sorted(re.search(r"class\s*:\s*(\S+)", d).group(1)
                         for d in mine)
        want = [media + "Sink/IVSHMEM", media + "Source/IVSHMEM"]
        if classes != want:
            raise Failure("device monitor in the guest: %s offered as %s, "
                          "expected %s:\n%s" % (loc, classes, want, text))
        for d in mine:
            if "size = %d" % size not in d or "device.api = ivshmem" not in d:
                raise Failure("device monitor in the guest: %s lacks its "
                              "size or device.api:\n%s" % (loc, d))
    live = [d for d in devices if "device.bus-path = pci-%s" % first in d]
    if not all("ivshmem.producer = active" in d and "video/x-raw" in d
               and "GRAY8" in d for d in live):
        raise Failure("device monitor in the guest: %s does not show the "
                      "host's producer and its caps:\n%s"
                      % (first, "\n".join(live)))
    log("gst-device-monitor-1.0 in the guest lists %s and %s for both roles; "
        "%s shows the host's producer with its caps" % (first, second, first))


# -- user: a non-root user in the group, with the installed udev rule -----

UDEV_RULE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                         "..", "udev", "70-ivshmem.rules")
USER_GID = 4242    # stands for the group "ivshmem" (see udev_rule_runs)
USER_UID = 65534   # nobody
USER_VIDEO = ("videotestsrc num-buffers=30 pattern=ball animation-mode=frames "
              "! video/x-raw,format=I420,width=160,height=120,framerate=30/1")
USER_AUDIO = ("audiotestsrc num-buffers=50 samplesperbuffer=1024 wave=sine "
              "! audio/x-raw,format=S16LE,rate=48000,channels=2")
MAPPED_RE = re.compile(r"(?:reading from|writing to) (\S+/resource2(?:_wc)?)\b")


def udev_rule_runs(path):
    """The RUN+= programs of the installed rule, with its group replaced by
    USER_GID: the guest's /etc is the host's, which need not have the group
    (the ivshmem-tools package creates it)."""
    runs = []
    with open(path) as f:
        for line in f:
            if line.lstrip().startswith("#"):
                continue
            runs += re.findall(r'RUN\+="([^"]*)"', line)
    if not runs:
        raise Failure("%s has no RUN+= program" % path)
    group = re.search(r"chgrp (\S+)", " ".join(runs))
    if not group:
        raise Failure("the udev rule %s gives no group access" % path)
    return [r.replace("chgrp %s " % group.group(1), "chgrp %d " % USER_GID)
            for r in runs], group.group(1)


# The harness guest has no udevd: the script runs the rule's RUN programs
# itself for each IVSHMEM device, with %S and %p replaced as udev replaces
# them (the sysfs mount point, the device's path under it).
USER_SCRIPT = r"""
apply_rule() {
  for d in $(lspci -D -n -d 1af4:1110 | cut -d' ' -f1); do
    devpath=$(readlink -f /sys/bus/pci/devices/$d); devpath=${devpath#/sys}
    printf '%%s\n' "$RULE_RUNS" | while IFS= read -r run; do
      cmd=$(printf '%%s' "$run" | sed "s|%%S|/sys|g; s|%%p|$devpath|g")
      eval "$cmd" || echo "RULE-FAILED $d: $cmd"
    done
    ls -ln /sys/bus/pci/devices/$d/resource2* | sed "s|^|PERM |"
  done
}
RUNAS="setpriv --reuid=%(uid)d --regid=%(uid)d --groups=%(gid)d env HOME=/tmp"
apply_rule
echo "USER $($RUNAS id)"
# 1. a reader as the user: the host streams video into 00:04.0
consume rx %(d1)s &
wait_reader rx
echo READER-WAITING
wait
# 2. a producer as the user: audio out through 00:05.0 to a host reader
GST_DEBUG=ivshmemsink:4 GST_DEBUG_NO_COLOR=1 timeout 60 $RUNAS \
  gst-launch-1.0 -q %(audio)s ! ivshmemsink device=%(d2)s >/tmp/tx.out 2>&1
echo "TX-RC $?"
sed 's/^/tx: /' /tmp/tx.out
# 3. the README's old rule, resource2 only: resource2_wc of 00:04.0 back to
# root's, and the default bar-mapping falls back to resource2
chgrp 0 /sys/bus/pci/devices/%(d1)s/resource2_wc
chmod 0600 /sys/bus/pci/devices/%(d1)s/resource2_wc
GST_DEBUG=ivshmemsink:4 GST_DEBUG_NO_COLOR=1 timeout 60 $RUNAS \
  gst-launch-1.0 -q audiotestsrc num-buffers=5 ! ivshmemsink policy=leaky \
  device=%(d1)s >/tmp/fb.out 2>&1
echo "FB-RC $?"
sed 's/^/fb: /' /tmp/fb.out
"""


def _mapped(lines, what):
    m = next((m for m in map(MAPPED_RE.search, lines) if m), None)
    if not m:
        raise Failure("%s: the element did not log which file it mapped "
                      "(INFO \"reading from\"/\"writing to\"):\n%s"
                      % (what, "\n".join(lines[-20:])))
    return m.group(1)


def user(run):
    """An ordinary user in the rule's group streams both ways with the
    default bar-mapping: a guest reader (host video in) and a guest
    producer (audio out), then falls back to resource2 when only that file
    is open to it."""
    require_plugin(run)
    runs, group = udev_rule_runs(UDEV_RULE)
    size = 16 * MiB
    r1, r2 = run.shm("in", size), run.shm("out", size)
    d1, d2 = vm.Guest.pci_address(0), vm.Guest.pci_address(1)
    want_video = host_checksums(run, USER_VIDEO + " ! checksumsink")
    want_audio = host_checksums(run, USER_AUDIO + " ! checksumsink")
    cons = run.popen(["gst-launch-1.0", "ivshmemsrc", "is-live=false",
                      "device=" + r2, "!", "checksumsink"], timeout=180)
    script = (_guest_helpers(90) + "RULE_RUNS=%s\n" % shlex.quote(
        "\n".join(runs)) + USER_SCRIPT % {
            "uid": USER_UID, "gid": USER_GID, "d1": d1, "d2": d2,
            "audio": USER_AUDIO})
    g = run.guest("g", script, devices=[(r1, size), (r2, size)],
                  timeout=180).start()
    if not g.wait_for_line("^READER-WAITING", 150):
        raise Failure("the guest never started its reader; console log: %s"
                      % g.log_path)
    prod = run.popen(["gst-launch-1.0", "-q"] + shlex.split(
        USER_VIDEO.replace("videotestsrc ", "videotestsrc is-live=true ")
        + " ! ivshmemsink device=%s" % r1), timeout=120)
    res = g.wait()
    prc, pout = run.finish(prod, 30 if res.rc == 0 else 1)
    crc, cout = run.finish(cons, 30 if res.rc == 0 else 1)
    print("\n".join("    " + line for line in res.lines
                    if line.startswith(("PERM ", "USER ", "RULE-", "TX-RC",
                                        "FB-RC"))))
    res.check()
    if any(line.startswith("RULE-FAILED") for line in res.lines):
        raise Failure("the udev rule's program failed in the guest:\n%s"
                      % res.output)
    perms = [line for line in res.lines if line.startswith("PERM ")]
    if len(perms) < 4 or not all(" %d " % USER_GID in p and
                                 p.split()[1].startswith("-rw-rw----")
                                 for p in perms):
        raise Failure("after the rule, resource2 and resource2_wc of both "
                      "devices should be 0660 with group %s (%d):\n%s"
                      % (group, USER_GID, "\n".join(perms)))
    log("udev rule applied in the guest (no udevd there: its RUN programs "
        "run by the script): resource2 and resource2_wc 0660, group %s "
        "(gid %d)" % (group, USER_GID))

    # 1. guest reader as the user
    if prc != 0:
        raise Failure("host video producer exited %s:\n%s" % (prc, pout))
    got, caps, _ = _consumer_result(res, "rx", "host -> guest video (user)")
    compare_streams("host -> guest video, guest reader as uid %d in group "
                    "%d" % (USER_UID, USER_GID), got, want_video)
    rx = [line[4:] for line in res.lines if line.startswith("rx: ")]
    path = _mapped(rx, "guest reader")
    if not path.endswith("/resource2_wc"):
        raise Failure("the guest reader mapped %s, not resource2_wc (the "
                      "default bar-mapping=auto)" % path)
    log("guest reader mapped %s" % path)

    # 2. guest producer as the user
    tx = [line[4:] for line in res.lines if line.startswith("tx: ")]
    if "TX-RC 0" not in res.lines:
        raise Failure("the guest producer (as the user) failed:\n%s"
                      % "\n".join(tx))
    if crc != 0:
        raise Failure("host reader exited %s:\n%s" % (crc, cout))
    compare_streams("guest -> host audio, guest producer as uid %d in group "
                    "%d" % (USER_UID, USER_GID),
                    parse_checksums(cout.splitlines()), want_audio)
    path = _mapped(tx, "guest producer")
    if not path.endswith("/resource2_wc"):
        raise Failure("the guest producer mapped %s, not resource2_wc"
                      % path)
    log("guest producer mapped %s" % path)

    # 3. fallback
    fb = [line[4:] for line in res.lines if line.startswith("fb: ")]
    if "FB-RC 0" not in res.lines:
        raise Failure("with resource2_wc closed to the user, the producer "
                      "failed instead of falling back to resource2:\n%s"
                      % "\n".join(fb))
    path = _mapped(fb, "fallback producer")
    if not path.endswith("/resource2"):
        raise Failure("with resource2_wc closed, the producer mapped %s"
                      % path)
    log("with resource2_wc closed to the user (the old rule), "
        "bar-mapping=auto fell back to %s" % path)


# -- timing: live streams into synced sinks, across the VM boundary ----------

TIMING_S = 30
TIMING_VIDEO = ("videotestsrc is-live=true pattern=ball ! video/x-raw,"
                "format=I420,width=160,height=120,framerate=30/1")
TIMING_RE = re.compile(r"^TIMING received=(\d+) rendered=(\d+) "
                       r"dropped-warnings=(\d+) mapping=(\S+) "
                       r"offset=(-?\d+) rate-ppm=(\S+) error=(\d+) "
                       r"observations=(\d+)")


def _timing_check(what, lines):
    line = next((m for m in map(TIMING_RE.match, lines) if m), None)
    if not line:
        raise Failure("%s: the reader printed no result:\n%s"
                      % (what, "\n".join(lines[-30:])))
    recv, rend, warns = (int(line.group(i)) for i in (1, 2, 3))
    mapping, offset, ppm, err, obs = (line.group(4), int(line.group(5)),
                                      float(line.group(6)),
                                      int(line.group(7)), int(line.group(8)))
    want = int(TIMING_S * 30 * 0.95)
    log("%s: %d frames received, %d rendered on time in %d s (at least %d "
        "wanted), %d 'dropped' warnings; clock mapping %s, offset %.3f s, "
        "rate %+.1f ppm, error %.3f ms, %d observations %s"
        % (what, recv, rend, TIMING_S, want, warns, mapping, offset / 1e9,
           ppm, err / 1e6, obs, vm.TCG_NOTE))
    if mapping != "estimated" or obs == 0:
        raise Failure("%s: the reader did not estimate the producer's clock "
                      "(clock-mapping=%s, %d observations)"
                      % (what, mapping, obs))
    if rend < want:
        raise Failure("%s: %d frames rendered on time in %d s, fewer than %d"
                      % (what, rend, TIMING_S, want))
    if warns:
        raise Failure("%s: %d 'buffers are being dropped' warnings"
                      % (what, warns))


def timing(run):
    require_plugin(run)
    size = 16 * MiB
    reader = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "timing-reader.py")

    # host -> guest: the guest's reader waits, the host produces
    path = run.shm("timing-h2g", size)
    script = ("/usr/bin/python3 %s '' %d > /tmp/rx.out 2>&1 &\n"
              "sleep 3\necho READER-STARTED\nwait\ncat /tmp/rx.out\n"
              % (reader, TIMING_S))
    g = run.guest("g", script, devices=[(path, size)],
                  timeout=TIMING_S + 120).start()
    if not g.wait_for_line("^READER-STARTED", g.timeout):
        raise Failure("the guest never started its reader; console log: %s"
                      % g.log_path)
    prod = run.popen(["gst-launch-1.0", "-q"] + shlex.split(
        TIMING_VIDEO + " ! ivshmemsink device=%s" % path),
        timeout=TIMING_S + 100)
    res = g.wait()
    prod.terminate()
    run.finish(prod, 5)
    res.check()
    _timing_check("host -> guest", res.lines)

    # guest -> host: the guest produces, the host's reader reads
    path = run.shm("timing-g2h", size)
    script = ("timeout %d gst-launch-1.0 -q %s ! ivshmemsink\nexit 0\n"
              % (TIMING_S + 40, TIMING_VIDEO))
    g = run.guest("g2", script, devices=[(path, size)],
                  timeout=TIMING_S + 120).start()
    cons = run.popen(["/usr/bin/python3", reader, path, str(TIMING_S)],
                     timeout=TIMING_S + 100)
    crc, cout = run.finish(cons, TIMING_S + 100)
    res = g.wait()
    _timing_check("guest -> host", (cout or "").splitlines())


SCENARIOS = {
    "discovery": discovery,
    "raw": raw,
    "video": video,
    "audio": audio,
    "vm2vm": vm2vm,
    "lockdown": lockdown,
    "provider": provider,
    "user": user,
    "timing": timing,
}


def main(argv):
    if len(argv) != 2 or argv[1] not in SCENARIOS:
        print("usage: %s {%s}" % (argv[0], "|".join(SCENARIOS)),
              file=sys.stderr)
        return 2
    return vm.scenario_main(argv[1], SCENARIOS[argv[1]])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
