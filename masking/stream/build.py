"""Turn `masking serve` entries (and `masking filter` options) into engine jobs."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from masking.config.zones import Camera
from masking.stream.config import ServeCamera, ServeConfig, SinkSpec, resolve_camera
from masking.stream.engine import CameraJob, Engine, EngineOptions
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

if TYPE_CHECKING:  # vault (issue 12)
    from masking.vault.recorder import VaultSealer


def sink_factory(spec: SinkSpec, sealer: VaultSealer | None = None) -> Callable[[SourceInfo], Sink]:
    """A factory making the sink once the source's size and timing are known."""

    def make(info: SourceInfo) -> Sink:
        if spec.format == "jpeg-dir":
            return JpegDirSink(spec.path)
        return H264Sink(spec.path, info, segment_seconds=spec.segment_seconds, crf=spec.crf, preset=spec.preset,
                        sealer=sealer)

    return make


def sink_layouts(fmt: str) -> tuple[str, ...]:
    """Frame layouts a sink format accepts (H.264 also takes yuv420p planes: no conversion)."""
    return ("bgr24", "yuv420p") if fmt == "h264" else ("bgr24",)


def source_from_spec(spec: ServeCamera, folder_idle_s: float | None = None) -> Source:
    """A live stream, a watched folder, or a file."""
    if spec.source.startswith(LIVE_SCHEMES):
        return StreamSource(spec.source, name=spec.name, transport=spec.transport,
                            reconnect=ReconnectPolicy(max_s=spec.reconnect_max_s))
    p = Path(spec.source)
    if p.is_dir():
        return FolderSource(p, name=spec.name, idle_timeout_s=folder_idle_s)
    return FileSource(p, name=spec.name)


def jobs_from_config(cfg: ServeConfig, where: str) -> list[CameraJob]:
    """One job per camera entry (zones loaded and detection overrides applied)."""
    return [_job(c, resolve_camera(c, where)) for c in cfg.cameras]


def _job(c: ServeCamera, camera: Camera) -> CameraJob:
    sealer = None
    if c.vault is not None:  # vault (issue 12)
        from masking.vault.recorder import VaultSealer, configured_by

        sealer = VaultSealer(c.vault, camera.camera_id, configured_by(c.zones))
    return CameraJob(c.name, camera, source_from_spec(c), sink_factory(c.sink, sealer),
                     sink_layouts=sink_layouts(c.sink.format), sealer=sealer)


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


def engine_for(cfg: ServeConfig, where: str) -> Engine:
    return Engine(jobs_from_config(cfg, where), EngineOptions(
        queue_size=cfg.queue_size, stats_interval_s=cfg.stats_interval_s, detector_threads=cfg.detector_threads,
    ))
