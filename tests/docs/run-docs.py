#!/usr/bin/env python3
# gst-ivshmem: runs the commands of the documentation
# SPDX-License-Identifier: MIT
"""run-docs.py FILE.md... : runs every ```sh block of the given files as
its <!-- docs-test: ... --> comment says (see docblocks.py), so that the
docs stay true. Exit 0 pass, 1 fail, 77 when nothing could run.

Display and sound sinks become checksumsink, and the hardware sources
(camera, microphone, X11 screen) test sources; each substitution is
printed. Commands that need a guest run in a QEMU guest of tests/vm.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "vm"))
import docblocks  # noqa: E402
import ivshmemvm as vm  # noqa: E402

SRCDIR = os.path.abspath(os.environ.get("IVSHMEM_TEST_SRCDIR",
                                        os.path.join(HERE, "..", "..")))
BUILDDIR = os.path.abspath(os.environ.get("IVSHMEM_TEST_BUILDDIR",
                                          os.path.join(SRCDIR, "build")))
MiB = 1 << 20
CHECKSUM_RE = re.compile(r"^\S*\s*\d+:\d\d:\d\d\.\d{9} [0-9a-f]{32,64}$",
                         re.M)
PROPS = r"(?:\s+[\w-]+=\S+)*"

# (pattern, replacement, why): display and sound sinks, and the sources
# that need hardware the CI machine and its guests do not have.
SUBSTITUTIONS = [
    (r"\b(?:autovideosink|xvimagesink|ximagesink|waylandsink)" + PROPS,
     "checksumsink", "display sink"),
    (r"\b(?:autoaudiosink|pulsesink|alsasink)" + PROPS, "checksumsink",
     "sound sink"),
    (r"\bv4l2src" + PROPS + r"(?=\s*!\s*image/jpeg)",
     "videotestsrc is-live=true ! jpegenc", "camera (MJPEG)"),
    (r"\bv4l2src" + PROPS, "videotestsrc is-live=true", "camera"),
    (r"\bpulsesrc" + PROPS, "audiotestsrc is-live=true samplesperbuffer=480",
     "microphone"),
    (r"\bximagesrc" + PROPS, "videotestsrc is-live=true", "X11 screen"),
]

SUDO_SHIM = 'sudo() { "$@"; }\n'


class Failed(Exception):
    pass


def log(msg):
    print(msg, flush=True)


def substitute(cmd):
    for pat, rep, why in SUBSTITUTIONS:
        new = re.sub(pat, rep, cmd)
        if new != cmd:
            found = re.search(pat, cmd).group(0)
            log("    substituted (%s): %s  ->  %s" % (why, found, rep))
            cmd = new
    return cmd


def device_of(cmd):
    m = re.search(r"\b(?:ivshmemsink|ivshmemsrc)\b[^!]*?\bdevice=(\S+)", cmd)
    return m.group(1) if m else ""


def role_of(cmd):
    if "ivshmemsink" in cmd:
        return "producer"
    if "ivshmemsrc" in cmd:
        return "consumer"
    return None


def host_env():
    env = dict(os.environ)
    env.update({
        "GST_PLUGIN_PATH_1_0": os.path.join(BUILDDIR, "gst"),
        "GST_REGISTRY_1_0": os.path.join(WORK, "registry.bin"),
        "GST_PAGER": "cat", "PAGER": "cat",
        "PATH": os.path.join(BUILDDIR, "tools") + ":" + env["PATH"],
    })
    return env


def shell(cmd):
    return (SUDO_SHIM if os.geteuid() == 0 else "") + cmd


def run_host(cmd, cwd, env, timeout=900):
    log("  $ " + cmd)
    made = [f for f in re.findall(r"/dev/shm/[\w.-]+", cmd)
            if not os.path.exists(f)]
    try:
        p = subprocess.run(["sh", "-c", shell(cmd)], cwd=cwd, env=env,
                           capture_output=True, text=True, timeout=timeout)
    finally:
        for f in made:
            if os.path.exists(f):
                os.unlink(f)
    out = (p.stdout + p.stderr).rstrip()
    if out:
        log("\n".join("    | " + line for line in out.splitlines()[-25:]))
    if p.returncode != 0:
        raise Failed("exit %d: %s" % (p.returncode, cmd))


def clone(block):
    """A fresh copy of the source tree for each block, as a new user's
    clone."""
    path = os.path.join(WORK, "clone-%s-%d" % (
        os.path.basename(block.path).split(".")[0], block.line))
    if not os.path.isdir(path):
        os.makedirs(path)
        files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard",
                                "-z"], cwd=SRCDIR, capture_output=True,
                               check=True).stdout
        archive = subprocess.run(["tar", "-cf", "-", "--no-recursion",
                                  "--null", "-T", "-"], cwd=SRCDIR,
                                 input=files, capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-xf", "-", "-C", path], input=archive,
                       check=True)
        log("  (a fresh copy of the source tree: %s)" % path)
    return path


# -- streams: one producer and one consumer, on the host or in guests -------

def guest_run(run, name, cmds, devices, timeout):
    """Runs cmds (prefix, command) one after the other in a guest; returns
    the output of each by prefix."""
    script = ""
    for prefix, cmd, limit in cmds:
        script += ("timeout %d sh -c %s >/tmp/%s.out 2>&1; echo \"%s-RC $?\"\n"
                   "sed 's/^/%s: /' /tmp/%s.out\n"
                   % (limit, shlex.quote(SUDO_SHIM + cmd), prefix, prefix,
                      prefix, prefix))
    return run.guest(name, script, devices=devices, timeout=timeout).start()


def guest_output(res, prefix):
    out = "\n".join(line[len(prefix) + 2:] for line in res.lines
                    if line.startswith(prefix + ": "))
    rc = next((line.split()[1] for line in res.lines
               if line.startswith(prefix + "-RC ")), None)
    return rc, out


def slot_of(dev):
    m = re.fullmatch(r"(?:[0-9a-f]{4}:)?00:([0-9a-f]{2})\.0", dev)
    return int(m.group(1), 16) if m else 4


def check_stream(name, prod, cons):
    n = len(CHECKSUM_RE.findall(cons[1]))
    for what, (rc, out) in (("producer", prod), ("consumer", cons)):
        if rc not in ("0", "124", 0, 124, None, -9, -15):
            raise Failed("stream %s: the %s exited %s:\n%s"
                         % (name, what, rc, out[-3000:]))
        if "ERROR" in out:
            raise Failed("stream %s: the %s reported an error:\n%s"
                         % (name, what, out[-3000:]))
    if n < 3:
        raise Failed("stream %s: the consumer received %d buffers:\n%s"
                     % (name, n, cons[1][-3000:]))
    log("  stream %s: the consumer received %d buffers" % (name, n))


def run_stream(run, name, prod, cons):
    try:
        _run_stream(run, name, prod, cons)
    finally:
        for f in run.shm_files:
            if os.path.exists(f):
                os.unlink(f)
        del run.shm_files[:]


def _run_stream(run, name, prod, cons):
    (pw, pcmd), (cw, ccmd) = prod, cons
    log("  stream %s: producer (%s) $ %s" % (name, pw, pcmd))
    log("  stream %s: consumer (%s) $ %s" % (name, cw, ccmd))
    pcmd, ccmd = substitute(pcmd), substitute(ccmd)
    env = host_env()
    if pw == "host" and cw == "host":
        path = device_of(ccmd)
        if path.startswith("/dev/shm/") and os.path.exists(path):
            raise Failed("%s exists already; the docs test would clobber it"
                         % path)
        run.shm_files.append(path)
        p = run.popen(["sh", "-c", pcmd], timeout=60)
        for _ in range(100):
            if os.path.exists(path):
                break
            time.sleep(0.1)
        c = subprocess.run(["timeout", "10", "sh", "-c", ccmd], env=env,
                           capture_output=True, text=True)
        p.terminate()
        prc, pout = run.finish(p, 10)
        check_stream(name, (prc, pout), (c.returncode, c.stdout + c.stderr))
        return
    # At least one side in a guest: the host file behind the guest's device
    host_cmd = pcmd if pw == "host" else ccmd if cw == "host" else None
    path = device_of(host_cmd) if host_cmd else run.shm(name, 16 * MiB)
    if host_cmd:
        if os.path.exists(path):
            raise Failed("%s exists already; the docs test would clobber it"
                         % path)
        with open(path, "wb") as f:
            f.truncate(16 * MiB)
        run.shm_files.append(path)
    guests = {}
    for where, cmd, prefix in ((pw, pcmd, "prod"), (cw, ccmd, "cons")):
        if where.startswith("guest"):
            dev = (path, 16 * MiB, slot_of(device_of(cmd)))
            guests.setdefault(where, ([], [dev]))[0].append(
                (prefix, cmd, 20))
    if pw == "host":
        p = run.popen(["sh", "-c", pcmd], timeout=180)
    started = {w: guest_run(run, "%s-%s" % (name, w), c, d, 150)
               for w, (c, d) in sorted(guests.items())}
    if cw == "host":
        time.sleep(1)
        c = run.popen(["sh", "-c", ccmd], timeout=180)
    results = {w: g.wait() for w, g in started.items()}
    for w, res in results.items():
        if res.rc is None:
            raise Failed("guest %s of stream %s printed no result; console "
                         "log: %s" % (w, name, res.log_path))
    if pw == "host":
        p.terminate()
        prod = run.finish(p, 10)
    else:
        prod = guest_output(results[pw], "prod")
    if cw == "host":
        time.sleep(2)
        c.terminate()
        cons = run.finish(c, 10)
    else:
        cons = guest_output(results[cw], "cons")
    check_stream(name, prod, cons)


def run_guest_commands(run, block_cmds):
    """Commands that inspect a guest: one guest, one device (00:04.0) with a
    host producer streaming into it."""
    path = run.shm("guest", 16 * MiB)
    p = run.popen(["gst-launch-1.0", "-q", "videotestsrc", "is-live=true",
                   "!", "video/x-raw,format=I420,width=320,height=240",
                   "!", "ivshmemsink", "device=" + path], timeout=300)
    cmds = [("c%d" % i, cmd, 60) for i, cmd in enumerate(block_cmds)]
    for _, cmd, _ in cmds:
        log("  (guest) $ " + cmd)
    res = guest_run(run, "commands", cmds, [(path, 16 * MiB, 4)],
                    240).wait()
    p.terminate()
    run.finish(p, 10)
    if res.rc is None:
        raise Failed("the guest printed no result; console log: %s"
                     % res.log_path)
    for prefix, cmd, _ in cmds:
        rc, out = guest_output(res, prefix)
        if out:
            log("\n".join("    | " + line
                          for line in out.splitlines()[-25:]))
        if rc != "0":
            raise Failed("in the guest, exit %s: %s" % (rc, cmd))


# -- the plan ----------------------------------------------------------------

def meson_names():
    names = {"ci"}
    for dirpath, _, files in os.walk(SRCDIR):
        if "meson.build" in files and "/build" not in dirpath[len(SRCDIR):]:
            with open(os.path.join(dirpath, "meson.build")) as f:
                text = f.read()
            names.update(re.findall(r"\btest\(\s*'([^']+)'", text))
            names.update(re.findall(r"\bsuite\s*:\s*'([^']+)'", text))
            # tests/vm registers vm-NAME for each scenario of a dict
            names.update("vm-" + n for n in
                         re.findall(r"^\s*'(\w+)' : \[", text, re.M))
    return names


def plan(paths):
    """Reads the blocks; returns (streams, work) or raises Failed for a
    block without a way to run."""
    known = meson_names()
    rule_file = os.path.join(SRCDIR, "udev", "70-ivshmem.rules")
    with open(rule_file) as f:
        rule = [l for l in f.read().splitlines()
                if l.startswith("SUBSYSTEM==")]
    streams, work = {}, []
    for path in paths:
        for b in docblocks.blocks(path):
            if b.text.strip().startswith("SUBSYSTEM==") and \
                    b.text.strip() not in rule:
                raise Failed("%s: the udev rule differs from %s"
                             % (b.where(), rule_file))
            if docblocks.looks_like_commands(b):
                raise Failed("%s: commands in a block not tagged ```sh"
                             % b.where())
            if b.lang != "sh":
                continue
            d = b.directive or "host"
            m = re.match(r"covered by (\S+?):? ", d + " ")
            if m:
                if m.group(1) not in known:
                    raise Failed("%s: covered by %s, but there is no such "
                                 "test or suite" % (b.where(), m.group(1)))
                work.append(("covered", b, d))
                continue
            if d.startswith("skip:"):
                work.append(("skip", b, d))
                continue
            tokens = d.split()
            for i, cmd in enumerate(b.commands):
                tok = tokens[min(i, len(tokens) - 1)]
                where, _, names = tok.partition(":")
                if where == "ci" or where == "by":
                    if where == "by" and names not in known:
                        raise Failed("%s: covered by %s, but there is no "
                                     "such test or suite" % (b.where(),
                                                             names))
                    work.append(("covered", b, "covered by %s: %s" % (
                        names or "ci (CI's own command, .ci/run)", cmd)))
                    continue
                if where not in ("host", "clone", "guest", "guest2"):
                    raise Failed("%s: unknown docs-test place %r"
                                 % (b.where(), where))
                if not names:
                    work.append((where, b, cmd))
                    continue
                role = role_of(cmd)
                if role is None:
                    raise Failed("%s: %s is in stream %s but neither "
                                 "produces nor consumes" % (b.where(), cmd,
                                                            names))
                for n in names.split("+"):
                    s = streams.setdefault(n, {})
                    if role in s:
                        raise Failed("%s: stream %s has two %ss"
                                     % (b.where(), n, role))
                    s[role] = (where, cmd)
    for n, s in streams.items():
        if len(s) != 2:
            raise Failed("stream %s has only a %s" % (n, list(s)[0]))
    return streams, work


def main(argv):
    global WORK
    paths = [os.path.join(SRCDIR, p) for p in argv[1:]]
    WORK = os.path.join(BUILDDIR, "tests", "docs", "work-" +
                        "-".join(os.path.basename(p).split(".")[0]
                                 for p in argv[1:]))
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    try:
        streams, work = plan(paths)
    except Failed as e:
        print("FAIL: docs: %s" % e)
        return 1
    ran = 0
    failures = []
    root = os.geteuid() == 0
    if root:
        log("(sudo runs the command itself: the test runs as root)")
    guest_cmds = []
    for kind, b, what in work:
        try:
            if kind == "covered":
                log("%s: %s" % (b.where(), what))
            elif kind == "skip":
                log("%s: SKIPPED, %s" % (b.where(), what[5:].strip()))
            elif "sudo " in what and not root:
                log("%s: SKIPPED (needs root): %s" % (b.where(), what))
            elif kind == "guest":
                guest_cmds.append(what)
            else:
                log("%s (%s):" % (b.where(), kind))
                cwd = clone(b) if kind == "clone" else SRCDIR
                env = host_env() if kind == "host" else dict(
                    os.environ, GST_PAGER="cat", PAGER="cat")
                run_host(what, cwd, env)
                ran += 1
        except (Failed, subprocess.TimeoutExpired) as e:
            failures.append("%s: %s" % (b.where(), e))
            log("  FAILED: %s" % e)
    if streams or guest_cmds:
        try:
            with vm.Run("docs", vm.Paths(BUILDDIR, SRCDIR)) as run:
                for name, s in sorted(streams.items()):
                    try:
                        run_stream(run, name, s["producer"], s["consumer"])
                        ran += 1
                    except Failed as e:
                        failures.append("stream %s: %s" % (name, e))
                        log("  FAILED: %s" % e)
                if guest_cmds:
                    try:
                        run_guest_commands(run, guest_cmds)
                        ran += len(guest_cmds)
                    except Failed as e:
                        failures.append("guest commands: %s" % e)
                        log("  FAILED: %s" % e)
                run.failed = bool(failures)
        except vm.Skip as e:
            if not failures:
                print("SKIP: docs: the streams and the guest commands could "
                      "not run (%s); %d other commands passed" % (e, ran))
                return 77
            failures.append("streams and guest commands could not run: %s"
                            % e)
    if failures:
        print("FAIL: docs: %d of the runs failed:\n  %s"
              % (len(failures), "\n  ".join(failures)))
        return 1
    if ran == 0:
        print("SKIP: docs: nothing to run in %s" % ", ".join(argv[1:]))
        return 77
    shutil.rmtree(WORK, ignore_errors=True)   # the clones' builds
    print("PASS: docs: %s (%d commands and streams ran)"
          % (", ".join(argv[1:]), ran))
    return 0


WORK = None

if __name__ == "__main__":
    sys.exit(main(sys.argv))
