"""`BoxTracker`: keeps faces and people masked through detector misses and fast motion.

An IoU tracker over one camera's mask boxes (SORT's association without its Kalman filter: a
constant-velocity model fitted by exponential smoothing is enough to decide where a box may be
`hold` frames later). Each detection result (a key frame's boxes) updates the tracks:

* association: IoU between the tracks' predicted boxes and the new boxes (same shape only: face
  ellipses with face ellipses, person boxes with person boxes), greedy on mutual best matches,
  all pairs of a round at once (numpy, no per-box loop); a match moves the track to the new box
  and updates its velocity; an unmatched box starts a track;
* a track not matched for more than `hold` frames is dropped.

`boxes(index)` is what tracks add to frame `index`: every track last seen before `index` (a
coasting track), covering both where it was and where its velocity takes it (the union of the
last box and the last box moved by velocity x age), grown per frame of age by half its speed,
`spread` x its size and `motion` pixels: the uncertainty grows with the track's own speed and
size, not with the frame's (a 20 px face far away is not grown like a passer-by close up).
The tracker only ever adds masks; it never removes or shrinks a detection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from masking.detect.nms import box_iou
from masking.masks.boxes import MaskBoxes

F32 = npt.NDArray[np.float32]


@dataclass
class _Tracks:
    """Parallel arrays, one row per track."""

    xyxy: F32  # (T, 4) last matched box
    velocity: F32  # (T, 2) pixels per frame (box centre)
    ellipse: npt.NDArray[np.bool_]  # (T,)
    seen: npt.NDArray[np.int64]  # (T,) frame index of the last match
    hits: npt.NDArray[np.int64]  # (T,) detections matched so far

    @classmethod
    def empty(cls) -> _Tracks:
        z = np.zeros(0, np.int64)
        return cls(np.zeros((0, 4), np.float32), np.zeros((0, 2), np.float32), np.zeros(0, bool), z, z.copy())

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def take(self, keep: npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> _Tracks:
        return _Tracks(self.xyxy[keep], self.velocity[keep], self.ellipse[keep], self.seen[keep], self.hits[keep])


def match(iou: F32, threshold: float) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Greedy one-to-one matching on an (A, B) IoU matrix: pairs (a, b) that are each other's best
    remaining partner with IoU >= threshold, taken a round at a time until none is left."""
    iou = np.where(iou >= threshold, iou, -1.0).astype(np.float32)
    rows: list[npt.NDArray[np.intp]] = []
    cols: list[npt.NDArray[np.intp]] = []
    while iou.size and (iou >= 0).any():
        best_b = iou.argmax(axis=1)
        best_a = iou.argmax(axis=0)
        a = np.flatnonzero((iou[np.arange(iou.shape[0]), best_b] >= 0) & (best_a[best_b] == np.arange(iou.shape[0])))
        b = best_b[a]
        rows.append(a)
        cols.append(b)
        iou[a, :] = -1.0
        iou[:, b] = -1.0
    if not rows:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    return np.concatenate(rows), np.concatenate(cols)


class BoxTracker:
    """Tracks of one camera's mask boxes (see the module docstring).

    Args:
        hold: frames a track stays masked after its last detection.
        motion: pixels a coasting box grows by per frame of age, on top of its own speed and size.
        spread: share of its size a coasting box grows by per frame of age.
        iou: minimum IoU between a track's predicted box and a detection to match them.
        smoothing: weight of the newest velocity measurement (exponential smoothing).
    """

    def __init__(self, hold: int, motion: float = 0.0, iou: float = 0.1, smoothing: float = 0.5,
                 spread: float = 0.05) -> None:
        self.hold = int(hold)
        self.motion = float(motion)
        self.spread = float(spread)
        self.iou = float(iou)
        self.smoothing = float(smoothing)
        self._t = _Tracks.empty()
        self._last = -1

    def __len__(self) -> int:
        return len(self._t)

    def update(self, index: int, boxes: MaskBoxes) -> None:
        """A detection result for frame `index` (results of one camera in frame order)."""
        if index <= self._last:
            return  # a result already applied (or an older one): tracks only move forward
        self._last = index
        t = self._t.take(index - self._t.seen <= self.hold)
        pred = self._predicted_from(t, index)
        iou = box_iou(pred, boxes.xyxy)
        iou[t.ellipse[:, None] != boxes.ellipse[None, :]] = 0.0
        a, b = match(iou, self.iou)
        if a.size:
            dt = (index - t.seen[a]).astype(np.float32)[:, None]
            c_old = (t.xyxy[a, :2] + t.xyxy[a, 2:]) * 0.5
            new = boxes.xyxy[b]
            c_new = (new[:, :2] + new[:, 2:]) * 0.5
            v = (c_new - c_old) / np.maximum(dt, 1.0)
            w = np.where(t.hits[a] > 1, self.smoothing, 1.0).astype(np.float32)[:, None]  # first speed: as measured
            t.velocity[a] = w * v + (1.0 - w) * t.velocity[a]
            t.xyxy[a] = new
            t.seen[a] = index
            t.hits[a] += 1
        fresh = np.ones(len(boxes), bool)
        fresh[b] = False
        n = int(fresh.sum())
        self._t = _Tracks(
            np.concatenate([t.xyxy, boxes.xyxy[fresh]]).astype(np.float32),
            np.concatenate([t.velocity, np.zeros((n, 2), np.float32)]),
            np.concatenate([t.ellipse, boxes.ellipse[fresh]]),
            np.concatenate([t.seen, np.full(n, index, np.int64)]),
            np.concatenate([t.hits, np.ones(n, np.int64)]),
        )

    def _predicted_from(self, t: _Tracks, index: int) -> F32:
        dt = (index - t.seen).astype(np.float32)[:, None]
        shift = t.velocity * dt
        return (t.xyxy + np.concatenate([shift, shift], axis=1)).astype(np.float32)

    def boxes(self, index: int, width: int, height: int) -> MaskBoxes:
        """What coasting tracks add to frame `index`: last box and predicted box, joined, grown."""
        age = index - self._t.seen
        live = (age > 0) & (age <= self.hold)
        if not live.any():
            return MaskBoxes.empty()
        t = self._t.take(live)
        pred = self._predicted_from(t, index)
        joined = np.concatenate([np.minimum(t.xyxy[:, :2], pred[:, :2]), np.maximum(t.xyxy[:, 2:], pred[:, 2:])], axis=1)
        size = np.maximum(t.xyxy[:, 2] - t.xyxy[:, 0], t.xyxy[:, 3] - t.xyxy[:, 1])
        speed = np.hypot(t.velocity[:, 0], t.velocity[:, 1])
        g = ((self.motion + self.spread * size + 0.5 * speed) * (index - t.seen)).astype(np.float32)[:, None]
        grown = joined + np.concatenate([-g, -g, g, g], axis=1)
        out = np.clip(grown, 0, np.array([width, height, width, height], np.float32))
        return MaskBoxes(out.astype(np.float32), t.ellipse)
