#!/bin/sh
# gst-ivshmem: the documented install lands where GStreamer looks.
#
#   run-install-test.sh SRCDIR WORKDIR
#
# Configures a build of SRCDIR as the README says (meson setup
# --prefix=/usr), installs it into a DESTDIR staging directory and checks
# that the plugin is in the directory that
# `pkg-config --variable=pluginsdir gstreamer-1.0` names for that prefix,
# that GStreamer loads it from there with no GST_PLUGIN_PATH, and where the
# tool and the udev rule go. Then checks the plugin directory meson picks for
# the default prefix /usr/local (configure only).
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

echo "== meson setup --prefix=$gstprefix (the README's install command), DESTDIR=$stage"
meson setup "$work/build" "$src" --prefix="$gstprefix" -Dtests=disabled >"$work/setup.log" 2>&1 \
  || { cat "$work/setup.log"; fail "meson setup"; }
ninja -C "$work/build" >"$work/ninja.log" 2>&1 || { cat "$work/ninja.log"; fail "ninja"; }
DESTDIR=$stage meson install -C "$work/build" --no-rebuild >"$work/install.log" 2>&1 \
  || { cat "$work/install.log"; fail "meson install"; }
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
echo "== gst-inspect-1.0 ivshmemsink with GST_PLUGIN_SYSTEM_PATH_1_0=DESTDIR$pluginsdir, no GST_PLUGIN_PATH"
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
