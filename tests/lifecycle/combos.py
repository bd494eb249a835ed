#!/usr/bin/env python3
# gst-ivshmem lifecycle tests: two events of a VM's life at once.
# SPDX-License-Identifier: MIT
#
#   python3 combos.py NAME    (the meson suite 'lifecycle' runs each NAME)
#
# paused-producer-kill-join    the producer is SIGSTOPped; meanwhile a reader
#                              is SIGKILLed and a new one joins
# paused-reader-restart        a reader is SIGSTOPped past its lease while
#                              the producer is SIGKILLed and a new one takes
#                              over (and a new reader joins it)
# restart-two-waiting          two readers wait for the next producer after
#                              the first one stopped without EOS
# kill-holder-paused-producer  the reader that holds a full ring back is
#                              SIGKILLed while the producer is SIGSTOPped,
#                              and a new reader joins
# two-waiting-producer-killed  two readers that waited before the first
#                              producer: it is SIGKILLed, a new one starts
# paused-holder-restart        a reader SIGSTOPped while zero-copy buffers
#                              wait in its queue; the producer restarts and
#                              a new reader joins; the old reader continues.
#                              The new producer overwrites the ring under
#                              the frozen reader's buffers (it cannot tell
#                              a frozen reader from a dead one): the old
#                              reader may output torn frames only if it
#                              posted the warning that says so; its late
#                              releases do not disturb the new reader
# paused-holder-restart-copy   the same with zero-copy=off: no torn frame
#                              at all, and no such warning
# sleeping-readers             a reader SIGKILLed while it sleeps, then the
#                              producer restarts under the other sleeping
#                              reader: at the end no reader is counted as
#                              sleeping (readers_sleeping is 0)
# waiting-reader-killed        of two readers waiting on a zeroed region one
#                              is SIGKILLed before the producer comes
# paused-both                  producer and reader SIGSTOPped together past
#                              the lease (a suspended host), continued in
#                              either order: nothing lost, or (the lease
#                              expired) a warning that it was frozen and a
#                              hole, then the rest of the stream, or an
#                              error

import re
import signal
import sys
import time

sys.dont_write_bytecode = True    # no __pycache__ in the source tree
import lclib  # noqa: E402

MIB = 1024 * 1024
FOLLOW = 'on-producer-restart=follow'
# the source's warning when buffers it handed out in place may have been
# overwritten (gst_ivshmem_src_held_lost)
HELD_LOST_RE = r'may have overwritten'


def waiting_readers(t, region, names, props=''):
    readers = [t.reader(n, region, props) for n in names]
    for r in readers:
        t.wait_playing(r)
    t.wait_slots(region, readers)
    return readers


def paused_producer_kill_join(t):
    n = 300
    ref = {'A': t.reference('A', n)}
    region = t.region(1 * MIB)
    r1, r2 = waiting_readers(t, region, ['reader1', 'reader2'])
    prod = t.producer('producer', region, 'A', n, sleep_us=20000)
    t.wait_frames(r2, 20)
    prod.signal(signal.SIGSTOP)
    stopped = time.monotonic()
    r1.signal(signal.SIGKILL)
    r3 = t.reader('reader3', region)
    t.wait_playing(r3)
    time.sleep(max(0, 4 - (time.monotonic() - stopped)))
    prod.signal(signal.SIGCONT)
    t.check_eos(prod)
    if t.check_eos(r2):
        t.check_runs(r2, ref, [('A', 0, n - 1)], 'a reader that waited '
                     'before the producer, which was paused meanwhile')
    if t.check_eos(r3):
        t.check_runs(r3, ref, [('A', None, n - 1)],
                     'a reader that joined while the producer was paused')


def paused_reader_restart(t):
    ref = {'A': t.reference('A', 1500), 'B': t.reference('B', 1500)}
    region = t.region(1 * MIB)
    old = t.producer('producer-A', region, 'A', 1500, sleep_us=30000)
    r1 = t.reader('reader1', region, FOLLOW)
    t.wait_frames(r1, 10)
    restart_under_stopped_reader(t, region, r1, old, ref)


def restart_under_stopped_reader(t, region, r1, old, ref):
    """R1 is SIGSTOPped for 5 s (past its lease); meanwhile the producer
    OLD is SIGKILLed, B takes over and a new reader R2 joins it. R2 must
    read B without a gap to its EOS. R1 must follow into B just as well,
    or end with an error that says why (dropped, lease). It outputs a
    frame of no stream (torn: a buffer it held in place that B overwrote)
    only if it warned that buffers it held may have been overwritten.
    Returns whether it warned."""
    r1.signal(signal.SIGSTOP)
    stopped = time.monotonic()
    old.signal(signal.SIGKILL)
    new = t.producer('producer-B', region, 'B', 1500, sleep_us=30000, eos=True)
    r2 = t.reader('reader2', region, FOLLOW)
    t.wait_frames(r2, 5, ref=ref['B'])
    time.sleep(max(0, 5 - (time.monotonic() - stopped)))
    r1.signal(signal.SIGCONT)
    t.wait_until(lambda: len(set(r1.frames()) & set(ref['B'])) >= 5 or
                 not r1.running(), 'reader1 following B or ending')
    t.wait_frames(r2, len(r2.frames()) + 10)
    new.signal(signal.SIGINT)       # -e: ends B's stream with EOS
    t.check_eos(new)
    if t.check_eos(r2):
        t.check_runs(r2, ref, [('B', None, None)], 'the reader of B')
    rc = r1.wait(60)
    # buffers handed out in place may be overwritten under a frozen
    # reader; then, and only then, it says so
    warned = re.search(HELD_LOST_RE, r1.text()) is not None
    # how many held buffers it said may have been overwritten: those may
    # show torn data or a whole frame of B written at the same place
    # (the cache-hot ring leaves held frames right ahead of write_pos,
    # where the new producer writes first: PROTOCOL.md section 11)
    held = max([int(n) for n in re.findall(r'\((\d+) such buffers so far\)',
                                            r1.text())] or [0])
    torn = any(r[0] == '?' for r in t.runs(r1, ref))
    t.log('reader1: %s, %s' % ('warned of overwritten buffers' if warned
                               else 'no warning of overwritten buffers',
                               'torn frames' if torn else 'no torn frame'))
    t.check(warned or not torn, 'reader1 output frames of no stream (torn) '
            'without the warning that buffers it held may have been '
            'overwritten (/%s/)' % HELD_LOST_RE)
    if rc == 0 and lclib.EOS_TEXT in r1.stdout():
        t.check_runs(r1, ref, [('A', 0, None), ('B', None, None)],
                     'a reader stopped across a producer restart',
                     allow_torn=warned, overwritten=held if warned else 0)
        t.check(r1.frames()[-1:] == r2.frames()[-1:],
                'the two readers did not end on the same frame')
    else:
        t.log('reader1 ended with exit %d: %s' % (rc, r1.error_text()))
        t.check(re.search(r'lease|dropped|evict', r1.error_text(), re.I),
                'reader1 ended with exit %d, without EOS and without an '
                'error that says why (lease, dropped)%s' % (
                    rc, lclib.tail(r1.error_text())))
        runs = t.runs(r1, ref)
        if warned:
            runs = lclib.merge_runs([r for r in lclib.fill_overwritten(
                runs, held) if r[0] != '?'])
        t.check_runs(r1, ref, [('A', 0, None)] + [
            r for r in runs[1:2] if r[0] == 'B'],
            'a reader stopped across a producer restart, then failed',
            allow_torn=warned, overwritten=held if warned else 0)
    return warned


def restart_two_waiting(t):
    n = 100
    ref = {'A': t.reference('A', 1500), 'B': t.reference('B', n)}
    region = t.region(1 * MIB)
    readers = waiting_readers(t, region, ['reader1', 'reader2'], FOLLOW)
    prod = t.producer('producer-A', region, 'A', 1500, sleep_us=20000)
    for r in readers:
        t.wait_frames(r, 10)
    prod.signal(signal.SIGINT)      # no -e: stops without EOS (CLOSED)
    rc = prod.wait(60)
    t.log('producer-A stopped with exit %d' % rc)
    time.sleep(1)                   # the readers see it gone, and wait
    new = t.producer('producer-B', region, 'B', n)
    t.check_eos(new)
    for r in readers:
        if t.check_eos(r):
            t.check_runs(r, ref, [('A', 0, None), ('B', 0, n - 1)],
                         'a reader that waited for the next producer')


def kill_holder_paused_producer(t):
    n = 200
    ref = {'A': t.reference('A', n)}
    region = t.region(1 * MIB)
    slow = t.launch('reader-slow', 'ivshmemsrc device=%s ! identity '
                    'sleep-time=100000 ! checksumsink sync=false' % region)
    fast, = waiting_readers(t, region, ['reader-fast'])
    t.wait_playing(slow)
    t.wait_slots(region, [slow, fast])
    prod = t.producer('producer', region, 'A', n)
    t.wait_frames(fast, 40)         # the ring (34 frames) is full
    prod.signal(signal.SIGSTOP)
    slow.signal(signal.SIGKILL)
    late = t.reader('reader-late', region)     # joins a full, stopped ring
    t.wait_playing(late)
    time.sleep(4)
    prod.signal(signal.SIGCONT)
    t.check_eos(prod)
    if t.check_eos(fast):
        t.check_runs(fast, ref, [('A', 0, n - 1)], 'the fast reader')
    if t.check_eos(late):
        t.check_runs(late, ref, [('A', None, n - 1)],
                     'a reader that joined while the producer was paused')


def two_waiting_producer_killed(t):
    ref = {'A': t.reference('A', 1500), 'B': t.reference('B', 1500)}
    region = t.region(1 * MIB)
    readers = waiting_readers(t, region, ['reader1', 'reader2'], FOLLOW)
    old = t.producer('producer-A', region, 'A', 1500, sleep_us=20000)
    for r in readers:
        t.wait_frames(r, 10)
    old.signal(signal.SIGKILL)
    new = t.producer('producer-B', region, 'B', 1500, sleep_us=20000, eos=True)
    for r in readers:
        t.wait_frames(r, 10, ref=ref['B'])
    new.signal(signal.SIGINT)       # -e: ends B's stream with EOS
    t.check_eos(new)
    for r in readers:
        if t.check_eos(r):
            t.check_runs(r, ref, [('A', 0, None), ('B', None, None)],
                         'a reader across a producer restart')
    t.check(readers[0].frames()[-1:] == readers[1].frames()[-1:],
            'the two readers did not end on the same frame')


def paused_holder(t, props=''):
    ref = {'A': t.reference('A', 1500), 'B': t.reference('B', 1500)}
    region = t.region(1 * MIB)
    old = t.producer('producer-A', region, 'A', 1500)
    # a slow consumer behind a queue: the source's zero-copy buffers wait
    # in the queue, pointing into the ring, when the process is stopped
    r1 = t.launch('reader1-holding', 'ivshmemsrc device=%s %s %s ! queue '
                  'max-size-buffers=8 ! identity sleep-time=50000 ! '
                  'checksumsink sync=false' % (region, FOLLOW, props))
    t.wait_frames(r1, 10)
    return restart_under_stopped_reader(t, region, r1, old, ref)


def paused_holder_restart(t):
    paused_holder(t)


def paused_holder_restart_copy(t):
    """zero-copy=off: every buffer is a private copy, checked after it
    was made: a frozen reader outputs no torn frame, and has nothing in
    the ring to warn about."""
    warned = paused_holder(t, 'zero-copy=off')
    t.check(not warned, 'with zero-copy=off reader1 warned that buffers '
            'it held in the ring may have been overwritten')


def sleeping_readers(t):
    ref = {'A': t.reference('A', 1500), 'B': t.reference('B', 1500)}
    region = t.region(1 * MIB)
    r1, r2 = waiting_readers(t, region, ['reader1', 'reader2'], FOLLOW)
    # 5 frames a second: the readers sleep on the futex between frames
    old = t.producer('producer-A', region, 'A', 1500, sleep_us=200000)
    t.wait_frames(r2, 5)
    r2.signal(signal.SIGKILL)
    time.sleep(0.1)
    old.signal(signal.SIGKILL)
    new = t.producer('producer-B', region, 'B', 1500, sleep_us=100000,
                     eos=True)
    t.wait_frames(r1, 40, ref=ref['B'])     # 4 s: past the dead one's lease
    new.signal(signal.SIGINT)       # -e: ends B's stream with EOS
    t.check_eos(new)
    if t.check_eos(r1):
        t.check_runs(r1, ref, [('A', 0, None), ('B', None, None)],
                     'the reader that slept through a producer restart')
    sleeping = lclib.header_u32(region, 0x8c)
    t.log('readers_sleeping at the end: 0x%x' % sleeping)
    t.check(sleeping == 0, 'with every reader gone, readers_sleeping '
            '(0x08c) is 0x%x, not 0: every publish of the next producer '
            'would make a futex system call' % sleeping)


def waiting_reader_killed(t):
    n = 200
    ref = {'A': t.reference('A', n)}
    region = t.region(1 * MIB)
    doomed, reader = waiting_readers(t, region, ['reader-doomed', 'reader'])
    doomed.signal(signal.SIGKILL)
    prod = t.producer('producer', region, 'A', n)
    t.check_eos(prod)
    if t.check_eos(reader):
        t.check_runs(reader, ref, [('A', 0, n - 1)],
                     'a waiting reader beside one that died waiting')


def paused_both(t):
    """Round 1 continues the producer first, round 2 the reader first.
    The reader must read every frame; or, when its lease expired while it
    was stopped, join again at the live edge with the warning that says it
    was frozen (on-evicted=rejoin, issue 17), or end with an error; never
    skip frames silently."""
    n = 300
    ref = {'A': t.reference('A', n)}
    for rnd, first in ((1, 'producer'), (2, 'reader')):
        region = t.region(1 * MIB, 'round%d' % rnd)
        prod = t.producer('round%d-producer' % rnd, region, 'A', n,
                          sleep_us=20000)
        reader = t.reader('round%d-reader' % rnd, region)
        t.wait_frames(reader, 20)
        prod.signal(signal.SIGSTOP)
        reader.signal(signal.SIGSTOP)
        time.sleep(5)
        order = (prod, reader) if first == 'producer' else (reader, prod)
        order[0].signal(signal.SIGCONT)
        time.sleep(1)
        order[1].signal(signal.SIGCONT)
        t.check_eos(prod)
        rc = reader.wait(60)
        frozen = re.search(r'This reader was frozen for [\d.]+ s',
                           reader.text())
        if rc == 0 and lclib.EOS_TEXT in reader.stdout() and frozen:
            t.log('round %d: the reader was dropped and joined again' % rnd)
            t.check_runs(reader, ref, [('A', 0, None), ('A', None, n - 1)],
                         'round %d (%s continued first), a reader that '
                         'joined again' % (rnd, first), allow_torn=True)
        elif rc == 0 and lclib.EOS_TEXT in reader.stdout():
            t.check_runs(reader, ref, [('A', 0, n - 1)], 'round %d (%s '
                         'continued first)' % (rnd, first))
        else:
            t.log('round %d: the reader ended with an error:\n%s'
                  % (rnd, reader.error_text()))
            t.check(reader.error_text(), 'round %d: the reader ended with '
                    'exit %d, without EOS and without an error' % (rnd, rc))
        t.cleanup()


TESTS = {
    'paused-producer-kill-join': paused_producer_kill_join,
    'paused-reader-restart': paused_reader_restart,
    'restart-two-waiting': restart_two_waiting,
    'kill-holder-paused-producer': kill_holder_paused_producer,
    'two-waiting-producer-killed': two_waiting_producer_killed,
    'paused-holder-restart': paused_holder_restart,
    'paused-holder-restart-copy': paused_holder_restart_copy,
    'sleeping-readers': sleeping_readers,
    'waiting-reader-killed': waiting_reader_killed,
    'paused-both': paused_both,
}

if __name__ == '__main__':
    lclib.main(TESTS)
