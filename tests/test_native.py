"""`NativePass` (masking/detect/tiling.py): source resolution where the picture changed, per camera."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from masking.config.zones import Camera, DetectConfig, DetectSpec
from masking.detect.base import FakeDetector
from masking.detect.detections import Detections
from masking.detect.dynamic import DynamicMasks
from masking.detect.tiling import NativePass, bgr_thumbnail, inside_any, regions
from masking.errors import DetectorError

W, H = 1280, 720


def squares_script(min_side: int = 1):
    """'Detects' every 250-grey square of at least `min_side` px in whatever picture it is given:
    like a real face model, it only sees objects that are large enough in its input."""

    def script(_: int, img: np.ndarray) -> Detections:
        mask = (img.min(axis=2) >= 250).astype(np.uint8)
        n, _, st, _ = cv2.connectedComponentsWithStats(mask)
        st = st[1:n]
        st = st[(st[:, 2] >= min_side) & (st[:, 3] >= min_side)]
        boxes = np.c_[st[:, 0], st[:, 1], st[:, 0] + st[:, 2], st[:, 1] + st[:, 3]].astype(np.float32)
        return Detections(boxes, np.full(len(boxes), 0.9, np.float32), np.zeros(len(boxes), np.int32), ("face",))

    return script


def frame(squares: list[tuple[int, int, int]], seed: int = 0) -> np.ndarray:
    img = np.random.default_rng(seed).integers(80, 120, size=(H, W, 3), dtype=np.uint8)
    img = np.ascontiguousarray(np.repeat(np.repeat(img[::8, ::8], 8, 0), 8, 1)[:H, :W])  # flat 8x8 blocks
    for x, y, s in squares:
        img[y : y + s, x : x + s] = 255
    return img


def crops_of(img: np.ndarray):
    return lambda k, x0, y0, x1, y1: img[y0:y1, x0:x1]


def run(p: NativePass, img: np.ndarray, stream: str | None = "cam") -> Detections:
    return p.detect(crops_of(img), [bgr_thumbnail(img)], W, H, None if stream is None else [stream])[0]


def test_a_still_picture_is_examined_once() -> None:
    fake = FakeDetector(squares_script())
    p = NativePass(fake, context=64)
    img = frame([(100, 100, 20), (900, 500, 20)])
    first = run(p, img)
    assert len(first) == 2 and fake.calls == 1
    again = run(p, img.copy())
    assert fake.calls == 1  # nothing changed: nothing examined, the same faces
    np.testing.assert_array_equal(np.sort(again.xyxy, axis=0), np.sort(first.xyxy, axis=0))


def test_a_moving_face_is_found_where_it_went_and_dropped_where_it_was() -> None:
    fake = FakeDetector(squares_script())
    p = NativePass(fake, context=64)
    run(p, frame([(100, 100, 20), (900, 500, 20)]))
    d = run(p, frame([(140, 100, 20), (900, 500, 20)]))
    xs = sorted(d.xyxy[:, 0].tolist())
    assert xs == [140, 900]  # the still face kept, the moved one re-found, its old box gone
    assert p.cost.pixels < 2.0  # the second frame examined a small region, not the whole frame


def test_without_a_stream_every_frame_is_examined_whole() -> None:
    fake = FakeDetector(squares_script())
    p = NativePass(fake, context=64)
    img = frame([(100, 100, 20)])
    run(p, img, None)
    run(p, img, None)
    assert fake.calls == 2 and p.cost.pixels == pytest.approx(2.0)


def test_cameras_have_their_own_memory() -> None:
    fake = FakeDetector(squares_script())
    p = NativePass(fake, context=64)
    run(p, frame([(100, 100, 20)]), "a")
    d = run(p, frame([(600, 300, 20)], seed=1), "b")
    assert d.xyxy[:, 0].tolist() == [600]


def test_a_failed_call_forgets_and_the_next_frame_is_examined_whole() -> None:
    fake = FakeDetector(squares_script(), fail_on=lambda i: i == 1)
    p = NativePass(fake, context=64)
    run(p, frame([(100, 100, 20)]))
    with pytest.raises(DetectorError):
        run(p, frame([(140, 100, 20)]))
    before = p.cost.pixels
    d = run(p, frame([(140, 100, 20)]))
    assert p.cost.pixels - before == pytest.approx(1.0) and d.xyxy[:, 0].tolist() == [140]


def test_the_whole_frame_is_examined_every_refresh_frames() -> None:
    fake = FakeDetector(squares_script())
    p = NativePass(fake, context=64, refresh=4)
    img = frame([(100, 100, 20)])
    for _ in range(8):
        run(p, img)
    assert fake.calls == 2  # frames 0 and 4


def test_prepared_ahead_gives_what_one_call_at_a_time_gives() -> None:
    """The detection stage prepares the next call while the detector runs on this one: the same
    faces as one call at a time, whatever the order of the overlaps."""
    frames = [frame([(100 + 7 * i, 100, 20), (900, 500 - 5 * i, 24)], seed=i % 3) for i in range(12)]
    one = NativePass(FakeDetector(squares_script()), context=64, refresh=5)
    want = [run(one, f) for f in frames]
    ahead = NativePass(FakeDetector(squares_script()), context=64, refresh=5)
    jobs = [ahead.prepare(crops_of(f), [bgr_thumbnail(f)], W, H, ["cam"]) for f in frames[:2]]
    got = []
    for f in frames[2:]:
        got.append(ahead.finish(jobs.pop(0))[0])
        jobs.append(ahead.prepare(crops_of(f), [bgr_thumbnail(f)], W, H, ["cam"]))
    got += [ahead.finish(j)[0] for j in jobs]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(np.sort(g.xyxy, axis=0), np.sort(w.xyxy, axis=0))


def test_looks_planned_after_a_failed_one_fail_too() -> None:
    """Frame 2 was planned trusting frame 1's look; frame 1's detector call fails: frame 2 must not
    keep what frame 0 found where frame 1 changed (the face moved there), so it fails too, and
    the frame after is examined whole."""
    fake = FakeDetector(squares_script(), fail_on=lambda i: i == 1)
    p = NativePass(fake, context=64)
    run(p, frame([(100, 100, 20)]))
    moved = frame([(400, 100, 20)])
    first = p.prepare(crops_of(moved), [bgr_thumbnail(moved)], W, H, ["cam"])
    second = p.prepare(crops_of(moved), [bgr_thumbnail(moved)], W, H, ["cam"])  # nothing changed since `first`
    with pytest.raises(DetectorError):
        p.finish(first)
    with pytest.raises(DetectorError, match="planned after a look that failed"):
        p.finish(second)
    before = p.cost.pixels
    d = run(p, moved)
    assert p.cost.pixels - before == pytest.approx(1.0) and d.xyxy[:, 0].tolist() == [400]


def test_an_abandoned_look_is_never_trusted() -> None:
    p = NativePass(FakeDetector(squares_script()), context=64)
    run(p, frame([(100, 100, 20)]))
    moved = frame([(400, 100, 20)])
    p.abandon(p.prepare(crops_of(moved), [bgr_thumbnail(moved)], W, H, ["cam"]))
    d = run(p, moved)  # examined whole: the face is where it went, not where it was
    assert d.xyxy[:, 0].tolist() == [400]


def test_a_whole_look_keeps_nothing_old() -> None:
    """Boxes reaching past the frame's edge never lie inside a crop; a whole look drops them."""

    def script(i: int, img: np.ndarray) -> Detections:
        box = [[-10, 50, 30, 90]] if i == 0 else []
        return Detections(np.array(box, np.float32).reshape(-1, 4), np.full(len(box), 0.9, np.float32),
                          np.zeros(len(box), np.int32), ("face",))

    p = NativePass(FakeDetector(script), context=64, refresh=3)
    img = frame([])
    assert len(run(p, img)) == 1  # frame 0, whole: the edge face
    assert len(run(p, img)) == 1 and len(run(p, img)) == 1  # unchanged: kept
    assert len(run(p, img)) == 0  # frame 3, whole again: the detector no longer finds it


def test_regions_are_aligned_and_inside_the_frame() -> None:
    changed = np.zeros((90, 160), bool)
    changed[0, 0] = changed[89, 159] = changed[40, 80] = True
    r = regions(changed, 2, W, H)
    assert len(r) == 3
    assert (r[:, 0] >= 0).all() and (r[:, 2] <= W).all() and (r[:, 3] <= H).all()
    assert ((r[:, 2] - r[:, 0]) % 32 == 0).all() and ((r[:, 3] - r[:, 1]) % 32 == 0).all()
    assert inside_any(np.array([[640, 320, 650, 330]], np.float32), r).tolist() == [True]


def test_dynamic_masks_find_small_faces_only_at_source_resolution() -> None:
    """A 14 px face is 7 px in the 640 px copy: the (size-limited) detector misses it there."""
    img = frame([(500, 300, 14)])
    spec = DetectSpec(model="yunet", classes=["face"], threshold=0.4, margin=1.0, max_side=640)
    for native, found in ((False, 0), (True, 1)):
        cam = Camera(camera_id="c", detect=DetectConfig(detectors=[spec.model_copy(update={"native": native})]))
        dm = DynamicMasks(cam, {"yunet": FakeDetector(squares_script(min_side=10))})
        assert len(dm.detect(img, ["c"])[0]) == found


def test_stills_of_one_size_are_each_examined_whole(tmp_path) -> None:
    """Photos of a folder are unrelated pictures: the second is not compared with the first. Its
    'face' sits in one 8x8 block that was 248 grey in the first photo (2 levels from the face's
    250: unchanged for the change test), so only a whole look finds it."""
    from stream_helpers import CollectSink

    from masking.stream.engine import CameraJob, MaskingPipeline, PipelineOptions
    from masking.stream.sources import ImageSource

    first, second = frame([]), frame([])
    first[400:408, 640:648] = 248
    second[400:408, 640:648] = 250
    paths = [tmp_path / "a.png", tmp_path / "b.png"]
    for p, img in zip(paths, (first, second)):
        cv2.imwrite(str(p), img)
    spec = DetectSpec(model="yunet", classes=["face"], threshold=0.4, margin=1.0, shape="box", max_side=640, native=True)
    cam = Camera(camera_id="c", detect=DetectConfig(detectors=[spec]))
    sink = CollectSink()
    fake = FakeDetector(squares_script())
    job = CameraJob("photos", cam, ImageSource(paths), lambda info: sink)
    MaskingPipeline([job], PipelineOptions(stats_interval_s=60, detector_factory=lambda c: DynamicMasks(c, {"yunet": fake}))).run()
    assert [f.index for f in sink.frames] == [0, 1]
    out = sink.frames[1].image
    assert out[400:408, 640:648].max() < 250  # the second photo's face is masked
