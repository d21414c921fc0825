"""The default audit (fused verdict: YOLOX-Nano + scene models + the shipped fusion model) on real
dev photos: flags a bedroom, a locker room and a shower, keeps a corridor with room doors compliant,
explains itself, stays zone-aware, and `masking scenes train` writes a model that audits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import shapely
from conftest import write_manifest

from masking.audit import Auditor, AuditResult, AuditSettings
from masking.audit.fusion import FusionModel
from masking.audit.overlay import draw_segmentation
from masking.cli import main
from masking.config.zones import Camera, parse_zones
from masking.video.images import read_image

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def default() -> Auditor:
    return Auditor(AuditSettings())


def _camera(*polygons: list[list[float]]) -> Camera:
    zones = [{"id": f"z{i}", "kind": "privacy_mask", "polygon": p} for i, p in enumerate(polygons)]
    return parse_zones({"cameras": [{"camera_id": "c", "zones": zones}]}).cameras[0]


def _with_proposals(res: AuditResult) -> Camera:
    return _camera(*[m.polygon for m in res.proposed_masks])


@pytest.mark.parametrize(
    ("name", "categories"),
    [
        ("bedroom_006.jpg", {"guest_room", "dormitory"}),
        ("changing_room_002.jpg", {"changing_room", "bathroom", "shower", None}),  # a locker room
        ("shower_room_004.jpg", {"shower", "bathroom", "toilet"}),
    ],
)
def test_prohibited_places_are_flagged(default: Auditor, dev_dir: Path, name: str, categories: set[str | None]) -> None:
    res = default.audit_path(dev_dir / "images" / name, None)
    assert res.verdict in ("violation", "review"), res.line()
    assert res.category in categories, res.category
    assert res.fusion is not None and res.fusion["probability"] >= res.fusion["thresholds"]["review"]
    assert res.fusion["contributions"] and res.confidence == pytest.approx(res.fusion["gated_probability"], abs=1e-3)


def test_corridor_with_room_doors_is_compliant(default: Auditor, dev_dir: Path) -> None:
    res = default.audit_path(dev_dir / "images" / "corridor_011.jpg", None)  # hostel corridor, room doors
    assert res.verdict == "compliant", res.line()
    assert res.fusion is not None and res.fusion["probability"] < res.fusion["thresholds"]["review"]


def test_explanation_in_json_and_overlay(default: Auditor, dev_dir: Path) -> None:
    photo = dev_dir / "images" / "bedroom_006.jpg"
    res = default.audit_path(photo, None)
    doc = json.loads(json.dumps(res.to_dict()))
    fusion = doc["fusion"]
    assert set(fusion) >= {"probability", "thresholds", "contributions", "deciding_items", "per_frame", "logit"}
    assert any(k in ("obj:bed", "seg:bed") and v > 0 for k, v in fusion["contributions"].items())
    deciding = [e for e in doc["evidence"] if e["id"] in fusion["deciding_items"]]
    assert deciding and all(e["contribution"] > 0 and not e["masked"] for e in deciding)
    beds = [e for e in doc["evidence"] if e["model"] == "deeplabv3-ade20k" and e["class_name"] == "bed"]
    assert beds and len(beds[0]["polygon"]) >= 3  # a segmented bed region, with its outline
    seg = doc["segmentation"]
    assert seg["model"] == "deeplabv3-ade20k" and "bed" in seg["classes"] and seg["categories"]["bed"] == "guest_room"
    img = read_image(photo)
    drawn = draw_segmentation(img, res.segmentation)
    assert drawn.shape == img.shape and (drawn != img).any() and (draw_segmentation(img, None) == img).all()


def test_region_proposals_make_the_view_compliant(default: Auditor, dev_dir: Path) -> None:
    for name in ("bedroom_006.jpg", "shower_room_004.jpg"):
        photo = dev_dir / "images" / name
        first = default.audit_path(photo, None)
        assert first.verdict in ("violation", "review") and first.proposed_masks, first.line()
        regions = [e for e in first.evidence if e.polygon is not None and e.id in first.fusion["deciding_items"]]  # type: ignore[index]
        for e in regions:  # a region's mask follows its outline: it covers the region, not its whole box
            mask = shapely.union_all([shapely.Polygon(m.polygon) for m in first.proposed_masks])
            assert mask.covers(shapely.Polygon(e.polygon).buffer(0))
        second = default.audit_path(photo, _with_proposals(first))
        assert second.verdict == "compliant", second.line()
        assert "masked" in second.reason


def test_whole_view_masked_is_compliant(default: Auditor, dev_dir: Path) -> None:
    res = default.audit_path(dev_dir / "images" / "changing_room_002.jpg", _camera([[0, 0], [1, 0], [1, 1], [0, 1]]))
    assert res.verdict == "compliant", res.line()


def test_scenes_train_writes_a_model_that_audits(dev_dir: Path, dev_manifest: list[dict[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    picked = [r for r in dev_manifest if r["prohibited"] == "yes"][:6] + [r for r in dev_manifest if r["prohibited"] == "no"][:6]
    manifest = write_manifest(tmp_path / "manifest.csv", picked, dev_dir)
    out = tmp_path / "site.json"
    assert main(["scenes", "train", str(manifest), "--out", str(out), "--C", "0.1", "--axes", "4"]) == 0
    text = capsys.readouterr().out
    assert "12 photos: 6 prohibited, 6 allowed" in text and "cross-validation" in text and str(out) in text
    model = FusionModel.load(out)
    assert model.embedding_axes == 4 and model.info["photos"] == 12 and model.info["trained_on"] == str(manifest)
    assert 0.0 < model.review <= model.violation < 1.0
    photo = dev_dir / picked[0]["file"]
    assert main(["audit", str(photo), "--fusion-model", str(out), "--json", str(tmp_path / "a.json")]) == 1
    assert json.loads((tmp_path / "a.json").read_text(encoding="utf-8"))["results"][0]["verdict"] != "compliant"
