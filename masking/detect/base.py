"""The `Detector` protocol, and `FakeDetector`, the test seam that replaces a real model."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from masking.detect.detections import Detections
from masking.errors import DetectorError

Batch = npt.NDArray[np.uint8]  # (N, H, W, 3) BGR


@runtime_checkable
class Detector(Protocol):
    """Anything that finds boxes in a batch of BGR frames."""

    name: str
    class_names: tuple[str, ...]

    def detect(self, batch: Batch) -> list[Detections]:
        """Detect in a `(N, H, W, 3)` uint8 BGR batch (any H, W); one `Detections` per frame,
        boxes in the batch's pixel coordinates."""
        ...


def deferred_detect(detector: Detector, batch: Batch) -> Callable[[], list[Detections]]:
    """`detector.detect(batch)` in two halves: what can be done now is done now (an ONNX detector's
    `prepare_input`: its network input), the rest when the returned call runs. The pipeline's
    detection stage prepares the next call while the network runs on this one."""
    split = getattr(detector, "prepare_input", None)
    if split is None:
        return partial(detector.detect, batch)
    return partial(detector.complete, split(batch))  # type: ignore[attr-defined]


def as_batch(frames: npt.NDArray[np.uint8]) -> Batch:
    """Accept a single frame `(H, W, 3)` or a batch `(N, H, W, 3)`; return a batch; check dtype."""
    arr = np.asarray(frames)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise DetectorError(f"expected uint8 BGR frames (H, W, 3) or (N, H, W, 3), got {arr.dtype} {arr.shape}")
    return arr


class FakeDetector:
    """A scripted detector for tests: returns given boxes, or raises, or sleeps.

    `script(frame_index, frame) -> Detections` decides per frame (frame_index counts every frame
    this detector has seen). `fail_on` frame indices raise `DetectorError`; `delay_s` sleeps per call.
    """

    def __init__(
        self,
        script: Callable[[int, npt.NDArray[np.uint8]], Detections] | None = None,
        class_names: Sequence[str] = ("face",),
        fail_on: Callable[[int], bool] | None = None,
        delay_s: float = 0.0,
        name: str = "fake",
    ) -> None:
        self.name = name
        self.class_names = tuple(class_names)
        self._script = script
        self._fail_on = fail_on
        self._delay_s = delay_s
        self._seen = 0
        self._lock = threading.Lock()
        self.calls = 0

    def detect(self, batch: Batch) -> list[Detections]:
        batch = as_batch(batch)
        with self._lock:
            start = self._seen
            self._seen += len(batch)
            self.calls += 1
        if self._delay_s:
            time.sleep(self._delay_s)
        out: list[Detections] = []
        for k in range(len(batch)):
            idx = start + k
            if self._fail_on is not None and self._fail_on(idx):
                raise DetectorError(f"{self.name}: injected failure at frame {idx}")
            out.append(self._script(idx, batch[k]) if self._script else Detections.empty(self.class_names))
        return out


def bright_box_script(threshold: int = 250, class_names: Sequence[str] = ("face",)) -> Callable[[int, npt.NDArray[np.uint8]], Detections]:
    """A script that 'detects' the bounding box of near-white pixels: handy with synthetic frames."""

    def script(_: int, frame: npt.NDArray[np.uint8]) -> Detections:
        ys, xs = np.nonzero(frame.min(axis=2) >= threshold)
        if xs.size == 0:
            return Detections.empty(class_names)
        box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
        return Detections(box, np.array([0.99], np.float32), np.array([0], np.int32), tuple(class_names))

    return script
