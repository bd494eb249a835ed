#!/usr/bin/env bash
# Cross-compiles the Windows guest side (common/ and ivshmem-info.exe) with
# Debian's mingw-w64 and checks that the result is a 64-bit Windows program.
#
#   bash scripts/cross-windows.sh [BUILDDIR]     (default: build-win)
#
# Installs gcc-mingw-w64-x86-64 if it is missing (needs root or sudo and
# the network). Exits 77 (meson's "skipped") when the compiler is missing
# and cannot be installed, so a CI run without it reports a skip, not a pass.
# If wine is installed, also runs ivshmem-info.exe --help under it.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
builddir=${1:-$top/build-win}
cross=$top/cross/x86_64-w64-mingw32.txt
cc=x86_64-w64-mingw32-gcc
pkg=gcc-mingw-w64-x86-64

if ! command -v "$cc" >/dev/null 2>&1; then
  echo "== $cc is missing: installing $pkg"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo="sudo -n"
    else
      echo "SKIP: $cc is not installed and this user cannot install $pkg" \
        "(not root, no password-less sudo); run: sudo apt-get install $pkg"
      exit 77
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1 \
      || ! { $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
               --no-install-recommends "$pkg" \
             || { $sudo apt-get update -q && \
                  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y \
                    -q --no-install-recommends "$pkg"; }; }; then
    echo "SKIP: $cc is not installed and installing $pkg failed" \
      "(no apt-get, or no network?)"
    exit 77
  fi
fi

echo "== cross build into $builddir"
if [ -f "$builddir/build.ninja" ]; then
  meson setup --reconfigure --cross-file "$cross" "$builddir" "$top"
else
  meson setup --cross-file "$cross" "$builddir" "$top"
fi
ninja -C "$builddir"

exe=$builddir/tools/ivshmem-info.exe
echo "== checking $exe"
python3 - "$exe" <<'PY'
import struct, sys
path = sys.argv[1]
data = open(path, "rb").read()
if data[:2] != b"MZ":
    sys.exit(f"{path}: no MZ header")
(pe,) = struct.unpack_from("<I", data, 0x3C)
if data[pe:pe + 4] != b"PE\0\0":
    sys.exit(f"{path}: no PE signature")
(machine,) = struct.unpack_from("<H", data, pe + 4)
(magic,) = struct.unpack_from("<H", data, pe + 24)
if machine != 0x8664 or magic != 0x20B:
    sys.exit(f"{path}: machine 0x{machine:x}, optional header 0x{magic:x}: "
             "not a PE32+ x86-64 program")
print(f"{path}: PE32+ x86-64 Windows program, {len(data)} bytes")
PY
if command -v file >/dev/null 2>&1; then
  file "$exe"
fi

# Debian's wine64 package alone puts wine64 in /usr/lib/wine, not in PATH
wine=$(command -v wine64 || ls /usr/lib/wine/wine64 2>/dev/null \
  || command -v wine || true)
if [ -n "$wine" ]; then
  echo "== $wine $exe --help"
  WINEPREFIX=$builddir/wineprefix WINEDEBUG=-all \
    WINEDLLOVERRIDES="mscoree,mshtml=;winemenubuilder.exe=d" \
    "$wine" "$exe" --help </dev/null 2>&1 | head -5
else
  echo "== wine is not installed: ivshmem-info.exe was built but not run"
fi
echo "windows cross build: ok"
