"""`masking filter` on the streaming engine: real YuNet on a real clip, segments, raw pipes, JPEGs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from stream_helpers import H, W, make_frame, unmasked_faces

from masking.cli import main
from masking.video.reader import VideoReader

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_faces_every_frame_no_face_left_unmasked(office_clip: Path, corner_zones: Path, tmp_path: Path) -> None:
    out = tmp_path / "faces.mp4"
    assert main(["-q", "filter", str(office_clip), "-o", str(out), "--zones", str(corner_zones), "--detect", "faces"]) == 0
    found = 0
    with VideoReader(office_clip) as a, VideoReader(out) as b:
        for fa, fb in zip(a, b):
            n, left = unmasked_faces(fa.image, fb.image)
            found += n
            assert not left, f"frame {fa.index}: faces at {left} left unmasked"
            assert float(fa.pts * fa.time_base) == pytest.approx(float(fb.pts * fb.time_base), abs=1e-3)
    assert found > 30  # the clip has faces; the check above was not vacuous


def test_raw_stdin_to_raw_stdout(corner_zones: Path) -> None:
    frames = [make_frame(i) for i in range(8)]
    cmd = [sys.executable, "-m", "masking", "-q", "filter", "-", "-o", "-", "--zones", str(corner_zones),
           "--input-format", "rawvideo", "--size", f"{W}x{H}", "--pix-fmt", "bgr24"]
    r = subprocess.run(cmd, input=b"".join(f.tobytes() for f in frames), capture_output=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    out = np.frombuffer(r.stdout, np.uint8).reshape(-1, H, W, 3)
    assert len(out) == 8
    assert out[:, : H // 5, : W // 5].max() == 0  # zone masked
    assert np.array_equal(out[:, H // 2 :, W // 2 :], np.stack(frames)[:, H // 2 :, W // 2 :])  # rest untouched
    assert b"8 frames in, 8 out" in r.stderr


def test_segments_and_jpeg_dir_from_the_cli(shared_dir: Path, corner_zones: Path, tmp_path: Path) -> None:
    clip = shared_dir / "eval" / "videos" / "outdoor_v003.mp4"
    assert main(["-q", "filter", str(clip), "-o", str(tmp_path / "seg.mp4"), "--zones", str(corner_zones), "--segment-seconds", "8"]) == 0
    assert sorted(p.name for p in tmp_path.glob("seg*")) == ["seg_00000.mp4", "seg_00001.mp4", "seg_00002.mp4"]
    jdir = tmp_path / "jpegs"
    assert main(["-q", "filter", str(clip), "-o", str(jdir), "--zones", str(corner_zones), "--output-format", "jpeg-dir"]) == 0
    assert len(list(jdir.glob("frame_*.jpg"))) == 50


def test_missing_model_masks_everything_and_exits_2(corner_zones: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    shared_dir: Path) -> None:
    monkeypatch.setenv("MASKING_MODEL_DIR", str(tmp_path / "empty"))
    clip = shared_dir / "eval" / "videos" / "outdoor_v003.mp4"
    out = tmp_path / "o.mp4"
    assert main(["-q", "filter", str(clip), "-o", str(out), "--zones", str(corner_zones), "--detect", "faces"]) == 2
    with VideoReader(out) as r:
        imgs = [vf.image for vf in r]
    assert len(imgs) == 50 and max(int(i.max()) for i in imgs) <= 16  # every frame blacked (codec noise aside)


def test_bad_stream_options_exit_2(corner_zones: Path, tmp_path: Path, office_clip: Path) -> None:
    o = str(tmp_path / "o.mp4")
    assert main(["filter", str(office_clip), "-o", o, "--zones", str(corner_zones), "--fail-policy", "zones"]) == 2  # no detector
    assert main(["filter", "-", "-o", o, "--zones", str(corner_zones)]) == 2  # stdin needs rawvideo
    assert main(["filter", "-", "-o", o, "--zones", str(corner_zones), "--input-format", "rawvideo", "--size", "12",
                 "--pix-fmt", "bgr24"]) == 2
    assert main(["filter", str(office_clip), "-o", str(tmp_path / "j"), "--zones", str(corner_zones),
                 "--output-format", "jpeg-dir", "--segment-seconds", "3"]) == 2
    assert not (tmp_path / "o.mp4").exists()
