#!/usr/bin/env python3
# gst-ivshmem timing tests: a producer application (gst-launch-1.0 cannot
# seek or pause a running pipeline).
# SPDX-License-Identifier: MIT
#
#   python3 tapp.py [options] PIPELINE-DESCRIPTION
#
# Runs the pipeline and, once it is PLAYING (or, with --trigger, when it
# gets SIGUSR1), carries out its schedule: flushing seeks to 0 every
# --seek-every seconds (--seeks of them), or a pause of --pause-for
# seconds. --initial-seek START:STOP (seconds) seeks a paused pipeline
# before it plays. Each step prints "EV WHAT CLOCK_MONOTONIC-ns" on
# stdout. SIGINT or SIGTERM stops the pipeline and ends the process.

import argparse
import signal
import sys
import time

import gi
gi.require_version('Gst', '1.0')
from gi.repository import GLib, Gst  # noqa: E402


def now_ns():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def ev(what):
    print('EV %s %d' % (what, now_ns()), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--seek-every', type=float, default=0)
    ap.add_argument('--seeks', type=int, default=0)
    ap.add_argument('--pause-for', type=float, default=0)
    ap.add_argument('--initial-seek', default='')
    ap.add_argument('--trigger', action='store_true')
    ap.add_argument('desc')
    a = ap.parse_args()

    Gst.init(None)
    pipe = Gst.parse_launch(a.desc)
    loop = GLib.MainLoop()
    status = [0]

    def quit_(code=0):
        status[0] = code
        loop.quit()
        return GLib.SOURCE_REMOVE

    def on_msg(bus, msg):
        if msg.type == Gst.MessageType.EOS:
            ev('eos')
            quit_(0)
        elif msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            print('ERROR: %s\n%s' % (err.message, dbg), flush=True)
            quit_(1)
        return True

    bus = pipe.get_bus()
    bus.add_signal_watch()
    bus.connect('message', on_msg)

    def seek_once(left):
        ok = pipe.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH, 0)
        ev('seek' if ok else 'seek-refused')
        if left > 1:
            GLib.timeout_add(int(a.seek_every * 1000), seek_once, left - 1)
        else:
            ev('done')
        return GLib.SOURCE_REMOVE

    def resume():
        pipe.set_state(Gst.State.PLAYING)
        ev('resume')
        ev('done')
        return GLib.SOURCE_REMOVE

    def schedule(*_):
        if a.seeks:
            seek_once(a.seeks)
        elif a.pause_for:
            pipe.set_state(Gst.State.PAUSED)
            ev('pause')
            GLib.timeout_add(int(a.pause_for * 1000), resume)
        return GLib.SOURCE_REMOVE

    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGINT, quit_)
    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGTERM, quit_)
    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGUSR1, schedule)

    if a.initial_seek:
        start, stop = (float(x) for x in a.initial_seek.split(':'))
        pipe.set_state(Gst.State.PAUSED)
        pipe.get_state(Gst.CLOCK_TIME_NONE)
        pipe.seek(1.0, Gst.Format.TIME, Gst.SeekFlags.FLUSH,
                  Gst.SeekType.SET, int(start * Gst.SECOND),
                  Gst.SeekType.SET, int(stop * Gst.SECOND))
        pipe.get_state(Gst.CLOCK_TIME_NONE)
        ev('initial-seek')
    pipe.set_state(Gst.State.PLAYING)
    ev('playing')
    if not a.trigger and (a.seeks or a.pause_for):
        GLib.timeout_add(int(1000 * (a.seek_every or 1)), schedule)
    loop.run()
    pipe.set_state(Gst.State.NULL)
    sys.exit(status[0])


if __name__ == '__main__':
    main()
