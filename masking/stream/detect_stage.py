"""The detection stage: threads serving groups of cameras that share the same detector set.

Cameras whose detection config is identical and frame-wide (`where: frame`) are dealt to up to
two groups per core (`build_groups`); each group has its own `DynamicMasks` (the model sessions
are shared) and two threads: one prepares a call (changed regions, colour conversion, the
network's input) while the other runs the network on the call before. Key frames from a group's
cameras are pooled, and frames of the same size go into ONE detector call, whichever camera they
come from. Results are posted to each camera's `ResultBoard`. A detector that raises posts a failure for every frame of the call; a
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
from functools import partial
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
    """What the stage needs from `masking.detect.dynamic.DynamicMasks`. When the object also has
    `prepare` / `prepare_yuv420p` and `finish` (DynamicMasks does), the stage splits each call in
    two and overlaps them; otherwise `detect` runs whole in the second stage."""

    def detect(self, batch: np.ndarray, streams: Sequence[Hashable | None] | None = None) -> list[MaskBoxes]: ...


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
    remember: bool = True  # frames of a stream (the detector keeps what it saw); False: unrelated stills


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
        # two stages, so one camera's detection uses two cores: `prepare` (changed regions, colour
        # conversion, crops) of the next call runs while the detectors run on this one
        self._ready: BoundedQueue[tuple[list[Request], Callable[[], list[MaskBoxes]], float]] = BoundedQueue(2)
        name = f"{cameras[0].camera_id}+{len(cameras) - 1}"
        self._threads = [threading.Thread(target=self._prepare_loop, name=f"detect-prep[{name}]", daemon=True),
                         threading.Thread(target=self._finish_loop, name=f"detect[{name}]", daemon=True)]

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
            for t in self._threads:
                t.start()

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
        end = time.monotonic() + timeout
        for t in self._threads:
            if t.is_alive():
                t.join(max(0.0, end - time.monotonic()))

    def _prepare_loop(self) -> None:
        assert self._dyn is not None
        try:
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
                        t0 = time.monotonic()
                        try:
                            finish = self._prepare(group)
                        except Exception as exc:
                            self._failed(group, exc, t0)
                            continue
                        self._ready.put((group, finish, t0))  # waits while two calls are ready
                except Exception:
                    log.exception("detection stage error; the affected frames get the fail policy")
                    for r in reqs:
                        r.board.post(Result(r.index, None, "detection stage error"))
        finally:
            self._ready.close()

    def _prepare(self, reqs: list[Request]) -> Callable[[], list[MaskBoxes]]:
        """The first half of the detection of `reqs` (one layout and size); returns the second."""
        assert self._dyn is not None
        dyn = self._dyn
        # per-camera memory (source-resolution pass), frames in order; stills are examined whole
        streams: list[Hashable | None] = [r.camera if r.remember else None for r in reqs]
        images = [r.image for r in reqs]
        if reqs[0].layout == "yuv420p":
            prepare = getattr(dyn, "prepare_yuv420p", None)
            if prepare is not None:
                prepared = prepare(images, reqs[0].colour, streams)
                return partial(dyn.finish, prepared)  # type: ignore[attr-defined]
            bgr = np.stack([cv2.cvtColor(b, cv2.COLOR_YUV2BGR_I420) for b in images])
            return partial(dyn.detect, bgr, streams)
        batch = images[0][None] if len(images) == 1 else np.stack(images)
        prepare = getattr(dyn, "prepare", None)
        if prepare is not None:
            return partial(dyn.finish, prepare(batch, streams))  # type: ignore[attr-defined]
        return partial(dyn.detect, batch, streams)

    def _finish_loop(self) -> None:
        while True:
            try:
                reqs, finish, t0 = self._ready.get()
            except Closed:
                return
            try:
                boxes = finish()
                if len(boxes) != len(reqs):
                    raise RuntimeError(f"detector returned {len(boxes)} results for {len(reqs)} frames")
            except Exception as exc:
                self._failed(reqs, exc, t0)
                continue
            finally:
                self.calls += 1
            ms = (time.monotonic() - t0) * 1000.0
            for r, b in zip(reqs, boxes):
                r.stats.detect_latency(ms)
                r.board.post(Result(r.index, b))

    @staticmethod
    def _failed(reqs: list[Request], exc: Exception, t0: float) -> None:
        ms = (time.monotonic() - t0) * 1000.0
        log.warning("detector failed on %d frame(s) (%s); those frames get the fail policy", len(reqs), exc)
        for r in reqs:
            r.stats.add("detector_errors")
            r.stats.detect_latency(ms)
            r.board.post(Result(r.index, None, str(exc)))


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
