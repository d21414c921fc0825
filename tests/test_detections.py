"""`Detections`: validation, indexing, merge, class filtering, scaling and growing."""

from __future__ import annotations

import numpy as np
import pytest

from masking.detect.detections import Detections
from masking.errors import MaskingError

NAMES = ("person", "bed", "toilet")


def _dets() -> Detections:
    return Detections(
        np.array([[0, 0, 10, 10], [5, 5, 25, 15], [100, 50, 120, 90]], np.float32),
        np.array([0.9, 0.4, 0.7], np.float32),
        np.array([0, 1, 2], np.int32),
        NAMES,
    )


def test_arrays_are_coerced_to_dtypes_and_shapes() -> None:
    d = Detections([[1, 2, 3, 4]], [0.5], [1], NAMES)
    assert d.xyxy.dtype == np.float32 and d.xyxy.shape == (1, 4)
    assert d.confidence.dtype == np.float32 and d.class_id.dtype == np.int32
    assert d.class_names == NAMES and len(d) == 1


@pytest.mark.parametrize(
    ("xyxy", "conf", "cid", "names", "match"),
    [
        ([[0, 0, 1, 1]], [0.5, 0.6], [0], NAMES, "disagree in length"),
        ([[0, 0, 1, 1]], [0.5], [0, 1], NAMES, "disagree in length"),
        ([[5, 0, 1, 1]], [0.5], [0], NAMES, "x1 <= x2"),
        ([[0, 5, 1, 1]], [0.5], [0], NAMES, "x1 <= x2"),
        ([[0, 0, np.nan, 1]], [0.5], [0], NAMES, "NaN"),
        ([[0, 0, np.inf, 1]], [0.5], [0], NAMES, "NaN"),
        ([[0, 0, 1, 1]], [1.5], [0], NAMES, r"\[0, 1\]"),
        ([[0, 0, 1, 1]], [-0.1], [0], NAMES, r"\[0, 1\]"),
        ([[0, 0, 1, 1]], [0.5], [3], NAMES, "class_id outside"),
        ([[0, 0, 1, 1]], [0.5], [-1], NAMES, "class_id outside"),
    ],
)
def test_validation_errors(xyxy: list, conf: list, cid: list, names: tuple, match: str) -> None:
    with pytest.raises(MaskingError, match=match):
        Detections(np.array(xyxy, np.float32), np.array(conf), np.array(cid), names)


def test_empty() -> None:
    e = Detections.empty(NAMES)
    assert len(e) == 0 and e.xyxy.shape == (0, 4) and e.class_names == NAMES
    assert e.names.shape == (0,) and e.area.shape == (0,)
    assert len(e.with_classes(["bed"])) == 0
    assert len(e.grown(2.0, 100, 100)) == 0


def test_bool_and_index_selection() -> None:
    d = _dets()
    sel = d[d.confidence > 0.5]
    assert isinstance(sel, Detections) and len(sel) == 2
    assert sel.names.tolist() == ["person", "toilet"]
    assert d[1].names.tolist() == ["bed"]
    assert len(d[np.array([2, 0])]) == 2 and d[np.array([2, 0])].class_id.tolist() == [2, 0]
    assert len(d[np.zeros(3, bool)]) == 0 and d[np.zeros(3, bool)].class_names == NAMES


def test_names_and_area() -> None:
    d = _dets()
    assert d.names.tolist() == ["person", "bed", "toilet"]
    np.testing.assert_allclose(d.area, [100, 200, 800])


def test_with_classes() -> None:
    d = _dets()
    assert d.with_classes(["bed", "toilet"]).names.tolist() == ["bed", "toilet"]
    assert len(d.with_classes(["couch"])) == 0
    assert len(d.with_classes([])) == 0


def test_merge_unions_names_and_remaps_ids() -> None:
    faces = Detections(np.array([[1, 1, 2, 2]], np.float32), [0.8], [0], ("face",))
    objects = _dets()
    m = Detections.merge([faces, objects])
    assert m.class_names == ("face", "person", "bed", "toilet")
    assert m.names.tolist() == ["face", "person", "bed", "toilet"]
    assert len(m) == 4
    assert len(Detections.merge([])) == 0
    again = Detections.merge([objects, objects.with_classes(["toilet"])])
    assert again.class_names == NAMES and again.names.tolist() == ["person", "bed", "toilet", "toilet"]


def test_scaled() -> None:
    d = _dets().scaled(2.0, 0.5)
    np.testing.assert_allclose(d.xyxy[2], [200, 25, 240, 45])


def test_grown_about_centre_and_clipped() -> None:
    d = _dets()
    g = d.grown(2.0)
    np.testing.assert_allclose(g.xyxy[0], [-5, -5, 15, 15])
    np.testing.assert_allclose(g.xyxy[1], [-5, 0, 35, 20])
    c = d.grown(2.0, width=110, height=80)
    np.testing.assert_allclose(c.xyxy[0], [0, 0, 15, 15])
    np.testing.assert_allclose(c.xyxy[2], [90, 30, 110, 80])
    assert c.confidence.tolist() == pytest.approx(d.confidence.tolist())
