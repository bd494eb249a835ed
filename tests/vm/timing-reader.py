#!/usr/bin/python3
# gst-ivshmem: a live reader with a synced sink, for the VM timing scenario
# SPDX-License-Identifier: MIT
"""timing-reader.py DEVICE SECONDS

Runs `ivshmemsrc device=DEVICE ! fakesink sync=true` with a video sink's
lateness (20 ms: later buffers are dropped, as autovideosink does) for
SECONDS from its first buffer, then prints one line:

  TIMING received=N rendered=N dropped-warnings=N mapping=M offset=NS
         rate-ppm=X error=NS observations=N first-delay-ms=X

received: buffers that reached the sink; rendered: buffers it rendered on
time. The clock fields are ivshmemsrc's stats (its estimate of the
producer's CLOCK_MONOTONIC across the VM boundary). Runs in a guest with
the system's python3 and its GStreamer bindings (the host's own, through
the guest's 9p root).
"""

import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402


def main(argv):
    device, seconds = argv[1], float(argv[2])
    Gst.init(None)
    pipe = Gst.parse_launch(
        "ivshmemsrc name=src device=\"%s\" ! fakesink name=sink sync=true "
        "qos=true max-lateness=20000000 signal-handoffs=true" % device)
    src, sink = pipe.get_by_name("src"), pipe.get_by_name("sink")
    count = {"received": 0, "rendered": 0, "warnings": 0, "first": None}
    loop = GLib.MainLoop()

    def on_handoff(_sink, _buf, _pad):
        count["rendered"] += 1

    def on_probe(_pad, info):
        count["received"] += 1
        if count["first"] is None:
            count["first"] = True
            GLib.timeout_add(int(seconds * 1000), loop.quit)
        return Gst.PadProbeReturn.OK

    def on_message(_bus, msg):
        if msg.type == Gst.MessageType.WARNING:
            err, dbg = msg.parse_warning()
            print("WARNING: %s (%s)" % (err.message, dbg), flush=True)
            if "dropped" in err.message:
                count["warnings"] += 1
        elif msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            print("ERROR: %s (%s)" % (err.message, dbg), flush=True)
            loop.quit()
        elif msg.type == Gst.MessageType.EOS:
            loop.quit()

    sink.connect("handoff", on_handoff)
    sink.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, on_probe)
    bus = pipe.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    pipe.set_state(Gst.State.PLAYING)
    loop.run()
    st = src.get_property("stats")
    pipe.set_state(Gst.State.NULL)
    print("TIMING received=%d rendered=%d dropped-warnings=%d mapping=%s "
          "offset=%d rate-ppm=%.1f error=%d observations=%d "
          "before-start=%d producer-latency=%d"
          % (count["received"], count["rendered"], count["warnings"],
             st.get_string("clock-mapping"), st.get_int64("clock-offset")[1],
             st.get_double("clock-rate-ppm")[1],
             st.get_uint64("clock-error")[1],
             st.get_uint64("clock-observations")[1],
             st.get_uint64("dropped-before-start")[1],
             st.get_uint64("producer-latency")[1]), flush=True)
    return 0 if count["received"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
