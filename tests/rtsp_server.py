#!/usr/bin/python3
"""A loopback RTSP server for the stream tests, built on GStreamer's gst-rtsp-server.

Run with the SYSTEM Python (which has `gi`), not the project venv:

    /usr/bin/python3 tests/rtsp_server.py --port 8554 --file clip.mp4 [--mount /cam]
    /usr/bin/python3 tests/rtsp_server.py --port 8555 --record DIR [--mount /live]

With `--file` it serves the H.264 track of an MP4 file at rtsp://127.0.0.1:PORT/MOUNT (RTP over
TCP or UDP), in real time, once per client session. With `--record` it is a RECORD-mode server (what
MediaMTX and go2rtc offer): a client pushes H.264 with RTSP ANNOUNCE/RECORD over TCP, and every
publishing session is written to its own MPEG-TS file `DIR/session_<n>.ts` (readable even if the
server is killed). It prints `READY` on stdout when it is listening. Debian packages:
gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-good
gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav.
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


def _record_factory(out: Path) -> GstRtspServer.RTSPMediaFactory:
    out.mkdir(parents=True, exist_ok=True)
    counter = itertools.count(len(list(out.glob("session_*.ts"))))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_transport_mode(GstRtspServer.RTSPTransportMode.RECORD)
    factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
    factory.set_launch("( rtph264depay name=depay0 ! h264parse ! mpegtsmux ! filesink name=sink sync=false )")

    def configure(_factory: object, media: GstRtspServer.RTSPMedia) -> None:
        path = out / f"session_{next(counter):03d}.ts"
        media.get_element().get_by_name("sink").set_property("location", str(path))
        print(f"RECORDING {path}", flush=True)

    factory.connect("media-configure", configure)
    return factory


def _play_factory(clip: str) -> GstRtspServer.RTSPMediaFactory:
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f'( filesrc location="{clip}" ! qtdemux ! h264parse config-interval=-1 '
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    return factory


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--file", help="MP4 file with an H.264 video track, served to each client")
    mode.add_argument("--record", help="folder for the sessions clients publish (RECORD mode)")
    ap.add_argument("--mount", default="/cam")
    args = ap.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = _record_factory(Path(args.record)) if args.record else _play_factory(args.file)
    factory.set_shared(False)
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
