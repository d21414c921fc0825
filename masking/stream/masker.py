"""The masking stage: the only place a `MaskedFrame` is made.

For each source frame, in order, it decides which detection result applies and how the frame is
masked (`choose_masking`), then draws with `masking.masks.apply.ZoneMasker` (static zones always).

Rules, for a camera detecting on every k-th frame ("key frames", index % k == 0):
* key frame: wait for its own result until its deadline (submission + max_latency_ms);
* other frames: the result of the latest key frame before them, grown by the expected motion
  (`hold_motion` x long side per frame since that detection);
* every frame also keeps the boxes of the `hysteresis` (default 1) key frames before, grown by
  their age, and (`lookahead`, default on) of the NEXT key frame, grown by the distance: a face that
  enters between detections, or whose score flickers around the threshold, stays masked. The
  look-ahead waits for that result, but never past the frame's own deadline (arrival +
  max_latency_ms); it adds about `every` frames of latency on live streams;
* result missing at the deadline (late, skipped, overload): the latest earlier result, grown, if
  it is at most `hold_frames` frames old (`held`); otherwise the fail policy;
* tracks (`track_frames` > 0, `masking.detect.tracker`): every detection result updates the
  camera's tracks; a track missed on a frame (detector flicker, occlusion, a turned head) stays
  masked for `track_frames` frames, moved with its velocity and grown. Tracks only add boxes to
  frames that draw boxes; they never turn a fail-policy frame into a masked-by-detections one;
* the latest applicable result is a failure (detector raised), the model is missing, or the frame
  is corrupt: the fail policy. `full` blacks the whole frame (corrupt frames always get `full`);
  `zones` masks every zone (watch zones too) plus the last good detections, grown; when there is
  no good detection from the last `zones_memory` frames, `zones` escalates to `full`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from masking.config.zones import Camera, MaskStyle
from masking.detect.tracker import BoxTracker
from masking.masks.boxes import MaskBoxes
from masking.stream.frames import Image, MaskedBy, MaskedFrame, SourceFrame, seal


class RegionSealer(Protocol):
    """Vault seam (masking.vault.recorder.VaultSealer): copies original pixels before they are masked."""

    def capture(self, img: Image, xyxy: np.ndarray | None, layout: str) -> object: ...


class Masker(Protocol):
    """What the stage needs from `masking.masks.apply.ZoneMasker`."""

    def apply(self, frames: Image) -> Image: ...
    def apply_all_zones(self, frames: Image) -> Image: ...
    def apply_yuv420p(self, buf: Image, include_watch: bool = False) -> Image: ...
    def apply_boxes(self, frame: Image, boxes: MaskBoxes, style: MaskStyle | None = None) -> Image: ...
    def apply_boxes_yuv420p(self, buf: Image, boxes: MaskBoxes, style: MaskStyle | None = None) -> Image: ...
    @staticmethod
    def apply_full(frames: Image) -> Image: ...


@dataclass(frozen=True)
class MaskPolicy:
    """How one camera holds detections and fails closed."""

    every: int = 1
    fail_policy: Literal["full", "zones"] = "full"
    max_latency_ms: float = 1000.0
    hold_motion: float = 0.02
    hold_frames: int = 0  # 0: 2 * every
    hysteresis: int = 1  # earlier key-frame results also masked (grown), against detector flicker
    lookahead: bool = True  # also mask the next key frame's detections (waits for them, within the deadline)
    track_frames: int = 0  # tracks stay masked this many frames after their last detection (0: no tracker)

    @property
    def zones_memory(self) -> int:
        """Policy `zones` needs a good detection at most this many frames old, else `full` applies."""
        return max(10 * self.every, 10)

    @property
    def hold_limit(self) -> int:
        return self.hold_frames if self.hold_frames > 0 else 2 * self.every

    @classmethod
    def from_camera(cls, camera: Camera, hold_motion: float = 0.02) -> MaskPolicy:
        d = camera.detect
        if d is None:
            return cls(hold_motion=hold_motion)
        return cls(every=d.every, fail_policy=d.fail_policy, max_latency_ms=d.max_latency_ms, hold_motion=hold_motion,
                   track_frames=d.track_frames)


@dataclass(frozen=True)
class Result:
    """A detection result for key frame `index`; `boxes is None` means the detector failed."""

    index: int
    boxes: MaskBoxes | None
    error: str | None = None


class ResultBoard:
    """Detection results of one camera, posted by the detection stage, awaited by the masker."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._results: dict[int, Result] = {}
        self._pending: set[int] = set()  # submitted, no result yet
        self._skipped: set[int] = set()  # key frames that will never get a result
        self._finished = False  # the source has ended: nothing more will be submitted
        self.unavailable: str | None = None  # detector could not be loaded: everything by policy

    def submitted(self, index: int) -> None:
        """Key frame `index` goes to the detector (called before it is queued)."""
        with self._cond:
            self._pending.add(index)

    def skip(self, index: int) -> None:
        """Key frame `index` will get no result (corrupt, or dropped from the detector's queue)."""
        with self._cond:
            self._pending.discard(index)
            self._skipped.add(index)
            self._cond.notify_all()

    def finish(self) -> None:
        """The source has ended; waiting for key frames it never produced ends at once."""
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def post(self, result: Result) -> None:
        with self._cond:
            self._pending.discard(result.index)
            self._results[result.index] = result
            self._cond.notify_all()

    def set_unavailable(self, reason: str) -> None:
        with self._cond:
            self.unavailable = reason
            self._cond.notify_all()

    def wait_for(self, index: int, deadline: float) -> Result | None:
        """The result of key frame `index`, waiting until `deadline` (monotonic); None if late."""
        with self._cond:
            while index not in self._results and self.unavailable is None and index not in self._skipped:
                if self._finished and index not in self._pending:
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return self._results.get(index)

    def latest(self, at_or_before: int, ok_only: bool = False) -> Result | None:
        """The newest result for a key frame <= `at_or_before` (successful ones only if asked)."""
        with self._cond:
            keys = [k for k, r in self._results.items() if k <= at_or_before and (r.boxes is not None or not ok_only)]
            return self._results[max(keys)] if keys else None

    def prune(self, below: int) -> None:
        """Forget results older than `below`, except the newest good one among them (policy `zones`
        and hysteresis of later frames may still need it)."""
        with self._cond:
            old = [k for k in self._results if k < below]
            good = [k for k in old if self._results[k].boxes is not None]
            keep = max(good) if good else None
            for k in old:
                if k != keep:
                    del self._results[k]
            self._skipped = {k for k in self._skipped if k >= below}


@dataclass(frozen=True)
class FrameMasking:
    """How one frame is masked: the rule that applies and the boxes it draws."""

    masked_by: MaskedBy
    boxes: MaskBoxes | None  # boxes to draw, already grown
    late: bool = False  # the frame's own key result was not there in time
    source: Result | None = None  # the (successful) key-frame result the boxes come from

    @property
    def draws_boxes(self) -> bool:
        """Whether boxes are drawn on this frame (everything but a fully blacked frame)."""
        return self.masked_by in (MaskedBy.detections, MaskedBy.held, MaskedBy.policy_zones)


def _grown(r: Result, index: int, motion_px: float, w: int, h: int) -> MaskBoxes:
    assert r.boxes is not None
    d = abs(index - r.index)  # results of later key frames (look-ahead) grow by their distance too
    return r.boxes if d == 0 or len(r.boxes) == 0 else r.boxes.grown_by(motion_px * d, w, h)


def choose_masking(index: int, deadline: float | None, policy: MaskPolicy, board: ResultBoard, w: int, h: int,
                   arrival: float | None = None) -> FrameMasking:
    """Which rule masks frame `index` (see the module docstring)."""
    motion = policy.hold_motion * max(w, h)
    fail = MaskedBy.policy_full if policy.fail_policy == "full" else MaskedBy.policy_zones

    def failing(late: bool = False) -> FrameMasking:
        last = board.latest(index, ok_only=True)
        if fail is MaskedBy.policy_zones and (last is None or index - last.index > policy.zones_memory):
            # `zones` covers people only through recent detections; without any, mask everything.
            return FrameMasking(MaskedBy.policy_full, None, late)
        return FrameMasking(fail, _grown(last, index, motion, w, h) if last else None, late)

    if board.unavailable is not None:
        return failing()
    key = index - index % policy.every
    late = False
    if key == index:
        if deadline is None:  # never submitted
            return failing()
        own = board.wait_for(index, deadline)
        if own is None:
            late = True
    r = board.latest(index)
    if r is None or r.boxes is None:
        return failing(late)
    if r.index == key:
        by = MaskedBy.detections if key == index else MaskedBy.held
    elif index - r.index <= policy.hold_limit:
        by = MaskedBy.held
    else:
        return failing(late)
    boxes = _with_previous(r, index, motion, w, h, policy, board)
    if policy.lookahead:
        until = deadline if key == index and deadline is not None else (arrival or time.monotonic()) + policy.max_latency_ms / 1000.0
        nxt = board.wait_for(key + policy.every, until)
        if nxt is not None and nxt.boxes is not None and len(nxt.boxes):
            boxes = MaskBoxes.concat([boxes, _grown(nxt, index, motion, w, h)])
    return FrameMasking(by, boxes, late, r)


def _with_previous(r: Result, index: int, motion: float, w: int, h: int, policy: MaskPolicy, board: ResultBoard) -> MaskBoxes:
    """`r`'s boxes plus those of the `hysteresis` key frames before it, each grown by its age.

    A face whose score hovers at the threshold flickers in and out of single detections; keeping
    the previous key frame's boxes (grown by the motion since) masks it through the flicker.
    """
    parts = [_grown(r, index, motion, w, h)]
    last = r.index
    for _ in range(policy.hysteresis):
        prev = board.latest(last - 1)
        if prev is None or prev.boxes is None or r.index - prev.index > policy.every * policy.hysteresis:
            break
        parts.append(_grown(prev, index, motion, w, h))
        last = prev.index
    return parts[0] if len(parts) == 1 else MaskBoxes.concat(parts)


class MaskStage:
    """Turns `SourceFrame`s into `MaskedFrame`s for one camera."""

    def __init__(self, masker: Masker, policy: MaskPolicy, board: ResultBoard | None, width: int, height: int,
                 layout: str = "bgr24", sealer: RegionSealer | None = None) -> None:
        self.masker = masker
        self.sealer = sealer  # vault: dynamic regions are captured after the zones, before the masks
        self.policy = policy
        self.board = board  # None: no detection configured (static zones only)
        self.width = width
        self.height = height
        self.layout = layout
        self.tracker: BoxTracker | None = None
        if board is not None and policy.track_frames > 0:
            self.tracker = BoxTracker(policy.track_frames)  # grows with each track's own speed and size

    def _black(self) -> Image:
        if self.layout == "yuv420p":
            img = np.full((self.height * 3 // 2, self.width), 128, np.uint8)
            img[: self.height] = 16  # limited-range black
            return img
        img = np.zeros((self.height, self.width, 3), np.uint8)
        self.masker.apply_full(img[None])
        return img

    def process(self, sf: SourceFrame) -> tuple[MaskedFrame, FrameMasking]:
        """Mask one frame (in place when it is safe to) and seal it."""
        regions = None
        if sf.corrupt is not None:
            img: Image = self._black()
            decision = FrameMasking(MaskedBy.policy_full, None)
        elif self.board is None:
            img = sf.image
            if self.layout == "yuv420p":
                self.masker.apply_yuv420p(img)
            else:
                self.masker.apply(img[None])
            decision = FrameMasking(MaskedBy.static_only, None)
        else:
            decision = choose_masking(sf.index, sf.deadline, self.policy, self.board, self.width, self.height, sf.arrival)
            if self.tracker is not None:
                decision = self._tracked(sf.index, decision)
            img = sf.image
            if decision.late:
                img = img.copy()  # the detector may still be reading the original
            regions = self._draw(img, decision)
            if sf.index % self.policy.every == 0:
                self.board.prune(sf.index - self.policy.hold_limit - self.policy.every)
        frame = MaskedFrame(sf.index, img, sf.pts, sf.time_base, decision.masked_by, sf.arrival, seal(), self.layout,
                            regions)
        return frame, decision

    def _tracked(self, index: int, d: FrameMasking) -> FrameMasking:
        """`d` plus the boxes of tracks missed on this frame (never fewer boxes, same rule)."""
        assert self.tracker is not None
        if d.source is not None and d.source.boxes is not None:
            self.tracker.update(d.source.index, d.source.boxes)
        if not d.draws_boxes:
            return d
        extra = self.tracker.boxes(index, self.width, self.height)
        if not len(extra):
            return d
        boxes = extra if d.boxes is None else MaskBoxes.concat([d.boxes, extra])
        return FrameMasking(d.masked_by, boxes, d.late, d.source)

    def _capture(self, img: Image, d: FrameMasking) -> object:
        """Vault: the original pixels about to be masked dynamically, static zones already drawn
        (the whole frame when a fail policy masks it). None without a vault or without boxes."""
        if self.sealer is None:
            return None
        if d.masked_by.by_policy:
            if self.layout == "yuv420p":
                self.masker.apply_yuv420p(img)
            else:
                self.masker.apply(img[None])
            return self.sealer.capture(img, None, self.layout)
        if d.boxes is not None and len(d.boxes):
            return self.sealer.capture(img, d.boxes.xyxy, self.layout)
        return None

    def _draw(self, img: Image, d: FrameMasking) -> object:
        """Draw the decision; returns what the vault sealer captured (None without one)."""
        if self.layout == "yuv420p":
            return self._draw_yuv420p(img, d)
        batch = img[None]
        if d.masked_by.by_policy:
            regions = self._capture(img, d)
            if d.masked_by is MaskedBy.policy_full:
                self.masker.apply_full(batch)
                return regions
            self.masker.apply_all_zones(batch)
        else:
            self.masker.apply(batch)
            regions = self._capture(img, d)
        if d.boxes is not None and len(d.boxes):
            self.masker.apply_boxes(img, d.boxes)  # boxes overlap (held + next + previous): all stay masked
        return regions

    def _draw_yuv420p(self, img: Image, d: FrameMasking) -> object:
        """`_draw` on yuv420p planes: the same rules, no colour conversion."""
        if d.masked_by.by_policy:
            regions = self._capture(img, d)
            if d.masked_by is MaskedBy.policy_full:
                img[: self.height] = 16  # limited-range black, as `_black`
                img[self.height :] = 128
                return regions
            self.masker.apply_yuv420p(img, include_watch=True)
        else:
            self.masker.apply_yuv420p(img)
            regions = self._capture(img, d)
        if d.boxes is not None and len(d.boxes):
            self.masker.apply_boxes_yuv420p(img, d.boxes)
        return regions
