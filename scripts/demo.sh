#!/usr/bin/env bash
# gst-ivshmem demo: two gst-launch-1.0 processes stream a test video through
# a /dev/shm region, and the receiver's frames are compared with the sender's.
#
#   bash scripts/demo.sh [BUILDDIR]
#
# The receiver also saves a frame it got as a PNG, so you can see the
# picture that came through: $DEMO_PNG, by default ./ivshmem-demo-frame.png
# in the current directory.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
builddir=${1:-$top/build}
export GST_PLUGIN_PATH_1_0="$builddir/gst${GST_PLUGIN_PATH_1_0:+:$GST_PLUGIN_PATH_1_0}"

region=/dev/shm/gst-ivshmem-demo-$$
frames=${DEMO_FRAMES:-600}
caps="video/x-raw,format=I420,width=1280,height=720,framerate=30/1"
png=${DEMO_PNG:-$PWD/ivshmem-demo-frame.png}
work=$(mktemp -d)
cleanup() { rm -f "$region"; rm -rf "$work"; }
trap cleanup EXIT

gst-inspect-1.0 ivshmemsink >/dev/null 2>&1 || {
  echo "the ivshmem plugin is not in $builddir/gst; build it first" >&2; exit 1; }

echo "== reference: checksums of $frames frames of $caps, made locally"
gst-launch-1.0 -q videotestsrc num-buffers="$frames" pattern=ball ! "$caps" \
  ! checksumsink > "$work/sent.txt"

echo "== sender:   videotestsrc ! ivshmemsink device=$region size=64MiB"
gst-launch-1.0 -q videotestsrc num-buffers="$frames" pattern=ball ! "$caps" \
  ! ivshmemsink device="$region" size=67108864 > "$work/sender.log" 2>&1 &
sender=$!

echo "== receiver: ivshmemsrc device=$region ! tee (no capsfilter)"
echo "              tee ! queue ! checksumsink"
echo "              tee ! queue ! videorate max-rate=1 ! videoconvert ! pngenc ! multifilesink"
for _ in $(seq 100); do [ -e "$region" ] && break; sleep 0.05; done
rm -f "$png"
start=$(date +%s.%N)
# The PNG branch encodes one frame a second (videorate drops the others)
# and rewrites the same file each time: the last one stays. It must not end
# early: pngenc snapshot=true would return EOS through the tee and stop the
# whole stream after one frame.
gst-launch-1.0 -v ivshmemsrc device="$region" ! tee name=t \
  t. ! queue ! checksumsink \
  t. ! queue ! videorate drop-only=true max-rate=1 ! videoconvert ! pngenc \
  ! multifilesink location="$png" sync=false \
  > "$work/received.txt" 2> "$work/receiver.err"
end=$(date +%s.%N)
wait "$sender"

grep -E '^[0-9]+:[0-9]{2}:[0-9]{2}\.[0-9]+ [0-9a-f]{40}$' "$work/received.txt" \
  | awk '{print $2}' > "$work/got"
awk '{print $2}' "$work/sent.txt" > "$work/want"
got=$(wc -l < "$work/got")
same=$(paste -d' ' "$work/want" "$work/got" | awk '$1==$2' | wc -l)
caps_seen=$(grep -m1 -o 'caps = video/x-raw[^"]*' "$work/received.txt" || true)
eos=$(grep -c 'Got EOS' "$work/received.txt" || true)
bytes=$((got * 1280 * 720 * 3 / 2))
python3 - "$got" "$same" "$frames" "$bytes" "$start" "$end" "$eos" "$caps_seen" \
  "$png" <<'PY'
import struct, sys
got, same, frames, nbytes = map(int, sys.argv[1:5])
secs = float(sys.argv[6]) - float(sys.argv[5])
eos, caps, png = int(sys.argv[7]), sys.argv[8], sys.argv[9]
# a PNG starts with its signature and then the IHDR chunk: width, height
try:
    with open(png, "rb") as f:
        head = f.read(24)
    png_ok = head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    png_size = "%dx%d" % struct.unpack(">II", head[16:24]) if png_ok else ""
except OSError:
    png_ok, png_size = False, ""
print("frames received:   %d of %d" % (got, frames))
print("identical content: %d of %d (SHA-1 of each frame)" % (same, frames))
print("caps from the ring: %s" % (caps or "none seen"))
print("ended with EOS:    %s" % ("yes" if eos else "no"))
print("frame saved:       %s" % ("%s (%s PNG)" % (png, png_size) if png_ok
                                 else "no PNG written to %s" % png))
print("throughput:        %.0f frames/s, %.2f GB/s (%.2f s, checksums included)"
      % (got / secs, nbytes / secs / 1e9, secs))
ok = got == frames and same == frames and eos and png_ok
print("demo: %s" % ("OK, the video made it through intact" if ok else "FAILED"))
sys.exit(0 if ok else 1)
PY
