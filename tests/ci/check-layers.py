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
# and, inside the core, every include that points the wrong way between
# its folders (README, "Layout"):
#  - common/platform/ includes nothing of common/ring/;
#  - common/ring/ includes only platform/'s public headers, not its
#    private ones;
#  - the root of common/ (the status type) includes nothing of either;
# and every circle of calls between the core's .c files (a file calls a
# function another defines, which calls back, maybe through others): the
# core's files are layers, each calls only those below it.
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
#
# The core's folders, checked by mutation too: an include of
# ivshmem-clock.h (ring/) planted in common/platform/ivshmem-os-posix.c
# made it exit 1 naming that line (the platform library, built without
# ring/ on its include path, no longer compiled either); the self-test
# plants one wrong-way include per folder. The circle of calls: before the
# writer was cut into layers (ivshmem-publish.c below ivshmem-reclaim.c
# below ivshmem-spans.c below ivshmem-writer.c) it exited 1 naming the
# circle writer -> spans -> reclaim -> writer, and one between
# ivshmem-pci.c and ivshmem-region-pci.c (the sysfs root); the self-test
# plants a call from the slots back up into the reclaim.
import os
import re
import sys
import tempfile

PRIVATE = {
    "ivshmem-layout.h": "the region's layout (ABI), private to common/",
    "ivshmem-ring-private.h": "the ring's internals",
    "ivshmem-private.h": "the core's internals",
    "ivshmem-region-private.h": "the POSIX region back end's internals",
    "ivshmem-win32-private.h": "the Windows region back end's internals",
}
# The platform's headers that only platform/ itself (and tests) may use.
PLATFORM_PRIVATE = {"ivshmem-private.h", "ivshmem-region-private.h",
                    "ivshmem-win32-private.h"}
# The core's folders, lowest first: a file may include headers of its own
# folder and of the folders before it, never of one after it.
CORE_DIRS = ["", "platform", "ring"]
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


def core_header(name, common):
    """(folder, path) of the core's header `name`, or (None, None)."""
    for d in CORE_DIRS:
        path = os.path.join(common, d, name)
        if os.path.isfile(path):
            return d, path
    return None, None


def include_chain(name, common, seen=()):
    """The chain of common/ headers from `name` to a private one, or None."""
    if name in PRIVATE:
        return [name]
    _, path = core_header(name, common)
    if name in seen or path is None:
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
    problems += check_core(common)
    problems += call_circles(common)
    return problems


def check_core(common):
    """Includes between the core's folders that point the wrong way."""
    problems = []
    for level, d in enumerate(CORE_DIRS):
        folder = os.path.join(common, d)
        for fname in sorted(os.listdir(folder)):
            if not fname.endswith((".c", ".h")):
                continue
            rel = "/".join(x for x in ("common", d, fname) if x)
            with open(os.path.join(folder, fname), encoding="utf-8") as f:
                text = strip_comments_and_strings(f.read())
            for inc in INCLUDE.findall(text):
                where, _ = core_header(inc, common)
                if where is None:
                    continue
                if CORE_DIRS.index(where) > level:
                    problems.append(
                        f"{rel}: includes {inc} of common/{where}/, a layer "
                        f"above {'common/' + d + '/' if d else 'the root'} "
                        "(includes point down only: ring -> platform -> "
                        "the status type)")
                elif where != d and inc in PLATFORM_PRIVATE:
                    problems.append(
                        f"{rel}: includes {inc}, private to "
                        "common/platform/ (use its public header)")
    return problems


FUNC_DEF = re.compile(r"^(?!static\b)[A-Za-z_][\w \*]*\n(\w+) \(", re.M)


def call_circles(common):
    """Circles of calls between the core's .c files (GNU style: the name
    of a function it defines starts a line). A function defined in two
    files (the POSIX and the Windows back ends) belongs to both; a file
    that defines a name itself calls its own."""
    texts, defs = {}, {}
    for d in CORE_DIRS:
        folder = os.path.join(common, d)
        for fname in sorted(os.listdir(folder)):
            if not fname.endswith(".c"):
                continue
            rel = "/".join(x for x in (d, fname) if x)
            with open(os.path.join(folder, fname), encoding="utf-8") as f:
                texts[rel] = strip_comments_and_strings(f.read())
            for name in FUNC_DEF.findall(texts[rel]):
                defs.setdefault(name, set()).add(rel)
    edges = {f: {} for f in texts}
    for f, text in texts.items():
        used = set(re.findall(r"\b(ivshm_\w+)\b", text))
        for name in used:
            where = defs.get(name, set())
            if f in where:
                continue
            for g in where:
                edges[f].setdefault(g, []).append(name)
    # strongly connected components (Tarjan), those of more than one file
    index, low, stack, on, circles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for f in sorted(texts):
        if f not in index:
            visit(f)
    problems = []
    for comp in circles:
        calls = []
        for f in comp:
            for g in sorted(edges[f]):
                if g in comp:
                    calls.append(f"{f} -> {g} ({', '.join(sorted(set(edges[f][g]))[:3])})")
        problems.append("common/: a circle of calls between "
                        f"{', '.join(comp)}: " + "; ".join(calls))
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
        p = os.path.join(tmp, "common", "ring", "ivshmem-ring.h")
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
    # and one of each wrong-way include inside the core
    core_plants = {
        "common/platform/ivshmem-region.c": '#include "ivshmem-ring.h"\n',
        "common/ring/ivshmem-reader.c": '#include "ivshmem-private.h"\n',
        "common/ivshmem-status.c": '#include "ivshmem-os.h"\n',
    }
    for rel, line in core_plants.items():
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(os.path.join(root, "common"),
                            os.path.join(tmp, "common"))
            with open(os.path.join(tmp, rel), "a", encoding="utf-8") as f:
                f.write(line)
            if not any(x.startswith(rel + ":")
                       for x in check_core(os.path.join(tmp, "common"))):
                print(f"self-test: a wrong-way include planted in {rel} "
                      "was not found", file=sys.stderr)
                ok = False
    # and a call back up: the slots (below the writer's reclaim) calling it
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(os.path.join(root, "common"),
                        os.path.join(tmp, "common"))
        with open(os.path.join(tmp, "common", "ring", "ivshmem-slots.c"), "a",
                  encoding="utf-8") as f:
            f.write("\nvoid\nplanted (IvshmWriter * w)\n{\n"
                    "  ivshm_writer_reclaim (w, false);\n}\n")
        found = call_circles(os.path.join(tmp, "common"))
        if not any("ring/ivshmem-slots.c" in x and "ring/ivshmem-reclaim.c"
                   in x for x in found):
            print("self-test: a circle of calls planted between "
                  "ivshmem-slots.c and ivshmem-reclaim.c was not found",
                  file=sys.stderr)
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
        print(f"{len(problems)} place(s) reach into the core's private "
              "layout or include against its layers (README, \"Layout\")",
              file=sys.stderr)
        return 1
    print("gst/ and tools/ use no private header and read no field of the "
          "shared region; the core's includes point one way (ring -> "
          "platform -> status) and its files call in no circle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
