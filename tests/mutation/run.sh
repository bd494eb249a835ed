#!/bin/sh
# A mutation pass over the core: each mutant below is one small fault put
# into a copy of the tree (never into the tree itself); the copy is built
# and the tests are run against it. A mutant that no test fails "survived":
# the tests let that fault through. Not in CI (slow: a build and the tests
# per mutant).
#
#   tests/mutation/run.sh [MUTANT...]        every mutant, or those named
#
# Environment: MUTATION_TESTS, the meson tests to run (default: the whole
# `check' suite); MUTATION_TARGETS, the ninja targets to build for them
# (default: everything); MUTATION_DIR, where the copy goes (default: a new
# directory under /tmp, removed at the end). Prints one line per mutant:
# its name, killed or SURVIVED, and the check tests (file:test) that
# failed. Exit status: the number of survivors (0: every mutant killed).
#
# A mutant is:  name^file^text to replace^replacement  where the texts are
# Python string literals (so \n is a newline); the text must occur exactly
# once in the file, or the mutant is reported STALE (the code moved on:
# update it).
set -u

src=$(cd "$(dirname "$0")/../.." && pwd)
tests=${MUTATION_TESTS:-}
work=${MUTATION_DIR:-$(mktemp -d /tmp/ivshm-mutation.XXXXXX)}
keep=${MUTATION_DIR:+yes}

mutants() {
  cat <<'MUTANTS'
publish-no-wake^common/ring/ivshmem-publish.c^'  if (atomic_load_explicit (&w->hdr->readers_sleeping, RLX) != 0)\n    ivshm_wake (&w->hdr->data_futex);'^'  (void) 0;'
len-vs-ring-size^common/ring/ivshmem-reader.c^'h->payload_len > r->ring_size - off - sizeof *h'^'h->payload_len > r->ring_size - sizeof *h'
register-no-tail-recheck^common/ring/ivshmem-attach.c^'    if (tail <= *t)\n      break;'^'    if (1)\n      break;'
reclaim-no-second-scan^common/ring/ivshmem-reclaim.c^'  m2 = writer_scan_slots (w, false, NULL);'^'  m2 = m1;'
move-state-without-generation^common/ring/ivshmem-slots.c^'    if (atomic_compare_exchange_strong_explicit (&s->state_gen, &word,\n            IVSHM_SLOT_WORD (to, IVSHM_SLOT_WORD_GEN (word)), SEQ, SEQ))\n      return true;'^'    {\n      uint32_t st = atomic_load_explicit (&s->state, SEQ);\n      if (atomic_compare_exchange_strong_explicit (&s->state, &st, to, SEQ,\n              SEQ))\n        return true;\n    }'
base-from-write-pos^common/ring/ivshmem-writer.c^'    pending = writer_pending_end (old_wp, old_re, w->ring_size);'^'    pending = old_wp;'
no-stale-reservation-hold^common/ring/ivshmem-writer.c^'    w->stale_until_ns = ivshm_now_ns () + w->lease_timeout_ns;'^'    w->stale_until_ns = 0;'
read-pos-plain-store^common/ring/ivshmem-held.c^'  if (!atomic_compare_exchange_strong_explicit (&r->slot->read_pos,\n          &expected, pos | r->tag, SEQ, RLX)) {'^'  atomic_store_explicit (&r->slot->read_pos, pos | r->tag, SEQ);\n  if (0) {'
record-pos-unchecked^common/ring/ivshmem-reader.c^'  if (h->pos != r->pos)'^'  if (0)'
release-always-ok^common/ring/ivshmem-reader.c^'  return owns ? IVSHM_OK : IVSHM_ERR_EVICTED;'^'  return IVSHM_OK;'
writer-always-owns^common/ring/ivshmem-publish.c^'  if (atomic_load_explicit (&w->hdr->producer_owner, SEQ) == w->token)\n    return true;'^'  if (1)\n    return true;'
reap-no-data-wake^common/ring/ivshmem-slots.c^'  if (atomic_fetch_and_explicit (&hdr->readers_sleeping, ~bit, SEQ) & bit)\n    ivshm_wake (&hdr->data_futex);'^'  atomic_fetch_and_explicit (&hdr->readers_sleeping, ~bit, SEQ);'
freed-slot-no-space-wake^common/ring/ivshmem-slots.c^'  if (atomic_load_explicit (&hdr->writer_sleeping, SEQ) != 0)\n    ivshm_wake (&hdr->space_futex);'^'  (void) hdr;'
adopt-plain-store^common/ring/ivshmem-slots.c^'  return atomic_compare_exchange_strong_explicit (&s->session_id, &seen,\n      session, SEQ, RLX);'^'  atomic_store_explicit (&s->session_id, session, SEQ);\n  return seen == seen;'
writer-sleeping-plain-clear^common/ring/ivshmem-writer.c^'  atomic_compare_exchange_strong_explicit (&w->hdr->writer_sleeping, &mark,\n      0, SEQ, RLX);'^'  (void) mark;\n  atomic_store_explicit (&w->hdr->writer_sleeping, 0, SEQ);'
holders-ignored^common/ring/ivshmem-reclaim.c^'  if (w->n_holders > 0 && w->holders_pos < bound)'^'  if (0)'
reap-no-poison^common/ring/ivshmem-slots.c^'    if (atomic_compare_exchange_strong_explicit (&s->read_pos, &v,\n            IVSHM_POS_POISON, SEQ, SEQ))\n      break;'^'    break;'
format-no-eviction^common/ring/ivshmem-writer.c^'      if (ivshm_slot_evict (s, state) && congruent)'^'      if (congruent)'
sleep-without-write-pos-look^common/ring/ivshmem-reader.c^'        && atomic_load_explicit (&r->hdr->write_pos, SEQ) == r->pos;'^'        ;'
stale-payload-no-announce^common/ring/ivshmem-spans.c^'  if (!writer_announce (w, w->reserve_pos + rec_len))\n    return IVSHM_ERR_TAKEN_OVER;'^'  (void) writer_announce;'
lease-never-expires^common/ring/ivshmem-slots.c^'  if (now - lw->since_ns <= lease_ns)\n    return false;'^'  if (1)\n    return false;'
MUTANTS
}

cleanup() {
  [ -z "$keep" ] && rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "== copy of the tree in $work"
mkdir -p "$work/src" || exit 1
# the files git knows, as they are in the work tree (changes not yet
# committed included)
(cd "$src" && git ls-files -z | xargs -0 tar cf - 2>/dev/null) |
  (cd "$work/src" && tar xf -) || exit 1
cd "$work/src" || exit 1
meson setup "$work/build" > "$work/setup.log" 2>&1 || {
  cat "$work/setup.log"
  exit 1
}
ninja -C "$work/build" > "$work/build.log" 2>&1 || {
  tail -30 "$work/build.log"
  exit 1
}
echo "== the unmutated tree passes its tests?"
# shellcheck disable=SC2086
if [ -n "$tests" ]; then set -- "$@"; fi
start=$(date +%s)
# shellcheck disable=SC2086
if ! meson test -C "$work/build" --num-processes 1 ${tests:---suite check} \
    > "$work/base.log" 2>&1; then
  grep -E "FAIL|TIMEOUT" "$work/base.log"
  echo "the tree fails its tests without a mutant: fix that first"
  exit 1
fi
echo "   yes ($(($(date +%s) - start)) s)"

survived=0
mutants | while IFS='^' read -r name file old new; do
  case "$name" in ''|'#'*) continue ;; esac
  if [ $# -gt 0 ]; then
    wanted=no
    for m in "$@"; do [ "$m" = "$name" ] && wanted=yes; done
    [ $wanted = yes ] || continue
  fi
  cp "$file" "$work/orig" || exit 1
  if ! python3 - "$file" "$old" "$new" <<'PY'
import ast, sys
path, old, new = sys.argv[1], ast.literal_eval(sys.argv[2]), ast.literal_eval(sys.argv[3])
s = open(path).read()
if s.count(old) != 1:
    sys.exit(1)
open(path, "w").write(s.replace(old, new))
PY
  then
    printf '%-32s STALE (the text is not in %s once)\n' "$name" "$file"
    continue
  fi
  t0=$(date +%s)
  # shellcheck disable=SC2086
  if ! ninja -C "$work/build" ${MUTATION_TARGETS:-} > "$work/mbuild.log" 2>&1; then
    printf '%-32s killed by the build (%s)\n' "$name" \
      "$(grep -m1 error: "$work/mbuild.log")"
  else
    # shellcheck disable=SC2086
    meson test -C "$work/build" --num-processes 1 \
      ${MUTATION_TARGETS:+--no-rebuild} ${tests:---suite check} \
      > "$work/mtest.log" 2>&1
    failed=$(grep -E '^ *[0-9]+/[0-9]+ .*(FAIL|TIMEOUT)' "$work/mtest.log" |
      sed -E 's/.*\/ ([^ ]+) .*/\1/' | sort -u | tr '\n' ' ')
    checks=$(grep -ohE ':[EF]:[a-z_]+:test_[a-z0-9_]+' \
      "$work/build/meson-logs/testlog.txt" | sed -E 's/:[EF]:[a-z_]+://' |
      sort -u | tr '\n' ' ')
    if [ -n "$failed" ]; then
      printf '%-32s killed (%ss) by %s: %s\n' "$name" "$(($(date +%s) - t0))" \
        "$failed" "$checks"
    else
      printf '%-32s SURVIVED (%ss)\n' "$name" "$(($(date +%s) - t0))"
      survived=$((survived + 1))
    fi
  fi
  cp "$work/orig" "$file"
  echo "$survived" > "$work/survived"
done
ninja -C "$work/build" > /dev/null 2>&1
echo "== done in $(($(date +%s) - start)) s"
exit "$(cat "$work/survived" 2>/dev/null || echo 0)"
