# gst-ivshmem lifecycle tests: helpers to run gst-launch-1.0 processes on
# /dev/shm regions, send them signals and check the streams they read.
# SPDX-License-Identifier: MIT
#
# Every element runs in a gst-launch-1.0 process of its own, started
# without a wrapper, so that a signal reaches the element's own process.
# A reader is `ivshmemsrc ! checksumsink`: it prints one SHA-1 per buffer.
# A producer is `videotestsrc pattern=ball` (every frame differs) with a
# background colour per stream, so each printed checksum names the stream
# and the frame it came from; the reference lists come from the same
# videotestsrc into checksumsink, without the ring.
#
# Tests do not assert timings: every wait has a generous limit and only
# ends a test when something never happened (a hang). Whatever a test
# started is killed, and its regions are removed, however it ends.

import mmap
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback

SKIP = 77
FRAME_RE = re.compile(r'^\d+:\d\d:\d\d\.\d+ ([0-9a-f]{40})$', re.M)
EOS_TEXT = 'Got EOS from element'
PLAYING_TEXT = 'Setting pipeline to PLAYING'

# One background colour per producer stream: the frames of A, B and C differ.
STREAMS = {
    'A': 'pattern=ball',
    'B': 'pattern=ball background-color=0xff0000ff',
    'C': 'pattern=ball background-color=0xff00ff00',
    'D': 'pattern=ball background-color=0xffff0000',
}
SMALL = (160, 120)      # 28,800 B per I420 frame
TIME_SCALE = float(os.environ.get('IVSHMEM_TEST_TIME_SCALE', '1'))


class Fail(Exception):
    pass


def caps(size):
    return 'video/x-raw,format=I420,width=%d,height=%d,framerate=30/1' % size


class Proc:
    """A gst-launch-1.0 process; stdout and stderr go to files."""

    def __init__(self, test, name, argv, env):
        self.test = test
        self.name = name
        self.argv = argv
        self.out_path = os.path.join(test.tmp, name + '.out')
        self.err_path = os.path.join(test.tmp, name + '.err')
        with open(self.out_path, 'wb') as out, open(self.err_path, 'wb') as err:
            self.popen = subprocess.Popen(argv, stdout=out, stderr=err,
                                          stdin=subprocess.DEVNULL, env=env)
        self.pid = self.popen.pid
        self.rc = None

    def stdout(self):
        with open(self.out_path, errors='replace') as f:
            return f.read()

    def text(self):
        with open(self.err_path, errors='replace') as f:
            return self.stdout() + f.read()

    def frames(self):
        return FRAME_RE.findall(self.stdout())

    def running(self):
        if self.rc is None:
            self.rc = self.popen.poll()
        return self.rc is None

    def signal(self, sig):
        if not self.running():
            raise Fail('%s (pid %d) ended before %s could be sent (exit %s)'
                       % (self.name, self.pid, signal.Signals(sig).name, self.rc))
        os.kill(self.pid, sig)
        self.test.log('%s %s (pid %d)' % (signal.Signals(sig).name, self.name,
                                          self.pid))

    def wait(self, timeout=60):
        """Waits for the process to end; a process still running is hung.
        After a first hang in a test, the next waits are short: the other
        processes of a hung stream are most likely hung too."""
        if self.test.hung:
            timeout = min(timeout, 5)
        try:
            self.rc = self.popen.wait(timeout * TIME_SCALE)
        except subprocess.TimeoutExpired:
            self.test.hung = True
            raise Fail('%s (pid %d) is still running after %d s: hung'
                       % (self.name, self.pid, timeout))
        return self.rc

    def kill(self):
        if self.running():
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.rc = self.popen.wait()

    def error_text(self):
        """gst-launch's ERROR: line and the debug info after it."""
        m = re.search(r'^ERROR: .*(?:\n.+){0,4}', self.text(), re.M)
        return m.group(0) if m else ''


class Test:
    """One test: its processes, regions and temporary files."""

    def __init__(self, name):
        self.name = name
        self.procs = []
        self.regions = []
        self.refs = {}
        self.errors = []
        self.hung = False
        self.t0 = time.monotonic()
        self.tmp = tempfile.mkdtemp(prefix='ivshmem-lc-%s-' % name)
        self.env = dict(os.environ)
        build = os.environ.get('IVSHMEM_TEST_BUILDDIR')
        if build and 'GST_REGISTRY_1_0' not in self.env:
            # one registry for this build's lifecycle tests, not the user's
            self.env['GST_REGISTRY_1_0'] = os.path.join(
                build, 'tests', 'lifecycle', 'registry.bin')
        self.env.setdefault('GST_DEBUG', 'ivshmem*:2')

    def log(self, msg):
        print('[%7.2f] %s' % (time.monotonic() - self.t0, msg), flush=True)

    # -- regions and processes -------------------------------------------

    def region(self, size, tag='r'):
        """A zeroed /dev/shm file of SIZE bytes, removed at the end."""
        if not os.path.isdir('/dev/shm'):
            raise SystemExit(SKIP)
        path = '/dev/shm/ivshmem-lc-%s-%d-%s' % (self.name, os.getpid(), tag)
        with open(path, 'wb') as f:
            f.truncate(size)
        self.regions.append(path)
        return path

    def launch(self, name, desc, debug=None, messages=False, eos=False):
        """MESSAGES: -m (print the bus messages); EOS: -e (SIGINT ends
        the stream with EOS instead of stopping the pipeline)."""
        argv = (['gst-launch-1.0'] + (['-m'] if messages else []) +
                (['-e'] if eos else []) + desc.split())
        env = self.env
        if debug:
            env = dict(env, GST_DEBUG=debug)
        p = Proc(self, name, argv, env)
        self.procs.append(p)
        self.log('started %s (pid %d): %s' % (name, p.pid, desc))
        return p

    def producer(self, name, region, stream, n, size=SMALL, sleep_us=0,
                 props='', **kw):
        slow = ' ! identity sleep-time=%d' % sleep_us if sleep_us else ''
        return self.launch(name, 'videotestsrc num-buffers=%d %s ! %s%s ! '
                           'ivshmemsink device=%s %s' % (n, STREAMS[stream],
                                                         caps(size), slow,
                                                         region, props), **kw)

    def reader(self, name, region, props='', **kw):
        return self.launch(name, 'ivshmemsrc device=%s %s ! checksumsink '
                           'sync=false' % (region, props), **kw)

    def reference(self, stream, n, size=SMALL):
        """The checksums of STREAM's first N frames, without the ring."""
        key = (stream, size)
        if key not in self.refs or len(self.refs[key]) < n:
            p = self.launch('reference-%s' % stream,
                            'videotestsrc num-buffers=%d %s ! %s ! checksumsink'
                            % (n, STREAMS[stream], caps(size)))
            if p.wait(120) != 0:
                raise Fail('the reference pipeline failed:\n' + p.text())
            self.refs[key] = p.frames()
            self.procs.remove(p)
        return self.refs[key][:n]

    def wait_until(self, cond, what, timeout=60):
        end = time.monotonic() + timeout * TIME_SCALE
        while not cond():
            if time.monotonic() > end:
                raise Fail('%s did not happen within %d s' % (what, timeout))
            time.sleep(0.05)

    def wait_frames(self, p, n, timeout=60, ref=None):
        """Waits until P has read N frames (of the reference REF only,
        if given); a P that ends before is a failure."""
        def count():
            f = p.frames()
            return len(f) if ref is None else len(set(f) & set(ref))

        def done():
            if count() >= n:
                return True
            if not p.running():
                raise Fail('%s ended (exit %s) after %d frames, before %d%s'
                           % (p.name, p.rc, count(), n, tail(p.error_text())))
            return False
        self.wait_until(done, '%s reading %d frames' % (p.name, n), timeout)

    def wait_playing(self, p, timeout=60):
        self.wait_until(lambda: PLAYING_TEXT in p.stdout() or not p.running(),
                        '%s reaching PLAYING' % p.name, timeout)
        if not p.running():
            raise Fail('%s ended at start:\n%s' % (p.name, p.text()))

    def wait_slots(self, region, procs, timeout=3):
        """Best effort: waits until each of PROCS holds a slot in REGION
        (by the slot's pid field); gives up quietly after TIMEOUT, as a
        reader of the old code claims no slot before a producer came."""
        pids = {p.pid for p in procs}
        end = time.monotonic() + timeout * TIME_SCALE
        while time.monotonic() < end:
            if pids <= slot_pids(region):
                return True
            time.sleep(0.05)
        time.sleep(0.5)
        return False

    # -- checks ---------------------------------------------------------

    def check(self, cond, msg):
        if not cond:
            self.errors.append(msg)
            self.log('FAILED: ' + msg)
        return cond

    def check_eos(self, p, timeout=60):
        """P ends by itself with EOS and exit code 0."""
        try:
            rc = p.wait(timeout)
        except Fail as e:
            self.check(False, str(e))
            return False
        return self.check(rc == 0 and EOS_TEXT in p.stdout(),
                          '%s ended with exit %s%s; expected EOS and exit 0%s'
                          % (p.name, rc, '' if EOS_TEXT in p.stdout()
                             else ' without EOS', tail(p.error_text())))

    def check_error(self, p, pattern, what, timeout=60):
        """P ends with an error whose text matches PATTERN."""
        try:
            rc = p.wait(timeout)
        except Fail as e:
            self.check(False, '%s: %s' % (what, e))
            return False
        err = p.error_text()
        return self.check(rc != 0 and re.search(pattern, err, re.I | re.S),
                          '%s: %s ended with exit %s and %s; expected an error '
                          'matching /%s/' % (what, p.name, rc,
                                             ('error:\n' + err) if err
                                             else 'no error', pattern))

    def runs(self, p, streams):
        """P's frames as runs [(stream, first, last)], each run a
        consecutive stretch of one stream's frames. A frame of no stream
        (torn, or foreign) is a run ('?', k, k), k its index in P's output.
        STREAMS: {name: reference list}."""
        where = {}
        for s, ref in streams.items():
            for i, c in enumerate(ref):
                where[c] = (s, i)
        out = []
        for k, c in enumerate(p.frames()):
            s, i = where.get(c, ('?', k))
            if out and out[-1][0] == s and out[-1][2] + 1 == i:
                out[-1] = (s, out[-1][1], i)
            else:
                out.append((s, i, i))
        return out

    def check_runs(self, p, streams, expect, what, allow_torn=False,
                   overwritten=0):
        """P's frames must match EXPECT, a list of (stream, first, last)
        where first/last may be None (any value, the run must exist).
        ALLOW_TORN: frames of no stream are left out first (a reader that
        said it may have handed out overwritten buffers). OVERWRITTEN: the
        number of held buffers the reader said may have been overwritten;
        up to that many output frames that stand exactly in a gap of one
        stream (its frames before and after them continue across it) are
        taken as those buffers, whatever they show: torn data, or a whole
        frame the new producer wrote at the same place."""
        got = self.runs(p, streams)
        if overwritten:
            got = fill_overwritten(got, overwritten)
        if allow_torn:
            got = merge_runs([r for r in got if r[0] != '?'])
        ok = len(got) == len(expect) and all(
            g[0] == e[0] and e[1] in (None, g[1]) and e[2] in (None, g[2])
            for g, e in zip(got, expect))
        return self.check(ok, '%s: %s read %s; expected %s%s' % (
            what, p.name, describe(got, len(p.frames())), describe(expect),
            '' if all(r[0] != '?' for r in got) else
            ' (?[i..j]: output frames i..j belong to no stream: torn or '
            'foreign data)'))

    # -- the end ----------------------------------------------------------

    def cleanup(self):
        for p in self.procs:
            if p.running():
                self.log('killing %s (pid %d), still running' % (p.name, p.pid))
            p.kill()
        for r in self.regions:
            try:
                os.unlink(r)
            except FileNotFoundError:
                pass

    def dump(self):
        for p in self.procs:
            text = p.text()
            lines = [line for line in text.splitlines()
                     if not FRAME_RE.match(line)]
            sys.stdout.write('---- %s (pid %d, exit %s, %d frames): %s\n%s\n'
                             % (p.name, p.pid, p.rc, len(p.frames()),
                                ' '.join(p.argv[1:]),
                                '\n'.join(lines[-40:])))


def fill_overwritten(runs, budget):
    """Merges RUNS across runs that exactly fill a gap of the stream around
    them (A[0..9], B[0..1], A[12..19] -> A[0..19]; the runs in the gap may
    be several, torn or of any stream), up to BUDGET frames in all."""
    out = list(runs)
    i = 1
    while i + 1 < len(out):
        a = out[i - 1]
        n, merged = 0, False
        for j in range(i, len(out)):
            b = out[j]
            if j > i and b[0] == a[0] and a[0] != '?':
                if b[1] - a[2] - 1 == n and n <= budget:
                    budget -= n
                    out[i - 1:j + 1] = [(a[0], a[1], b[2])]
                    merged = True
                break
            n += b[2] - b[1] + 1
            if n > budget:
                break
        if not merged:
            i += 1
    return out


def merge_runs(runs):
    """Joins runs that continue each other (once torn ones are out)."""
    out = []
    for r in runs:
        if out and out[-1][0] == r[0] and out[-1][2] + 1 == r[1]:
            out[-1] = (r[0], out[-1][1], r[2])
        else:
            out.append(r)
    return out


def tail(text):
    return (':\n' + text) if text else ''


def describe(runs, n=None):
    s = ', '.join('%s[%s..%s]' % (r[0], '?' if r[1] is None else r[1],
                                  '?' if r[2] is None else r[2]) for r in runs)
    return (s or 'nothing') + ('' if n is None else ' (%d frames)' % n)


def header_u32(region, offset):
    """A u32 of the region's header (PROTOCOL.md section 4)."""
    with open(region, 'rb') as f:
        f.seek(offset)
        return struct.unpack('<I', f.read(4))[0]


def slot_pids(region):
    """The pid fields of the taken reader slots (PROTOCOL.md section 5)."""
    pids = set()
    try:
        with open(region, 'rb') as f:
            m = mmap.mmap(f.fileno(), 0x2000, mmap.MAP_SHARED, mmap.PROT_READ)
    except (OSError, ValueError):
        return pids
    with m:
        for i in range(32):
            off = 0x1000 + 128 * i
            owner, = struct.unpack_from('<Q', m, off + 0x08)
            pid, = struct.unpack_from('<Q', m, off + 0x28)
            if owner:
                pids.add(pid)
    return pids


def main(tests):
    """Runs the test named by argv[1] from TESTS {name: function(Test)}."""
    if len(sys.argv) != 2 or sys.argv[1] not in tests:
        sys.exit('usage: %s %s' % (sys.argv[0], '|'.join(sorted(tests))))
    if shutil.which('gst-launch-1.0') is None:
        print('SKIP: gst-launch-1.0 is not installed (gstreamer1.0-tools)')
        sys.exit(SKIP)
    t = Test(sys.argv[1])

    def on_term(signum, frame):
        raise Fail('killed by signal %d (the test timed out?)' % signum)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        tests[sys.argv[1]](t)
    except Fail as e:
        t.errors.append(str(e))
        t.log('FAILED: %s' % e)
    except Exception:
        t.errors.append(traceback.format_exc())
        t.log('FAILED:\n' + traceback.format_exc())
    finally:
        t.cleanup()
    if t.errors:
        t.dump()
        print('\n%s: %d failure(s):' % (t.name, len(t.errors)))
        for e in t.errors:
            print(' - ' + e)
        status = 1
    else:
        print('%s: passed' % t.name)
        status = 0
    shutil.rmtree(t.tmp, ignore_errors=True)
    sys.exit(status)
