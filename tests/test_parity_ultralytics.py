"""Our Ultralytics adapter against the `ultralytics` package's own predictor on the same ONNX files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from masking.detect.factory import load_detector
from masking.detect.nms import box_iou
from masking.models.cache import model_path

pytestmark = [pytest.mark.export, pytest.mark.slow]

CONF, IOU = 0.25, 0.7  # Ultralytics' predictor defaults, also ours; 0.05 as well for many more boxes
N_IMAGES = 12


@pytest.fixture(scope="module")
def yolo_cls() -> Any:
    ultralytics = pytest.importorskip("ultralytics")
    return ultralytics.YOLO


@pytest.fixture(scope="module")
def photos(dev_dir: Path) -> list[np.ndarray]:
    files = sorted((dev_dir / "images").glob("*.jpg"))
    picked = files[:: max(1, len(files) // N_IMAGES)][:N_IMAGES]
    return [cv2.imread(str(f)) for f in picked]


def compare(ours: Any, ref_xyxy: np.ndarray, ref_conf: np.ndarray, ref_cls: np.ndarray) -> tuple[float, float]:
    """Assert same boxes/classes/scores; return (worst matched IoU, largest score difference)."""
    assert len(ours) == len(ref_xyxy)
    if not len(ours):
        return 1.0, 0.0
    iou = box_iou(ref_xyxy, ours.xyxy)
    # Class-aware NMS can keep boxes of two classes in one place: match on class, box and score.
    cost = (1 - iou) + np.abs(ref_conf[:, None] - ours.confidence[None]) + 10.0 * (ref_cls[:, None] != ours.class_id[None])
    match = cost.argmin(axis=1)
    assert len(set(match.tolist())) == len(match), "two reference boxes matched the same box"
    worst = float(iou[np.arange(len(match)), match].min())
    diff = float(np.abs(ours.confidence[match] - ref_conf).max())
    assert worst >= 0.9
    assert diff <= 0.02
    assert (ours.class_id[match] == ref_cls).all()
    return worst, diff


@pytest.mark.parametrize("conf", [CONF, 0.05])
@pytest.mark.parametrize("name", ["nudenet-320n", "yolo11n-int8"])
def test_adapter_matches_ultralytics_predictor(name: str, conf: float, yolo_cls: Any, photos: list[np.ndarray]) -> None:
    ours = load_detector(name, conf=conf, iou=IOU)
    ref_model = yolo_cls(str(model_path(name)), task="detect")
    total = 0
    for img in photos:
        ref = ref_model.predict(img, conf=conf, iou=IOU, imgsz=320, verbose=False)[0].boxes
        total += len(ref)
        compare(
            ours.detect(img)[0],
            ref.xyxy.numpy(),
            ref.conf.numpy(),
            ref.cls.numpy().astype(np.int32),
        )
    assert total >= (3 if name == "nudenet-320n" else 20) * (1 if conf == CONF else 4), f"too few boxes ({total})"
