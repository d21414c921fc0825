"""The clip sampler: which frames of a clip (or of a window of it) an audit looks at.

`masking audit` and the rescan worker (whole clips, segments of long clips, stream samples) both
sample through `sample_clip`, with one rule:

* Times are source PTS, in seconds from the clip's first frame; a window is `[start_s, end_s)`.
* With D the window's length, the sampler aims at `start_s + k * step`, `step = max(1 / sample_fps,
  D / max_frames)`, k = 0, 1, ...: never more than `sample_fps` frames per second, never more than
  `max_frames`, and spread evenly over the whole window. Each aim takes the first frame at or after
  it; aims a gap in the stream skipped over are not made up (no bursts after a gap).
* D is the window's end minus its start; a window that runs to the clip's end takes the clip's
  duration from its container. When neither says (a file whose container does not give its length),
  frames are kept at `sample_fps` and, each time there would be more than `max_frames`, every second
  one is dropped and the step doubled: the same even spread over the whole clip, found while reading
  (at most `max_frames` frames are held).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from masking.errors import ConfigError

T = TypeVar("T")
_EPS = 1e-6


@dataclass(frozen=True)
class SampledFrame:
    """One sampled frame: BGR uint8 pixels, its index in decode order, its PTS in seconds."""

    image: npt.NDArray[np.uint8]
    index: int
    time_s: float


def sampling_step(duration_s: float | None, sample_fps: float, max_frames: int) -> float:
    """Seconds between aims: `1 / sample_fps`, widened so `max_frames` frames span `duration_s`."""
    if not sample_fps > 0 or max_frames < 1:
        raise ConfigError(f"sampling needs sample_fps > 0 and max_frames >= 1 (got {sample_fps}, {max_frames})")
    step = 1.0 / sample_fps
    if duration_s is not None and duration_s / step > max_frames:
        step = duration_s / max_frames
    return step


def spread(
    timed: Iterable[tuple[float, T]],
    sample_fps: float,
    max_frames: int,
    start_s: float = 0.0,
    end_s: float | None = None,
    duration_s: float | None = None,
) -> Iterator[tuple[float, T]]:
    """The sampled `(time, item)` pairs of `timed` (times in seconds from the clip's first frame, in
    order) for the window `[start_s, end_s)`; `duration_s`: the clip's length when known. See the
    module docstring for the rule."""
    end = math.inf if end_s is None else end_s
    known = end - start_s if math.isfinite(end) else (duration_s - start_s if duration_s is not None else None)
    step = sampling_step(max(0.0, known) if known is not None else None, sample_fps, max_frames)

    def next_aim(t: float) -> float:
        return start_s + step * (math.floor((t - start_s) / step + _EPS) + 1)

    aim = start_s
    if known is not None:  # the length is known: stream the frames out as they are chosen
        taken = 0
        for t, item in timed:
            if t >= end - _EPS:
                return
            if t + _EPS < aim:
                continue
            yield t, item
            taken += 1
            if taken >= max_frames:
                return
            aim = next_aim(t)
        return
    kept: list[tuple[float, T]] = []  # unknown length: thin as the clip goes on
    for t, item in timed:
        if t + _EPS < aim:
            continue
        kept.append((t, item))
        if len(kept) > max_frames:
            kept = kept[::2]
            step *= 2
        aim = next_aim(t)
    yield from kept


def sample_clip(
    source: str | Path,
    sample_fps: float,
    max_frames: int,
    start_s: float = 0.0,
    end_s: float | None = None,
) -> Iterator[SampledFrame]:
    """Frames of a video file or stream URL for the window `[start_s, end_s)` (seconds from its first
    frame; `end_s` None: to the end), by the rule in the module docstring. Frames before the window
    are decoded and skipped (the reader does not seek)."""
    from masking.video.reader import VideoReader

    with VideoReader(source) as reader:
        info = reader.info
        fps = float(info.fps)

        def timed() -> Iterator[tuple[float, tuple[int, npt.NDArray[np.uint8], float]]]:
            first: float | None = None
            for vf in reader:
                tb = vf.time_base or info.time_base
                t = float(vf.pts * Fraction(tb)) if vf.pts is not None else vf.index / fps
                if first is None:
                    first = t  # the first decoded frame is the clip's start, whatever its PTS
                yield t - first, (vf.index, vf.image, t)

        for _, (index, image, t) in spread(timed(), sample_fps, max_frames, start_s, end_s, info.duration_s):
            yield SampledFrame(image, index, t)
