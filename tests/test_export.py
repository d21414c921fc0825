"""models/export.py: a YAML-built YOLOv8n (random weights) exported and run by our runtime."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from masking.detect.detections import Detections
from masking.detect.factory import load_detector
from masking.detect.nms import box_iou
from masking.detect.onnx import OnnxModel, create_session
from masking.detect.ultralytics import UltralyticsDetector
from masking.models import registry

pytestmark = [pytest.mark.export, pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["locker", "urinal", "shower"]
IMGSZ = 320
CONF = 0.5


def _export_module() -> Any:
    spec = importlib.util.spec_from_file_location("masking_export_script", ROOT / "models" / "export.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _calibrate_head(model: Any, image: np.ndarray) -> None:
    """Give random class weights a useful spread: random-init features are tiny, so scale the last
    class conv of each head level to put logits near N(-1, 2) on a real image (deterministic)."""
    import torch

    torch.manual_seed(0)
    net = model.model.eval()
    x = torch.from_numpy(cv2.resize(image, (IMGSZ, 192))[..., ::-1].transpose(2, 0, 1).copy()).float()[None] / 255
    head, stats = net.model[-1], {}
    hooks = [
        seq[-1].register_forward_hook(lambda m, inp, out, i=i: stats.__setitem__(i, float(inp[0].std())))
        for i, seq in enumerate(head.cv3)
    ]
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    for i, seq in enumerate(head.cv3):
        conv = seq[-1]
        fan_in = conv.weight[0].numel()
        torch.nn.init.normal_(conv.weight, std=2.0 / (stats[i] * fan_in**0.5))
        torch.nn.init.constant_(conv.bias, -1.0)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, dev_dir: Path) -> tuple[Path, Any, np.ndarray]:
    pytest.importorskip("ultralytics")
    pytest.importorskip("onnx")
    export = _export_module()
    image = cv2.imread(str(dev_dir / "images" / "classroom_001.jpg"))
    model = export.build("yolov8n.yaml", nc=3, names=NAMES)
    _calibrate_head(model, image)
    out = export.export(model, tmp_path_factory.mktemp("export") / "tiny.onnx", IMGSZ, source="yolov8n.yaml")
    return out, model, image


def test_export_writes_dynamic_shapes_and_metadata(exported: tuple[Path, Any, np.ndarray]) -> None:
    path = exported[0]
    sess = create_session("tiny", path)
    shape = sess.get_inputs()[0].shape
    assert shape[1] == 3 and all(isinstance(d, str) for d in (shape[0], shape[2], shape[3]))
    meta = sess.get_modelmeta().custom_metadata_map
    ours = json.loads(meta["masking"])
    assert ours["names"] == NAMES and ours["imgsz"] == [IMGSZ, IMGSZ] and ours["stride"] == 32
    assert "locker" in meta["names"]  # Ultralytics' own keys stay too


def test_onnx_output_equals_torch_on_our_tensor(exported: tuple[Path, Any, np.ndarray]) -> None:
    import torch

    path, model, image = exported
    det = UltralyticsDetector("tiny", OnnxModel("tiny", create_session("tiny", path)))
    assert det.class_names == tuple(NAMES) and det.input_wh == (IMGSZ, IMGSZ)
    tensor, geom = det.preprocess(image[None])
    assert tensor.shape == (1, 3, 192, 320)  # dynamic export: letterbox trimmed to a stride multiple
    raw = det.raw_run(tensor)[0]
    with torch.no_grad():
        ref = model.model.eval()(torch.from_numpy(tensor))
    ref = (ref[0] if isinstance(ref, (list, tuple)) else ref).numpy()
    assert raw.shape == ref.shape == (1, 4 + len(NAMES), 1260)
    np.testing.assert_allclose(raw[:, :4], ref[:, :4], atol=0.05)  # box coordinates in input pixels
    np.testing.assert_allclose(raw[:, 4:], ref[:, 4:], atol=2e-3)  # class scores


def test_runtime_matches_ultralytics_predictor_on_export(exported: tuple[Path, Any, np.ndarray]) -> None:
    from ultralytics import YOLO

    path, _, image = exported
    det = UltralyticsDetector("tiny", OnnxModel("tiny", create_session("tiny", path)), conf=CONF)
    ref = YOLO(str(path), task="detect").predict(image, conf=CONF, iou=0.7, imgsz=IMGSZ, verbose=False)[0].boxes
    ours = det.detect(np.stack([image, image]))  # dynamic batch: one session.run for both
    assert len(ours) == 2 and len(ref) >= 10
    ref_xyxy, ref_conf, ref_cls = ref.xyxy.numpy(), ref.conf.numpy(), ref.cls.numpy().astype(np.int32)
    for got in ours:
        assert len(got) == len(ref)
        # Random weights put boxes of several classes on the same anchor: match on class, box and score.
        iou = box_iou(ref_xyxy, got.xyxy)
        cost = (1 - iou) + np.abs(ref_conf[:, None] - got.confidence[None]) + 10.0 * (ref_cls[:, None] != got.class_id[None])
        match = cost.argmin(axis=1)
        assert len(set(match.tolist())) == len(match)
        assert iou[np.arange(len(match)), match].min() >= 0.9
        np.testing.assert_allclose(got.confidence[match], ref_conf, atol=0.02)
        assert (got.class_id[match] == ref_cls).all()


def test_export_registers_and_loads_through_the_factory(
    exported: tuple[Path, Any, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = exported[0]
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "tiny.onnx").write_bytes(path.read_bytes())
    data = path.read_bytes()
    reg = {
        "schema_version": 1,
        "models": [
            {
                "name": "tiny-lockers",
                "family": "ultralytics",
                "task": "objects",
                "file": "tiny.onnx",
                "mirror_path": "custom/tiny.onnx",
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data),
                "license": "AGPL-3.0",
                "input_size": None,
                "classes": "metadata",
                "mask_classes": [],
            }
        ],
    }
    reg_path = tmp_path / "registry.yaml"
    reg_path.write_text(yaml.safe_dump(reg))
    monkeypatch.setenv("MASKING_REGISTRY", str(reg_path))
    monkeypatch.setenv("MASKING_MODEL_DIR", str(cache))
    registry._load.cache_clear()
    try:
        det = load_detector("tiny-lockers", conf=CONF)
        assert det.class_names == tuple(NAMES)
        out = det.detect(exported[2])
        assert isinstance(out[0], Detections) and len(out[0]) >= 10
    finally:
        registry._load.cache_clear()


def test_export_cli_rejects_mismatched_names() -> None:
    export = _export_module()
    with pytest.raises(SystemExit, match="--names lists 2 names but --nc is 3"):
        export.main(["yolov8n.yaml", "-o", "x.onnx", "--nc", "3", "--names", "a,b"])
