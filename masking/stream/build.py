"""Turn `masking serve` entries (and `masking filter` options) into engine jobs."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from masking.stream.config import (
    HttpOutputSpec,
    RtspPublishSpec,
    ServeCamera,
    ServeConfig,
    SinkSpec,
    resolve_camera,
)
from masking.stream.engine import CameraJob, Engine, EngineOptions
from masking.stream.live import LiveHub, LiveSink
from masking.stream.outputs import FanOut
from masking.stream.sinks import H264Sink, JpegDirSink, Sink
from masking.stream.sources import (
    LIVE_SCHEMES,
    FileSource,
    FolderSource,
    ReconnectPolicy,
    Source,
    SourceInfo,
    StreamSource,
)


def sink_factory(spec: SinkSpec) -> Callable[[SourceInfo], Sink]:
    """A factory making the sink once the source's size and timing are known."""

    def make(info: SourceInfo) -> Sink:
        if spec.format == "jpeg-dir":
            return JpegDirSink(spec.path)
        return H264Sink(spec.path, info, segment_seconds=spec.segment_seconds, crf=spec.crf, preset=spec.preset)

    return make


def sink_layouts(fmt: str) -> tuple[str, ...]:
    """Frame layouts a sink format accepts (H.264 files and live streams also take yuv420p planes)."""
    return ("bgr24", "yuv420p") if fmt in ("h264", "http", "rtsp-publish") else ("bgr24",)


_LIVE_QUEUE_FRAMES = 25  # per output: one second at 25 fps before a live output drops its oldest frame


def camera_sink_factory(spec: ServeCamera, hub: LiveHub | None) -> Callable[[SourceInfo], Sink]:
    """The camera's sink: its one output, or a `FanOut` over every output (live ones share one encoder)."""
    outputs = spec.all_outputs
    files = [o for o in outputs if isinstance(o, SinkSpec)]
    http = any(isinstance(o, HttpOutputSpec) for o in outputs)
    publish = [o.url for o in outputs if isinstance(o, RtspPublishSpec)]
    if len(outputs) == 1 and files:
        return sink_factory(files[0])

    def make(info: SourceInfo) -> Sink:
        lanes: list[tuple[str, Sink, bool]] = []
        try:
            for f in files:
                lanes.append((f"{f.format}:{f.path}", sink_factory(f)(info), False))
            if http or publish:
                live = LiveSink(spec.name, info, hub if http else None, publish, keyframe_s=spec.keyframe_seconds)
                lanes.append(("live", live, True))
        except Exception:
            for _, sink, _ in lanes:
                sink.abort()
            raise
        return FanOut(spec.name, lanes, queue_size=_LIVE_QUEUE_FRAMES)

    return make


def camera_layouts(spec: ServeCamera) -> tuple[str, ...]:
    """The layouts every output of the camera takes."""
    allowed = {"bgr24", "yuv420p"}
    for o in spec.all_outputs:
        allowed &= set(sink_layouts(o.format))
    return tuple(sorted(allowed))


def source_from_spec(spec: ServeCamera, folder_idle_s: float | None = None) -> Source:
    """A live stream, a watched folder, or a file."""
    if spec.source.startswith(LIVE_SCHEMES):
        return StreamSource(spec.source, name=spec.name, transport=spec.transport,
                            reconnect=ReconnectPolicy(max_s=spec.reconnect_max_s))
    p = Path(spec.source)
    if p.is_dir():
        return FolderSource(p, name=spec.name, idle_timeout_s=folder_idle_s)
    return FileSource(p, name=spec.name, realtime=spec.pace == "realtime")


def live_hub(cfg: ServeConfig) -> LiveHub | None:
    """The hub of the cameras with an `http` output, or None when there is none."""
    names = [c.name for c in cfg.cameras if any(isinstance(o, HttpOutputSpec) for o in c.all_outputs)]
    return LiveHub(names) if names else None


def jobs_from_config(cfg: ServeConfig, where: str, hub: LiveHub | None = None) -> list[CameraJob]:
    """One job per camera entry (zones loaded and detection overrides applied)."""
    return [
        CameraJob(c.name, resolve_camera(c, where), source_from_spec(c), camera_sink_factory(c, hub),
                  sink_layouts=camera_layouts(c))
        for c in cfg.cameras
    ]


@contextmanager
def stop_on_signals(engine: Engine) -> Iterator[threading.Event]:
    """SIGINT/SIGTERM ask the engine to stop (sources end, queued frames are written, files closed)."""
    got = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        got.set()
        engine.stop()

    if threading.current_thread() is not threading.main_thread():
        yield got
        return
    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield got
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def engine_for(cfg: ServeConfig, where: str, hub: LiveHub | None = None) -> Engine:
    return Engine(jobs_from_config(cfg, where, hub), EngineOptions(
        queue_size=cfg.queue_size, stats_interval_s=cfg.stats_interval_s, detector_threads=cfg.detector_threads,
    ))
