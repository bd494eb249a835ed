#!/usr/bin/env bash
# Builds the zip a Windows guest user downloads: libgstivshmem.dll,
# ivshmem-info.exe, README-windows.txt (docs/README-windows.txt with the
# versions filled in), LICENSE.
#
#   bash scripts/windows-zip.sh [OUTDIR]      (default: build-win-zip)
#
# Needs the Windows GStreamer prefix of scripts/build-windows-gstreamer.sh.
# The plugin is built WITHOUT the test-only driver stand-in, and the script
# refuses a DLL that contains it. It also checks what the DLL imports: no
# compiler runtime DLLs (libgcc_s, libwinpthread), one C runtime (msvcrt),
# and no GLib/GStreamer function that passes C runtime objects (FILE*, file
# descriptors, errno) across the DLL boundary.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-$top/build-win-zip}")
host=x86_64-w64-mingw32
prefix=$(bash "$top/scripts/build-windows-gstreamer.sh" --print) || {
  echo "no Windows GStreamer prefix: run scripts/build-windows-gstreamer.sh" >&2
  exit 1
}
build=$out/build
bash "$top/scripts/cross-windows-plugin.sh" "$build" "$prefix"

dll=$build/gst/libgstivshmem.dll
exe=$build/tools/ivshmem-info.exe
die() { echo "windows-zip: $*" >&2; exit 1; }

# 1. the shipped binaries talk to the real driver only
for f in "$dll" "$exe"; do
  if grep -qa 'IVSHMEM_STANDIN_DEVICES' "$f"; then
    die "$f contains the driver stand-in (windows_driver_standin=true)"
  fi
done

# 2. imports: one C runtime, no compiler runtime DLLs
imports() { $host-objdump -p "$1" | awk '/DLL Name:/ {print tolower($3)}'; }
for f in "$dll" "$exe"; do
  bad=$(imports "$f" | grep -E '^(libgcc_s|libwinpthread|libstdc\+\+|ucrtbase|api-ms-win-crt|vcruntime|msvcr[0-9])' || true)
  [ -z "$bad" ] || die "$(basename "$f") imports $bad"
  imports "$f" | grep -x msvcrt.dll >/dev/null || die "$(basename "$f") does not use msvcrt"
done

# 2b. its entry point is its own (a DllMain imported from a libintl built
# relocatable would run in its place, and fail to load elsewhere)
for f in "$dll" "$exe"; do
  ! $host-objdump -p "$f" | grep -E '^\s+[0-9a-f]+\s+[0-9]+\s+DllMain$' >/dev/null \
    || die "$(basename "$f") imports DllMain from another DLL"
done

# 3. nothing of the C runtime crosses into GLib/GStreamer: none of the
# functions that take or return FILE*, file descriptors or errno values
crt_api='^(g_fopen|g_freopen|g_fdopen|g_fprintf|g_vfprintf|g_open|g_creat|g_close|g_fsync|g_stat|g_lstat|g_io_channel_unix_new|g_io_channel_win32_new_fd|g_io_channel_unix_get_fd|g_strerror|g_file_open_tmp|g_mkstemp|g_mkstemp_full|g_unix_.*|gst_fd_.*|gst_dmabuf_.*|g_unix_fd_.*)$'
syms=$($host-objdump -p "$dll" | awk '
  /DLL Name:/ {dll = tolower($3)}
  dll ~ /^lib(glib|gobject|gstreamer|gstbase|gstvideo)/ && NF == 3 && $2 ~ /^[0-9]+$/ {print $3}')
[ -n "$syms" ] || die "cannot read the imports of $dll"
bad=$(printf '%s\n' "$syms" | grep -E "$crt_api" || true)
[ -z "$bad" ] || die "libgstivshmem.dll passes C runtime objects: $bad"

# 4. the zip
stage=$out/gst-ivshmem-windows-x86_64
rm -rf "$stage"
mkdir -p "$stage"
$host-strip -o "$stage/libgstivshmem.dll" "$dll"
$host-strip -o "$stage/ivshmem-info.exe" "$exe"
cp "$top/LICENSE" "$stage/LICENSE.txt"
version=$(awk -F"'" '/^ *version *:/ {print $2; exit}' "$top/meson.build")
commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)
gstv=$(awk '$1 == "gstreamer1.0" {print $2}' "$prefix/VERSIONS")
glibv=$(awk '$1 == "glib2.0" {print $2}' "$prefix/VERSIONS")
sed -e "s|@VERSION@|$version ($commit)|" -e "s|@GST_VERSION@|$gstv|" \
  -e "s|@GLIB_VERSION@|$glibv|" \
  -e "s|@COMPILER@|$($host-gcc --version | head -1)|" \
  "$top/docs/README-windows.txt" | sed 's/$/\r/' >"$stage/README-windows.txt"
{
  echo "Imports of libgstivshmem.dll:"
  imports "$dll" | sed 's/^/  /'
  echo "Windows GStreamer it was built against (Debian source packages):"
  grep -v '^#' "$prefix/VERSIONS" | sed 's/^/  /'
} | sed 's/$/\r/' >"$stage/BUILDINFO.txt"
zip=$out/gst-ivshmem-$version-windows-x86_64.zip
rm -f "$zip"
python3 - "$stage" "$zip" <<'PY'
import os, sys, zipfile
stage, out = sys.argv[1], sys.argv[2]
base = os.path.basename(stage)
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    for name in sorted(os.listdir(stage)):
        z.write(os.path.join(stage, name), f"{base}/{name}")
PY
echo "windows zip: $zip"
python3 -c 'import sys, zipfile; [print("  %8d %s" % (i.file_size, i.filename)) for i in zipfile.ZipFile(sys.argv[1]).infolist()]' "$zip"
