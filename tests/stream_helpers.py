"""Synthetic sources and sinks for the streaming-engine tests (real engine, real masker)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction

import cv2
import numpy as np

from masking.config.zones import Camera, DetectConfig, DetectSpec, parse_zones
from masking.detect.base import Batch, FakeDetector, bright_box_script
from masking.detect.detections import Detections
from masking.detect.dynamic import PRESETS, DynamicMasks
from masking.errors import MaskingError
from masking.models.cache import model_path
from masking.stream.frames import MaskedFrame, require_masked
from masking.stream.sources import SourceInfo

CORNER_ZONES = """cameras:
  - camera_id: cam
    zones:
      - {id: corner, kind: privacy_mask, polygon: [[0, 0], [0.2, 0], [0.2, 0.2], [0, 0.2]]}
"""
W, H, SQ = 320, 240, 24
ZONE_BOX = (0, 0, 64, 48)  # privacy zone: top-left 0.2 x 0.2
WATCH_BOX = (256, 192, 320, 240)  # watch zone: bottom-right 0.2 x 0.2


def square_at(index: int, speed: int = 0, camera: int = 0) -> tuple[int, int]:
    """Top-left corner of the bright square in frame `index` (moves right by `speed` px/frame)."""
    span = W - 80 - SQ - 4  # bounces between x = 80 and x = 80 + span: never jumps
    pos = (index * speed) % (2 * span)
    x = 80 + (pos if pos < span else 2 * span - pos)
    y = 90 + 20 * camera
    return x, y


def make_frame(index: int, speed: int = 0, camera: int = 0, marker: int = 0, appear_at: int = 0) -> np.ndarray:
    rng = np.random.default_rng(index)
    img = rng.integers(60, 140, size=(H, W, 3), dtype=np.uint8)
    x, y = square_at(index, speed, camera)
    if index >= appear_at:
        img[y : y + SQ, x : x + SQ] = 255
    if marker:
        img[-2:, -2:] = marker
    return img


class SyntheticSource:
    """N synthetic frames with a bright square; `live` decides back-pressure vs drop-oldest."""

    def __init__(self, n: int, speed: int = 0, camera: int = 0, live: bool = False, marker: int = 0,
                 interval_s: float = 0.0, name: str = "synthetic", appear_at: int = 0) -> None:
        self.n, self.speed, self.camera, self.live, self.marker = n, speed, camera, live, marker
        self.appear_at = appear_at
        self.interval_s = interval_s
        self.name = name
        self.time_base = Fraction(1, 90000)

    def open(self, stop: threading.Event) -> SourceInfo:
        return SourceInfo(W, H, Fraction(25), self.time_base)

    def frames(self, stop: threading.Event, layout: str = "bgr24") -> Iterator[tuple[object, int, Fraction]]:
        for i in range(self.n):
            if stop.is_set():
                return
            if self.interval_s:
                time.sleep(self.interval_s)
            yield make_frame(i, self.speed, self.camera, self.marker, self.appear_at), 1000 + i * 3600, self.time_base

    def close(self) -> None:
        return None


class CollectSink:
    """Keeps every masked frame (copies) in memory; optionally slow."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.frames: list[MaskedFrame] = []
        self.delay_s = delay_s
        self.closed = False

    def write(self, frame: MaskedFrame) -> None:
        frame = require_masked(frame)
        if self.delay_s:
            time.sleep(self.delay_s)
        self.frames.append(frame)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


def camera(detect: bool = True, margin: float = 1.0, **detect_opts: object) -> Camera:
    """A 320x240 camera: a privacy zone top-left, a watch zone bottom-right, optional detection
    (model name `yunet`, served by a `FakeDetector` in tests)."""
    cam = parse_zones({"cameras": [{
        "camera_id": "cam1",
        "zones": [
            {"id": "priv", "kind": "privacy_mask", "polygon": [[0, 0], [0.2, 0], [0.2, 0.2], [0, 0.2]]},
            {"id": "door", "kind": "watch", "polygon": [[0.8, 0.8], [1, 0.8], [1, 1], [0.8, 1]]},
        ],
    }]}).cameras[0]
    if not detect:
        return cam
    spec = DetectSpec(model="yunet", classes=["face"], threshold=0.3, margin=margin, shape="box", max_side=640)
    return cam.model_copy(update={"detect": DetectConfig(detectors=[spec], **detect_opts)})  # type: ignore[arg-type]


def factory_for(fake: FakeDetector) -> Callable[[Camera], DynamicMasks]:
    return lambda cam: DynamicMasks(cam, detectors={"yunet": fake})


def square_masked(frame: MaskedFrame, speed: int = 0, camera_no: int = 0, appear_at: int = 0) -> bool:
    """No pixel of the bright square is still bright in the output."""
    if frame.index < appear_at:
        return True
    x, y = square_at(frame.index, speed, camera_no)
    region = frame.image[y : y + SQ, x : x + SQ]
    return bool(region.max() < 200)


def region(frame: MaskedFrame, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return frame.image[y0:y1, x0:x1]


class ChaosFake(FakeDetector):
    """Detects the bright square, but raises on some calls and sleeps a random time on others (seeded)."""

    def __init__(self, seed: int, bright: int = 250) -> None:
        super().__init__(bright_box_script(bright))
        self.rng = np.random.default_rng(seed)

    def detect(self, batch: Batch) -> list[Detections]:
        roll = self.rng.random()
        if roll < 0.15:
            raise MaskingError("chaos: injected failure")
        if roll < 0.35:
            time.sleep(float(self.rng.uniform(0.02, 0.15)))
        return super().detect(batch)


def reference_faces(image: np.ndarray) -> np.ndarray:
    """Faces (x, y, w, h) found by OpenCV's own YuNet (same file, same threshold, same 640 px side
    as the `faces` preset): the independent reference for "no face left unmasked"."""
    spec = PRESETS["faces"]
    h, w = image.shape[:2]
    s = spec.max_side / max(h, w)
    small = cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    det = cv2.FaceDetectorYN.create(str(model_path("yunet")), "", (small.shape[1], small.shape[0]), spec.threshold, 0.3, 5000)
    _, faces = det.detect(small)
    return np.zeros((0, 4)) if faces is None else faces[:, :4] / s


def unmasked_faces(before: np.ndarray, after: np.ndarray, mad_limit: float = 12.0) -> tuple[int, list[tuple[int, ...]]]:
    """(faces the reference finds in `before`, boxes of those still unchanged in `after`: mean
    absolute grey difference below `mad_limit`, i.e. codec noise)."""
    ga = cv2.cvtColor(before, cv2.COLOR_BGR2GRAY).astype(np.int16)
    gb = cv2.cvtColor(after, cv2.COLOR_BGR2GRAY).astype(np.int16)
    left = []
    faces = reference_faces(before)
    for x, y, bw, bh in faces:
        x0, y0, x1, y1 = max(0, int(x)), max(0, int(y)), int(np.ceil(x + bw)), int(np.ceil(y + bh))
        if np.abs(ga[y0:y1, x0:x1] - gb[y0:y1, x0:x1]).mean() < mad_limit:
            left.append((x0, y0, x1, y1))
    return len(faces), left

