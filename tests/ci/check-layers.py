#!/usr/bin/env python3
# gst-ivshmem: the region's layout is private to common/
# SPDX-License-Identifier: MIT
#
# The elements (gst/) and the tools (tools/) ask the core (the reader, the
# writer, ivshmem-inspect.h) and never read the shared layout themselves
# (issue 22; README, "Layout"). This lists every file of gst/ and tools/
# that
#  - includes a private header of the core, directly or through a header
#    of common/ that includes one (the chain is named);
#  - names a type of the layout (IvshmHeader, IvshmReaderSlot,
#    IvshmStickyHeader) or one of its offsets and sizes;
#  - reads a header field the way the core does (`hdr->`, `->magic`,
#    `->tail`, ... on a pointer into the region).
# Comments and strings are not looked at. Exit 1 with the list, 0 when
# clean.
#
# Checked by mutation: with the consumer's and the pool's header reads of
# before issue 22 put back (plus an include of ivshmem-layout.h) and
# ivshmem-ring.h made to include ivshmem-layout.h again, it exited 1 and
# named 15 places: the include, the IvshmHeader pointers, each hdr->
# read, and every gst/ and tools/ header reaching the layout through
# ivshmem-ring.h or ivshmem-clock.h. Each run also starts with a self-test
# that plants one offence of each kind in a copy of the tree and fails if
# one is not found.
import os
import re
import sys
import tempfile

PRIVATE = {
    "ivshmem-layout.h": "the region's layout (ABI), private to common/",
    "ivshmem-ring-private.h": "the ring's internals",
    "ivshmem-private.h": "the core's internals",
    "ivshmem-region-private.h": "the POSIX region back end's internals",
}
LAYOUT_NAMES = [
    "IvshmHeader", "IvshmReaderSlot", "IvshmStickyHeader",
    "IVSHM_HEADER_SIZE", "IVSHM_SLOT_OFFSET", "IVSHM_SLOT_SIZE",
    "IVSHM_STICKY_OFFSET", "IVSHM_STICKY_SIZE", "IVSHM_RING_OFFSET",
    "IVSHM_POS_POISON", "IVSHM_POS_TAG", "IVSHM_SLOT_WORD",
]
# A field of the shared header or a slot read through a pointer. The
# copies ivshmem-inspect makes (IvshmHeaderCopy, IvshmSlotCopy) carry the
# same names: a pointer declared as one of those in the file is not
# matched.
FIELD_READ = re.compile(
    r"\b(\w+)\s*->\s*(magic|tail|write_pos|reserve_end|data_futex|"
    r"space_futex|producer_owner|producer_heartbeat|heartbeat_period_us|"
    r"session_id|state_gen|read_pos)\b|\b(hdr|header)\s*->")
COPY_DECL = re.compile(r"\b(?:IvshmHeaderCopy|IvshmSlotCopy)\s*\*\s*(\w+)")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def strip_comments_and_strings(text):
    out = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"),
                 text, flags=re.S)
    out = re.sub(r"//[^\n]*", "", out)
    # keep #include "..." lines, blank other string literals
    lines = []
    for line in out.split("\n"):
        if INCLUDE.match(line):
            lines.append(line)
        else:
            lines.append(re.sub(r'"(\\.|[^"\\])*"', '""', line))
    return "\n".join(lines)


def include_chain(name, common, seen=()):
    """The chain of common/ headers from `name` to a private one, or None."""
    if name in PRIVATE:
        return [name]
    path = os.path.join(common, name)
    if name in seen or not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        text = strip_comments_and_strings(f.read())
    for inc in INCLUDE.findall(text):
        chain = include_chain(inc, common, seen + (name,))
        if chain:
            return [name] + chain
    return None


def check(root):
    common = os.path.join(root, "common")
    problems = []
    for top in ("gst", "tools"):
        d = os.path.join(root, top)
        for fname in sorted(os.listdir(d)):
            if not fname.endswith((".c", ".h")):
                continue
            rel = f"{top}/{fname}"
            with open(os.path.join(d, fname), encoding="utf-8") as f:
                text = strip_comments_and_strings(f.read())
            copies = set(COPY_DECL.findall(text))
            for inc in INCLUDE.findall(text):
                chain = include_chain(inc, common)
                if chain:
                    why = PRIVATE[chain[-1]]
                    via = " -> ".join(chain)
                    problems.append(f"{rel}: includes {via} ({why})")
            for n, line in enumerate(text.split("\n"), 1):
                for name in LAYOUT_NAMES:
                    if re.search(r"\b%s\b" % name, line):
                        problems.append(f"{rel}:{n}: names {name}, part of "
                                        "the private layout")
                m = None
                for m in FIELD_READ.finditer(line):
                    if m.group(1) not in copies:
                        break
                else:
                    m = None
                if m:
                    problems.append(f"{rel}:{n}: reads a field of the shared "
                                    f"region ('{m.group(0)}'): ask the "
                                    "reader, the writer or ivshmem-inspect")
    return problems


def self_test(root):
    """Plants one offence of each kind in a copy; each must be found."""
    import shutil
    plants = {
        "include": ("gst/gstivshmemconsumer.c",
                    '#include "ivshmem-layout.h"\n'),
        "type": ("gst/gstivshmempool.c",
                 "static const IvshmHeader *planted;\n"),
        "field": ("tools/info-ring.c",
                  "static int planted (void *hdr) { return hdr->magic; }\n"),
    }
    ok = True
    for kind, (rel, line) in plants.items():
        with tempfile.TemporaryDirectory() as tmp:
            for top in ("gst", "tools", "common"):
                shutil.copytree(os.path.join(root, top),
                                os.path.join(tmp, top))
            with open(os.path.join(tmp, rel), "a", encoding="utf-8") as f:
                f.write(line)
            found = [p for p in check(tmp) if p.startswith(rel)]
            if not found:
                print(f"self-test: a planted {kind} offence in {rel} "
                      "was not found", file=sys.stderr)
                ok = False
    # and one through a public header
    with tempfile.TemporaryDirectory() as tmp:
        for top in ("gst", "tools", "common"):
            shutil.copytree(os.path.join(root, top), os.path.join(tmp, top))
        p = os.path.join(tmp, "common", "ivshmem-ring.h")
        with open(p, encoding="utf-8") as f:
            text = f.read()
        with open(p, "w", encoding="utf-8") as f:
            f.write(text.replace('#include "ivshmem-os.h"',
                                 '#include "ivshmem-os.h"\n'
                                 '#include "ivshmem-layout.h"', 1))
        if not any("ivshmem-ring.h -> ivshmem-layout.h" in x
                   for x in check(tmp)):
            print("self-test: ivshmem-ring.h including the layout was not "
                  "found", file=sys.stderr)
            ok = False
    return ok


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..")
    if not self_test(root):
        return 1
    problems = check(root)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} place(s) in gst/ or tools/ reach into the "
              "core's private layout (README, \"Layout\")", file=sys.stderr)
        return 1
    print("gst/ and tools/ use no private header and read no field of the "
          "shared region")
    return 0


if __name__ == "__main__":
    sys.exit(main())
