"""The fix for a violation: privacy-mask polygons that cover the unmasked evidence, with a margin.

Each evidence box (normalised) is grown by `proposal_margin` of its size on every side and clipped
to the view; a segmented region (an item with a `polygon`) is grown as an outline instead, by
`proposal_margin` of its box's mean side plus `REGION_SLACK` (two cells of the 129x129 class map,
which the outline may cut by up to one), so its mask follows the bed or shower, not its box; overlapping boxes (the same object over several frames, a bed and its neighbour) are
merged into one simple polygon (the outline of their union: holes are filled, hiding more rather
than less). Coordinates are rounded outwards to 1e-4 so the polygon still covers its evidence.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from masking.audit.coverage import area_share
from masking.audit.result import Evidence, ProposedMask

_GRID = 1e-4
REGION_SLACK = 2.0 / 129.0


def _grown_boxes(items: list[Evidence], margin: float) -> list[Polygon]:
    b = np.array([e.xyxy_norm for e in items], np.float64).reshape(-1, 4)
    wh = b[:, 2:] - b[:, :2]
    pad = np.concatenate([wh, wh], axis=1) * margin
    g = b + pad * np.array([-1.0, -1.0, 1.0, 1.0])
    g = np.clip(g, 0.0, 1.0)
    # round outwards onto the 1e-4 grid, so rounding never uncovers evidence
    g[:, :2] = np.floor(g[:, :2] / _GRID) * _GRID
    g[:, 2:] = np.ceil(g[:, 2:] / _GRID) * _GRID
    g = np.clip(g, 0.0, 1.0)
    return list(shapely.box(g[:, 0], g[:, 1], g[:, 2], g[:, 3]))


def _grown(items: list[Evidence], margin: float) -> list[Polygon]:
    """One grown shape per item: boxes as boxes, regions as their buffered outline."""
    boxes = _grown_boxes(items, margin)
    view = shapely.box(0.0, 0.0, 1.0, 1.0)
    out: list[Polygon] = []
    for e, box in zip(items, boxes):
        if e.polygon is None or len(e.polygon) < 3:
            out.append(box)
            continue
        x0, y0, x1, y1 = e.xyxy_norm
        dist = margin * 0.5 * ((x1 - x0) + (y1 - y0)) + REGION_SLACK
        region = Polygon(e.polygon).buffer(0.0).buffer(dist, join_style="mitre", mitre_limit=2.0)
        region = region.simplify(_GRID * 10).buffer(_GRID * 10, join_style="mitre")
        grown = region.intersection(view)
        parts = _parts(grown)
        out.append(max(parts, key=lambda g: g.area) if parts else box)
    return out


def _parts(geom: BaseGeometry) -> list[Polygon]:
    if geom.is_empty:
        return []
    if isinstance(geom, Polygon):
        return [geom]
    return [g for g in getattr(geom, "geoms", []) if isinstance(g, Polygon) and not g.is_empty]


def _ring(poly: Polygon) -> list[list[float]]:
    outline = Polygon(poly.exterior).simplify(0.0)  # drop collinear vertices, keep the shape exactly
    pts = list(outline.exterior.coords)[:-1]
    return [[round(min(max(x, 0.0), 1.0), 4), round(min(max(y, 0.0), 1.0), 4)] for x, y in pts]


def propose_masks(
    items: list[Evidence], margin: float, already_masked: BaseGeometry | None, prefix: str = "audit-mask"
) -> tuple[list[ProposedMask], float]:
    """Masks covering `items` (unmasked evidence) and the share of the view hidden once they are
    added to `already_masked` (the camera's masked zones). Masks are ordered largest first."""
    if not items:
        return [], area_share(already_masked)
    boxes = _grown(items, margin)
    merged = shapely.union_all(boxes)
    masks: list[ProposedMask] = []
    parts = sorted(_parts(merged), key=lambda p: -p.area)
    for k, part in enumerate(parts, start=1):
        outline = Polygon(part.exterior)
        covers = [e.id for e, box in zip(items, boxes) if outline.covers(box)]
        masks.append(ProposedMask(f"{prefix}-{k}", _ring(part), covers, float(outline.area)))
    total = merged if already_masked is None else shapely.union_all([merged, already_masked])
    hidden = area_share(total)
    return masks, (1.0 if math.isclose(hidden, 1.0, abs_tol=1e-6) else hidden)
