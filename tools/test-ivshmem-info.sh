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
"$writer" "$shm" 8 >"$tmp/writer" 2>&1 &
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

kill "$wpid" 2>/dev/null; wait "$wpid" 2>/dev/null; wpid=

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

mk 'import sys; open(sys.argv[1], "wb").write(bytes(4096))'
expect_exit 1 "too small" -- "$shm"
expect_exit 1 "missing" -- "$shm.missing"
expect_exit 2 "usage" -- --bogus

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
