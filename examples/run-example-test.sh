#!/bin/sh
# gst-ivshmem: runs the two example programs in two processes over a
# /dev/shm region and fails unless the receiver got every frame intact.
#
#   run-example-test.sh IVSHMEM-SEND IVSHMEM-RECEIVE [FRAMES]
set -eu

send=$1
receive=$2
frames=${3:-120}
region=/dev/shm/gst-ivshmem-example-$$

receiver=
cleanup() {
  [ -n "$receiver" ] && kill "$receiver" 2>/dev/null || true
  rm -f "$region"
}
trap cleanup EXIT
# dash runs no EXIT trap when a signal ends it (meson's timeout: SIGTERM)
trap 'exit 1' INT TERM HUP

# The file exists before either side starts, as QEMU's does: the receiver
# can attach first and wait for the producer, so it reads the stream from
# its start however fast the sender is.
truncate -s 4M "$region"

"$receive" --frames "$frames" --timeout 20 "$region" &
receiver=$!

if ! "$send" --frames "$frames" "$region"; then
  echo "run-example-test: ivshmem-send failed" >&2
  exit 1
fi

status=0
wait "$receiver" || status=$?
receiver=
exit "$status"
