#!/bin/sh
# Runs one libFuzzer target for a while on a copy of its seed corpus.
#   run-fuzz.sh FUZZER SEED_DIR SECONDS
#   run-fuzz.sh --skip REASON           (no clang: exit 77, the skip code)
# Fails (non-zero) on a crash, a leak, a timeout (a hang) or a sanitizer
# report; the crashing input is kept in the build dir and named in the log.
set -eu
if [ "$1" = --skip ]; then
  echo "SKIP: fuzz targets not built: $2"
  exit 77
fi
fuzzer=$1 seeds=$2 seconds=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/ivshm-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus"
cp "$seeds"/* "$work/corpus/"
artifacts=$(dirname "$fuzzer")/$(basename "$fuzzer")-artifacts/
mkdir -p "$artifacts"
status=0
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$artifacts" "$work/corpus" \
  >"$work/log" 2>&1 || status=$?
grep -E "^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added)|^Done|ERROR|SUMMARY|^artifact_prefix|Test unit written|^==[0-9]+==" "$work/log" || true
if [ $status -ne 0 ]; then
  echo "FAIL: $(basename "$fuzzer") exit status $status; full log:"
  tail -n 80 "$work/log"
  exit 1
fi
echo "OK: $(basename "$fuzzer"): no crash, no hang in ${seconds} s"
