#!/usr/bin/env python3
# gst-ivshmem example: an application in Python that reads a stream
# SPDX-License-Identifier: MIT
"""Receives buffers from an IVSHMEM region and prints their caps and count.

    ivshmem-receive.py [--timeout SECONDS] [DEVICE]

The pipeline is

    ivshmemsrc device=DEVICE is-live=false ! appsink

built with GObject introspection (Debian: python3-gi, gir1.2-gstreamer-1.0).
DEVICE is a host file (/dev/shm/NAME, which must exist: QEMU or the sender
creates it), a guest PCI address (0000:00:04.0), or empty for the guest's
first IVSHMEM device. The source waits for a producer if none has started
yet. The program prints the caps whenever they change and, at the end of
the stream, the number of buffers; it exits 0 after EOS, 1 on an error or
when nothing arrives for --timeout seconds.

Try it on one machine, in two terminals:

    truncate -s 16M /dev/shm/demo
    python3 examples/ivshmem-receive.py /dev/shm/demo
    gst-launch-1.0 videotestsrc num-buffers=100 ! ivshmemsink device=/dev/shm/demo
"""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402


def run(device, timeout_s):
    pipeline = Gst.parse_launch(
        "ivshmemsrc name=src is-live=false ! appsink name=sink sync=false")
    pipeline.get_by_name("src").set_property("device", device)
    sink = pipeline.get_by_name("sink")
    bus = pipeline.get_bus()
    if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        msg = bus.pop_filtered(Gst.MessageType.ERROR)
        print("error: %s" % (msg.parse_error()[0].message if msg
                             else "the pipeline did not start"),
              file=sys.stderr)
        return 1

    count, caps, idle = 0, None, 0.0
    status = 0
    while True:
        # Wait for a buffer a second at a time, looking at the bus between.
        sample = sink.emit("try-pull-sample", Gst.SECOND)
        msg = bus.pop_filtered(Gst.MessageType.ERROR)
        if msg is not None:
            err, debug = msg.parse_error()
            print("error: %s\n  %s" % (err.message, debug), file=sys.stderr)
            status = 1
            break
        if sample is None:
            if sink.get_property("eos"):
                break
            idle += 1.0
            if idle >= timeout_s:
                print("error: nothing arrived for %d s" % timeout_s,
                      file=sys.stderr)
                status = 1
                break
            continue
        idle = 0.0
        new_caps = sample.get_caps()
        if caps is None or not new_caps.is_equal(caps):
            caps = new_caps
            print("caps: %s" % caps.to_string(), flush=True)
        count += 1

    pipeline.set_state(Gst.State.NULL)
    print("buffers: %d%s" % (count, ", then EOS" if status == 0 else ""),
          flush=True)
    return status


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("device", nargs="?", default="",
                    help="/dev/shm/NAME, a PCI address, or empty")
    ap.add_argument("--timeout", type=int, default=30,
                    help="give up when nothing arrives for this long")
    args = ap.parse_args()
    Gst.init(None)
    return run(args.device, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
