"""`masking filter` on the one pipeline: images with detection, exclusive outputs, interrupted runs
and the small input/output cases (GIF, huge raw sizes, devices, size changes, PTS resets, empty
stdin, zero-length segments)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import yaml
from stream_helpers import unmasked_faces

from masking.cli import main
from masking.errors import ConfigError, OutputError
from masking.stream.config import load_serve_config
from masking.video.images import read_image, write_image
from masking.video.output import OutputLock
from masking.video.reader import StreamInfo, VideoReader
from masking.video.writer import VideoWriter

ROOT = Path(__file__).resolve().parents[1]


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------ images on the pipeline
@pytest.mark.slow
def test_image_folder_with_detection_masks_faces_at_each_size(
    tmp_path: Path, corner_zones: Path, office_clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    with VideoReader(office_clip) as r:
        picked = [vf.image for vf in r if vf.index in (20, 60, 100)]
    picked[1] = cv2.resize(picked[1], (960, 540), interpolation=cv2.INTER_AREA)  # images differ in size
    for i, img in enumerate(picked):
        write_image(src / f"snap{i}.png", img)
    out = tmp_path / "out"
    assert main(["filter", str(src), "-o", str(out), "--zones", str(corner_zones), "--detect", "faces"]) == 0
    assert "3 frames in, 3 out" in capsys.readouterr().out
    assert _listing(out) == ["snap0.png", "snap1.png", "snap2.png"]
    found = 0
    for i, before in enumerate(picked):
        after = read_image(out / f"snap{i}.png")
        assert after.shape == before.shape
        n, left = unmasked_faces(before, after)
        found += n
        assert not left, f"snap{i}.png: faces at {left} left unmasked"
        h, w = after.shape[:2]
        assert after[: h // 5 - 2, : w // 5 - 2].max() == 0  # the zone, at this image's size
    assert found >= 2
    single = tmp_path / "one.png"
    assert main(["-q", "filter", str(src / "snap0.png"), "-o", str(single), "--zones", str(corner_zones), "--detect", "faces"]) == 0
    np.testing.assert_array_equal(read_image(single), read_image(out / "snap0.png"))


def test_image_options_that_do_not_apply_exit_2(tmp_path: Path, corner_zones: Path) -> None:
    img = tmp_path / "a.png"
    write_image(img, np.zeros((20, 30, 3), np.uint8))
    assert main(["filter", str(img), "-o", str(tmp_path / "b.png"), "--zones", str(corner_zones), "--segment-seconds", "3"]) == 2
    assert main(["filter", str(img), "-o", str(tmp_path / "b.mp4"), "--zones", str(corner_zones)]) == 2
    assert _listing(tmp_path) == ["a.png", "zones.yaml"]


# ------------------------------------------------------------------ exclusive outputs (issue 15.4)
def test_second_writer_of_the_same_output_fails_with_exit_2(
    tmp_path: Path, corner_zones: Path, shared_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = shared_dir / "eval" / "videos" / "outdoor_v003.mp4"
    out = tmp_path / "out" / "masked.mp4"
    with OutputLock(out):  # another run is writing it
        assert main(["filter", str(clip), "-o", str(out), "--zones", str(corner_zones)]) == 2
        err = capsys.readouterr().err
        assert "masked.mp4" in err and "another run is writing" in err
        image = tmp_path / "a.png"
        write_image(image, np.zeros((20, 30, 3), np.uint8))
        with OutputLock(tmp_path / "b.png"):
            assert main(["filter", str(image), "-o", str(tmp_path / "b.png"), "--zones", str(corner_zones)]) == 2
    assert not out.exists()
    assert main(["-q", "filter", str(clip), "-o", str(out), "--zones", str(corner_zones)]) == 0  # lock released
    assert _listing(out.parent) == ["masked.mp4"]  # no lock or temporary file left


def test_writers_use_their_own_temporary_names(tmp_path: Path) -> None:
    info = StreamInfo(64, 48, Fraction(25), Fraction(1, 25), None, "h264")
    out = tmp_path / "a.mp4"
    a = VideoWriter(out, info, lock=False)
    b = VideoWriter(out, info, lock=False)
    assert a._tmp != b._tmp and a._tmp.name.startswith(".a.") and a._tmp.suffix == ".mp4"
    for i in range(5):
        a.write(np.full((48, 64, 3), 10 * i, np.uint8), i)
        b.write(np.full((48, 64, 3), 200, np.uint8), 2 * i)
    a.close()
    b.abort()
    with VideoReader(out) as r:
        assert [float(vf.pts * vf.time_base) for vf in r] == pytest.approx([0, 0.04, 0.08, 0.12, 0.16])  # a: whole
    first = VideoWriter(tmp_path / "c.mp4", info)
    with pytest.raises(OutputError, match="another run is writing"):
        VideoWriter(tmp_path / "c.mp4", info)
    first.abort()
    assert _listing(tmp_path) == ["a.mp4"]


def test_serve_sink_paths_are_compared_resolved(tmp_path: Path, corner_zones: Path) -> None:
    (tmp_path / "out").mkdir()
    cam = {"source": "in.mp4", "zones": "zones.yaml"}
    cfg = {"cameras": [{**cam, "name": "a", "sink": {"path": "out/a.mp4"}},
                       {**cam, "name": "b", "sink": {"path": "./out/../out/a.mp4"}}]}
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="same sink path"):
        load_serve_config(path)
    (tmp_path / "alias").symlink_to(tmp_path / "out")
    cfg["cameras"][1]["sink"]["path"] = str(tmp_path / "alias" / "a.mp4")
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="same sink path"):
        load_serve_config(path)


# ------------------------------------------------------------------ interrupted runs (issue 15.5)
def _start(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "masking", "-q", "filter", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(cond, proc: subprocess.Popen[bytes], what: str, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert proc.poll() is None, f"finished before {what}: {proc.communicate()[1].decode()}"
        assert time.monotonic() < end, f"no {what}"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_filter_exits_128_plus_signal_and_leaves_nothing(
    tmp_path: Path, corner_zones: Path, office_clip: Path, sig: signal.Signals
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = _start([str(office_clip), "-o", str(out_dir / "masked.mp4"), "--zones", str(corner_zones), "--detect", "faces"])
    try:
        _wait_for(lambda: any(p.name.endswith(".partial.mp4") and p.stat().st_size > 0 for p in out_dir.iterdir()),
                  proc, "frames written")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig, err.decode()
    text = err.decode()
    assert f"interrupted by {sig.name} after" in text and "nothing is left under" in text
    n = int(text.split("after ")[1].split(" frame")[0])
    assert 0 < n < 182
    assert _listing(out_dir) == []  # no output, no temporary file, no lock file


@pytest.mark.slow
def test_interrupted_segmented_filter_keeps_finished_segments(tmp_path: Path, corner_zones: Path, office_clip: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = _start([str(office_clip), "-o", str(out_dir / "seg.mp4"), "--zones", str(corner_zones), "--detect", "faces",
                   "--segment-seconds", "1"])
    try:
        _wait_for(lambda: (out_dir / "seg_00001.mp4").exists(), proc, "two finished segments")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err.decode()
    names = _listing(out_dir)
    assert names and all(n.startswith("seg_") and n.endswith(".mp4") for n in names), names
    assert len(names) < 6  # the clip is 6.2 s: the unfinished segment is gone
    assert "finished segment(s) kept" in err.decode() and all(n in err.decode() for n in names)
    for n in names:
        with VideoReader(out_dir / n) as r:
            assert sum(1 for _ in r) > 0


# ------------------------------------------------------------------ small cases (issue 15.11)
def test_gif_output_is_a_clear_error(tmp_path: Path, corner_zones: Path, shared_dir: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    clip = shared_dir / "eval" / "videos" / "outdoor_v003.mp4"
    assert main(["filter", str(clip), "-o", str(tmp_path / "x.gif"), "--zones", str(corner_zones)]) == 2
    err = capsys.readouterr().err
    assert "x.gif" in err and "not a video container" in err and ".mp4" in err
    assert _listing(tmp_path) == ["zones.yaml"]


@pytest.mark.slow
def test_huge_raw_size_empty_stdin_and_devices_are_clear_errors(corner_zones: Path, tmp_path: Path) -> None:
    def run(args: list[str], stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "masking", "-q", "filter", *args, "--zones", str(corner_zones)],
                              input=stdin, capture_output=True, cwd=ROOT, timeout=60)

    raw = ["--input-format", "rawvideo", "--pix-fmt", "bgr24"]
    r = run(["-", "-o", str(tmp_path / "o.mp4"), *raw, "--size", "100000x100000"])
    assert r.returncode == 2 and b"too large" in r.stderr and b"MemoryError" not in r.stderr, r.stderr
    r = run(["-", "-o", str(tmp_path / "o.mp4"), *raw, "--size", "64x48"])  # empty stdin
    assert r.returncode == 2 and b"empty" in r.stderr, r.stderr
    r = run(["/dev/zero", "-o", str(tmp_path / "o.mp4")])
    assert r.returncode == 2 and b"/dev/zero" in r.stderr and b"device" in r.stderr, r.stderr
    assert _listing(tmp_path) == ["zones.yaml"]


def _ts(path: Path, size: tuple[int, int], n: int, value: int) -> bytes:
    w, h = size
    with av.open(str(path), "w", format="mpegts") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i in range(n):
            img = np.full((h, w, 3), value, np.uint8)
            img[h // 2 :, w // 2 :] = 255 - value
            f = av.VideoFrame.from_ndarray(img, format="bgr24")
            f.pts = i
            f.time_base = Fraction(1, 25)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path.read_bytes()


@pytest.mark.parametrize("detect", [False, True])
def test_resolution_change_inside_a_file_fails_clearly(tmp_path: Path, corner_zones: Path, detect: bool,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    joined = tmp_path / "joined.ts"
    joined.write_bytes(_ts(tmp_path / "a.ts", (320, 240), 20, 90) + _ts(tmp_path / "b.ts", (160, 120), 20, 90))
    out_dir = tmp_path / "out"
    args = ["filter", str(joined), "-o", str(out_dir / "o.mp4"), "--zones", str(corner_zones)]
    assert main(args + (["--detect", "faces"] if detect else [])) == 2
    err = capsys.readouterr().err
    assert "joined.ts" in err and "160x120" in err and "320x240" in err and "size change" in err
    assert not out_dir.exists() or _listing(out_dir) == []


def test_pts_reset_keeps_timestamps_increasing_at_the_frame_rate(tmp_path: Path, corner_zones: Path) -> None:
    joined = tmp_path / "joined.ts"  # two recordings back to back: the second restarts its PTS
    joined.write_bytes(_ts(tmp_path / "a.ts", (160, 120), 25, 60) + _ts(tmp_path / "b.ts", (160, 120), 25, 160))
    out = tmp_path / "o.mp4"
    assert main(["-q", "filter", str(joined), "-o", str(out), "--zones", str(corner_zones)]) == 0
    with VideoReader(out) as r:
        times = [float(vf.pts * vf.time_base) for vf in r]
    assert len(times) == 50
    steps = np.diff(times)
    assert steps.min() > 0.03 and steps.max() < 0.05  # 25 fps throughout, the reset included
    assert times[-1] - times[0] == pytest.approx(49 / 25, abs=0.01)


def test_segment_seconds_zero_is_refused_by_filter_and_serve_alike(
    tmp_path: Path, corner_zones: Path, shared_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = shared_dir / "eval" / "videos" / "outdoor_v003.mp4"
    assert main(["filter", str(clip), "-o", str(tmp_path / "o.mp4"), "--zones", str(corner_zones), "--segment-seconds", "0"]) == 2
    assert "--segment-seconds: Input should be greater than 0" in capsys.readouterr().err
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(yaml.safe_dump({"cameras": [{"name": "a", "source": str(clip), "zones": str(corner_zones),
                                                "sink": {"path": "o.mp4", "segment_seconds": 0}}]}))
    with pytest.raises(ConfigError, match="segment_seconds.*greater than 0"):
        load_serve_config(cfg)
    assert not (tmp_path / "o.mp4").exists()
    assert os.listdir(tmp_path) == [p for p in os.listdir(tmp_path) if not p.startswith(".")]


def test_raw_file_output_appears_complete(tmp_path: Path, corner_zones: Path, shared_dir: Path) -> None:
    clip = shared_dir / "eval" / "videos" / "outdoor_v003.mp4"  # 320x240, 50 frames
    out = tmp_path / "out" / "frames.bgr"
    assert main(["-q", "filter", str(clip), "-o", str(out), "--zones", str(corner_zones),
                 "--output-format", "rawvideo"]) == 0
    assert _listing(out.parent) == ["frames.bgr"]
    frames = np.fromfile(out, np.uint8).reshape(-1, 240, 320, 3)
    assert len(frames) == 50 and frames[:, :46, :62].max() == 0


def test_image_folder_with_an_unreadable_image_finishes_the_rest_and_exits_3(
        tmp_path: Path, corner_zones: Path, shared_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    photos = sorted((shared_dir / "eval" / "dev" / "images").glob("*.jpg"))[:3]
    for name, photo in zip(("a.jpg", "c.jpg", "d.jpg"), photos):
        (src / name).write_bytes(photo.read_bytes())
    (src / "b.jpg").write_bytes(photos[0].read_bytes()[:2000])  # truncated: unreadable
    rc = main(["filter", str(src), "-o", str(out), "--zones", str(corner_zones)])
    err = capsys.readouterr().err
    assert rc == 3
    assert "b.jpg" in err and "1 of 4 images could not be read" in err
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "c.jpg", "d.jpg"]
    for name, photo in zip(("a.jpg", "c.jpg", "d.jpg"), photos):
        got, orig = read_image(out / name), read_image(photo)
        assert got.shape == orig.shape  # each image under its own name, not shifted by the skipped one
        h, w = got.shape[:2]
        assert got[: int(h * 0.2) - 2, : int(w * 0.2) - 2].max() < 30  # the corner zone is masked
