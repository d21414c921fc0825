"""Streaming sources and sinks on real files: segments, JPEG folders, raw frames, watched folders."""

from __future__ import annotations

import io
import shutil
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from stream_helpers import SQ, ZONE_BOX, H, SyntheticSource, W, camera, factory_for, make_frame, square_at

from masking.config.zones import parse_zones
from masking.detect.base import FakeDetector, bright_box_script
from masking.stream.engine import CameraJob, MaskingPipeline, PipelineOptions
from masking.stream.frames import MaskedBy
from masking.stream.sinks import H264Sink, JpegDirSink, RawSink, segment_path
from masking.stream.sources import FileSource, FolderSource, RawSource
from masking.video.images import read_image
from masking.video.reader import VideoReader


def _static_camera():
    return parse_zones({"cameras": [{"camera_id": "c", "zones": [
        {"id": "z", "kind": "privacy_mask", "polygon": [[0, 0], [0.25, 0], [0.25, 0.25], [0, 0.25]]}]}]}).cameras[0]


def _decode(path: Path) -> list[tuple[float, np.ndarray]]:
    with VideoReader(path) as r:
        return [(float(vf.pts * vf.time_base), vf.image) for vf in r]


@pytest.fixture(scope="module")
def small_clip(shared_dir: Path) -> Path:
    """320x240, 3 fps, 50 frames (16.7 s)."""
    return shared_dir / "eval" / "videos" / "outdoor_v003.mp4"


def test_segmented_h264_complete_files_continuous_pts(small_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "cam.mp4"
    job = CameraJob("c", _static_camera(), FileSource(small_clip),
                    lambda info: H264Sink(out, info, segment_seconds=5.0), sink_layouts=("bgr24", "yuv420p"))
    (res,) = MaskingPipeline([job]).run()
    assert res.error is None
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [segment_path(out, k).name for k in range(4)], names  # no partial/temp files left
    assert res.outputs == [str(segment_path(out, k)) for k in range(4)]
    src = _decode(small_clip)
    got = []
    for k in range(4):
        seg = _decode(segment_path(out, k))
        assert seg, f"segment {k} is empty or unplayable"
        assert all(k * 5.0 - 1e-6 <= t < (k + 1) * 5.0 for t, _ in seg)
        got += seg
    assert len(got) == len(src) == res.stats.frames_in == 50
    assert np.allclose([t for t, _ in got], [t for t, _ in src], atol=1e-3)  # source PTS, continuous
    for _, img in got:
        assert img[2:55, 2:75].max() < 40  # zone masked (0.25 of 320x240, minus codec bleed at the edge)


def test_single_file_keeps_source_pts(small_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.mp4"
    job = CameraJob("c", _static_camera(), FileSource(small_clip), lambda info: H264Sink(out, info))
    (res,) = MaskingPipeline([job]).run()
    assert [t for t, _ in _decode(out)] == pytest.approx([t for t, _ in _decode(small_clip)], abs=1e-3)
    assert res.stats.frames_out == 50 and res.stats.masked_by["static_only"] == 50


def test_jpeg_dir_sink(tmp_path: Path) -> None:
    out = tmp_path / "jpegs"
    fake = FakeDetector(bright_box_script())
    job = CameraJob("c", camera(), SyntheticSource(12, speed=4), lambda info: JpegDirSink(out))
    (res,) = MaskingPipeline([job], PipelineOptions(detector_factory=factory_for(fake))).run()
    files = sorted(out.iterdir())
    assert [p.name for p in files] == [f"frame_{i:08d}.jpg" for i in range(12)]
    for i, p in enumerate(files):
        img = read_image(p)
        x, y = square_at(i, 4)
        assert img.shape == (H, W, 3)
        assert img[y + 2 : y + SQ - 2, x + 2 : x + SQ - 2].max() < 60
        assert img[2 : ZONE_BOX[3] - 2, 2 : ZONE_BOX[2] - 2].max() < 60
    assert res.stats.frames_out == 12


def test_raw_in_raw_out_masks_and_counts() -> None:
    frames = [make_frame(i, speed=3) for i in range(10)]
    inp = io.BytesIO(b"".join(f.tobytes() for f in frames) + b"\x01" * 100)  # plus a truncated tail
    out = io.BytesIO()
    fake = FakeDetector(bright_box_script())
    job = CameraJob("raw", camera(), RawSource(inp, W, H, Fraction(25)), lambda info: RawSink(out))
    (res,) = MaskingPipeline([job], PipelineOptions(detector_factory=factory_for(fake))).run()
    data = np.frombuffer(out.getvalue(), np.uint8).reshape(-1, H, W, 3)
    assert len(data) == 10 == res.stats.frames_in == res.stats.frames_out
    for i, img in enumerate(data):
        x, y = square_at(i, 3)
        assert img[y : y + SQ, x : x + SQ].max() == 0
        assert img[: ZONE_BOX[3], : ZONE_BOX[2]].max() == 0
    assert res.stats.masked_by[MaskedBy.detections.value] == 10


def test_watched_folder_of_segments(small_clip: Path, tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    for k in range(2):
        shutil.copy(small_clip, inbox / f"seg_{k}.mp4")
    (inbox / ".seg_2.mp4.part").write_bytes(b"still being written")
    (inbox / "seg_1b.mp4").write_bytes(b"not a video")  # broken segment: logged and skipped
    out = tmp_path / "o.mp4"
    src = FolderSource(inbox, poll_s=0.1, idle_timeout_s=0.5)
    job = CameraJob("f", _static_camera(), src, lambda info: H264Sink(out, info), sink_layouts=("bgr24", "yuv420p"))
    (res,) = MaskingPipeline([job]).run()
    assert res.error is None and res.stats.frames_in == res.stats.frames_out == 100
    assert src.segments_failed == 1
    ts = [t for t, _ in _decode(out)]
    assert len(ts) == 100 and all(b > a for a, b in zip(ts, ts[1:]))  # second segment shifted after the first


@pytest.mark.parametrize("segment_seconds", [None, 0.1])
def test_stop_with_discard_keeps_only_complete_files(tmp_path: Path, segment_seconds: float | None) -> None:
    out = tmp_path / "o.mp4"
    src = SyntheticSource(400, interval_s=0.01)  # 25 fps of PTS, 4 s of video, fed slowly
    job = CameraJob("c", _static_camera(), src, lambda info: H264Sink(out, info, segment_seconds=segment_seconds))
    pipeline = MaskingPipeline([job])
    threading.Timer(0.8, pipeline.stop, kwargs={"discard": True}).start()
    (res,) = pipeline.run()
    assert res.discarded and 0 < res.stats.frames_out < 400
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert kept == sorted(Path(p).name for p in res.outputs)  # no temporary or lock file, no open output
    if segment_seconds is None:
        assert kept == []
    else:
        assert kept and all(_decode(tmp_path / n) for n in kept)
        assert sum(len(_decode(tmp_path / n)) for n in kept) < res.stats.frames_out  # the open segment went
