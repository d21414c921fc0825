"""Fleet manifests (YAML, CSV, folder convention), work-item planning and camera aggregation."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from masking.errors import ConfigError
from masking.rescan.combine import combine_results
from masking.rescan.items import plan_items
from masking.rescan.manifest import folder_fleet, load_fleet, load_manifest

ZONES = """
cameras:
  - camera_id: cam-a
    zones:
      - id: door
        kind: privacy_mask
        polygon: [[0.1, 0.1], [0.4, 0.1], [0.4, 0.5]]
  - camera_id: other
"""


@pytest.fixture()
def media(tmp_path: Path, dev_dir: Path) -> Path:
    """A folder with three real dev photos and a clip, for footage entries."""
    d = tmp_path / "media"
    d.mkdir()
    for name in ("bathroom_001.jpg", "dining_001.jpg", "dorm_room_001.jpg"):
        shutil.copy(dev_dir / "images" / name, d / name)
    (d / "notes.txt").write_text("not media")
    return d


def test_yaml_manifest_resolves_zones_globs_folders_and_streams(tmp_path: Path, media: Path) -> None:
    (tmp_path / "zones.yaml").write_text(ZONES)
    (tmp_path / "fleet.yaml").write_text(
        "version: 1\nstream_seconds: 5\ncameras:\n"
        "  - camera_id: cam-a\n    site: Hotel lobby\n    zones: zones.yaml\n"
        "    footage: [media/*.jpg, rtsp://10.0.0.5/stream1]\n"
        "  - camera_id: cam-b\n    zones: zones.yaml\n    zones_camera: other\n    footage: [media]\n"
        "    stream_seconds: 30\n"
    )
    fleet = load_manifest(tmp_path / "fleet.yaml")
    a, b = fleet.cameras
    assert a.camera_id == "cam-a" and a.site == "Hotel lobby"
    assert a.zones is not None and a.zones.camera_id == "cam-a"  # picked by the entry's camera_id
    assert b.zones is not None and b.zones.camera_id == "other"
    assert a.stream_seconds == 5 and b.stream_seconds == 30
    items = plan_items(fleet, {"models": ["yolox-nano"]})
    kinds = [(it.camera_id, it.kind) for it in items]
    assert kinds == [("cam-a", "image")] * 3 + [("cam-a", "stream")] + [("cam-b", "image")] * 3
    assert all(it.content_hash for it in items if it.kind == "image")
    stream = items[3]
    assert stream.content_hash is None and stream.stream_seconds == 5
    # same file, different camera zones -> different config key and item id
    assert items[0].content_hash == items[4].content_hash and items[0].item_id != items[4].item_id
    # settings change the key
    again = plan_items(fleet, {"models": ["yolox-nano"], "sample_fps": 2.0})
    assert {it.item_id for it in again}.isdisjoint({it.item_id for it in items})


def test_csv_manifest_merges_rows_and_splits_footage(tmp_path: Path, media: Path) -> None:
    (tmp_path / "fleet.csv").write_text(
        "camera_id,site,footage\n"
        "c1,Dorm,media/bathroom_001.jpg;media/dining_001.jpg\n"
        "c1,,media/dorm_room_001.jpg\n"
        "c2,Canteen,media/dining_001.jpg\n"
    )
    fleet = load_fleet(tmp_path / "fleet.csv")
    assert [c.camera_id for c in fleet.cameras] == ["c1", "c2"]
    assert len(fleet.cameras[0].footage) == 3 and fleet.cameras[0].site == "Dorm"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("camera_id,footage,color\nc1,a.jpg,red\n", "unknown ['color']"),
        ("camera_id,site\nc1,x\n", "missing ['footage']"),
        ("camera_id,footage\n,a.jpg\n", ":2: camera_id is empty"),
        ("camera_id,footage\nc1,\n", ":2: camera 'c1': footage is empty"),
        ("camera_id,site,footage\nc1,A,a.jpg\nc1,B,b.jpg\n", ":3: camera 'c1': site 'B' disagrees"),
        ("camera_id,footage\nbad id!,a.jpg\n", "not a valid id"),
        ("camera_id,footage,stream_seconds\nc1,rtsp://x/y,soon\n", "stream_seconds 'soon' is not a number"),
    ],
)
def test_csv_manifest_errors_name_row_and_field(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "fleet.csv").write_text(text)
    with pytest.raises(ConfigError, match="fleet.csv") as exc:
        load_manifest(tmp_path / "fleet.csv")
    assert message in str(exc.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cameras: []\n", "at least 1"),
        ("cameras:\n  - camera_id: a\n    footage: [x.jpg]\n    colour: red\n", "camera 'a', field 'colour'"),
        ("cameras:\n  - camera_id: a\n    footage: [x.jpg]\n  - camera_id: a\n    footage: [y.jpg]\n", "repeated: ['a']"),
        ("cameras:\n  - camera_id: a\n    footage: []\n", "camera 'a', field 'footage'"),
        ("cameras:\n  - camera_id: a\n    zones: nope.yaml\n    footage: [x.jpg]\n", "zones file"),
        ("cameras:\n  - camera_id: a\n    footage: [x.jpg]\n    footage: [y.jpg]\n", "duplicate key 'footage'"),
        ("version: 9\ncameras:\n  - camera_id: a\n    footage: [x.jpg]\n", "field 'version'"),
    ],
)
def test_yaml_manifest_errors(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "fleet.yaml").write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_manifest(tmp_path / "fleet.yaml")
    assert message in str(exc.value)


def test_zones_camera_must_exist(tmp_path: Path) -> None:
    (tmp_path / "zones.yaml").write_text(ZONES)
    (tmp_path / "fleet.yaml").write_text(
        "cameras:\n  - camera_id: x\n    zones: zones.yaml\n    footage: [a.jpg]\n")
    with pytest.raises(ConfigError, match="holds 2 cameras"):
        load_manifest(tmp_path / "fleet.yaml")


def test_folder_convention(tmp_path: Path, media: Path, office_clip: Path) -> None:
    root = tmp_path / "fleet"
    (root / "cam-a").mkdir(parents=True)
    (root / "cam-b" / "2026-11").mkdir(parents=True)
    shutil.copy(media / "bathroom_001.jpg", root / "cam-a")
    (root / "cam-a" / "zones.yaml").write_text(ZONES)
    shutil.copy(office_clip, root / "cam-b" / "2026-11" / "clip.mp4")
    shutil.copy(media / "dining_001.jpg", root / "loose.jpg")
    (root / "README.txt").write_text("skipped")
    fleet = folder_fleet(root)
    assert [c.camera_id for c in fleet.cameras] == ["cam-a", "cam-b", "loose"]
    assert fleet.cameras[0].zones is not None and fleet.cameras[0].zones.camera_id == "cam-a"
    items = plan_items(fleet, {})
    assert [(it.camera_id, it.kind) for it in items] == [("cam-a", "image"), ("cam-b", "video"), ("loose", "image")]


def test_folder_convention_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no cameras"):
        folder_fleet(tmp_path)
    (tmp_path / "bad name").mkdir()
    with pytest.raises(ConfigError, match="not a valid camera id"):
        folder_fleet(tmp_path)


def test_unplannable_footage_becomes_failed_items(tmp_path: Path, media: Path) -> None:
    (tmp_path / "fleet.yaml").write_text(
        "cameras:\n  - camera_id: a\n    footage: [media/bathroom_001.jpg, missing.jpg, 'none/*.jpg', media/notes.txt]\n")
    items = plan_items(load_manifest(tmp_path / "fleet.yaml"), {})
    assert [it.kind for it in items] == ["image", "missing", "missing", "missing"]
    errors = [it.error for it in items[1:]]
    assert "no such file" in errors[0] and "matched no image" in errors[1] and "not an image or video" in errors[2]


def _item(source: str, status: str, verdict: str | None = None, conf: float = 0.5) -> dict:
    result = None
    if verdict:
        result = {"input": source, "verdict": verdict, "category": "toilet" if verdict != "compliant" else None,
                  "confidence": conf, "article": "Art. 7", "reason": "r", "recommendation": "add-masks",
                  "hidden_share": conf / 2, "frames_sampled": 1,
                  "evidence": [{"id": "e1", "class_name": "toilet", "masked": False}],
                  "proposed_masks": [{"id": "mask-1", "polygon": [[0, 0], [1, 0], [1, 1]]}]}
    return {"item_id": source, "source": source, "kind": "image", "status": status, "attempts": 1,
            "error": None if status == "done" else "boom", "duration_s": 0.1, "result": result}


def test_combine_worst_verdict_wins_and_failures_never_look_compliant() -> None:
    cam = combine_results("c", None, [_item("a", "done", "compliant", 0.9), _item("b", "done", "violation", 0.6),
                                      _item("c", "done", "violation", 0.8), _item("d", "failed")])
    assert cam["verdict"] == "violation" and cam["confidence"] == 0.8 and cam["deciding_input"] == "c"
    assert len(cam["evidence"]) == 3 and {e["input"] for e in cam["evidence"]} == {"a", "b", "c"}
    assert cam["items_failed"] == 1 and cam["hidden_share"] == 0.45
    assert combine_results("c", None, [_item("a", "done", "compliant"), _item("d", "failed")])["verdict"] == "failed"
    assert combine_results("c", None, [_item("a", "done", "compliant"), _item("d", "pending")])["verdict"] == "pending"
    assert combine_results("c", None, [_item("a", "done", "review"), _item("d", "failed")])["verdict"] == "review"
    low = combine_results("c", None, [_item("a", "done", "compliant", 0.9), _item("b", "done", "compliant", 0.7)])
    assert low["verdict"] == "compliant" and low["confidence"] == 0.7  # the least sure compliant item decides


def test_labelled_snapshot_list_is_one_camera_per_photo(dev_dir: Path) -> None:
    fleet = load_fleet(dev_dir / "manifest.csv")
    assert len(fleet.cameras) == 73
    first = fleet.cameras[0]
    assert first.camera_id == "bathroom_001" and first.footage == (str(dev_dir / "images" / "bathroom_001.jpg"),)
    assert first.site and "bathroom" in first.site
