"""`persons`, `heads` and `faces,persons` through the real engine with fake detectors, fail-closed cases included.

Synthetic 320x240 frames hold a walking "person" (a tall bright rectangle) and, optionally, a
"face" (a small bright disc) elsewhere; `FakeDetector`s report them as YOLOX-Nano `person` and
YuNet `face` boxes. Every output frame is checked pixel by pixel.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from fractions import Fraction

import cv2
import numpy as np
import pytest
from stream_helpers import CollectSink, SyntheticSource

from masking.config.zones import Camera
from masking.detect.base import FakeDetector
from masking.detect.detections import Detections
from masking.detect.dynamic import PRESETS, DynamicMasks, detect_config_from_preset, head_regions
from masking.errors import ConfigError, ModelNotInstalledError
from masking.stream.engine import CameraJob, MaskingPipeline, PipelineOptions
from masking.stream.frames import MaskedBy, MaskedFrame

W, H = 320, 240
PW, PH = 40, 120  # the person
FACE = (250, 30, 274, 54)  # a face, standing still
COCO = ("person", "bicycle", "car")


def person_at(i: int, speed: int) -> tuple[int, int, int, int]:
    x = 20 + (i * speed) % 200
    return x, 90, x + PW, 90 + PH


class PersonSource(SyntheticSource):
    """`SyntheticSource`'s timing and flags; frames with a walking person and an optional face."""

    def __init__(self, n: int, speed: int = 4, face: bool = False) -> None:
        super().__init__(n, speed=speed, name="persons")
        self.face = face

    def frames(self, stop: threading.Event, layout: str = "bgr24") -> Iterator[tuple[object, int, Fraction]]:
        for i in range(self.n):
            img = np.random.default_rng(i).integers(60, 140, size=(H, W, 3), dtype=np.uint8)
            x0, y0, x1, y1 = person_at(i, self.speed)
            img[y0:y1, x0:x1] = 230
            if self.face:  # round, like a face: the ellipse inscribed in its box (what the preset's ellipse covers)
                cx, cy = (FACE[0] + FACE[2]) // 2, (FACE[1] + FACE[3]) // 2
                cv2.ellipse(img, (cx, cy), ((FACE[2] - FACE[0]) // 2, (FACE[3] - FACE[1]) // 2), 0, 0, 360, (250, 250, 250), -1)
            yield img, i * 3600, self.time_base


def person_script(speed: int = 4):
    def script(i: int, frame: np.ndarray) -> Detections:
        box = np.array([person_at(i, speed)], np.float32)
        return Detections(box, np.array([0.8], np.float32), np.array([0], np.int32), COCO)

    return script


def face_script(i: int, frame: np.ndarray) -> Detections:
    return Detections(np.array([FACE], np.float32), np.array([0.9], np.float32), np.array([0], np.int32), ("face",))


def camera(presets: str, **opts: object) -> Camera:
    return Camera(camera_id="cam", detect=detect_config_from_preset(presets, **opts))


def run(cam: Camera, detectors: dict[str, FakeDetector] | None, n: int = 30, face: bool = False, factory=None):
    sink = CollectSink()
    job = CameraJob("a", cam, PersonSource(n, face=face), lambda info: sink)
    fac = factory or (lambda c: DynamicMasks(c, detectors=detectors))
    (res,) = MaskingPipeline([job], PipelineOptions(queue_size=8, stats_interval_s=60, detector_factory=fac)).run()
    assert len(sink.frames) == n and res.stats.frames_in == n
    return res, sink.frames


def region(f: MaskedFrame, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return f.image[y0:y1, x0:x1]


def head_box(i: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = person_at(i, 4)
    return x0 + 8, y0, x1 - 8, y0 + 24  # the top fifth, inside the head region


def legs_box(i: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = person_at(i, 4)
    return x0 + 4, y1 - 40, x1 - 4, y1 - 4


def test_persons_masks_whole_people() -> None:
    _, frames = run(camera("persons"), {"yolox-nano": FakeDetector(person_script(), class_names=COCO)})
    for f in frames:
        assert f.masked_by is MaskedBy.detections
        assert region(f, person_at(f.index, 4)).max() == 0, f"frame {f.index}: person visible"


def test_heads_masks_the_head_and_leaves_the_body() -> None:
    _, frames = run(camera("heads"), {"yolox-nano": FakeDetector(person_script(), class_names=COCO)})
    for f in frames:
        assert region(f, head_box(f.index)).max() == 0, f"frame {f.index}: head visible"
        assert region(f, legs_box(f.index)).min() >= 200, f"frame {f.index}: legs masked too"


def test_faces_and_persons_combine() -> None:
    dets = {"yolox-nano": FakeDetector(person_script(), class_names=COCO), "yunet": FakeDetector(face_script)}
    cam = camera("faces,persons")
    assert [s.model for s in cam.detect.detectors] == ["yunet", "yolox-nano"]  # type: ignore[union-attr]
    _, frames = run(cam, dets, face=True)
    for f in frames:
        assert region(f, person_at(f.index, 4)).max() == 0
        assert region(f, FACE).max() < 200, f"frame {f.index}: face visible"


def test_a_person_missed_for_three_frames_stays_masked() -> None:
    """Tracker through the engine: the detector loses the person on frames 10-12."""
    script = person_script()

    def flaky(i: int, frame: np.ndarray) -> Detections:
        return Detections.empty(COCO) if 10 <= i <= 12 else script(i, frame)

    _, frames = run(camera("persons"), {"yolox-nano": FakeDetector(flaky, class_names=COCO)})
    for f in frames:
        assert region(f, person_at(f.index, 4)).max() == 0, f"frame {f.index} ({f.masked_by.value}): person visible"


def test_without_the_tracker_the_missed_person_shows() -> None:
    """Teeth for the test above: `track_frames: 0` leaves frames 10-12 unmasked."""
    script = person_script()

    def flaky(i: int, frame: np.ndarray) -> Detections:
        return Detections.empty(COCO) if 10 <= i <= 12 else script(i, frame)

    _, frames = run(camera("persons", track_frames=0), {"yolox-nano": FakeDetector(flaky, class_names=COCO)})
    assert any(region(f, person_at(f.index, 4)).max() > 200 for f in frames if 10 <= f.index <= 12)


@pytest.mark.parametrize("presets", ["persons", "heads", "faces,persons"])
def test_a_failing_person_detector_fails_closed(presets: str) -> None:
    dets = {"yolox-nano": FakeDetector(person_script(), class_names=COCO, fail_on=lambda i: i % 5 == 2),
            "yunet": FakeDetector(face_script)}
    res, frames = run(camera(presets), dets, face=True)
    failed = [f for f in frames if f.masked_by.by_policy]
    assert failed and res.stats.detector_errors > 0
    for f in failed:
        assert f.masked_by is MaskedBy.policy_full and f.image.max() == 0
    for f in frames:
        assert region(f, head_box(f.index)).max() < 200
        if "faces" in presets:
            assert region(f, FACE).max() < 200


def test_a_late_person_detector_fails_closed() -> None:
    dets = {"yolox-nano": FakeDetector(person_script(), class_names=COCO, delay_s=0.3)}
    res, frames = run(camera("persons", max_latency_ms=40), dets, n=12)
    assert res.stats.masked_by_policy > 0 and res.stats.detector_late > 0
    for f in frames:
        assert region(f, person_at(f.index, 4)).max() == 0


def test_a_missing_person_model_masks_everything() -> None:
    def factory(cam: Camera) -> DynamicMasks:
        raise ModelNotInstalledError("model 'yolox-nano' is not installed; run: masking models pull yolox-nano")

    res, frames = run(camera("faces,persons"), None, factory=factory)
    assert all(f.masked_by is MaskedBy.policy_full and f.image.max() == 0 for f in frames)
    assert res.stats.masked_by_policy == len(frames)


def test_preset_lists() -> None:
    assert [s.model for s in detect_config_from_preset(" persons, heads ,persons").detectors] == ["yolox-nano", "yolox-nano"]
    assert PRESETS["heads"].heads and not PRESETS["persons"].heads
    with pytest.raises(ConfigError, match="unknown detect preset"):
        detect_config_from_preset("faces,people")


def test_head_regions_sit_on_top_of_the_box() -> None:
    standing = np.array([[100, 50, 140, 170]], np.float32)  # 40 x 120
    seated = np.array([[0, 0, 100, 110]], np.float32)  # upper body, 100 x 110
    s, t = head_regions(standing)[0], head_regions(seated)[0]
    assert s[1] == 50 and s[3] == 50 + 30 and s[0] == 108 and s[2] == 132  # top quarter, 0.6 x the width
    assert t[3] == 50  # half the width tall: a seated person's head is a larger share of the box


def test_filter_needs_no_zones_file_with_detect(tmp_path, capsys) -> None:
    """`masking filter IN -o OUT --detect faces` runs as typed; without --detect, --zones is required."""
    import cv2

    from masking.cli import main

    img = np.full((120, 160, 3), 128, np.uint8)
    src = tmp_path / "in.png"
    cv2.imwrite(str(src), img)
    assert main(["filter", str(src), "-o", str(tmp_path / "out.png"), "--detect", "faces"]) == 0
    assert (tmp_path / "out.png").is_file()
    assert main(["filter", str(src), "-o", str(tmp_path / "out2.png")]) == 2
    assert "--zones is required unless --detect" in capsys.readouterr().err
