"""Detection at source resolution, re-run only where the picture changed.

A detector fed a copy of the frame shrunk to 640 px misses faces that are small in the source
(a 20x34 px face of a 1280x720 frame is 10x17 px at 640: under what YuNet finds). Running it on
the whole full-resolution frame costs 3.5x (720p) to 8x (1080p) the shrunk pass. `NativePass`
runs it at full resolution only where needed, and keeps what it found elsewhere:

* each frame's grey thumbnail (one mean per 8x8 block) is compared with the thumbnail each block
  had when the detector last looked at it; blocks that moved by more than `change` grey levels
  (codec noise moves block means by 1-2) are *changed*;
* changed blocks, grown by `context` pixels (a face whose blocks changed lies whole inside), are
  split into connected regions; each region's bounding box, rounded up to a multiple of 32, is
  cut from the full-resolution frame; crops of equal size go into one detector call;
* detections lying wholly inside a re-examined crop are replaced by what the detector finds there
  now; all others are kept: their pixels have not changed, so the detector would find them again;
* every `refresh` frames the whole frame is examined (a safety net for changes that creep in
  below `change` levels per block since the last look).

A face that walks in, turns or moves changes its blocks, so it is re-examined on that very frame.
Without a stream key (single images) the whole frame is examined. Costs are counted in `cost`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from masking.detect.base import Detector, deferred_detect
from masking.detect.detections import Detections
from masking.detect.nms import nms
from masking.errors import DetectorError

log = logging.getLogger(__name__)

BLOCK = 8  # thumbnail pixel = one 8x8 block of the frame
CHANGE_LEVELS = 6.0  # a block whose mean grey moved by more than this since the last look is re-examined
REFRESH_FRAMES = 30  # the whole frame is examined at least this often
ALIGN = 32  # crops are rounded up to this (YuNet's stride; fewer distinct input shapes)

Thumb = npt.NDArray[np.int16]
Crop = Callable[[int, int, int, int, int], npt.NDArray[np.uint8]]  # (frame, x0, y0, x1, y1) -> BGR pixels


def thumb_size(width: int, height: int) -> tuple[int, int]:
    return max(1, math.ceil(width / BLOCK)), max(1, math.ceil(height / BLOCK))


def thumbnail(grey: npt.NDArray[np.uint8]) -> Thumb:
    """One mean grey value per 8x8 block of a (H, W) grey picture (or a yuv420p frame's Y plane)."""
    h, w = grey.shape
    return np.asarray(cv2.resize(grey, thumb_size(w, h), interpolation=cv2.INTER_AREA), np.int16)


def bgr_thumbnail(frame: npt.NDArray[np.uint8]) -> Thumb:
    return thumbnail(np.asarray(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), np.uint8))


@dataclass
class _Memory:
    """What one stream's detector last saw (per block) and found (frame pixels).

    `broken`: a look planned against this memory was never completed (the detector failed): the
    looks planned after it would trust `seen` for changes nobody examined, so they fail too.
    """

    size: tuple[int, int]
    seen: Thumb
    found: Detections
    since_full: int = 0
    broken: bool = False


@dataclass
class NativeJob:
    """One call's planned looks (`NativePass.prepare`), waiting for the detector (`finish`)."""

    keys: list[Hashable | None]
    crops: list[npt.NDArray[np.int64]]  # per frame: the crops to examine
    whole: list[bool]  # per frame: the whole frame is examined (nothing old is kept)
    memories: list[_Memory | None]
    calls: list[tuple[list[tuple[int, int]], Callable[[], list[Detections]]]]  # per crop size: (frame, crop)s, the detector call


@dataclass
class NativeCost:
    """Counters for benchmarks: frames, crops and the share of frame pixels examined."""

    frames: int = 0
    crops: int = 0
    calls: int = 0
    pixels: float = 0.0  # examined pixels / frame pixels, summed over frames


def regions(changed: npt.NDArray[np.bool_], context_blocks: int, width: int, height: int) -> npt.NDArray[np.int64]:
    """(R, 4) x0, y0, x1, y1 pixel crops covering the changed blocks grown by `context_blocks`,
    one per connected region, rounded up to multiples of `ALIGN` inside the frame."""
    if not changed.any():
        return np.zeros((0, 4), np.int64)
    k = 2 * context_blocks + 1
    grown = cv2.dilate(changed.astype(np.uint8), np.ones((k, k), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
    st = stats[1:n].astype(np.int64)
    x0, y0 = st[:, 0] * BLOCK, st[:, 1] * BLOCK
    w = np.minimum((st[:, 0] + st[:, 2]) * BLOCK, width) - x0
    h = np.minimum((st[:, 1] + st[:, 3]) * BLOCK, height) - y0
    w = np.minimum(-(-w // ALIGN) * ALIGN, width)
    h = np.minimum(-(-h // ALIGN) * ALIGN, height)
    x0 = np.clip(x0 - np.maximum(x0 + w - width, 0), 0, None)  # shift back inside the frame
    y0 = np.clip(y0 - np.maximum(y0 + h - height, 0), 0, None)
    return np.stack([x0, y0, x0 + w, y0 + h], axis=1)


def inside_any(xyxy: npt.NDArray[np.float32], crops: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Whether each box lies wholly inside at least one crop."""
    if not len(xyxy) or not len(crops):
        return np.zeros(len(xyxy), bool)
    c = crops.astype(np.float32)
    ok = (xyxy[:, None, 0] >= c[None, :, 0]) & (xyxy[:, None, 1] >= c[None, :, 1])
    ok &= (xyxy[:, None, 2] <= c[None, :, 2]) & (xyxy[:, None, 3] <= c[None, :, 3])
    return np.asarray(ok.any(axis=1))


class NativePass:
    """A detector at source resolution where the picture changed (see the module docstring).

    Args:
        detector: the model; crops of equal size from all frames of a call go into one call.
        context: pixels around changed blocks that are examined with them (>= the largest face
            whose blocks may change only in part).
        change: grey levels a block mean must move by to be re-examined.
        refresh: the whole frame is examined at least every `refresh` frames.
        iou: IoU above which detections from overlapping crops are duplicates.
    """

    def __init__(self, detector: Detector, context: int, change: float = CHANGE_LEVELS,
                 refresh: int = REFRESH_FRAMES, iou: float = 0.3) -> None:
        self.detector = detector
        self.context_blocks = max(1, math.ceil(context / BLOCK))
        self.change = float(change)
        self.refresh = max(1, int(refresh))
        self.iou = float(iou)
        self._memory: dict[Hashable, _Memory] = {}
        self.cost = NativeCost()

    def forget(self, stream: Hashable) -> None:
        self._memory.pop(stream, None)

    def _changed(self, key: Hashable | None, thumb: Thumb, size: tuple[int, int]) -> tuple[npt.NDArray[np.bool_] | None, _Memory | None]:
        """The changed blocks (None: examine the whole frame) and the stream's memory."""
        mem = self._memory.get(key) if key is not None else None
        if mem is not None and mem.size == size and mem.since_full + 1 < self.refresh:
            changed = np.abs(thumb - mem.seen) > self.change
            mem.seen[changed] = thumb[changed]
            mem.since_full += 1
            return changed, mem
        if mem is not None and mem.size == size:  # time for a whole look: the same memory, reset
            mem.seen, mem.since_full = thumb.copy(), 0
        elif key is not None:  # a new stream or a new frame size
            mem = _Memory(size, thumb.copy(), Detections.empty(self.detector.class_names))
            self._memory[key] = mem
        return None, mem

    def detect(self, crop: Crop, thumbs: Sequence[Thumb],
               width: int, height: int, streams: Sequence[Hashable | None] | None = None) -> list[Detections]:
        """Detections in frame pixels for each of `len(thumbs)` frames: `finish(prepare(...))`.

        Args:
            crop: (k, x0, y0, x1, y1) -> the full-resolution (y1-y0, x1-x0, 3) BGR pixels of frame
                k inside that rectangle (called only for the crops to examine; coordinates are
                even unless the frame's size is odd).
            thumbs: each frame's `thumbnail`.
            streams: each frame's stream key (frames of one stream in order); None: no memory,
                every frame examined whole.
        """
        return self.finish(self.prepare(crop, thumbs, width, height, streams))

    def prepare(self, crop: Crop, thumbs: Sequence[Thumb],
                width: int, height: int, streams: Sequence[Hashable | None] | None = None) -> NativeJob:
        """Plan the looks (changed regions) and cut their pixels; nothing is detected yet.

        Jobs of one stream must be finished in the order they were prepared; a later job may be
        prepared before an earlier one is finished (the detection stage overlaps the two).
        """
        n = len(thumbs)
        keys: list[Hashable | None] = list(streams) if streams is not None else [None] * n
        if len(keys) != n:
            raise DetectorError(f"{len(keys)} stream keys for {n} frames")
        try:
            return self._prepare(crop, thumbs, width, height, keys)
        except BaseException:
            # the memory may hold thumbnails whose detections will never be stored: forget it, so
            # the next frame of these streams is examined whole (never reuse what nobody looked at)
            for key in keys:
                self.forget(key)
            raise

    def _prepare(self, crop: Crop, thumbs: Sequence[Thumb], width: int, height: int,
                 keys: list[Hashable | None]) -> NativeJob:
        job = NativeJob(keys, [], [], [], [])
        members: dict[tuple[int, int], list[tuple[int, int]]] = {}  # crop (w, h) -> [(frame, crop)]
        for k, thumb in enumerate(thumbs):
            changed, mem = self._changed(keys[k], thumb, (width, height))
            whole = changed is None
            if changed is None:
                crops = np.array([[0, 0, width, height]], np.int64)
            else:
                crops = regions(changed, self.context_blocks, width, height)
            job.crops.append(crops)
            job.whole.append(whole)
            job.memories.append(mem)
            for j, (x0, y0, x1, y1) in enumerate(crops):
                members.setdefault((int(x1 - x0), int(y1 - y0)), []).append((k, j))
            self.cost.pixels += float(((crops[:, 2] - crops[:, 0]) * (crops[:, 3] - crops[:, 1])).sum()) / (width * height)
        self.cost.frames += len(thumbs)
        for group in members.values():
            cuts = np.stack([crop(k, *(int(v) for v in job.crops[k][j])) for k, j in group])
            job.calls.append((group, deferred_detect(self.detector, cuts)))
        return job

    def finish(self, job: NativeJob) -> list[Detections]:
        """Run the detector on a prepared job's crops and merge with what each stream kept."""
        try:
            broken = [k for k, mem in enumerate(job.memories) if mem is not None and mem.broken]
            if broken:
                raise DetectorError(f"frame {broken[0]} of this call was planned after a look that failed")
            return self._finish(job)
        except BaseException:
            self.abandon(job)
            raise

    def abandon(self, job: NativeJob) -> None:
        """A prepared job that will not be finished: its streams' memories are dropped, and jobs
        planned after it against them fail in `finish` (they trusted looks nobody made)."""
        for key, mem in zip(job.keys, job.memories):
            if mem is not None:
                mem.broken = True
            if key is not None and self._memory.get(key) is mem:
                self.forget(key)

    def _finish(self, job: NativeJob) -> list[Detections]:
        found: dict[tuple[int, int], Detections] = {}
        for group, call in job.calls:
            dets = call()
            if len(dets) != len(group):
                raise DetectorError(f"detector {self.detector.name!r} returned {len(dets)} results for {len(group)} crops")
            self.cost.calls += 1
            self.cost.crops += len(group)
            for (k, j), d in zip(group, dets):
                x0, y0 = job.crops[k][j][:2]
                found[(k, j)] = Detections(d.xyxy + np.array([x0, y0, x0, y0], np.float32), d.confidence, d.class_id, d.class_names)
        out: list[Detections] = []
        for k, (crops, mem) in enumerate(zip(job.crops, job.memories)):
            parts = [found[(k, j)] for j in range(len(crops))]
            if mem is not None and not job.whole[k]:
                old = mem.found
                parts.append(old[~inside_any(old.xyxy, crops)])
            d = self._merged(parts)
            if mem is not None:
                mem.found = d
            out.append(d)
        return out

    def _merged(self, parts: list[Detections]) -> Detections:
        parts = [p for p in parts if len(p)]
        if not parts:
            return Detections.empty(self.detector.class_names)
        if len(parts) == 1:
            return parts[0]
        d = Detections.merge(parts)
        return d[nms(d.xyxy, d.confidence, self.iou, d.class_id)]
