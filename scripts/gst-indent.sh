#!/bin/sh
# gst-ivshmem: formats C as GStreamer's gst-indent does.
# SPDX-License-Identifier: MIT
#
#   scripts/gst-indent.sh [--check] [FILE.c...]
#
# Runs GNU indent (Debian package `indent`) with GStreamer's settings
# (the flags of GStreamer's scripts/gst-indent, listed below) twice over
# each file, as GStreamer does: one pass does not always reach a fixed point.
#
# Without --check the files are formatted in place. With --check nothing is
# written: the script lists each file that indent would change, with the
# diff, and exits 1 if there is one (the meson test `gst-indent`, suite
# `docs`, runs it so). Without FILE arguments it takes every `.c` file of
# the source tree (git ls-files where the tree is a git checkout, else a
# find that leaves out build directories), less the exclusions below.
#
# Headers are not formatted: gst-indent leaves them alone in GStreamer too
# (G_DECLARE_* and G_BEGIN_DECLS blocks, the layout's _Static_asserts and
# aligned tables would be torn apart).
#
# A file that indent would mangle is reported and left alone (see the
# odd-indentation check below); fence the construct, as
# common/ring/ivshmem-sticky.c does, with /* *INDENT-OFF* */ ... /* *INDENT-ON* */.
#
# Exclusions (files indent would mangle or that are not ours):
#   - generated files: none is checked in today; meson writes its own under
#     the build directory, which is never searched;
#   - common/ring/model/: Promela (.pml), not C, although it looks like it;
#   - tests/fuzz/corpus/ and other data directories: no .c files there.
# Add a path to EXCLUDE (a grep -E pattern on the path from the top of
# the tree) with the reason next to it.
EXCLUDE='^(build[^/]*|subprojects|common/ring/model)/'

set -u

check=0
if [ "${1:-}" = "--check" ]; then
  check=1
  shift
fi

if ! command -v indent >/dev/null 2>&1; then
  echo "gst-indent.sh: GNU indent is missing (Debian: apt-get install indent)" >&2
  exit 77
fi
case "$(indent --version 2>/dev/null)" in
  GNU*) ;;
  *)
    echo "gst-indent.sh: 'indent' is not GNU indent" >&2
    exit 77
    ;;
esac

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1

# GStreamer's gst-indent flags (STYLE.md, section 3)
gst_indent() {
  indent \
    --braces-on-if-line \
    --case-brace-indentation0 \
    --case-indentation2 \
    --braces-after-struct-decl-line \
    --line-length80 \
    --no-tabs \
    --cuddle-else \
    --dont-line-up-parentheses \
    --continuation-indentation4 \
    --honour-newlines \
    --tab-size8 \
    --indent-level2 \
    --leave-preprocessor-space \
    "$1" -o "$2"
}

list_files() {
  if [ $# -gt 0 ]; then
    printf '%s\n' "$@"
  elif { [ -d .git ] || [ -f .git ]; } && command -v git >/dev/null 2>&1; then
    git ls-files -- '*.c' | grep -Ev "$EXCLUDE"
  else
    find . -name '*.c' -type f | sed 's|^\./||' | grep -Ev "$EXCLUDE" | sort
  fi
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gst-indent.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

changed=0
total=0
failed=0
list_files "$@" >"$tmp/files"
while IFS= read -r f; do
  [ -f "$f" ] || continue
  total=$((total + 1))
  if ! gst_indent "$f" "$tmp/pass1" 2>"$tmp/err" ||
      ! gst_indent "$tmp/pass1" "$tmp/pass2" 2>>"$tmp/err"; then
    echo "gst-indent.sh: indent failed on $f:" >&2
    cat "$tmp/err" >&2
    failed=$((failed + 1))
    continue
  fi
  if cmp -s "$f" "$tmp/pass2"; then
    continue
  fi
  # What indent does to a construct it does not parse (a prototype with
  # an #if'd __attribute__ before its `;`, `_Atomic (T *) name`): it
  # indents the next file-scope declarations by an odd number of spaces.
  # Such a result is not written: fence the construct in the source.
  if grep -nE '^( {2})* (static|extern|typedef) ' "$tmp/pass2" >"$tmp/odd"; then
    echo "gst-indent.sh: indent mangles $f (declarations indented oddly:" \
      "fence what precedes them with /* *INDENT-OFF* */ ..." \
      "/* *INDENT-ON* */):" >&2
    sed 's/^/  /' "$tmp/odd" | head -5 >&2
    failed=$((failed + 1))
    continue
  fi
  changed=$((changed + 1))
  if [ $check -eq 1 ]; then
    echo "== $f: gst-indent would change it"
    diff -u "$f" "$tmp/pass2" | sed -n '3,200p'
  else
    cat "$tmp/pass2" >"$f"
    echo "formatted $f"
  fi
done <"$tmp/files"

if [ $check -eq 1 ]; then
  echo "gst-indent.sh --check: $changed of $total files would change," \
    "$failed failed"
  [ $changed -eq 0 ] && [ $failed -eq 0 ] && [ $total -gt 0 ] || exit 1
  exit 0
fi
echo "gst-indent.sh: formatted $changed of $total files, $failed failed"
[ $failed -eq 0 ] || exit 1
