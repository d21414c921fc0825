"""The one clip sampler (`masking.video.sampling`) that `masking audit` and rescans share."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from masking.audit import Auditor, AuditSettings
from masking.audit.auditor import sample_video
from masking.detect.base import FakeDetector, bright_box_script
from masking.video.reader import StreamInfo, VideoReader
from masking.video.sampling import sample_clip, spread
from masking.video.writer import VideoWriter

# --------------------------------------------------------------------------- the rule, on timestamps


def _times(pairs: list[tuple[float, Any]]) -> list[float]:
    return [t for t, _ in pairs]


def test_a_long_window_is_spread_evenly_over_its_whole_length() -> None:
    clip = [(k / 2, k) for k in range(600)]  # 300 s at 2 fps
    got = _times(list(spread(clip, sample_fps=1.0, max_frames=60, duration_s=300.0)))
    assert got == [5.0 * k for k in range(60)]  # every 5 s from start to end, not the first minute


def test_a_short_window_is_sampled_at_sample_fps() -> None:
    clip = [(k / 20, k) for k in range(20 * 10)]  # 10 s at 20 fps
    got = _times(list(spread(clip, sample_fps=2.0, max_frames=60, duration_s=10.0)))
    assert got == pytest.approx([k / 2 for k in range(20)])


def test_a_window_is_spread_between_its_start_and_end() -> None:
    clip = [(float(k), k) for k in range(1000)]
    got = _times(list(spread(clip, sample_fps=1.0, max_frames=10, start_s=300.0, end_s=400.0, duration_s=1000.0)))
    assert got == [300.0 + 10 * k for k in range(10)]
    tail = _times(list(spread(clip, sample_fps=1.0, max_frames=10, start_s=900.0, duration_s=1000.0)))
    assert tail == [900.0 + 10 * k for k in range(10)]  # to the end: the clip's duration bounds it


def test_an_unknown_length_is_thinned_over_the_whole_clip() -> None:
    clip = [(float(k), k) for k in range(1000)]
    got = _times(list(spread(clip, sample_fps=1.0, max_frames=60)))
    assert 30 < len(got) <= 60
    assert got[0] == 0.0 and got[-1] > 900.0  # the last tenth is sampled
    gaps = np.diff(got)
    assert gaps.min() == gaps.max()  # evenly


def test_gaps_are_not_made_up_by_a_burst() -> None:
    clip = [(k / 10, k) for k in range(100)] + [(30 + k / 10, k) for k in range(100)]  # 20 s hole
    got = _times(list(spread(clip, sample_fps=1.0, max_frames=100, end_s=40.0)))
    assert np.diff(got).min() >= 1.0 - 1e-9


# --------------------------------------------------------------------------- a 10-minute clip
SECONDS = 600
EVIDENCE_S = (250, 290)  # in the last quarter of the first 300 s segment, and nowhere else


def _clip(path: Path) -> Path:
    """10 minutes at 1 fps, 64x48, dark; a white square (a 'toilet') while t is in EVIDENCE_S."""
    info = StreamInfo(64, 48, Fraction(1), Fraction(1, 1000), None, "h264")
    dark = np.full((48, 64, 3), 60, np.uint8)
    marked = dark.copy()
    marked[12:36, 16:48] = 255
    with VideoWriter(path, info, preset="ultrafast") as w:
        for t in range(SECONDS):
            w.write(marked if EVIDENCE_S[0] <= t < EVIDENCE_S[1] else dark, t * 1000)
    return path


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _clip(tmp_path_factory.mktemp("sampling") / "long.mp4")


def toilet_auditor(settings: dict[str, Any], threads: int) -> Auditor:
    """Auditor factory (module:function): white squares are toilets."""
    det = FakeDetector(bright_box_script(class_names=("toilet",)), class_names=("toilet",), name="yolox-nano")
    return Auditor(AuditSettings.model_validate(settings), detectors={"yolox-nano": det})


def test_clip_duration_comes_from_the_container(long_clip: Path) -> None:
    with VideoReader(long_clip) as r:
        assert r.info.duration_s == pytest.approx(SECONDS)


def test_audit_and_a_whole_clip_item_sample_the_same_frames(long_clip: Path) -> None:
    audit = [(f.index, f.time_s) for f in sample_video(long_clip, 1.0, 60)]
    clip = [(f.index, f.time_s) for f in sample_clip(long_clip, 1.0, 60, 0.0, None)]
    assert audit == clip and len(audit) == 60
    assert [t for _, t in audit] == [10.0 * k for k in range(60)]


def test_a_segments_evidence_in_its_last_quarter_is_found(tmp_path: Path, long_clip: Path) -> None:
    """`--segment-seconds 300` at the default sampling: the first segment's only evidence is in its
    last quarter (250-290 s). Sampling only its first `max_frames` seconds would call it compliant."""
    from masking.rescan import RescanOptions, Store, load_fleet, run_rescan

    (tmp_path / "fleet.csv").write_text(f"camera_id,footage\nward,{long_clip}\n")
    opts = RescanOptions(settings=AuditSettings(tiles=1).model_dump(), workers=0, segment_seconds=300,
                         factory=f"{__name__}:toilet_auditor")
    with Store(tmp_path / "s.sqlite") as store:
        res = run_rescan(load_fleet(tmp_path / "fleet.csv"), opts, store)
        rows = sorted((dict(r) for r in store.query("SELECT * FROM items")), key=lambda r: r["source"])
    assert [r["source"] for r in rows] == [f"{long_clip}#t=0,300", f"{long_clip}#t=300"]
    first, second = rows
    assert first["frames_sampled"] == 60 and second["frames_sampled"] == 60
    assert (first["verdict"], first["category"]) == ("violation", "toilet")
    assert second["verdict"] == "compliant"
    cam = res.cameras[0]
    assert cam["verdict"] == "violation" and cam["category"] == "toilet"
