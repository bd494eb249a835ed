#!/usr/bin/env bash
# gst-ivshmem quick start: installs what the project needs from Debian,
# builds it, then runs the demo or the whole test suite.
#
#   bash scripts/quickstart.sh demo    # install, build, stream a video through /dev/shm
#   bash scripts/quickstart.sh test    # install, build, run every test suite
#   bash scripts/quickstart.sh bench   # install, build, benchmark against shmsink/shmsrc
#
# Meant for a fresh Debian 12 machine; asks for sudo when not run as root.
set -euo pipefail

mode=${1:-}
case "$mode" in
  demo|test|deps|build) ;;
  bench) ;;   # install, build, run tests/bench/run.py (BENCH_ARGS, e.g. --quick)
  *) echo "usage: $0 demo|test|deps|build|bench" >&2; exit 2 ;;
esac

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
builddir=${IVSHMEM_BUILDDIR:-$top/build}

# Build and run: compiler, meson, GStreamer 1.22 with the elements the demo
# and tests use (videotestsrc, audiotestsrc, appsrc: base; checksumsink and
# shmsink for comparison: bad), libpci. Tests: valgrind, QEMU and busybox for
# the VM suite, xz to unpack the guest kernel.
packages=(
  build-essential meson ninja-build pkg-config python3
  libglib2.0-dev libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad libpci-dev pciutils
)
if [ "$mode" = test ]; then
  packages+=(gstreamer1.0-plugins-base-apps valgrind qemu-system-x86 busybox-static xz-utils gcc-mingw-w64-x86-64 file)
  # the Promela model of the protocol (tests/model) is checked with Spin
  packages+=(spin)
  # the libFuzzer targets (tests/fuzz) are built with clang
  packages+=(clang libclang-rt-14-dev)
  # the Debian package test (suite package), the Python example and the
  # timing suite's producer application (tests/timing/tapp.py)
  packages+=(debhelper dpkg-dev lintian git python3-gi gir1.2-gstreamer-1.0)
  # tests/check/decoder.c: x264enc encodes a clip, avdec_h264 decodes it
  # into the sink's zero-copy pool
  packages+=(gstreamer1.0-plugins-ugly gstreamer1.0-libav)
  # the wine suite: GStreamer for Windows cross-built from Debian's source
  # packages (scripts/build-windows-gstreamer.sh), run under wine64
  packages+=(wine64 mingw-w64 g++-mingw-w64-x86-64 flex bison dpkg-dev bzip2 make)
  # the windows-zip test lists the zip it builds
  packages+=(unzip)
  # the gst-indent test (suite docs): GNU indent with GStreamer's flags
  packages+=(indent)
fi

if [ "$mode" = bench ]; then
  packages+=(gnuplot-nox)
fi

install_deps() {
  local missing=() p sudo=""
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${db:Status-Status}\n' "$p" 2>/dev/null | grep -qx installed \
      || missing+=("$p")
  done
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  # The VM suite downloads Debian's kernel package with apt-get download,
  # which needs the package lists even when nothing is missing.
  if [ ${#missing[@]} -gt 0 ] || [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v lock)" ]; then
    echo "== apt-get update"
    $sudo apt-get update -q
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing: ${missing[*]}"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
}

build() {
  if [ -f "$builddir/build.ninja" ]; then
    meson setup --reconfigure "$builddir" >/dev/null
  else
    meson setup "$builddir"
  fi
  ninja -C "$builddir"
}

install_deps
[ "$mode" = deps ] && exit 0
build
[ "$mode" = build ] && exit 0

if [ "$mode" = bench ]; then
  # shellcheck disable=SC2086
  exec python3 "$top/tests/bench/run.py" --builddir "$builddir" ${BENCH_ARGS:-}
fi

if [ "$mode" = demo ]; then
  exec bash "$top/scripts/demo.sh" "$builddir"
fi

# The whole test suite: unit and element tests, the VM suite, stress,
# kill -9, soak and a short fuzz pass; then the unit and element tests
# again under valgrind; the unit, element and stress tests in an
# AddressSanitizer+UBSan build (build/asan); the multi-reader stress test
# in a ThreadSanitizer build (build/tsan). One summary line at the end.
status=0
# The Windows GStreamer for the wine suite (suite windows): built from
# Debian's source packages outside the clone on the first run (10 to 30
# minutes on 2 cores), then reused until a version or the script changes.
echo "== Windows GStreamer (scripts/build-windows-gstreamer.sh)"
nice -n 10 bash "$top/scripts/build-windows-gstreamer.sh" || status=1
# The guest kernel of the VM suite (suite vm): Debian's kernel package,
# fetched once into the same cache, keyed by its version.
echo "== the VM suite's guest kernel (tests/vm/ivshmemvm.py --fetch-kernel)"
python3 "$top/tests/vm/ivshmemvm.py" --fetch-kernel || status=1
# the summary reads only this run's logs
rm -f "$builddir"/meson-logs/testlog*.json
# what the tests' regions look like, to find the ones a test left behind
shm_regions() {
  ls /dev/shm 2>/dev/null | grep -E '^(gst-ivshmem-|ivshmem-|bench-)' | sort || true
}
shm_before=$(shm_regions)
meson test -C "$builddir" --print-errorlogs --num-processes 2 || status=1
cp "$builddir/meson-logs/testlog.json" "$builddir/meson-logs/testlog-main.json"
# valgrind: the check suite but for the codec suite (decoder), whose
# x264enc and avdec_h264 run assembly valgrind cannot (AVX-512)
meson test -C "$builddir" --print-errorlogs --num-processes 2 --suite check \
  --no-suite codec --setup valgrind || status=1
cp "$builddir/meson-logs/testlog-valgrind.json" "$builddir/meson-logs/testlog-vg.json" 2>/dev/null || true

# Sanitizer builds of their own, beside the main one.
sanitizer_build() {   # DIR MESON-OPTIONS...
  local dir=$1; shift
  if [ -f "$dir/build.ninja" ]; then
    meson setup --reconfigure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@" >/dev/null
  fi
  ninja -C "$dir" >/dev/null
}
asandir=$builddir/asan tsandir=$builddir/tsan
rm -f "$asandir/meson-logs/testlog-asan.json" "$tsandir/meson-logs/testlog-tsan.json"
if sanitizer_build "$asandir" -Db_sanitize=address,undefined -Db_lundef=false; then
  # ivshmem-info's test runs the tool under valgrind, which cannot run an
  # ASan binary: every other check test, and the stress suite.
  mapfile -t asan_tests < <(meson test -C "$asandir" --list --suite check --suite stress 2>/dev/null \
    | sed -n 's/^[^ ]* \/ //p' | grep -vx ivshmem-info)
  # The asan setup scans the registry in the test process itself; the first
  # scan of a fresh build's registry loads every system plugin there, and
  # some of them (openni2, fontconfig users) leak at load. Fill the build's
  # registry once, with leak detection off, so that the tests' own leak
  # checks see only what the tests do.
  env GST_REGISTRY_1_0="$asandir/tests/gst-registry.bin" \
    GST_PLUGIN_PATH_1_0="$asandir/gst" GST_REGISTRY_FORK=no \
    GST_PLUGIN_SYSTEM_PATH_1_0="$(pkg-config --variable=pluginsdir gstreamer-1.0)" \
    LD_PRELOAD="$(cc -print-file-name=libasan.so)" \
    ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0 \
    gst-inspect-1.0 ivshmemsink >/dev/null || status=1
  meson test -C "$asandir" --print-errorlogs --num-processes 2 --setup asan \
    "${asan_tests[@]}" || status=1
else
  echo "== the AddressSanitizer build failed"; status=1
fi
if sanitizer_build "$tsandir" -Db_sanitize=thread -Db_lundef=false; then
  meson test -C "$tsandir" --print-errorlogs --num-processes 2 --setup tsan \
    --suite tsan || status=1
else
  echo "== the ThreadSanitizer build failed"; status=1
fi
# The tests remove their /dev/shm regions, also when they fail.
left=$(comm -13 <(printf '%s\n' "$shm_before") <(shm_regions) | grep . || true)
if [ -n "$left" ]; then
  echo "== the tests left these in /dev/shm (removed now):" $left
  (cd /dev/shm && rm -f $left)
  status=1
fi
# Per run and suite, how many tests ran; every failure; every skip, which
# fails CI unless tests/ci/skips-allowed.txt allows it; a suite of
# tests/ci/suites.txt that ran no test fails CI too.
python3 "$top/scripts/test-summary.py" main="$builddir/meson-logs/testlog-main.json" \
  valgrind="$builddir/meson-logs/testlog-vg.json" \
  asan="$asandir/meson-logs/testlog-asan.json" \
  tsan="$tsandir/meson-logs/testlog-tsan.json" || status=1
exit $status
