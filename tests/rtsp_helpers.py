"""The loopback GStreamer RTSP server (tests/rtsp_server.py) as the tests start, kill and restart it."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"  # the Debian Python that has PyGObject (`gi`)
SERVER = Path(__file__).with_name("rtsp_server.py")


def gst_missing(elements: tuple[str, ...]) -> str | None:
    """Why the RTSP server cannot run here (a reason to skip), or None when it can."""
    probe = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
             "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
             f"assert all(Gst.ElementFactory.find(e) for e in {elements!r})")
    try:
        r = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{SYSTEM_PYTHON} not usable: {exc}"
    if r.returncode:
        return ("GStreamer RTSP server not installed (apt-get install gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 "
                f"python3-gi gstreamer1.0-plugins-good gstreamer1.0-plugins-bad): {r.stderr.decode()[-300:]}")
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RtspServer:
    """tests/rtsp_server.py with `args` (`--file CLIP` or `--record DIR`, `--mount`) on `port`."""

    def __init__(self, port: int, *args: str) -> None:
        self.port, self.args = port, args
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:  # the port may linger briefly after a kill
            self.proc = subprocess.Popen([SYSTEM_PYTHON, str(SERVER), "--port", str(self.port), *self.args],
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline()
            if line.strip() == b"READY":
                threading.Thread(target=self.proc.stdout.read, daemon=True).start()  # keep the pipe drained
                return
            self.proc.kill()
            self.proc.wait(5)
            if time.monotonic() > deadline:
                raise RuntimeError(f"RTSP server did not start: {line.decode(errors='replace')}")
            time.sleep(0.3)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
