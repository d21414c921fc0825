"""Zone polygons to pixel masks, exact under the pixel-centre rule, cached per resolution.

The rule: a pixel whose centre lies inside a zone polygon (exterior minus holes) is always in the
mask; a pixel whose centre is more than one pixel away from the polygon never is. Interior pixels are
found by an exact scanline pass at the pixel centres (even-odd over all rings, so holes stay
unmasked); the pixels the polygon outline passes through are added as well, so slivers and zones of
a few pixels are covered rather than dropped (over-covering by under a pixel is allowed, under-covering
is not).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from masking.config.zones import PolygonSpec, Zone

_EPS = 1e-7  # centres this close outside an edge count as inside (privacy first)
_OUTLINE_STEP = 0.25  # pixels between outline samples
Mask = npt.NDArray[np.bool_]


def rasterize(zones: Sequence[Zone], width: int, height: int) -> Mask:
    """The union of the zones' polygons as a read-only bool (height, width) mask.

    All zones are rasterised in one vectorised pass into one mask (memory: one frame, plus the
    zones' edge crossings), and the result is cached per zones and resolution.
    """
    _check_size(width, height)
    key = tuple(z.polygon.model_dump_json() for z in zones)
    return _union_cached(key, int(width), int(height))


def _check_size(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise ValueError(f"frame size must be positive, got {width}x{height}")


@lru_cache(maxsize=32)
def _union_cached(key: tuple[str, ...], width: int, height: int) -> Mask:
    rings: list[npt.NDArray[np.float64]] = []
    owner: list[int] = []
    for k, poly_json in enumerate(key):
        ext, holes = PolygonSpec.model_validate_json(poly_json).to_pixels(width, height)
        for ring in ext + holes:
            rings.append(np.asarray(ring, np.float64))
            owner.append(k)
    mask = np.zeros((height, width), np.uint8)
    if rings:
        _scanline_fill(mask, rings, np.asarray(owner, np.int64))
        _draw_outline(mask, rings)
    out = mask.astype(bool)
    out.setflags(write=False)
    return out


def _edges(rings: list[npt.NDArray[np.float64]]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Start and end points of every edge of the closed rings."""
    p0 = np.concatenate(rings)
    p1 = np.concatenate([np.roll(r, -1, axis=0) for r in rings])
    return p0, p1


def _scanline_fill(mask: npt.NDArray[np.uint8], rings: list[npt.NDArray[np.float64]],
                   owner: npt.NDArray[np.int64]) -> None:
    """Set the pixels whose centre is inside a polygon: even-odd over the rings of each polygon
    (`owner[i]` is the polygon of ring i, so holes stay open), union over the polygons."""
    height, width = mask.shape
    p0, p1 = _edges(rings)
    zone = np.repeat(owner, [len(r) for r in rings])
    x0, y0, x1, y1 = p0[:, 0], p0[:, 1], p1[:, 0], p1[:, 1]
    keep = y0 != y1  # horizontal edges never cross a scanline
    x0, y0, x1, y1, zone = x0[keep], y0[keep], x1[keep], y1[keep], zone[keep]
    ylo, yhi = np.minimum(y0, y1), np.maximum(y0, y1)
    # Half-open rule: an edge crosses the centre line of row i when ylo <= i + 0.5 < yhi. Rows outside
    # the frame are dropped for every edge alike, so each polygon still crosses each row an even number
    # of times.
    first = np.clip(np.ceil(ylo - 0.5), 0, height).astype(np.int64)
    stop = np.clip(np.ceil(yhi - 0.5), 0, height).astype(np.int64)
    counts = np.maximum(stop - first, 0)
    total = int(counts.sum())
    if total == 0:
        return
    edge = np.repeat(np.arange(counts.size), counts)
    offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    rows = first[edge] + offsets
    yc = rows + 0.5
    xs = x0[edge] + (yc - y0[edge]) * (x1[edge] - x0[edge]) / (y1[edge] - y0[edge])
    order = np.lexsort((xs, rows, zone[edge]))
    rows, xs = rows[order], xs[order]
    # Per polygon, every row crosses its closed rings an even number of times: consecutive pairs
    # (after sorting by polygon, row, x) are its spans.
    r, xa, xb = rows[0::2], xs[0::2], xs[1::2]
    js = np.clip(np.ceil(xa - 0.5 - _EPS), 0, width).astype(np.int64)
    je = np.clip(np.floor(xb - 0.5 + _EPS) + 1, 0, width).astype(np.int64)
    ok = je > js
    r, js, je = r[ok], js[ok], je[ok]
    if r.size == 0:
        return
    # Spans of all polygons add up: a pixel covered by any span has a positive count.
    diff = np.zeros((height, width + 1), np.int32)
    np.add.at(diff, (r, js), 1)
    np.add.at(diff, (r, je), -1)
    mask |= (np.cumsum(diff[:, :width], axis=1) > 0).view(np.uint8)


def _draw_outline(mask: npt.NDArray[np.uint8], rings: list[npt.NDArray[np.float64]]) -> None:
    """Add the pixels containing points of the outline (sampled every quarter pixel along each edge).

    A pixel containing a boundary point has its centre within 0.71 px of the polygon, so this never
    breaks the one-pixel rule; it keeps slivers and zones of a few pixels from vanishing.
    """
    height, width = mask.shape
    p0, p1 = _edges(rings)
    steps = np.maximum(1, np.ceil(np.hypot(*(p1 - p0).T) / _OUTLINE_STEP)).astype(np.int64) + 1
    edge = np.repeat(np.arange(steps.size), steps)
    t = (np.arange(int(steps.sum())) - np.repeat(np.cumsum(steps) - steps, steps)) / (steps[edge] - 1)
    pts = p0[edge] + t[:, None] * (p1[edge] - p0[edge])
    cols = np.clip(np.floor(pts[:, 0]), 0, width - 1).astype(np.int64)
    rows = np.clip(np.floor(pts[:, 1]), 0, height - 1).astype(np.int64)
    mask[rows, cols] = 1
