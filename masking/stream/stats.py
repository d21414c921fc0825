"""Per-camera counters and latency summaries of the masking pipeline.

Accounting invariant (checked by `CameraStats.check()` at exit and by the tests):

    frames_in == frames_out + dropped + failed

* `frames_in`: frames the source delivered to the engine (corrupt ones included).
* `frames_out`: frames the sink wrote; every one went through the masker. `masked_by_policy`
  (fail policy `full` or `zones`) and `corrupt` frames are *among* `frames_out`, never extra.
* `dropped`: frames discarded on the input side because a live source outran the pipeline
  (oldest first). Files, folders and pipes never drop: they get back-pressure instead.
* `failed`: frames that were in the pipeline when the sink failed (the error is logged).
Frames a live stream lost during an outage never reached the engine: they are not in `frames_in`;
each outage is logged as a gap and counted in `gaps` / `gap_seconds`.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass

import numpy as np

from masking.errors import MaskingError
from masking.stream.frames import MaskedBy

_WINDOW = 2048  # latency samples kept for the percentiles
OVERLOAD_SHARE = 0.05  # more than this share of an interval's frames dropped or masked by policy: warn


def _pct(values: collections.deque[float], q: float) -> float | None:
    if not values:
        return None
    return float(np.percentile(np.fromiter(values, float), q))


@dataclass
class StatsSnapshot:
    """A consistent copy of one camera's counters."""

    camera: str
    frames_in: int
    frames_out: int
    dropped: int
    failed: int
    corrupt: int
    masked_by: dict[str, int]
    masked_by_policy: int
    detector_errors: int
    detector_late: int
    gaps: int
    gap_seconds: float
    detect_p50_ms: float | None
    detect_p99_ms: float | None
    e2e_p50_ms: float | None
    e2e_p99_ms: float | None
    fps: float
    elapsed_s: float

    def line(self, interval_fps: float | None = None) -> str:
        """One log line (with the fps of the last interval, when given)."""

        def ms(v: float | None) -> str:
            return "-" if v is None else f"{v:.0f}"

        by = " ".join(f"{k}={v}" for k, v in self.masked_by.items() if v)
        return (
            f"camera {self.camera}: in={self.frames_in} out={self.frames_out} dropped={self.dropped} "
            f"failed={self.failed} masked_by_policy={self.masked_by_policy} corrupt={self.corrupt} "
            f"[{by}] detector p50/p99={ms(self.detect_p50_ms)}/{ms(self.detect_p99_ms)} ms "
            f"errors={self.detector_errors} late={self.detector_late} "
            f"e2e p50/p99={ms(self.e2e_p50_ms)}/{ms(self.e2e_p99_ms)} ms fps={self.fps:.1f}"
            + ("" if interval_fps is None else f" (last interval {interval_fps:.1f})")
            + " "
            f"gaps={self.gaps} ({self.gap_seconds:.1f} s)"
        )


class CameraStats:
    """Thread-safe counters for one camera."""

    def __init__(self, camera: str) -> None:
        self.camera = camera
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self.frames_in = 0
        self.frames_out = 0
        self.dropped = 0
        self.failed = 0
        self.corrupt = 0
        self.detector_errors = 0
        self.detector_late = 0
        self.gaps = 0
        self.gap_seconds = 0.0
        self.masked_by: dict[str, int] = {m.value: 0 for m in MaskedBy}
        self._detect_ms: collections.deque[float] = collections.deque(maxlen=_WINDOW)
        self._e2e_ms: collections.deque[float] = collections.deque(maxlen=_WINDOW)
        self._last_check: StatsSnapshot | None = None

    def add(self, counter: str, n: int = 1) -> None:
        """Increase an integer counter (`frames_in`, `dropped`, ...)."""
        with self._lock:
            if counter == "frames_in" and self.frames_in == 0:
                self._start = time.monotonic()  # fps counts from the first frame, not from model loading
            setattr(self, counter, getattr(self, counter) + n)

    def gap(self, seconds: float) -> None:
        with self._lock:
            self.gaps += 1
            self.gap_seconds += seconds

    def detect_latency(self, ms: float) -> None:
        with self._lock:
            self._detect_ms.append(ms)

    def written(self, masked_by: MaskedBy, arrival: float) -> None:
        """A frame reached the sink."""
        now = time.monotonic()
        with self._lock:
            self.frames_out += 1
            self.masked_by[masked_by.value] += 1
            self._e2e_ms.append((now - arrival) * 1000.0)

    def snapshot(self) -> StatsSnapshot:
        with self._lock:
            elapsed = max(time.monotonic() - self._start, 1e-9)
            policy = self.masked_by[MaskedBy.policy_full.value] + self.masked_by[MaskedBy.policy_zones.value]
            return StatsSnapshot(
                camera=self.camera,
                frames_in=self.frames_in,
                frames_out=self.frames_out,
                dropped=self.dropped,
                failed=self.failed,
                corrupt=self.corrupt,
                masked_by=dict(self.masked_by),
                masked_by_policy=policy,
                detector_errors=self.detector_errors,
                detector_late=self.detector_late,
                gaps=self.gaps,
                gap_seconds=self.gap_seconds,
                detect_p50_ms=_pct(self._detect_ms, 50),
                detect_p99_ms=_pct(self._detect_ms, 99),
                e2e_p50_ms=_pct(self._e2e_ms, 50),
                e2e_p99_ms=_pct(self._e2e_ms, 99),
                fps=self.frames_out / elapsed,
                elapsed_s=elapsed,
            )

    def overload(self) -> str | None:
        """A warning with its cause when, since the last call, more than 5% of the frames were dropped
        (the input outran the pipeline) or blacked by the fail policy (detector late or failing);
        None otherwise. Called once per stats interval, so it warns at most once per interval."""
        now = self.snapshot()
        prev, self._last_check = self._last_check, now
        d_in = now.frames_in - (prev.frames_in if prev else 0)
        d_out = now.frames_out - (prev.frames_out if prev else 0)
        d_drop = now.dropped - (prev.dropped if prev else 0)
        d_policy = now.masked_by_policy - (prev.masked_by_policy if prev else 0)
        d_late = now.detector_late - (prev.detector_late if prev else 0)
        d_err = now.detector_errors - (prev.detector_errors if prev else 0)
        dropped = d_drop / d_in if d_in else 0.0
        policy = d_policy / d_out if d_out else 0.0
        if dropped <= OVERLOAD_SHARE and policy <= OVERLOAD_SHARE:
            return None
        causes = []
        if d_late:
            causes.append(f"the detector missed its deadline {d_late} time(s) (p99 {now.detect_p99_ms or 0:.0f} ms)")
        if d_err:
            causes.append(f"the detector failed {d_err} time(s)")
        if d_drop:
            causes.append("the live input delivered frames faster than they were masked and encoded")
        return (
            f"camera {self.camera}: overloaded: {policy:.0%} of the last {d_out} frames blacked by the fail "
            f"policy, {dropped:.0%} of {d_in} input frames dropped; cause: {'; '.join(causes) or 'unknown'}. "
            "Lower the frame rate or resolution, detect on every k-th frame (`every`), or use fewer cameras "
            "per machine"
        )

    def check(self) -> StatsSnapshot:
        """The final snapshot; `MaskingError` if the accounting invariant does not hold."""
        s = self.snapshot()
        if s.frames_in != s.frames_out + s.dropped + s.failed:
            raise MaskingError(
                f"camera {self.camera}: accounting broken: in={s.frames_in} != out={s.frames_out} "
                f"+ dropped={s.dropped} + failed={s.failed}"
            )
        if sum(s.masked_by.values()) != s.frames_out:
            raise MaskingError(f"camera {self.camera}: masked_by counts do not add up to frames_out")
        return s
