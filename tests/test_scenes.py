"""Scene classifier: graph outputs without `onnx`, the numpy head, CV folds, training command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import write_manifest

from masking.art7 import SLEEPING_PLACE as SLEEPING
from masking.art7 import WET_ROOM as WET
from masking.audit import AuditFrame, Auditor, settings_from
from masking.audit.scenes import (
    L2_GRID,
    NONE,
    SceneClassifier,
    SceneFeatures,
    SceneHead,
    choose_l2,
    cross_validate,
    load_scene_classifier,
    scene_label,
    stratified_folds,
    train_head,
)
from masking.cli import main
from masking.config.zones import parse_zones
from masking.detect.onnx import create_session, read_model_bytes
from masking.detect.onnx_shapes import with_float_outputs
from masking.errors import ModelError, ModelNotInstalledError
from masking.models.cache import model_path
from masking.models.registry import load_registry
from masking.video.images import read_image


def _blobs(n: int = 40, d: int = 6, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    labels = [NONE] * (n // 2) + ["toilet"] * (n // 4) + ["guest_room"] * (n - n // 2 - n // 4)
    centres = {NONE: 0.0, "toilet": 5.0, "guest_room": -5.0}
    x = rng.normal(size=(n, d)) + np.array([centres[c] for c in labels])[:, None] * (np.arange(d) < 3)
    return x.astype(np.float32), labels


def test_with_outputs_adds_graph_outputs() -> None:
    path = model_path("yolox-nano")
    data = with_float_outputs(read_model_bytes("yolox-nano", path), ["841", "886"])
    names = [o.name for o in create_session("yolox-nano", data).get_outputs()]
    assert names == ["output", "841", "886"]
    with pytest.raises(ModelError):
        with_float_outputs(b"\x0f\x01", ["x"])  # unsupported wire type


def test_features_are_pooled_backbone_maps() -> None:
    feats = SceneFeatures(load_registry().get("scenes"))
    batch = np.random.default_rng(0).integers(0, 255, (2, 240, 320, 3), dtype=np.uint8)
    x = feats(batch)
    assert x.shape == (2, 128 + 256) and np.isfinite(x).all()
    assert np.allclose(feats(batch[1]), x[1:2], atol=1e-4)


def test_head_learns_and_round_trips(tmp_path: Path) -> None:
    x, labels = _blobs()
    head = train_head(x, labels, l2=0.05)
    assert head.classes[0] == NONE and set(head.classes) == {NONE, "toilet", "guest_room"}
    pred = [head.classes[i] for i in head.proba(x).argmax(axis=1)]
    assert np.mean([p == t for p, t in zip(pred, labels)]) > 0.9
    head.save(tmp_path / "h.npz")
    again = SceneHead.load(tmp_path / "h.npz")
    assert again.classes == head.classes and np.allclose(again.proba(x), head.proba(x))
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="scene head"):
        SceneHead.load(tmp_path / "bad.npz")
    with pytest.raises(ModelError, match="none"):
        train_head(x[:10], ["toilet"] * 10)


def test_stratified_folds_and_cv() -> None:
    _, labels = _blobs()
    folds = stratified_folds(labels, 5, seed=1)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(labels)))
    for f in folds:
        assert sum(labels[i] == NONE for i in f) == 4  # 20 `none` over 5 folds
    x, labels = _blobs()
    p = cross_validate(x, labels, k=4, l2=0.05)
    y = np.array([c != NONE for c in labels])
    assert ((p >= 0.5) == y).mean() > 0.85


def test_classifier_is_a_whole_view_detector() -> None:
    entry = load_registry().get("scenes")
    classes = (NONE, SLEEPING, WET)
    d = 384
    # a bias-only head: P = softmax([0, 0, 1]) for every frame
    head = SceneHead(classes, np.zeros(d, np.float32), np.ones(d, np.float32), np.zeros((d, 3), np.float32), np.array([0, 0, 1], np.float32))
    clf = SceneClassifier(entry, head)
    [det] = clf.detect(np.zeros((1, 100, 200, 3), np.uint8))
    p_wet = np.e / (2.0 + np.e)
    assert det.class_names == (SLEEPING, WET) and det.names.tolist() == [SLEEPING, WET]  # one box per class
    assert det.xyxy.tolist() == [[0.0, 0.0, 200.0, 100.0]] * 2
    assert det.confidence.tolist() == pytest.approx([1 / (2.0 + np.e), p_wet], abs=1e-5)
    # as evidence (registry rule): only wet_room counts, weak alone (review from P >= 0.56); its proposed
    # mask is the whole view -> re-aim; masking it all -> compliant
    a = Auditor(settings_from({"verdict": "rule", "models": ["scenes"]}), {"scenes": clf})
    frame = [AuditFrame(np.zeros((100, 200, 3), np.uint8), 0)]
    res = a.audit_frames(frame, None, "x")
    assert res.verdict == "review" and res.category == "bathroom" and res.hidden_share == pytest.approx(1.0)
    assert [e.class_name for e in res.evidence] == [WET]  # sleeping_place has weight 0: beds are the detectors' job
    cam = parse_zones({"cameras": [{"camera_id": "c", "zones": [m.as_zone() for m in res.proposed_masks]}]}).cameras[0]
    assert a.audit_frames(frame, cam, "x").verdict == "compliant"
    # a sleeping place alone is no evidence: the head is sure of it, the audit is compliant
    sure = SceneHead(classes, head.mean, head.std, head.weights, np.array([0, 9, 0], np.float32))
    res = Auditor(settings_from({"verdict": "rule", "models": ["scenes"]}), {"scenes": SceneClassifier(entry, sure, features=clf.features)}).audit_frames(frame, None, "x")
    assert res.verdict == "compliant" and res.evidence == []


def test_scene_labels_pool_categories_into_kinds() -> None:
    assert scene_label("dormitory", "yes") == SLEEPING and scene_label("changing_room", "yes") == WET
    assert scene_label("toilet", "no") == NONE and scene_label("shower", "yes", "categories") == "shower"
    with pytest.raises(ValueError):
        scene_label("toilet", "yes", "rooms")


def test_choose_l2_by_inner_cross_validation() -> None:
    x, labels = _blobs(seed=3)
    assert choose_l2(x, labels) == min(L2_GRID)  # well separated: the weakest penalty fits best
    # features unrelated to the labels: the strongest penalty predicts best (close to the prior)
    noise = np.random.default_rng(0).normal(size=x.shape)
    assert choose_l2(noise, labels) == max(L2_GRID)
    p = cross_validate(x, labels, k=4, l2=None)  # nested: the penalty is chosen inside each fold
    y = np.array([c != NONE for c in labels])
    assert ((p >= 0.5) == y).mean() > 0.85


def test_missing_head_says_how_to_train(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MASKING_MODEL_DIR", str(tmp_path))
    with pytest.raises(ModelNotInstalledError, match="masking scenes train"):
        load_scene_classifier("scenes")
    img = tmp_path / "x.png"
    import cv2

    cv2.imwrite(str(img), np.zeros((32, 32, 3), np.uint8))
    assert main(["audit", str(img), "--models", "scenes"]) == 2
    assert "masking scenes train" in capsys.readouterr().err


@pytest.mark.slow
def test_scenes_train_command(tmp_path: Path, dev_dir: Path, dev_manifest: list[dict[str, str]], capsys: pytest.CaptureFixture[str]) -> None:
    picked = [r for r in dev_manifest if r["label"] in ("hotel_room", "dorm_room")][:5]
    picked += [r for r in dev_manifest if r["prohibited"] == "no"][:5]
    manifest = write_manifest(tmp_path / "manifest.csv", picked, dev_dir)
    out = tmp_path / "head.npz"
    assert main(["scenes", "train-head", str(manifest), "--out", str(out), "--cv", "2"]) == 0  # `train` now fits the fusion
    text = capsys.readouterr().out
    assert "2-fold stratified cross-validation" in text and str(out) in text and "l2 " in text
    head = SceneHead.load(out)
    assert head.classes == (NONE, SLEEPING) and len(head.backbone_sha256) == 64  # kinds by default
    clf = SceneClassifier(load_registry().get("scenes"), head)
    p = clf.scores(np.stack([read_image(dev_dir / picked[0]["file"])]))
    assert p.shape == (1, len(head.classes)) and p[0].argmax() != head.classes.index(NONE)  # a training photo


def test_head_from_another_backbone_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    x, labels = _blobs()
    from dataclasses import replace

    replace(train_head(x, labels), backbone_sha256="f" * 64).save(tmp_path / "scenes_head.npz")
    monkeypatch.setenv("MASKING_MODEL_DIR", str(tmp_path))
    with pytest.raises(ModelError, match="retrain"):
        load_scene_classifier("scenes")
