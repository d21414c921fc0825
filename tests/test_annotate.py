"""Drawing helpers: zone overlays, polygons and boxes land where they should, inputs stay untouched."""

from __future__ import annotations

import numpy as np
import pytest

from masking.annotate import KIND_COLORS, draw_boxes, draw_polygon, draw_zones
from masking.config.zones import Camera, ZoneKind


def _camera() -> Camera:
    return Camera.model_validate({"camera_id": "c", "zones": [
        {"id": "door", "kind": "prohibited_view", "polygon": [[0.5, 0.2], [0.9, 0.2], [0.9, 0.9], [0.5, 0.9]]},
        {"id": "win", "kind": "privacy_mask", "polygon": {
            "exterior": [[0.05, 0.1], [0.4, 0.1], [0.4, 0.6], [0.05, 0.6]],
            "holes": [[[0.15, 0.25], [0.3, 0.25], [0.3, 0.45], [0.15, 0.45]]]}},
    ]})


def test_draw_zones_returns_a_tinted_copy_with_holes_clear() -> None:
    img = np.full((200, 400, 3), 128, np.uint8)
    out = draw_zones(img, _camera())
    assert out is not img and np.all(img == 128)
    door_px = out[120, 280].astype(int)  # inside the door: tinted toward red (BGR)
    assert door_px[2] > door_px[0]
    assert np.all(out[70, 90] == 128), "the hole is left untinted"
    assert np.any(out[110, 40] != 128), "the window is tinted"
    assert np.all(out[195, 10] == 128)


def test_draw_zones_without_labels_differs_only_by_labels() -> None:
    img = np.zeros((200, 400, 3), np.uint8)
    assert np.any(draw_zones(img, _camera(), labels=True) != draw_zones(img, _camera(), labels=False))
    assert set(KIND_COLORS) == set(ZoneKind)


def test_draw_polygon_solid_and_dashed() -> None:
    pts = [[10, 10], [90, 10], [90, 90], [10, 90]]
    solid = draw_polygon(np.zeros((100, 100, 3), np.uint8), pts, (0, 255, 0), thickness=1)
    dashed = draw_polygon(np.zeros((100, 100, 3), np.uint8), pts, (0, 255, 0), dashed=True, thickness=1)
    assert solid[:, :, 1].sum() > dashed[:, :, 1].sum() > 0
    assert solid[50, 50].sum() == 0


def test_draw_boxes_colours_labels_and_checks() -> None:
    img = np.zeros((100, 200, 3), np.uint8)
    draw_boxes(img, [[10, 10, 50, 50], [100, 20, 150, 80]], [(255, 0, 0), (0, 0, 255)], ["a", "b"])
    assert tuple(img[30, 10]) == (255, 0, 0) and tuple(img[50, 150]) == (0, 0, 255)
    single = draw_boxes(np.zeros((100, 200, 3), np.uint8), np.array([[10, 10, 50, 50]]), (0, 255, 0))
    assert tuple(single[30, 50]) == (0, 255, 0)
    with pytest.raises(ValueError, match="colours"):
        draw_boxes(img, [[0, 0, 5, 5]], [(1, 2, 3), (4, 5, 6)])
    with pytest.raises(ValueError, match="labels"):
        draw_boxes(img, [[0, 0, 5, 5]], (1, 2, 3), ["a", "b"])


def test_annotate_colours_evidence_by_category_greys_masked_and_dashes_proposals() -> None:
    from types import SimpleNamespace

    from masking.annotate import annotate
    from masking.report import palette

    img = np.zeros((200, 400, 3), np.uint8)
    bed = SimpleNamespace(class_name="bed", category="guest_room", score=0.9, masked=False, xyxy_norm=(0.1, 0.1, 0.3, 0.5))
    wc = SimpleNamespace(class_name="toilet", category="toilet", score=0.8, masked=True, xyxy_norm=(0.6, 0.1, 0.8, 0.5))
    out = annotate(img, None, [bed, wc], [[[0.05, 0.6], [0.95, 0.6], [0.95, 0.95], [0.05, 0.95]]], labels=False)
    assert out is not img and not img.any()
    assert tuple(out[60, 40]) == palette.CATEGORIES["guest_room"]  # left edge of the bed box (x = 0.1 * 400)
    assert tuple(out[60, 240]) == palette.MASKED_EVIDENCE  # the masked toilet is grey
    bottom = out[118:124, 20:380]  # the dashed proposal's top edge: some pixels drawn, some gaps
    drawn = np.all(bottom == palette.PROPOSED_MASK, axis=2).any(axis=0)
    assert 0.2 < drawn.mean() < 0.9
    with_zones = annotate(img, _camera())
    assert tuple(with_zones[120, 280]) != (0, 0, 0)  # zones tinted as by draw_zones
