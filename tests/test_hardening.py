"""Hardening (issue 15, items 2, 3, 8, 9, 11): originals kept, special files, private modes, clear
errors instead of tracebacks, bounded resources, Unicode ids."""

from __future__ import annotations

import os
import sqlite3
import stat
import struct
import subprocess
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from masking._atomic import atomic_write
from masking.cli import main
from masking.config.validation import ID_RULE, identifier_problem
from masking.config.yamlio import load_yaml
from masking.config.zones import load_zones
from masking.errors import ConfigError, InputError, OutputError, StoreError
from masking.limits import CONFIG_MAX_BYTES, image_size
from masking.masks.apply import ZoneMasker
from masking.masks.raster import rasterize
from masking.paths import refuse_overwrite
from masking.rescan.store import Store

ZONES = """\
cameras:
  - camera_id: 摄像头1
    site: 广州 大堂
    zones:
      - id: 门-301
        kind: privacy_mask
        polygon: [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5], [0.1, 0.5]]
"""


@pytest.fixture()
def zones_file(tmp_path: Path) -> Path:
    p = tmp_path / "zones.yaml"
    p.write_text(ZONES, encoding="utf-8")
    return p


@pytest.fixture()
def snapshot(tmp_path: Path) -> Path:
    p = tmp_path / "snap.png"
    cv2.imwrite(str(p), np.full((90, 160, 3), 120, np.uint8))
    return p


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out + out.err


# --------------------------------------------------------------------------- item 2: originals kept
def test_filter_image_onto_itself_is_refused_and_the_original_kept(
    capsys: pytest.CaptureFixture[str], zones_file: Path, snapshot: Path
) -> None:
    before = snapshot.read_bytes()
    rc, msg = _run(capsys, "filter", str(snapshot), "--zones", str(zones_file), "-o", str(snapshot))
    assert rc == 2 and "refusing to write" in msg and msg.count(str(snapshot)) >= 2
    assert snapshot.read_bytes() == before


def test_outputs_resolving_to_an_input_are_refused(tmp_path: Path, snapshot: Path, zones_file: Path) -> None:
    link = tmp_path / "link.png"
    link.symlink_to(snapshot)
    hard = tmp_path / "hard.png"
    os.link(snapshot, hard)
    dotted = tmp_path / "sub" / ".." / snapshot.name
    (tmp_path / "sub").mkdir()
    for out, words in ((link, "symbolic link"), (hard, "hard link"), (dotted, "it is the input")):
        with pytest.raises(OutputError, match="refusing to write") as info:
            refuse_overwrite([out], [snapshot, zones_file])
        assert words in str(info.value) and str(snapshot) in str(info.value)
    with pytest.raises(OutputError, match="same file"):
        refuse_overwrite([tmp_path / "a.json", tmp_path / "." / "a.json"], [snapshot])
    refuse_overwrite([tmp_path / "new.png", None, "-", "rtsp://cam/1"], [snapshot, "rtsp://cam/1"])


def test_filter_folder_onto_itself_and_through_a_symlink_inside_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, zones_file: Path, snapshot: Path
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "a.png"), np.full((90, 160, 3), 7, np.uint8))
    before = (src / "a.png").read_bytes()
    rc, msg = _run(capsys, "filter", str(src), "--zones", str(zones_file), "-o", str(src))
    assert rc == 2 and "refusing to write" in msg
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").symlink_to(src / "a.png")  # writing out/a.png would follow the link
    rc, msg = _run(capsys, "filter", str(src), "--zones", str(zones_file), "-o", str(out))
    assert rc == 2 and "refusing to write" in msg
    assert (src / "a.png").read_bytes() == before


def test_audit_json_onto_its_input_and_zones_draw_onto_the_snapshot_are_refused(
    capsys: pytest.CaptureFixture[str], zones_file: Path, snapshot: Path
) -> None:
    before = snapshot.read_bytes()
    rc, msg = _run(capsys, "audit", str(snapshot), "--json", str(snapshot))
    assert rc == 2 and "refusing to write" in msg
    rc, msg = _run(capsys, "zones", "draw", str(snapshot), "--zones", str(zones_file), "-o", str(snapshot))
    assert rc == 2 and "refusing to write" in msg
    rc, msg = _run(capsys, "zones", "draw", str(snapshot), "--zones", str(zones_file), "-o", str(zones_file))
    assert rc == 2 and str(zones_file) in msg
    assert snapshot.read_bytes() == before and zones_file.read_text(encoding="utf-8") == ZONES


def test_rescan_store_onto_footage_and_serve_sink_onto_source_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, zones_file: Path, snapshot: Path
) -> None:
    cams = tmp_path / "fleet"
    (cams / "cam1").mkdir(parents=True)
    photo = cams / "cam1" / "a.png"
    photo.write_bytes(snapshot.read_bytes())
    rc, msg = _run(capsys, "rescan", str(cams), "--store", str(photo), "--workers", "0")
    assert rc == 2 and "refusing to write" in msg and photo.read_bytes() == snapshot.read_bytes()
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(f"cameras:\n  - name: 门-301\n    source: {snapshot}\n    sink: {{path: ./snap.png, format: h264}}\n"
                   f"    zones: {zones_file}\n", encoding="utf-8")
    rc, msg = _run(capsys, "serve", str(cfg))
    assert rc == 2 and "refusing to write" in msg and snapshot.read_bytes() == photo.read_bytes()


# --------------------------------------------------------------------------- item 3: special files, modes
def test_json_onto_dev_null_writes_through_and_keeps_the_device(tmp_path: Path) -> None:
    st = os.stat("/dev/null")
    atomic_write(Path("/dev/null"), "{}", "JSON")
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and (after.st_ino, after.st_mode) == (st.st_ino, st.st_mode)
    link = tmp_path / "null-link"
    link.symlink_to("/dev/null")
    atomic_write(link, "{}", "JSON")
    assert link.is_symlink() and stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_fifo_and_stdout_are_written_through(tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    atomic_write(fifo, "through the pipe", "JSON")
    reader.join(10)
    assert got == [b"through the pipe"] and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    atomic_write(Path("-"), "to stdout\n", "JSON")
    assert capfdbinary.readouterr().out == b"to stdout\n"
    assert not Path("-").exists()


def test_symlink_is_followed_the_link_stays_and_modes_are_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "report.json"
    link.symlink_to(target)
    os.umask(0o022)
    atomic_write(link, "new", "JSON")
    assert link.is_symlink() and target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    atomic_write(tmp_path / "frame.png", b"x", "image")
    assert stat.S_IMODE((tmp_path / "frame.png").stat().st_mode) == 0o640
    monkeypatch.setenv("MASKING_REPORT_MODE", "0644")
    atomic_write(tmp_path / "shared.html", "x", "report")
    assert stat.S_IMODE((tmp_path / "shared.html").stat().st_mode) == 0o644
    monkeypatch.setenv("MASKING_REPORT_MODE", "rw-r--r--")
    with pytest.raises(ConfigError, match="octal"):
        atomic_write(tmp_path / "x.html", "x")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporaries left


def test_store_is_created_private_and_a_foreign_sqlite_file_is_not_adopted(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite"):
        pass
    assert stat.S_IMODE((tmp_path / "s.sqlite").stat().st_mode) == 0o600
    foreign = tmp_path / "app.db"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE customers (name TEXT)")
    db.commit()
    db.close()
    before = foreign.read_bytes()
    with pytest.raises(StoreError, match="not a masking rescan store.*customers"):
        Store(foreign)
    assert foreign.read_bytes() == before  # not switched to WAL, no tables added


# --------------------------------------------------------------------------- item 8: clear errors
@pytest.mark.parametrize(
    "name, data, expected",
    [
        ("binary", bytes(range(256)) * 4, "not a YAML text file|not UTF-8"),
        ("utf16", ZONES.encode("utf-16"), "UTF-16"),
        ("latin1", "cameras:\n  - camera_id: caf\xe9\n".encode("latin-1"), "not UTF-8"),
        ("list_key", b"cameras:\n  ? [a, b]\n  : 1\n", "mapping key is a list"),
        ("deep", b"[" * 100_000, "nested more than|nesting depth"),
        ("deep_block", ("a:\n" + "".join(" " * (2 * k) + "- b:\n" for k in range(1, 200))).encode(), "nested more than"),
        ("too_big", b"# " + b"x" * (CONFIG_MAX_BYTES + 10), "larger than"),
    ],
)
def test_bad_config_files_exit_2_naming_the_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, data: bytes, expected: str
) -> None:
    import re

    path = tmp_path / f"{name}.yaml"
    path.write_bytes(data)
    rc, msg = _run(capsys, "zones", "check", str(path))
    assert rc == 2 and str(path) in msg and re.search(expected, msg), msg
    assert "Traceback" not in msg


def test_yaml_errors_never_quote_the_file(tmp_path: Path) -> None:
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$very-secret-hash:19000:0:99999:7:::\nbin: [x\n")
    with pytest.raises(ConfigError) as info:
        load_yaml(secret)
    assert "very-secret-hash" not in str(info.value) and str(secret) in str(info.value)


def _png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


def test_images_over_the_pixel_limit_are_refused_before_decoding(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, zones_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header(40_000, 40_000) + zlib.compress(b"\0" * 1_000_000))  # 1.6 gigapixels declared
    rc, msg = _run(capsys, "zones", "draw", str(bomb), "--zones", str(zones_file), "-o", str(tmp_path / "o.png"))
    assert rc == 2 and str(bomb) in msg and "40000 x 40000" in msg and "megapixels" in msg
    monkeypatch.setenv("MASKING_MAX_IMAGE_PIXELS", "10000")
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.zeros((120, 100, 3), np.uint8))
    rc, msg = _run(capsys, "zones", "draw", str(small), "--zones", str(zones_file), "-o", str(tmp_path / "o.png"))
    assert rc == 2 and "over the limit" in msg


def test_image_header_sizes_of_every_format() -> None:
    img = np.zeros((37, 53, 3), np.uint8)
    for ext in (".png", ".jpg", ".bmp", ".webp"):
        ok, buf = cv2.imencode(ext, img)
        assert ok and image_size(buf.tobytes()) == (53, 37), ext
    assert image_size(b"GIF89a" + struct.pack("<HH", 53, 37)) == (53, 37)
    assert image_size(b"not an image") is None


def test_store_schema_version_not_a_number_and_unwritable_folder(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path):
        pass
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = 'one' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="'one' is not a number"):
        Store(path)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="cannot create the rescan store"):
        Store(blocker / "s.sqlite")


@pytest.fixture()
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 192 KiB tmpfs (a full disk), where this machine lets the tests mount one (root)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_store_on_a_full_disk_is_a_clear_error(tiny_tmpfs: Path) -> None:
    from masking.rescan.items import WorkItem
    from masking.rescan.store import ItemOutcome

    items = [WorkItem(item_id=f"i{k}", camera_id="c", source=f"/x/{k}.jpg", kind="image", content_hash="h",
                      config_key="k", stream_seconds=None, error=None, segment=None) for k in range(40)]
    with pytest.raises(StoreError, match="disk holding the store is full"), Store(tiny_tmpfs / "s.sqlite") as st:
        run = st.start_run("inline", 0, "fleet", {})
        todo, _ = st.sync_items(items, False)
        for iid in todo:
            st.claim(iid, run, 100)
            st.record(run, ItemOutcome(iid, ok=True, result={"verdict": "compliant"}, thumbnail=os.urandom(20_000)))


def test_read_only_output_folder_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], tiny_tmpfs: Path, zones_file: Path, snapshot: Path, office_clip: Path
) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_tmpfs)], check=True)
    for argv in (
        ["zones", "draw", str(snapshot), "--zones", str(zones_file), "-o", str(tiny_tmpfs / "o.png")],
        ["filter", str(snapshot), "--zones", str(zones_file), "-o", str(tiny_tmpfs / "o.png")],
        ["rescan", str(snapshot.parent), "--out", str(tiny_tmpfs / "rep"), "--store", str(snapshot.parent / "s.db")],
    ):
        rc, msg = _run(capsys, *argv)
        assert rc == 2 and str(tiny_tmpfs) in msg and ("Read-only" in msg or "not writable" in msg), msg


# --------------------------------------------------------------------------- item 9 / 11: zones
def test_unicode_ids_accepted_and_the_rule_explained_in_words(capsys: pytest.CaptureFixture[str], zones_file: Path) -> None:
    cam = load_zones(zones_file).camera()
    assert cam.camera_id == "摄像头1" and cam.zones[0].id == "门-301"
    for ok in ("lobby", "摄像头1", "門-301", "кам_2", "कैमरा", "hotel:3f@a.b"):
        assert identifier_problem(ok) is None, ok
    for bad in ("", "-x", "a b", "a/b", "../x", "a<b>", "x" * 129, "a\u200bb", "e\u0301"):
        assert identifier_problem(bad) is not None, bad
    rc, msg = _run(capsys, "zones", "check", str(_bad_id_file(zones_file)))
    assert rc == 2 and "letters and digits of any script" in msg and "^[" not in msg and "{0," not in msg
    assert "letters and digits" in ID_RULE


def _bad_id_file(zones_file: Path) -> Path:
    p = zones_file.with_name("bad.yaml")
    p.write_text(ZONES.replace("门-301", "门 301/x"), encoding="utf-8")
    return p


def test_zero_area_border_polygon_is_not_called_self_intersection(tmp_path: Path) -> None:
    p = tmp_path / "z.yaml"
    p.write_text(ZONES.replace("[[0.1, 0.1], [0.5, 0.1], [0.5, 0.5], [0.1, 0.5]]",
                               "[[0.0, 0.0], [1.0, 0.0], [0.5, 0.0]]"), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_zones(p)
    assert "zero area" in str(info.value) and "elf-intersection" not in str(info.value)


def test_zone_count_limit_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from masking import limits

    monkeypatch.setattr(limits, "ZONES_PER_CAMERA", 50)  # the check, not 10,000 zones of YAML
    ring = "[[0.1, 0.1], [0.2, 0.1], [0.2, 0.2]]"
    zones = "".join(f"      - {{id: z{k}, kind: privacy_mask, polygon: {ring}}}\n"
                    for k in range(limits.ZONES_PER_CAMERA + 1))
    p = tmp_path / "many.yaml"
    p.write_text(f"cameras:\n  - camera_id: c\n    zones:\n{zones}", encoding="utf-8")
    with pytest.raises(ConfigError, match=f"at most {limits.ZONES_PER_CAMERA}"):
        load_zones(p)


def _many_zones(n: int, seed: int = 3) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    styles = [{"mode": "fill"}, {"mode": "pixelate", "block": 8}, {"mode": "blur", "strength": 15}]
    out = []
    for k in range(n):
        x, y = rng.uniform(0, 0.85, 2)
        w, h = rng.uniform(0.02, 0.15, 2)
        ring = [[x, y], [x + w, y + h / 3], [x + w / 2, y + h]]
        out.append({"id": f"z{k}", "kind": "privacy_mask", "polygon": ring, "style": styles[k % 3]})
    return out


def test_union_raster_equals_per_zone_union_and_many_zones_mask_every_zone() -> None:
    from masking.config.zones import Camera

    cam = Camera.model_validate({"camera_id": "c", "zones": _many_zones(300)})
    width, height = 320, 180
    union = rasterize(cam.zones, width, height)
    each = np.zeros_like(union)
    for z in cam.zones:
        each |= rasterize([z], width, height)
    np.testing.assert_array_equal(union, each)
    # every pixel of the union is changed by the masker on a frame it cannot leave unchanged
    frame = np.random.default_rng(0).integers(0, 256, (height, width, 3), np.uint8)
    frame[..., 0] = 255  # fill is black, pixelate/blur of noise differ from noise
    out = ZoneMasker(cam).apply(frame.copy())
    changed = (out != frame).any(axis=2)
    assert changed[union].mean() > 0.97 and not changed[~union].any()


def test_zone_styles_overlap_by_priority_with_grouped_masks() -> None:
    from masking.config.zones import Camera

    sq = [[0.2, 0.2], [0.6, 0.2], [0.6, 0.6], [0.2, 0.6]]
    zones = [{"id": "b", "kind": "privacy_mask", "polygon": sq, "style": {"mode": "blur"}},
             {"id": "f", "kind": "privacy_mask", "polygon": [[0.4, 0.4], [0.8, 0.4], [0.8, 0.8], [0.4, 0.8]],
              "style": {"mode": "fill", "color": [255, 0, 0]}}]
    cam = Camera.model_validate({"camera_id": "c", "zones": zones})
    frame = np.full((100, 100, 3), 60, np.uint8)
    out = ZoneMasker(cam).apply(frame.copy())
    assert tuple(out[50, 50]) == (0, 0, 255)  # the overlap is filled (fill beats blur), BGR red


# --------------------------------------------------------------------------- item 11: small ones
def test_models_list_does_not_show_scenes_installed_without_a_trained_head(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from masking.audit.scenes import head_path
    from masking.models.registry import load_registry

    entry = load_registry().get("scenes")
    if head_path(entry).exists():
        pytest.skip("a trained scene head is installed in this model cache")
    rc, out = _run(capsys, "models", "list")
    line = next(ln for ln in out.splitlines() if ln.split() and ln.split()[0] == "scenes")
    assert rc == 0 and "no trained head" in line


def test_manifest_root_confines_paths(capsys: pytest.CaptureFixture[str], tmp_path: Path, snapshot: Path) -> None:
    from masking.rescan.manifest import load_fleet

    inside = tmp_path / "site"
    inside.mkdir()
    m = inside / "fleet.yaml"
    m.write_text(f"cameras:\n  - camera_id: c1\n    footage: [{snapshot}]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="outside the root"):
        load_fleet(m, root=inside)
    assert load_fleet(m, root=tmp_path).cameras[0].footage == (str(snapshot),)
    m.write_text("cameras:\n  - camera_id: c1\n    zones: ../../../../../../etc/passwd\n    footage: [a.png]\n",
                 encoding="utf-8")
    rc, msg = _run(capsys, "rescan", str(m), "--root", str(inside), "--store", str(tmp_path / "s.db"))
    assert rc == 2 and "outside the root" in msg and "root:" not in msg


def test_invalid_inputs_raise_input_error_not_value_error(tmp_path: Path) -> None:
    from masking.video.images import read_image

    p = tmp_path / "x.png"
    p.write_bytes(_png_header(10, 10))  # a header and nothing else
    with pytest.raises(InputError, match="not a readable image"):
        read_image(p)


def test_serve_overload_is_warned_once_per_interval_with_its_cause() -> None:
    from masking.stream.frames import MaskedBy
    from masking.stream.stats import CameraStats

    stats = CameraStats("门-301")
    for _ in range(100):
        stats.add("frames_in")
        stats.written(MaskedBy.detections, 0.0)
    assert stats.overload() is None
    for _ in range(100):
        stats.add("frames_in")
    for _ in range(30):
        stats.add("dropped")
        stats.add("detector_late")
    for k in range(70):
        stats.written(MaskedBy.policy_full if k < 40 else MaskedBy.detections, 0.0)
    warning = stats.overload()
    assert warning is not None and "门-301" in warning and "57% of the last 70 frames" in warning
    assert "30% of 100 input frames dropped" in warning and "missed its deadline 30 time(s)" in warning
    assert stats.overload() is None  # nothing new since: no second warning


def test_audit_json_dash_writes_the_document_to_stdout(
    capfd: pytest.CaptureFixture[str], snapshot: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    monkeypatch.chdir(tmp_path)
    rc = main(["audit", str(snapshot), "--json", "-"])
    out = capfd.readouterr()
    doc = json.loads(out.out)
    assert rc in (0, 1) and doc["results"][0]["input"].endswith("snap.png")
    assert "snap.png" in out.err and not (tmp_path / "-").exists()


def test_masked_video_is_created_with_the_media_mode(tmp_path: Path, zones_file: Path, office_clip: Path) -> None:
    from masking.video.reader import VideoReader
    from masking.video.writer import VideoWriter

    out = tmp_path / "out.mp4"
    with VideoReader(str(office_clip)) as reader, VideoWriter(out, reader.info) as writer:
        for k, vf in enumerate(reader):
            writer.write(vf.image, vf.pts)
            if k == 2:
                break
    assert stat.S_IMODE(out.stat().st_mode) == 0o640


def test_dev_stdout_redirected_to_a_file_is_written_through_in_order(tmp_path: Path) -> None:
    import sys

    out = tmp_path / "redirected.txt"
    code = ("from masking._atomic import atomic_write\nprint('before', flush=True)\n"
            "atomic_write('/dev/stdout', 'doc\\n', 'JSON')\nprint('after', flush=True)\n")
    with out.open("w") as f:
        subprocess.run([sys.executable, "-c", code], stdout=f, check=True,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert out.read_text() == "before\ndoc\nafter\n"
