"""The masking pipeline: decode, detect, mask and encode concurrently, per camera, fail closed.

Every `masking filter` run (video file, URL, image, image folder, raw pipe; with or without
detection) and every `masking serve` camera runs here; `masking.stream.build` makes the sources
and sinks for both.

Threads joined by bounded queues, per camera:

    source --(frames, bounded)--> masker --(MaskedFrame, bounded)--> sink
       \\--(key frames)--> detection group (cameras with the same detectors, dealt to one group per core)
                              --(results)--> masker's ResultBoard

PyAV (decode/encode), OpenCV and onnxruntime release the GIL, so the stages overlap on several
cores. Files, folders and pipes get back-pressure; live streams drop the oldest queued frames
(counted). The masker waits for a key frame's detection only until its deadline, then releases it
by the rules in `masking.stream.masker` (held detections or the fail policy). Per-camera counters
are logged every `stats_interval_s` and at exit; see `masking.stream.stats` for the invariant.

Frames travel as yuv420p planes when the source and the sink both take them (H.264 files and
streams: no full-size colour conversion anywhere; the detector builds its small BGR input from the
planes, bit for bit what it got from bgr24 frames), else as BGR (raw, JPEG and image sinks, raw
input). Still images (`SourceInfo.stills`) may each have their own size; each is masked with its
own detection only (no holding across images) and waits for it up to `STILLS_MAX_LATENCY_MS`.

`MaskingPipeline.stop()` ends the sources; frames already read are masked and written and every
output is closed. `stop(discard=True)` (an interrupted `masking filter`) aborts the outputs
instead: nothing incomplete stays under a final name; finished files (segments, images) stay and
are listed in `CameraResult.outputs`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from masking.config.zones import Camera, MaskStyle
from masking.errors import MaskingError
from masking.stream.detect_stage import (
    BoxSource,
    DetectionGroup,
    DetectorFactory,
    Request,
    build_groups,
    unique_groups,
)
from masking.stream.frames import MaskedFrame, SourceFrame
from masking.stream.masker import MaskPolicy, MaskStage, RegionSealer, ResultBoard
from masking.stream.queues import BoundedQueue
from masking.stream.sinks import Sink
from masking.stream.sources import Source, SourceInfo, StreamSource, validate
from masking.stream.stats import CameraStats, StatsSnapshot
from masking.video.layout import PixelLayout

log = logging.getLogger(__name__)

SinkFactory = Callable[[SourceInfo], Sink]
STILLS_MAX_LATENCY_MS = 3_600_000.0  # an image has no real-time deadline: it waits for its own detection


class _EOS:
    """End of a camera's stream."""


_END = _EOS()


@dataclass
class CameraJob:
    """One camera to run: its zones config, where frames come from and where they go."""

    name: str
    camera: Camera
    source: Source
    sink: SinkFactory
    hold_motion: float = 0.02
    style_override: MaskStyle | None = None  # replaces zone and detection styles (the CLI's --style)
    sink_layouts: tuple[PixelLayout, ...] = (PixelLayout.bgr24,)  # layouts the sink takes; yuv420p: no conversion
    abort_on_error: bool = False  # discard the output if the source fails (filter); serve keeps what it wrote
    sealer: RegionSealer | None = None  # vault (issue 12): captures dynamic regions before they are masked


@dataclass(frozen=True)
class PipelineOptions:
    """Settings shared by every camera of a pipeline."""

    queue_size: int = 8
    stats_interval_s: float = 10.0
    detector_threads: int = 1
    detector_workers: int | None = None  # detection threads per detector set; None: one per core
    detector_factory: DetectorFactory | None = None  # default: masking.detect.dynamic.DynamicMasks


@dataclass
class CameraResult:
    """How a camera ended."""

    name: str
    stats: StatsSnapshot
    error: str | None = None
    outputs: list[str] = field(default_factory=list)  # complete files written (segments, images)
    discarded: bool = False  # the open output was removed (stopped with discard, or the run failed)


def _default_factory(threads: int) -> DetectorFactory:
    loaded: dict[tuple[str, float, int], Any] = {}  # one session per model, shared by the groups

    def make(camera: Camera) -> BoxSource:
        from masking.detect.dynamic import DynamicMasks

        return DynamicMasks(camera, threads=threads, loaded=loaded)

    return make


class _CameraRun:
    """The threads and queues of one camera."""

    def __init__(self, job: CameraJob, group: DetectionGroup | None, opts: PipelineOptions, stop: threading.Event,
                 discard: threading.Event) -> None:
        from masking.masks.apply import ZoneMasker

        self.job = job
        self.group = group
        self.stop = stop
        self.discard = discard
        self.discarded = False
        self.stats = CameraStats(job.name)
        self.policy = MaskPolicy.from_camera(job.camera, job.hold_motion)
        self.board = ResultBoard() if group is not None else None
        if group is not None and self.board is not None:
            group.attach(self.board)
        self.masker = ZoneMasker(job.camera, style_override=job.style_override)
        # room for a whole detection period, so the masker's look-ahead never waits on back-pressure
        self.frames: BoundedQueue[SourceFrame | _EOS] = BoundedQueue(max(opts.queue_size, 2 * self.policy.every + 2))
        self.masked: BoundedQueue[MaskedFrame | _EOS] = BoundedQueue(opts.queue_size)
        self.info: SourceInfo | None = None
        self.info_ready = threading.Event()
        self.sink_failed = threading.Event()
        self.error: str | None = None
        self.outputs: list[str] = []
        if isinstance(job.source, StreamSource) and job.source.on_gap is None:
            job.source.on_gap = self.stats.gap
        self.threads = [
            threading.Thread(target=self._source_loop, name=f"src[{job.name}]", daemon=True),
            threading.Thread(target=self._mask_loop, name=f"mask[{job.name}]", daemon=True),
            threading.Thread(target=self._sink_loop, name=f"sink[{job.name}]", daemon=True),
        ]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def _fail(self, msg: str) -> None:
        if self.error is None:
            self.error = msg
        log.error("camera %s: %s", self.job.name, msg)

    # -------------------------------------------------------------- source
    def _source_loop(self) -> None:
        src = self.job.source
        live = src.live
        try:
            try:
                info = src.open(self.stop)
            except MaskingError as exc:
                self._fail(str(exc))
                return
            # yuv420p planes end to end when source and sink both take them (detecting cameras too:
            # the detector builds its small BGR input from the planes), else bgr24.
            planar = (info.planar_ok and PixelLayout.yuv420p in getattr(src, "layouts", ())
                      and PixelLayout.yuv420p in self.job.sink_layouts)
            info = replace(info, layout=PixelLayout.yuv420p if planar else PixelLayout.bgr24)
            if info.stills:  # unrelated images: own detections only, no deadline that black them under load
                self.policy = replace(self.policy, every=1, hysteresis=0, lookahead=False, hold_frames=0,
                                      max_latency_ms=max(self.policy.max_latency_ms, STILLS_MAX_LATENCY_MS))
            self.info = info
            self.info_ready.set()
            every = self.policy.every
            max_latency = self.policy.max_latency_ms / 1000.0
            index = 0
            for raw, pts, tb in src.frames(self.stop, info.layout):
                image, why = validate(raw, info)
                sf = SourceFrame(index, image, int(pts), tb, corrupt=why)
                self.stats.add("frames_in")
                board = self.board if index % every == 0 else None  # key frames of detecting cameras
                if image is None:
                    self.stats.add("corrupt")
                    n = self.stats.corrupt
                    if n <= 10 or n % 250 == 0:  # a camera that changed size would otherwise log every frame
                        log.warning("camera %s: frame %d is corrupt (%s); it is masked by the full policy (%d so far%s)",
                                    self.job.name, index, why, n, "; further ones logged every 250" if n == 10 else "")
                    if board is not None:
                        board.skip(index)
                elif board is not None and self.group is not None:
                    req = Request(self.job.name, index, image, time.monotonic() + max_latency, board, self.stats,
                                  info.layout, info.colour, remember=not info.stills)
                    board.submitted(index)
                    if self.group.submit(req, live):
                        sf.deadline = req.deadline
                    else:
                        board.skip(index)
                dropped = self.frames.put(sf, drop_oldest=live)
                if isinstance(dropped, SourceFrame):
                    self.stats.add("dropped")
                    log.debug("camera %s: dropped frame %d (pipeline behind a live source)", self.job.name, dropped.index)
                index += 1
                if self.sink_failed.is_set():
                    break
        except MaskingError as exc:
            self._fail(f"source failed: {exc}")
        except Exception as exc:
            log.exception("camera %s: source crashed", self.job.name)
            self._fail(f"source crashed: {type(exc).__name__}: {exc}")
        finally:
            try:
                src.close()
            except MaskingError as exc:
                log.warning("camera %s: closing the source: %s", self.job.name, exc)
            self.info_ready.set()
            if self.board is not None:
                self.board.finish()
            self.frames.put_force(_END)

    # -------------------------------------------------------------- mask
    def _stage(self, stages: dict[tuple[int, int], MaskStage], item: SourceFrame) -> MaskStage:
        """The mask stage for the frame's size (one size per video; stills each have their own)."""
        info = self.info
        assert info is not None
        size = (info.width, info.height)
        if info.stills and item.corrupt is None:
            size = (int(item.image.shape[1]), int(item.image.shape[0]))
        stage = stages.get(size)
        if stage is None:
            if len(stages) > 8:
                stages.clear()
            stage = stages[size] = MaskStage(self.masker, self.policy, self.board, size[0], size[1], info.layout,
                                             sealer=self.job.sealer)  # vault
        return stage

    def _mask_loop(self) -> None:
        self.info_ready.wait()
        stages: dict[tuple[int, int], MaskStage] = {}
        while True:
            item = self.frames.get()
            if isinstance(item, _EOS):
                self.masked.put_force(_END)
                return
            try:
                mf, decision = self._stage(stages, item).process(item)
            except Exception as exc:
                self._fail(f"masking failed on frame {item.index}: {type(exc).__name__}: {exc}")
                self.stats.add("failed")
                self.sink_failed.set()
                continue
            if decision.late:
                self.stats.add("detector_late")
            self.masked.put(mf)

    # -------------------------------------------------------------- sink
    def _sink_loop(self) -> None:
        self.info_ready.wait()
        sink: Sink | None = None
        if self.info is not None:
            try:
                sink = self.job.sink(self.info)
            except Exception as exc:
                self._fail(f"cannot open the sink: {exc}")
                self.sink_failed.set()
        while True:
            item = self.masked.get()
            if isinstance(item, _EOS):
                break
            if sink is None or self.sink_failed.is_set():
                self.stats.add("failed")
                continue
            try:
                sink.write(item)
                self.stats.written(item.masked_by, item.arrival)
            except Exception as exc:
                self._fail(f"sink failed at frame {item.index}: {type(exc).__name__}: {exc}")
                self.stats.add("failed")
                self.sink_failed.set()
                self._abort(sink)
        if sink is None:
            return
        if self.sink_failed.is_set():
            self._abort(sink)  # idempotent: nothing partial stays behind under a final name
        elif self.error is not None and self.job.abort_on_error:
            log.error("camera %s: output discarded because the run failed", self.job.name)
            self._abort(sink)
        elif self.discard.is_set():
            log.warning("camera %s: stopped; the incomplete output is discarded", self.job.name)
            self._abort(sink)
        else:
            try:
                sink.close()
            except Exception as exc:
                self._fail(f"closing the sink failed: {type(exc).__name__}: {exc}")
                self._abort(sink)
        self.outputs = [str(p) for p in getattr(sink, "files", [])]

    def _abort(self, sink: Sink) -> None:
        self.discarded = True
        try:
            sink.abort()
        except Exception as exc:
            log.error("camera %s: aborting the sink failed too: %s", self.job.name, exc)

    def join(self) -> None:
        for t in self.threads:
            t.join()


class MaskingPipeline:
    """Runs a set of cameras until their sources end or `stop()` is called."""

    def __init__(self, jobs: list[CameraJob], options: PipelineOptions = PipelineOptions()) -> None:
        names = [j.name for j in jobs]
        if len(set(names)) != len(names):
            raise MaskingError(f"camera names must be unique, got {names}")
        self.options = options
        self._stop = threading.Event()
        self._discard = threading.Event()
        factory = options.detector_factory or _default_factory(options.detector_threads)
        per_camera = build_groups([j.camera for j in jobs], factory, options.queue_size, options.detector_workers)
        self.groups = unique_groups(per_camera)
        for g in self.groups:
            g.load()
        self.cameras = [_CameraRun(job, group, options, self._stop, self._discard) for job, group in zip(jobs, per_camera)]

    def stop(self, discard: bool = False) -> None:
        """Ask every source to stop; frames already read are still masked and written. The outputs
        are closed, or with `discard` aborted (incomplete files removed, complete ones kept)."""
        if discard:
            self._discard.set()
        self._stop.set()

    def run(self) -> list[CameraResult]:
        """Start everything, wait for the end, log and return per-camera results."""
        for g in self.groups:
            g.start()
        for c in self.cameras:
            c.start()
        done = threading.Event()
        reporter = threading.Thread(target=self._report, args=(done,), name="stats", daemon=True)
        reporter.start()
        try:
            for c in self.cameras:
                while any(t.is_alive() for t in c.threads):
                    for t in c.threads:
                        t.join(0.2)
        finally:
            done.set()
            for g in self.groups:
                g.close()
            for g in self.groups:
                g.join(timeout=2.0)
        results = []
        for c in self.cameras:
            snap = c.stats.check()
            log.info("final %s", snap.line())
            results.append(CameraResult(c.job.name, snap, c.error, c.outputs, c.discarded))
        return results

    def _report(self, done: threading.Event) -> None:
        last = {c.job.name: (time.monotonic(), 0) for c in self.cameras}
        while not done.wait(self.options.stats_interval_s):
            now = time.monotonic()
            for c in self.cameras:
                snap = c.stats.snapshot()
                t0, n0 = last[c.job.name]
                last[c.job.name] = (now, snap.frames_out)
                log.info("%s", snap.line((snap.frames_out - n0) / max(now - t0, 1e-9)))
                if (overload := c.stats.overload()) is not None:
                    log.warning("%s", overload)
