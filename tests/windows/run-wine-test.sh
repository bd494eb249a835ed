#!/usr/bin/env bash
# The wine suite: the Windows plugin under wine against a native Linux peer.
#
#   run-wine-test.sh CASE NATIVE_FRAME_SUMS
#
# CASE: inspect | win-to-linux | linux-to-win | no-driver | already-mapped |
# info | per-handle | foreign-holder | acl | not-started | cache-mode.
# The last five switch the driver stand-in to what other driver builds and
# guests do (see driver-standin.c). Needs IVSHMEM_TEST_SRCDIR and IVSHMEM_TEST_BUILDDIR (the native
# build, whose gst/ holds the Linux plugin). Builds the Windows plugin with
# the driver stand-in (scripts/cross-windows-plugin.sh --standin) into
# BUILDDIR/windows-tests/build, once for all cases.
#
# Exit 77 (skip) only where wine or the Windows GStreamer prefix
# (scripts/build-windows-gstreamer.sh) is missing.
set -uo pipefail

case_=$1
native_sums=$2
src=${IVSHMEM_TEST_SRCDIR:?}
build=${IVSHMEM_TEST_BUILDDIR:?}
work=$build/windows-tests
mkdir -p "$work"
tmp=$(mktemp -d "$work/$case_.XXXXXX")
shm=/dev/shm/gst-ivshmem-wine-$case_-$$
pids=()
failures=0

cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -f "$shm"
  [ "$failures" -eq 0 ] && rm -rf "$tmp"
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }
skip() { echo "SKIP: $*"; exit 77; }

# ---- what this needs --------------------------------------------------------
wine=$(command -v wine64 || ls /usr/lib/wine/wine64 2>/dev/null \
  || command -v wine || true)
wineserver=$(command -v wineserver || ls /usr/lib/wine/wineserver 2>/dev/null \
  || true)
[ -n "$wine" ] && [ -n "$wineserver" ] \
  || skip "wine is not installed (apt-get install wine64)"
prefix=$(bash "$src/scripts/build-windows-gstreamer.sh" --print) \
  || skip "no Windows GStreamer prefix: run scripts/build-windows-gstreamer.sh"
[ -d /dev/shm ] || skip "no /dev/shm"

# The wine prefix lives beside the Windows GStreamer prefix, outside the
# build tree: its dosdevices/z: points at /, and a GStreamer plugin scan of
# the build tree (GST_PLUGIN_PATH=build) would walk the whole file system
# through it. Made once (wineboot, about 25 s) and reused like the Windows
# prefix; one that a failed or killed run left half made is made again.
export WINEPREFIX
WINEPREFIX=$(dirname "$prefix")/wine-prefix-$(id -u)
export WINEDEBUG=-all
export WINEDLLOVERRIDES="mscoree,mshtml=;winemenubuilder.exe=d"
winbuild=$work/build
# the prefix of earlier versions of this script, inside the build tree
rm -rf "$work/wineprefix"
(
  flock 9
  if ! bash "$src/scripts/cross-windows-plugin.sh" "$winbuild" --standin \
      "$prefix" >"$work/cross-build.log" 2>&1; then
    tail -40 "$work/cross-build.log"
    exit 1
  fi
  exec 8>"$WINEPREFIX.lock"
  flock 8
  if [ ! -f "$WINEPREFIX/.gst-ivshmem-ready" ]; then
    rm -rf "$WINEPREFIX"
    "$wine" wineboot -i 8>&- 9>&- </dev/null >"$work/wineboot.log" 2>&1 \
      || { cat "$work/wineboot.log"; rm -rf "$WINEPREFIX"; exit 1; }
    touch "$WINEPREFIX/.gst-ivshmem-ready"
  fi
  # a wineserver that stays 60 s after its last client: ~0.25 s per wine
  # start instead of ~1.4 s. It must not inherit the lock or the test's
  # output (meson waits for that to close).
  "$wineserver" -p60 8>&- 9>&- </dev/null >/dev/null 2>&1 || true
) 9>"$work/lock" || { echo "FAIL: building the Windows plugin"; exit 1; }

# Unix path -> the path a wine process sees (Z: is /)
winpath() { printf 'Z:%s' "$1" | tr / '\\'; }

# wrun PROGRAM.exe ARGS...: a Windows program of the prefix or of the build,
# with the Windows plugin and GStreamer, never the native ones
wrun() {
  local exe=$1; shift
  case $exe in
    */*) ;;
    *) exe=$prefix/bin/$exe ;;
  esac
  # exec in a background subshell, so that its pid is the program's
  [ "$BASHPID" = "$$" ] || exec=exec
  ${exec:-} env -u GST_PLUGIN_PATH_1_0 -u GST_PLUGIN_PATH -u LD_PRELOAD \
    WINEPATH="$(winpath "$prefix/bin")" \
    GST_PLUGIN_SYSTEM_PATH_1_0="$(winpath "$prefix/lib/gstreamer-1.0")" \
    GST_PLUGIN_PATH_1_0="$(winpath "$winbuild/gst")" \
    GST_REGISTRY_1_0="$(winpath "$work/registry-win64.bin")" \
    GST_REGISTRY_FORK=no GST_DEBUG="${WIN_GST_DEBUG:-*:1}" \
    timeout -k 10 "${WRUN_TIMEOUT:-300}" "$wine" "$exe" "$@"
}

# nrun PROGRAM ARGS...: a native program with the native plugin of this build
nrun() {
  [ "$BASHPID" = "$$" ] || exec=exec
  ${exec:-} env GST_PLUGIN_PATH_1_0="$build/gst" \
    GST_REGISTRY_1_0="$work/registry-native.bin" \
    timeout -k 10 300 "$@"
}

win_sums=$winbuild/tests/windows/frame-sums.exe
caps="video/x-raw,format=I420,width=320,height=240,framerate=30/1"
frames=30

new_region() {
  rm -f "$shm"
  truncate -s 16M "$shm"
  export IVSHMEM_STANDIN_DEVICES
  IVSHMEM_STANDIN_DEVICES=$(winpath "$shm")
}

# Windows programs end their lines with CR LF
unix_lines() { tr -d '\r' <"$1" >"$1.txt" && mv "$1.txt" "$1"; }

# compare_sums PRODUCER_OUT CONSUMER_OUT: the same caps, the same frames
# (every checksum, in order), EOS on both sides
compare_sums() {
  local p=$1 c=$2 n
  unix_lines "$p"
  unix_lines "$c"
  grep -q '^eos$' "$p" && ok "producer reached EOS" || fail "producer: no EOS"
  grep -q '^eos$' "$c" && ok "consumer got EOS" || fail "consumer: no EOS"
  n=$(grep -c '^frame ' "$p")
  [ "$n" -eq "$frames" ] && ok "producer sent $n frames" \
    || fail "producer sent $n frames, not $frames"
  if diff <(grep '^frame ' "$p") <(grep '^frame ' "$c") >"$tmp/diff"; then
    ok "all $n frame checksums equal on both sides"
  else
    fail "frame checksums differ:"; head -20 "$tmp/diff"
  fi
  [ "$(grep '^frame ' "$p" | cut -d' ' -f3 | sort -u | wc -l)" -gt 1 ] \
    && ok "the frames differ from each other" \
    || fail "every frame is the same: the test proves little"
  if [ -n "$(grep '^caps ' "$p")" ] \
      && [ "$(grep '^caps ' "$p")" = "$(grep '^caps ' "$c")" ]; then
    ok "caps carried: $(grep '^caps ' "$c" | cut -c6-)"
  else
    fail "caps differ: '$(grep '^caps ' "$p")' vs '$(grep '^caps ' "$c")'"
  fi
}

show() { echo "--- $1"; cat "$1"; }

# wait_region: until a producer has formatted the region (its magic)
wait_region() {
  for _ in $(seq 600); do
    [ "$(head -c 8 "$shm" | od -An -tx1 | tr -d ' \n')" != \
      0000000000000000 ] && return 0
    sleep 0.1
  done
  return 1
}

# frames_in FILE: how many frame lines FILE holds so far
frames_in() { grep -c '^frame ' "$1" 2>/dev/null || true; }

# wait_frames FILE N: until FILE holds more than N frame lines (120 s)
wait_frames() {
  for _ in $(seq 1200); do
    [ "$(frames_in "$1")" -gt "$2" ] && return 0
    sleep 0.1
  done
  return 1
}

# the two lines every "one element per device" refusal carries
is_already_mapped() {
  grep -q 'is already mapped' "$1" \
    && grep -q 'one mapping of a device at a time in the whole guest' "$1"
}

# win_to_linux: a Windows ivshmemsink streams $frames frames to a native
# Linux ivshmemsrc; every frame arrives
win_to_linux() {
  nrun "$native_sums" "ivshmemsrc device=$shm ! identity name=sums \
    ! fakesink" >"$tmp/linux" 2>&1 &
  pids+=($!)
  wrun "$win_sums" "videotestsrc num-buffers=$frames pattern=ball \
    ! $caps ! identity name=sums ! ivshmemsink device=0000:00:03.0" \
    >"$tmp/win" 2>&1
  rc=$?
  [ $rc -eq 0 ] && ok "Windows ivshmemsink: exit 0" \
    || { fail "Windows ivshmemsink: exit $rc"; show "$tmp/win"; }
  wait "${pids[-1]}"
  rc=$?
  [ $rc -eq 0 ] && ok "Linux ivshmemsrc: exit 0" \
    || { fail "Linux ivshmemsrc: exit $rc"; show "$tmp/linux"; }
  compare_sums "$tmp/win" "$tmp/linux"
}

case $case_ in
  inspect)
    wrun gst-inspect-1.0.exe ivshmemsink >"$tmp/out" 2>"$tmp/err"
    rc=$?
    [ $rc -eq 0 ] && ok "gst-inspect-1.0.exe ivshmemsink: exit 0" \
      || { fail "gst-inspect-1.0.exe ivshmemsink: exit $rc"; show "$tmp/err"; }
    for want in 'Factory Details:' 'Long-name *IVSHMEM' \
        'libgstivshmem.dll' 'Host file path (/dev/shm/NAME), guest PCI' \
        'lossless: wait for the slowest reader' 'bar-mapping'; do
      grep -q "$want" "$tmp/out" && ok "shows '$want'" \
        || fail "gst-inspect output lacks '$want'"
    done
    # the DLL's entry point is its own, not an import (see
    # build-windows-gstreamer.sh, build_libintl)
    if x86_64-w64-mingw32-objdump -p "$winbuild/gst/libgstivshmem.dll" \
        | grep -E '^\s+[0-9a-f]+\s+[0-9]+\s+DllMain$' >/dev/null; then
      fail "libgstivshmem.dll imports DllMain from another DLL"
    else
      ok "libgstivshmem.dll has its own entry point"
    fi
    wrun gst-inspect-1.0.exe ivshmem >"$tmp/plugin" 2>&1
    for want in ivshmemsink ivshmemsrc ivshmemdeviceprovider; do
      grep -q "$want" "$tmp/plugin" && ok "the plugin has $want" \
        || { fail "the plugin lacks $want"; show "$tmp/plugin"; }
    done
    ;;

  win-to-linux)
    new_region
    win_to_linux
    ;;

  linux-to-win)
    new_region
    wrun "$win_sums" "ivshmemsrc device=0000:00:03.0 ! identity name=sums \
      ! fakesink" >"$tmp/win" 2>&1 &
    pids+=($!)
    nrun "$native_sums" "videotestsrc num-buffers=$frames pattern=ball \
      ! $caps ! identity name=sums ! ivshmemsink device=$shm" \
      >"$tmp/linux" 2>&1
    rc=$?
    [ $rc -eq 0 ] && ok "Linux ivshmemsink: exit 0" \
      || { fail "Linux ivshmemsink: exit $rc"; show "$tmp/linux"; }
    wait "${pids[0]}"
    rc=$?
    [ $rc -eq 0 ] && ok "Windows ivshmemsrc: exit 0" \
      || { fail "Windows ivshmemsrc: exit $rc"; show "$tmp/win"; }
    compare_sums "$tmp/linux" "$tmp/win"
    ;;

  no-driver)
    unset IVSHMEM_STANDIN_DEVICES
    wrun gst-launch-1.0.exe videotestsrc num-buffers=1 ! ivshmemsink \
      >"$tmp/out" 2>&1
    rc=$?
    [ $rc -ne 0 ] && ok "ivshmemsink without a driver fails (exit $rc)" \
      || fail "ivshmemsink without a driver: exit 0"
    grep -q 'install the Red Hat IVSHMEM driver from virtio-win' "$tmp/out" \
      && ok "the error says to install the virtio-win IVSHMEM driver" \
      || { fail "no hint to install the driver"; show "$tmp/out"; }
    wrun "$winbuild/tools/ivshmem-info.exe" >"$tmp/info" 2>&1
    grep -q 'virtio-win IVSHMEM driver' "$tmp/info" \
      && ok "ivshmem-info names the driver" \
      || { fail "ivshmem-info does not name the driver"; show "$tmp/info"; }
    ;;

  already-mapped)
    new_region
    # one process holds the mapping: a live sink that runs until killed
    wrun gst-launch-1.0.exe videotestsrc is-live=true ! "$caps" \
      ! ivshmemsink device=0000:00:03.0 >"$tmp/holder" 2>&1 &
    pids+=($!)
    wait_region
    wrun gst-launch-1.0.exe ivshmemsrc device=0000:00:03.0 ! fakesink \
      >"$tmp/second" 2>&1
    rc=$?
    [ $rc -ne 0 ] && ok "a second mapping fails (exit $rc)" \
      || fail "a second mapping of the device succeeded"
    is_already_mapped "$tmp/second" \
      && ok "the error says 'already mapped' and names the rule" \
      || { fail "not the already-mapped error"; show "$tmp/second"; \
           show "$tmp/holder"; }
    # the device provider lists the held device and leaves the holder be
    wrun gst-device-monitor-1.0.exe >"$tmp/monitor" 2>&1
    grep -q 'name  : IVSHMEM 0000:00:03.0 (16 MiB)' "$tmp/monitor" \
      && grep -q 'ivshmem.producer = unknown' "$tmp/monitor" \
      && ok "the device provider lists the held device" \
      || { fail "gst-device-monitor-1.0.exe"; show "$tmp/monitor"; }
    kill -0 "${pids[0]}" 2>/dev/null && ok "the holder still runs" \
      || { fail "the holder stopped"; show "$tmp/holder"; }
    # the same rule inside one process: two elements, one device
    wrun gst-launch-1.0.exe videotestsrc num-buffers=5 ! "$caps" \
      ! ivshmemsink device=0000:00:03.0 ivshmemsrc device=0000:00:03.0 \
      ! fakesink >"$tmp/same" 2>&1
    is_already_mapped "$tmp/same" \
      && ok "two elements of one process: already mapped" \
      || { fail "two elements of one process"; show "$tmp/same"; }
    # the mapping goes with the process that held it
    kill "${pids[0]}"
    wait "${pids[0]}" 2>/dev/null
    wrun "$winbuild/tools/ivshmem-info.exe" --no-wait 0000:00:03.0 \
      >"$tmp/after" 2>&1
    if grep -q 'size: *16777216 bytes' "$tmp/after" \
        && ! grep -q 'already mapped' "$tmp/after"; then
      ok "the device maps again once its holder has exited"
    else
      fail "the device does not map after its holder exited"
      show "$tmp/after"
    fi
    ;;

  info)
    new_region
    nrun gst-launch-1.0 videotestsrc is-live=true ! "$caps" \
      ! ivshmemsink device="$shm" >"$tmp/sink" 2>&1 &
    pids+=($!)
    wrun "$winbuild/tools/ivshmem-info.exe" >"$tmp/list" 2>&1
    grep -q '^0000:00:03.0 (PCI bus 0, device 3, function 0)' "$tmp/list" \
      && grep -q '16777216 bytes' "$tmp/list" \
      && grep -q 'system: Windows' "$tmp/list" \
      && ok "ivshmem-info.exe lists the stand-in device" \
      || { fail "ivshmem-info.exe list"; show "$tmp/list"; }
    for _ in $(seq 600); do
      [ "$(head -c 8 "$shm" | od -An -tx1 | tr -d ' \n')" != \
        0000000000000000 ] && break
      sleep 0.1
    done
    wrun "$winbuild/tools/ivshmem-info.exe" 0000:00:03.0 >"$tmp/ring" 2>&1
    rc=$?
    [ $rc -eq 0 ] && ok "ivshmem-info.exe 0000:00:03.0: exit 0" \
      || fail "ivshmem-info.exe 0000:00:03.0: exit $rc"
    grep -q 'producer: *active, alive: yes' "$tmp/ring" \
      && grep -q 'caps: *video/x-raw, format=(string)I420, width=(int)320' \
        "$tmp/ring" \
      && ok "ivshmem-info.exe shows the live ring of the Linux sink" \
      || { fail "ivshmem-info.exe ring view"; show "$tmp/ring"; }
    # the device provider, through gst-device-monitor-1.0.exe
    wrun gst-device-monitor-1.0.exe >"$tmp/monitor" 2>&1
    grep -q 'name  : IVSHMEM 0000:00:03.0 (16 MiB)' "$tmp/monitor" \
      && grep -q 'class : Source/IVSHMEM' "$tmp/monitor" \
      && grep -q 'class : Sink/IVSHMEM' "$tmp/monitor" \
      && grep -q 'ivshmemsrc device=0000:00:03.0' "$tmp/monitor" \
      && ok "the device provider lists the device as a source and a sink" \
      || { fail "gst-device-monitor-1.0.exe"; show "$tmp/monitor"; }
    # ... without looking inside: a probe must not take the driver's one
    # mapping of the device from an element, so the live Linux producer
    # stays unknown to it (ivshmem-info.exe above shows it)
    grep -q 'ivshmem.producer = unknown' "$tmp/monitor" \
      && ! grep -q 'ivshmem.caps' "$tmp/monitor" \
      && ok "the device provider does not map the device (producer unknown)" \
      || { fail "the device provider looked inside"; show "$tmp/monitor"; }
    ;;

  per-handle)
    # The driver builds of March 2024 to October 2025 map a device once per
    # handle: only the element's own guest-wide lock keeps a second element
    # off a device. (Mutation check: with device_lock_take() returning
    # IVSHM_OK without creating the mutex, every refusal below is missing,
    # and the second sink formats the region under the reader.)
    export IVSHMEM_STANDIN_MAPPING=per-handle
    new_region
    # another process: a live Windows sink holds the device, a native Linux
    # reader watches its frames
    nrun "$native_sums" "ivshmemsrc device=$shm ! identity name=sums \
      ! fakesink" >"$tmp/reader" 2>&1 &
    pids+=($!)
    wrun gst-launch-1.0.exe videotestsrc is-live=true pattern=ball \
      ! "$caps" ! ivshmemsink device=0000:00:03.0 >"$tmp/holder" 2>&1 &
    pids+=($!)
    wait_frames "$tmp/reader" 0 && ok "the first sink streams to Linux" \
      || { fail "no frame from the first sink"; show "$tmp/holder"; \
           show "$tmp/reader"; }
    # (60 s: a second element that got in would run until killed)
    WRUN_TIMEOUT=60 wrun gst-launch-1.0.exe ivshmemsrc device=0000:00:03.0 \
      ! fakesink >"$tmp/src2" 2>&1
    rc=$?
    [ $rc -ne 0 ] && is_already_mapped "$tmp/src2" \
      && grep -q 'whatever the build of the Windows IVSHMEM driver' "$tmp/src2" \
      && ok "a second ivshmemsrc in another process: already mapped (exit $rc)" \
      || { fail "a second ivshmemsrc in another process"; show "$tmp/src2"; }
    WRUN_TIMEOUT=60 wrun gst-launch-1.0.exe videotestsrc num-buffers=5 \
      ! "$caps" ! ivshmemsink device=0000:00:03.0 >"$tmp/sink2" 2>&1
    rc=$?
    [ $rc -ne 0 ] && is_already_mapped "$tmp/sink2" \
      && ok "a second ivshmemsink in another process: already mapped (exit $rc)" \
      || { fail "a second ivshmemsink in another process"; show "$tmp/sink2"; }
    n=$(frames_in "$tmp/reader")
    wait_frames "$tmp/reader" $((n + 30)) \
      && kill -0 "${pids[0]}" 2>/dev/null \
      && ok "the first sink streams on (30 more frames reached Linux)" \
      || { fail "the stream stopped after the refusals"; show "$tmp/reader"; \
           show "$tmp/holder"; }
    # the lock goes with the process that held it
    kill "${pids[1]}" "${pids[0]}" 2>/dev/null
    wait "${pids[1]}" "${pids[0]}" 2>/dev/null
    pids=()
    wrun "$winbuild/tools/ivshmem-info.exe" --no-wait 0000:00:03.0 \
      >"$tmp/after" 2>&1
    grep -q 'size: *16777216 bytes' "$tmp/after" \
      && ! grep -q 'already mapped' "$tmp/after" \
      && ok "the device maps again once its holder has exited" \
      || { fail "the device does not map after its holder exited"; \
           show "$tmp/after"; }

    # one process: the first sink streams $frames frames to Linux; after
    # 10, a second ivshmemsrc and a second ivshmemsink of the same process
    # try the device
    new_region
    frames=60
    nrun "$native_sums" "ivshmemsrc device=$shm ! identity name=sums \
      ! fakesink" >"$tmp/linux" 2>&1 &
    pids+=($!)
    wrun "$win_sums" "videotestsrc is-live=true num-buffers=$frames \
      pattern=ball ! $caps ! identity name=sums \
      ! ivshmemsink device=0000:00:03.0" \
      "ivshmemsrc device=0000:00:03.0 ! fakesink" \
      "videotestsrc num-buffers=5 ! $caps ! ivshmemsink device=0000:00:03.0" \
      >"$tmp/win" 2>&1
    rc=$?
    [ $rc -eq 0 ] && ok "the first sink of the process: exit 0" \
      || { fail "the first sink of the process: exit $rc"; show "$tmp/win"; }
    tr -d '\r' <"$tmp/win" | grep '^second ' >"$tmp/seconds"
    [ "$(grep -c '^second error .*is already mapped.*one mapping of a device at a time in the whole guest' \
        "$tmp/seconds")" -eq 2 ] \
      && ok "a second ivshmemsrc and ivshmemsink in the same process: already mapped" \
      || { fail "second elements in the same process"; show "$tmp/win"; }
    wait "${pids[0]}"
    rc=$?
    [ $rc -eq 0 ] && ok "Linux ivshmemsrc: exit 0" \
      || { fail "Linux ivshmemsrc: exit $rc"; show "$tmp/linux"; }
    compare_sums "$tmp/win" "$tmp/linux"
    ;;

  foreign-holder)
    # another program (Looking Glass) holds the driver's one mapping: the
    # driver's own refusal, named as such, with its Win32 code
    export IVSHMEM_STANDIN_FOREIGN=mapped
    new_region
    wrun gst-launch-1.0.exe videotestsrc num-buffers=1 ! ivshmemsink \
      device=0000:00:03.0 >"$tmp/out" 2>&1
    rc=$?
    [ $rc -ne 0 ] && is_already_mapped "$tmp/out" \
      && grep -q 'another program holds it (one that is not gst-ivshmem' \
        "$tmp/out" \
      && ok "the driver's refusal: already mapped, by another program" \
      || { fail "not the driver's already-mapped error"; show "$tmp/out"; }
    # the Win32 code is shown as a Win32 error, not as an errno value
    grep -Eq 'close that one first \((Windows error 548|.*already attached.*)\)' \
      "$tmp/out" && ok "the Win32 error code is named as one" \
      || { fail "the Win32 error code is not named"; show "$tmp/out"; }
    ;;

  acl)
    # an ACL that grants no right: the device opens with access 0 only
    # (mutation check: with GENERIC_READ | GENERIC_WRITE in
    # open_interface(), the size is 0 and the sink cannot open the device)
    export IVSHMEM_STANDIN_ACL=access-0
    new_region
    wrun "$winbuild/tools/ivshmem-info.exe" >"$tmp/list" 2>&1
    grep -q '^0000:00:03.0 (PCI bus 0, device 3, function 0)' "$tmp/list" \
      && grep -q '16777216 bytes' "$tmp/list" \
      && ok "ivshmem-info.exe lists the device and its size" \
      || { fail "ivshmem-info.exe list with access 0 only"; show "$tmp/list"; }
    win_to_linux
    ;;

  not-started)
    # the driver did not start the device (problem code 10: a BAR0 that is
    # not 256 bytes, a BAR2 above 2 GiB); its interface is listed, not
    # enabled. (Mutation check: without the SPINT_ACTIVE skip in
    # ivshm_pci_list(), the elements try to open that interface and say
    # "cannot open ... was it removed?", and the listing shows it.)
    new_region
    export IVSHMEM_STANDIN_PROBLEM=10
    wrun gst-launch-1.0.exe videotestsrc num-buffers=1 ! ivshmemsink \
      >"$tmp/out" 2>&1
    rc=$?
    [ $rc -ne 0 ] && grep -q 'the IVSHMEM device at PCI 0000:00:03.0 is there, but the IVSHMEM driver did not start it (Device Manager problem code 10' "$tmp/out" \
      && grep -q 'must be at most 2 GiB' "$tmp/out" \
      && grep -q 'BAR0 is 256 bytes' "$tmp/out" \
      && ! grep -q 'install the Red Hat' "$tmp/out" \
      && ok "a device the driver did not start: said so, with the 2 GiB limit" \
      || { fail "the error for a device that did not start"; show "$tmp/out"; }
    wrun gst-launch-1.0.exe ivshmemsrc device=0000:00:03.0 ! fakesink \
      >"$tmp/addr" 2>&1
    grep -q 'did not start it (Device Manager problem code 10' "$tmp/addr" \
      && ok "the same by its PCI address" \
      || { fail "by PCI address"; show "$tmp/addr"; }
    wrun "$winbuild/tools/ivshmem-info.exe" >"$tmp/list" 2>&1
    grep -q 'no IVSHMEM devices found' "$tmp/list" \
      && grep -q 'did not start it (Device Manager problem code 10' \
        "$tmp/list" \
      && ok "ivshmem-info.exe lists no device, and says why" \
      || { fail "ivshmem-info.exe lists a device that did not start"; \
           show "$tmp/list"; }
    # no driver: the node has problem code 28, or runs as a "PCI standard
    # RAM Controller" (no problem, no interface)
    export IVSHMEM_STANDIN_PROBLEM=28
    wrun gst-launch-1.0.exe videotestsrc num-buffers=1 ! ivshmemsink \
      >"$tmp/28" 2>&1
    grep -q 'at PCI 0000:00:03.0 has no driver (Device Manager problem code 28)' "$tmp/28" \
      && grep -q 'install the Red Hat IVSHMEM driver from virtio-win' "$tmp/28" \
      && ok "problem code 28: no driver, install it" \
      || { fail "problem code 28"; show "$tmp/28"; }
    export IVSHMEM_STANDIN_PROBLEM=0
    wrun gst-launch-1.0.exe videotestsrc num-buffers=1 ! ivshmemsink \
      >"$tmp/ram" 2>&1
    grep -q 'has no IVSHMEM driver (Windows runs it as a "PCI standard RAM Controller")' "$tmp/ram" \
      && grep -q 'install the Red Hat IVSHMEM driver from virtio-win' "$tmp/ram" \
      && ok "another driver runs the device: install the IVSHMEM driver" \
      || { fail "a device without the IVSHMEM driver"; show "$tmp/ram"; }
    ;;

  cache-mode)
    # bar-mapping picks the driver's cache mode: auto -> cached (1),
    # resource -> uncached (0), resource-wc -> write-combined (2); leaky:
    # a lossless sink would wait at EOS for a first reader. (Mutation
    # check: with the cache mode fixed at cached, the log reads 1 1 1.)
    new_region
    log=$tmp/cache-modes
    : >"$log"
    export IVSHMEM_STANDIN_CACHE_LOG
    IVSHMEM_STANDIN_CACHE_LOG=$(winpath "$log")
    for mapping in auto resource resource-wc; do
      wrun gst-launch-1.0.exe videotestsrc num-buffers=1 ! "$caps" \
        ! ivshmemsink device=0000:00:03.0 policy=leaky bar-mapping=$mapping \
        >"$tmp/$mapping" 2>&1
      rc=$?
      [ $rc -eq 0 ] && ok "ivshmemsink bar-mapping=$mapping: exit 0" \
        || { fail "ivshmemsink bar-mapping=$mapping: exit $rc"; \
             show "$tmp/$mapping"; }
    done
    if [ "$(tr '\n' ' ' <"$log")" = "cache-mode 1 cache-mode 0 cache-mode 2 " ]; then
      ok "auto maps cached, resource uncached, resource-wc write-combined"
    else
      fail "cache modes asked for: '$(tr '\n' ' ' <"$log")'"
    fi
    ;;

  *)
    echo "unknown case $case_"; exit 2 ;;
esac

[ "$failures" -eq 0 ] || { echo "$failures check(s) failed"; exit 1; }
