"""`masking rescan` end to end: real model on real dev photos, outputs, resume, retries, streams."""

from __future__ import annotations

import csv
import functools
import http.server
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from rescan_helpers import PHOTOS, ROOT, item_rows, write_fleet

from masking.audit import Auditor, AuditSettings
from masking.cli import main
from masking.detect.base import FakeDetector, bright_box_script
from masking.errors import DetectorError, StoreError
from masking.report.render import anchors
from masking.rescan.store import SCHEMA_VERSION, Store


# --------------------------------------------------------------------------- real model, real photos
@pytest.mark.slow
def test_rescan_dev_photos_report_csv_json_same_results_as_audit(tmp_path: Path, dev_dir: Path) -> None:
    fleet = write_fleet(tmp_path / "fleet.csv", dev_dir)
    out = tmp_path / "out"
    rc = main(["rescan", str(fleet), "--out", str(out), "--workers", "1"])
    doc = json.loads((out / "results.json").read_text())
    assert doc["schema"] == "masking.rescan.results" and doc["schema_version"] == 1
    assert doc["run"]["engine"] == "local" and doc["run"]["items"]["done"] == len(PHOTOS)
    cams = {c["camera_id"]: c for c in doc["cameras"]}
    assert list(cams) == list(PHOTOS)
    # the rescan's per-item results are exactly `masking audit`'s (same Auditor, same settings)
    auditor = Auditor(AuditSettings(), threads=1)
    for cid in PHOTOS:
        path = dev_dir / "images" / f"{cid}.jpg"
        expect = auditor.audit_path(path, None).to_dict()
        got = json.loads(sqlite3.connect(out / "rescan.sqlite").execute(
            "SELECT result_json FROM items WHERE camera_id = ?", (cid,)).fetchone()[0])
        assert got == expect, cid
        c = cams[cid]
        assert (c["verdict"], c["category"], c["confidence"]) == (expect["verdict"], expect["category"], expect["confidence"])
        assert [e["id"] for e in c["evidence"]] == [e["id"] for e in expect["evidence"]]
        assert c["proposed_masks"] == [{**m, "input": str(path)} for m in expect["proposed_masks"]]
        assert c["items"][0]["status"] == "done" and c["items"][0]["attempts"] == 1
    assert cams["bathroom_001"]["verdict"] == "violation" and cams["dining_001"]["verdict"] == "compliant"
    s = doc["summary"]
    assert s["cameras"] == len(PHOTOS) and s["violation"] + s["review"] + s["compliant"] == len(PHOTOS)
    assert rc == (1 if s["violation"] + s["review"] else 0)
    # CSV: one row per camera, stable columns, JSON cells parse
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["camera_id"] for r in rows] == list(PHOTOS)
    assert rows[0]["schema_version"] == "1" and json.loads(rows[0]["evidence"]) == cams[rows[0]["camera_id"]]["evidence"]
    # HTML: self-contained, summary, sortable table, thumbnails, per-camera anchors
    page = (out / "report.html").read_text()
    assert "<script>" in page and "th.s" in page and "http" not in page.split("<body", 1)[1].replace(str(dev_dir), "")
    assert page.count('src="data:image/jpeg;base64,') == len(PHOTOS)
    ids = anchors(PHOTOS, "cam")
    for cid in PHOTOS:
        assert f'href="#{ids[cid]}"' in page and f'id="{ids[cid]}"' in page
    assert f"<b>{s['violation']}</b>violation" in page
    thumb = sqlite3.connect(out / "rescan.sqlite").execute(
        "SELECT thumbnail FROM cameras WHERE camera_id = 'bathroom_001'").fetchone()[0]
    img = cv2.imdecode(np.frombuffer(thumb, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and max(img.shape[:2]) == 320


@pytest.mark.slow
def test_resume_skips_finished_items_and_picks_up_new_and_changed_files(tmp_path: Path, dev_dir: Path) -> None:
    names = PHOTOS[:5]
    local = tmp_path / "photos"
    local.mkdir()
    for n in names:
        shutil.copy(dev_dir / "images" / f"{n}.jpg", local / f"{n}.jpg")
    fleet = tmp_path / "fleet.csv"
    fleet.write_text("camera_id,footage\n" + "".join(f"{n},photos/{n}.jpg\n" for n in names))
    store = tmp_path / "store.sqlite"
    base = ["rescan", str(fleet), "--store", str(store), "--workers", "0", "--models", "yolox-nano"]

    assert main([*base, "--max-items", "2", "--out", str(tmp_path / "o1")]) == 3  # stopped: items pending
    first = {r["camera_id"]: r for r in item_rows(store)}
    done1 = {c for c, r in first.items() if r["status"] == "done"}
    assert len(done1) == 2 and {r["status"] for c, r in first.items() if c not in done1} == {"pending"}
    doc = json.loads((tmp_path / "o1" / "results.json").read_text())
    assert doc["summary"]["pending"] == 3 and doc["run"]["status"] == "stopped"

    rc = main(base)
    second = {r["camera_id"]: r for r in item_rows(store)}
    assert all(r["status"] == "done" for r in second.values())
    for c in done1:  # not redone
        assert second[c]["finished_at"] == first[c]["finished_at"] and second[c]["attempts"] == 1
    assert rc in (0, 1)

    # nothing left: a third run dispatches nothing
    assert main(base) == rc
    runs = sqlite3.connect(store).execute("SELECT items_done, items_skipped FROM runs ORDER BY run_id").fetchall()
    assert runs == [(2, 0), (3, 2), (0, 5)]

    # a new camera and a changed file are picked up; the rest is skipped
    shutil.copy(dev_dir / "images" / "shop_001.jpg", local / "new.jpg")
    with fleet.open("a") as f:
        f.write("newcam,photos/new.jpg\n")
    shutil.copy(dev_dir / "images" / "office_002.jpg", local / f"{names[0]}.jpg")
    main(base)
    assert sqlite3.connect(store).execute("SELECT items_done, items_skipped FROM runs ORDER BY run_id DESC").fetchone() == (2, 4)
    # --force redoes everything
    main([*base, "--force"])
    assert sqlite3.connect(store).execute("SELECT items_done, items_skipped FROM runs ORDER BY run_id DESC").fetchone() == (6, 0)


@pytest.mark.slow
def test_killed_rescan_resumes_without_redoing_finished_items(tmp_path: Path, dev_dir: Path) -> None:
    fleet = write_fleet(tmp_path / "fleet.csv", dev_dir)
    store = tmp_path / "store.sqlite"
    cmd = [sys.executable, "-m", "masking", "-q", "rescan", str(fleet), "--store", str(store), "--workers", "1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    done_before: dict[str, float] = {}
    while time.monotonic() < deadline and proc.poll() is None:
        if store.exists():
            try:
                done_before = {r["item_id"]: r["finished_at"] for r in item_rows(store) if r["status"] == "done"}
            except sqlite3.OperationalError:  # schema not created yet
                done_before = {}
            if len(done_before) >= 2:
                break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its worker process, mid-run
    proc.wait(30)
    proc.stderr.close()
    assert len(done_before) >= 2, "the rescan finished no item within 120 s"
    after_kill = {r["item_id"]: r for r in item_rows(store)}
    done_before = {i: r["finished_at"] for i, r in after_kill.items() if r["status"] == "done"}

    rerun = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert rerun.returncode in (0, 1), rerun.stderr
    final = {r["item_id"]: r for r in item_rows(store)}
    assert len(final) == len(PHOTOS) and all(r["status"] == "done" for r in final.values())
    for iid, finished in done_before.items():
        assert final[iid]["finished_at"] == finished and final[iid]["attempts"] == 1
    last = sqlite3.connect(store).execute("SELECT items_done, items_skipped, status FROM runs ORDER BY run_id DESC").fetchone()
    assert last == (len(PHOTOS) - len(done_before), len(done_before), "finished")


# --------------------------------------------------------------------------- failures and retries
class _FlakyAuditor:
    """The real Auditor (fake detector) that fails once for inputs with a `.fail-once` marker."""

    def __init__(self, inner: Auditor) -> None:
        self.inner = inner

    def audit_path(self, path: Path, camera: Any) -> Any:
        marker = Path(f"{path}.fail-once")
        if marker.exists():
            marker.unlink()
            raise DetectorError(f"{path}: injected transient failure")
        return self.inner.audit_path(path, camera)


def flaky_auditor(settings: dict[str, Any], threads: int) -> _FlakyAuditor:
    """Auditor factory (module:function) for the retry test: bright squares are toilets."""
    det = FakeDetector(bright_box_script(class_names=("toilet",)), class_names=("toilet",), name="yolox-nano")
    return _FlakyAuditor(Auditor(AuditSettings.model_validate(settings), detectors={"yolox-nano": det}))


class _CrashingAuditor(_FlakyAuditor):
    """Kills its worker process (as a segfault in a native library would) for `.crash-once` inputs."""

    def audit_path(self, path: Path, camera: Any) -> Any:
        marker = Path(f"{path}.crash-once")
        if marker.exists():
            marker.unlink()
            os._exit(3)
        return self.inner.audit_path(path, camera)


def crashing_auditor(settings: dict[str, Any], threads: int) -> _CrashingAuditor:
    return _CrashingAuditor(flaky_auditor(settings, threads).inner)


@pytest.mark.slow
def test_a_crashed_worker_process_is_replaced_and_its_item_retried(tmp_path: Path) -> None:
    from masking.rescan import RescanOptions, Store, load_fleet, run_rescan

    cams = tmp_path / "fleet"
    cams.mkdir()
    img = np.full((120, 160, 3), 90, np.uint8)
    for k in range(4):
        cv2.imwrite(str(cams / f"cam{k}.png"), img)
    Path(f"{cams / 'cam1.png'}.crash-once").write_text("")
    opts = RescanOptions(settings=AuditSettings(verdict="rule", tiles=1).model_dump(), workers=1, attempts=3,
                         factory=f"{__name__}:crashing_auditor")
    with Store(tmp_path / "s.sqlite") as store:
        res = run_rescan(load_fleet(cams), opts, store)
        rows = {r["camera_id"]: dict(r) for r in store.query("SELECT * FROM items")}
    assert all(r["status"] == "done" for r in rows.values()) and res.counts["done"] == 4
    assert rows["cam1"]["attempts"] >= 2 and "worker lost" in rows["cam1"]["errors_json"]
    assert {c["verdict"] for c in res.cameras} == {"compliant"}


def test_failed_items_are_retried_recorded_and_the_rest_goes_on(tmp_path: Path) -> None:
    from masking.rescan import RescanOptions, Store, load_fleet, run_rescan

    cams = tmp_path / "fleet"
    for cid in ("toilet-cam", "empty-cam", "broken-cam", "flaky-cam"):
        (cams / cid).mkdir(parents=True)
    img = np.full((120, 160, 3), 90, np.uint8)
    bright = img.copy()
    bright[30:80, 40:100] = 255
    cv2.imwrite(str(cams / "toilet-cam" / "a.png"), bright)
    cv2.imwrite(str(cams / "empty-cam" / "a.png"), img)
    cv2.imwrite(str(cams / "empty-cam" / "b.png"), img)
    (cams / "broken-cam" / "a.jpg").write_bytes(b"\xff\xd8 truncated")
    cv2.imwrite(str(cams / "flaky-cam" / "a.png"), img)
    Path(f"{cams / 'flaky-cam' / 'a.png'}.fail-once").write_text("")
    opts = RescanOptions(settings=AuditSettings(verdict="rule", tiles=1).model_dump(), workers=0, attempts=3,
                         factory=f"{__name__}:flaky_auditor")
    with Store(tmp_path / "s.sqlite") as store:
        res = run_rescan(load_fleet(cams), opts, store)
        rows = {r["camera_id"]: dict(r) for r in store.query("SELECT * FROM items")}
    v = {c["camera_id"]: c for c in res.cameras}
    assert v["toilet-cam"]["verdict"] == "violation" and v["toilet-cam"]["category"] == "toilet"
    assert v["empty-cam"]["verdict"] == "compliant" and v["empty-cam"]["items_done"] == 2
    assert v["flaky-cam"]["verdict"] == "compliant" and rows["flaky-cam"]["attempts"] == 2
    assert "injected transient failure" in json.loads(rows["flaky-cam"]["errors_json"])[0]
    broken = rows["broken-cam"]
    assert broken["status"] == "failed" and broken["attempts"] == 3 and "a.jpg" in broken["error"]
    assert v["broken-cam"]["verdict"] == "failed" and "a.jpg" in v["broken-cam"]["items"][0]["error"]
    assert res.counts == {"planned": 5, "skipped": 0, "done": 4, "failed": 1, "retried": 3}

    # a rerun retries only the failed item
    with Store(tmp_path / "s.sqlite") as store:
        res2 = run_rescan(load_fleet(cams), opts, store)
        broken2 = store.query("SELECT attempts, status FROM items WHERE camera_id = 'broken-cam' AND config_key = ?",
                              (broken["config_key"],))[0]
    assert res2.counts["done"] == 0 and res2.counts["failed"] == 1 and res2.counts["skipped"] == 4
    assert tuple(broken2) == (6, "failed")


def test_cli_exit_status_3_when_items_fail_and_2_on_bad_input(tmp_path: Path, dev_dir: Path) -> None:
    fleet = tmp_path / "fleet.csv"
    fleet.write_text(f"camera_id,footage\nok,{dev_dir / 'images' / 'dining_001.jpg'}\ngone,{tmp_path / 'nope.jpg'}\n")
    out = tmp_path / "out"
    assert main(["rescan", str(fleet), "--out", str(out), "--workers", "0"]) == 3
    doc = json.loads((out / "results.json").read_text())
    gone = next(c for c in doc["cameras"] if c["camera_id"] == "gone")
    assert gone["verdict"] == "failed" and "no such file" in gone["items"][0]["error"]
    assert doc["summary"]["failed"] == 1
    assert main(["rescan", str(tmp_path / "missing.yaml")]) == 2
    assert main(["rescan", str(fleet), "--workers", "-1"]) == 2
    assert main(["rescan", str(fleet), "--sample-fps", "0"]) == 2
    assert main(["rescan", str(fleet), "--scheduler", "127.0.0.1:1"]) == 2


def test_store_schema_version_and_wal(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        assert store.query("PRAGMA journal_mode")[0][0] == "wal"
        assert store.query("SELECT value FROM meta WHERE key = 'schema_version'")[0][0] == str(SCHEMA_VERSION)
    db = sqlite3.connect(tmp_path / "s.sqlite")
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="schema version 99"):
        Store(tmp_path / "s.sqlite")


# --------------------------------------------------------------------------- streams
@pytest.fixture()
def http_clip(office_clip: Path) -> Iterator[str]:
    """The office clip served over HTTP on loopback (a stream URL PyAV opens)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(office_clip.parent))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{office_clip.name}"
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_stream_url_is_sampled_for_its_seconds(tmp_path: Path, http_clip: str) -> None:
    (tmp_path / "fleet.yaml").write_text(
        f"cameras:\n  - camera_id: lobby\n    footage: ['{http_clip}']\n    stream_seconds: 3\n")
    out = tmp_path / "out"
    rc = main(["rescan", str(tmp_path / "fleet.yaml"), "--out", str(out), "--workers", "0", "--sample-fps", "2"])
    cam = json.loads((out / "results.json").read_text())["cameras"][0]
    item = cam["items"][0]
    assert item["kind"] == "stream" and item["status"] == "done", item
    assert 6 <= item["frames_sampled"] <= 7  # 3 s at 2 fps, by PTS
    assert rc in (0, 1)


@pytest.mark.slow
def test_long_clips_split_into_segment_items(tmp_path: Path, entrance_clip: Path) -> None:
    (tmp_path / "fleet.csv").write_text(f"camera_id,footage\nmall,{entrance_clip}\n")
    out = tmp_path / "out"
    args = ["rescan", str(tmp_path / "fleet.csv"), "--out", str(out), "--workers", "0", "--segment-seconds", "5"]
    rc = main(args)
    cam = json.loads((out / "results.json").read_text())["cameras"][0]
    assert [it["input"] for it in cam["items"]] == [f"{entrance_clip}#t={t}" for t in ("0,5", "5,10", "10")]
    assert all(it["status"] == "done" and it["kind"] == "video" for it in cam["items"])
    assert [it["frames_sampled"] for it in cam["items"]] == [5, 5, 5]  # 1 fps by PTS, no frame twice
    whole = Auditor(AuditSettings(), threads=1).audit_path(entrance_clip, None)
    assert whole.frames_sampled == 15
    assert rc in (0, 1)
    assert main(args) == rc  # resumes: the three segments are skipped
    runs = sqlite3.connect(out / "rescan.sqlite").execute("SELECT items_done, items_skipped FROM runs").fetchall()
    assert runs == [(3, 0), (0, 3)]
