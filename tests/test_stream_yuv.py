"""The planar path: detecting cameras whose source and sink both take yuv420p never make a full-size
BGR frame. Fault injection as in `test_stream_engine.py`, on yuv420p frames: every output frame,
decoded to BGR, is masked where the synthetic bright square is; the accounting adds up.
Plus real YuNet on office_v001: the small BGR image built from the planes finds the faces that
FFmpeg's own bgr24 conversion + INTER_AREA finds.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from stream_helpers import (
    SQ,
    ZONE_BOX,
    ChaosFake,
    CollectSink,
    SyntheticSource,
    camera,
    factory_for,
    square_at,
)

from masking.detect.base import FakeDetector, bright_box_script
from masking.stream.engine import CameraJob, CameraResult, MaskingPipeline, PipelineOptions
from masking.stream.frames import MaskedBy, MaskedFrame
from masking.stream.sources import FaultySource

# After 4:2:0 subsampling the square's edge pixels take some of the background's chroma: white
# decodes to >= ~220 there, the background (60-140) stays far below 200.
BRIGHT = 200


class YuvSyntheticSource(SyntheticSource):
    """`SyntheticSource` that also delivers yuv420p planes (BT.601 limited range, as decoders do)."""

    layouts = ("bgr24", "yuv420p")

    def frames(self, stop: threading.Event, layout: str = "bgr24") -> Iterator[tuple[object, int, object]]:
        for img, pts, tb in super().frames(stop, layout):
            yield (cv2.cvtColor(np.asarray(img), cv2.COLOR_BGR2YUV_I420) if layout == "yuv420p" else img), pts, tb


def bgr(frame: MaskedFrame) -> np.ndarray:
    assert frame.layout == "yuv420p" and frame.image.shape == (360, 320)
    return cv2.cvtColor(frame.image, cv2.COLOR_YUV2BGR_I420)


def run(source, sink: CollectSink, fake: FakeDetector, queue_size: int = 8, **cam_opts: object) -> CameraResult:
    job = CameraJob("a", camera(**cam_opts), source, lambda info: sink, sink_layouts=("bgr24", "yuv420p"))
    (res,) = MaskingPipeline([job], PipelineOptions(queue_size=queue_size, stats_interval_s=60,
                                         detector_factory=factory_for(fake))).run()
    return res


def check(sink: CollectSink, res: CameraResult, speed: int, n: int) -> None:
    assert len(sink.frames) == n - res.stats.dropped
    for f in sink.frames:
        img = bgr(f)
        x, y = square_at(f.index, speed)
        assert img[y : y + SQ, x : x + SQ].max() < BRIGHT, f"frame {f.index} ({f.masked_by.value}) shows the square"
        x0, y0, x1, y1 = ZONE_BOX
        assert img[y0:y1, x0:x1].max() <= 2, f"frame {f.index}: privacy zone not masked"
        if f.masked_by is MaskedBy.policy_full:
            assert img.max() <= 2
    s = res.stats
    assert s.frames_in == s.frames_out + s.dropped + s.failed and s.frames_out == len(sink.frames)
    assert s.masked_by_policy == sum(f.masked_by.by_policy for f in sink.frames)


def test_frames_travel_as_planes_and_every_square_is_masked() -> None:
    fake = FakeDetector(bright_box_script(BRIGHT))
    sink = CollectSink()
    res = run(YuvSyntheticSource(30, speed=5), sink, fake)
    assert {f.layout for f in sink.frames} == {"yuv420p"}
    assert {f.masked_by for f in sink.frames} == {MaskedBy.detections}
    check(sink, res, 5, 30)


def test_without_detection_masks_the_square_would_show() -> None:
    """The check above has teeth: the same frames with a detector that finds nothing leak."""
    sink = CollectSink()
    run(YuvSyntheticSource(5), sink, FakeDetector())
    x, y = square_at(0)
    assert bgr(sink.frames[0])[y : y + SQ, x : x + SQ].max() >= BRIGHT


@pytest.mark.parametrize("policy", ["full", "zones"])
def test_detector_raising_fails_closed(policy: str) -> None:
    fake = FakeDetector(bright_box_script(BRIGHT), fail_on=lambda i: i % 4 == 1)
    sink = CollectSink()
    res = run(YuvSyntheticSource(40, speed=3), sink, fake, fail_policy=policy)
    assert any(f.masked_by.by_policy for f in sink.frames) and res.stats.detector_errors > 0
    check(sink, res, 3, 40)


def test_slow_detector_beyond_deadline_fails_closed() -> None:
    fake = FakeDetector(bright_box_script(BRIGHT), delay_s=0.25)
    sink = CollectSink()
    res = run(YuvSyntheticSource(30, speed=3, interval_s=0.01), sink, fake, max_latency_ms=40)
    assert res.stats.masked_by_policy > 0 and res.stats.detector_late > 0
    check(sink, res, 3, 30)


def test_corrupt_planes_are_blacked() -> None:
    fake = FakeDetector(bright_box_script(BRIGHT))
    sink = CollectSink()
    res = run(FaultySource(YuvSyntheticSource(30, speed=2), corrupt_on=lambda i: i % 7 == 3), sink, fake)
    bad = [f for f in sink.frames if f.index % 7 == 3]
    assert res.stats.corrupt == len(bad) == 4 and all(f.masked_by is MaskedBy.policy_full for f in bad)
    check(sink, res, 2, 30)

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mixed_faults_never_leak(seed: int) -> None:
    rng = np.random.default_rng(200 + seed)
    every = int(rng.integers(1, 4))
    bad = set(rng.choice(60, size=6, replace=False).tolist())
    src = FaultySource(YuvSyntheticSource(60, speed=3, live=seed == 0, interval_s=0.003), corrupt_on=lambda i: i in bad)
    sink = CollectSink(delay_s=0.002)
    res = run(src, sink, ChaosFake(seed, BRIGHT), queue_size=4, every=every, fail_policy=["full", "zones"][seed % 2],
              max_latency_ms=60)
    check(sink, res, 3, 60)
    assert res.stats.frames_in == 60 and res.stats.corrupt == len(bad)


def test_bgr_only_sinks_keep_bgr_frames() -> None:
    fake = FakeDetector(bright_box_script())
    sink = CollectSink()
    job = CameraJob("a", camera(), YuvSyntheticSource(5), lambda info: sink)  # sink_layouts: bgr24 only
    MaskingPipeline([job], PipelineOptions(stats_interval_s=60, detector_factory=factory_for(fake))).run()
    assert {f.layout for f in sink.frames} == {"bgr24"} and all(f.image.shape == (240, 320, 3) for f in sink.frames)


# ------------------------------------------------------------------ real YuNet, real clip
def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ix = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter)


@pytest.mark.slow
@pytest.mark.parametrize("clip", ["office_v001.mp4", "entrance_v002.mp4"])
def test_planar_detection_input_is_ffmpegs_bgr(shared_dir: Path, clip: str) -> None:
    """The BGR image a detector gets from the planes is bit for bit FFmpeg's bgr24 (+ INTER_AREA),
    what it got from bgr24-decoded frames, so YuNet finds exactly the same faces. office_v001 is
    untagged (BT.601), entrance_v002 tagged BT.709: without the source's colour tags the
    conversion would differ by up to 11 levels there (and leaked 82 faces in the benchmark's check)."""
    import av

    from masking.config.zones import parse_zones
    from masking.detect.dynamic import (
        DynamicMasks,
        detect_config_from_preset,
        downscale,
        small_size,
        yuv420p_to_bgr,
    )
    from masking.stream.sources import FileSource

    path = shared_dir / "eval" / "videos" / clip
    src = FileSource(path)
    colour = src.open(threading.Event()).colour
    src.close()
    assert colour is not None
    cam = parse_zones({"cameras": [{"camera_id": "c", "zones": []}]}).cameras[0]
    dyn = DynamicMasks(cam.model_copy(update={"detect": detect_config_from_preset("faces")}), threads=1)
    faces = 0
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i % 5 or i > 200:
                continue
            ref, planes = f.to_ndarray(format="bgr24"), f.to_ndarray(format="yuv420p")
            h, w = ref.shape[:2]
            size = small_size(w, h, 640)
            np.testing.assert_array_equal(yuv420p_to_bgr(planes, w, h, size, colour), downscale(ref[None], 640)[0][0])
            want, got = dyn.detect(ref)[0], dyn.detect_yuv420p(planes, colour)[0]
            np.testing.assert_array_equal(got.xyxy, want.xyxy)
            faces += len(want)
    assert faces >= 10


@pytest.mark.slow
@pytest.mark.parametrize("clip", ["office_v001.mp4", "entrance_v002.mp4"])
def test_planar_crops_are_ffmpegs_bgr(shared_dir: Path, clip: str) -> None:
    """The source-resolution pass converts only the crops it examines: each even-aligned crop of
    the planes converts to the very pixels of the whole frame's FFmpeg conversion, so a camera
    whose frames travel as planes finds the same faces, crop by crop, as one decoded to bgr24."""
    import av

    from masking.config.zones import parse_zones
    from masking.detect.dynamic import DynamicMasks, detect_config_from_preset, yuv420p_crop, yuv420p_to_bgr
    from masking.stream.sources import FileSource

    path = shared_dir / "eval" / "videos" / clip
    src = FileSource(path)
    colour = src.open(threading.Event()).colour
    src.close()
    from masking.detect.tiling import NativePass, thumbnail

    yunet = DynamicMasks(parse_zones({"cameras": [{"camera_id": "c", "zones": []}]}).cameras[0].model_copy(
        update={"detect": detect_config_from_preset("faces")}), threads=1).detectors["yunet"]
    by_crop, by_frame = NativePass(yunet, context=64), NativePass(yunet, context=64)
    rng = np.random.default_rng(7)
    faces = 0
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i >= 60:
                break
            planes = f.to_ndarray(format="yuv420p")
            w, h = planes.shape[1], planes.shape[0] * 2 // 3
            full = yuv420p_to_bgr(planes, w, h, (w, h), colour)
            if i % 10 == 0:
                np.testing.assert_array_equal(full, f.to_ndarray(format="bgr24"))
                for _ in range(20):
                    x0, y0 = 2 * int(rng.integers(0, w // 2 - 1)), 2 * int(rng.integers(0, h // 2 - 1))
                    x1 = min(w, x0 + 2 * int(rng.integers(1, 300)))
                    y1 = min(h, y0 + 2 * int(rng.integers(1, 200)))
                    part = yuv420p_to_bgr(yuv420p_crop(planes, w, h, x0, y0, x1, y1), x1 - x0, y1 - y0, (x1 - x0, y1 - y0), colour)
                    np.testing.assert_array_equal(part, full[y0:y1, x0:x1])

            def crop(k: int, x0: int, y0: int, x1: int, y1: int, planes: np.ndarray = planes, w: int = w, h: int = h) -> np.ndarray:
                return yuv420p_to_bgr(yuv420p_crop(planes, w, h, x0, y0, x1, y1), x1 - x0, y1 - y0, (x1 - x0, y1 - y0), colour)

            def sliced(k: int, x0: int, y0: int, x1: int, y1: int, full: np.ndarray = full) -> np.ndarray:
                return full[y0:y1, x0:x1]

            thumbs = [thumbnail(planes[:h])]
            got = by_crop.detect(crop, thumbs, w, h, ["c"])[0]
            want = by_frame.detect(sliced, thumbs, w, h, ["c"])[0]
            np.testing.assert_array_equal(got.xyxy, want.xyxy)
            faces += len(want)
    assert by_crop.cost.pixels < by_crop.cost.frames  # crops, not whole frames, were examined
    assert faces >= 10
