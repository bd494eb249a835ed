#!/usr/bin/env python3
# gst-ivshmem lifecycle tests: a reader frozen past its lease (issue 17).
# SPDX-License-Identifier: MIT
#
#   python3 frozen.py NAME    (the meson suite 'lifecycle' runs each NAME)
#
# frozen-6s    a reader's gst-launch process SIGSTOPped for 6 s (twice its
#              lease) under a live producer, lossless then leaky, then
#              SIGCONT: it streams on in the same pipeline to EOS, with a
#              warning saying how long it was frozen and how many bytes it
#              lost, a DISCONT buffer after it, the loss in a QoS message
#              (the stats' lost-bytes) and a hole in the frames; with
#              on-evicted=error, the lossless producer's reader ends with
#              today's error instead
# frozen-20s   the same for 20 s, lossless and leaky
# viewer-paused  a viewer that keeps its lease but does not read for 10 s
#              (it waits 10 s on the clock before its first frame: identity
#              sync=true ts-offset=10 s) beside a second reader, under a
#              lossless producer: the producer warns that it waits for the
#              reader in slot N, naming the viewer's pid, and says when it
#              moves again; both readers get every frame
#
# The signals go to the gst-launch process itself (no wrapper).
#
# Mutation check (done once by hand, 2026-12-07): with the rejoin branch of
# gst_ivshmem_src_handle_read_error() disabled for lossless producers, the
# lossless round fails (the reader ends, exit 1, with "dropped this
# reader", before it reads on); with self->discont left FALSE in
# gst_ivshmem_src_reattach(), the DISCONT check fails in both rounds. With
# gst_ivshmem_sink_watch_hold() returning at once, viewer-paused fails.

import re
import signal
import sys
import time

sys.dont_write_bytecode = True    # no __pycache__ in the source tree
import lclib  # noqa: E402

MIB = 1024 * 1024
FPS = 30
FROZEN_RE = re.compile(r'WARNING: from element [^\n]*ivshmemsrc0: This reader '
                       r'was frozen for ([\d.]+) s[^\n]*lost (\d+) bytes')
# gst-launch prints a message's head and its structure in separate writes,
# so a checksum line of the streaming thread can fall between them (seen
# once in CI): the QoS message's fields may start on a later line.
QOS_RE = re.compile(r'from element "ivshmemsrc0" \(qos\): .*?dropped='
                    r'\(guint64\)(\d+)', re.S)


def live_producer(t, name, region, n, policy):
    return t.launch(name, 'videotestsrc is-live=true num-buffers=%d %s ! %s ! '
                    'ivshmemsink device=%s policy=%s'
                    % (n, lclib.STREAMS['A'], lclib.caps(lclib.SMALL), region,
                       policy))


# A checksum line may follow the start of a bus message that another
# thread printed without its newline yet ("Got message #230 from element
# "identity0" (property-notify): 0:00:27.243179298 f26e..."): not anchored
# at the start of the line.
ANY_FRAME_RE = re.compile(r'\d+:\d\d:\d\d\.\d+ ([0-9a-f]{40})$', re.M)


def watched_reader(t, name, region, props=''):
    """-v and identity: each buffer's flags in the output (discont); -m:
    the QoS message."""
    p = t.launch(name, '-v ivshmemsrc device=%s %s ! identity silent=false '
                 '! checksumsink sync=false' % (region, props), messages=True)
    p.frames = lambda: ANY_FRAME_RE.findall(p.stdout())
    return p


def freeze(t, seconds, policy, on_evicted=None):
    tag = '%s-%ds%s' % (policy, seconds, '-' + on_evicted if on_evicted
                        else '')
    n = FPS * (seconds + 12)
    ref = {'A': t.reference('A', n)}
    region = t.region(4 * MIB, tag)
    reader = watched_reader(t, 'reader-' + tag, region,
                            'on-evicted=%s' % on_evicted if on_evicted
                            else '')
    t.wait_playing(reader)
    t.wait_slots(region, [reader])
    prod = live_producer(t, 'producer-' + tag, region, n, policy)
    t.wait_frames(reader, 2 * FPS)
    reader.signal(signal.SIGSTOP)
    time.sleep(seconds)
    before = len(reader.frames())
    reader.signal(signal.SIGCONT)
    if on_evicted == 'error':
        t.check_error(reader, r'dropped this reader', 'a reader with '
                      'on-evicted=error, frozen %d s' % seconds)
        prod.kill()
        return
    t.wait_frames(reader, before + FPS, timeout=60)
    t.check(reader.running(), '%s ended after it was frozen' % reader.name)
    t.check_eos(prod, 60)
    if not t.check_eos(reader, 60):
        return
    out = reader.stdout()
    m = FROZEN_RE.search(out)
    if not t.check(m, '%s (%s): no warning "This reader was frozen for N s '
                   '... lost N bytes"' % (reader.name, policy)):
        return
    frozen, lost = float(m.group(1)), int(m.group(2))
    t.log('%s: frozen for %.1f s, lost %d bytes' % (reader.name, frozen, lost))
    # the freeze lasted at least what the test slept (the clock is
    # monotonic and runs on while the process is stopped)
    t.check(frozen >= seconds - 0.5, '%s says it was frozen for %.1f s, the '
            'test stopped it for %d s' % (reader.name, frozen, seconds))
    t.check(lost > 0, '%s lost 0 bytes after a %d s freeze' % (reader.name,
                                                                 seconds))
    after = out[m.end():]
    t.check('discont' in after, '%s: no DISCONT buffer after it joined again'
            % reader.name)
    q = QOS_RE.search(after)
    t.check(q and int(q.group(1)) == lost, '%s: the QoS message after the '
            'rejoin does not count the %d lost bytes (%s)'
            % (reader.name, lost, q.group(0) if q else 'no QoS message'))
    # a hole: the frames before the freeze, then later ones to the end, in
    # order (buffers downstream held in place may be torn: the source
    # warns about them, and they are left out). A leaky producer may lap
    # this reader again afterwards (the -v output slows it down): more
    # holes, each warned about, are its policy.
    if policy == 'lossless':
        t.check_runs(reader, ref, [('A', 0, None), ('A', None, n - 1)],
                     '%s, frozen %d s' % (reader.name, seconds),
                     allow_torn=True)
    else:
        runs = lclib.merge_runs([r for r in t.runs(reader, ref)
                                 if r[0] != '?'])
        t.check(len(runs) >= 2 and runs[0][1] == 0 and runs[-1][2] == n - 1
                and all(a[2] < b[1] for a, b in zip(runs, runs[1:])),
                '%s, frozen %d s: read %s; expected A[0..?], holes in '
                'order, ..A[?..%d]' % (reader.name, seconds,
                                       lclib.describe(runs), n - 1))


def frozen_6s(t):
    for policy, on_evicted in (('lossless', None), ('leaky', None),
                               ('lossless', 'error')):
        freeze(t, 6, policy, on_evicted)
        t.cleanup()


def frozen_20s(t):
    for policy in ('lossless', 'leaky'):
        freeze(t, 20, policy)
        t.cleanup()


def viewer_paused(t):
    n = FPS * 15
    ref = {'A': t.reference('A', n)}
    region = t.region(1 * MIB)
    reader = t.reader('reader', region)
    viewer = t.launch('viewer', 'ivshmemsrc device=%s ! identity sync=true '
                      'ts-offset=10000000000 ! checksumsink sync=false'
                      % region)
    for r in (reader, viewer):
        t.wait_playing(r)
    t.wait_slots(region, [reader, viewer])
    prod = live_producer(t, 'producer', region, n, 'lossless')
    t.wait_until(lambda: 'moved again after' in prod.text() or
                 not prod.running(), 'the producer saying the reader moved '
                 'again', timeout=90)
    text = prod.text()
    m = re.search(r'has waited ([\d.]+) s for the reader in slot (\d+) '
                  r'\(pid (\d+) on this machine\)', text)
    if t.check(m, 'the producer did not name the reader it waits for:\n%s'
               % lclib.tail(text[-2000:])):
        t.check(int(m.group(3)) == viewer.pid, 'the producer named pid %s, '
                'the paused viewer is %d (the other reader %d)'
                % (m.group(3), viewer.pid, reader.pid))
        t.check(re.search(r'reader in slot %s \(pid %d on this machine\) '
                          r'moved again after [\d.]+ s' % (m.group(2),
                                                           viewer.pid), text),
                'no message that the viewer moved again')
    t.check_eos(prod, 60)
    for r in (reader, viewer):
        if t.check_eos(r, 60):
            t.check_runs(r, ref, [('A', 0, n - 1)], '%s beside a viewer that '
                         'held the producer for 10 s' % r.name)


TESTS = {
    'viewer-paused': viewer_paused,
    'frozen-6s': frozen_6s,
    'frozen-20s': frozen_20s,
}

if __name__ == '__main__':
    lclib.main(TESTS)
