"""Apply a camera's masks to frames, in place: static zones, dynamic boxes, the whole frame.

Work is proportional to the masked area, not the frame, and memory to the frame, not the number
of zones: the zones of each style are rasterised into one mask once per resolution, cut into a few
rectangles around its clusters, each with a 0/1 mask inside it, and the style is computed on those
rectangles only (blur reads a margin of one kernel radius so the zone's edge is
blurred with its real neighbours). Copy-back under the mask is `cv2.copyTo`, a SIMD masked copy.

Where zones overlap, the most irreversible style wins: fill, then pixelate, then blur (each pixel
belongs to one op). Fill runs first so that a neighbouring blur reads the fill colour, not the
content behind it.

Besides BGR frames the masker works on raw YUV 4:2:0 buffers (`apply_yuv420p`), so the video
filter needs no colour conversion; chroma masks are the 2x2 max of the luma mask (never smaller).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

from masking.config.zones import BlurStyle, Camera, FillStyle, MaskStyle, PixelateStyle, Zone
from masking.errors import InputError
from masking.masks.boxes import MaskBoxes
from masking.masks.raster import rasterize

Image = npt.NDArray[np.uint8]
_PRIORITY = {"fill": 0, "pixelate": 1, "blur": 2}


@dataclass(frozen=True)
class _Op:
    """One style applied to one plane: a bounding rectangle and the 0/1 mask inside it."""

    style: MaskStyle
    y0: int
    y1: int
    x0: int
    x1: int
    mask: npt.NDArray[np.uint8]  # (y1 - y0, x1 - x0), 1 = masked
    full: bool  # the mask covers its whole rectangle
    value: tuple[int, ...]  # fill value in the plane's channel order
    block: int  # pixelate cell size on this plane
    ksize: int  # blur kernel size on this plane (odd)
    fill_src: Image | None = None  # fill: the rectangle painted in the fill value, for cv2.copyTo


@dataclass(frozen=True)
class _ZoneOps:
    """All ops for one resolution and buffer layout."""

    planes: tuple[tuple[_Op, ...], ...]  # bgr: one plane; yuv420p: Y, U, V


class ZoneMasker:
    """Masks a camera's zones (and dynamic boxes) on BGR frames or YUV 4:2:0 buffers, in place.

    Args:
        camera: the camera whose zones are masked.
        style_override: when given, replaces the style of every zone and of dynamic masks.
    """

    def __init__(self, camera: Camera, style_override: MaskStyle | None = None) -> None:
        self.camera = camera
        self.style_override = style_override
        self._masked_zones = tuple(z for z in camera.zones if z.masked)
        self._all_zones = tuple(camera.zones)
        self._plans: dict[tuple[str, bool, int, int], _ZoneOps] = {}
        self._lock = threading.Lock()

    @property
    def box_style(self) -> MaskStyle:
        """Style of dynamic masks: the override, else the camera's style."""
        return self.style_override if self.style_override is not None else self.camera.style

    # ------------------------------------------------------------------ static zones
    def apply(self, frames: Image) -> Image:
        """Mask the privacy_mask and prohibited_view zones of a (H,W,3) frame or (N,H,W,3) batch."""
        return self._apply_bgr(frames, include_watch=False)

    def apply_all_zones(self, frames: Image) -> Image:
        """Mask every zone, watch zones included (the `zones` fail policy)."""
        return self._apply_bgr(frames, include_watch=True)

    def apply_yuv420p(self, buf: Image, include_watch: bool = False) -> Image:
        """Mask zones on a planar YUV 4:2:0 buffer of shape (H*3/2, W) (PyAV's `yuv420p` ndarray).

        Width and height must be even. The buffer is changed in place and returned.
        """
        if buf.dtype != np.uint8 or buf.ndim != 2 or buf.shape[0] % 3 or not buf.flags.c_contiguous:
            raise InputError(f"expected a contiguous uint8 (H*3/2, W) yuv420p buffer, got {buf.dtype} {buf.shape}")
        height, width = buf.shape[0] * 2 // 3, buf.shape[1]
        if height % 2 or width % 2:
            raise InputError(f"yuv420p masking needs an even frame size, got {width}x{height}")
        plan = self._plan("yuv420p", include_watch, width, height)
        planes = _yuv_planes(buf, width, height)
        for plane, ops in zip(planes, plan.planes, strict=True):
            for op in ops:
                _apply_op(plane, op)
        return buf

    def mask(self, width: int, height: int, include_watch: bool = False) -> npt.NDArray[np.bool_]:
        """The union of the masked zones at this resolution (read-only, cached)."""
        return rasterize(self._all_zones if include_watch else self._masked_zones, width, height)

    def _apply_bgr(self, frames: Image, include_watch: bool) -> Image:
        batch = _as_batch(frames)
        height, width = batch.shape[1:3]
        plan = self._plan("bgr", include_watch, width, height)
        ops = plan.planes[0]
        if ops:
            for frame in batch:
                for op in ops:
                    _apply_op(frame, op)
        return frames

    def _plan(self, layout: str, include_watch: bool, width: int, height: int) -> _ZoneOps:
        key = (layout, include_watch, width, height)
        plan = self._plans.get(key)
        if plan is None:
            with self._lock:
                plan = self._plans.get(key)
                if plan is None:
                    zones = self._all_zones if include_watch else self._masked_zones
                    plan = _build_plan(zones, self.style_override, layout, width, height)
                    self._plans[key] = plan
        return plan

    # ------------------------------------------------------------------ dynamic masks
    def apply_boxes(self, frame: Image, boxes: MaskBoxes, style: MaskStyle | None = None) -> Image:
        """Mask detection boxes (whole box or inscribed ellipse) on one (H,W,3) frame, in place.

        A box covers every pixel it touches; an ellipse every pixel of its box whose centre lies
        within half a pixel of it. Pixel rectangles and ellipse row spans of all boxes are computed in
        one vectorised pass; each box is then masked on its own rectangle (overlaps are unions).
        The style defaults to `box_style`.
        """
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise InputError(f"expected a uint8 (H, W, 3) frame, got {frame.dtype} {frame.shape}")
        if len(boxes) == 0:
            return frame
        style = style if style is not None else self.box_style
        height, width = frame.shape[:2]
        block, ksize = _style_sizes(style, 1)
        value = _style_value(style, "bgr")
        # One op per box: each costs O(its own area). (A joint mask over all boxes' bounding
        # rectangle costs O(that rectangle), 10-30x slower when faces are spread over the frame.)
        for x0, y0, x1, y1, mask in _box_masks(boxes, width, height):
            full = mask is None
            _apply_op(frame, _Op(style, y0, y1, x0, x1, _NO_MASK if mask is None else mask, full, value, block, ksize))
        return frame

    def apply_boxes_yuv420p(self, buf: Image, boxes: MaskBoxes, style: MaskStyle | None = None) -> Image:
        """`apply_boxes` on a planar YUV 4:2:0 buffer (H*3/2, W), in place.

        The luma plane gets exactly the pixels `apply_boxes` masks on a BGR frame; each chroma plane
        every sample any of whose 2x2 luma pixels is masked (rectangles rounded outwards), so the
        decoded colour of every masked pixel is the style's, never the original's.
        """
        if buf.dtype != np.uint8 or buf.ndim != 2 or buf.shape[0] % 3 or not buf.flags.c_contiguous:
            raise InputError(f"expected a contiguous uint8 (H*3/2, W) yuv420p buffer, got {buf.dtype} {buf.shape}")
        height, width = buf.shape[0] * 2 // 3, buf.shape[1]
        if height % 2 or width % 2:
            raise InputError(f"yuv420p masking needs an even frame size, got {width}x{height}")
        if len(boxes) == 0:
            return buf
        style = style if style is not None else self.box_style
        y_plane, u_plane, v_plane = _yuv_planes(buf, width, height)
        y_block, y_ksize = _style_sizes(style, 1)
        c_block, c_ksize = _style_sizes(style, 2)
        y_val, u_val, v_val = (_style_value(style, p) for p in ("y", "u", "v"))
        for x0, y0, x1, y1, mask in _box_masks(boxes, width, height):
            full = mask is None
            _apply_op(y_plane, _Op(style, y0, y1, x0, x1, _NO_MASK if mask is None else mask, full, y_val, y_block, y_ksize))
            cx0, cy0, cx1, cy1 = x0 // 2, y0 // 2, (x1 + 1) // 2, (y1 + 1) // 2
            cmask: npt.NDArray[np.uint8] = _NO_MASK
            if not full:
                assert mask is not None
                padded = np.zeros((2 * (cy1 - cy0), 2 * (cx1 - cx0)), np.uint8)
                oy, ox = y0 - 2 * cy0, x0 - 2 * cx0
                padded[oy : oy + (y1 - y0), ox : ox + (x1 - x0)] = mask
                cmask = np.ascontiguousarray(padded.reshape(cy1 - cy0, 2, cx1 - cx0, 2).max(axis=(1, 3)))
            for plane, val in ((u_plane, u_val), (v_plane, v_val)):
                _apply_op(plane, _Op(style, cy0, cy1, cx0, cx1, cmask, full, val, c_block, c_ksize))
        return buf

    @staticmethod
    def apply_full(frames: Image) -> Image:
        """Black out the whole frame or batch, in place (the `full` fail policy)."""
        frames[...] = 0
        return frames


def _yuv_planes(buf: Image, width: int, height: int) -> tuple[Image, Image, Image]:
    """Views of the Y, U and V planes of a contiguous (H*3/2, W) yuv420p buffer."""
    flat = buf.reshape(-1)
    n_y, n_c = width * height, (width // 2) * (height // 2)
    return (
        flat[:n_y].reshape(height, width),
        flat[n_y : n_y + n_c].reshape(height // 2, width // 2),
        flat[n_y + n_c : n_y + 2 * n_c].reshape(height // 2, width // 2),
    )


def _box_masks(
    boxes: MaskBoxes, width: int, height: int
) -> Iterator[tuple[int, int, int, int, npt.NDArray[np.uint8] | None]]:
    """(x0, y0, x1, y1, mask) per non-empty box: its pixel rectangle and, for an ellipse, the 0/1
    mask inside it (None: the whole rectangle). Rectangles and ellipse spans are computed for all
    boxes in one vectorised pass."""
    rects = _pixel_rects(boxes.xyxy, width, height)
    keep = (rects[:, 2] > rects[:, 0]) & (rects[:, 3] > rects[:, 1])
    if not keep.any():
        return
    xyxy, ellipse, rects = boxes.xyxy[keep].astype(np.float64), boxes.ellipse[keep], rects[keep]
    _, xs, xe = _box_spans(xyxy, ellipse, rects)
    heights = rects[:, 3] - rects[:, 1]
    ends = np.cumsum(heights)
    for k, (x0, y0, x1, y1) in enumerate(rects.tolist()):
        if ellipse[k]:
            cols = np.arange(x0, x1)
            s0, s1 = int(ends[k] - heights[k]), int(ends[k])
            mask = ((cols[None, :] >= xs[s0:s1, None]) & (cols[None, :] < xe[s0:s1, None])).view(np.uint8)
            yield x0, y0, x1, y1, mask
        else:
            yield x0, y0, x1, y1, None


def _as_batch(frames: Image) -> Image:
    if frames.dtype != np.uint8:
        raise InputError(f"expected uint8 frames, got {frames.dtype}")
    if frames.ndim == 3 and frames.shape[2] == 3:
        return frames[None]
    if frames.ndim == 4 and frames.shape[3] == 3:
        return frames
    raise InputError(f"expected a (H, W, 3) frame or (N, H, W, 3) batch, got shape {frames.shape}")


def _pixel_rects(xyxy: npt.NDArray[np.float32], width: int, height: int) -> npt.NDArray[np.int64]:
    """(n, 4) integer pixel rectangles [x0, y0, x1, y1) covering every pixel each box touches."""
    b = xyxy.astype(np.float64)
    x0 = np.clip(np.floor(b[:, 0]), 0, width)
    y0 = np.clip(np.floor(b[:, 1]), 0, height)
    x1 = np.clip(np.ceil(b[:, 2]), 0, width)
    y1 = np.clip(np.ceil(b[:, 3]), 0, height)
    # A zero-width (or zero-height) box inside the frame still covers the pixels it sits on.
    x1 = np.where((b[:, 2] == b[:, 0]) & (x1 <= x0) & (x0 < width), x0 + 1, x1)
    y1 = np.where((b[:, 3] == b[:, 1]) & (y1 <= y0) & (y0 < height), y0 + 1, y1)
    return np.stack([x0, y0, x1, y1], axis=1).astype(np.int64)


def _box_spans(
    xyxy: npt.NDArray[np.float64], ellipse: npt.NDArray[np.bool_], rects: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Row spans (row, x_start, x_end) of every box, all boxes at once.

    A box spans its whole pixel rectangle on each of its rows; an ellipse the pixels of its
    rectangle whose centre lies inside the ellipse with half a pixel of slack on each semi-axis.
    """
    heights = rects[:, 3] - rects[:, 1]
    box = np.repeat(np.arange(len(rects)), heights)
    rows = rects[box, 1] + np.arange(int(heights.sum())) - np.repeat(np.cumsum(heights) - heights, heights)
    xs, xe = rects[box, 0].copy(), rects[box, 2].copy()
    ell = ellipse[box]
    if ell.any():
        b = xyxy[box[ell]]
        cx, cy = (b[:, 0] + b[:, 2]) / 2.0, (b[:, 1] + b[:, 3]) / 2.0
        a, c = (b[:, 2] - b[:, 0]) / 2.0 + 0.5, (b[:, 3] - b[:, 1]) / 2.0 + 0.5
        t = 1.0 - ((rows[ell] + 0.5 - cy) / c) ** 2
        half = a * np.sqrt(np.clip(t, 0.0, None))
        start = np.ceil(cx - half - 0.5).astype(np.int64)
        stop = np.floor(cx + half - 0.5).astype(np.int64) + 1
        stop = np.where(t >= 0, stop, start)  # rows the ellipse misses: empty
        xs[ell] = np.maximum(xs[ell], start)
        xe[ell] = np.minimum(xe[ell], stop)
    return rows, xs, xe


_NO_MASK = np.zeros((0, 0), np.uint8)  # for ops that cover their whole rectangle


# ---------------------------------------------------------------------- precomputation
def _effective_style(zone: Zone, override: MaskStyle | None) -> MaskStyle:
    return override if override is not None else zone.style


def _build_plan(
    zones: Sequence[Zone], override: MaskStyle | None, layout: str, width: int, height: int
) -> _ZoneOps:
    """Ops for these zones at this resolution: the zones of each style are rasterised into one mask
    (not one per zone), masks are made disjoint (fill > pixelate > blur; among styles of one mode,
    the first listed wins), and each style's mask is cut into a few rectangles around its clusters
    so the work stays proportional to the masked area."""
    groups: dict[MaskStyle, list[Zone]] = {}
    for zone in zones:
        groups.setdefault(_effective_style(zone, override), []).append(zone)
    ordered = sorted(groups.items(), key=lambda sz: _PRIORITY[sz[0].mode])  # stable: file order within a mode
    claimed = np.zeros((height, width), bool)
    luma: list[tuple[MaskStyle, npt.NDArray[np.bool_]]] = []
    for style, members in ordered:
        mask = rasterize(members, width, height) & ~claimed
        claimed |= mask
        if mask.any():
            luma.append((style, mask))
    if layout == "bgr":
        return _ZoneOps((tuple(op for s, m in luma for op in _make_ops(s, m, "bgr", 1)),))
    chroma = [(s, _chroma_mask(m)) for s, m in luma]
    return _ZoneOps((
        tuple(op for s, m in luma for op in _make_ops(s, m, "y", 1)),
        tuple(op for s, m in chroma for op in _make_ops(s, m, "u", 2)),
        tuple(op for s, m in chroma for op in _make_ops(s, m, "v", 2)),
    ))


_CELL = 16  # clusters of a style's mask are found on a grid of this many pixels
_MAX_RECTS = 32  # beyond this many clusters a style gets one rectangle (bounded per-frame work)


def _make_ops(style: MaskStyle, mask: npt.NDArray[np.bool_], plane: str, scale: int) -> list[_Op]:
    """One op per cluster of the mask: connected groups of `_CELL`-pixel cells holding masked pixels
    (one op for the whole mask beyond `_MAX_RECTS` clusters, so per-frame work stays bounded).
    Each masked pixel belongs to exactly one op."""
    h, w = mask.shape
    ch, cw = -(-h // _CELL), -(-w // _CELL)
    padded = np.zeros((ch * _CELL, cw * _CELL), bool)
    padded[:h, :w] = mask
    cells: npt.NDArray[np.uint8] = np.asarray(padded.reshape(ch, _CELL, cw, _CELL).any(axis=(1, 3)), np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(cells, connectivity=8)
    if n - 1 > _MAX_RECTS:
        return [_make_op(style, mask, plane, scale)]
    ops = []
    for k, (cx, cy, cwid, chei, _area) in enumerate(stats[1:].tolist(), start=1):
        y0, x0 = cy * _CELL, cx * _CELL
        y1, x1 = min(h, (cy + chei) * _CELL), min(w, (cx + cwid) * _CELL)
        own = np.repeat(np.repeat(labels[cy : cy + chei, cx : cx + cwid] == k, _CELL, 0), _CELL, 1)
        ops.append(_make_op(style, mask[y0:y1, x0:x1] & own[: y1 - y0, : x1 - x0], plane, scale, (y0, x0)))
    return ops


def _chroma_mask(luma: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """A 4:2:0 chroma sample is masked when any of its 2x2 luma pixels is."""
    h, w = luma.shape
    return np.asarray(luma.reshape(h // 2, 2, w // 2, 2).any(axis=(1, 3)), bool)


def _make_op(style: MaskStyle, mask: npt.NDArray[np.bool_], plane: str, scale: int,
             origin: tuple[int, int] = (0, 0)) -> _Op:
    """The op of a non-empty mask whose top-left pixel is at `origin` (row, column) of the plane."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    crop = np.ascontiguousarray(mask[y0:y1, x0:x1], dtype=np.uint8)
    block, ksize = _style_sizes(style, scale)
    value = _style_value(style, plane)
    fill_src = None
    if value:
        shape = crop.shape + (3,) if plane == "bgr" else crop.shape
        fill_src = np.full(shape, value if plane == "bgr" else value[0], np.uint8)
    oy, ox = origin
    return _Op(style, y0 + oy, y1 + oy, x0 + ox, x1 + ox, crop, bool(crop.all()), value, block, ksize, fill_src)


def _style_sizes(style: MaskStyle, scale: int) -> tuple[int, int]:
    """Pixelate block and blur kernel on a plane subsampled by `scale`."""
    block = max(2, style.block // scale) if isinstance(style, PixelateStyle) else 0
    ksize = 0
    if isinstance(style, BlurStyle):
        k = max(3, style.strength // scale)
        ksize = k if k % 2 else k + 1
    return block, ksize


def _style_value(style: MaskStyle, plane: str) -> tuple[int, ...]:
    """Fill value for a plane: BGR triple, or the Y, U or V sample of the colour (BT.601)."""
    if not isinstance(style, FillStyle):
        return ()
    if plane == "bgr":
        return style.bgr
    swatch = np.empty((2, 2, 3), np.uint8)
    swatch[:] = style.bgr
    yuv = cv2.cvtColor(swatch, cv2.COLOR_BGR2YUV_I420)  # rows 0-1: Y; row 2: [U, V]
    return (int({"y": yuv[0, 0], "u": yuv[2, 0], "v": yuv[2, 1]}[plane]),)


# ---------------------------------------------------------------------- the hot path
def _apply_op(img: Image, op: _Op) -> None:
    """Apply one op to a (H, W) plane or (H, W, C) frame, in place."""
    roi = img[op.y0 : op.y1, op.x0 : op.x1]
    style = op.style
    if isinstance(style, FillStyle):
        value = op.value if roi.ndim == 3 else op.value[0]
        if op.full:
            roi[...] = value
        else:
            src = op.fill_src
            if src is None or src.shape != roi.shape:
                src = np.full(roi.shape, value, np.uint8)
            _copy_masked(src, op.mask, roi)
        return
    if isinstance(style, PixelateStyle):
        out = _pixelate(img, op)
    else:
        out = _blur(img, op)
    if op.full:
        roi[...] = out
    else:
        _copy_masked(out, op.mask, roi)


def _copy_masked(src: Image, mask: npt.NDArray[np.uint8], dst: Image) -> None:
    """dst[mask] = src[mask], in place (OpenCV's SIMD masked copy)."""
    res = cv2.copyTo(src, mask, dst=dst)
    if res is not dst:  # OpenCV could not write into this view: copy its result back
        np.copyto(dst, res)


def _pixelate(img: Image, op: _Op) -> Image:
    """Mean colour per cell of a grid anchored at the frame origin, over the op's rectangle.

    The grid-aligned rectangle is a whole number of cells (except at the frame's right/bottom edge),
    so OpenCV's integer-factor INTER_AREA path computes the cell means.
    """
    b = op.block
    h, w = img.shape[:2]
    ay0, ax0 = (op.y0 // b) * b, (op.x0 // b) * b
    ay1, ax1 = min(h, -(-op.y1 // b) * b), min(w, -(-op.x1 // b) * b)
    region = img[ay0:ay1, ax0:ax1]
    rh, rw = ay1 - ay0, ax1 - ax0
    small = cv2.resize(region, (-(-rw // b), -(-rh // b)), interpolation=cv2.INTER_AREA)
    up = cv2.resize(small, (small.shape[1] * b, small.shape[0] * b), interpolation=cv2.INTER_NEAREST)
    return cast(Image, up[op.y0 - ay0 : op.y1 - ay0, op.x0 - ax0 : op.x1 - ax0])


def _blur(img: Image, op: _Op) -> Image:
    """Box blur of the op's rectangle, reading up to one kernel radius of real neighbours."""
    r = op.ksize // 2
    h, w = img.shape[:2]
    py0, py1, px0, px1 = max(0, op.y0 - r), min(h, op.y1 + r), max(0, op.x0 - r), min(w, op.x1 + r)
    padded = cv2.blur(img[py0:py1, px0:px1], (op.ksize, op.ksize), borderType=cv2.BORDER_REPLICATE)
    return cast(Image, padded[op.y0 - py0 : op.y1 - py0, op.x0 - px0 : op.x1 - px0])
