#!/bin/sh
# gst-device-monitor-1.0 against a region with a live video producer (an
# ivshmemsink in a gst-launch-1.0 process): it is a video source, not an
# audio one, still a Source/IVSHMEM; once the producer is killed it is
# shown dead and is no video source any more. Issue 11.
#   test-device-monitor.sh
# Runs with the check suite's environment (GST_PLUGIN_PATH_1_0 at the build).
set -u
region=/dev/shm/ivshmem-dm-test-$$
tmp=$(mktemp -d)
failures=0
pid=
cleanup() {
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
  rm -f "$region"
  rm -rf "$tmp"
}
trap cleanup EXIT
# dash runs no EXIT trap when a signal ends it (meson's timeout: SIGTERM)
trap 'exit 1' INT TERM HUP

for tool in gst-launch-1.0 gst-device-monitor-1.0; do
  if ! command -v "$tool" >/dev/null; then
    echo "SKIP: $tool is missing (Debian: gstreamer1.0-tools, gstreamer1.0-plugins-base-apps)"
    exit 77
  fi
done
if [ ! -d /dev/shm ]; then
  echo "SKIP: no /dev/shm"
  exit 77
fi
export GST_REGISTRY_1_0="$tmp/registry.bin"

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }

# The block gst-device-monitor-1.0 prints for our region, or nothing.
monitor() {
  gst-device-monitor-1.0 "$@" >"$tmp/all" 2>"$tmp/err"
  # (awk without the ASan runtime that the asan setup preloads for the
  # GStreamer tools: mawk trips its strict string checks)
  env -u LD_PRELOAD awk -v path="$region" '
    /^Device found:/ { if (index(block, path)) print block; block = "" }
    { block = block $0 "\n" }
    END { if (index(block, path)) print block }' "$tmp/all" >"$tmp/out"
}

gst-launch-1.0 -q videotestsrc is-live=true \
  ! video/x-raw,format=I420,width=64,height=48,framerate=30/1 \
  ! ivshmemsink device="$region" size=1048576 >"$tmp/launch" 2>&1 &
pid=$!

# Wait (generously: a loaded machine) for the producer's caps.
i=0
while :; do
  monitor Source/IVSHMEM
  grep -q 'ivshmem.caps = video/x-raw' "$tmp/out" && break
  i=$((i + 1))
  if [ $i -gt 60 ] || ! kill -0 "$pid" 2>/dev/null; then
    echo "FAIL: the producer did not come up"
    cat "$tmp/launch" "$tmp/all" "$tmp/err"
    exit 1
  fi
  sleep 0.5
done

monitor Video/Source
cat "$tmp/out"
grep -q 'class : Video/Source/IVSHMEM' "$tmp/out" \
  && ok "Video/Source lists the region" || { fail "Video/Source"; cat "$tmp/all"; }
grep -q 'ivshmem.producer = active' "$tmp/out" \
  && ok "its producer is active" || fail "producer not active"
grep -q "gst-launch-1.0 ivshmemsrc device=$region" "$tmp/out" \
  && ok "with a launch line" || fail "launch line"

monitor Source/IVSHMEM
grep -q 'class : Video/Source/IVSHMEM' "$tmp/out" \
  && ok "Source/IVSHMEM still lists it" || fail "Source/IVSHMEM"
monitor Video/Sink
grep -q 'class : Video/Sink/IVSHMEM' "$tmp/out" \
  && ok "Video/Sink lists it" || fail "Video/Sink"
monitor Audio/Source
[ -s "$tmp/out" ] && fail "Audio/Source lists a video region" \
  || ok "Audio/Source does not list it"

# The producer dies (SIGKILL: no clean close).
kill -9 "$pid"
wait "$pid" 2>/dev/null
pid=
monitor Source/IVSHMEM
cat "$tmp/out"
grep -q 'ivshmem.producer = dead' "$tmp/out" \
  && ok "a killed producer is shown dead" || fail "dead producer"
grep -q 'class : Source/IVSHMEM' "$tmp/out" \
  && ok "and keeps only the generic class" || fail "dead producer class"
monitor Video/Source
[ -s "$tmp/out" ] && fail "Video/Source lists a dead region" \
  || ok "Video/Source no longer lists it"

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
