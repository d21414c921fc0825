"""Drawing on images for people to look at: zone overlays, polygons, boxes. Draws only, computes nothing.

`annotate()` is the one annotation of a view (zones, evidence boxes, proposed masks) that every
report and thumbnail uses; colours come from the one palette, `masking.report.palette`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from masking.config.zones import Camera, ZoneKind
from masking.report import palette
from masking.report.palette import Color

Image = npt.NDArray[np.uint8]

KIND_COLORS: dict[ZoneKind, Color] = palette.ZONE_KINDS
_FILL_ALPHA = 0.3
_SHIFT = 4  # sub-pixel bits for polygon drawing


def _scale(image: Image) -> float:
    """Line and text size relative to a 720p image."""
    return max(0.5, min(image.shape[0], image.shape[1]) / 720.0)


def _fixed(pts_px: npt.ArrayLike) -> npt.NDArray[np.int32]:
    pts = np.asarray(pts_px, np.float64).reshape(-1, 2)
    return np.round((pts - 0.5) * (1 << _SHIFT)).astype(np.int32).reshape(-1, 1, 2)


def draw_polygon(
    image: Image, pts_px: npt.ArrayLike, color: Color, dashed: bool = False, thickness: int = 2
) -> Image:
    """Outline a closed polygon given in pixel coordinates (x, y), in place; returns `image`."""
    pts = np.asarray(pts_px, np.float64).reshape(-1, 2)
    if not dashed:
        cv2.polylines(image, [_fixed(pts)], True, color, thickness, cv2.LINE_AA, _SHIFT)
        return image
    dash = 6.0 * max(1, thickness)
    starts = pts
    ends = np.roll(pts, -1, axis=0)
    for a, b in zip(starts, ends, strict=True):
        length = float(np.hypot(*(b - a)))
        n = max(1, int(length // dash))
        t = np.linspace(0.0, 1.0, n + 1)
        seg = a[None, :] + t[:, None] * (b - a)[None, :]
        for i in range(0, n, 2):
            p, q = _fixed(seg[i]), _fixed(seg[i + 1])
            cv2.line(image, tuple(p[0, 0]), tuple(q[0, 0]), color, thickness, cv2.LINE_AA, _SHIFT)
    return image


def draw_label(image: Image, text: str, org: tuple[int, int], color: Color) -> Image:
    """Text on a filled box of `color` at `org` (top-left), kept inside the image, in place.

    OpenCV's fonts draw ASCII only: other characters (a Chinese zone id) are drawn as `?`."""
    text = _ascii(text)
    s = _scale(image)
    font, fscale, thick = cv2.FONT_HERSHEY_SIMPLEX, 0.5 * s, max(1, int(round(s)))
    (tw, th), base = cv2.getTextSize(text, font, fscale, thick)
    h, w = image.shape[:2]
    x = int(min(max(0, org[0]), max(0, w - tw - 4)))
    y = int(min(max(th + base + 4, org[1]), h))
    cv2.rectangle(image, (x, y - th - base - 4), (x + tw + 4, y), color, -1)
    luma = 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2]
    ink = (0, 0, 0) if luma > 140 else (255, 255, 255)
    cv2.putText(image, text, (x + 2, y - base - 2), font, fscale, ink, thick, cv2.LINE_AA)
    return image


def draw_zones(image: Image, camera: Camera, labels: bool = True) -> Image:
    """A copy of `image` with the camera's zones: tinted by kind, outlined, holes dashed, labelled."""
    out = image.copy()
    h, w = out.shape[:2]
    thickness = max(1, int(round(2 * _scale(out))))
    tint = out.copy()
    for zone in camera.zones:
        ext, holes = zone.polygon.to_pixels(w, h)
        rings = [_fixed(r) for r in ext + holes]
        cv2.fillPoly(tint, rings, KIND_COLORS[zone.kind], cv2.LINE_AA, _SHIFT)  # holes stay clear
    cv2.addWeighted(tint, _FILL_ALPHA, out, 1.0 - _FILL_ALPHA, 0.0, dst=out)
    for zone in camera.zones:
        color = KIND_COLORS[zone.kind]
        ext, holes = zone.polygon.to_pixels(w, h)
        draw_polygon(out, ext[0], color, dashed=zone.kind == ZoneKind.watch, thickness=thickness)
        for hole in holes:
            draw_polygon(out, hole, color, dashed=True, thickness=thickness)
        if labels:
            pts = np.asarray(ext[0])
            top = pts[np.argmin(pts[:, 1])]
            draw_label(out, f"{zone.id} ({zone.kind.value})", (int(pts[:, 0].min()), int(top[1])), color)
    return out


def draw_boxes(
    image: Image,
    xyxy: npt.ArrayLike,
    colors: Color | Sequence[Color] = (0, 255, 0),
    labels: Sequence[str] | None = None,
    thickness: int = 2,
) -> Image:
    """Rectangles (x1, y1, x2, y2 pixels) with optional labels, in place; returns `image`.

    `colors` is one BGR colour for all boxes or one per box.
    """
    boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
    n = boxes.shape[0]
    if n and isinstance(colors, tuple) and len(colors) == 3 and all(isinstance(c, (int, np.integer)) for c in colors):
        per_box: Sequence[Color] = [colors] * n  # type: ignore[list-item]
    else:
        per_box = list(colors)  # type: ignore[arg-type]
    if len(per_box) != n:
        raise ValueError(f"draw_boxes: {n} boxes but {len(per_box)} colours")
    if labels is not None and len(labels) != n:
        raise ValueError(f"draw_boxes: {n} boxes but {len(labels)} labels")
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        color = tuple(int(c) for c in per_box[i])
        cv2.rectangle(image, (int(round(x1)), int(round(y1))), (int(round(x2)), int(round(y2))), color, thickness)
        if labels is not None and labels[i]:
            draw_label(image, labels[i], (int(round(x1)), int(round(y1))), color)  # type: ignore[arg-type]
    return image


class EvidenceMark(Protocol):
    """What `annotate` needs of an evidence item (`masking.audit.Evidence` has it)."""

    @property
    def class_name(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def score(self) -> float: ...
    @property
    def masked(self) -> bool: ...
    @property
    def xyxy_norm(self) -> tuple[float, float, float, float]: ...


def annotate(
    image: Image,
    camera: Camera | None = None,
    evidence: Sequence[EvidenceMark] = (),
    proposals: Iterable[Sequence[Sequence[float]]] = (),
    labels: bool = True,
) -> Image:
    """A copy of `image` with the camera's zones (tinted by kind), the evidence boxes (coloured by
    Art. 7 category, grey once masked) and the proposed masks (dashed polygons).

    Boxes and polygons are in normalised (0-1) coordinates, so the picture may be a thumbnail.
    `labels` writes zone ids and "class score" on the boxes (ASCII only: OpenCV's fonts have no CJK).
    """
    out = draw_zones(image, camera, labels=labels) if camera is not None and camera.zones else image.copy()
    h, w = out.shape[:2]
    size = np.array([w, h, w, h], np.float64)
    thickness = max(1, int(round(min(h, w) / 360)))
    if evidence:
        boxes = np.array([e.xyxy_norm for e in evidence], np.float64).reshape(-1, 4) * size
        colors = [palette.category_color(e.category, e.masked) for e in evidence]
        texts = [f"{e.class_name} {e.score:.2f}" for e in evidence] if labels else None
        draw_boxes(out, boxes, colors, texts, thickness)
    for poly in proposals:
        pts = np.asarray(poly, np.float64).reshape(-1, 2) * size[:2]
        draw_polygon(out, pts, palette.PROPOSED_MASK, dashed=True, thickness=max(2, thickness))
    return out


def draw_banner(image: Image, text: str, color: Color = palette.INK) -> Image:
    """A label across the top-left corner, in place (e.g. why a picture is blurred)."""
    return draw_label(image, text, (0, 0), color)


def _ascii(text: str) -> str:
    """OpenCV's Hershey fonts draw ASCII only: anything else becomes `?`."""
    return text.encode("ascii", "replace").decode("ascii")
