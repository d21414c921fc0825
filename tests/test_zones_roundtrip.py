"""Round-trip editing of zones files (`ZonesDocument`): layout, comments and spelling kept; bad drafts write nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from masking.config.draft import DraftError, validate_camera
from masking.config.roundtrip import ZonesDocument
from masking.config.zones import load_zones

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "zones").glob("*.yaml"))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_saving_every_camera_unchanged_keeps_the_example_files_byte_identical(tmp_path: Path, example: Path) -> None:
    path = tmp_path / example.name
    shutil.copyfile(example, path)
    doc = ZonesDocument(path)
    for camera in doc.cameras():
        assert doc.save_camera(camera["camera_id"], camera) == camera
    assert path.read_bytes() == example.read_bytes()
    assert not doc.backup.exists()


def test_four_space_layout_and_polygon_forms(tmp_path: Path) -> None:
    path = tmp_path / "z.yaml"
    path.write_text(
        "cameras:\n"
        "    -   camera_id: gate   # main gate\n"
        "        zones:\n"
        "            -   id: booth\n"
        "                kind: privacy_mask\n"
        "                polygon: [[0.10, 0.10], [0.30, 0.10], [0.30, 0.30]]\n",
        encoding="utf-8",
    )
    doc = ZonesDocument(path)
    cam = doc.camera("gate")
    assert cam is not None
    doc.save_camera("gate", cam)
    assert not doc.backup.exists()  # unchanged: the 4-space layout reproduces the file, nothing written
    cam["zones"][0]["polygon"] = {"exterior": cam["zones"][0]["polygon"], "holes": [[[0.15, 0.12], [0.25, 0.12], [0.2, 0.2]]]}
    doc.save_camera("gate", cam)
    text = path.read_text(encoding="utf-8")
    assert "    -   camera_id: gate   # main gate\n" in text
    assert "exterior: [[0.10, 0.10], [0.30, 0.10], [0.30, 0.30]]" in text  # points keep their spelling
    assert "[[0.15, 0.12], [0.25, 0.12], [0.2, 0.2]]" in text
    assert load_zones(path).camera("gate").zone("booth").polygon.holes
    cam["zones"][0]["polygon"] = cam["zones"][0]["polygon"]["exterior"]  # back to the short form
    doc.save_camera("gate", cam)
    assert "polygon: [[0.10, 0.10], [0.30, 0.10], [0.30, 0.30]]" in path.read_text(encoding="utf-8")


def test_errors_name_zone_and_field() -> None:
    with pytest.raises(DraftError) as info:
        validate_camera({"camera_id": "c", "zones": [
            {"id": "a", "kind": "watch", "polygon": [[0, 0], [1, 0]]},
            {"kind": "watch", "polygon": [[0, 0], [1, 0], [1, 1]], "style": {"mode": "blur", "strength": 3}},
        ]})
    errors = info.value.errors
    assert {"zone": "a", "field": "polygon", "message": "polygon exterior needs at least 3 points, got 2"} in errors
    assert any(e["zone"] == "#2" and e["field"] == "id" for e in errors)
    assert any(e["zone"] == "#2" and e["field"] == "style.strength" for e in errors)
    assert "zone 'a', field 'polygon'" in str(info.value)
