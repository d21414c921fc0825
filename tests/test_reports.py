"""The report layer: escaping, self-containment, Chinese and English, anchors, paging, privacy of pictures."""

from __future__ import annotations

import base64
import json
import re
import sqlite3
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from masking.audit import AuditFrame, Auditor, AuditResult, AuditSettings
from masking.audit.report import audit_picture, render_audit_pages
from masking.cli import main
from masking.config.zones import Camera
from masking.detect.base import FakeDetector
from masking.detect.detections import Detections
from masking.i18n import translations
from masking.masks.apply import ZoneMasker
from masking.models.registry import EvidenceRule
from masking.report.pictures import PICTURE_SIDE, PrivacyFilter, report_picture
from masking.report.render import PAGE_SIZE, anchors, environment, write_pages
from masking.rescan.report import render_rescan_pages
from masking.rescan.runner import RescanResult

ROOT = Path(__file__).resolve().parents[1]
FACE_REFERENCE = ROOT.parent / "shared" / "models" / "face" / "face_detection_yunet_2026may.onnx"
FACES_PHOTO = "outdoor_p069"  # a crowd: the reference finds about 50 faces
XSS = ('<script>alert(1)</script>', '"><img src=x onerror=alert(2)>', "'><svg onload=alert(3)>")
CHINESE = ("摄像头1", "门-301", "酒店三楼走廊")
NO_FACES = FakeDetector(class_names=("face",))  # the face seam where faces do not matter


# --------------------------------------------------------------------------- helpers
class Page(HTMLParser):
    """Parses a report page: every tag and attribute, the text, the ids, the scripts."""

    VOID = {"meta", "img", "br", "hr", "input", "link"}

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.stack: list[str] = []
        self.text: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}>, open: {self.stack[-5:]}"
        self.stack.pop()
        self._in_script = False

    def handle_data(self, data: str) -> None:
        (self.scripts if self._in_script else self.text).append(data)

    @property
    def all_text(self) -> str:
        return "".join(self.text)

    def ids(self) -> list[str]:
        return [a["id"] or "" for _, a in self.tags if "id" in a]

    def links(self) -> list[str]:
        return [v for _, a in self.tags for k, v in a.items() if k in ("src", "href", "data-from") and v]


def assert_safe_page(html: str, own_pages: tuple[str, ...] = ()) -> Page:
    """Well formed, UTF-8, no injected tag or handler, nothing fetched from anywhere."""
    page = Page(html)
    assert page.stack == []
    assert '<meta charset="utf-8">' in html
    for tag, attrs in page.tags:
        assert tag not in ("svg", "iframe", "object", "embed", "link", "base", "form"), tag
        assert not any(k.startswith("on") for k in attrs), (tag, attrs)
        if tag == "img":
            assert (attrs.get("src") or "data:image/jpeg;base64,").startswith("data:image/jpeg;base64,"), attrs
    for link in page.links():
        ok = link.startswith(("data:image/jpeg;base64,", "#", "img-")) or link.split("#")[0] in own_pages
        assert ok, f"external or unexpected reference {link[:80]!r}"
    assert "://" not in re.sub(r"data:image/jpeg;base64,[A-Za-z0-9+/=]*", "", html)
    assert "url(" not in html and "@import" not in html
    assert len(page.scripts) <= 1 and all("alert" not in s for s in page.scripts)
    return page


def bed_auditor() -> Auditor:
    """An auditor whose fake detector sees a bed at (1/8, 1/2)-(1/2, 3/4) of every frame."""

    def bed(_: int, frame: npt.NDArray[np.uint8]) -> Detections:
        h, w = frame.shape[:2]
        box = np.array([[w / 8, h / 2, w / 2, 3 * h / 4]], np.float32)
        return Detections(box, np.array([0.9], np.float32), np.zeros(1, np.int32), ("bed",))

    det = FakeDetector(bed, class_names=("bed",), name="fake")
    emap = {"fake": {"bed": EvidenceRule(category="guest_room", weight=0.9, several="dormitory")}}
    return Auditor(AuditSettings(models=["yolox-nano"], tiles=1, verdict="rule"), {"fake": det}, evidence=emap)


def bed_frame(image: npt.NDArray[np.uint8] | None = None) -> npt.NDArray[np.uint8]:
    return np.zeros((480, 640, 3), np.uint8) if image is None else image


def zones_camera() -> Camera:
    """A privacy_mask (top left), a prohibited_view (top right) and a watch zone (bottom left)."""
    return Camera.model_validate({"camera_id": "cam", "zones": [
        {"id": "w", "kind": "privacy_mask", "polygon": [[0.0, 0.0], [0.3, 0.0], [0.3, 0.3], [0.0, 0.3]]},
        {"id": "d", "kind": "prohibited_view", "polygon": [[0.6, 0.0], [1.0, 0.0], [1.0, 0.4], [0.6, 0.4]]},
        {"id": "z", "kind": "watch", "polygon": [[0.0, 0.7], [0.2, 0.7], [0.2, 1.0]]},
    ]})


def audited(name: str, camera_id: str | None = None) -> AuditResult:
    res = bed_auditor().audit_frames([AuditFrame(bed_frame(), 0)], None, name)
    res.camera_id = camera_id
    return res


def reference_faces(image: npt.NDArray[np.uint8], threshold: float = 0.5) -> int:
    """Faces found by OpenCV's own YuNet (cv2.FaceDetectorYN), independent of the project's code."""
    if not FACE_REFERENCE.is_file():
        pytest.skip(f"{FACE_REFERENCE} not found")
    h, w = image.shape[:2]
    det = cv2.FaceDetectorYN.create(str(FACE_REFERENCE), "", (w, h), threshold)
    det.setInputSize((w, h))
    _, faces = det.detect(image)
    return 0 if faces is None else len(faces)


def decode(jpeg: bytes) -> npt.NDArray[np.uint8]:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return np.asarray(img, np.uint8)


def page_images(html: str) -> list[npt.NDArray[np.uint8]]:
    return [decode(base64.b64decode(b)) for b in re.findall(r'src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)"', html)]


def rescan_camera(camera_id: str, verdict: str, site: str = "", text: str = "x") -> dict[str, Any]:
    ev = {"id": "e1", "class_name": text, "model": text, "category": "guest_room", "score": 0.9, "strength": 0.81,
          "masked": False, "frame": 0, "input": f"{text}.jpg"}
    return {
        "camera_id": camera_id, "site": site, "zones_file": f"{text}.yaml", "verdict": verdict,
        "category": "guest_room" if verdict != "compliant" else None, "confidence": 0.8, "article": "",
        "reason": text, "recommendation": "add-masks" if verdict == "violation" else "none", "hidden_share": 0.3,
        "deciding_input": f"{text}.jpg", "items_total": 1, "items_done": 1, "items_failed": 0, "items_pending": 0,
        "evidence": [ev] if verdict != "compliant" else [],
        "proposed_masks": [{"id": text, "kind": "privacy_mask", "polygon": [[0, 0], [1, 0], [1, 1]], "covers": ["e1"],
                            "area_share": 0.5, "input": f"{text}.jpg"}] if verdict == "violation" else [],
        "items": [{"item_id": text, "input": f"{text}.jpg", "kind": "image", "status": "done", "attempts": 1,
                   "error": text, "duration_s": 0.1, "verdict": verdict, "category": None, "confidence": 0.8,
                   "frames_sampled": 1}],
    }


def rescan_doc(cameras: list[dict[str, Any]], fleet: str = "fleet.csv") -> dict[str, Any]:
    from masking.rescan.report import rescan_json_document

    res = RescanResult(run_id=7, status="finished", engine="inline", fleet=fleet, settings={"models": ["yolox-nano"]},
                       cameras=cameras, counts={"planned": len(cameras), "skipped": 0, "done": len(cameras), "failed": 0})
    return rescan_json_document(res, "store.sqlite")


# --------------------------------------------------------------------------- escaping, self-contained, i18n
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_audit_report_escapes_every_user_string_and_loads_nothing(lang: str) -> None:
    names = [f"{p}.jpg" for p in XSS] + [f"{CHINESE[0]}/快照.jpg"]
    results = [audited(n, cid) for n, cid in zip(names, [*XSS[::-1], CHINESE[0]], strict=True)]
    results[0].proposed_masks[0] = type(results[0].proposed_masks[0])(XSS[1], [[0, 0], [1, 0], [1, 1]], ["e1"], 0.5)
    privacy = PrivacyFilter(face_detector=NO_FACES)
    pictures = [audit_picture(r, None, privacy) for r in results]
    failures = [{"input": f"{XSS[2]}-{CHINESE[1]}.jpg", "error": f"InputError: {XSS[0]}"}]
    [(_, html)] = render_audit_pages(results, pictures, failures, lang=lang, zones_file=f"{XSS[1]}{CHINESE[2]}.yaml")
    page = assert_safe_page(html)
    text = page.all_text
    for s in (*XSS, *CHINESE):
        assert s in text, s  # shown as text, verbatim
    assert page.scripts == []
    assert len(page_images(html)) == len(results)
    if lang == "zh":
        assert '<html lang="zh-Hans">' in html and "违规" in text and "第七条画面审核报告" in text
        assert "旅馆客房、集体宿舍、公共浴室、更衣室、卫生间等涉及公民个人隐私的场所" in text  # Art. 7 in Chinese
        assert "Guangdong public-security" not in text
    else:
        assert '<html lang="en">' in html and "Art. 7 (Guangdong public-security" in text


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_rescan_report_escapes_every_user_string_and_loads_nothing(lang: str) -> None:
    cams = [rescan_camera(XSS[0], "violation", site=XSS[1], text=XSS[2]),
            rescan_camera(CHINESE[0], "compliant", site=CHINESE[2], text=CHINESE[1]),
            rescan_camera(XSS[1], "review", site=CHINESE[2], text=XSS[0])]
    thumbs = {c["camera_id"]: bytes(cv2.imencode(".jpg", np.full((24, 32, 3), i * 60, np.uint8))[1])
              for i, c in enumerate(cams)}
    [(_, html)] = render_rescan_pages(rescan_doc(cams, fleet=f"{XSS[2]}.csv"), thumbs, lang=lang)
    page = assert_safe_page(html)
    for s in (*XSS, *CHINESE):
        assert s in page.all_text, s
    assert len(page.scripts) == 1 and "th.s" in page.scripts[0]  # the table sorter, nothing else
    if lang == "zh":
        assert "摄像头批量复查报告" in page.all_text and "违规" in page.all_text
        assert "旅馆客房、集体宿舍、公共浴室、更衣室、卫生间" in page.all_text


def test_chinese_catalogues_cover_every_template_string_and_term() -> None:
    env = environment("en")
    zh = translations("zh", "reports")
    missing = []
    for name in env.list_templates():
        source = env.loader.get_source(env, name)[0]  # type: ignore[union-attr]
        for _, _, msg in env.extract_translations(source):
            msgid = msg if isinstance(msg, str) else msg[0]
            if zh.gettext(msgid) == msgid:
                missing.append(msgid)
    assert missing == []
    common = translations("zh", "common")
    for term in ("violation", "review", "compliant", "failed", "pending", "guest_room", "dormitory", "bathroom",
                 "toilet", "shower", "changing_room", "none", "add-masks", "re-aim", "inspect", "done", "finished",
                 "image", "video", "stream"):
        assert common.gettext(term) != term, term


# --------------------------------------------------------------------------- anchors (issue 15, item 6)
def test_anchors_are_unique_and_injective() -> None:
    keys = ["hotel:3f", "hotel_3f", "hotel.3f", "hotel-3f", "hotel 3f", *CHINESE, "摄像头2", ""]
    ids = anchors(keys, "cam")
    assert len(set(ids.values())) == len(keys)
    assert all(re.fullmatch(r"cam-[A-Za-z0-9-]*[0-9a-f]{12}", v) for v in ids.values())
    assert anchors(["hotel:3f"], "cam") == {"hotel:3f": ids["hotel:3f"]}  # stable


def test_rescan_sections_show_their_own_camera() -> None:
    """`hotel:3f` (violation) and `hotel_3f` (compliant) once shared an anchor, so one section showed the
    other camera's picture. Each link, section and picture must belong to one camera."""
    cams = [rescan_camera("hotel:3f", "violation"), rescan_camera("hotel_3f", "compliant"),
            rescan_camera("hotel.3f", "review")]
    thumbs = {c["camera_id"]: bytes(cv2.imencode(".jpg", np.full((20, 20, 3), 40 + 80 * i, np.uint8))[1])
              for i, c in enumerate(cams)}
    [(_, html)] = render_rescan_pages(rescan_doc(cams), thumbs)
    page = Page(html)
    ids = page.ids()
    assert len(ids) == len(set(ids))
    sections = re.findall(r'<section id="([^"]+)">\s*<h2>([^<]+?) <span', html)
    assert sorted(name for _, name in sections) == sorted(c["camera_id"] for c in cams)
    for anchor, name in sections:
        assert html.count(f'href="#{anchor}"') == 1
        row_link = re.search(rf'<tr><td><img class="t" id="img-{anchor}"[^>]*src="data:image/jpeg;base64,([^"]+)"', html)
        assert row_link is not None and base64.b64decode(row_link.group(1)) == thumbs[name]
        assert f'data-from="img-{anchor}"' in html.split(f'<section id="{anchor}">')[1].split("</section>")[0]


# --------------------------------------------------------------------------- size and paging (item 9)
@pytest.mark.slow
def test_a_500_image_audit_report_stays_small_and_pages(tmp_path: Path, dev_dir: Path) -> None:
    photos = sorted((dev_dir / "images").glob("*.jpg"))[:25]
    frames = [bed_frame(cv2.imread(str(p))) for p in photos]
    auditor = bed_auditor()
    privacy = PrivacyFilter(face_detector=NO_FACES)
    camera = zones_camera()
    results, pictures = [], []
    for i in range(500):
        r = auditor.audit_frames([AuditFrame(frames[i % len(frames)], 0)], camera, f"snap_{i:03d}.jpg")
        pictures.append(audit_picture(r, camera, privacy))
        r.snapshot = None
        results.append(r)
    paths = write_pages(render_audit_pages(results, pictures, lang="zh", path=tmp_path / "audit.html"))
    assert [p.name for p in paths] == ["audit.html", "audit-2.html", "audit-3.html"]
    sizes = [p.stat().st_size for p in paths]
    assert max(sizes) < 5_000_000 and sum(sizes) < 12_000_000, sizes  # was one 107 MB file (full-size JPEGs)
    first = paths[0].read_text(encoding="utf-8")
    assert_safe_page(first, own_pages=tuple(p.name for p in paths))
    index = re.findall(r'<a href="(audit(?:-\d)?\.html)#(in-[^"]+)">snap_(\d+)\.jpg</a>', first)
    assert len(index) == 500
    sections = {p.name: dict(re.findall(r'<section id="([^"]+)">\s*<h2>snap_(\d+)\.jpg</h2>', p.read_text(encoding="utf-8")))
                for p in paths}
    for file, anchor, number in index:  # every index link lands on its input's section
        assert file == paths[int(number) // PAGE_SIZE].name and sections[file][anchor] == number
    for img in page_images(first)[:5]:
        assert max(img.shape[:2]) == PICTURE_SIDE


# --------------------------------------------------------------------------- privacy of pictures (issue 11)
@pytest.fixture(scope="module")
def faces_photo(dev_dir: Path) -> npt.NDArray[np.uint8]:
    img = cv2.imread(str(dev_dir / "images" / f"{FACES_PHOTO}.jpg"))
    assert img is not None
    assert reference_faces(img) >= 20  # the reference sees the crowd
    return np.asarray(img, np.uint8)


def test_report_picture_blurs_every_face_the_reference_finds(faces_photo: npt.NDArray[np.uint8]) -> None:
    privacy = PrivacyFilter()  # the real YuNet from the model cache
    safe, mode, n, _ = privacy.apply(faces_photo, None)
    assert mode == "masked" and n >= 20
    assert reference_faces(safe) == 0  # full resolution
    picture = report_picture(faces_photo, None, privacy)
    assert picture.privacy == "masked" and reference_faces(decode(picture.jpeg)) == 0
    shown = report_picture(faces_photo, None, PrivacyFilter(show_unmasked=True))
    assert shown.privacy == "unmasked" and reference_faces(decode(shown.jpeg)) >= 10


def test_report_picture_masks_zones_as_recorded(faces_photo: npt.NDArray[np.uint8]) -> None:
    camera = zones_camera()
    safe, _, _, _ = PrivacyFilter(face_detector=NO_FACES).apply(faces_photo, camera)
    recorded = ZoneMasker(camera).apply(faces_photo.copy())
    assert np.array_equal(safe, recorded)  # the same code and result as the recordings
    h, w = faces_photo.shape[:2]
    assert np.all(safe[5 : int(0.3 * h) - 5, 5 : int(0.3 * w) - 5] == 0)  # privacy_mask, filled black
    assert not np.all(safe[int(0.8 * h) :, : int(0.15 * w)] == 0)  # a watch zone is not masked


@pytest.mark.parametrize("failure", ["no model", "model fails"])
def test_pictures_fail_closed_without_a_face_model(
    failure: str, faces_photo: npt.NDArray[np.uint8], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if failure == "no model":
        monkeypatch.setenv("MASKING_MODEL_DIR", str(tmp_path))  # an empty model cache
        privacy = PrivacyFilter()
    else:
        privacy = PrivacyFilter(face_detector=FakeDetector(fail_on=lambda i: True))
    picture = report_picture(faces_photo, None, privacy)
    assert picture.privacy == "blurred" and picture.note
    img = decode(picture.jpeg)
    assert reference_faces(img, 0.3) == 0
    shown = decode(report_picture(faces_photo, None, PrivacyFilter(show_unmasked=True), labels=False).jpeg)
    def lap(a: npt.NDArray[np.uint8]) -> float:  # detail: variance of the Laplacian below the banner
        return float(cv2.Laplacian(cv2.cvtColor(a, cv2.COLOR_BGR2GRAY), cv2.CV_64F)[40:].var())

    assert lap(img) < 0.05 * lap(shown)  # no detail left below the banner


def test_audit_and_rescan_cli_pictures_hide_faces_unless_asked(tmp_path: Path, dev_dir: Path) -> None:
    photo = dev_dir / "images" / f"{FACES_PHOTO}.jpg"
    fleet = tmp_path / "fleet"
    fleet.mkdir()
    (fleet / "crowd.jpg").write_bytes(photo.read_bytes())  # a folder fleet: one camera
    for flag, expect_faces in (([], False), (["--show-unmasked"], True)):
        report = tmp_path / f"audit{len(flag)}.html"
        rc = main(["audit", str(photo), "--models", "yolox-nano", "--tiles", "1", "--report", str(report), *flag])
        assert rc in (0, 1)
        [img] = page_images(report.read_text(encoding="utf-8"))
        assert (reference_faces(img) > 0) is expect_faces
        out = tmp_path / f"rescan{len(flag)}"
        rc = main(["rescan", str(fleet), "--out", str(out), "--workers", "0", "--models", "yolox-nano", "--tiles", "1",
                   "--lang", "zh", *flag])
        assert rc in (0, 1)
        [thumb] = sqlite3.connect(out / "rescan.sqlite").execute("SELECT thumbnail FROM items").fetchone()
        assert (reference_faces(decode(thumb)) > 0) is expect_faces
        html = (out / "report.html").read_text(encoding="utf-8")
        assert "摄像头批量复查报告" in html and ("--show-unmasked" in html) is expect_faces


# --------------------------------------------------------------------------- partial results (item 10)
@pytest.mark.parametrize("bad", ["broken.jpg", "broken.mp4"])
def test_audit_folder_with_an_unreadable_file_audits_the_rest(
    bad: str, tmp_path: Path, dev_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "snaps"
    folder.mkdir()
    for name in ("corridor_001", "dining_001"):
        (folder / f"{name}.jpg").write_bytes((dev_dir / "images" / f"{name}.jpg").read_bytes())
    (folder / bad).write_bytes(b"\xff\xd8\xff\xe0 not really" * 10)
    out_json, out_html = tmp_path / "a.json", tmp_path / "a.html"
    rc = main(["audit", str(folder), "--models", "yolox-nano", "--tiles", "1", "--json", str(out_json),
               "--report", str(out_html), "--lang", "zh"])
    assert rc == 3
    doc = json.loads(out_json.read_text(encoding="utf-8"))
    assert [Path(r["input"]).name for r in doc["results"]] == ["corridor_001.jpg", "dining_001.jpg"]
    [failure] = doc["failures"]
    assert Path(failure["input"]).name == bad and failure["error"]
    html = out_html.read_text(encoding="utf-8")
    assert_safe_page(html)
    assert "无法审核的输入" in html and bad in html and len(page_images(html)) == 2
    assert f"{bad}: FAILED" in capsys.readouterr().out


def test_audit_with_no_readable_input_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"garbage")
    out_json = tmp_path / "a.json"
    assert main(["audit", str(tmp_path / "broken.jpg"), "--models", "yolox-nano", "--json", str(out_json)]) == 2
    assert not out_json.exists()
