"""The coarse segmentation overlay of an audit result, drawn onto a picture of the view.

`AuditResult.segmentation` holds the segmenter's evidence classes in the snapshot frame as outlines
(normalised polygons per class, no pixels of the view): `{"model", "frame", "grid": [w, h],
"classes": {class: [polygon, ...]}, "categories": {class: category}}`. `draw_segmentation` fills
them, translucent, in the category colours of the report, on any picture of the same view (the
snapshot, or a masked or blurred copy of it), and outlines them so they stay visible on a dark view.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from masking.report.palette import OTHER_CATEGORY


def draw_segmentation(
    image: npt.NDArray[np.uint8],
    segmentation: Mapping[str, Any] | None,
    colors: Mapping[str, tuple[int, int, int]] | None = None,
    alpha: float = 0.35,
) -> npt.NDArray[np.uint8]:
    """A copy of `image` (BGR) with the overlay's regions filled at `alpha` and outlined; `colors`
    maps categories to BGR (default: the report's category colours). No overlay: an unchanged copy."""
    out = image.copy()
    if not segmentation or not segmentation.get("classes"):
        return out
    if colors is None:
        from masking.report.palette import CATEGORIES

        colors = CATEGORIES
    h, w = out.shape[:2]
    scale = np.array([w, h], np.float64)
    categories = segmentation.get("categories", {})
    fill = out.copy()
    outlines: list[tuple[npt.NDArray[np.int32], tuple[int, int, int]]] = []
    for name, polygons in segmentation["classes"].items():
        color = colors.get(categories.get(name, ""), OTHER_CATEGORY)
        for poly in polygons:
            pts = np.round(np.asarray(poly, np.float64) * scale).astype(np.int32).reshape(-1, 1, 2)
            cv2.fillPoly(fill, [pts], color)
            outlines.append((pts, color))
    out = np.asarray(cv2.addWeighted(fill, alpha, out, 1.0 - alpha, 0.0), np.uint8)
    thickness = max(1, int(round(min(h, w) / 400)))
    for pts, color in outlines:
        cv2.polylines(out, [pts], True, color, thickness, cv2.LINE_AA)
    return out
