#!/usr/bin/env python3
"""Sums up meson test logs (testlog*.json) into one closing line:
'N passed, N failed, N skipped'. Exit 1 if anything failed or no test ran."""
import json
import sys

passed = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        f = open(path)
    except OSError:
        print("test-summary: no log %s" % path, file=sys.stderr)
        failed += 1
        continue
    with f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            t = json.loads(line)
            result = t.get("result")
            name = t.get("name")
            if result in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif result == "SKIP":
                skipped += 1
                print("skipped: %s" % name)
            else:
                failed += 1
                print("failed: %s (%s)" % (name, result))
print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
sys.exit(1 if failed or passed == 0 else 0)
