#!/bin/sh
# gst-ivshmem: runs examples/ivshmem-receive.py against a gst-launch-1.0
# sender and checks that it printed the sender's caps and every buffer.
#
#   run-python-example-test.sh EXAMPLE.py
set -eu

example=$1
frames=40
region=/dev/shm/gst-ivshmem-python-example-$$
out=$(mktemp)
receiver=
cleanup() {
  [ -n "$receiver" ] && kill "$receiver" 2>/dev/null || true
  rm -f "$region" "$out"
}
trap cleanup EXIT
# dash runs no EXIT trap when a signal ends it (meson's timeout: SIGTERM)
trap 'exit 1' INT TERM HUP

# The first python3 with GStreamer's introspection: Debian's python3-gi is
# for /usr/bin/python3, which another python3 on PATH (pyenv, a venv) hides.
python=
for p in python3 /usr/bin/python3; do
  if "$p" -c 'import gi; gi.require_version("Gst", "1.0"); from gi.repository import Gst' 2>/dev/null; then
    python=$p
    break
  fi
done
if [ -z "$python" ]; then
  echo "SKIP: python-example: no GStreamer introspection for Python (Debian: python3-gi gir1.2-gstreamer-1.0)"
  exit 77
fi
echo "python: $(command -v "$python")"

# The file exists before either side starts, as QEMU's does.
truncate -s 4M "$region"
"$python" "$example" --timeout 60 "$region" >"$out" 2>&1 &
receiver=$!
gst-launch-1.0 -q videotestsrc num-buffers=$frames \
  ! video/x-raw,format=I420,width=320,height=240,framerate=30/1 \
  ! ivshmemsink device="$region"
status=0
wait "$receiver" || status=$?
receiver=
cat "$out"
[ "$status" -eq 0 ] || { echo "FAIL: python-example: exit $status"; exit 1; }
grep -q '^caps: video/x-raw, format=(string)I420, width=(int)320, height=(int)240' "$out" \
  || { echo "FAIL: python-example: the sender's caps were not printed"; exit 1; }
grep -qx "buffers: $frames, then EOS" "$out" \
  || { echo "FAIL: python-example: expected 'buffers: $frames, then EOS'"; exit 1; }
echo "PASS: python-example"
