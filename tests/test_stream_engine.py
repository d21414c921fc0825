"""Streaming engine under injected faults: every output frame is masked, and the counts add up.

Synthetic 320x240 frames carry a bright square that `FakeDetector(bright_box_script())` finds;
the real engine, real `DynamicMasks` and real `ZoneMasker` run. For EVERY output frame the square
and the privacy zone must be masked, and `in == out + dropped + failed` must hold.
"""

from __future__ import annotations

import numpy as np
import pytest
from stream_helpers import (
    WATCH_BOX,
    ZONE_BOX,
    ChaosFake,
    CollectSink,
    SyntheticSource,
    camera,
    factory_for,
    region,
    square_masked,
)

from masking.detect.base import FakeDetector, bright_box_script
from masking.errors import MaskingError, ModelNotInstalledError
from masking.stream.engine import CameraJob, CameraResult, MaskingPipeline, PipelineOptions
from masking.stream.frames import MaskedBy, MaskedFrame, SourceFrame
from masking.stream.sinks import RawSink
from masking.stream.sources import FaultySource


def run(jobs_sinks, factory=None, queue_size: int = 8, workers: int | None = None) -> list[CameraResult]:
    jobs = [j for j, _ in jobs_sinks]
    engine = MaskingPipeline(jobs, PipelineOptions(queue_size=queue_size, stats_interval_s=60, detector_factory=factory,
                                                   detector_workers=workers))
    return engine.run()


def job(name, cam, source, sink, **kw) -> tuple[CameraJob, CollectSink]:
    return CameraJob(name, cam, source, lambda info: sink, **kw), sink


def assert_all_masked(sink: CollectSink, speed: int = 0, camera_no: int = 0) -> None:
    assert sink.frames, "no output"
    for f in sink.frames:
        assert square_masked(f, speed, camera_no), f"frame {f.index} ({f.masked_by.value}) shows the square"
        assert region(f, ZONE_BOX).max() == 0, f"frame {f.index}: privacy zone not masked"


def assert_accounting(res: CameraResult, sink: CollectSink) -> None:
    s = res.stats
    assert s.frames_in == s.frames_out + s.dropped + s.failed
    assert s.frames_out == len(sink.frames)
    assert s.masked_by_policy == sum(f.masked_by.by_policy for f in sink.frames)
    idx = [f.index for f in sink.frames]
    assert idx == sorted(idx) and len(set(idx)) == len(idx)


def test_static_only_passes_pts_and_masks_zones() -> None:
    sink = CollectSink()
    (res,) = run([job("a", camera(detect=False), SyntheticSource(20), sink)])
    assert res.error is None and sink.closed
    assert [f.masked_by for f in sink.frames] == [MaskedBy.static_only] * 20
    assert [f.pts for f in sink.frames] == [1000 + i * 3600 for i in range(20)]
    assert all(region(f, ZONE_BOX).max() == 0 for f in sink.frames)
    assert all(region(f, WATCH_BOX).max() > 0 for f in sink.frames)  # watch zones are not masked normally
    assert_accounting(res, sink)


def test_detection_every_frame() -> None:
    fake = FakeDetector(bright_box_script())
    sink = CollectSink()
    (res,) = run([job("a", camera(), SyntheticSource(30, speed=5), sink)], factory_for(fake))
    assert_all_masked(sink, speed=5)
    assert {f.masked_by for f in sink.frames} == {MaskedBy.detections}
    assert res.stats.detect_p50_ms is not None
    assert_accounting(res, sink)


def test_detect_every_k_holds_and_grows_over_a_moving_square() -> None:
    speed = 6  # px/frame; hold_motion 0.02 x 320 = 6.4 px/frame of growth; margin 1.0: no slack
    fake = FakeDetector(bright_box_script())
    sink = CollectSink()
    (res,) = run([job("a", camera(every=3), SyntheticSource(30, speed=speed), sink)], factory_for(fake))
    assert_all_masked(sink, speed=speed)
    by = [f.masked_by for f in sink.frames]
    assert by.count(MaskedBy.detections) == 10 and by.count(MaskedBy.held) == 20
    assert fake._seen == 10  # only key frames reached the detector
    assert_accounting(res, sink)


def test_without_growth_the_square_would_slip_through() -> None:
    """Shows the test above has teeth: with no growth and no tracker, the frames after the last
    detection (where no look-ahead is possible) miss the moving square."""
    fake = FakeDetector(bright_box_script())
    sink = CollectSink()
    run([job("a", camera(every=3, track_frames=0), SyntheticSource(30, speed=6), sink, hold_motion=0.0)], factory_for(fake))
    assert any(not square_masked(f, speed=6) for f in sink.frames)


def test_the_tracker_follows_the_square_without_growth() -> None:
    """The same run with the tracker (the default): its velocity carries the mask after the last detection."""
    fake = FakeDetector(bright_box_script())
    sink = CollectSink()
    run([job("a", camera(every=3), SyntheticSource(30, speed=6), sink, hold_motion=0.0)], factory_for(fake))
    assert_all_masked(sink, speed=6)


def test_look_ahead_masks_a_square_appearing_between_detections() -> None:
    """The square appears at frame 4; key frames are 0, 3, 6: frames 4 and 5 are covered only by the
    next key frame's detection (look-ahead), not by holding frame 3's (empty) result."""
    fake = FakeDetector(bright_box_script())
    sink = CollectSink()
    (res,) = run([job("a", camera(every=3), SyntheticSource(12, speed=4, appear_at=4), sink)], factory_for(fake))
    for f in sink.frames:
        assert square_masked(f, speed=4, appear_at=4), f"frame {f.index} shows the square"
    assert_accounting(res, sink)


@pytest.mark.parametrize("policy", ["full", "zones"])
def test_detector_raising_fails_closed(policy: str) -> None:
    fake = FakeDetector(bright_box_script(), fail_on=lambda i: i % 4 == 1)
    sink = CollectSink()
    (res,) = run([job("a", camera(fail_policy=policy), SyntheticSource(40, speed=3), sink)], factory_for(fake))
    assert_all_masked(sink, speed=3)
    failed = [f for f in sink.frames if f.masked_by.by_policy]
    assert failed and res.stats.detector_errors >= len(failed) > 0
    for f in failed:
        if f.masked_by is MaskedBy.policy_full:
            assert f.image.max() == 0
        else:  # `zones` (escalated to `full` when no recent good detection exists)
            assert policy == "zones" and f.masked_by is MaskedBy.policy_zones and region(f, WATCH_BOX).max() == 0
    if policy == "zones":
        assert any(f.masked_by is MaskedBy.policy_zones for f in failed)
    assert_accounting(res, sink)


def test_slow_detector_beyond_deadline_fails_closed() -> None:
    fake = FakeDetector(bright_box_script(), delay_s=0.25)
    sink = CollectSink()
    cam = camera(max_latency_ms=40)
    (res,) = run([job("a", cam, SyntheticSource(30, speed=3, interval_s=0.01), sink)], factory_for(fake))
    assert_all_masked(sink, speed=3)
    assert res.stats.masked_by_policy > 0 and res.stats.detector_late > 0
    assert_accounting(res, sink)


def test_missing_model_masks_everything_by_policy() -> None:
    def factory(cam):
        raise ModelNotInstalledError("model 'yunet' is not installed; run: masking models pull yunet")

    sink = CollectSink()
    (res,) = run([job("a", camera(), SyntheticSource(15), sink)], factory)
    assert len(sink.frames) == 15
    assert all(f.masked_by is MaskedBy.policy_full and f.image.max() == 0 for f in sink.frames)
    assert res.stats.masked_by_policy == 15
    assert_accounting(res, sink)


def test_corrupt_frames_are_counted_and_blacked() -> None:
    fake = FakeDetector(bright_box_script())
    sink = CollectSink()
    src = FaultySource(SyntheticSource(30, speed=2), corrupt_on=lambda i: i % 7 == 3)
    (res,) = run([job("a", camera(), src, sink)], factory_for(fake))
    bad = [f for f in sink.frames if f.index % 7 == 3]
    assert len(sink.frames) == 30 and res.stats.corrupt == len(bad) == 4
    assert all(f.masked_by is MaskedBy.policy_full and f.image.max() == 0 and f.image.shape == (240, 320, 3) for f in bad)
    assert_all_masked(sink, speed=2)
    assert_accounting(res, sink)


def test_live_overload_drops_oldest_and_counts_them() -> None:
    fake = FakeDetector(bright_box_script())
    sink = CollectSink(delay_s=0.01)
    (res,) = run([job("a", camera(), SyntheticSource(150, speed=2, live=True), sink)], factory_for(fake), queue_size=2)
    assert res.stats.dropped > 0
    assert res.stats.frames_in == 150
    assert_all_masked(sink, speed=2)
    assert_accounting(res, sink)


def test_file_sources_never_drop() -> None:
    sink = CollectSink(delay_s=0.002)
    (res,) = run([job("a", camera(detect=False), SyntheticSource(60), sink)], queue_size=2)
    assert res.stats.dropped == 0 and len(sink.frames) == 60


class RecordingFake(FakeDetector):
    """Records which cameras' frames (marker pixel) each call carried."""

    def __init__(self) -> None:
        super().__init__(bright_box_script(), delay_s=0.02)
        self.batches: list[set[int]] = []

    def detect(self, batch):
        self.batches.append(set(int(v) for v in np.asarray(batch)[:, -1, -1, 0]))
        return super().detect(batch)


def test_cameras_with_the_same_models_share_detector_calls() -> None:
    fake = RecordingFake()
    s1, s2 = CollectSink(), CollectSink()
    cam = camera()
    res = run([
        job("a", cam, SyntheticSource(30, camera=0, marker=10), s1),
        job("b", cam, SyntheticSource(30, camera=1, marker=20), s2),
    ], factory_for(fake), workers=1)
    assert any(b == {10, 20} for b in fake.batches), fake.batches
    assert len(fake.batches) < 60
    assert_all_masked(s1, camera_no=0)
    assert_all_masked(s2, camera_no=1)
    for r, s in zip(res, (s1, s2)):
        assert_accounting(r, s)


def test_cameras_are_dealt_to_detection_workers() -> None:
    """Three cameras, two workers: cameras 0 and 2 share one thread, camera 1 has the other; a
    camera's frames never go to two workers (the source-resolution pass remembers per camera)."""
    from masking.stream.detect_stage import build_groups, unique_groups

    cams = [camera(), camera(), camera()]
    groups = build_groups(cams, factory_for(RecordingFake()), queue_size=8, workers=2)
    assert groups[0] is groups[2] and groups[1] is not groups[0]
    assert len(unique_groups(groups)) == 2
    assert len(unique_groups(build_groups(cams, factory_for(RecordingFake()), 8, workers=1))) == 1
    assert len(unique_groups(build_groups(cams, factory_for(RecordingFake()), 8, workers=8))) == 3
    other = camera().model_copy(update={"detect": camera().detect.model_copy(update={"every": 3})})
    mixed = build_groups([cams[0], other], factory_for(RecordingFake()), 8, workers=1)
    assert mixed[0] is not mixed[1]  # other detectors (lowered thresholds): never the same group

    fake = RecordingFake()
    sinks = [CollectSink() for _ in range(3)]
    res = run([job(f"c{i}", cam, SyntheticSource(30, camera=i, marker=10 * (i + 1)), s)
               for i, (cam, s) in enumerate(zip(cams, sinks))], factory_for(fake), workers=2)
    assert not any({10, 20} <= b or {20, 30} <= b for b in fake.batches), fake.batches
    for i, (r, s) in enumerate(zip(res, sinks)):
        assert_all_masked(s, camera_no=i)
        assert_accounting(r, s)


def test_only_masked_frames_reach_a_sink() -> None:
    import io

    with pytest.raises(MaskingError):
        RawSink(io.BytesIO()).write(SourceFrame(0, np.zeros((4, 4, 3), np.uint8), 0, 1))  # type: ignore[arg-type]
    with pytest.raises(MaskingError):
        MaskedFrame(0, np.zeros((4, 4, 3), np.uint8), 0, 1, MaskedBy.static_only, 0.0, object())  # type: ignore[arg-type]

@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_mixed_faults_never_leak_and_always_add_up(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    every = int(rng.integers(1, 4))
    policy = ["full", "zones"][seed % 2]
    live = bool(seed % 3 == 0)
    bad = set(rng.choice(60, size=6, replace=False).tolist())
    src = FaultySource(SyntheticSource(60, speed=3, live=live, interval_s=0.003), corrupt_on=lambda i: i in bad)
    sink = CollectSink(delay_s=0.002)
    cam = camera(every=every, fail_policy=policy, max_latency_ms=60)
    (res,) = run([job("a", cam, src, sink)], factory_for(ChaosFake(seed)), queue_size=4)
    assert_all_masked(sink, speed=3)
    assert_accounting(res, sink)
    assert res.stats.frames_in == 60 and res.stats.corrupt == len(bad)


class FailingSink(CollectSink):
    def write(self, frame: MaskedFrame) -> None:
        if frame.index == 10:
            from masking.errors import OutputError

            raise OutputError("disk full (injected)")
        super().write(frame)


def test_sink_failure_is_counted_and_reported() -> None:
    sink = FailingSink()
    (res,) = run([job("a", camera(detect=False), SyntheticSource(40), sink)])
    assert res.error and "disk full" in res.error
    assert res.stats.failed >= 1 and res.stats.frames_out == 10
    assert res.stats.frames_in == res.stats.frames_out + res.stats.dropped + res.stats.failed
    assert sink.closed  # aborted, not left open


def test_skipping_frames_lowers_detector_thresholds() -> None:
    from masking.stream.detect_stage import SKIP_THRESHOLD_DROP, cadence_camera, group_key

    every1, every3 = camera(every=1), camera(every=3)
    assert cadence_camera(every1) is every1
    low = cadence_camera(every3)
    assert low.detect.detectors[0].threshold == pytest.approx(0.3 - SKIP_THRESHOLD_DROP)
    assert group_key(every1) != group_key(every3)  # different effective detectors: not batched together
