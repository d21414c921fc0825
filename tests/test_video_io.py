"""Video and image I/O: stream info, PTS kept, atomic outputs, clear errors on bad inputs."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from masking.errors import InputError, OutputError
from masking.video.images import list_images, read_image, write_image
from masking.video.reader import StreamInfo, VideoReader
from masking.video.writer import VideoWriter


def _pattern(i: int, width: int = 64, height: int = 48) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = (xx * 4 + i * 8) % 256
    img[..., 1] = (yy * 5) % 256
    img[..., 2] = 128
    return img


def test_reader_info_and_frames(office_clip: Path) -> None:
    with VideoReader(office_clip) as reader:
        info = reader.info
        assert (info.width, info.height, info.codec, info.frames) == (1280, 720, "h264", 182)
        assert abs(float(info.fps) - 29.53) < 0.01 and isinstance(info.time_base, Fraction)
        first = [f for _, f in zip(range(3), reader, strict=False)]
    assert first[0].image.shape == (720, 1280, 3) and first[0].image.dtype == np.uint8
    assert [f.index for f in first] == [0, 1, 2]
    assert first[0].pts is not None and first[1].pts is not None and first[1].pts > first[0].pts


def test_writer_keeps_pts_rate_and_count(tmp_path: Path) -> None:
    info = StreamInfo(64, 48, Fraction(30000, 1001), Fraction(1, 90000), None, "h264")
    pts = [0, 3003, 6006, 12012, 15015, 18018, 24024, 27027]  # gaps: variable frame timing kept
    out = tmp_path / "out.mp4"
    with VideoWriter(out, info) as writer:
        for i, p in enumerate(pts):
            writer.write(_pattern(i), p)
    assert writer.frames_written == len(pts)
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # no temporary or lock file left
    with VideoReader(out) as reader:
        frames = list(reader)
        assert reader.info.time_base == Fraction(1, 90000)
    assert [f.pts for f in frames] == pts
    assert np.abs(frames[3].image.astype(int) - _pattern(3)).mean() < 6


def _x264_settings(path: Path) -> dict[str, str]:
    """The encoder settings libx264 writes into the stream (its SEI 'options:' line)."""
    data = path.read_bytes()
    start = data.index(b"options: ") + len(b"options: ")
    line = data[start : data.index(b"\x00", start)].decode("ascii", "replace")
    return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)


@pytest.mark.parametrize(("preset", "expect"), [
    # ingest (the default): superfast's motion search and subpel, veryfast's rate control and partitions
    (None, {"subme": "1", "me": "dia", "mbtree": "1", "rc_lookahead": "10", "analyse": "0x3:0x113", "crf": "20.0"}),
    ("veryfast", {"subme": "2", "me": "hex", "mbtree": "1", "rc_lookahead": "10", "analyse": "0x3:0x113"}),
    ("superfast", {"subme": "1", "mbtree": "0", "analyse": "0x3:0x3"}),
])
def test_writer_encoder_presets(tmp_path: Path, preset: str | None, expect: dict[str, str]) -> None:
    info = StreamInfo(64, 48, Fraction(25), Fraction(1, 25), None, "h264")
    out = tmp_path / "p.mp4"
    with VideoWriter(out, info, **({} if preset is None else {"preset": preset})) as writer:
        for i in range(12):
            writer.write(_pattern(i), i)
    settings = _x264_settings(out)
    assert {k: settings.get(k) for k in expect} == expect


def test_unknown_encoder_preset_is_refused_everywhere(tmp_path: Path) -> None:
    from masking.errors import ConfigError
    from masking.stream.config import load_serve_config

    info = StreamInfo(64, 48, Fraction(25), Fraction(1, 25), None, "h264")
    with pytest.raises(OutputError, match=r"encoder preset 'fastest' is not one of: ingest, ultrafast"):
        VideoWriter(tmp_path / "p.mp4", info, preset="fastest")
    assert not list(tmp_path.iterdir())  # refused before anything was created
    cfg = tmp_path / "serve.yaml"
    cfg.write_text("cameras:\n  - {name: a, source: in.mp4, zones: z.yaml, sink: {path: a.mp4, preset: fastest}}\n")
    with pytest.raises(ConfigError) as err:
        load_serve_config(cfg)
    assert "preset" in str(err.value) and "unknown encoder preset 'fastest'; choose from: ingest" in str(err.value)


def test_writer_odd_size(tmp_path: Path) -> None:
    info = StreamInfo(33, 21, Fraction(10), Fraction(1, 10), None, "h264")
    out = tmp_path / "odd.mkv"
    with VideoWriter(out, info) as writer:
        for i in range(5):
            writer.write(_pattern(i, 33, 21), i)
    with VideoReader(out) as reader:
        frames = list(reader)
    assert len(frames) == 5 and frames[0].image.shape == (21, 33, 3)


def test_writer_abort_and_exception_leave_nothing(tmp_path: Path) -> None:
    info = StreamInfo(64, 48, Fraction(25), Fraction(1, 25), None, "h264")
    out = tmp_path / "a.mp4"
    writer = VideoWriter(out, info)
    writer.write(_pattern(0), 0)
    assert not out.exists()
    writer.abort()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError):
        with VideoWriter(out, info) as w:
            w.write(_pattern(0), 0)
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(OutputError, match="encode frame 0"):
        with VideoWriter(out, info) as w:
            w.write(np.zeros((10, 10, 3), np.uint8), 0)  # wrong size
    assert list(tmp_path.iterdir()) == []


def test_reader_errors_name_file_and_frame(tmp_path: Path, office_clip: Path) -> None:
    with pytest.raises(InputError, match="no such video file"):
        VideoReader(tmp_path / "missing.mp4")
    data = office_clip.read_bytes()
    garbled = tmp_path / "garbled.mp4"
    garbled.write_bytes(b"\x00" * 4096 + data[4096:200_000])
    with pytest.raises(InputError, match=r"garbled\.mp4: cannot open video"):
        VideoReader(garbled)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(InputError, match="notes.mp4"):
        VideoReader(text)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 4])
    with VideoReader(truncated) as reader:
        with pytest.raises(InputError, match=r"truncated\.mp4: (truncated|cannot decode frame \d+)"):
            for _ in reader:
                pass


def test_images_roundtrip_and_listing(tmp_path: Path) -> None:
    img = _pattern(1)
    write_image(tmp_path / "b.png", img)
    write_image(tmp_path / "a.jpg", img)
    (tmp_path / "notes.txt").write_text("x")
    np.testing.assert_array_equal(read_image(tmp_path / "b.png"), img)
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.png"]
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8garbage")
    with pytest.raises(InputError, match="bad.jpg"):
        read_image(bad)
    with pytest.raises(InputError, match="missing.png"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(OutputError, match="suffix"):
        write_image(tmp_path / "x.gif", img)
    with pytest.raises(InputError, match="not a folder"):
        list_images(tmp_path / "b.png")


def test_reader_accepts_urls_as_sources(office_clip: Path) -> None:
    with VideoReader(f"file://{office_clip}") as reader:
        assert reader.info.width == 1280
    with pytest.raises(InputError, match="rtsp://127.0.0.1:9/none"):
        VideoReader("rtsp://127.0.0.1:9/none", options={"rtsp_transport": "tcp", "timeout": "500000"})
