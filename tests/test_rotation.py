"""Video stored sideways (a rotation display matrix) is decoded, masked and written upright.

Clips are made here: frames of the shared clips turned into the stored raster a phone or a
"corridor mode" camera would write, with the display matrix that turns them back (PyAV's
`set_display_rotation`, every quarter turn, mirrored or not). The faces reference is OpenCV's own
YuNet on the displayed picture.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from stream_helpers import unmasked_faces

from masking.cli import main
from masking.video.layout import PixelLayout
from masking.video.reader import VideoReader

ZONES = """cameras:
  - camera_id: cam
    zones:
      - {id: corner, kind: privacy_mask, polygon: [[0, 0], [0.25, 0], [0.25, 0.25], [0, 0.25]]}
"""
# (degrees counter-clockwise, hflip, vflip) as `set_display_rotation` takes them
TURNS = [(deg, h, v) for deg in (0, 90, 180, 270) for h in (False, True) for v in (False, True)]


def stored(upright: np.ndarray, deg: int, hflip: bool = False, vflip: bool = False) -> np.ndarray:
    """The raster that displays as `upright` under the matrix (turn `deg` CCW, then the flips)."""
    img = np.flipud(upright) if vflip else upright
    img = np.fliplr(img) if hflip else img
    return np.ascontiguousarray(np.rot90(img, -deg // 90))


def write_turned(path: Path, frames: list[np.ndarray], deg: int, hflip: bool = False, vflip: bool = False,
                 pix_fmt: str = "yuv420p", crf: int = 12) -> Path:
    """Encode `frames` (upright) as a clip that stores them turned, with the display matrix set."""
    with av.open(str(path), "w") as c:
        raster = [stored(f, deg, hflip, vflip) for f in frames]
        h, w = raster[0].shape[:2]
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        s.options = {"crf": str(crf), "preset": "ultrafast"}
        s.set_display_rotation(deg, hflip=hflip, vflip=vflip)
        for i, f in enumerate(raster):
            vf = av.VideoFrame.from_ndarray(f, format="bgr24")
            vf.pts = i
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def _pattern(i: int) -> np.ndarray:
    yy, xx = np.mgrid[0:48, 0:64]
    img = np.stack([(xx * 4 + i * 8) % 256, (yy * 5) % 256, (xx * yy) % 256], axis=-1).astype(np.uint8)
    img[:6, :10] = 255  # an asymmetric mark: any wrong turn or flip moves it
    return img


@pytest.mark.parametrize(("deg", "hflip", "vflip"), TURNS)
def test_reader_decodes_every_orientation_upright(tmp_path: Path, deg: int, hflip: bool, vflip: bool) -> None:
    frames = [_pattern(i) for i in range(3)]
    clip = write_turned(tmp_path / "t.mp4", frames, deg, hflip, vflip, pix_fmt="yuv444p", crf=0)
    with VideoReader(clip) as r:
        assert (r.info.width, r.info.height) == (64, 48)
        assert r.orientation.swap == (deg in (90, 270))
        got = [vf.image for vf in r]
    assert len(got) == 3
    for a, b in zip(frames, got, strict=True):
        assert b.shape == a.shape and np.abs(b.astype(int) - a).mean() < 2
    upright = write_turned(tmp_path / "u.mp4", frames, 0, pix_fmt="yuv444p", crf=0)
    with VideoReader(clip) as r, VideoReader(upright) as u:  # yuv420p planes are turned plane by plane
        planes = [vf.image for vf in r.frames(PixelLayout.yuv420p)]
        ref = [vf.image for vf in u.frames(PixelLayout.yuv420p)]
    assert planes[0].shape == (72, 64)
    for a, b in zip(ref, planes, strict=True):
        np.testing.assert_array_equal(a[:48], b[:48])  # luma: lossless, so exactly the upright picture
        chroma = np.abs(a[48:].astype(int) - b[48:]).mean()
        assert chroma < 12, chroma  # 4:2:0 siting moves under a flip (~3-6); a wrong turn is ~50


def test_filter_static_zones_land_on_the_displayed_picture(tmp_path: Path) -> None:
    frames = [np.full((48, 64, 3), 200, np.uint8) for _ in range(4)]
    zones = tmp_path / "zones.yaml"
    zones.write_text(ZONES)
    for deg in (90, 270):
        clip = write_turned(tmp_path / f"r{deg}.mp4", frames, deg)
        out = tmp_path / f"o{deg}.mp4"
        assert main(["-q", "filter", str(clip), "-o", str(out), "--zones", str(zones)]) == 0
        with VideoReader(out) as r:
            assert r.orientation.identity  # written upright: no display matrix
            imgs = [vf.image for vf in r]
        assert imgs[0].shape == (48, 64, 3)
        for img in imgs:
            assert img[1:11, 1:15].max() < 30  # the displayed top-left corner is masked
            assert img[20:, 20:].min() > 170  # the rest is not


@pytest.fixture(scope="module")
def office_upright(office_clip: Path) -> list[np.ndarray]:
    """The first 40 frames of office_v001 (1280x720, people walking towards the camera)."""
    with VideoReader(office_clip) as r:
        return [vf.image for _, vf in zip(range(40), r, strict=False)]


@pytest.mark.slow
@pytest.mark.parametrize(("deg", "hflip"), [(0, False), (90, False), (180, False), (270, False), (90, True)])
def test_filter_detect_masks_faces_of_the_displayed_picture(
    tmp_path: Path, office_upright: list[np.ndarray], deg: int, hflip: bool
) -> None:
    zones = tmp_path / "zones.yaml"
    zones.write_text(ZONES)
    clip = write_turned(tmp_path / "turned.mp4", office_upright, deg, hflip)
    out = tmp_path / "masked.mp4"
    assert main(["-q", "filter", str(clip), "-o", str(out), "--zones", str(zones), "--detect", "faces"]) == 0
    with VideoReader(out) as r:
        assert r.orientation.identity and (r.info.width, r.info.height) == (1280, 720)
        masked = [vf.image for vf in r]
    assert len(masked) == len(office_upright)
    found = 0
    for i, (before, after) in enumerate(zip(office_upright, masked, strict=True)):
        n, left = unmasked_faces(before, after)
        found += n
        assert not left, f"frame {i}: faces at {left} of the displayed picture left unmasked"
        assert after[5:170, 5:310].max() < 40  # the zone, drawn on the displayed picture
    assert found >= 10  # the reference sees faces upright: the check above was not vacuous


def test_other_angles_are_refused_not_guessed() -> None:
    from masking.errors import InputError
    from masking.video.reader import Orientation

    c = int(65536 * 0.7071)
    with pytest.raises(InputError, match="not a quarter turn"):
        Orientation.from_matrix(np.array([c, -c, 0, c, c, 0, 0, 0, 1 << 30], np.int32), "clip.mp4")
