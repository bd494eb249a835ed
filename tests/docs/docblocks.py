# gst-ivshmem: the command blocks of the documentation
# SPDX-License-Identifier: MIT
"""Finds the ```sh blocks of a markdown file, the commands in them and the
<!-- docs-test: ... --> comment in front of each, which says how the docs
test runs the block:

  (none), host     run each command on the host, in the source tree, with
                   the build's plugin and tools
  clone            run in a fresh copy of the source tree (build commands)
  guest            run in a QEMU guest (tests/vm), a host producer
                   streaming into its device
  WHERE:S1+S2 ...  one token per command (the last one repeats): WHERE is
                   host, guest or guest2 (a second guest), S the streams the
                   command produces or consumes. Each stream has one
                   producer (ivshmemsink) and one consumer (ivshmemsrc);
                   the test runs every pair and checks that buffers arrive.
  covered by TEST: WHY   another test runs these commands (a meson test or
                   suite name, checked to exist)
  skip: WHY        not run, and said so in the output
"""

import re

FENCE_RE = re.compile(r"^(\s*)```(\S*)\s*$")
DIRECTIVE_RE = re.compile(r"^\s*<!--\s*docs-test:\s*(.*?)\s*-->\s*$")
COMMAND_WORDS = ("gst-launch-1.0", "gst-inspect-1.0", "meson", "ninja",
                 "bash", "sudo", "python3", "qemu-system-x86_64",
                 "ivshmem-info", "lspci", "dpkg-buildpackage")


class Block:
    def __init__(self, path, line, lang, text, directive):
        self.path = path
        self.line = line            # 1-based line of the opening fence
        self.lang = lang
        self.text = text
        self.directive = directive  # text of the docs-test comment, or None
        self.commands = split_commands(text) if lang == "sh" else []

    def where(self):
        return "%s:%d" % (self.path, self.line)


def split_commands(text):
    """Shell commands of a block: continuation lines joined, comments
    dropped (whole lines, and ' # ...' at the end of a line)."""
    out, cur = [], ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            cur += line[:-1].rstrip() + " "
            continue
        cur += line
        cur = re.sub(r"\s+#\s.*$", "", cur).strip()
        cur = re.sub(r"\s+", " ", cur)
        if cur:
            out.append(cur)
        cur = ""
    if cur.strip():
        out.append(cur.strip())
    return out


def blocks(path):
    with open(path) as f:
        lines = f.read().split("\n")
    out = []
    i = 0
    while i < len(lines):
        m = FENCE_RE.match(lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group(2)
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith("```"):
            j += 1
        directive = None
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        if k >= 0:
            d = DIRECTIVE_RE.match(lines[k])
            if d:
                directive = d.group(1)
        out.append(Block(path, start + 1, lang, "\n".join(lines[i + 1:j]),
                         directive))
        i = j + 1
    return out


def looks_like_commands(block):
    """An untagged block that starts with a command: it should be ```sh."""
    first = next((l.strip() for l in block.text.splitlines() if l.strip()),
                 "")
    return block.lang == "" and first.split(" ")[0] in COMMAND_WORDS


def covered_commands(paths, test):
    """The commands of the blocks whose comment says 'covered by TEST'."""
    out = []
    for path in paths:
        for b in blocks(path):
            if b.lang == "sh" and b.directive and re.match(
                    r"covered by %s\b" % re.escape(test), b.directive):
                out += b.commands
    return out


if __name__ == "__main__":
    # docblocks.py --covered-by TEST FILE.md...: prints those commands, one
    # a line, for the test that runs them.
    import sys
    if len(sys.argv) < 4 or sys.argv[1] != "--covered-by":
        sys.exit("usage: docblocks.py --covered-by TEST FILE.md...")
    cmds = covered_commands(sys.argv[3:], sys.argv[2])
    if not cmds:
        sys.exit("no block of %s is covered by %s" % (sys.argv[3:],
                                                      sys.argv[2]))
    print("\n".join(cmds))
