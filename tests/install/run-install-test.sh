#!/bin/sh
# gst-ivshmem: the documented install lands where GStreamer looks.
#
#   run-install-test.sh SRCDIR WORKDIR
#
# Runs the README's meson install block (<!-- docs-test: covered by
# install-destdir -->) as written in a copy of SRCDIR, with DESTDIR set to a
# staging directory (sudo runs the command itself: a DESTDIR needs no
# root), and gst-inspect-1.0 looking at the staged plugin directory instead
# of the system's (GST_PLUGIN_SYSTEM_PATH_1_0). Checks that the plugin is in
# the directory that `pkg-config --variable=pluginsdir gstreamer-1.0` names
# for that prefix, that GStreamer loads it from there with no
# GST_PLUGIN_PATH, and where the tool and the udev rule go. Then checks the
# plugin directory meson picks for the default prefix /usr/local (configure
# only).
set -eu

src=$1
work=$2
rm -rf "$work"
mkdir -p "$work"
stage=$work/stage

fail() { echo "FAIL: $*"; exit 1; }

pluginsdir=$(pkg-config --variable=pluginsdir gstreamer-1.0)
gstprefix=$(pkg-config --variable=prefix gstreamer-1.0)
echo "GStreamer: prefix $gstprefix, pluginsdir $pluginsdir"

echo "== copying the source to $work/src"
mkdir -p "$work/src"
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
  (cd "$src" && git ls-files -co --exclude-standard -z | xargs -0 tar -cf - --no-recursion) \
    | tar -xf - -C "$work/src"
else
  (cd "$src" && tar -cf - --exclude=./build --exclude='./build-*' .) | tar -xf - -C "$work/src"
fi
python3 "$src/tests/docs/docblocks.py" --covered-by install-destdir "$src/README.md" \
  >"$work/commands" || fail "no README block is covered by install-destdir"
n=0
while IFS= read -r cmd; do
  n=$((n + 1))
  echo "== README: $cmd   (DESTDIR=$stage)"
  case "$cmd" in
    gst-inspect-1.0*) break ;;   # below, with the staged plugin directory
  esac
  (cd "$work/src" && DESTDIR=$stage sh -c 'sudo() { "$@"; }; '"$cmd") </dev/null \
    >"$work/cmd-$n.log" 2>&1 || { tail -40 "$work/cmd-$n.log"; fail "the README's command failed: $cmd"; }
done <"$work/commands"
grep -qx "gst-inspect-1.0 ivshmemsink" "$work/commands" \
  || fail "the README's install block does not end with gst-inspect-1.0 ivshmemsink"
(cd "$stage" && find . -type f -o -type l | sort)

plugin=$stage$pluginsdir/libgstivshmem.so
[ -f "$plugin" ] || fail "the plugin is not in DESTDIR$pluginsdir"
echo "ok: the plugin is in $pluginsdir (pkg-config's pluginsdir for prefix $gstprefix)"
[ -x "$stage$gstprefix/bin/ivshmem-info" ] || fail "no $gstprefix/bin/ivshmem-info"
echo "ok: $gstprefix/bin/ivshmem-info"
if [ "$gstprefix" = /usr ]; then
  [ -f "$stage/lib/udev/rules.d/70-ivshmem.rules" ] || fail "no /lib/udev/rules.d/70-ivshmem.rules"
  echo "ok: /lib/udev/rules.d/70-ivshmem.rules"
fi

# GStreamer's own search path, moved into the staging directory: the plugin
# loads from there without GST_PLUGIN_PATH.
echo "== README: gst-inspect-1.0 ivshmemsink, with GST_PLUGIN_SYSTEM_PATH_1_0=DESTDIR$pluginsdir, no GST_PLUGIN_PATH"
out=$(env -u GST_PLUGIN_PATH -u GST_PLUGIN_PATH_1_0 GST_PLUGIN_SYSTEM_PATH_1_0="$stage$pluginsdir" \
  GST_REGISTRY_1_0="$work/registry.bin" GST_PAGER=cat PAGER=cat \
  gst-inspect-1.0 ivshmemsink 2>&1) || { echo "$out"; fail "gst-inspect-1.0 ivshmemsink"; }
echo "$out" | grep -q "Filename.*$stage$pluginsdir/libgstivshmem.so" \
  || { echo "$out"; fail "gst-inspect-1.0 did not load the staged plugin"; }
if echo "$out" | grep -q "example.invalid"; then
  echo "$out" | grep "Origin"; fail "the origin URL is a placeholder"
fi
echo "$out" | grep -E "Filename|Origin URL|Source module"
echo "ok: GStreamer loads the plugin from its own plugin directory"

# The default prefix: meson says where it goes, and it is where GStreamer
# would look for that prefix.
echo "== meson setup with the default prefix (configure only)"
meson setup "$work/build-default" "$src" -Dtests=disabled >"$work/setup-default.log" 2>&1 \
  || { cat "$work/setup-default.log"; fail "meson setup (default prefix)"; }
prefix=$(meson introspect "$work/build-default" --buildoptions \
  | python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"))')
want=$(pkg-config --define-variable=prefix="$prefix" --variable=pluginsdir gstreamer-1.0)
got=$(meson introspect "$work/build-default" --installed \
  | python3 -c 'import json,sys; print(next(v for v in json.load(sys.stdin).values() if v.endswith("/libgstivshmem.so")))')
[ "$got" = "$want/libgstivshmem.so" ] || fail "prefix $prefix: plugin to $got, pkg-config says $want"
echo "ok: prefix $prefix installs the plugin to $want (pkg-config's pluginsdir for that prefix)"
grep -q "where GStreamer does not look" "$work/setup-default.log" \
  || fail "meson setup with prefix $prefix does not warn that GStreamer will not look there"
echo "ok: meson setup with prefix $prefix says GStreamer will not look there"
rm -rf "$work"
echo "PASS: install"
