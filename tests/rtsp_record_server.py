#!/usr/bin/python3
"""A loopback RTSP server in RECORD mode for the publish tests, built on GStreamer's gst-rtsp-server.

Run with the SYSTEM Python (which has `gi`), not the project venv:

    /usr/bin/python3 tests/rtsp_record_server.py --port 8555 --out DIR [--mount /live]

A client pushes H.264 with RTSP ANNOUNCE/RECORD over TCP (what MediaMTX and go2rtc accept); every
publishing session is written to its own MPEG-TS file `DIR/session_<n>.ts` (readable even if the
server is killed). Prints `READY` on stdout when it is listening. Debian packages as for
tests/rtsp_server.py.
"""

from __future__ import annotations

import argparse
import itertools
import signal
import sys
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out", required=True, help="folder for the recorded sessions")
    ap.add_argument("--mount", default="/live")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    counter = itertools.count(len(list(out.glob("session_*.ts"))))

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_transport_mode(GstRtspServer.RTSPTransportMode.RECORD)
    factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
    factory.set_launch("( rtph264depay name=depay0 ! h264parse ! mpegtsmux ! filesink name=sink sync=false )")
    factory.set_shared(False)

    def configure(_factory: object, media: GstRtspServer.RTSPMedia) -> None:
        sink = media.get_element().get_by_name("sink")
        path = out / f"session_{next(counter):03d}.ts"
        sink.set_property("location", str(path))
        print(f"RECORDING {path}", flush=True)

    factory.connect("media-configure", configure)
    server.get_mount_points().add_factory(args.mount, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    print("READY", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
