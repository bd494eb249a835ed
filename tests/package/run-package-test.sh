#!/bin/sh
# gst-ivshmem: builds the Debian packages and tries them on this machine.
#
#   run-package-test.sh SRCDIR WORKDIR
#
# 1. copies the source (the files git knows, committed or not) to WORKDIR,
#    so that the tree under test stays clean, and runs there the commands
#    of the README's installation block (<!-- docs-test: covered by
#    debian-package -->), as written: apt-get install of the build
#    dependencies, dpkg-buildpackage -b -us -uc, apt-get install of the
#    two packages (sudo runs the command itself: the test is root);
# 2. right after dpkg-buildpackage, lintian: no errors (warnings are
#    printed);
# 4. with a clean environment (no GST_PLUGIN_PATH, a fresh HOME):
#    gst-inspect-1.0 ivshmemsink finds the installed plugin, and two
#    gst-launch-1.0 processes stream 30 frames through a /dev/shm region,
#    every frame intact; ivshmem-info shows that region; the group and the
#    udev rule are there;
# 5. apt-get purge, also when a step fails: the system plugin is gone again.
#
# Installing needs root (CI runs as root); elsewhere it skips (exit 77).
# Packages already installed are purged first (said in the output).
# meson runs it alone (is_parallel: false): while it runs, GStreamer's
# system directory holds a second copy of the plugin. The other suites load
# the build's copy first and ignore that one (GStreamer keeps the first
# plugin of a name it finds, and GST_PLUGIN_PATH comes first).
set -eu

src=$1
work=$2
pkgs="gstreamer1.0-ivshmem ivshmem-tools"

skip() { echo "SKIP: package: $*"; exit 77; }
fail() { echo "FAIL: package: $*"; exit 1; }

for tool in dpkg-buildpackage dh lintian apt-get git; do
  command -v "$tool" >/dev/null || skip "no $tool (Debian packages dpkg-dev, debhelper, lintian, apt, git)"
done
[ "$(id -u)" -eq 0 ] || skip "installing the packages needs root (CI runs as root)"
# Packages of an earlier install (or of a run that ended before its purge)
# would be what the test finds: they go first, and the test says so.
for p in $pkgs; do
  if dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qvx not-installed; then
    echo "== $p is installed on this machine: purging it first (this test installs" \
      "its own build and purges it again at the end)"
    apt-get purge -y -q -o DPkg::Lock::Timeout=600 "$p" </dev/null \
      || fail "cannot purge the installed $p"
  fi
done

rm -rf "$work"
mkdir -p "$work/src" "$work/home"
installed=
region=/dev/shm/gst-ivshmem-package-test-$$
cleanup() {
  rm -f "$region"
  if [ -n "$installed" ]; then
    echo "== apt-get purge $pkgs"
    apt-get purge -y -q -o DPkg::Lock::Timeout=600 $pkgs >"$work/purge.log" 2>&1 \
      || cat "$work/purge.log"
  fi
}
trap cleanup EXIT
# A timeout (meson's SIGTERM) or ^C still purges the packages.
trap 'exit 1' INT TERM HUP

echo "== copying the source to $work/src"
(cd "$src" && git ls-files -co --exclude-standard -z | xargs -0 tar -cf - --no-recursion) \
  | tar -xf - -C "$work/src"

lint() {
  ls "$work"/*.deb
  for deb in "$work"/gstreamer1.0-ivshmem_*.deb "$work"/ivshmem-tools_*.deb; do
    [ -f "$deb" ] || fail "dpkg-buildpackage made no $deb"
    dpkg-deb -c "$deb"
  done
  echo "== lintian (fails on errors; warnings are listed)"
  lintian --fail-on error "$work"/gst-ivshmem_*_*.changes >"$work/lintian.log" 2>&1 || {
    cat "$work/lintian.log"; fail "lintian reports errors"; }
  cat "$work/lintian.log"
  echo "lintian: $(grep -c '^E:' "$work/lintian.log" || true) errors, $(grep -c '^W:' "$work/lintian.log" || true) warnings"
}

# The README's commands, as written, answered as a person would: yes to
# apt's "Do you want to continue?" (APT::Get::Assume-Yes, as -y does; it
# asks when the build dependencies pull upgrades of installed packages),
# the defaults to any debconf question (DEBIAN_FRONTEND). apt waits for a
# dpkg lock that another apt holds.
python3 "$src/tests/docs/docblocks.py" --covered-by debian-package "$src/README.md" \
  >"$work/commands" || fail "no README block is covered by debian-package"
printf 'DPkg::Lock::Timeout "600";\nAPT::Get::Assume-Yes "true";\n' >"$work/apt.conf"
n=0
while IFS= read -r cmd; do
  n=$((n + 1))
  echo "== README: $cmd"
  case "$cmd" in *.deb*) installed=1 ;; esac
  (cd "$work/src" && APT_CONFIG="$work/apt.conf" DEBIAN_FRONTEND=noninteractive \
    sh -c 'sudo() { "$@"; }; '"$cmd") </dev/null >"$work/cmd-$n.log" 2>&1 \
    || { tail -40 "$work/cmd-$n.log"; fail "the README's command failed: $cmd"; }
  tail -3 "$work/cmd-$n.log"
  case "$cmd" in *dpkg-buildpackage*) lint ;; esac
done <"$work/commands"
[ -n "$installed" ] || fail "the README's commands installed no .deb"

pluginsdir=$(pkg-config --variable=pluginsdir gstreamer-1.0 2>/dev/null \
  || echo /usr/lib/x86_64-linux-gnu/gstreamer-1.0)
[ -f "$pluginsdir/libgstivshmem.so" ] || fail "no $pluginsdir/libgstivshmem.so after install"
getent group ivshmem >/dev/null || fail "the postinst did not create the group ivshmem"
[ -f /lib/udev/rules.d/70-ivshmem.rules ] || fail "no /lib/udev/rules.d/70-ivshmem.rules"
grep -q 'chgrp ivshmem resource2\*' /lib/udev/rules.d/70-ivshmem.rules \
  || fail "the installed udev rule does not give the group ivshmem resource2*"
echo "ok: plugin in $pluginsdir, group ivshmem, udev rule"

# What a user has after installing: no GStreamer variables, a fresh HOME
# (so a fresh registry).
clean() {
  env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME="$work/home" GST_PAGER=cat PAGER=cat "$@"
}

echo "== gst-inspect-1.0 ivshmemsink (no GST_PLUGIN_PATH)"
clean gst-inspect-1.0 ivshmemsink >"$work/inspect.txt" 2>&1 \
  || { cat "$work/inspect.txt"; fail "gst-inspect-1.0 ivshmemsink"; }
grep -E "Filename|Version|Origin URL" "$work/inspect.txt"
# /lib is /usr/lib on a merged-/usr system: compare the real files.
loaded=$(sed -n 's/^ *Filename *//p' "$work/inspect.txt")
[ "$(readlink -f "$loaded")" = "$(readlink -f "$pluginsdir/libgstivshmem.so")" ] \
  || fail "gst-inspect-1.0 loaded $loaded, not the installed $pluginsdir/libgstivshmem.so"

echo "== two processes through $region (no GST_PLUGIN_PATH)"
caps=video/x-raw,format=I420,width=160,height=120,framerate=30/1
clean gst-launch-1.0 -q videotestsrc num-buffers=30 pattern=ball ! "$caps" ! checksumsink \
  >"$work/want.txt" 2>&1 || { cat "$work/want.txt"; fail "reference pipeline"; }
truncate -s 1M "$region"
clean timeout 60 gst-launch-1.0 -q ivshmemsrc device="$region" is-live=false ! checksumsink \
  >"$work/got.txt" 2>&1 &
receiver=$!
clean timeout 60 gst-launch-1.0 -q videotestsrc num-buffers=30 pattern=ball ! "$caps" \
  ! ivshmemsink device="$region" >"$work/sender.txt" 2>&1 \
  || { cat "$work/sender.txt"; fail "sender pipeline"; }
wait "$receiver" || { cat "$work/got.txt"; fail "receiver pipeline"; }
awk 'NF==2 {print $2}' "$work/want.txt" >"$work/want"
awk 'NF==2 {print $2}' "$work/got.txt" >"$work/got"
[ "$(wc -l <"$work/want")" -eq 30 ] || fail "the reference made $(wc -l <"$work/want") frames, not 30"
cmp -s "$work/want" "$work/got" || { cat "$work/got.txt"; fail "the receiver's frames differ from the sender's"; }
echo "ok: 30 frames, every checksum the sender's"

echo "== ivshmem-info $region"
out=$(clean ivshmem-info --no-wait "$region" 2>&1) || true
echo "$out" | head -12
echo "$out" | grep -q "$region" || fail "ivshmem-info did not show $region"

cleanup
installed=
trap - EXIT
[ ! -e "$pluginsdir/libgstivshmem.so" ] || fail "the plugin is still installed after apt-get purge"
echo "ok: purged, $pluginsdir/libgstivshmem.so is gone"
rm -rf "$work"
echo "PASS: package"
