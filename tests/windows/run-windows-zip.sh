#!/usr/bin/env bash
# The zip a Windows guest user downloads, built as the README says
# (bash scripts/windows-zip.sh OUTDIR), and what it holds.
#
#   run-windows-zip.sh SRCDIR OUTDIR
#
# Exit 77 (skip) only where the wine suite skips for the same reason: no
# Windows GStreamer prefix (scripts/build-windows-gstreamer.sh). Wine is
# not needed: nothing is run. Any other failure of windows-zip.sh fails.
set -uo pipefail

src=$1
out=$2
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }

bash "$src/scripts/build-windows-gstreamer.sh" --print >/dev/null || {
  echo "SKIP: no Windows GStreamer prefix: run scripts/build-windows-gstreamer.sh"
  exit 77
}
command -v unzip >/dev/null || { echo "FAIL: unzip is not installed"; exit 1; }

rm -f "$out"/gst-ivshmem-*-windows-x86_64.zip
bash "$src/scripts/windows-zip.sh" "$out" >"$out.log" 2>&1
rc=$?
if [ $rc -ne 0 ]; then
  tail -40 "$out.log"
  echo "FAIL: scripts/windows-zip.sh $out: exit $rc (log: $out.log)"
  exit 1
fi
ok "scripts/windows-zip.sh: exit 0"

zips=("$out"/gst-ivshmem-*-windows-x86_64.zip)
[ ${#zips[@]} -eq 1 ] && [ -f "${zips[0]}" ] \
  || { echo "FAIL: not one zip in $out: ${zips[*]}"; exit 1; }
zip=${zips[0]}
unzip -l "$zip" >"$out.list" || { echo "FAIL: unzip -l $zip"; exit 1; }
cat "$out.list"
dir=gst-ivshmem-windows-x86_64
for f in libgstivshmem.dll ivshmem-info.exe README-windows.txt LICENSE.txt; do
  grep -Eq " $dir/$f\$" "$out.list" && ok "the zip holds $dir/$f" \
    || fail "the zip lacks $dir/$f"
done

# the README says what it was built from: no placeholder left
readme=$(unzip -p "$zip" "$dir/README-windows.txt")
if grep -q '@[A-Z_]*@' <<<"$readme"; then
  fail "README-windows.txt keeps placeholders: $(grep -o '@[A-Z_]*@' \
    <<<"$readme" | sort -u | tr '\n' ' ')"
else
  ok "README-windows.txt names its versions"
fi
# the binaries are Windows programs (windows-zip.sh checked their imports)
for f in libgstivshmem.dll ivshmem-info.exe; do
  [ "$(unzip -p "$zip" "$dir/$f" | head -c 2)" = MZ ] \
    && ok "$f is a Windows binary" || fail "$f is not a Windows binary"
done

[ "$failures" -eq 0 ] || { echo "$failures check(s) failed"; exit 1; }
