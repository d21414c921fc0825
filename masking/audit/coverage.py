"""How much of an evidence box the camera's masks already hide (shapely, normalised coordinates)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from masking.config.zones import Camera, PolygonSpec


def masked_union(camera: Camera | None, extra: Iterable[PolygonSpec] = ()) -> BaseGeometry | None:
    """Union of the camera's masked zones (privacy_mask and prohibited_view) plus `extra` polygons,
    in normalised coordinates; None when nothing is masked. `watch` zones are never masked."""
    polys = [z.polygon.shapely() for z in (camera.zones if camera else []) if z.masked]
    polys += [p.shapely() for p in extra]
    if not polys:
        return None
    return shapely.union_all(polys)


def box_coverage(boxes_norm: npt.NDArray[np.floating], union: BaseGeometry | None) -> npt.NDArray[np.float64]:
    """Share of each normalised xyxy box (n, 4) covered by `union`: area(box & union) / area(box).

    A box without area counts as uncovered (0), so it is never silently treated as masked.
    """
    b = np.asarray(boxes_norm, np.float64).reshape(-1, 4)
    if b.shape[0] == 0 or union is None or union.is_empty:
        return np.zeros(b.shape[0], np.float64)
    geoms = shapely.box(b[:, 0], b[:, 1], b[:, 2], b[:, 3])
    area = shapely.area(geoms)
    inter = shapely.area(shapely.intersection(geoms, union))
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(area > 0, inter / np.where(area > 0, area, 1.0), 0.0)
    return np.clip(share, 0.0, 1.0)


def area_share(geom: BaseGeometry | None) -> float:
    """Share of the view (the unit square) covered by a normalised geometry."""
    if geom is None or geom.is_empty:
        return 0.0
    return float(shapely.area(shapely.intersection(geom, shapely.box(0.0, 0.0, 1.0, 1.0))))
