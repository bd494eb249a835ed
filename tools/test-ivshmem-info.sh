#!/bin/sh
# ivshmem-info against a live stream and against broken regions.
#   test-ivshmem-info.sh IVSHMEM_INFO TEST_INFO_WRITER
# A crash (a signal) fails every check that expects an exit code.
set -u
info=$1
writer=$2
name=ivshmem-info-test-$$
shm=/dev/shm/$name
tmp=$(mktemp -d)
failures=0
wpid=
cleanup() {
  [ -n "$wpid" ] && kill "$wpid" 2>/dev/null
  rm -f "$shm"
  rm -rf "$tmp"
}
trap cleanup EXIT
# dash runs no EXIT trap when a signal ends it (meson's timeout: SIGTERM)
trap 'exit 1' INT TERM HUP

if [ ! -d /dev/shm ] || ! command -v python3 >/dev/null; then
  echo "SKIP: needs /dev/shm and python3"
  exit 77
fi

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }

# With valgrind installed, the runs marked vg also run under it: no invalid
# read on hostile input, no leak.
vg=
if command -v valgrind >/dev/null 2>&1; then
  vg="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite"
fi

# expect_exit CODE DESCRIPTION [--|vg] ARGS...
expect_exit() {
  want=$1; what=$2; wrap=; [ "$3" = vg ] && wrap=$vg; shift 3
  $wrap "$info" "$@" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  if [ "$rc" -eq "$want" ]; then
    ok "$what: exit $rc"
  else
    fail "$what: exit $rc, expected $want"
    cat "$tmp/out" "$tmp/err"
  fi
}

# ---- a live stream ----
# It lives until the test kills it below (600 s at most): one that ended by
# itself on a loaded machine would have closed its session before the kill.
"$writer" "$shm" 600 >"$tmp/writer" 2>&1 &
wpid=$!
i=0
while ! grep -q ready "$tmp/writer" 2>/dev/null; do
  i=$((i + 1))
  if [ $i -gt 100 ] || ! kill -0 "$wpid" 2>/dev/null; then
    echo "FAIL: the test writer did not start"; cat "$tmp/writer"; exit 1
  fi
  sleep 0.1
done

expect_exit 0 "live stream, text" vg "$shm"
cat "$tmp/out"
grep -q 'caps: *video/x-raw, format=(string)I420, width=(int)64' "$tmp/out" \
  && ok "text shows the caps" || fail "text does not show the caps"
grep -q 'producer: *active, alive: yes' "$tmp/out" \
  && ok "text shows an alive producer" || fail "producer not shown alive"
grep -q 'readers: 1 active' "$tmp/out" \
  && ok "text shows one reader" || fail "reader not shown"
grep -q 'lag 9344 bytes, lease alive' "$tmp/out" \
  && ok "text shows the reader's lag and lease" || fail "reader lag/lease"

expect_exit 0 "live stream, json" -- --json "$shm"
cp "$tmp/out" "$tmp/live.json"
python3 - "$tmp/live.json" <<'PY' && ok "json checks" || fail "json checks"
import json, re, sys
d = json.load(open(sys.argv[1], encoding="utf-8"))
r = d["ring"]
checks = [
    ("kind", d["kind"] == "host-file"),
    ("caps", r["stream"]["caps"].startswith("video/x-raw, format=(string)I420")),
    ("stream-start", "test/info" in r["stream"]["stream_start"]),
    ("segment", r["stream"]["segment"].startswith("segment, format=(int)3")),
    ("tags keep UTF-8 and quotes", "caf\u00e9" in r["stream"]["tags"]
        and '"' in r["stream"]["tags"]),
    ("session", re.fullmatch(r"0x[0-9a-f]{16}", r["session"]) is not None
        and r["session"] != "0x0000000000000000"),
    ("state", r["producer"]["state"] == "active"),
    ("alive", r["producer"]["alive"] is True),
    ("reader count", r["reader_count"] == 1 and len(r["readers"]) == 1),
    ("reader", r["readers"][0]["session_match"] is True
        and r["readers"][0]["lag"] == 9344
        and r["readers"][0]["lease_alive"] is True
        and r["readers"][0]["records_read"] >= 7),
    ("flags", isinstance(r["flags"]["had_reader"], bool)
        and r["flags"]["sticky_overflow"] is False),
    ("positions", r["write_pos"] % 64 == 0 and r["tail"] <= r["write_pos"]),
    ("no problems", r["problems"] == []),
    ("no error", "error" not in d),
]
bad = [n for n, good in checks if not good]
if bad:
    print("json checks failed:", bad)
    print(json.dumps(d, indent=1))
    sys.exit(1)
PY

expect_exit 0 "--no-wait" -- --json --no-wait "$shm"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(d["ring"]["producer"]["alive"] is not None)' "$tmp/out" \
  && ok "--no-wait leaves alive unknown" || fail "--no-wait still watched"

live_major=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ring"]["version_major"])' "$tmp/live.json")

# A producer killed without closing its session: active, but dead.
kill -9 "$wpid" 2>/dev/null; wait "$wpid" 2>/dev/null; wpid=
expect_exit 0 "killed producer" -- "$shm"
grep -q 'producer: *active, alive: no (heartbeat did not move' "$tmp/out" \
  && ok "a killed producer is shown dead" || { fail "killed producer"; cat "$tmp/out"; }
grep -q 'lease stalled' "$tmp/out" \
  && ok "its killed reader's lease is stalled" || fail "killed reader lease"

# A stream that ended: the producer keeps EOS in the sticky area and closes
# (issue 10: "sticky record at +832 has type 4 subtype 5, which does not
# belong there").
rm -f "$shm"
"$writer" "$shm" 0 >"$tmp/writer" 2>&1 || { fail "short writer"; cat "$tmp/writer"; }
expect_exit 0 "ended stream" vg --no-wait "$shm"
grep -q 'ended: *yes (EOS)' "$tmp/out" && ok "EOS shown" || { fail "EOS not shown"; cat "$tmp/out"; }
grep -q 'producer: *closed' "$tmp/out" && ok "closed producer" || fail "closed producer"
grep -q 'problems' "$tmp/out" && { fail "EOS reported as a problem"; cat "$tmp/out"; } || ok "EOS is no problem"
expect_exit 0 "ended stream, json" -- --json --no-wait "$shm"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["ring"]; sys.exit(not (r["stream"]["eos"] is True and r["problems"] == [] and r["stream"]["caps"].startswith("video/x-raw")))' "$tmp/out" \
  && ok "ended stream json" || { fail "ended stream json"; cat "$tmp/out"; }

# Read-only: a user who may only read the file (issue 12: "cannot open ...
# for reading and writing").
chmod 0444 "$shm"
if [ "$(id -u)" -ne 0 ]; then
  expect_exit 0 "read-only file" -- --no-wait "$shm"
elif command -v setpriv >/dev/null && setpriv --reuid=65534 --regid=65534 --clear-groups test -r "$shm" 2>/dev/null \
    && setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$info" 2>/dev/null; then
  setpriv --reuid=65534 --regid=65534 --clear-groups "$info" --no-wait "$shm" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  [ "$rc" -eq 0 ] && ok "read-only file as nobody: exit 0" \
    || { fail "read-only file as nobody: exit $rc"; cat "$tmp/err"; }
else
  echo "SKIP (part): root, and cannot run the tool as nobody (setpriv)"
fi
chmod 0644 "$shm"

# ---- broken regions ----
mk() { python3 -c "$1" "$shm"; }

mk 'import sys; open(sys.argv[1], "wb").write(bytes(128 * 1024))'
expect_exit 3 "zero magic" -- "$shm"
grep -q 'no producer' "$tmp/err" && ok "zero magic message" || fail "zero magic message"
expect_exit 3 "zero magic, json" -- --json "$shm"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(not (d["ring"] is None and d["error"]["status"] == "no-producer" and d["error"]["exit_code"] == 3))' "$tmp/out" \
  && ok "zero magic json" || fail "zero magic json"

mk 'import os, sys; open(sys.argv[1], "wb").write(b"garbage!" + os.urandom(128 * 1024 - 8))'
expect_exit 4 "garbage" vg "$shm"
grep -q 'not a gst-ivshmem region' "$tmp/err" && ok "garbage message" || fail "garbage message"

mk 'import struct, sys; open(sys.argv[1], "wb").write((b"IVSHMGST" + struct.pack("<II", 3, 0)).ljust(128 * 1024, b"\0"))'
expect_exit 5 "version 3" -- "$shm"
grep -q 'version 3.0' "$tmp/err" && ok "version message" || fail "version message"

mk 'import os, struct, sys; open(sys.argv[1], "wb").write(b"IVSHMGST" + struct.pack("<II", 2, 0) + os.urandom(128 * 1024 - 16))'
expect_exit 6 "random header" -- --no-wait "$shm"
expect_exit 6 "random header, json" vg --json --no-wait "$shm"
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$tmp/out" \
  && ok "random header json parses" || fail "random header json"

# A valid layout with hostile contents: random slots, a sticky area whose
# records claim more than is there, strings without NUL, escape sequences.
mk '
import os, struct, sys
size = 256 * 1024
b = bytearray(os.urandom(size))
hdr = b"IVSHMGST" + struct.pack("<IIQQQIHHIIII", 2, 7, size, 0x10000,
    size - 0x10000, 0x1000, 32, 128, 0x2000, 0xE000, 64, 0)
b[0:len(hdr)] = hdr
b[0x50:0x54] = struct.pack("<I", 1)
st = 0x2000
recs = bytearray()
def rec(t, sub, payload):
    h = struct.pack("<HHIQQQQQQQ", t, sub, 0, 0, len(payload), 0, 0, 0, 0, 0)
    r = h + payload
    return r + bytes(-len(r) % 64)
recs += rec(3, 0, b"\x1b[2Jcaps/x-evil\xff\xfe" + b"A" * 100)  # no NUL
recs += rec(4, 3, b"tag\0")
huge = bytearray(rec(4, 2, b"x"))
huge[16:24] = struct.pack("<Q", 2**64 - 1)
recs += huge
b[st:st + 24] = struct.pack("<QQII", 42, 0, len(recs), 3)
b[st + 64:st + 64 + len(recs)] = recs
open(sys.argv[1], "wb").write(b)
'
expect_exit 0 "hostile contents" vg --no-wait "$shm"
grep -q 'caps: *\\x1b\[2Jcaps/x-evil\\xff\\xfe' "$tmp/out" \
  && ok "hostile caps escaped" || { fail "hostile caps"; cat "$tmp/out"; }
grep -q 'claims 18446744073709551615 bytes' "$tmp/out" \
  && ok "bogus sticky length reported" || fail "bogus sticky length"
expect_exit 0 "hostile contents, json" vg --json --no-wait "$shm"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1], encoding="utf-8")); sys.exit(not d["ring"]["stream"]["caps"].startswith("\x1b[2Jcaps/x-evil\ufffd\ufffd"))' "$tmp/out" \
  && ok "hostile json parses, bad UTF-8 replaced" || { fail "hostile json"; cat "$tmp/out"; }

# Sticky area length past its end: never read.
mk '
import struct, sys
size = 128 * 1024
b = bytearray(size)
b[0:0x40] = (b"IVSHMGST" + struct.pack("<IIQQQIHHIIII", 2, 0, size, 0x10000,
    size - 0x10000, 0x1000, 32, 128, 0x2000, 0xE000, 64, 0)).ljust(0x40, b"\0")
b[0x2000:0x2018] = struct.pack("<QQII", 2, 0, 0xFFFFFFC0, 1)
open(sys.argv[1], "wb").write(b)
'
expect_exit 0 "sticky length out of bounds" -- --no-wait "$shm"
grep -q 'impossible length' "$tmp/out" && ok "sticky length reported" || fail "sticky length"

# Version 1: refused once this build's producer writes version 2; while
# the build's own layout is still version 1 (the live writer above wrote
# it) it is read.
mk 'import struct, sys; open(sys.argv[1], "wb").write((b"IVSHMGST" + struct.pack("<II", 1, 0)).ljust(128 * 1024, b"\0"))'
if [ "$live_major" = 1 ]; then
  echo "SKIP (part): this build's layout is still version 1, so version 1 regions are read"
else
  expect_exit 5 "version 1" -- "$shm"
  grep -q 'version 1.0, not supported' "$tmp/err" && ok "version 1 message" || fail "version 1 message"
fi

# A version 2 region written by hand (PROTOCOL.md 2.0): the producer's owner
# token at 0x070, a WAITING slot (session 0), an evicted one, the sleeping
# readers as a bitmask of slots, and every kind of sticky record the
# producer keeps, EOS last.
mk '
import struct, sys
size = 256 * 1024
b = bytearray(size)
b[0:0x40] = b"IVSHMGST" + struct.pack("<IIQQQIHHIIII", 2, 0, size, 0x10000,
    size - 0x10000, 0x1000, 32, 128, 0x2000, 0xE000, 64, 0)
b[0x40:0x78] = struct.pack("<QQIIQQQQ", 0x1234, 77, 1, 1, 4242, 100000, 0,
    0xfeedface12345678)
b[0x80:0x90] = struct.pack("<QII", (1 << 40) + 512, 3, (1 << 0) | (1 << 3))
b[0xc0:0xc8] = struct.pack("<Q", 1 << 40)
def slot(i, read_pos, owner, session, state):
    o = 0x1000 + 128 * i
    b[o:o + 0x40] = struct.pack("<QQQQIIQQQ", read_pos, owner, 5, session,
        state, 0, 100 + i, 0, 0)
slot(0, (1 << 40) + 256, 0xaaaa, 0x1234, 2)    # active
slot(3, 0, 0xbbbb, 0, 4)                       # waiting
slot(5, 64, 0xcccc, 0x999, 3)                  # evicted
recs = bytearray()
def rec(t, sub, payload):
    h = struct.pack("<HHIQQQQQQQ", t, sub, 0, (1 << 40) + len(recs),
        len(payload), 0, 0, 0, 0, 0)
    r = h + payload
    return r + bytes(-len(r) % 64)
recs += rec(4, 1, b"stream-start, stream-id=(string)v2;\0")
recs += rec(3, 0, b"video/x-raw, width=(int)320\0")
recs += rec(4, 2, b"segment, format=(int)3;\0")
recs += rec(4, 3, b"tag, scope=(int)0;\0")
recs += rec(4, 7, b"my-sticky, x=(int)1;\0")
recs += rec(4, 5, b"\0")
b[0x2000:0x2018] = struct.pack("<QQII", 8, (1 << 40) + 512, len(recs), 6)
b[0x2040:0x2040 + len(recs)] = recs
open(sys.argv[1], "wb").write(b)
'
expect_exit 0 "version 2 region" vg --no-wait "$shm"
for want in 'protocol: *2\.0' 'owner: *0xfeedface12345678' \
    'readers asleep: slot 0, slot 3' 'readers: 1 active, 1 waiting for a producer, 1 evicted' \
    'slot 3: waiting, pid 103 (unknown), no session' 'slot 5: evicted, pid 105' \
    'slot 0: pid 100 (unknown), this session, lag 256 bytes' \
    'caps: *video/x-raw, width=(int)320' 'ended: *yes (EOS)' 'custom events: *1' \
    'sticky records: 6 '; do
  grep -q "$want" "$tmp/out" && ok "v2: $want" || { fail "v2: $want"; cat "$tmp/out"; }
done
grep -q problems "$tmp/out" && { fail "v2 region has problems"; cat "$tmp/out"; } || ok "v2: no problems"
expect_exit 0 "version 2 region, json" -- --json --no-wait "$shm"
python3 - "$tmp/out" <<'PY' && ok "v2 json" || { fail "v2 json"; cat "$tmp/out"; }
import json, sys
r = json.load(open(sys.argv[1]))["ring"]
states = {x["slot"]: x["state"] for x in r["readers"]}
assert r["version_major"] == 2
assert r["producer"]["owner"] == "0xfeedface12345678"
assert states == {0: "active", 3: "waiting", 5: "evicted"}, states
assert r["readers_waiting"] == 1 and r["readers_evicted"] == 1
assert r["readers_sleeping"] == 9
assert r["stream"]["eos"] is True and r["stream"]["custom_events"] == 1
assert r["problems"] == [], r["problems"]
PY

# EOS that is not the last sticky record: corruption, named.
python3 - "$shm" <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
o = 0x2040 + 3 * 128          # the tag record becomes an EOS
b[o:o + 4] = struct.pack("<HH", 4, 5)
open(sys.argv[1], "wb").write(b)
PY
expect_exit 0 "EOS not last" -- --no-wait "$shm"
grep -q 'follows EOS' "$tmp/out" && ok "EOS not last reported" || { fail "EOS not last"; cat "$tmp/out"; }

# ---- guest devices, through a fake sysfs tree ----
sysfs=$tmp/sysfs
python3 - "$sysfs" <<'PY'
import os, sys
root = sys.argv[1]
d = os.path.join(root, "bus/pci/devices/0000:00:05.0")
os.makedirs(d)
def put(name, text):
    open(os.path.join(d, name), "w").write(text)
put("vendor", "0x1af4\n"); put("device", "0x1110\n"); put("class", "0x050000\n")
put("irq", "11\n"); put("subsystem_vendor", "0x1af4\n"); put("subsystem_device", "0x1100\n")
lines = []
for i in range(13):
    s = e = f = 0
    if i == 0: s, e, f = 0xfea00000, 0xfea000ff, 0x40200
    if i == 2: s, e, f = 0x800000000, 0x800000000 + 256 * 1024 - 1, 0x14220c
    lines.append("0x%016x 0x%016x 0x%016x" % (s, e, f))
put("resource", "\n".join(lines) + "\n")
cfg = bytearray(64); cfg[0:4] = bytes([0xf4, 0x1a, 0x10, 0x11]); cfg[9:12] = bytes([0, 0, 5])
open(os.path.join(d, "config"), "wb").write(cfg)
open(os.path.join(d, "resource2"), "wb").write(bytes(256 * 1024))
os.makedirs(os.path.join(root + "-empty", "bus/pci/devices"))
PY
dev=$sysfs/bus/pci/devices/0000:00:05.0

IVSHMEM_SYSFS_ROOT=$sysfs expect_exit 3 "--bar-mapping resource" -- --bar-mapping resource 0000:00:05.0
grep -q "path: *$dev/resource2\$" "$tmp/out" && ok "resource2 mapped" || { fail "resource2 path"; cat "$tmp/out"; }
IVSHMEM_SYSFS_ROOT=$sysfs expect_exit 1 "--bar-mapping=resource-wc without resource2_wc" -- --bar-mapping=resource-wc 0000:00:05.0
IVSHMEM_SYSFS_ROOT=$sysfs expect_exit 3 "--bar-mapping auto" -- --bar-mapping auto 00:05.0
expect_exit 2 "--bar-mapping bogus" -- --bar-mapping bogus 00:05.0
expect_exit 2 "--bar-mapping without value" -- --bar-mapping

# Why a BAR cannot be mapped: no rule (mode 0600, group root), or a user
# outside the rule's group. Needs a user that is not root.
as_nobody=
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null \
    && setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$info" 2>/dev/null; then
  as_nobody="setpriv --reuid=65534 --regid=65534 --clear-groups"
  chmod 0755 "$tmp" "$sysfs"
fi
if [ -n "$as_nobody" ]; then
  chmod 0600 "$dev/resource2"
  IVSHMEM_SYSFS_ROOT=$sysfs $as_nobody "$info" --bar-mapping resource 0000:00:05.0 >"$tmp/out" 2>"$tmp/err"
  rc=$?
  [ "$rc" -eq 1 ] && grep -q 'the udev rule is missing' "$tmp/err" \
    && ok "no udev rule: named" || { fail "no udev rule (exit $rc)"; cat "$tmp/err"; }
  chgrp 44 "$dev/resource2"; chmod 0660 "$dev/resource2"
  IVSHMEM_SYSFS_ROOT=$sysfs $as_nobody "$info" --bar-mapping resource 0000:00:05.0 >"$tmp/out" 2>"$tmp/err"
  rc=$?
  [ "$rc" -eq 1 ] && grep -q 'this user is not in the group' "$tmp/err" \
    && ok "not in the group: named" || { fail "not in the group (exit $rc)"; cat "$tmp/err"; }
  IVSHMEM_SYSFS_ROOT=$sysfs setpriv --reuid=65534 --regid=65534 --groups=44 "$info" --no-wait --bar-mapping resource 0000:00:05.0 >"$tmp/out" 2>"$tmp/err"
  rc=$?
  [ "$rc" -eq 3 ] && ok "in the group, read-only: the region opens (exit 3, no producer)" \
    || { fail "in the group (exit $rc)"; cat "$tmp/err"; }
  # a kernel in lockdown: said first, whatever the permissions
  mkdir -p "$sysfs/kernel/security"
  echo "none [integrity] confidentiality" >"$sysfs/kernel/security/lockdown"
  IVSHMEM_SYSFS_ROOT=$sysfs $as_nobody "$info" --bar-mapping resource 0000:00:05.0 >"$tmp/out" 2>"$tmp/err"
  rc=$?
  [ "$rc" -eq 1 ] && grep -q 'the kernel is in lockdown mode "integrity"' "$tmp/err" \
    && ok "lockdown: named" || { fail "lockdown (exit $rc)"; cat "$tmp/err"; }
  rm -r "$sysfs/kernel"
else
  echo "SKIP (part): the access diagnosis needs root to run the tool as nobody (setpriv)"
fi

# No device: a line on standard output says so.
IVSHMEM_SYSFS_ROOT=$sysfs-empty expect_exit 0 "no devices" --
grep -q 'no IVSHMEM devices found' "$tmp/out" && ok "no devices: said on stdout" || { fail "no devices line"; cat "$tmp/out"; }
IVSHMEM_SYSFS_ROOT=$sysfs-empty expect_exit 0 "no devices, json" -- --json
python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["devices"] != [])' "$tmp/out" \
  && ok "no devices json" || fail "no devices json"
IVSHMEM_SYSFS_ROOT=$sysfs expect_exit 0 "device list" --
grep -q '^0000:00:05.0 (PCI bus 0, device 5, function 0)' "$tmp/out" && ok "device listed" || { fail "device list"; cat "$tmp/out"; }

# --help promises only what the tool prints.
expect_exit 0 "help" -- --help
grep -qi 'statistics' "$tmp/out" && fail "--help promises statistics" || ok "--help promises no statistics"
grep -q -- '--bar-mapping' "$tmp/out" && ok "--help names --bar-mapping" || fail "--help lacks --bar-mapping"

mk 'import sys; open(sys.argv[1], "wb").write(bytes(4096))'
expect_exit 1 "too small" -- "$shm"
expect_exit 1 "missing" -- "$shm.missing"
expect_exit 2 "usage" -- --bogus

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
