"""Static and dynamic masks: the pixel-centre privacy rule (checked against shapely), styles, batches."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from shapely.geometry import Polygon

from masking.config.zones import BlurStyle, Camera, FillStyle, PixelateStyle, Zone
from masking.errors import ConfigError, InputError
from masking.masks.apply import ZoneMasker
from masking.masks.boxes import MaskBoxes
from masking.masks.raster import rasterize

STYLES = [
    FillStyle(color=(255, 0, 0)),
    PixelateStyle(mode="pixelate", block=8),
    BlurStyle(mode="blur", strength=15),
]


def _zone(polygon: object, kind: str = "privacy_mask", zid: str = "z", style: object | None = None) -> Zone:
    data: dict[str, object] = {"id": zid, "kind": kind, "polygon": polygon}
    if style is not None:
        data["style"] = style
    return Zone.model_validate(data)


def _camera(*zones: Zone, style: object | None = None) -> Camera:
    data: dict[str, object] = {"camera_id": "cam", "zones": list(zones)}
    if style is not None:
        data["style"] = style
    return Camera.model_validate(data)


def _star(cx: float, cy: float, radii: list[float], phase: float) -> list[list[float]]:
    n = len(radii)
    angles = [phase + 2 * math.pi * i / n for i in range(n)]
    return [[cx + r * math.cos(a), cy + r * math.sin(a)] for r, a in zip(radii, angles, strict=True)]


@st.composite
def zones_and_size(draw: st.DrawFn) -> tuple[Zone, int, int]:
    """Random simple polygons (star-shaped, sometimes with a hole, sometimes clipped to the border)."""
    n = draw(st.integers(3, 9))
    cx, cy = draw(st.floats(0.2, 0.8)), draw(st.floats(0.2, 0.8))
    radii = draw(st.lists(st.floats(0.05, 0.6), min_size=n, max_size=n))
    phase = draw(st.floats(0, 2 * math.pi))
    exterior = [[min(1.0, max(0.0, x)), min(1.0, max(0.0, y))] for x, y in _star(cx, cy, radii, phase)]
    polygon: object = exterior
    if draw(st.booleans()):
        k = draw(st.integers(3, 6))
        inner = min(radii) * draw(st.floats(0.2, 0.8))
        hole = _star(cx, cy, [inner] * k, draw(st.floats(0, 2 * math.pi)))
        polygon = {"exterior": exterior, "holes": [hole]}
    width, height = draw(st.integers(1, 97)), draw(st.integers(1, 97))
    try:
        zone = _zone(polygon)
    except (ConfigError, ValueError):
        assume(False)
        raise
    return zone, width, height


def _truth(zone: Zone, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(centre inside, distance from the polygon) per pixel, in pixels, by shapely."""
    ext, holes = zone.polygon.to_pixels(width, height)
    poly = Polygon(ext[0], holes)
    yy, xx = np.mgrid[0:height, 0:width] + 0.5
    inside = shapely.contains_xy(poly, xx, yy)
    dist = shapely.distance(shapely.points(xx.ravel(), yy.ravel()), poly).reshape(height, width)
    return inside, dist


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(zones_and_size())
def test_rasterize_pixel_centre_rule(case: tuple[Zone, int, int]) -> None:
    zone, width, height = case
    mask = rasterize([zone], width, height)
    inside, dist = _truth(zone, width, height)
    assert mask.shape == (height, width) and mask.dtype == bool
    assert not np.any(inside & ~mask), "a pixel whose centre is inside the zone is not masked"
    assert not np.any(mask & (dist > 1.0 + 1e-9)), "a pixel more than 1 px from the zone is masked"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(zones_and_size(), st.sampled_from(STYLES))
def test_apply_changes_only_the_zone_and_batch_equals_frames(case: tuple[Zone, int, int], style: object) -> None:
    zone, width, height = case
    zone = zone.model_copy(update={"style": style})
    masker = ZoneMasker(_camera(zone))
    rng = np.random.default_rng(width * 1000 + height)
    batch = rng.integers(1, 255, (3, height, width, 3), dtype=np.uint8)
    original = batch.copy()
    singles = [masker.apply(f.copy()) for f in batch]
    out = masker.apply(batch)
    assert out is batch
    np.testing.assert_array_equal(batch, np.stack(singles))
    mask = masker.mask(width, height)
    np.testing.assert_array_equal(batch[:, ~mask], original[:, ~mask])
    if isinstance(style, FillStyle):
        assert np.all(batch[:, mask] == style.bgr)


def test_fill_is_exactly_the_rasterised_mask() -> None:
    zone = _zone({"exterior": [[0.1, 0.1], [0.9, 0.2], [0.7, 0.9], [0.2, 0.8]],
                  "holes": [[[0.4, 0.4], [0.6, 0.4], [0.5, 0.6]]]}, style={"mode": "fill", "color": [255, 0, 0]})
    masker = ZoneMasker(_camera(zone))
    frame = np.full((241, 321, 3), 7, np.uint8)
    masker.apply(frame)
    painted = np.all(frame == (0, 0, 255), axis=2)
    np.testing.assert_array_equal(painted, rasterize([zone], 321, 241))
    assert not painted[int(0.47 * 241), int(0.5 * 321)], "the hole is an unmasked island"


@pytest.mark.parametrize("style", STYLES, ids=lambda s: s.mode)
def test_border_touching_zone(style: object) -> None:
    zone = _zone([[0.0, 0.0], [1.0, 0.0], [1.0, 0.5], [0.0, 0.5]], style=style.model_dump())  # type: ignore[attr-defined]
    mask = rasterize([zone], 33, 21)
    assert mask[:10].all() and mask[0, 0] and mask[0, 32]
    assert not mask[12:].any()
    frame = np.random.default_rng(1).integers(0, 256, (21, 33, 3), dtype=np.uint8)
    before = frame.copy()
    ZoneMasker(_camera(zone)).apply(frame)
    np.testing.assert_array_equal(frame[12:], before[12:])


@pytest.mark.parametrize("style", STYLES, ids=lambda s: s.mode)
def test_full_frame_zone(style: object) -> None:
    zone = _zone([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]], style=style.model_dump())  # type: ignore[attr-defined]
    assert rasterize([zone], 17, 9).all()
    yy, xx = np.mgrid[0:90, 0:160]
    frame = np.dstack([(xx * 7 + yy * 13) % 256] * 3).astype(np.uint8)
    ZoneMasker(_camera(zone)).apply(frame)
    if isinstance(style, FillStyle):
        assert np.all(frame == style.bgr)
    elif isinstance(style, PixelateStyle):  # one colour per 8x8 cell of the frame-anchored grid
        cells = frame[:88].reshape(11, 8, 20, 8, 3)
        assert np.all(cells == cells[:, :1, :, :1])
    else:  # a fine texture is gone: neighbouring pixels are close
        assert np.abs(np.diff(frame.astype(int), axis=1)).mean() < 5


def test_tiny_zone_of_a_few_pixels_is_masked() -> None:
    width, height = 640, 480
    # 2.5 x 2 pixels, placed so that few or no pixel centres lie inside.
    x0, y0 = 100.2 / width, 50.1 / height
    zone = _zone([[x0, y0], [x0 + 2.5 / width, y0], [x0 + 2.5 / width, y0 + 2 / height], [x0, y0 + 2 / height]])
    mask = rasterize([zone], width, height)
    ys, xs = np.nonzero(mask)
    assert 2 <= len(ys) <= 16
    assert xs.min() >= 99 and xs.max() <= 103 and ys.min() >= 49 and ys.max() <= 53
    sliver = _zone([[0.5, 0.1], [0.5 + 0.2 / width, 0.1], [0.5 + 0.2 / width, 0.9]])  # thinner than a pixel
    assert rasterize([sliver], width, height).sum() >= 0.7 * 0.8 * height


def test_rasterize_is_cached_and_read_only() -> None:
    zone = _zone([[0.1, 0.1], [0.5, 0.1], [0.3, 0.6]])
    a = rasterize([zone], 64, 48)
    b = rasterize([_zone([[0.1, 0.1], [0.5, 0.1], [0.3, 0.6]])], 64, 48)
    assert a is b
    with pytest.raises(ValueError):
        a[0, 0] = True


def test_overlap_fill_wins_and_watch_zones_only_in_apply_all() -> None:
    blur = _zone([[0.0, 0.0], [0.6, 0.0], [0.6, 1.0], [0.0, 1.0]], zid="b", style={"mode": "blur", "strength": 9})
    green = {"mode": "fill", "color": [0, 255, 0]}
    fill = _zone([[0.4, 0.0], [1.0, 0.0], [1.0, 1.0], [0.4, 1.0]], zid="f", style=green)
    watch = _zone([[0.0, 0.0], [1.0, 0.0], [1.0, 0.2], [0.0, 0.2]], kind="watch", zid="w")
    masker = ZoneMasker(_camera(blur, fill, watch))
    frame = np.random.default_rng(2).integers(0, 256, (50, 100, 3), dtype=np.uint8)
    masker.apply(frame)
    assert np.all(frame[:, 41:] == (0, 255, 0))
    frame2 = np.full((50, 100, 3), 200, np.uint8)
    masker.apply(frame2)
    assert np.all(frame2[:8, :30] == 200), "watch zones are not masked by apply()"
    masker.apply_all_zones(frame2)
    assert np.all(frame2[:8, :] != 200), "apply_all_zones masks watch zones too (fill, black)"


def test_style_override() -> None:
    zone = _zone([[0.0, 0.0], [0.5, 0.0], [0.5, 0.5], [0.0, 0.5]], style={"mode": "blur", "strength": 9})
    masker = ZoneMasker(_camera(zone), style_override=FillStyle(color=(0, 0, 255)))
    frame = np.full((20, 20, 3), 9, np.uint8)
    masker.apply(frame)
    assert np.all(frame[:10, :10] == (255, 0, 0)) and np.all(frame[11:, :] == 9)


def test_apply_on_a_view_writes_through() -> None:
    zone = _zone([[0.2, 0.2], [0.8, 0.2], [0.5, 0.8]])
    big = np.full((60, 90, 3), 50, np.uint8)
    view = big[10:40, 20:70]
    ZoneMasker(_camera(zone)).apply(view)
    assert np.all(big[10:40, 20:70][rasterize([zone], 50, 30)] == 0)
    assert np.all(big[:10] == 50) and np.all(big[:, :20] == 50)


def test_bad_frames_are_rejected() -> None:
    masker = ZoneMasker(_camera(_zone([[0.1, 0.1], [0.5, 0.1], [0.3, 0.6]])))
    with pytest.raises(InputError):
        masker.apply(np.zeros((10, 10), np.uint8))
    with pytest.raises(InputError):
        masker.apply(np.zeros((10, 10, 3), np.float32))


@pytest.mark.parametrize("style", STYLES, ids=lambda s: s.mode)
def test_yuv420p_masks_the_same_region(style: object) -> None:
    polygon = {"exterior": [[0.1, 0.1], [0.9, 0.15], [0.6, 0.9]], "holes": [[[0.45, 0.3], [0.55, 0.3], [0.5, 0.45]]]}
    zone = _zone(polygon, style=style.model_dump())  # type: ignore[attr-defined]
    masker = ZoneMasker(_camera(zone))
    width, height = 96, 64
    bgr = np.random.default_rng(3).integers(16, 235, (height, width, 3), dtype=np.uint8)
    yuv = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
    before = yuv.copy()
    masker.apply_yuv420p(yuv)
    luma_mask = rasterize([zone], width, height)
    y, y0 = yuv[:height], before[:height]
    np.testing.assert_array_equal(y[~luma_mask], y0[~luma_mask])
    if isinstance(style, FillStyle):
        back = cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR_I420)
        assert np.abs(back[luma_mask].astype(int) - style.bgr).max() <= 4
    with pytest.raises(InputError):
        masker.apply_yuv420p(np.zeros((3 * 33 // 2, 65), np.uint8))


def test_apply_boxes_box_and_ellipse() -> None:
    masker = ZoneMasker(_camera(style={"mode": "fill", "color": [0, 0, 0]}))
    frame = np.full((100, 200, 3), 255, np.uint8)
    boxes = MaskBoxes(np.array([[10.5, 10.2, 30.1, 40.0], [100, 20, 160, 80], [190, 90, 260, 130]], np.float32),
                      np.array([False, True, False]))
    masker.apply_boxes(frame, boxes)
    black = np.all(frame == 0, axis=2)
    assert black[10:40, 10:31].all() and not black[:10].any() and not black[41:90, :100].any()
    assert black[50, 130] and black[20, 130] and black[50, 100]  # ellipse centre, top, left
    assert not black[21, 101] and not black[79, 159]  # box corners outside the ellipse
    assert not black[:, 161:189].any()
    assert black[90:, 190:].all()  # clipped at the frame edge
    np.testing.assert_array_equal(masker.apply_boxes(frame.copy(), MaskBoxes.empty()), frame)


@pytest.mark.parametrize("style", STYLES[1:], ids=lambda s: s.mode)
def test_apply_boxes_styles_stay_inside(style: object) -> None:
    masker = ZoneMasker(_camera())
    frame = np.random.default_rng(4).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    before = frame.copy()
    boxes = MaskBoxes(np.array([[20, 30, 70, 90], [100, 10, 150, 60]], np.float32), np.array([True, False]))
    masker.apply_boxes(frame, boxes, style=style)  # type: ignore[arg-type]
    changed = np.any(frame != before, axis=2)
    inside = np.zeros_like(changed)
    inside[30:90, 20:70] = True
    inside[10:60, 100:150] = True
    assert changed[inside].mean() > 0.5 and not changed[~inside].any()


def test_apply_full() -> None:
    batch = np.full((2, 8, 8, 3), 99, np.uint8)
    assert ZoneMasker.apply_full(batch) is batch and not batch.any()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-20, 150), st.floats(-20, 110), st.floats(0.2, 60), st.floats(0.2, 60), st.booleans()),
             min_size=1, max_size=6),
    st.sampled_from(STYLES),
)
def test_apply_boxes_covers_every_box_and_nothing_beyond(
    specs: list[tuple[float, float, float, float, bool]], style: object
) -> None:
    width, height = 131, 97
    xyxy = np.array([[x, y, x + w, y + h] for x, y, w, h, _ in specs], np.float32)
    ellipse = np.array([e for *_, e in specs])
    frame = np.random.default_rng(5).integers(1, 255, (height, width, 3), dtype=np.uint8)
    before = frame.copy()
    big = np.zeros((height + 4, width + 6, 3), np.uint8)
    view = big[2 : 2 + height, 3 : 3 + width]  # a non-contiguous view must be written through
    view[...] = frame
    boxes = MaskBoxes(xyxy, ellipse)
    ZoneMasker(_camera()).apply_boxes(frame, boxes, style=style)  # type: ignore[arg-type]
    ZoneMasker(_camera()).apply_boxes(view, boxes, style=style)  # type: ignore[arg-type]
    np.testing.assert_array_equal(view, frame)
    yy, xx = np.mgrid[0:height, 0:width] + 0.5
    must = np.zeros((height, width), bool)
    may = np.zeros((height, width), bool)
    for (x1, y1, x2, y2), ell in zip(xyxy.astype(np.float64), ellipse, strict=True):
        touched = (xx + 0.5 > x1) & (xx - 0.5 < x2) & (yy + 0.5 > y1) & (yy - 0.5 < y2)
        may |= touched
        if ell:
            cx, cy, a, b = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
            must |= ((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2 < 1.0
        else:
            must |= (xx > x1) & (xx < x2) & (yy > y1) & (yy < y2)
    changed = np.any(frame != before, axis=2)
    assert not changed[~may].any(), "a pixel outside every box changed"
    if isinstance(style, FillStyle):
        painted = np.all(frame == style.bgr, axis=2)
        assert painted[must].all(), "a pixel whose centre is inside a box/ellipse is not masked"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-20, 150), st.floats(-20, 110), st.floats(0.2, 60), st.floats(0.2, 60), st.booleans()),
             min_size=1, max_size=6),
    st.sampled_from(STYLES),
)
def test_apply_boxes_yuv420p_covers_every_box_and_nothing_beyond(
    specs: list[tuple[float, float, float, float, bool]], style: object
) -> None:
    """On yuv420p planes: luma changes exactly where `apply_boxes` may change a BGR frame, chroma only
    on samples one of whose 2x2 luma pixels may change; with a fill, every pixel whose centre is
    inside a box/ellipse decodes to the fill colour (chroma rounded outwards: never the original's)."""
    width, height = 132, 98
    xyxy = np.array([[x, y, x + w, y + h] for x, y, w, h, _ in specs], np.float32)
    ellipse = np.array([e for *_, e in specs])
    bgr = np.random.default_rng(6).integers(1, 255, (height, width, 3), dtype=np.uint8)
    buf = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
    before = buf.copy()
    boxes = MaskBoxes(xyxy, ellipse)
    assert ZoneMasker(_camera()).apply_boxes_yuv420p(buf, boxes, style=style) is buf  # type: ignore[arg-type]
    ref = bgr.copy()
    ZoneMasker(_camera()).apply_boxes(ref, boxes, style=FillStyle(color=(1, 2, 3)))  # where BGR masking writes
    written = np.all(ref == (3, 2, 1), axis=2) | np.any(ref != bgr, axis=2)
    chroma_may = written.reshape(height // 2, 2, width // 2, 2).any(axis=(1, 3))
    y, y0 = buf[:height], before[:height]
    assert not (y != y0)[~written].any(), "a luma pixel outside every box changed"
    n_c = (height // 2) * (width // 2)
    for k in range(2):
        c = buf[height:].reshape(-1)[k * n_c : (k + 1) * n_c].reshape(height // 2, width // 2)
        c0 = before[height:].reshape(-1)[k * n_c : (k + 1) * n_c].reshape(height // 2, width // 2)
        assert not (c != c0)[~chroma_may].any(), "a chroma sample outside every box changed"
    if isinstance(style, FillStyle):
        yy, xx = np.mgrid[0:height, 0:width] + 0.5
        must = np.zeros((height, width), bool)
        for (x1, y1, x2, y2), ell in zip(xyxy.astype(np.float64), ellipse, strict=True):
            if ell:
                cx, cy, a, b = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
                must |= ((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2 < 1.0
            else:
                must |= (xx > x1) & (xx < x2) & (yy > y1) & (yy < y2)
        back = cv2.cvtColor(buf, cv2.COLOR_YUV2BGR_I420).astype(int)
        assert np.abs(back[must] - style.bgr).max(initial=0) <= 4, "a pixel inside a box does not decode to the fill"


def test_apply_boxes_yuv420p_rejects_bad_buffers() -> None:
    masker = ZoneMasker(_camera())
    boxes = MaskBoxes(np.array([[1, 1, 5, 5]], np.float32), np.array([False]))
    with pytest.raises(InputError):
        masker.apply_boxes_yuv420p(np.zeros((10, 10, 3), np.uint8), boxes)
    with pytest.raises(InputError):
        masker.apply_boxes_yuv420p(np.zeros((3 * 33 // 2, 65), np.uint8), boxes)
    empty = np.full((15, 10), 7, np.uint8)
    np.testing.assert_array_equal(masker.apply_boxes_yuv420p(empty, MaskBoxes.empty()), np.full((15, 10), 7))
