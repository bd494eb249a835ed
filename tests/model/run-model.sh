#!/bin/sh
# Checks the Promela model of the ring protocol (common/ring/model) with Spin.
#
#   run-model.sh MODEL.pml WORKDIR EXPECT [-DNAME[=VALUE]...] [-- PAN-FLAGS...]
#
# Builds a verifier for one configuration or variant of the model
# (spin -a, gcc -O2 -DSAFETY -DCOLLAPSE) and runs it. EXPECT is `pass'
# (Spin must explore the whole state space and find no error) or the text
# of the error Spin must report, for a deliberately broken variant, e.g.
# `assertion violated (c_no_stale_store'. Prints Spin's figures (states,
# memory, time). Exit 77 (skipped) without spin or a C compiler.
set -u

model=$1 work=$2 expect=$3
shift 3
defs=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  defs="$defs $1"
  shift
done
[ $# -gt 0 ] && shift
panflags="$*"

if ! command -v spin >/dev/null 2>&1; then
  echo "SKIP: spin not found (Debian: apt-get install spin)"
  exit 77
fi
cc=${CC:-cc}
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "SKIP: no C compiler ($cc) to build Spin's verifier"
  exit 77
fi

rm -rf "$work"
mkdir -p "$work" || exit 1
cp "$(dirname "$model")"/*.pml "$work"/ || exit 1
cd "$work" || exit 1

echo "== spin -a$defs $(basename "$model")"
# shellcheck disable=SC2086
spin -a $defs "$(basename "$model")" > spin.log 2>&1 || {
  cat spin.log
  echo "FAIL: spin could not translate the model"
  exit 1
}
# COLLAPSE: lossless state compression; MEMLIM: stop at 4 GB, not swap
"$cc" -O2 -DSAFETY -DCOLLAPSE -DMEMLIM=4096 -o pan pan.c > cc.log 2>&1 || {
  cat cc.log
  echo "FAIL: the verifier did not compile"
  exit 1
}
echo "== ./pan -m100000 $panflags"
# shellcheck disable=SC2086
./pan -m100000 $panflags > pan.log 2>&1
grep -E 'assertion violated|invalid end state|errors:|states, stored|total actual memory|elapsed time|Search not completed|MEMLIM' pan.log

if [ "$expect" = pass ]; then
  if grep -q 'errors: 0' pan.log && ! grep -q 'Search not completed' pan.log; then
    echo "PASS: no error in the whole state space"
    exit 0
  fi
  if [ -f "$(basename "$model").trail" ]; then
    echo "== the counterexample (spin -t):"
    # shellcheck disable=SC2086
    spin -t -p -l -g $defs "$(basename "$model")" | tail -200
  fi
  echo "FAIL: Spin found an error, or did not finish"
  exit 1
fi

if grep -qF "$expect" pan.log; then
  echo "PASS: the broken variant fails as expected ($expect)"
  exit 0
fi
echo "FAIL: expected Spin to report \`$expect'"
exit 1
