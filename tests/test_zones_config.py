"""Zones files: every validation rule rejects with a message naming file, camera and zone; examples load."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from masking.config.yamlio import loads_yaml
from masking.config.zones import ZoneKind, json_schema, load_zones, parse_zones
from masking.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
ZONES_DIR = ROOT / "zones"

GOOD_ZONE = """      - id: door-1
        kind: prohibited_view
        polygon: [[0.1, 0.1], [0.4, 0.1], [0.4, 0.6], [0.1, 0.6]]
"""


def _file(tmp_path: Path, zone_yaml: str, camera_extra: str = "", cameras_extra: str = "") -> Path:
    text = "cameras:\n  - camera_id: cam-a\n" + camera_extra + "    zones:\n" + GOOD_ZONE + zone_yaml + cameras_extra
    path = tmp_path / "zones.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _zone(zid: str, polygon: str, extra: str = "", kind: str = "privacy_mask") -> str:
    return f"      - id: {zid}\n        kind: {kind}\n        polygon: {polygon}\n{extra}"


SQUARE = "[[0.5, 0.5], [0.9, 0.5], [0.9, 0.9], [0.5, 0.9]]"

BAD_ZONES = {
    "too_few_points": (_zone("bad", "[[0.5, 0.5], [0.9, 0.5]]"), "at least 3 points"),
    "self_intersection": (_zone("bad", "[[0.5, 0.5], [0.9, 0.9], [0.9, 0.5], [0.5, 0.9]]"), "not valid"),
    "zero_area": (_zone("bad", "[[0.5, 0.5], [0.7, 0.7], [0.9, 0.9]]"), "(not valid|zero area)"),
    "outside_frame": (_zone("bad", "[[0.5, 0.5], [1.2, 0.5], [0.9, 0.9]]"), "outside the frame"),
    "nan": (_zone("bad", "[[0.5, 0.5], [.nan, 0.5], [0.9, 0.9]]"), "finite"),
    "hole_outside": (
        _zone("bad", "{exterior: " + SQUARE + ", holes: [[[0.1, 0.1], [0.2, 0.1], [0.2, 0.2]]]}"), "not valid"
    ),
    "pixelate_block": (_zone("bad", SQUARE, "        style: {mode: pixelate, block: 2}\n"), "block"),
    "blur_strength": (_zone("bad", SQUARE, "        style: {mode: blur, strength: 3}\n"), "strength"),
    "colour_range": (_zone("bad", SQUARE, "        style: {mode: fill, color: [300, 0, 0]}\n"), "0-255"),
    "colour_length": (_zone("bad", SQUARE, "        style: {mode: fill, color: [0, 0]}\n"), "color"),
    "fill_with_block": (_zone("bad", SQUARE, "        style: {mode: fill, block: 8}\n"), "(?i)extra"),
    "unknown_mode": (_zone("bad", SQUARE, "        style: {mode: smear}\n"), "mode"),
    "unknown_kind": (_zone("bad", SQUARE, kind="bathroom"), "kind"),
    "unknown_key": (_zone("bad", SQUARE, "        colour: red\n"), "(?i)extra"),
    "bad_zone_id": (_zone("bad id!", SQUARE), "not a valid id: it contains"),
}


@pytest.mark.parametrize("name", sorted(BAD_ZONES))
def test_each_rule_rejects_with_file_camera_zone(tmp_path: Path, name: str) -> None:
    zone_yaml, expected = BAD_ZONES[name]
    path = _file(tmp_path, zone_yaml)
    with pytest.raises(ConfigError) as info:
        load_zones(path)
    msg = str(info.value)
    assert str(path) in msg
    assert "camera 'cam-a'" in msg
    assert "zone 'bad" in msg
    assert re.search(expected, msg), msg


def test_duplicate_zone_ids(tmp_path: Path) -> None:
    path = _file(tmp_path, _zone("door-1", SQUARE))
    with pytest.raises(ConfigError, match=r"camera 'cam-a'.*zone id 'door-1' appears more than once") as info:
        load_zones(path)
    assert str(path) in str(info.value)


def test_duplicate_camera_ids(tmp_path: Path) -> None:
    second = "  - camera_id: cam-a\n    zones: []\n"
    path = _file(tmp_path, "", cameras_extra=second)
    with pytest.raises(ConfigError, match=r"camera ids must be unique.*cam-a") as info:
        load_zones(path)
    assert str(path) in str(info.value)


def test_duplicate_yaml_keys(tmp_path: Path) -> None:
    path = _file(tmp_path, _zone("z2", SQUARE, "        kind: watch\n"))
    with pytest.raises(ConfigError, match="duplicate key 'kind'") as info:
        load_zones(path)
    assert str(path) in str(info.value)


def test_no_cameras_and_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cameras"):
        parse_zones({"cameras": []}, "x.yaml")
    with pytest.raises(ConfigError, match="x.yaml"):
        parse_zones([1, 2], "x.yaml")
    with pytest.raises(ConfigError, match="cannot read"):
        load_zones(tmp_path / "missing.yaml")


def test_good_file_loads_with_holes_and_styles(tmp_path: Path) -> None:
    extra = _zone("win", "{exterior: " + SQUARE + ", holes: [[[0.6, 0.6], [0.8, 0.6], [0.7, 0.8]]]}",
                  "        style: {mode: blur, strength: 31}\n")
    zones = load_zones(_file(tmp_path, extra))
    cam = zones.camera()
    assert [z.id for z in cam.zones] == ["door-1", "win"]
    assert cam.zone("win").style.mode == "blur" and len(cam.zone("win").polygon.holes) == 1


EXAMPLES = sorted(ZONES_DIR.glob("*.yaml"))


def test_examples_exist_for_each_site() -> None:
    names = {p.stem for p in EXAMPLES}
    assert {"hotel_corridor", "dormitory_entrance", "gym_changing_room", "street_windows"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_loads(path: Path) -> None:
    zones = load_zones(path)
    kinds = {z.kind for c in zones.cameras for z in c.zones}
    assert ZoneKind.privacy_mask in kinds or ZoneKind.prohibited_view in kinds


def test_hotel_example_has_doors_as_prohibited_view() -> None:
    cam = load_zones(ZONES_DIR / "hotel_corridor.yaml").camera()
    doors = [z for z in cam.zones if z.id.startswith("door")]
    assert doors and all(z.kind == ZoneKind.prohibited_view for z in doors)


def test_street_example_masks_windows() -> None:
    cam = load_zones(ZONES_DIR / "street_windows.yaml").camera()
    assert any(z.id.startswith("windows") and z.kind == ZoneKind.privacy_mask for z in cam.zones)


def test_readme_example_loads() -> None:
    text = (ZONES_DIR / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(.*?)```", text, re.S)
    assert block, "zones/README.md has a yaml example"
    zones = parse_zones(loads_yaml(block.group(1), "README example"), "README example")
    modes = {z.style.mode for z in zones.cameras[0].zones}
    assert modes == {"fill", "pixelate", "blur"}


def test_committed_schema_equals_generated() -> None:
    committed = json.loads((ZONES_DIR / "schema.json").read_text(encoding="utf-8"))
    assert committed == json.loads(json.dumps(json_schema())), (
        "zones/schema.json is stale: regenerate with `masking zones schema > zones/schema.json`"
    )
