"""DynamicMasks: detection specs -> mask boxes (downscale mapping, classes, where-zones, margins)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from masking.config.zones import Camera, DetectConfig
from masking.detect.base import FakeDetector, bright_box_script
from masking.detect.detections import Detections
from masking.detect.dynamic import PRESETS, DynamicMasks, centres_inside, detect_config_from_preset, downscale
from masking.detect.factory import load_detector
from masking.errors import ConfigError, DetectorError
from masking.masks.boxes import MaskBoxes

W, H = 1280, 720


def _camera(specs: list[dict[str, Any]], zones: list[dict[str, Any]] | None = None) -> Camera:
    return Camera.model_validate({"camera_id": "cam1", "zones": zones or [], "detect": {"detectors": specs}})


def _frame(*squares: tuple[int, int, int]) -> np.ndarray:
    """A dark frame with white squares (x, y, side)."""
    f = np.full((H, W, 3), 40, np.uint8)
    for x, y, s in squares:
        f[y : y + s, x : x + s] = 255
    return f


def _squares_script(class_names: tuple[str, ...] = ("face",)) -> Any:
    """Detects every white square separately (connected components): class = face, score 0.9."""

    def script(_: int, frame: np.ndarray) -> Detections:
        mask = (frame.min(axis=2) >= 200).astype(np.uint8)
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        if n <= 1:
            return Detections.empty(class_names)
        s = stats[1:].astype(np.float32)
        xyxy = np.stack([s[:, 0], s[:, 1], s[:, 0] + s[:, 2], s[:, 1] + s[:, 3]], axis=1)
        return Detections(xyxy, np.full(n - 1, 0.9, np.float32), np.zeros(n - 1, np.int32), class_names)

    return script


def test_downscale_maps_boxes_back_to_full_resolution() -> None:
    fake = FakeDetector(bright_box_script(200), name="fake")
    cam = _camera([{"model": "fake", "classes": ["face"], "max_side": 320, "margin": 1.0}])
    masks = DynamicMasks(cam, {"fake": fake}).detect(_frame((400, 200, 160)))
    assert len(masks) == 1 and isinstance(masks[0], MaskBoxes)
    np.testing.assert_allclose(masks[0].xyxy[0], [400, 200, 560, 360], atol=4.0)  # 4x downscale: +-1 small pixel
    small, sx, sy = downscale(_frame()[None], 320)
    assert small.shape == (1, 180, 320, 3) and (sx, sy) == (4.0, 4.0)
    same, one, _ = downscale(_frame()[None], 4096)
    assert same.shape == (1, H, W, 3) and one == 1.0


def test_margin_grows_about_centre_and_clips_to_frame() -> None:
    fake = FakeDetector(_squares_script(), name="fake")
    cam = _camera([{"model": "fake", "classes": ["face"], "max_side": 1280, "margin": 2.0, "shape": "ellipse"}])
    boxes = DynamicMasks(cam, {"fake": fake}).detect(_frame((600, 300, 100), (0, 0, 100)))[0]
    assert len(boxes) == 2 and boxes.ellipse.all()
    order = np.argsort(boxes.xyxy[:, 0])
    np.testing.assert_allclose(boxes.xyxy[order[0]], [0, 0, 150, 150], atol=0.5)  # clipped at the corner
    np.testing.assert_allclose(boxes.xyxy[order[1]], [550, 250, 750, 450], atol=0.5)


def test_where_zones_keep_only_boxes_centred_inside() -> None:
    zones = [
        {"id": "door", "kind": "watch", "polygon": [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]},
        {"id": "other", "kind": "watch", "polygon": [[0.9, 0.9], [1.0, 0.9], [1.0, 1.0]]},
    ]
    fake = FakeDetector(_squares_script(), name="fake")
    cam = _camera([{"model": "fake", "classes": ["face"], "where": ["door"], "max_side": 640}], zones)
    frame = _frame((100, 100, 80), (900, 300, 80), (700, 500, 80))  # centres at x=140 (in), 940, 740 (out)
    boxes = DynamicMasks(cam, {"fake": fake}).detect(np.stack([frame, frame]))
    assert len(boxes) == 2
    for b in boxes:
        assert len(b) == 1
        centre = (b.xyxy[0, 0] + b.xyxy[0, 2]) / 2
        assert 120 < centre < 160
    everywhere = _camera([{"model": "fake", "classes": ["face"], "max_side": 640}], zones)
    assert len(DynamicMasks(everywhere, {"fake": fake}).detect(frame)[0]) == 3


def test_centres_inside_lookup() -> None:
    mask = np.zeros((10, 20), bool)
    mask[:, :10] = True
    boxes = np.array([[0, 0, 4, 4], [12, 0, 16, 4], [8, 8, 30, 30]], np.float32)  # last centre clipped to (19, 9)
    assert centres_inside(boxes, mask).tolist() == [True, False, False]
    assert centres_inside(np.zeros((0, 4), np.float32), mask).shape == (0,)


def test_class_and_threshold_filters() -> None:
    names = ("face", "person")

    def script(_: int, frame: np.ndarray) -> Detections:
        return Detections(
            np.array([[10, 10, 50, 50], [100, 100, 200, 300], [300, 10, 340, 50]], np.float32),
            np.array([0.9, 0.95, 0.2], np.float32),
            np.array([0, 1, 0], np.int32),
            names,
        )

    fake = FakeDetector(script, class_names=names, name="fake")
    cam = _camera([{"model": "fake", "classes": ["face"], "threshold": 0.3, "margin": 1.0, "max_side": 1280}])
    boxes = DynamicMasks(cam, {"fake": fake}).detect(_frame())[0]
    np.testing.assert_allclose(boxes.xyxy, [[10, 10, 50, 50]])
    assert not boxes.ellipse.any()
    with pytest.raises(ConfigError, match=r"cam1.*'fake'.*\['car'\] are not classes of this model"):
        DynamicMasks(_camera([{"model": "fake", "classes": ["car"]}]), {"fake": fake})


def test_registry_mask_classes_are_the_default() -> None:
    fake = FakeDetector(_squares_script(), class_names=("face",), name="yunet")
    dm = DynamicMasks(_camera([{"model": "yunet", "max_side": 640}]), {"yunet": fake})
    assert dm.plans[0].classes == ("face",)
    assert len(dm.detect(_frame((100, 100, 50)))[0]) == 1


def test_no_detect_config_and_bad_detectors() -> None:
    cam = Camera.model_validate({"camera_id": "plain"})
    dm = DynamicMasks(cam)
    assert not dm.enabled
    out = dm.detect(np.zeros((3, 20, 30, 3), np.uint8))
    assert len(out) == 3 and all(len(m) == 0 for m in out)

    class Short(FakeDetector):
        def detect(self, batch: np.ndarray) -> list[Detections]:
            return super().detect(batch)[:1]

    bad = _camera([{"model": "fake", "classes": ["face"]}])
    with pytest.raises(DetectorError, match="returned 1 results for 2 frames"):
        DynamicMasks(bad, {"fake": Short(name="fake")}).detect(np.zeros((2, 20, 30, 3), np.uint8))
    failing = FakeDetector(fail_on=lambda i: True, name="fake")
    with pytest.raises(DetectorError, match="injected failure"):
        DynamicMasks(bad, {"fake": failing}).detect(np.zeros((1, 20, 30, 3), np.uint8))


def test_presets() -> None:
    cfg = detect_config_from_preset("faces,bodies", every=2)
    assert [s.model for s in cfg.detectors] == ["yunet", "nudenet-320n"] and cfg.every == 2
    assert cfg.detectors[0].shape == "ellipse" and cfg.detectors[0].classes == ["face"]
    assert cfg.detectors[1].classes is None  # the registry's exposed-body mask_classes
    assert len(detect_config_from_preset(" faces , faces ").detectors) == 1
    with pytest.raises(ConfigError, match="unknown detect preset.*'hands'.*faces, persons, heads, bodies"):
        detect_config_from_preset("faces,hands")
    with pytest.raises(ConfigError, match="empty"):
        detect_config_from_preset(" , ")


@pytest.mark.slow
def test_real_yunet_and_nudenet_on_entrance_clip(entrance_clip: Path) -> None:
    cap = cv2.VideoCapture(str(entrance_clip))
    ok, frame = cap.read()
    cap.release()
    assert ok and frame.shape == (360, 640, 3)
    cam = Camera.model_validate(
        {"camera_id": "entrance", "detect": detect_config_from_preset("faces,bodies").model_dump()}
    )
    dm = DynamicMasks(cam)
    masks = dm.detect(np.stack([frame, frame]))
    assert len(masks) == 2
    assert len(masks[0]) >= 4, "the crowd at the entrance shows several faces"  # measured: 8
    np.testing.assert_allclose(masks[0].xyxy, masks[1].xyxy)
    assert np.all(masks[0].xyxy >= 0) and np.all(masks[0].xyxy[:, 2] <= 640) and np.all(masks[0].xyxy[:, 3] <= 360)
    # Same faces as YuNet itself at the preset's threshold, grown by the preset's margin.
    direct = load_detector("yunet", conf=0.4).detect(frame)[0].grown(1.3, 640, 360)
    faces = masks[0].xyxy[masks[0].ellipse]
    assert len(faces) == len(direct)
    np.testing.assert_allclose(np.sort(faces, axis=0), np.sort(direct.xyxy, axis=0), atol=0.01)
    big = cv2.resize(frame, (1920, 1080))  # full HD
    shrunk = PRESETS["faces"].model_copy(update={"native": False})  # detected on a 640-wide copy, boxes scaled x3
    dm640 = DynamicMasks(Camera(camera_id="e", detect=DetectConfig(detectors=[shrunk])), {"yunet": dm.detectors["yunet"]})
    up = dm640.detect(big)[0]
    up_faces = up.xyxy[up.ellipse]
    assert abs(len(up_faces) - len(faces)) <= 1
    assert up_faces.size and up_faces[:, 2].max() > 640  # mapped back to 1920x1080 pixels
    native = dm.detect(big)[0]  # the preset: full resolution, where it finds small faces the copy loses
    assert len(native) >= len(up_faces)
