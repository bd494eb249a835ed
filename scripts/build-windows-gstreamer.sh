#!/usr/bin/env bash
# Builds a 64-bit Windows (x86_64-w64-mingw32, msvcrt) GStreamer 1.22 from
# Debian's source packages, for the Windows plugin and its wine tests.
#
#   bash scripts/build-windows-gstreamer.sh            build or reuse; prints
#                                                      the prefix on the last line
#   bash scripts/build-windows-gstreamer.sh --print    print the prefix of the
#                                                      last complete build and
#                                                      exit (1 when there is none)
#
# Sources: `apt-get source --download-only` of glib2.0, gstreamer1.0,
# gst-plugins-base1.0, libffi, pcre2, zlib and gettext (a deb-src entry is
# added for the Debian mirror already configured), unpacked with
# dpkg-source -x so that Debian's patches apply. Nothing else is downloaded.
#
# The prefix lives outside the clone, in $GST_IVSHMEM_WIN_CACHE (else
# $GST_IVSHMEM_CACHE, the VM suite's kernel cache too; default
# /var/cache/gst-ivshmem when writable, else ${XDG_CACHE_HOME:-~/.cache}/
# gst-ivshmem), named win64-<key>, where <key> hashes the exact source
# package versions and this script. A complete prefix is reused; a change of
# version or of this script builds a new one, and says so. The versions are
# recorded in <prefix>/VERSIONS. Run it under `nice`: a cold build takes
# 10 to 30 minutes on 2 cores.
set -euo pipefail

script=$(readlink -f "$0")
pkgs="zlib libffi pcre2 gettext glib2.0 gstreamer1.0 gst-plugins-base1.0"
host=x86_64-w64-mingw32
jobs=${GST_IVSHMEM_WIN_JOBS:-$(nproc)}

if [ -n "${GST_IVSHMEM_WIN_CACHE:-}" ]; then
  cache=$GST_IVSHMEM_WIN_CACHE
elif [ -n "${GST_IVSHMEM_CACHE:-}" ]; then
  cache=$GST_IVSHMEM_CACHE
elif mkdir -p /var/cache/gst-ivshmem 2>/dev/null && [ -w /var/cache/gst-ivshmem ]; then
  cache=/var/cache/gst-ivshmem
else
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/gst-ivshmem
fi
mkdir -p "$cache"

if [ "${1:-}" = "--print" ]; then
  latest=$(readlink -e "$cache/win64-latest" 2>/dev/null || true)
  if [ -n "$latest" ] && [ -f "$latest/COMPLETE" ]; then
    echo "$latest"
    exit 0
  fi
  exit 1
fi

log() { echo "== $*" >&2; }
die() { echo "build-windows-gstreamer: $*" >&2; exit 1; }

for tool in $host-gcc $host-g++ $host-dlltool meson ninja flex bison \
    dpkg-source apt-get pkg-config make; do
  command -v "$tool" >/dev/null 2>&1 \
    || die "$tool is missing (apt-get install gcc-mingw-w64-x86-64" \
      "g++-mingw-w64-x86-64 mingw-w64 meson ninja-build flex bison dpkg-dev" \
      "pkgconf make)"
done

# --- the deb-src entry -------------------------------------------------------
# For every deb entry of this release's suites, the same URIs and suites as
# deb-src. Returns 0 when it wrote a new file (apt-get update is needed).
add_deb_src() {
  local out=/etc/apt/sources.list.d/gst-ivshmem-deb-src.sources
  local codename
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ -n "$codename" ] || die "no VERSION_CODENAME in /etc/os-release"
  [ -f "$out" ] && return 1
  [ -w /etc/apt/sources.list.d ] || [ -n "$sudo" ] \
    || die "cannot write $out: run once as root to add the deb-src entry"
  $sudo python3 - "$codename" "$out" <<'PY'
import glob, re, sys
codename, out = sys.argv[1], sys.argv[2]
stanzas = []
for path in glob.glob("/etc/apt/sources.list.d/*.sources"):
    for block in re.split(r"\n\s*\n", open(path).read()):
        fields = {}
        for line in block.splitlines():
            if line.startswith("#") or ":" not in line or line[0].isspace():
                continue
            k, v = line.split(":", 1)
            fields[k.strip().lower()] = v.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        suites = [s for s in fields.get("suites", "").split()
                  if s.split("-")[0] == codename]
        if suites:
            stanzas.append((fields["uris"], suites, fields.get("components", "main"),
                            fields.get("signed-by")))
for path in ["/etc/apt/sources.list"] + glob.glob("/etc/apt/sources.list.d/*.list"):
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        words = re.sub(r"\[[^]]*\]", "", line.split("#")[0]).split()
        if len(words) >= 3 and words[0] == "deb" and words[2].split("-")[0] == codename:
            stanzas.append((words[1], [words[2]], " ".join(words[3:]) or "main", None))
if not stanzas:
    sys.exit("no deb entry for %s found in /etc/apt" % codename)
with open(out, "w") as f:
    f.write("# added by gst-ivshmem scripts/build-windows-gstreamer.sh\n")
    for uris, suites, comps, signed in stanzas:
        f.write("\nTypes: deb-src\nURIs: %s\nSuites: %s\nComponents: %s\n"
                % (uris, " ".join(suites), comps))
        if signed:
            f.write("Signed-By: %s\n" % signed)
PY
  log "added $out"
  return 0
}

apt_update() {
  local i
  for i in 1 2 3 4 5 6 7 8 9 10; do
    $sudo apt-get update -q >&2 && return 0
    log "apt-get update failed (lock held by another apt?); retrying in 15 s"
    sleep 15
  done
  die "apt-get update failed"
}

src_versions() {
  apt-cache showsrc --only-source "$1" 2>/dev/null \
    | awk '/^Version:/ {print $2}' | sort -u
}

# Newest version first (dpkg's ordering).
sorted_versions() {
  local list=() v i j
  while read -r v; do [ -n "$v" ] && list+=("$v"); done
  for ((i = 0; i < ${#list[@]}; i++)); do
    for ((j = i + 1; j < ${#list[@]}; j++)); do
      if dpkg --compare-versions "${list[j]}" gt "${list[i]}"; then
        v=${list[i]}; list[i]=${list[j]}; list[j]=$v
      fi
    done
  done
  printf '%s\n' "${list[@]}"
}

# Downloads the newest version of source package $1 that the mirror serves
# into $cache/debsrc (files already there are not fetched again) and prints
# that version.
fetch_source() {
  local pkg=$1 v
  for v in $(src_versions "$pkg" | sorted_versions); do
    if (cd "$cache/debsrc" && apt-get source -q --download-only \
          "$pkg=$v" >/dev/null 2>&1); then
      echo "$v"
      return 0
    fi
    log "$pkg $v: not served by the mirror, trying an older revision"
  done
  return 1
}

# root for the deb-src entry and apt-get update only
sudo=
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
  sudo=sudo
fi
mkdir -p "$cache/debsrc"
if add_deb_src || [ -z "$(src_versions glib2.0)" ] \
    || [ -n "${GST_IVSHMEM_WIN_UPDATE:-}" ]; then
  apt_update
fi
[ -n "$(src_versions glib2.0)" ] \
  || die "apt-cache showsrc glib2.0 finds nothing: no deb-src entry?"

declare -A ver
versions=""
for p in $pkgs; do
  ver[$p]=$(fetch_source "$p") || die "cannot fetch the source package $p"
  versions+="$p ${ver[$p]}"$'\n'
done
key=$( (printf '%s' "$versions"; cat "$script") | sha256sum | cut -c1-16)
gstv=${ver[gstreamer1.0]%%-*}
prefix=$cache/win64-gst$gstv-$key

if [ -f "$prefix/COMPLETE" ]; then
  log "reusing $prefix (same source versions, same script)"
  ln -sfn "$(basename "$prefix")" "$cache/win64-latest"
  echo "$prefix"
  exit 0
fi
# The prefix win64-latest points at, if any. readlink -e, not -f: -f prints
# a path for a link that does not exist too ($cache/win64-latest itself on
# a cold cache), and removing that "previous prefix" after the build would
# remove the new link.
old=$(readlink -e "$cache/win64-latest" 2>/dev/null || true)
[ "$old" != "$cache/win64-latest" ] || old=
if [ -n "$old" ] && [ -f "$old/VERSIONS" ]; then
  log "REBUILDING: the key changed from $(basename "$old") to $(basename "$prefix")"
  diff <(grep -v '^#' "$old/VERSIONS") <(printf '%s' "$versions") >&2 \
    || true
  cmp -s "$old/build-windows-gstreamer.sh" "$script" \
    || log "(this script changed too)"
fi
exec 9>"$cache/.lock"
flock 9
if [ -f "$prefix/COMPLETE" ]; then
  log "reusing $prefix (built by another run meanwhile)"
  echo "$prefix"
  exit 0
fi
log "building $prefix"

start=$(date +%s)
rm -rf "$prefix"
work=$cache/work-$key
rm -rf "$work"
mkdir -p "$work" "$prefix/bin" "$prefix/lib/pkgconfig" "$prefix/include"
for p in $pkgs; do
  dsc=$(ls "$cache/debsrc/${p}_${ver[$p]#*:}.dsc")
  (cd "$work" && dpkg-source -x "$dsc" "$p" >"$work/$p-unpack.log" 2>&1) \
    || { cat "$work/$p-unpack.log" >&2; die "dpkg-source -x $dsc failed"; }
done

# mingw gcc is the win32-thread flavour; libgcc is linked statically so
# that no DLL of the prefix needs libgcc_s_seh-1.dll (copied anyway below).
export PKG_CONFIG_LIBDIR=$prefix/lib/pkgconfig
export PKG_CONFIG_PATH=
cflags="-O2 -g -I$prefix/include"
ldflags="-L$prefix/lib -static-libgcc"

build_zlib() {
  local s=$work/zlib o
  log "zlib ${ver[zlib]}"
  cd "$s"
  for c in adler32 compress crc32 deflate gzclose gzlib gzread gzwrite \
      infback inffast inflate inftrees trees uncompr zutil; do
    $host-gcc $cflags -D_LARGEFILE64_SOURCE=1 -c "$c.c" -o "$c.o" &
    [ "$(jobs -r | wc -l)" -lt "$jobs" ] || wait -n
  done
  wait
  $host-gcc -shared -o zlib1.dll ./*.o -Wl,--out-implib,libz.dll.a $ldflags
  install -m644 zlib.h zconf.h "$prefix/include/"
  install -m755 zlib1.dll "$prefix/bin/"
  install -m644 libz.dll.a "$prefix/lib/"
  o=${ver[zlib]#*:}
  cat >"$prefix/lib/pkgconfig/zlib.pc" <<EOF
prefix=$prefix
libdir=\${prefix}/lib
includedir=\${prefix}/include
Name: zlib
Description: zlib compression library
Version: ${o%%.dfsg*}
Libs: -L\${libdir} -lz
Cflags: -I\${includedir}
EOF
}

# Debian's patches touch configure.ac/Makefile.am: give the whole tree one
# time stamp so that make does not try to run automake/autoconf.
same_timestamps() {
  find "$1" -exec touch -h -d @1600000000 {} +
}

# quiet: the output goes to $work/NAME.log, shown when a step fails
logged() {
  local log=$1; shift
  "$@" >>"$log" 2>&1 || { tail -40 "$log" >&2; die "failed: $*"; }
}

autotools() {
  local dir=$1 rel=${1#"$work"/}; shift
  same_timestamps "$work/${rel%%/*}"
  cd "$dir"
  logged "$work/${rel%%/*}.log" ./configure --host=$host --prefix="$prefix" \
    --enable-shared --disable-static --disable-dependency-tracking \
    CFLAGS="$cflags" LDFLAGS="$ldflags" "$@"
}

build_libffi() {
  log "libffi ${ver[libffi]}"
  autotools "$work/libffi" --disable-docs --disable-multi-os-directory
  logged "$work/libffi.log" make -j"$jobs"
  logged "$work/libffi.log" make install
}

build_pcre2() {
  log "pcre2 ${ver[pcre2]}"
  autotools "$work/pcre2" --enable-pcre2-8 --disable-pcre2-16 \
    --disable-pcre2-32 --enable-unicode
  logged "$work/pcre2.log" make -j"$jobs"
  logged "$work/pcre2.log" make install
  rm -f "$prefix/lib/pkgconfig/libpcre2-posix.pc"
}

# ENABLE_COSTLY_RELOCATABLE=0: otherwise libintl-8.dll (relocatable on
# Windows whatever --disable-relocatable says) exports the DllMain of its
# relocation code, and every DLL linked with -lintl that has no DllMain of
# its own (all of GStreamer's, and the plugin) imports it as its own.
build_libintl() {
  log "gettext ${ver[gettext]} (libintl only)"
  autotools "$work/gettext/gettext-runtime" --disable-java --disable-csharp \
    --disable-libasprintf --disable-openmp --disable-curses \
    --disable-c++ --without-emacs --without-libiconv-prefix \
    --without-libintl-prefix --enable-threads=windows --disable-relocatable \
    CPPFLAGS=-DENABLE_COSTLY_RELOCATABLE=0
  logged "$work/gettext.log" make -j"$jobs" -C intl
  logged "$work/gettext.log" make -C intl install
}

write_cross() {
  cat >"$work/cross.txt" <<EOF
[binaries]
c = '$host-gcc'
cpp = '$host-g++'
ar = '$host-ar'
strip = '$host-strip'
windres = '$host-windres'
pkgconfig = 'pkg-config'

[properties]
pkg_config_libdir = ['$prefix/lib/pkgconfig']
# the answers of GLib's run checks for Windows (no exe_wrapper: wine would
# answer for wine), as GStreamer's own Windows build (cerbero) gives them
have_c99_vsnprintf = false
have_c99_snprintf = false
have_unix98_printf = false
growing_stack = false
va_val_copy = true
have_proc_self_cmdline = false

[built-in options]
c_args = ['-I$prefix/include']
cpp_args = ['-I$prefix/include']
c_link_args = ['-L$prefix/lib', '-static-libgcc']
cpp_link_args = ['-L$prefix/lib', '-static-libgcc', '-static-libstdc++']

[host_machine]
system = 'windows'
cpu_family = 'x86_64'
cpu = 'x86_64'
endian = 'little'
EOF
}

meson_build() {
  local name=$1; shift
  log "$name ${ver[$name]}"
  meson setup "$work/$name/_build" "$work/$name" --cross-file "$work/cross.txt" \
    --prefix="$prefix" --libdir=lib --buildtype=release -Db_lto=false \
    --wrap-mode=nodownload "$@" >"$work/$name-setup.log" \
    || { tail -40 "$work/$name-setup.log" >&2; die "meson setup of $name failed"; }
  ninja -C "$work/$name/_build" -j"$jobs" >"$work/$name-build.log" \
    || { grep -B2 -A20 'FAILED' "$work/$name-build.log" | head -60 >&2; \
         die "building $name failed"; }
  meson install -C "$work/$name/_build" --no-rebuild >/dev/null
}

phase() {
  local t0=$SECONDS
  "$@"
  log "${*:1:2}: $((SECONDS - t0)) s"
}

phase build_zlib
phase build_libffi
phase build_pcre2
phase build_libintl
write_cross
phase meson_build glib2.0 -Dtests=false -Dinstalled_tests=false -Dnls=disabled \
  -Dman=false -Dgtk_doc=false -Dselinux=disabled -Dxattr=false \
  -Dlibmount=disabled -Dlibelf=disabled -Dsysprof=disabled
phase meson_build gstreamer1.0 -Dauto_features=disabled -Dtools=enabled \
  -Dtests=disabled -Dexamples=disabled -Dbenchmarks=disabled \
  -Ddoc=disabled -Dintrospection=disabled -Dnls=disabled \
  -Dcheck=disabled -Dlibunwind=disabled -Dlibdw=disabled \
  -Dbash-completion=disabled -Dcoretracers=enabled -Dgst_debug=true
phase meson_build gst-plugins-base1.0 -Dauto_features=disabled \
  -Dapp=enabled -Daudioconvert=enabled -Daudiotestsrc=enabled \
  -Dvideoconvertscale=enabled -Dvideotestsrc=enabled -Dvideorate=enabled \
  -Daudioresample=enabled -Dtools=enabled -Dtests=disabled \
  -Dexamples=disabled -Ddoc=disabled -Dintrospection=disabled \
  -Dnls=disabled -Dorc=disabled

# Runtime DLLs of the compiler that any installed DLL/EXE imports.
gccdir=$(dirname "$($host-gcc -print-libgcc-file-name)")
for dll in libgcc_s_seh-1.dll libwinpthread-1.dll libstdc++-6.dll; do
  if find "$prefix" -name '*.dll' -o -name '*.exe' | xargs $host-objdump -p \
      2>/dev/null | grep -i "DLL Name: $dll" >/dev/null; then
    for src in "$gccdir/$dll" "/usr/$host/lib/$dll"; do
      if [ -f "$src" ]; then
        install -m755 "$src" "$prefix/bin/"
        log "copied $dll"
        break
      fi
    done
  fi
done

# No DLL may import DllMain (see build_libintl). (Every command of the loop
# succeeds: under set -e and pipefail a failing last one would end the
# script silently.)
bad=
while read -r f; do
  if $host-objdump -p "$f" \
      | grep -E '^\s+[0-9a-f]+\s+[0-9]+\s+DllMain$' >/dev/null; then
    bad+=" ${f#"$prefix"/}"
  fi
done < <(find "$prefix" -name '*.dll' -o -name '*.exe')
[ -z "$bad" ] || die "these import a DllMain from another DLL:$bad"

{
  echo "# Debian source packages of this prefix (apt-get source, dpkg-source -x)"
  printf '%s' "$versions"
} >"$prefix/VERSIONS"
{
  echo "compiler $($host-gcc --version | head -1)"
  echo "host $host (msvcrt)"
  echo "built $(date -u +%FT%TZ) in $(($(date +%s) - start)) s"
} >"$prefix/BUILDINFO"
cp "$script" "$prefix/build-windows-gstreamer.sh"
touch "$prefix/COMPLETE"
ln -sfn "$(basename "$prefix")" "$cache/win64-latest"
rm -rf "$work"
if [ -n "$old" ] && [ "$old" != "$prefix" ] && [ -d "$old" ] \
    && [ ! -L "$old" ] && [ "$(dirname "$old")" = "$(readlink -f "$cache")" ]; then
  log "removing the previous prefix $old"
  rm -rf "$old"
fi
# What --print (the wine suite) reads must be this prefix.
[ "$(readlink -e "$cache/win64-latest" || true)" = "$(readlink -f "$prefix")" ] \
  || die "$cache/win64-latest does not point at $prefix after the build"
log "done in $(($(date +%s) - start)) s: $prefix"
echo "$prefix"
