"""`masking filter`, `masking zones` and `masking demo` end to end, through the CLI entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from masking.cli import main
from masking.config.zones import json_schema, load_zones
from masking.masks.raster import rasterize
from masking.video.images import read_image, write_image

ROOT = Path(__file__).resolve().parents[1]

ZONES = """cameras:
  - camera_id: office-1
    site: test office
    zones:
      - id: door
        kind: prohibited_view
        polygon: [[0.62, 0.10], [0.90, 0.12], [0.88, 0.80], [0.60, 0.78]]
        style: {mode: fill, color: [255, 0, 255]}
      - id: window
        kind: privacy_mask
        polygon:
          exterior: [[0.05, 0.05], [0.40, 0.05], [0.40, 0.50], [0.05, 0.50]]
          holes: [[[0.15, 0.15], [0.30, 0.15], [0.30, 0.40], [0.15, 0.40]]]
        style: {mode: pixelate, block: 16}
      - id: floor
        kind: watch
        polygon: [[0.0, 0.85], [1.0, 0.85], [1.0, 1.0], [0.0, 1.0]]
"""
SECOND_CAMERA = """  - camera_id: office-2
    zones: []
"""


@pytest.fixture()
def zones_file(tmp_path: Path) -> Path:
    p = tmp_path / "zones.yaml"
    p.write_text(ZONES, encoding="utf-8")
    return p


def _decode(path: Path) -> tuple[list[int | None], list[np.ndarray | None], tuple[Any, Any, tuple[int, int]]]:
    """PTS of every frame, every 15th frame as BGR, and (rate, time base, size)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        pts: list[int | None] = []
        images: list[np.ndarray | None] = []
        for f in c.decode(s):
            pts.append(f.pts)
            images.append(f.to_ndarray(format="bgr24") if len(pts) % 15 == 1 else None)
        return pts, images, (s.average_rate, s.time_base, (s.width, s.height))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.mark.slow
def test_filter_video_end_to_end(
    tmp_path: Path, zones_file: Path, office_clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "masked.mp4"
    assert main(["filter", str(office_clip), "-o", str(out), "--zones", str(zones_file)]) == 0
    assert "182 frames in, 182 frames out" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masked.mp4", "zones.yaml"]
    pts_in, img_in, (rate_in, tb_in, size_in) = _decode(office_clip)
    pts_out, img_out, (rate_out, tb_out, size_out) = _decode(out)
    assert len(pts_out) == len(pts_in) == 182
    assert pts_out == pts_in and tb_out == tb_in and size_out == size_in
    assert abs(float(rate_out) - float(rate_in)) < 1e-3 * float(rate_in)
    camera = load_zones(zones_file).camera()
    door = rasterize([camera.zone("door")], 1280, 720)
    window = rasterize([camera.zone("window")], 1280, 720)
    watch = rasterize([camera.zone("floor")], 1280, 720)
    inner_door = door.copy()
    inner_door[:, :-1] &= door[:, 1:]  # keep off the edge: chroma is shared by 2x2 pixels
    inner_door[:-1] &= door[1:]
    untouched = ~(door | window)
    untouched[:-2] &= ~(door | window)[2:]
    for a, b in zip(img_in, img_out, strict=True):
        if a is None:
            continue
        assert np.abs(b[inner_door].astype(int) - (255, 0, 255)).mean() < 6  # fill colour, BGR
        assert _psnr(a[untouched], b[untouched]) > 30
        assert _psnr(a[watch], b[watch]) > 30  # watch zones are not masked
        assert np.abs(b[window].astype(int) - a[window]).mean() > 1  # pixelated


def test_filter_style_override_and_image(tmp_path: Path, zones_file: Path) -> None:
    img = np.random.default_rng(0).integers(0, 256, (90, 160, 3), dtype=np.uint8)
    src = tmp_path / "snap.png"
    write_image(src, img)
    out = tmp_path / "out" / "snap_masked.png"
    assert main(["filter", str(src), "-o", str(out), "--zones", str(zones_file), "--style", "fill"]) == 0
    masked = read_image(out)
    union = rasterize([z for z in load_zones(zones_file).camera().zones if z.masked], 160, 90)
    assert np.all(masked[union] == 0)  # --style fill: default black, door colour overridden
    np.testing.assert_array_equal(masked[~union], img[~union])


def test_filter_folder(tmp_path: Path, zones_file: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i, size in enumerate([(48, 64), (51, 77)]):
        write_image(src / f"f{i}.png", np.full(size + (3,), 100 + i, np.uint8))
    (src / "readme.txt").write_text("not an image")
    out = tmp_path / "out"
    assert main(["-q", "filter", str(src), "-o", str(out), "--zones", str(zones_file)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["f0.png", "f1.png"]
    f1 = read_image(out / "f1.png")
    assert f1.shape == (51, 77, 3) and np.all(f1[20, 60] == (255, 0, 255))


@pytest.mark.parametrize("damage", ["garbled", "truncated", "text"])
def test_filter_bad_video_exits_2_and_leaves_nothing(
    tmp_path: Path, zones_file: Path, office_clip: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = office_clip.read_bytes()
    src = tmp_path / f"{damage}.mp4"
    if damage == "garbled":
        src.write_bytes(bytes(4096) + data[4096:])
    elif damage == "truncated":
        src.write_bytes(data[: len(data) // 3])
    else:
        src.write_text("hello")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "masked.mp4"
    assert main(["filter", str(src), "-o", str(out), "--zones", str(zones_file)]) == 2
    err = capsys.readouterr().err
    assert f"{damage}.mp4" in err and "error" in err
    assert list(out_dir.iterdir()) == [], "no output (not even a temp file) is left behind"


def test_filter_bad_zones_and_camera_choice(
    tmp_path: Path, zones_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    img = tmp_path / "a.png"
    write_image(img, np.zeros((20, 30, 3), np.uint8))
    bad = tmp_path / "bad.yaml"
    bad.write_text(ZONES.replace("kind: watch", "kind: bathroom"), encoding="utf-8")
    assert main(["filter", str(img), "-o", str(tmp_path / "o.png"), "--zones", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "zone 'floor'" in err
    multi = tmp_path / "multi.yaml"
    multi.write_text(ZONES + SECOND_CAMERA, encoding="utf-8")
    assert main(["filter", str(img), "-o", str(tmp_path / "o.png"), "--zones", str(multi)]) == 2
    assert "choose one with --camera" in capsys.readouterr().err
    assert main(["filter", str(img), "-o", str(tmp_path / "o.png"), "--zones", str(multi), "--camera", "nope"]) == 2
    assert "no camera 'nope'" in capsys.readouterr().err
    out = str(tmp_path / "o.png")
    assert main(["filter", str(img), "-o", out, "--zones", str(multi), "--camera", "office-2"]) == 0
    assert main(["filter", str(img), "-o", str(tmp_path / "o.mp4"), "--zones", str(zones_file)]) == 2
    missing = str(tmp_path / "missing.png")
    assert main(["filter", missing, "-o", str(tmp_path / "o.png"), "--zones", str(zones_file)]) == 2
    assert "missing.png" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()


def test_zones_check_draw_schema(
    tmp_path: Path, zones_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["zones", "check", str(zones_file)]) == 0
    out = capsys.readouterr().out
    assert "valid" in out and "office-1" in out and "prohibited_view" in out and "1 hole(s)" in out
    assert "door" in out and "% of frame" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text(ZONES.replace("[0.05, 0.05], [0.40, 0.05]", "[0.05, 0.05], [1.40, 0.05]"), encoding="utf-8")
    assert main(["zones", "check", str(bad)]) == 2
    assert "outside the frame" in capsys.readouterr().err
    snap = tmp_path / "snap.jpg"
    write_image(snap, np.full((180, 320, 3), 128, np.uint8))
    preview = tmp_path / "preview.png"
    assert main(["zones", "draw", str(snap), "--zones", str(zones_file), "-o", str(preview)]) == 0
    drawn = read_image(preview)
    assert drawn.shape == (180, 320, 3) and np.any(drawn != 128)
    capsys.readouterr()
    assert main(["zones", "schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(json_schema()))


def test_entry_point_subprocess(zones_file: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "masking", "zones", "check", str(zones_file)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "office-1" in done.stdout


@pytest.mark.slow
def test_demo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", "demo", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    for name in ["synthetic.mp4", "snapshot.png", "zones.yaml", "masked.mp4", "zones_preview.png"]:
        assert (tmp_path / "demo" / name).exists()
        assert name in out
    with av.open(str(tmp_path / "demo" / "masked.mp4")) as c:
        frames = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
    assert len(frames) == 75
    door = rasterize([load_zones(tmp_path / "demo" / "zones.yaml").camera().zone("guest-room-door")], 1280, 720)
    assert frames[40][door].mean() < 8  # the bright doorway is black


def test_filter_odd_sized_video_keeps_size_and_pts(tmp_path: Path, zones_file: Path) -> None:
    from fractions import Fraction

    from masking.video.reader import StreamInfo, VideoReader
    from masking.video.writer import VideoWriter

    src = tmp_path / "odd.mkv"
    info = StreamInfo(97, 55, Fraction(12), Fraction(1, 1000), None, "h264")
    pts = [0, 83, 167, 250, 333, 500]
    with VideoWriter(src, info) as w:
        for p in pts:
            w.write(np.full((55, 97, 3), 120, np.uint8), p)
    out = tmp_path / "odd_masked.mkv"
    assert main(["-q", "filter", str(src), "-o", str(out), "--zones", str(zones_file)]) == 0
    with VideoReader(out) as r:
        frames = list(r)
    assert [f.pts for f in frames] == pts
    assert frames[0].image.shape == (55, 97, 3)
    door = rasterize([load_zones(zones_file).camera().zone("door")], 97, 55)
    assert np.abs(frames[2].image[door].astype(int) - (255, 0, 255)).mean() < 25
