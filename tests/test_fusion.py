"""The fused verdict: feature vector, model file round trip, training, the gate and zone awareness
(synthetic evidence; real photos are in tests/test_audit_fusion_real.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely

from masking.audit.fused import FusedJudge
from masking.audit.fusion import (
    CONTEXT_OBJECTS,
    FeatureSpace,
    FusionModel,
    ViewInputs,
    fit_fusion,
    group_of,
    out_of_fold,
    stratified_folds,
)
from masking.audit.result import Evidence
from masking.audit.scene_evidence import (
    SceneObservation,
    band_masks,
    class_shares,
    region_evidence,
    visible_mask,
)
from masking.audit.verdict import decide_fused, judge_frame
from masking.detect.detections import Detections
from masking.errors import ConfigError, ModelError
from masking.models.registry import COCO80, load_registry

SEG = load_registry().get("deeplabv3-ade20k")
ADE = SEG.static_class_names or ()
INET = load_registry().get("mobilenetv2-imagenet").static_class_names or ()
SPACE = FeatureSpace(("bed", "toilet", "sink", "couch"), tuple(ADE), tuple(SEG.evidence), tuple(INET))


def item(name: str, score: float, box: tuple[float, float, float, float], masked: bool = False, category: str = "guest_room") -> Evidence:
    return Evidence("", name, "yolox-nano", category, score, 0.9, 0.9 * score, True, tuple(v * 100 for v in box),  # type: ignore[arg-type]
                    box, masked, 1.0 if masked else 0.0, 0)


def labels_with(cls: str, rows: slice, cols: slice) -> np.ndarray:
    lab = np.zeros((129, 129), np.uint8)
    lab[rows, cols] = ADE.index(cls)
    return lab


def test_feature_names_are_documented_and_stable() -> None:
    names = SPACE.names(embedding_axes=2)
    assert names[:6] == ["obj:bed", "obj:toilet", "obj:sink", "obj:couch", "obj:beds", "obj:several"]
    assert "seg:bed:all" in names and "seg:bed:low" not in names and "seg:shower:mid" in SPACE.names(bands=True)
    assert "seg:floor:all" in names and "inet:shower curtain" in names and names[-2:] == ["emb:0", "emb:1"]
    assert len(names) == len(set(names))
    assert group_of("seg:bed:low") == "seg:bed" and group_of("obj:beds") == "obj:bed" and group_of("emb:3") == "emb"


def test_raw_features_count_only_what_is_not_masked() -> None:
    lab = labels_with("bed", slice(80, 129), slice(0, 129))  # bed over the lower ~38 % of the view
    inet = np.zeros(1001, np.float32)
    inet[INET.index("quilt, comforter, comfort, puff")] = 0.25
    obs = SceneObservation(lab, inet, None)
    dets = Detections(np.array([[10, 10, 40, 60]], np.float32), np.array([0.7], np.float32), np.array([COCO80.index("car")], np.int32), COCO80)
    items = [item("bed", 0.8, (0.0, 0.6, 1.0, 1.0)), item("bed", 0.6, (0.0, 0.0, 0.3, 0.3), category="dormitory")]
    f = SPACE.raw(ViewInputs(items, dets, (100, 100), obs, None))
    assert f["obj:bed"] == pytest.approx(0.8) and f["obj:beds"] == 2 and f["obj:several"] == 1.0
    assert f["ctx:car"] == pytest.approx(0.7) and f["ctx:person"] == 0.0 and len([k for k in f if k.startswith("ctx:")]) == len(CONTEXT_OBJECTS)
    share = 49 * 129 / 129**2
    assert f["seg:bed:all"] == pytest.approx(np.sqrt(share), abs=1e-6)
    assert f["seg:bed:high"] == 0.0 and f["seg:bed:low"] > f["seg:bed:all"]
    assert f["inet:quilt"] == pytest.approx(0.5)
    # the lower half masked: the bed box, the bed pixels and the car there count as absent
    masked = shapely.box(0.0, 0.5, 1.0, 1.0)
    items_m = [item("bed", 0.8, (0.0, 0.6, 1.0, 1.0), masked=True)]
    g = SPACE.raw(ViewInputs(items_m, dets, (100, 100), obs, masked))
    assert g["obj:bed"] == 0.0 and g["obj:beds"] == 0 and g["seg:bed:all"] == 0.0 and g["ctx:car"] == pytest.approx(0.7)
    masked_car = shapely.box(0.0, 0.0, 0.5, 0.7)
    assert SPACE.raw(ViewInputs([], dets, (100, 100), obs, masked_car))["ctx:car"] == 0.0


def test_shares_bands_and_visible_pixels() -> None:
    lab = labels_with("toilet", slice(0, 10), slice(0, 10))
    vis = visible_mask(lab.shape, shapely.box(0.0, 0.0, 0.04, 1.0))  # the left 4 % (5 columns) masked
    assert not vis[:, :5].any() and vis[:, 6:].all()
    s = class_shares(lab, vis)
    k = ADE.index("toilet")
    assert s["all"][k] == pytest.approx(10 * 5 / 129**2, rel=0.25) and s["low"][k] == 0.0
    bands = band_masks((129, 129))
    assert bands["low"].sum() + bands["high"].sum() == 129 * 129 and bands["mid"].sum() < bands["low"].sum()


def test_regions_are_localised_evidence_with_outlines() -> None:
    lab = labels_with("shower", slice(20, 60), slice(30, 70))
    lab[100:105, 100:103] = ADE.index("shower")  # too small: not evidence
    rules = dict(SEG.evidence)
    items = region_evidence(lab, np.ones_like(lab, bool), rules, ADE, "deeplabv3-ade20k", 0.005, 0.8, 0, (1290, 1290))
    [shower] = items
    assert shower.class_name == "shower" and shower.category == "shower" and not shower.masked
    assert shower.score == pytest.approx(40 * 40 / 129**2)
    poly = shapely.Polygon(shower.polygon)
    assert poly.area == pytest.approx(shower.score, rel=0.1) and shower.xyxy_norm[0] == pytest.approx(30 / 129)
    hidden = visible_mask(lab.shape, shapely.box(0.0, 0.0, 1.0, 0.5))
    [masked] = region_evidence(lab, hidden, rules, ADE, "deeplabv3-ade20k", 0.005, 0.8, 0, (1290, 1290))
    assert masked.masked and masked.masked_share == 1.0


def _toy(seed: int = 0, n: int = 120) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.5
    x = rng.normal(size=(n, 3))
    x[:, 0] += 2.0 * y  # the first feature carries the label
    emb = rng.normal(size=(n, 16))
    emb[:, 0] += 3.0 * y
    return x, emb, y, ["obj:bed", "ctx:car", "seg:bed:all"]


def test_training_round_trip_and_explanations(tmp_path: Path) -> None:
    x, emb, y, names = _toy()
    m = fit_fusion(x, emb, y, names, c=1.0, axes=2)
    assert m.features == names + ["emb:0", "emb:1"] and m.embedding_axes == 2
    m.object_model, m.scene_models = "yolox-nano", ["deeplabv3-ade20k"]
    path = tmp_path / "fusion.json"
    m.save(path)
    back = FusionModel.load(path)
    raw = {n: float(v) for n, v in zip(names, x[0])}
    v1, v2 = m.vector(raw, emb[0]), back.vector(raw, emb[0])
    assert np.allclose(v1, v2, atol=1e-4) and back.proba(v2) == pytest.approx(m.proba(v1), abs=1e-4)
    xe = np.stack([back.vector({n: float(v) for n, v in zip(names, r)}, e) for r, e in zip(x, emb)])
    p = back.proba(xe)
    assert ((p >= 0.5) == y).mean() > 0.85  # it learned
    contrib = back.explain(xe[int(np.argmax(p))])
    assert set(contrib) == {"obj:bed", "ctx:car", "seg:bed", "emb"} and list(contrib)[0] in ("obj:bed", "emb")
    assert sum(contrib.values()) + back.intercept == pytest.approx(float(back.logit(xe[int(np.argmax(p))])))
    with pytest.raises(ModelError, match="not available"):
        back.vector({"obj:bed": 1.0}, emb[0])


def test_bad_model_files_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "f.json"
    bad.write_text('{"format": 99}', encoding="utf-8")
    with pytest.raises(ModelError, match="format"):
        FusionModel.load(bad)
    bad.write_text("not json", encoding="utf-8")
    with pytest.raises(ModelError, match="not a readable fusion model"):
        FusionModel.load(bad)


def test_cross_validation_never_sees_its_fold() -> None:
    x, emb, y, names = _toy(1)
    folds = stratified_folds(y, 5, 0)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(y)))
    p = out_of_fold(x, emb, y, names, 1.0, 2, k=5, seed=0)
    assert ((p >= 0.5) == y).mean() > 0.8
    noise = np.random.default_rng(2).normal(size=x.shape)
    q = out_of_fold(noise, None, y, names, 1.0, 0, k=5, seed=0)
    assert ((q >= 0.5) == y).mean() < 0.75  # unrelated features do not predict out of fold


def _ev(eid: str, contribution: float, masked: bool = False, category: str = "guest_room") -> Evidence:
    e = item("bed", 0.8, (0.1, 0.5, 0.6, 0.9), masked=masked, category=category)
    from dataclasses import replace

    return replace(e, id=eid, contribution=None if masked else contribution)


def test_gate_needs_unmasked_localised_evidence() -> None:
    cats = {"obj:bed": "guest_room", "seg:toilet": "toilet", "emb": None}
    j = judge_frame(0.9, 2.2, {"obj:bed": 1.5, "emb": 0.7}, [_ev("e1", 1.5)], cats, False)
    assert j.gated == 0.9 and j.items == ("e1",) and j.category == "guest_room" and not j.whole_view
    masked = judge_frame(0.9, 2.2, {"emb": 2.0}, [_ev("e1", 0.0, masked=True)], cats, False)
    assert masked.gated == 0.0 and masked.masked_only  # the evidence is masked: the view is compliant
    view = judge_frame(0.9, 2.2, {"emb": 2.0}, [], cats, False)
    assert view.gated == 0.9 and view.whole_view and view.category is None
    assert judge_frame(0.9, 2.2, {"emb": 2.0}, [], cats, True).gated == 0.0  # the whole view is masked
    dorm = judge_frame(0.9, 2.2, {"obj:bed": 1.5}, [_ev("e1", 1.0, category="dormitory")], cats, False)
    assert dorm.category == "dormitory"


def test_fused_decision_thresholds_and_persistence() -> None:
    cats = {"obj:bed": "guest_room"}

    def frame(p: float) -> object:
        return judge_frame(p, 0.0, {"obj:bed": 1.0}, [_ev("e1", 1.0)], cats, False)

    assert decide_fused([(0, frame(0.9))], 0.7, 0.4, 2).verdict == "violation"  # type: ignore[list-item]
    assert decide_fused([(0, frame(0.5))], 0.7, 0.4, 2).verdict == "review"  # type: ignore[list-item]
    d = decide_fused([(0, frame(0.2))], 0.7, 0.4, 2)  # type: ignore[list-item]
    assert d.verdict == "compliant" and d.confidence == pytest.approx(0.8)
    one = decide_fused([(0, frame(0.95)), (1, frame(0.1)), (2, frame(0.1))], 0.7, 0.4, 2)  # type: ignore[list-item]
    assert one.verdict == "review" and "needs 2" in one.reason  # one frame alone does not decide
    two = decide_fused([(0, frame(0.95)), (1, frame(0.8)), (2, frame(0.1))], 0.7, 0.4, 2)  # type: ignore[list-item]
    assert two.verdict == "violation" and two.evidence_frames == [0, 1]


def test_judge_needs_its_models() -> None:
    judge = FusedJudge.load(None, ["deeplabv3-ade20k", "mobilenetv2-imagenet", "mobilenetv1-embedding"])
    with pytest.raises(ConfigError, match="yolox-nano"):
        judge.check_detectors(["yolo11n-int8"])
    with pytest.raises(ConfigError, match="lack"):
        FusedJudge.load(None, ["deeplabv3-ade20k"])
