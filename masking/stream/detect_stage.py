"""The detection stage: threads serving groups of cameras that share the same detector set.

Cameras whose detection config is identical and frame-wide (`where: frame`) are dealt to up to
two groups per core (`build_groups`); each group has its own `DynamicMasks` and thread, key frames
from its cameras are pooled, and frames of the same size go into ONE detector call, whichever
camera they come from. Results are posted to each
camera's `ResultBoard`. A detector that raises posts a failure for every frame of the call; a
request whose deadline has already passed when the thread reaches it is skipped (the masker has
released that frame by policy) and counted as late. Nothing here can make a frame less masked.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from masking.config.zones import Camera
from masking.masks.boxes import MaskBoxes
from masking.stream.frames import Image
from masking.stream.masker import Result, ResultBoard
from masking.stream.queues import BoundedQueue, Closed
from masking.stream.stats import CameraStats

log = logging.getLogger(__name__)


class BoxSource(Protocol):
    """What the stage needs from `masking.detect.dynamic.DynamicMasks`."""

    def detect(self, batch: np.ndarray, streams: Sequence[Hashable] | None = None) -> list[MaskBoxes]: ...


def _detect_yuv420p(dyn: BoxSource, bufs: np.ndarray, colour: tuple[int, int] | None,
                    streams: Sequence[Hashable]) -> list[MaskBoxes]:
    """Detect on (N, H*3/2, W) yuv420p buffers: the detector's own planar path when it has one
    (`DynamicMasks.detect_yuv420p`: FFmpeg's conversion, as for bgr24 frames), else full-size BGR."""
    planar = getattr(dyn, "detect_yuv420p", None)
    if planar is not None:
        return list(planar(bufs, colour, streams))
    return dyn.detect(np.stack([cv2.cvtColor(b, cv2.COLOR_YUV2BGR_I420) for b in bufs]), streams)


DetectorFactory = Callable[[Camera], BoxSource]


# Detection on every k-th frame (k > 1) runs its detectors this much below their thresholds (never
# below 0.05): a face that scores just under the threshold on the key frames can score above it on
# the frames in between, which nothing looks at. Measured on office_v001 (720p, YuNet 0.4): faces
# left unmasked every 2nd frame 3 -> 0, every 3rd 2 -> 0 (benchmarks/ingest.py).
SKIP_THRESHOLD_DROP = 0.15


def cadence_camera(camera: Camera) -> Camera:
    """The camera as its detectors should run: thresholds lowered when frames are skipped."""
    d = camera.detect
    if d is None or d.every <= 1:
        return camera
    specs = [s.model_copy(update={"threshold": max(0.05, s.threshold - SKIP_THRESHOLD_DROP)}) for s in d.detectors]
    return camera.model_copy(update={"detect": d.model_copy(update={"detectors": specs})})


def group_key(camera: Camera) -> str | None:
    """Cameras with equal keys can share detector calls; None: no detection configured.

    Detection restricted to zones (`where: [ids]`) depends on the camera's own zones, so such a
    camera gets a group of its own.
    """
    d = camera.detect
    if d is None or not d.detectors:
        return None
    if any(spec.where != "frame" for spec in d.detectors):
        return f"camera:{camera.camera_id}"
    return "|".join(spec.model_dump_json() for spec in d.detectors) + f"|drop={cadence_camera(camera) is not camera}"


@dataclass
class Request:
    """One key frame waiting for detection."""

    camera: str
    index: int
    image: Image
    deadline: float
    board: ResultBoard
    stats: CameraStats
    layout: str = "bgr24"  # "bgr24" (H, W, 3) or "yuv420p" (H*3/2, W) planes
    colour: tuple[int, int] | None = None  # yuv420p: the source's FFmpeg (colorspace, color_range)


class DetectionGroup:
    """A detection thread serving one or more cameras."""

    def __init__(self, key: str, cameras: list[Camera], factory: DetectorFactory, max_batch: int, queue_size: int) -> None:
        self.key = key
        self.cameras = cameras
        self._factory = factory
        self.max_batch = max_batch
        self.queue: BoundedQueue[Request] = BoundedQueue(queue_size)
        self._boards: list[ResultBoard] = []
        self._dyn: BoxSource | None = None
        self.unavailable: str | None = None
        self.calls = 0
        self._thread = threading.Thread(target=self._run, name=f"detect[{cameras[0].camera_id}+{len(cameras) - 1}]", daemon=True)

    def attach(self, board: ResultBoard) -> None:
        self._boards.append(board)
        if self.unavailable is not None:
            board.set_unavailable(self.unavailable)

    def load(self) -> None:
        """Load the detectors; on any failure every attached camera is masked by its fail policy."""
        try:
            self._dyn = self._factory(cadence_camera(self.cameras[0]))
        except Exception as exc:
            names = ", ".join(c.camera_id for c in self.cameras)
            self.unavailable = f"detector could not be loaded: {exc}"
            log.error("cameras %s: %s; every frame is masked by the fail policy", names, self.unavailable)
            for b in self._boards:
                b.set_unavailable(self.unavailable)

    def start(self) -> None:
        if self._dyn is not None:
            self._thread.start()

    def submit(self, req: Request, live: bool) -> bool:
        """Queue a key frame. Live cameras never wait (the oldest request is skipped instead); others
        wait for room until the frame's deadline (back-pressure), then skip detection for it."""
        if self._dyn is None:
            return False
        if live:
            old = self.queue.put(req, drop_oldest=True)
            if old is not None:
                old.board.skip(old.index)
            return True
        return self.queue.put_wait(req, max(0.0, req.deadline - time.monotonic()))

    def close(self) -> None:
        self.queue.close()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        assert self._dyn is not None
        while True:
            try:
                reqs = self.queue.get_many(self.max_batch)
            except Closed:
                return
            try:
                now = time.monotonic()
                fresh = []
                for r in reqs:
                    if r.deadline <= now:
                        r.board.skip(r.index)  # already released by the masker; don't waste the detector on it
                    else:
                        fresh.append(r)
                by_shape: dict[tuple[object, ...], list[Request]] = {}
                for r in fresh:
                    by_shape.setdefault((r.layout, r.colour, *r.image.shape), []).append(r)
                for group in by_shape.values():
                    self._detect(group)
            except Exception:
                log.exception("detection stage error; the affected frames get the fail policy")
                for r in reqs:
                    r.board.post(Result(r.index, None, "detection stage error"))

    def _detect(self, reqs: list[Request]) -> None:
        assert self._dyn is not None
        batch = reqs[0].image[None] if len(reqs) == 1 else np.stack([r.image for r in reqs])
        t0 = time.monotonic()
        try:
            streams = [r.camera for r in reqs]  # per-camera memory (source-resolution pass), frames in order
            if reqs[0].layout == "yuv420p":
                boxes = _detect_yuv420p(self._dyn, batch, reqs[0].colour, streams)
            else:
                boxes = self._dyn.detect(batch, streams)
            if len(boxes) != len(reqs):
                raise RuntimeError(f"detector returned {len(boxes)} results for {len(reqs)} frames")
        except Exception as exc:
            ms = (time.monotonic() - t0) * 1000.0
            log.warning("detector failed on %d frame(s) (%s); those frames get the fail policy", len(reqs), exc)
            for r in reqs:
                r.stats.add("detector_errors")
                r.stats.detect_latency(ms)
                r.board.post(Result(r.index, None, str(exc)))
            return
        finally:
            self.calls += 1
        ms = (time.monotonic() - t0) * 1000.0
        for r, b in zip(reqs, boxes):
            r.stats.detect_latency(ms)
            r.board.post(Result(r.index, b))


def default_workers() -> int:
    """Detection threads per detector set by default: two per usable core (with one per core, 3
    cameras on 2 cores put two cameras on one thread, which then caps both)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    return 2 * max(1, cores)


def build_groups(cameras: list[Camera], factory: DetectorFactory, queue_size: int,
                 workers: int | None = None) -> list[DetectionGroup | None]:
    """Each camera's `DetectionGroup` (None: no detection), in the order given.

    Cameras with the same detector set are dealt round-robin to up to `workers` groups (default:
    two per core), each with its own thread and detector sessions: one thread would cap every
    camera of the set at what one core detects (ONNX Runtime releases the GIL, so the groups run
    on all cores). A camera's frames always go to the same group, in order (the source-resolution
    pass remembers per camera what it saw).
    """
    limit = max(1, workers if workers is not None else default_workers())
    members: dict[str, list[int]] = {}
    for i, cam in enumerate(cameras):
        key = group_key(cam)
        if key is not None:
            members.setdefault(key, []).append(i)
    out: list[DetectionGroup | None] = [None] * len(cameras)
    for key, idx in members.items():
        shards = min(limit, len(idx))
        for s in range(shards):
            mine = idx[s::shards]
            cams = [cameras[i] for i in mine]
            group = DetectionGroup(f"{key}#{s}", cams, factory, max_batch=max(4, len(cams)),
                                   queue_size=max(queue_size, 2 * len(cams)))
            for i in mine:
                out[i] = group
    return out


def unique_groups(groups: list[DetectionGroup | None]) -> list[DetectionGroup]:
    """The distinct groups of `build_groups`' result, in order."""
    return list({id(g): g for g in groups if g is not None}.values())
