"""The console's JSON API (`masking ui`) with Starlette's TestClient: cameras, saving, previews, audits."""

from __future__ import annotations

import difflib
import json
import re
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest
from console_helpers import ZONES_TEXT, client, make_console, zones_file

from masking.audit import Auditor, audit_json_document, settings_from
from masking.cli import main
from masking.config.zones import load_zones, parse_zones
from masking.detect.base import FakeDetector
from masking.detect.detections import Detections
from masking.i18n import catalogue
from masking.masks.apply import ZoneMasker
from masking.models.registry import COCO80
from masking.video.images import read_image, write_image
from masking.video.reader import VideoReader

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "masking" / "web"


@pytest.fixture
def zones(tmp_path: Path) -> Path:
    return zones_file(tmp_path)


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    """A 320x240 picture with a white 'bed' in the lower right and a gradient elsewhere."""
    img = np.zeros((240, 320, 3), np.uint8)
    img[..., 0] = np.linspace(0, 200, 320, dtype=np.uint8)[None, :]
    img[..., 1] = np.linspace(0, 200, 240, dtype=np.uint8)[:, None]
    img[150:220, 200:300] = 255
    path = tmp_path / "snap.png"
    write_image(path, img)
    return path


def _bed_script(_: int, frame: np.ndarray) -> Detections:
    ys, xs = np.nonzero(frame.min(axis=2) >= 250)
    if xs.size == 0:
        return Detections.empty(COCO80)
    box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
    return Detections(box, np.array([0.9], np.float32), np.array([COCO80.index("bed")], np.int32), COCO80)


def fake_auditor() -> Auditor:
    return Auditor(settings_from({"models": ["yolox-nano"], "tiles": 1, "verdict": "rule"}),
                   {"yolox-nano": FakeDetector(_bed_script, class_names=COCO80, name="yolox-nano")})


# --------------------------------------------------------------------------- cameras
def test_lists_cameras_with_zone_counts_and_snapshots(zones: Path, photo: Path) -> None:
    c = client(make_console(zones, {"corridor-3f": str(photo), "new-cam": str(photo)}))
    r = c.get("/api/cameras")
    assert r.status_code == 200
    assert r.json() == [
        {"camera_id": "corridor-3f", "site": "Hotel, 3rd floor", "zones": 2, "has_snapshot": True},
        {"camera_id": "lobby", "site": None, "zones": 1, "has_snapshot": False},
        {"camera_id": "new-cam", "site": None, "zones": 0, "has_snapshot": True},
    ]


def test_get_camera_is_the_file_as_json(zones: Path) -> None:
    r = client(make_console(zones)).get("/api/cameras/corridor-3f")
    assert r.status_code == 200
    cam = r.json()
    assert list(cam) == ["camera_id", "site", "zones"]
    assert cam["zones"][0] == {"id": "door-301", "kind": "prohibited_view",
                               "polygon": [[0.02, 0.18], [0.16, 0.26], [0.16, 0.86], [0.02, 0.98]]}
    assert cam["zones"][1]["polygon"]["holes"] == [[[0.45, 0.2], [0.55, 0.2], [0.55, 0.3], [0.45, 0.3]]]
    assert client(make_console(zones)).get("/api/cameras/nope").status_code == 404


# --------------------------------------------------------------------------- saving
def test_unchanged_save_leaves_the_file_byte_identical(zones: Path) -> None:
    c = client(make_console(zones))
    before = zones.read_bytes()
    cam = c.get("/api/cameras/corridor-3f").json()
    r = c.put("/api/cameras/corridor-3f", json=cam)
    assert r.status_code == 200 and r.json() == cam
    assert zones.read_bytes() == before
    assert not zones.with_name("zones.yaml.bak").exists()


def test_save_keeps_comments_order_and_spelling_and_backs_up(zones: Path) -> None:
    c = client(make_console(zones))
    before = zones.read_text(encoding="utf-8")
    cam = c.get("/api/cameras/corridor-3f").json()
    cam["zones"][0]["polygon"][1] = [0.2, 0.25]
    cam["zones"].append({"id": "vent", "kind": "privacy_mask", "polygon": [[0.7, 0.1], [0.8, 0.1], [0.8, 0.2]],
                         "style": {"mode": "blur", "strength": 41}})
    r = c.put("/api/cameras/corridor-3f", json=cam)
    assert r.status_code == 200, r.text
    assert r.json() == cam
    text = zones.read_text(encoding="utf-8")
    assert zones.with_name("zones.yaml.bak").read_text(encoding="utf-8") == before
    load_zones(zones)  # what `masking zones check` accepts
    for kept in ("# Hotel corridor, 3rd floor (test fixture).", "# opens onto a guest room",
                 "# A second camera, to copy zones from.", 'site: "Hotel, 3rd floor"',
                 "exterior: [[0.40, 0.10], [0.60, 0.10], [0.60, 0.50], [0.40, 0.50]]", "style: {mode: pixelate, block: 24}"):
        assert kept in text
    assert "polygon: [[0.02, 0.18], [0.2, 0.25], [0.16, 0.86], [0.02, 0.98]]" in text
    assert "      - id: vent\n        kind: privacy_mask\n        polygon: [[0.7, 0.1], [0.8, 0.1], [0.8, 0.2]]\n" \
           "        style: {mode: blur, strength: 41}\n" in text
    assert text.index("id: vent") < text.index("camera_id: lobby")  # appended to its own camera
    # only the lines that changed differ
    diff = list(difflib.ndiff(before.splitlines(), text.splitlines()))
    assert [d for d in diff if d.startswith("- ")] == ["-         polygon: [[0.02, 0.18], [0.16, 0.26], [0.16, 0.86], [0.02, 0.98]]"]
    assert len([d for d in diff if d.startswith("+ ")]) == 1 + 4


def test_deleting_and_reordering_zones_moves_their_comments(zones: Path) -> None:
    c = client(make_console(zones))
    cam = c.get("/api/cameras/corridor-3f").json()
    cam["zones"] = [cam["zones"][1]]
    assert c.put("/api/cameras/corridor-3f", json=cam).status_code == 200
    text = zones.read_text(encoding="utf-8")
    assert "door-301" not in text and "end-window" in text and "# A second camera" in text
    assert len(load_zones(zones).camera("corridor-3f").zones) == 1


@pytest.mark.parametrize(
    ("change", "zone", "field", "words"),
    [
        (lambda z: z.__setitem__("polygon", [[0.1, 0.1], [0.5, 0.5], [0.5, 0.1], [0.1, 0.5]]), "door-301", "polygon", "not valid"),
        (lambda z: z.__setitem__("style", {"mode": "pixelate", "block": 2}), "door-301", "style.block", "greater than or equal to 4"),
        (lambda z: z.__setitem__("kind", "peek"), "door-301", "kind", "privacy_mask"),
        (lambda z: z.__setitem__("polygon", [[0.1, 0.1], [1.5, 0.1], [0.5, 0.5]]), "door-301", "polygon", "outside the frame"),
        (lambda z: z.__setitem__("id", "bad id"), "bad id", "id", "not a valid id"),
    ],
)
def test_invalid_draft_answers_422_naming_zone_and_field_and_writes_nothing(zones: Path, change, zone, field, words) -> None:  # type: ignore[no-untyped-def]
    c = client(make_console(zones))
    before = zones.read_bytes()
    cam = c.get("/api/cameras/corridor-3f").json()
    change(cam["zones"][0])
    r = c.put("/api/cameras/corridor-3f", json=cam)
    assert r.status_code == 422
    errors = r.json()["errors"]
    assert any(e["zone"] == zone and e["field"] == field and words in e["message"] for e in errors), errors
    assert all(set(e) == {"zone", "field", "message"} for e in errors)
    assert zones.read_bytes() == before
    assert not zones.with_name("zones.yaml.bak").exists()


def test_camera_level_errors(zones: Path) -> None:
    c = client(make_console(zones))
    cam = c.get("/api/cameras/corridor-3f").json()
    before = zones.read_bytes()
    dup = {**cam, "zones": [cam["zones"][0], cam["zones"][0]]}
    r = c.put("/api/cameras/corridor-3f", json=dup)
    assert r.status_code == 422 and "more than once" in r.json()["errors"][0]["message"]
    renamed = {**cam, "camera_id": "other"}
    r = c.put("/api/cameras/corridor-3f", json=renamed)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "camera_id"
    r = c.put("/api/cameras/corridor-3f", content=b"[1, 2", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "not valid JSON" in r.json()["errors"][0]["message"]
    assert c.put("/api/cameras/corridor-3f", json=[1]).status_code == 422
    assert zones.read_bytes() == before


def test_new_camera_is_appended_and_new_file_is_created(tmp_path: Path, zones: Path, photo: Path) -> None:
    c = client(make_console(zones, {"room-1": str(photo)}))
    assert c.get("/api/cameras/room-1").json() == {"camera_id": "room-1", "zones": []}
    body = {"camera_id": "room-1", "zones": [{"id": "bed", "kind": "privacy_mask", "polygon": [[0.5, 0.5], [1, 0.5], [1, 1]]}]}
    assert c.put("/api/cameras/room-1", json=body).status_code == 200
    assert [cam.camera_id for cam in load_zones(zones).cameras] == ["corridor-3f", "lobby", "room-1"]
    fresh = tmp_path / "sub" / "new.yaml"
    c2 = client(make_console(fresh, {"room-1": str(photo)}))
    assert c2.put("/api/cameras/room-1", json=body).status_code == 200
    assert load_zones(fresh).camera("room-1").zones[0].id == "bed"
    assert not fresh.with_name("new.yaml.bak").exists()


def test_file_broken_on_disk_is_reported_not_overwritten(zones: Path) -> None:
    c = client(make_console(zones))
    cam = c.get("/api/cameras/corridor-3f").json()
    zones.write_text(ZONES_TEXT + "  - camera_id: lobby\n", encoding="utf-8")  # now invalid (duplicate camera)
    broken = zones.read_bytes()
    r = c.put("/api/cameras/corridor-3f", json=cam)
    assert r.status_code == 409 and "unique" in r.json()["error"]
    assert zones.read_bytes() == broken


def test_chinese_ids_and_site_round_trip(tmp_path: Path, photo: Path) -> None:
    path = tmp_path / "zones.yaml"
    path.write_text("cameras:\n  - camera_id: 酒店-3楼\n    site: 广州市天河区某酒店，三楼走廊\n    zones: []\n", encoding="utf-8")
    c = client(make_console(path, {"酒店-3楼": str(photo)}))
    assert c.get("/api/cameras").json()[0] == {"camera_id": "酒店-3楼", "site": "广州市天河区某酒店，三楼走廊", "zones": 0, "has_snapshot": True}
    cam = c.get("/api/cameras/酒店-3楼").json()
    cam["zones"] = [{"id": "房门-301", "kind": "prohibited_view", "polygon": [[0.1, 0.1], [0.3, 0.1], [0.3, 0.9]]}]
    assert c.put("/api/cameras/%E9%85%92%E5%BA%97-3%E6%A5%BC", json=cam).status_code == 200
    text = path.read_text(encoding="utf-8")
    assert "房门-301" in text and "广州市天河区某酒店" in text and "\\u" not in text
    assert load_zones(path).camera("酒店-3楼").zones[0].id == "房门-301"
    assert c.get("/api/cameras/酒店-3楼/snapshot.jpg").status_code == 200


# --------------------------------------------------------------------------- pictures
def _jpeg(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


def test_snapshot_and_preview_use_the_real_masker(zones: Path, photo: Path) -> None:
    c = client(make_console(zones, {"corridor-3f": str(photo)}))
    img = read_image(photo)
    snap = c.get("/api/cameras/corridor-3f/snapshot.jpg")
    assert snap.status_code == 200 and snap.headers["content-type"] == "image/jpeg"
    assert snap.content == _jpeg(img)
    saved = load_zones(zones).camera("corridor-3f")
    assert c.get("/api/cameras/corridor-3f/preview.jpg").content == _jpeg(ZoneMasker(saved).apply(img.copy()))
    draft = [{"id": "left", "kind": "privacy_mask", "polygon": [[0, 0], [0.5, 0], [0.5, 1], [0, 1]],
              "style": {"mode": "fill", "color": [255, 0, 0]}}]
    expected = ZoneMasker(parse_zones({"cameras": [{"camera_id": "corridor-3f", "zones": draft}]}).cameras[0]).apply(img.copy())
    assert np.all(expected[:, :150] == (0, 0, 255))  # red in BGR over the left half
    by_query = c.get("/api/cameras/corridor-3f/preview.jpg", params={"zones": json.dumps(draft)})
    by_body = c.post("/api/cameras/corridor-3f/preview.jpg", json={"camera_id": "corridor-3f", "zones": draft})
    by_list = c.post("/api/cameras/corridor-3f/preview.jpg", json=draft)
    assert by_query.content == by_body.content == by_list.content == _jpeg(expected)
    bowtie = [{"id": "x", "kind": "privacy_mask", "polygon": [[0.1, 0.1], [0.5, 0.5], [0.5, 0.1], [0.1, 0.5]]}]
    bad = c.post("/api/cameras/corridor-3f/preview.jpg", json=bowtie)
    assert bad.status_code == 422 and bad.json()["errors"][0]["zone"] == "x"
    assert c.get("/api/cameras/lobby/snapshot.jpg").status_code == 404  # no --snapshot for it
    assert "--snapshot lobby=" in c.get("/api/cameras/lobby/preview.jpg").json()["error"]


def test_video_snapshot_is_its_first_frame(zones: Path, office_clip: Path) -> None:
    c = client(make_console(zones, {"corridor-3f": str(office_clip)}))
    with VideoReader(office_clip) as reader:
        first = next(iter(reader)).image
    r = c.get("/api/cameras/corridor-3f/snapshot.jpg")
    assert r.status_code == 200 and r.content == _jpeg(first)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_stream_snapshot_is_fresh_and_never_shows_the_password(zones: Path, office_clip: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(office_clip.parent)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        url = f"http://installer:s3cret-pw@127.0.0.1:{port}/{office_clip.name}"
        dead = "rtsp://admin:hunter2-pw@127.0.0.1:9/stream"
        console = make_console(zones, {"corridor-3f": url, "lobby": dead})
        console.snapshots["lobby"].timeout_s = 1.0  # type: ignore[attr-defined]
        c = client(console)
        r = c.get("/api/cameras/corridor-3f/snapshot.jpg?fresh=1")
        assert r.status_code == 200 and cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR).shape == (720, 1280, 3)
        assert c.get("/api/cameras/corridor-3f/snapshot.jpg").content == r.content  # the frame kept for previews
        failed = c.get("/api/cameras/lobby/snapshot.jpg")
        assert failed.status_code == 502 and "admin:***@127.0.0.1:9" in failed.json()["error"]
        seen = [failed.text, c.get("/api/cameras").text, c.get("/").text, c.get("/api/cameras/corridor-3f").text]
        for text in seen:
            assert "s3cret-pw" not in text and "hunter2-pw" not in text
    finally:
        server.shutdown()


# --------------------------------------------------------------------------- audit
def test_audit_answers_what_masking_audit_json_writes(zones: Path, photo: Path) -> None:
    console = make_console(zones, {"corridor-3f": str(photo)}, make_auditor=fake_auditor)
    c = client(console)
    r = c.post("/api/cameras/corridor-3f/audit", json={"camera_id": "corridor-3f", "zones": []})
    assert r.status_code == 200
    doc = r.json()
    res = doc["results"][0]
    assert res["verdict"] == "violation" and res["category"] == "guest_room" and res["proposed_masks"]
    camera = parse_zones({"cameras": [{"camera_id": "corridor-3f", "zones": []}]}).cameras[0]
    direct = fake_auditor()
    expected = audit_json_document([direct.audit_path(photo, camera)], direct.settings.model_dump(), str(zones))
    assert doc == json.loads(json.dumps(expected))
    # accepting the proposal (as the page does) makes the view compliant
    accepted = [{"id": m["id"], "kind": "privacy_mask", "polygon": m["polygon"]} for m in res["proposed_masks"]]
    again = c.post("/api/cameras/corridor-3f/audit", json=accepted).json()["results"][0]
    assert again["verdict"] == "compliant" and all(e["masked"] for e in again["evidence"])
    bad = c.post("/api/cameras/corridor-3f/audit", json=[{"id": "x", "kind": "nope", "polygon": []}])
    assert bad.status_code == 422


# --------------------------------------------------------------------------- page and languages
def _page_data(html: str) -> dict[str, object]:
    m = re.search(r'<script type="application/json" id="console-data">(.*?)</script>', html, re.S)
    assert m
    return json.loads(m.group(1))  # type: ignore[no-any-return]


def test_page_language_from_browser_or_flag(zones: Path) -> None:
    c = client(make_console(zones))
    zh = c.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    assert zh.status_code == 200 and '<html lang="zh-CN">' in zh.text and "遮盖控制台" in zh.text
    data = _page_data(zh.text)
    assert data["lang"] == "zh" and data["messages"]["Save"] == "保存" and data["messages"]["violation"] == "违规"  # type: ignore[index]
    en = c.get("/", headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    assert '<html lang="en">' in en.text and _page_data(en.text)["messages"]["Save"] == "Save"  # type: ignore[index]
    assert _page_data(c.get("/?lang=zh").text)["lang"] == "zh"
    forced = client(make_console(zones, lang="en")).get("/", headers={"Accept-Language": "zh-CN"})
    assert _page_data(forced.text)["lang"] == "en"


def test_every_console_string_is_in_the_catalogue() -> None:
    used: set[str] = set()
    for js in (WEB / "static").glob("*.js"):
        used |= set(re.findall(r'\bt\("((?:[^"\\]|\\.)*)"', js.read_text(encoding="utf-8")))
    html = (WEB / "templates" / "console.html").read_text(encoding="utf-8")
    for a, b in re.findall(r"""\b_\((?:"([^"]*)"|'([^']*)')\)""", html):
        used.add(a or b)
    assert len(used) > 60
    zh = {**catalogue("zh", "common"), **catalogue("zh", "console")}
    missing = sorted(u for u in used if not zh.get(u) or zh[u] == u)
    assert not missing, f"console strings without a Chinese translation: {missing}"


# --------------------------------------------------------------------------- CLI
def test_cli_refuses_bad_arguments(tmp_path: Path, zones: Path, photo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ui", "--zones", str(zones), "--snapshot", f"corridor-3f={tmp_path / 'missing.jpg'}"]) == 2
    assert "missing.jpg" in capsys.readouterr().err
    assert main(["ui", "--zones", str(zones), "--snapshot", "rtsp://u:pw123@h/x"]) == 2
    assert "pw123" not in capsys.readouterr().err
    assert main(["ui", "--zones", str(tmp_path / "none.yaml")]) == 2
    broken = tmp_path / "broken.yaml"
    broken.write_text("cameras:\n  - camera_id: a\n    zones: [{id: z, kind: nope, polygon: []}]\n", encoding="utf-8")
    assert main(["ui", "--zones", str(broken)]) == 2
    assert "broken.yaml" in capsys.readouterr().err


def test_cli_prints_the_url_with_its_token_and_serves(zones: Path, photo: Path) -> None:
    import httpx

    proc = subprocess.Popen(
        [sys.executable, "-m", "masking", "ui", "--zones", str(zones), "--snapshot", f"corridor-3f={photo}", "--port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"open (http://127\.0\.0\.1:(\d+)/\?token=([\w-]+))", line)
        assert m, line
        base, token = f"http://127.0.0.1:{m.group(2)}", m.group(3)
        assert httpx.get(f"{base}/api/cameras").status_code == 401
        r = httpx.get(f"{base}/api/cameras", headers={"X-Masking-Token": token})
        assert r.status_code == 200 and r.json()[0]["camera_id"] == "corridor-3f"
        landing = httpx.get(m.group(1))
        assert landing.status_code == 303 and landing.headers["location"] == "/"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
