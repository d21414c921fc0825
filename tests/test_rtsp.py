"""RTSP ingest against a real GStreamer RTSP server on loopback, including an outage.

The server (tests/rtsp_server.py) runs under the SYSTEM Python, which has PyGObject; CI installs
the Debian packages gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi
gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
from rtsp_helpers import RtspServer, free_port, gst_missing

from masking.config.zones import parse_zones
from masking.stream.engine import CameraJob, MaskingPipeline, PipelineOptions
from masking.stream.sinks import H264Sink
from masking.stream.sources import ReconnectPolicy, StreamSource
from masking.video.reader import VideoReader

_MISSING = gst_missing(("qtdemux", "h264parse", "rtph264pay"))
pytestmark = [pytest.mark.slow, pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")]


def test_rtsp_reconnects_after_outage_and_logs_the_gap(office_clip: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    port = free_port()
    server = RtspServer(port, "--file", str(office_clip))
    server.start()
    cam = parse_zones({"cameras": [{"camera_id": "door", "zones": [
        {"id": "z", "kind": "privacy_mask", "polygon": [[0, 0], [0.3, 0], [0.3, 0.3], [0, 0.3]]}]}]}).cameras[0]
    url = f"rtsp://127.0.0.1:{port}/cam"
    src = StreamSource(url, name="door", reconnect=ReconnectPolicy(initial_s=0.3, max_s=1.0, give_up_after_s=3.0))
    out = tmp_path / "door.mp4"
    engine = MaskingPipeline([CameraJob("door", cam, src, lambda info: H264Sink(out, info))], PipelineOptions(stats_interval_s=1.0))
    results: list = []
    runner = threading.Thread(target=lambda: results.extend(engine.run()))
    stats = engine.cameras[0].stats
    try:
        runner.start()
        _wait(lambda: stats.frames_in >= 30, 20, "first frames")
        before = stats.frames_in
        server.kill()  # outage
        time.sleep(1.0)
        server.start()  # back on the same port
        _wait(lambda: src.reconnects >= 1 and stats.frames_in >= before + 30, 25, "frames after reconnect")
        server.kill()  # gone for good: the source gives up after 3 s
        runner.join(30)
        assert not runner.is_alive(), "engine did not stop after the source gave up"
    finally:
        server.kill()
        engine.stop()
    (res,) = results
    s = res.stats
    assert s.frames_in > before + 30
    assert s.frames_in == s.frames_out + s.dropped + s.failed
    assert s.gaps >= 1 and s.gap_seconds > 0.5
    text = caplog.text
    assert "stream lost" in text and "reconnected after" in text and "gap of" in text
    with VideoReader(out) as r:
        ts = [float(vf.pts * vf.time_base) for vf in r.frames("yuv420p")]
    assert len(ts) == s.frames_out
    steps = sorted(b - a for a, b in zip(ts, ts[1:]))
    assert steps[0] > 0  # timestamps keep increasing across the reconnect
    assert abs(steps[len(steps) // 2] - 1 / 29.53) < 0.005  # and keep the source's frame spacing


def _wait(cond, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
