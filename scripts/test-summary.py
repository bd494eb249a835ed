#!/usr/bin/env python3
"""Sums up the meson test logs of a CI run (scripts/quickstart.sh test).

    test-summary.py [--suites FILE] [--allow FILE] RUN=LOG...

RUN labels a meson testlog*.json (main, valgrind, asan, tsan). For each run
it prints how many tests of each suite ran, with their results; then every
failure, every skip with its reason, and one closing line:
'N passed, N failed, N skipped'.

A skip fails CI unless tests/ci/skips-allowed.txt lists it (run, test and
reason): such a skip is counted as skipped and its reason printed; any other
skip is counted as failed. A suite that tests/ci/suites.txt names for a run
but that ran no test there (not registered, or a run that did not happen)
counts as one failure. Exit 1 if anything failed or no test ran.
"""
import argparse
import collections
import json
import os
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_table(path, min_fields):
    """Lines of whitespace-separated fields; '#' starts a comment line. The
    last field takes the rest of the line."""
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            fields = line.split(None, min_fields - 1)
            if len(fields) < min_fields:
                sys.exit("%s:%d: expected %d fields: %r"
                         % (path, n, min_fields, line))
            rows.append(fields)
    return rows


def split_name(full):
    """meson 1.0 names a test 'project:suite1+suite2 / test': returns the
    test's own name and its suites."""
    head, sep, name = full.partition(" / ")
    if not sep:
        return full, ["(none)"]
    return name, head.split(":", 1)[-1].split("+")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--suites", default=os.path.join(TOP, "tests", "ci",
                                                     "suites.txt"))
    ap.add_argument("--allow", default=os.path.join(TOP, "tests", "ci",
                                                    "skips-allowed.txt"))
    ap.add_argument("logs", nargs="+", metavar="RUN=LOG")
    args = ap.parse_args()

    expected = collections.defaultdict(list)
    for run, suite in read_table(args.suites, 2):
        expected[run].append(suite)
    allowed = {(run, test): reason
               for run, test, reason in read_table(args.allow, 3)}

    passed = failed = skipped = 0
    failures, skips = [], []
    seen_allowed = set()
    for arg in args.logs:
        run, sep, path = arg.partition("=")
        if not sep:
            run, path = os.path.basename(arg), arg
        tests = []
        try:
            with open(path) as f:
                tests = [json.loads(line) for line in f if line.strip()]
        except OSError as e:
            failed += 1
            failures.append("%s: no test log (%s)" % (run, e))
        except ValueError as e:
            failed += 1
            failures.append("%s: unreadable test log %s (%s)" % (run, path, e))

        # suite -> result -> count
        per_suite = collections.defaultdict(collections.Counter)
        for t in tests:
            name, suites = split_name(t.get("name", "?"))
            result = t.get("result")
            if result in ("OK", "EXPECTEDFAIL"):
                passed += 1
                kind = "passed"
            elif result == "SKIP" and (run, name) in allowed:
                skipped += 1
                kind = "skipped"
                seen_allowed.add((run, name))
                skips.append("%s: %s: %s" % (run, name, allowed[(run, name)]))
            elif result == "SKIP":
                failed += 1
                kind = "failed"
                failures.append("%s: %s skipped, and it is not on the "
                                "allow-list (%s)"
                                % (run, name, os.path.relpath(args.allow, TOP)))
            else:
                failed += 1
                kind = "failed"
                failures.append("%s: %s (%s)" % (run, name, result))
            for s in suites:
                per_suite[s][kind] += 1

        print("== %s (%s): %d tests" % (run, path, len(tests)))
        for s in sorted(set(per_suite) | set(expected.get(run, []))):
            c = per_suite.get(s, collections.Counter())
            n = sum(c.values())
            line = "  %-10s %3d ran: %d passed, %d failed, %d skipped" % (
                s, n, c["passed"], c["failed"], c["skipped"])
            if n == 0:
                line = "  %-10s   0 ran: the suite is missing" % s
                failed += 1
                failures.append("%s: suite %s ran no test (not registered?)"
                                % (run, s))
            print(line)

    for run, name in sorted(set(allowed) - seen_allowed):
        print("note: %s: %s is on the skip allow-list but did not skip"
              % (run, name))
    for s in skips:
        print("skipped (allowed): %s" % s)
    for f in failures:
        print("failed: %s" % f)
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
