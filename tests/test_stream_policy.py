"""`choose_masking`: which rule masks a frame, on a hand-filled ResultBoard (no threads, no timing)."""

from __future__ import annotations

import time

import numpy as np

from masking.masks.boxes import MaskBoxes
from masking.stream.frames import MaskedBy
from masking.stream.masker import MaskPolicy, Result, ResultBoard, choose_masking

W, H = 640, 480


def box(x: float) -> MaskBoxes:
    return MaskBoxes(np.array([[x, 100, x + 40, 140]], np.float32), np.array([False]))


def past() -> float:
    return time.monotonic() - 1.0  # a deadline that has passed: nothing waits


def test_own_result_and_look_ahead_and_previous_are_all_masked() -> None:
    b = ResultBoard()
    for k, x in ((0, 100), (3, 130), (6, 160)):
        b.post(Result(k, box(x)))
    d = choose_masking(3, time.monotonic() + 1, MaskPolicy(every=3, hold_motion=0.0), b, W, H)
    assert d.masked_by is MaskedBy.detections
    assert sorted(d.boxes.xyxy[:, 0].tolist()) == [100, 130, 160]  # previous, own, next


def test_held_frames_grow_with_distance() -> None:
    b = ResultBoard()
    b.post(Result(0, box(100)))
    b.finish()
    d = choose_masking(2, None, MaskPolicy(every=3, hold_motion=0.01, hysteresis=0), b, W, H, arrival=time.monotonic())
    assert d.masked_by is MaskedBy.held
    assert np.allclose(d.boxes.xyxy[0], [100 - 12.8, 100 - 12.8, 140 + 12.8, 140 + 12.8])  # 2 frames x 6.4 px


def test_late_key_frame_uses_a_recent_result_else_the_policy() -> None:
    b = ResultBoard()
    b.post(Result(0, box(100)))
    b.finish()
    recent = choose_masking(1, past(), MaskPolicy(every=1), b, W, H)
    assert recent.masked_by is MaskedBy.held and recent.late
    stale = choose_masking(5, past(), MaskPolicy(every=1), b, W, H)  # 5 frames old > 2 x every
    assert stale.masked_by is MaskedBy.policy_full and stale.late


def test_a_failed_result_applies_the_policy_and_zones_escalates_without_detections() -> None:
    b = ResultBoard()
    b.post(Result(0, box(100)))
    b.post(Result(1, None, "boom"))
    d = choose_masking(1, past(), MaskPolicy(every=1, fail_policy="zones"), b, W, H)
    assert d.masked_by is MaskedBy.policy_zones and len(d.boxes) == 1  # last good boxes, grown
    empty = ResultBoard()
    empty.post(Result(0, None, "boom"))
    assert choose_masking(0, past(), MaskPolicy(every=1, fail_policy="zones"), empty, W, H).masked_by is MaskedBy.policy_full


def test_unavailable_detector_and_unsubmitted_key_frames_fail_closed() -> None:
    b = ResultBoard()
    b.set_unavailable("model missing")
    assert choose_masking(0, time.monotonic() + 5, MaskPolicy(), b, W, H).masked_by is MaskedBy.policy_full
    b2 = ResultBoard()
    assert choose_masking(0, None, MaskPolicy(), b2, W, H).masked_by is MaskedBy.policy_full
