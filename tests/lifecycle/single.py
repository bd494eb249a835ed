#!/usr/bin/env python3
# gst-ivshmem lifecycle tests: one event of a VM's life at a time.
# SPDX-License-Identifier: MIT
#
#   python3 single.py NAME    (the meson suite 'lifecycle' runs each NAME)
#
# waiting-readers    two readers wait on a zeroed 16 MiB region before the
#                    producer starts: both read all 200 frames (5 rounds)
# reap-killed        40 readers SIGKILLed one after another beside a slow
#                    producer: a new reader still attaches
# slots-32-live      with dead slots about, 32 live readers attach; the
#                    33rd fails with an error saying that 32 are live
# producer-paused    a producer SIGSTOPped for 4 s: its reader reads every
#                    buffer to EOS
# paused-policies    the same with on-producer-restart=eos and =error: the
#                    reader ends with EOS, or with an error naming the
#                    silent producer
# info-after-eos     ivshmem-info finds no problem in a region at EOS
# takeover           a producer SIGKILLed and a new one started at once: it
#                    says it waits, takes over; the reader follows
# takeover-held      the same while zero-copy buffers wait in the reader's
#                    queue: none of them is overwritten by the new producer
# producers-together two producers started at once, on a zeroed region and
#                    on a dead producer's: one streams, the other fails
#                    with a clear error (10 rounds)
# stale-producer     a producer SIGSTOPped past its lease, another takes
#                    over, the old one continues: it stops with an error
#                    and never writes into the new session

import os
import re
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True    # no __pycache__ in the source tree
import lclib  # noqa: E402
from lclib import Fail  # noqa: E402

MIB = 1024 * 1024
FOLLOW = 'on-producer-restart=follow'
WAIT_RE = (r'wait\w*[^\n]*(previous|old|other) producer|'
           r'(previous|old|other) producer[^\n]*(lease|wait)')
# how many of the slots' holders are alive: "32 live", "(32 by readers
# whose heartbeat moves)"; not "all 32 reader slots are taken"
LIVE_RE = (r'\b32\b (live|by (live )?readers)|\blive\b[^\n]*\b32\b|'
           r'\b32\b[^\n]*\blive\b')


def waiting_readers(t):
    n = 200
    size = (320, 240)
    ref = {'A': t.reference('A', n, size)}
    for rnd in range(1, 6):
        region = t.region(16 * MIB, 'round%d' % rnd)
        readers = [t.reader('round%d-reader%d' % (rnd, i), region)
                   for i in (1, 2)]
        for r in readers:
            t.wait_playing(r)
        t.wait_slots(region, readers)
        prod = t.producer('round%d-producer' % rnd, region, 'A', n, size)
        t.check_eos(prod)
        for r in readers:
            if t.check_eos(r):
                t.check_runs(r, ref, [('A', 0, n - 1)],
                             'round %d: a reader that waited before the '
                             'producer started' % rnd)
        t.cleanup()


def kill_readers(t, region, count, batch=4):
    """Starts COUNT readers, BATCH at a time; each is SIGKILLed once it
    has read a frame (so it holds a slot). Returns False if one of them
    could not attach, after recording why."""
    started = 0
    while started < count:
        group = [t.reader('doomed%02d' % (started + i), region)
                 for i in range(min(batch, count - started))]
        for r in group:
            try:
                t.wait_frames(r, 1, 90)
            except Fail as e:
                t.check(False, 'killed reader number %d of %d could not '
                        'attach: %s' % (started + group.index(r) + 1, count, e))
                return False
        for r in group:
            r.signal(signal.SIGKILL)
            r.wait()
            t.procs.remove(r)
        started += len(group)
    return True


def reap_killed(t):
    n = 1500
    ref = {'A': t.reference('A', n)}
    region = t.region(8 * MIB)
    prod = t.producer('producer', region, 'A', n, sleep_us=50000)
    kill_readers(t, region, 40)
    last = t.reader('reader-after', region, 'num-buffers=10')
    if t.check_eos(last, 90):
        t.check_runs(last, ref, [('A', None, None)],
                     'a reader after 40 killed ones')
        t.check(len(last.frames()) == 10, 'reader-after read %d frames, not 10'
                % len(last.frames()))
    t.check(prod.running(), 'the producer ended early: %s' % prod.error_text())


def slots_32_live(t):
    n = 1500
    ref = {'A': t.reference('A', n)}
    region = t.region(8 * MIB)
    prod = t.producer('producer', region, 'A', n, sleep_us=50000, eos=True)
    if not kill_readers(t, region, 4):
        return
    live = [t.reader('live%02d' % i, region) for i in range(1, 33)]
    for i, r in enumerate(live):
        try:
            t.wait_frames(r, 1, 120)
        except Fail as e:
            t.check(False, 'live reader %d of 32 could not attach (4 dead '
                    'slots about): %s' % (i + 1, e))
            return
    extra = t.reader('reader33', region)
    if t.check_error(extra, r'slots?\b[^\n]*\btaken', 'the 33rd live reader',
                     90):
        t.check(re.search(LIVE_RE, extra.error_text(), re.I),
                'the 33rd reader\'s error does not say that 32 readers are '
                'live (no /%s/):\n%s' % (LIVE_RE, extra.error_text()))
    prod.signal(signal.SIGINT)      # -e: ends the stream with EOS
    t.check_eos(prod)
    for r in live:
        if t.check_eos(r):
            t.check_runs(r, ref, [('A', None, None)], 'a live reader')


def producer_paused(t):
    n = 150
    ref = {'A': t.reference('A', n)}
    region = t.region(1 * MIB)
    prod = t.producer('producer', region, 'A', n, sleep_us=20000)
    reader = t.reader('reader', region)
    t.wait_frames(reader, 20)
    prod.signal(signal.SIGSTOP)
    time.sleep(4)
    prod.signal(signal.SIGCONT)
    t.check_eos(prod)
    if t.check_eos(reader, 30):
        t.check_runs(reader, ref, [('A', 0, n - 1)],
                     'the reader of a producer paused for 4 s')


def paused_policies(t):
    n = 300
    ref = {'A': t.reference('A', n)}
    for policy in ('eos', 'error'):
        region = t.region(1 * MIB, policy)
        prod = t.producer('producer-%s' % policy, region, 'A', n,
                          sleep_us=20000)
        reader = t.reader('reader-%s' % policy, region,
                          'on-producer-restart=%s' % policy)
        t.wait_frames(reader, 20)
        prod.signal(signal.SIGSTOP)
        if policy == 'eos':
            if t.check_eos(reader):
                t.check_runs(reader, ref, [('A', 0, None)],
                             'on-producer-restart=eos, producer stopped')
        else:
            t.check_error(reader, r'producer|heartbeat|silent',
                          'on-producer-restart=error, producer stopped')
        prod.signal(signal.SIGCONT)
        t.cleanup()


def info_after_eos(t):
    info = os.path.join(os.environ.get('IVSHMEM_TEST_BUILDDIR', 'build'),
                        'tools', 'ivshmem-info')
    if not os.access(info, os.X_OK):
        raise Fail('%s is not built' % info)
    region = t.region(1 * MIB)
    prod = t.producer('producer', region, 'A', 20)
    reader = t.reader('reader', region)
    t.check_eos(prod)
    t.check_eos(reader)
    res = subprocess.run([info, '--no-wait', region], capture_output=True,
                         text=True, timeout=60)
    t.log('ivshmem-info (exit %d):\n%s%s' % (res.returncode, res.stdout,
                                              res.stderr))
    problems = re.search(r'^problems:(.*?)(?:^\S|\Z)', res.stdout, re.M | re.S)
    listed = [] if not problems else [
        line.strip() for line in problems.group(1).splitlines()
        if line.strip() and line.strip().strip('()') not in ('none', '-')]
    t.check(res.returncode == 0, 'ivshmem-info exited with %d'
            % res.returncode)
    t.check(not listed, 'ivshmem-info reports problems in a region whose '
            'stream reached EOS: %s' % '; '.join(listed))


def takeover(t):
    ref = {'A': t.reference('A', 1500), 'B': t.reference('B', 60)}
    region = t.region(1 * MIB)
    old = t.producer('producer-A', region, 'A', 1500, sleep_us=30000)
    reader = t.reader('reader', region, FOLLOW)
    t.wait_frames(reader, 10)
    old.signal(signal.SIGKILL)
    new = t.producer('producer-B', region, 'B', 60, sleep_us=10000,
                     debug='ivshmem*:4', messages=True)
    t.check_eos(new)
    t.check(re.search(WAIT_RE, new.text(), re.I),
            'producer-B did not say that it waits for the previous '
            'producer\'s lease (no message matching /%s/)' % WAIT_RE)
    if t.check_eos(reader):
        t.check_runs(reader, ref, [('A', 0, None), ('B', 0, 59)],
                     'the reader (follow) across a takeover')


def takeover_held(t):
    ref = {'A': t.reference('A', 1500), 'B': t.reference('B', 100)}
    region = t.region(1 * MIB)
    old = t.producer('producer-A', region, 'A', 1500)
    # zero-copy buffers of A's session wait in the queue, pointing into the
    # ring, while B takes over and writes its records there
    reader = t.launch('reader-holding', 'ivshmemsrc device=%s %s ! queue '
                      'max-size-buffers=8 ! identity sleep-time=50000 ! '
                      'checksumsink sync=false' % (region, FOLLOW))
    t.wait_frames(reader, 10)
    old.signal(signal.SIGKILL)
    new = t.producer('producer-B', region, 'B', 100)
    t.check_eos(new)
    if t.check_eos(reader):
        t.check_runs(reader, ref, [('A', 0, None), ('B', 0, 99)],
                     'a reader holding zero-copy buffers across a takeover')


def stop_in_lease_wait(t, prods):
    """SIGSTOPs each producer 50 ms after it starts going to PAUSED (the
    sink's start(), where it waits at least 250 ms for the old lease)."""
    seen = {}
    end = time.monotonic() + 60
    while len(seen) < len(prods) or any(seen.values()):
        if time.monotonic() > end:
            raise Fail('the producers did not start within 60 s')
        for p in prods:
            if p not in seen and 'to PAUSED' in p.stdout():
                seen[p] = time.monotonic() + 0.05
            elif p in seen and seen[p] and time.monotonic() >= seen[p]:
                p.signal(signal.SIGSTOP)
                seen[p] = 0
        time.sleep(0.005)


def producers_together(t):
    """Rounds 1-2 on a zeroed region. Rounds 3-10 on the region of a
    producer just SIGKILLed: the new ones wait for the same lease to
    expire; all are SIGSTOPped in that wait and continued together (VMs
    resumed at once), so that they try to take over at the same time.
    Two contenders, three in rounds 9-10."""
    n = 60
    ref = {s: t.reference(s, n) for s in 'BCD'}
    ref['A'] = t.reference('A', 1500)
    for rnd in range(1, 11):
        region = t.region(1 * MIB, 'round%d' % rnd)
        reader = t.reader('round%d-reader' % rnd, region, FOLLOW)
        expect = []
        if rnd <= 2:
            t.wait_playing(reader)
            t.wait_slots(region, [reader])
        else:
            dead = t.producer('round%d-producer-A' % rnd, region, 'A', 1500,
                              sleep_us=30000)
            t.wait_frames(reader, 3)
            dead.signal(signal.SIGKILL)
            expect = [('A', 0, None)]
        prods = [t.producer('round%d-producer-%s' % (rnd, s), region, s, n,
                            sleep_us=20000) for s in 'BCD'[:2 + (rnd > 8)]]
        if rnd > 2:
            stop_in_lease_wait(t, prods)
            time.sleep(1.5)
            for p in prods:         # back to back: no log in between
                os.kill(p.pid, signal.SIGCONT)
            t.log('SIGCONT the producers')
        winner = one_winner(t, rnd, prods)
        if winner and t.check_eos(reader):
            t.check_runs(reader, ref, expect + [(winner.name[-1], 0, n - 1)],
                         'round %d: the reader of the winner' % rnd)
        t.cleanup()


def one_winner(t, rnd, prods):
    """Exactly one of PRODS streams (exit 0), the others fail with a clear
    error. Returns the winner, or None."""
    try:
        rcs = [p.wait(60) for p in prods]
    except Fail as e:
        t.check(False, 'round %d: more than one producer took the region '
                '(one of them hangs: %s)' % (rnd, e))
        return None
    ok = [p for p in prods if p.rc == 0]
    t.log('round %d: exit codes %s' % (rnd, rcs))
    if not t.check(len(ok) == 1, 'round %d: %d of the %d producers streamed '
                   '(exit codes %s); expected exactly one'
                   % (rnd, len(ok), len(prods), rcs)):
        return None
    for loser in prods:
        if loser is not ok[0]:
            t.log('round %d: %s streamed; %s: %s' % (
                rnd, ok[0].name, loser.name, loser.error_text()))
            t.check_error(loser, r'busy|another producer',
                          'round %d: a producer that lost' % rnd)
    return ok[0]


def stale_producer(t):
    ref = {'A': t.reference('A', 1500), 'B': t.reference('B', 1500)}
    region = t.region(1 * MIB)
    old = t.producer('producer-A', region, 'A', 1500, sleep_us=30000)
    reader = t.reader('reader', region, FOLLOW)
    t.wait_frames(reader, 10)
    old.signal(signal.SIGSTOP)
    stopped = time.monotonic()
    new = t.producer('producer-B', region, 'B', 1500, sleep_us=30000,
                     eos=True)
    t.wait_frames(reader, 5, ref=ref['B'])
    time.sleep(max(0, 6 - (time.monotonic() - stopped)))
    old.signal(signal.SIGCONT)
    t.check_error(old, r'took over|taken over|another producer',
                  'the stale producer after SIGCONT')
    seen = len(reader.frames())
    t.wait_until(lambda: len(reader.frames()) >= seen + 10 or
                 not reader.running() or not new.running(),
                 'the reader going on', 60)
    if t.check(new.running(), 'producer-B ended before its stream was '
               'stopped: %s' % new.error_text()):
        new.signal(signal.SIGINT)       # -e: ends B's stream with EOS
        t.check_eos(new)
    if t.check_eos(reader):
        t.check_runs(reader, ref, [('A', 0, None), ('B', 0, None)],
                     'the reader (follow) across a stale producer')


TESTS = {
    'waiting-readers': waiting_readers,
    'reap-killed': reap_killed,
    'slots-32-live': slots_32_live,
    'producer-paused': producer_paused,
    'paused-policies': paused_policies,
    'info-after-eos': info_after_eos,
    'takeover': takeover,
    'takeover-held': takeover_held,
    'producers-together': producers_together,
    'stale-producer': stale_producer,
}

if __name__ == '__main__':
    lclib.main(TESTS)
