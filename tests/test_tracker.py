"""`BoxTracker` on synthetic tracks: misses, crossings, expiry; never fewer masks."""

from __future__ import annotations

import numpy as np

from masking.detect.tracker import BoxTracker, match
from masking.masks.boxes import MaskBoxes

W, H = 640, 360


def box(x: float, y: float, size: float = 30.0) -> np.ndarray:
    return np.array([x, y, x + size, y + size], np.float32)


def masks(xyxy: list[np.ndarray], ellipse: bool = True) -> MaskBoxes:
    if not xyxy:
        return MaskBoxes.empty()
    return MaskBoxes(np.stack(xyxy), np.full(len(xyxy), ellipse))


def covered(truth: np.ndarray, drawn: MaskBoxes) -> bool:
    """The true box lies wholly inside one drawn box."""
    if not len(drawn):
        return False
    d = drawn.xyxy
    return bool(((d[:, 0] <= truth[0]) & (d[:, 1] <= truth[1]) & (d[:, 2] >= truth[2]) & (d[:, 3] >= truth[3])).any())


def drawn_at(tracker: BoxTracker, i: int, detected: list[np.ndarray]) -> MaskBoxes:
    """What the engine draws on frame i: the frame's detections plus the coasting tracks."""
    now = masks(detected)
    tracker.update(i, now)
    return MaskBoxes.concat([now, tracker.boxes(i, W, H)])


def test_a_box_missing_for_three_frames_stays_masked() -> None:
    tr = BoxTracker(hold=5, motion=2.0)
    for i in range(12):
        truth = box(100 + 8 * i, 50)  # 8 px per frame to the right
        detected = [] if i in (5, 6, 7) else [truth]
        assert covered(truth, drawn_at(tr, i, detected)), f"frame {i} unmasked"


def test_without_the_tracker_the_miss_is_visible() -> None:
    """Teeth: with hold 0 the same misses leave the box unmasked."""
    tr = BoxTracker(hold=0)
    for i in range(5):
        drawn_at(tr, i, [box(100 + 8 * i, 50)])
    assert not covered(box(140, 50), drawn_at(tr, 5, []))


def test_velocity_carries_the_mask_without_growth() -> None:
    """No growth at all: the predicted position alone covers a box moving at constant speed."""
    tr = BoxTracker(hold=4, motion=0.0)
    for i in range(6):
        drawn_at(tr, i, [box(50 + 10 * i, 80)])
    for i in range(6, 10):
        assert covered(box(50 + 10 * i, 80), drawn_at(tr, i, []))


def test_two_crossing_tracks_keep_their_masks() -> None:
    """Two faces walk through each other; at the crossing the detector sees only one of them."""
    tr = BoxTracker(hold=6, motion=3.0)
    for i in range(20):
        a = box(100 + 12 * i, 100)
        b = box(100 + 12 * 19 - 12 * i, 110)
        crossing = abs(float(a[0] - b[0])) < 40
        detected = [a] if crossing else [a, b]  # b hidden behind a while they overlap
        drawn = drawn_at(tr, i, detected)
        assert covered(a, drawn) and covered(b, drawn), f"frame {i}"


def test_tracks_expire_after_hold_frames() -> None:
    tr = BoxTracker(hold=3, motion=1.0)
    drawn_at(tr, 0, [box(10, 10)])
    assert len(tr.boxes(3, W, H)) == 1
    assert len(tr.boxes(4, W, H)) == 0
    tr.update(4, MaskBoxes.empty())
    assert len(tr) == 0


def test_faces_and_person_boxes_are_tracked_apart() -> None:
    tr = BoxTracker(hold=3)
    tr.update(0, masks([box(10, 10)], ellipse=True))
    tr.update(1, masks([box(10, 10)], ellipse=False))  # same place, other shape: a new track
    assert len(tr) == 2
    out = tr.boxes(2, W, H)
    assert sorted(out.ellipse.tolist()) == [False, True]


def test_boxes_stay_inside_the_frame() -> None:
    tr = BoxTracker(hold=10, motion=5.0)
    for i in range(3):
        tr.update(i, masks([box(W - 40 + 10 * i, H - 40 + 10 * i)]))
    out = tr.boxes(12, W, H)
    assert (out.xyxy >= 0).all() and (out.xyxy[:, [0, 2]] <= W).all() and (out.xyxy[:, [1, 3]] <= H).all()


def test_match_is_one_to_one_and_prefers_the_best_pairs() -> None:
    iou = np.array([[0.9, 0.8, 0.0], [0.85, 0.1, 0.0], [0.0, 0.0, 0.05]], np.float32)
    a, b = match(iou, 0.1)
    pairs = sorted(zip(a.tolist(), b.tolist()))
    assert pairs == [(0, 0), (1, 1)]  # row 2's only overlap is under the threshold
    a, b = match(np.zeros((0, 2), np.float32), 0.1)
    assert a.size == 0 and b.size == 0
